package syncserver

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/opfsync/opfsync/internal/pgtest"
	"github.com/opfsync/opfsync/pkg/protocol"
)

// TestCopySQLiteToPostgres moves a server's data from SQLite to
// PostgreSQL: the new server answers every pull as the old one did, old
// cursors stay valid, retried mutations are still duplicates, and new
// changes get positions above the old ones.
func TestCopySQLiteToPostgres(t *testing.T) {
	old := newTestServerOn(t, "sqlite", filepath.Join(t.TempDir(), "old.db"), nil, nil)
	var kept []protocol.Mutation
	for i := range 30 {
		tok, user := tokA, "a"
		if i%3 == 0 {
			tok, user = tokB, "b"
		}
		m := putM(t, "todos", fmt.Sprintf("%s%d", user, i%7), hlc(baseWall+int64(i), 0, "c1"), "n", i, "s", "x\u00e9\u2028")
		old.push(tok, "c1", m)
		if tok == tokA {
			kept = append(kept, m)
		}
	}
	old.push(tokA, "c1", deleteM("todos", "a1", hlc(baseWall+100, 0, "c1")))
	old.push(tokA, "c1", putM(t, "bad collection!", "x", hlc(baseWall, 0, "c1"))) // a stored rejection
	wantA, cursorA := old.pullAll(tokA, 0)
	wantB, cursorB := old.pullAll(tokB, 0)
	wantStats := old.stats("")
	old.stop()

	ctx := context.Background()
	src, err := OpenSQLite(ctx, old.dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	url := pgtest.Database(t)
	dst := openPostgresTestStore(t, url)
	got, err := CopySQLiteToPostgres(ctx, src, dst)
	if err != nil || got != wantStats || got.Rejected != 1 {
		t.Fatalf("copy: %+v %v, want %+v", got, err, wantStats)
	}
	if _, err := CopySQLiteToPostgres(ctx, src, dst); !errors.Is(err, ErrNotEmpty) {
		t.Fatalf("a second copy into the same database: %v", err)
	}

	s := newTestServerOn(t, "postgres", url, nil, nil)
	gotA, curA := s.pullAll(tokA, 0)
	gotB, curB := s.pullAll(tokB, 0)
	if fmt.Sprint(gotA) != fmt.Sprint(wantA) || fmt.Sprint(gotB) != fmt.Sprint(wantB) || curA != cursorA || curB != cursorB {
		t.Fatalf("pulls differ after the copy:\n%v %s\n%v %s", gotA, curA, wantA, cursorA)
	}
	// A client's cursor from the old server is still valid: nothing new.
	if p := s.pull(tokA, cursorA, 0); len(p.Changes) != 0 || p.Cursor != cursorA {
		t.Fatalf("pull from the old cursor: %+v", p)
	}
	// A retried mutation is still a duplicate; a new change comes after.
	wantStatuses(t, s.push(tokA, "c1", kept[0]), "duplicate")
	s.push(tokA, "c2", putM(t, "todos", "new", hlc(baseWall+200, 0, "c2"), "n", 1))
	p := s.pull(tokA, cursorA, 0)
	if len(p.Changes) != 1 || p.Changes[0].ID != "new" {
		t.Fatalf("the change after the copy, pulled from the old cursor: %+v", p)
	}
}
