package syncserver

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/opfsync/opfsync/internal/pgtest"
	"github.com/opfsync/opfsync/pkg/protocol"
)

// These tests always run on PostgreSQL, whatever OPFSYNC_TEST_STORE says:
// they are about what only the PostgreSQL store does.

func openPostgresTestStore(t *testing.T, url string) *PostgresStore {
	t.Helper()
	s, err := OpenPostgres(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// pgConn is a plain connection to url, for looking behind the store.
func pgConn(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func TestPostgresMigrations(t *testing.T) {
	url := pgtest.Database(t)
	ctx := context.Background()
	// Several instances starting at once on an empty database: one
	// migrates, the others wait for it and find nothing to do.
	const instances = 4
	var wg sync.WaitGroup
	errs := make([]error, instances)
	for i := range instances {
		wg.Go(func() {
			s, err := OpenPostgres(ctx, url)
			if err == nil {
				s.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("concurrent starts: %v", err)
	}
	c := pgConn(t, url)
	var n, version int
	if err := c.QueryRow(ctx, `SELECT count(*), max(version) FROM schema_migrations`).Scan(&n, &version); err != nil {
		t.Fatal(err)
	}
	if n != len(postgresMigrations) || version != PostgresSchemaVersion {
		t.Fatalf("schema_migrations holds %d rows up to version %d, want %d up to %d", n, version, len(postgresMigrations), PostgresSchemaVersion)
	}
	// Reopening an up-to-date database changes nothing.
	s := openPostgresTestStore(t, url)
	if err := s.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.QueryRow(ctx, `SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil || n != len(postgresMigrations) {
		t.Fatalf("reopening: %d rows %v", n, err)
	}

	// A newer schema is refused, and the error says what to do.
	if _, err := c.Exec(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, 'from the future', 0)`, PostgresSchemaVersion+1); err != nil {
		t.Fatal(err)
	}
	_, err := OpenPostgres(ctx, url)
	if !errors.Is(err, ErrNewerSchema) || !strings.Contains(err.Error(), "upgrade opfsync-server") {
		t.Fatalf("opened a newer schema: %v", err)
	}
}

func TestPostgresMigrationIsTransactional(t *testing.T) {
	url := pgtest.Database(t)
	ctx := context.Background()
	c := pgConn(t, url)
	// An application table in the way: the first step fails half-way (its
	// records table exists), and must leave nothing of its own behind.
	if _, err := c.Exec(ctx, `CREATE TABLE heads (app_column int)`); err != nil {
		t.Fatal(err)
	}
	_, err := OpenPostgres(ctx, url)
	if err == nil || !strings.Contains(err.Error(), "of its own") {
		t.Fatalf("migrated over a foreign table: %v", err)
	}
	var tables []string
	rows, _ := c.Query(ctx, `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1`)
	tables, err = pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(tables) != "[heads]" {
		t.Fatalf("a failed migration left tables %v, want only the foreign [heads]", tables)
	}
	// With the foreign table gone, the same database migrates.
	if _, err := c.Exec(ctx, `DROP TABLE heads`); err != nil {
		t.Fatal(err)
	}
	openPostgresTestStore(t, url)
}

func TestPostgresUpdateRollsBack(t *testing.T) {
	testUpdateRollsBack(t, openPostgresTestStore(t, pgtest.Database(t)))
}

// Writes on PostgreSQL are queued and sent in one round trip; one that
// fails there (a second verdict for the same mutation id) still fails the
// Update — with the database's reason — and keeps nothing; and what a
// prefetch read is what Verdict and Record answer, next to the
// transaction's own writes.
func TestPostgresQueuedWritesAndPrefetch(t *testing.T) {
	ctx := context.Background()
	s := openPostgresTestStore(t, pgtest.Database(t))
	field := func(v string) protocol.Fields {
		return protocol.Fields{"a": {Value: []byte(v), HLC: hlc(baseWall, 0, "n"), Origin: protocol.OriginUser}}
	}
	err := s.Update(ctx, "u", func(tx Tx) error {
		if _, err := tx.SaveRecord("c", "r", field(`1`)); err != nil {
			return err
		}
		for range 2 {
			if err := tx.SaveVerdict(Verdict{MutationID: "m", Status: protocol.StatusApplied, ClientID: "n", Collection: "c", RecordID: "r"}); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil || !strings.Contains(err.Error(), "duplicate key") {
		t.Fatalf("a failing queued write: Update returned %v", err)
	}
	if st, err := s.Stats(ctx, ""); err != nil || st != (Stats{}) {
		t.Fatalf("the failed update left %+v %v", st, err)
	}

	if err := s.Update(ctx, "u", func(tx Tx) error {
		if _, err := tx.SaveRecord("c", "kept", field(`"old"`)); err != nil {
			return err
		}
		return tx.SaveVerdict(Verdict{MutationID: "seen", Status: protocol.StatusApplied, ClientID: "n", Collection: "c", RecordID: "kept"})
	}); err != nil {
		t.Fatal(err)
	}
	err = s.Update(ctx, "u", func(tx Tx) error {
		p := tx.(prefetcher)
		if err := p.prefetch([]string{"seen", "new"}, []recordKey{{"c", "kept"}, {"c", "missing"}}); err != nil {
			return err
		}
		if v, ok, err := tx.Verdict("seen"); err != nil || !ok || v.RecordID != "kept" || v.Status != protocol.StatusApplied {
			t.Errorf("prefetched verdict: %+v %v %v", v, ok, err)
		}
		if _, ok, err := tx.Verdict("new"); err != nil || ok {
			t.Errorf("a verdict that does not exist: %v %v", ok, err)
		}
		f, ok, err := tx.Record("c", "kept")
		if err != nil || !ok || string(f["a"].Value) != `"old"` {
			t.Errorf("prefetched record: %v %v %v", f, ok, err)
		}
		f["a"] = protocol.FieldState{Value: []byte(`"changed by the caller"`)}
		if f, _, _ := tx.Record("c", "kept"); string(f["a"].Value) != `"old"` {
			t.Errorf("the caller's change to a returned record reached the store's copy: %v", f)
		}
		if _, ok, err := tx.Record("c", "missing"); err != nil || ok {
			t.Errorf("a record that does not exist: %v %v", ok, err)
		}
		if _, err := tx.SaveRecord("c", "missing", field(`2`)); err != nil {
			return err
		}
		if err := tx.SaveVerdict(Verdict{MutationID: "new", Status: protocol.StatusApplied, ClientID: "n", Collection: "c", RecordID: "missing"}); err != nil {
			return err
		}
		if f, ok, err := tx.Record("c", "missing"); err != nil || !ok || string(f["a"].Value) != `2` {
			t.Errorf("own write over a prefetched absence: %v %v %v", f, ok, err)
		}
		if v, ok, err := tx.Verdict("new"); err != nil || !ok || v.RecordID != "missing" {
			t.Errorf("own verdict over a prefetched absence: %+v %v %v", v, ok, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if st, err := s.Stats(ctx, "u"); err != nil || st.Records != 2 || st.Applied != 2 {
		t.Fatalf("after the prefetching update: %+v %v", st, err)
	}
	changes, err := s.Changes(ctx, "u", 0, 10)
	if err != nil || len(changes) != 2 || changes[1].Record.ID != "missing" || changes[1].Position != 2 {
		t.Fatalf("changes %+v %v", changes, err)
	}
}

func TestPostgresBadURLDoesNotLeakPassword(t *testing.T) {
	_, err := OpenPostgres(context.Background(), "postgres://u:s3cret@127.0.0.1:bad/db")
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("bad URL: %v", err)
	}
	// A server that is not there: a clear error, quickly, without the password.
	url := strings.Replace(pgtest.Database(t), "opfsync@", "opfsync:s3cret@", 1)
	url = url[:strings.LastIndex(url, ":")] + ":1/x?sslmode=disable"
	_, err = OpenPostgres(context.Background(), url)
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("unreachable server: %v", err)
	}
	t.Logf("unreachable: %v", err)
}

// TestPostgresPositionsFollowCommitOrder has several instances (stores)
// commit one user's changes at once, each transaction dawdling at random
// so that commits interleave, while readers page through Changes as
// clients pull. A change that took its position before an earlier-numbered
// one committed would be skipped by a reader; so every page must start
// right after the reader's cursor and be gap-free, and every reader must
// end up with every position.
func TestPostgresPositionsFollowCommitOrder(t *testing.T) {
	url := pgtest.Database(t)
	ctx := context.Background()
	const (
		instances = 3
		writers   = 4 // per instance
		commits   = 15
		perCommit = 3
		readers   = 3
		total     = instances * writers * commits * perCommit
	)
	stores := make([]*PostgresStore, instances)
	for i := range stores {
		stores[i] = openPostgresTestStore(t, url)
	}
	// A second user's writes run alongside, on positions of their own.
	var wg sync.WaitGroup
	writersDone := make(chan struct{})
	for i := range instances * writers {
		wg.Go(func() {
			store := stores[i%instances]
			for c := range commits {
				err := store.Update(ctx, "u", func(tx Tx) error {
					for k := range perCommit {
						id := fmt.Sprintf("w%d-c%d-k%d", i, c, k)
						if _, err := tx.SaveRecord("c", id, protocol.Fields{}); err != nil {
							return err
						}
						time.Sleep(time.Duration(rand.IntN(300)) * time.Microsecond)
					}
					return nil
				})
				if err != nil {
					t.Error(err)
					return
				}
				if err := store.Update(ctx, "other", func(tx Tx) error {
					_, err := tx.SaveRecord("c", fmt.Sprintf("w%d-c%d", i, c), protocol.Fields{})
					return err
				}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	go func() { wg.Wait(); close(writersDone) }()

	var rwg sync.WaitGroup
	for r := range readers {
		rwg.Go(func() {
			store := stores[r%instances]
			var cursor int64
			seen := 0
			done := false
			for !done {
				select {
				case <-writersDone:
					done = true // one last full catch-up after the writers
				default:
				}
				for {
					page, err := store.Changes(ctx, "u", cursor, 7)
					if err != nil {
						t.Error(err)
						return
					}
					for _, c := range page {
						if c.Position != cursor+1 {
							t.Errorf("reader %d: after cursor %d got position %d: a change was skipped or repeated", r, cursor, c.Position)
							return
						}
						cursor = c.Position
						seen++
					}
					if len(page) < 7 {
						break
					}
				}
			}
			if seen != total || cursor != total {
				t.Errorf("reader %d saw %d changes up to %d, want %d", r, seen, cursor, total)
			}
		})
	}
	rwg.Wait()
	<-writersDone
	if head, err := stores[0].Head(ctx, "u"); err != nil || head != total {
		t.Errorf("head %d %v, want %d", head, err, total)
	}
	if head, err := stores[0].Head(ctx, "other"); err != nil || head != instances*writers*commits {
		t.Errorf("other user's head %d %v, want %d", head, err, instances*writers*commits)
	}
}

// TestPostgresSameMutationOnTwoInstances pushes the same mutation ids
// through two instances at once: each is applied exactly once, and both
// answers agree.
func TestPostgresSameMutationOnTwoInstances(t *testing.T) {
	url := pgtest.Database(t)
	a := newTestServerOn(t, "postgres", url, nil, nil)
	b := newTestServerOn(t, "postgres", url, nil, nil)
	const n = 40
	muts := make([]protocol.Mutation, n)
	for i := range muts {
		muts[i] = putM(t, "todos", fmt.Sprintf("t%d", i%5), hlc(baseWall+int64(i), 0, "c1"), "n", i)
	}
	var wg sync.WaitGroup
	answers := make([]protocol.PushResponse, 4)
	for i := range answers {
		srv := []*testServer{a, b}[i%2]
		wg.Go(func() {
			for j := range muts { // one mutation per push, so the two interleave
				res := srv.push(tokA, "c1", muts[j])
				answers[i].Results = append(answers[i].Results, res.Results...)
			}
		})
	}
	wg.Wait()
	if st := a.stats(userA); st.Applied != n || st.Records != 5 {
		t.Fatalf("stats %+v, want %d applied on 5 records", st, n)
	}
	for i, ans := range answers {
		for j, r := range ans.Results {
			if r.Status != protocol.StatusApplied && r.Status != protocol.StatusDuplicate {
				t.Fatalf("pusher %d, mutation %d: %s", i, j, r.Status)
			}
		}
	}
	pa, _ := a.pullAll(tokA, 0)
	pb, _ := b.pullAll(tokA, 0)
	if fmt.Sprint(pa) != fmt.Sprint(pb) || value(ptr(pa["todos/t4"]), "n") != "39" {
		t.Fatalf("instances disagree or lost the last write:\n%v\n%v", pa, pb)
	}
}

// TestPostgresPokesCrossInstances connects event streams to one instance and
// pushes through another: the streams are poked (except the pushing
// client's), also after the feed's connection was cut, and a change made
// while it was cut is not missed.
func TestPostgresPokesCrossInstances(t *testing.T) {
	url := pgtest.Database(t)
	a := newTestServerOn(t, "postgres", url, nil, nil)
	b := newTestServerOn(t, "postgres", url, nil, nil)
	other := b.openEvents(tokA, "c2")
	pusher := b.openEvents(tokA, "c1")
	bob := b.openEvents(tokB, "c3")
	for _, es := range []*eventStream{other, pusher, bob} {
		if cursor, ok := es.nextPoke(time.Second); !ok || cursor != "" {
			t.Fatalf("initial poke %q %v", cursor, ok)
		}
	}
	push := func(n int) string {
		a.push(tokA, "c1", putM(t, "todos", fmt.Sprintf("t%d", n), hlc(baseWall+int64(n), 0, "c1"), "title", "x"))
		_, head := a.pullAll(tokA, 0)
		return head
	}
	head := push(1)
	if cursor, ok := other.nextPoke(2 * time.Second); !ok || cursor != head {
		t.Fatalf("stream on the other instance: poke %q %v, want %q", cursor, ok, head)
	}
	if cursor, ok := pusher.nextPoke(300 * time.Millisecond); ok {
		t.Errorf("the pushing client's stream on the other instance was poked (cursor %q)", cursor)
	}
	if cursor, ok := bob.nextPoke(10 * time.Millisecond); ok {
		t.Errorf("another user was poked (cursor %q)", cursor)
	}

	// Cut b's feed connection; push while it is down (or reconnecting).
	c := pgConn(t, url)
	var cut int
	if err := c.QueryRow(context.Background(), `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = current_database() AND query LIKE 'LISTEN%'`).Scan(&cut); err != nil || cut != 2 {
		t.Fatalf("cut %d feed connections (%v), want 2 (one per instance)", cut, err)
	}
	head = push(2)
	if cursor, ok := other.nextPoke(5 * time.Second); !ok || cursor != head {
		t.Fatalf("after the feed was cut: poke %q %v, want %q", cursor, ok, head)
	}
	if !strings.Contains(b.logs.String(), "change feed lost") {
		t.Errorf("the lost feed was not logged:\n%s", b.logs.String())
	}
	// Reconnected: pokes flow again.
	if !eventually(5*time.Second, func() bool {
		var n int
		c.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN%'`).Scan(&n)
		return n == 2
	}) {
		t.Fatal("the feeds did not reconnect")
	}
	head = push(3)
	if cursor, ok := other.nextPoke(2 * time.Second); !ok || cursor != head {
		t.Fatalf("after reconnecting: poke %q %v, want %q", cursor, ok, head)
	}
}

// TestPostgresPushSurvivesEndedConnections ends every connection the
// instance holds (as a database restart or failover would): the next push
// is still applied, on fresh connections.
func TestPostgresPushSurvivesEndedConnections(t *testing.T) {
	url := pgtest.Database(t)
	a := newTestServerOn(t, "postgres", url, nil, nil)
	for i := range 8 { // fill the pool
		a.push(tokA, "c1", putM(t, "todos", fmt.Sprintf("t%d", i), hlc(baseWall+int64(i), 0, "c1"), "n", i))
	}
	c := pgConn(t, url)
	var ended int
	if err := c.QueryRow(context.Background(), `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid()`).Scan(&ended); err != nil || ended == 0 {
		t.Fatalf("ended %d connections: %v", ended, err)
	}
	res := a.push(tokA, "c1", putM(t, "todos", "after", hlc(baseWall+100, 0, "c1"), "n", 1))
	wantStatuses(t, res, "applied")
	if st := a.stats(userA); st.Applied != 9 {
		t.Fatalf("stats %+v", st)
	}
}
