package syncserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/ncruces/go-sqlite3/driver"
	"github.com/opfsync/opfsync/pkg/protocol"
)

func openTestStore(t *testing.T, path string) *SQLiteStore {
	t.Helper()
	s, err := OpenSQLite(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestSQLiteSchemaAndPragmas(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dir with space", "s.db")
	if _, err := OpenSQLite(context.Background(), path); err == nil {
		t.Fatal("opened a database in a directory that does not exist")
	}
	path = filepath.Join(t.TempDir(), "a b?c#d.db")
	s := openTestStore(t, path)
	var mode string
	var sync int
	conn, err := s.db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.QueryRowContext(context.Background(), "PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode %q %v", mode, err)
	}
	if err := conn.QueryRowContext(context.Background(), "PRAGMA synchronous").Scan(&sync); err != nil || sync != 2 {
		t.Errorf("synchronous %d %v, want 2 (FULL)", sync, err)
	}
	var version int
	var name string
	if err := conn.QueryRowContext(context.Background(), "SELECT version, name FROM schema_migrations ORDER BY version DESC LIMIT 1").Scan(&version, &name); err != nil || version != SQLiteSchemaVersion {
		t.Errorf("schema_migrations: %d %q %v", version, name, err)
	}
	// Reopening an up-to-date database changes nothing.
	s.Close()
	s = openTestStore(t, path)
	if err := s.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestSQLiteRefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	s := openTestStore(t, path)
	s.Close()
	db, err := driver.Open("file:" + path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, 'from the future', 0)`, SQLiteSchemaVersion+1); err != nil {
		t.Fatal(err)
	}
	db.Close()
	_, err = OpenSQLite(context.Background(), path)
	if !errors.Is(err, ErrNewerSchema) {
		t.Fatalf("opened a newer schema: %v", err)
	}
	t.Logf("refusal: %v", err)
}

func TestSQLiteUpdateRollsBack(t *testing.T) {
	s := openTestStore(t, filepath.Join(t.TempDir(), "s.db"))
	testUpdateRollsBack(t, s)
	// A cancelled context does not wait for the writer slot.
	s.write <- struct{}{}
	cctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Update(cctx, "u", func(Tx) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("Update with a cancelled context: %v", err)
	}
	<-s.write
}

// testUpdateRollsBack checks, on an empty store, that an Update whose fn
// fails or panics leaves nothing behind (and gives out no position), and
// that a transaction reads its own writes.
func testUpdateRollsBack(t *testing.T, s Store) {
	ctx := context.Background()
	boom := errors.New("boom")
	err := s.Update(ctx, "u", func(tx Tx) error {
		if _, err := tx.SaveRecord("c", "r", protocol.Fields{"a": {Value: []byte("1"), HLC: hlc(baseWall, 0, "n"), Origin: protocol.OriginUser}}); err != nil {
			return err
		}
		if err := tx.SaveVerdict(Verdict{MutationID: "m", Status: protocol.StatusApplied, ClientID: "n", Collection: "c", RecordID: "r"}); err != nil {
			return err
		}
		// Reads see the transaction's own writes.
		if f, ok, err := tx.Record("c", "r"); err != nil || !ok || string(f["a"].Value) != "1" {
			t.Errorf("own write not visible: %v %v %v", f, ok, err)
		}
		if v, ok, err := tx.Verdict("m"); err != nil || !ok || v.Status != protocol.StatusApplied {
			t.Errorf("own verdict not visible: %+v %v %v", v, ok, err)
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update returned %v", err)
	}
	if st, err := s.Stats(ctx, ""); err != nil || st != (Stats{}) {
		t.Fatalf("rolled-back update left %+v %v", st, err)
	}
	if head, err := s.Head(ctx, "u"); err != nil || head != 0 {
		t.Fatalf("head %d %v", head, err)
	}
	// A panic inside fn rolls back too, and the writer slot is released.
	func() {
		defer func() { _ = recover() }()
		_ = s.Update(ctx, "u", func(tx Tx) error {
			_, _ = tx.SaveRecord("c", "r", protocol.Fields{})
			panic("inside")
		})
	}()
	if err := s.Update(ctx, "u", func(Tx) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if st, _ := s.Stats(ctx, ""); st.Records != 0 {
		t.Fatalf("panicking update left %+v", st)
	}
	// The rolled-back saves gave out no position that a later one skips.
	var pos int64
	if err := s.Update(ctx, "u", func(tx Tx) error {
		var err error
		pos, err = tx.SaveRecord("c", "r", protocol.Fields{})
		return err
	}); err != nil || pos != 1 {
		t.Fatalf("first kept save got position %d (%v), want 1", pos, err)
	}
}

func TestConcurrentPushes(t *testing.T) {
	s := newTestServer(t, nil, nil)
	const clients, batches, perBatch = 6, 5, 8
	var wg sync.WaitGroup
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			node := fmt.Sprintf("c%d", c)
			for b := 0; b < batches; b++ {
				var muts []protocol.Mutation
				for i := 0; i < perBatch; i++ {
					// A small id space, so clients collide on records.
					muts = append(muts, patchM(t, "todos", fmt.Sprint((b*perBatch+i)%10), hlc(baseWall+int64(b), uint32(i), node), "by", node))
				}
				body := mustJSON(t, protocol.PushRequest{ClientID: node, Mutations: muts})
				req, _ := http.NewRequest(http.MethodPost, s.URL+protocol.PathPush, strings.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+tokA)
				req.Header.Set("Content-Type", "application/json")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
				if resp.StatusCode != 200 {
					t.Errorf("push: %d", resp.StatusCode)
				}
			}
		}(c)
	}
	wg.Wait()
	if st := s.stats(userA); st.Applied != clients*batches*perBatch || st.Records != 10 {
		t.Fatalf("stats %+v", st)
	}
	// Every record's state is the field-LWW winner: the highest stamp.
	all, _ := s.pullAll(tokA, 4)
	for key, r := range all {
		if got := r.Fields["by"].HLC.Node; got != fmt.Sprintf("c%d", clients-1) {
			t.Errorf("%s: winner %s", key, got)
		}
	}
}
