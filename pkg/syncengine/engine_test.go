package syncengine

import (
	"context"
	"testing"
)

func TestOpenCreatesEngineTablesAndKeepsClientID(t *testing.T) {
	te := openTest(t, testSchema())
	id := te.ClientID()
	if id == "" {
		t.Fatal("no client id")
	}
	rows := te.query(`SELECT version, name FROM schema_migrations ORDER BY version`)
	if len(rows) != len(engineMigrations) || rows[0]["version"] != int64(1) {
		t.Fatalf("schema_migrations = %v", rows)
	}
	te.reopen(testSchema())
	if te.ClientID() != id {
		t.Fatalf("client id changed across reopen: %s → %s", id, te.ClientID())
	}
	rows = te.query(`SELECT count(*) AS n FROM schema_migrations`)
	if rows[0]["n"] != int64(len(engineMigrations)) {
		t.Fatalf("migrations re-applied: %v", rows)
	}
}

func TestOpenRefusesNewerEngineSchema(t *testing.T) {
	te := openTest(t, testSchema())
	err := te.call(context.Background(), func() error {
		return te.stmts.exec(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, 'from the future', 0)`)
	})
	if err != nil {
		t.Fatal(err)
	}
	te.Close()
	_, err = Open(context.Background(), Options{Path: te.path, VFS: te.vfs, Schema: testSchema()})
	wantCode(t, err, CodeSchema)
}

func TestSecondOpenFailsFastWithLocked(t *testing.T) {
	te := openTest(t, testSchema())
	te.put("todos", Record{"id": "a", "title": "x"})
	_, err := Open(context.Background(), Options{Path: te.path, VFS: te.vfs, Schema: testSchema()})
	wantCode(t, err, CodeLocked)
	// The first connection is unharmed.
	if got := te.get("todos", "a"); got["title"] != "x" {
		t.Fatalf("after the refused second open: %v", got)
	}
}

func TestJournalModeIsWALOnFiles(t *testing.T) {
	te := openTest(t, testSchema())
	if te.vfs == "" && te.JournalMode() != "wal" {
		t.Fatalf("journal mode %q, want wal", te.JournalMode())
	}
}

func TestCallsAfterCloseFailWithClosed(t *testing.T) {
	te := openTest(t, testSchema())
	if err := te.Close(); err != nil {
		t.Fatal(err)
	}
	if err := te.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	ctx := context.Background()
	_, err := te.Put(ctx, "todos", Record{"id": "a"})
	wantCode(t, err, CodeClosed)
	_, err = te.Get(ctx, "todos", "a")
	wantCode(t, err, CodeClosed)
	_, err = te.Query(ctx, "SELECT 1")
	wantCode(t, err, CodeClosed)
}

func TestWritesSurviveReopen(t *testing.T) {
	te := openTest(t, testSchema())
	te.put("todos", Record{"id": "a", "title": "one", "rank": 1})
	te.put("todos", Record{"id": "b", "title": "two", "rank": 2})
	te.patch("todos", "a", Record{"done": true})
	te.del("todos", "b")
	v, _ := te.Version(context.Background())
	te.reopen(testSchema())
	if got := te.get("todos", "a"); got["done"] != true || got["title"] != "one" {
		t.Fatalf("a after reopen: %v", got)
	}
	if got := te.get("todos", "b"); got != nil {
		t.Fatalf("deleted b after reopen: %v", got)
	}
	if v2, _ := te.Version(context.Background()); v2 != v {
		t.Fatalf("mutation version %d after reopen, want %d", v2, v)
	}
	if n := len(te.pending()); n != 4 {
		t.Fatalf("outbox holds %d mutations, want 4", n)
	}
	// The clock persisted: a new write stamps after every earlier one even
	// if the wall clock went back.
	te.clock.Advance(-24 * 3600 * 1e9)
	te.patch("todos", "a", Record{"title": "later"})
	ms := te.pending()
	last := ms[len(ms)-1].HLC
	for _, m := range ms[:len(ms)-1] {
		if !last.After(m.HLC) {
			t.Fatalf("stamp %s after the clock went back is not newer than %s", last, m.HLC)
		}
	}
	verifyVisible(t, te.Engine)
}

func TestInspect(t *testing.T) {
	te := openTest(t, testSchema())
	te.put("todos", Record{"id": "a", "title": "x"})
	te.put("todos", Record{"id": "b"})
	te.del("todos", "b")
	if _, err := te.Migrate(context.Background(), Migration{Key: "legacy", Collection: "notes", Items: []Record{{"id": "n"}}}); err != nil {
		t.Fatal(err)
	}
	in, err := te.Inspect(context.Background(), 2)
	if err != nil {
		t.Fatal(err)
	}
	if in.ClientID != te.ClientID() || in.Collections["todos"] != 1 || in.Collections["notes"] != 1 || in.PendingCount != 4 ||
		len(in.Pending) != 2 || in.Pending[0].ID != "a" || in.Pull.State != PullIdle || in.Migrations["legacy"] == "" || in.SchemaVersion != 1 {
		t.Fatalf("inspection %+v", in)
	}
}
