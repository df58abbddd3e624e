package syncserver

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/ncruces/go-sqlite3/driver"
	"github.com/opfsync/opfsync/pkg/protocol"
)

// PruneVerdicts removes verdicts older than the cutoff, at most limit per
// call, across users, never one marked Keep.
func TestPruneVerdicts(t *testing.T) {
	ctx := context.Background()
	store, err := openTestDatabase(testStoreKind, newTestDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	now := time.Now()
	old := now.Add(-48 * time.Hour)
	for _, user := range []string{"u1", "u2"} {
		if err := store.Update(ctx, user, func(tx Tx) error {
			for _, v := range []Verdict{
				{MutationID: "old", At: old},
				{MutationID: "old-kept", At: old, Keep: true},
				{MutationID: "new", At: now},
			} {
				v.Status, v.ClientID, v.Collection, v.RecordID = protocol.StatusApplied, "c", "todos", "t"
				if err := tx.SaveVerdict(v); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	pruner := store.(VerdictPruner)
	cutoff := now.Add(-24 * time.Hour)
	for i, want := range []int64{1, 1, 0} {
		if n, err := pruner.PruneVerdicts(ctx, cutoff, 1); err != nil || n != want {
			t.Fatalf("prune %d: removed %d (%v), want %d", i, n, err, want)
		}
	}
	for _, user := range []string{"u1", "u2"} {
		if err := store.Update(ctx, user, func(tx Tx) error {
			for id, want := range map[string]bool{"old": false, "old-kept": true, "new": true} {
				v, ok, err := tx.Verdict(id)
				if err != nil || ok != want {
					t.Errorf("%s/%s after pruning: present %v (%v), want %v", user, id, ok, err, want)
				}
				if ok && v.Keep != (id == "old-kept") {
					t.Errorf("%s/%s: Keep %v", user, id, v.Keep)
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
}

// Through the Handler: a mutation the server re-stamped keeps its verdict
// for good; an ordinary one's can be pruned, and a retry of it is then
// applied again — changing nothing — instead of answered as a duplicate.
func TestPrunedVerdictsAndClampedMutations(t *testing.T) {
	s := newTestServer(t, nil, nil)
	now := time.Now().UnixMilli()
	ordinary := putM(t, "todos", "t1", hlc(now, 0, "c1"), "title", "mine")
	liar := putM(t, "todos", "t2", hlc(now+time.Hour.Milliseconds(), 0, "c1"), "title", "from the future")
	wantStatuses(t, s.push(tokA, "c1", ordinary, liar), "applied", "applied")
	later := patchM(t, "todos", "t1", hlc(now+1, 0, "c2"), "title", "newer")
	wantStatuses(t, s.push(tokA, "c2", later), "applied")

	n, err := s.store.(VerdictPruner).PruneVerdicts(context.Background(), time.Now().Add(time.Hour), 100)
	if err != nil || n != 2 {
		t.Fatalf("pruned %d (%v), want the 2 ordinary verdicts", n, err)
	}
	res := s.push(tokA, "c1", ordinary, liar)
	wantStatuses(t, res, "applied", "duplicate")
	if got := value(res.Results[0].Record, "title"); got != `"newer"` {
		t.Errorf("the retried, pruned mutation changed the record: title %s", got)
	}
	if got := value(res.Results[1].Record, "title"); got != `"from the future"` {
		t.Errorf("the clamped mutation's record: title %s", got)
	}
}

// A database from before verdicts.keep existed keeps every old verdict:
// whether its mutation was clamped is not known.
func TestSQLiteVerdictsFromBeforeKeepAreKept(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "v1.db")
	db, err := driver.Open("file:" + path)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`,
		sqliteMigrations[0].sql,
		`INSERT INTO schema_migrations VALUES (1, 'v1', 0)`,
		`INSERT INTO verdicts (user_id, mutation_id, status, client_id, collection, record_id, created_at) VALUES ('u', 'm', 'applied', 'c', 'todos', 't', 0)`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%.60s: %v", q, err)
		}
	}
	db.Close()
	s := openTestStore(t, path)
	if n, err := s.PruneVerdicts(ctx, time.Now(), 100); err != nil || n != 0 {
		t.Fatalf("pruned %d (%v) verdicts from before the migration", n, err)
	}
	if st, err := s.Stats(ctx, "u"); err != nil || st.Applied != 1 {
		t.Fatalf("stats %+v %v", st, err)
	}
}
