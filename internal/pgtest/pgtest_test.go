package pgtest

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

// Each test database is a real, separate, empty PostgreSQL database.
func TestDatabasesAreRealAndSeparate(t *testing.T) {
	ctx := context.Background()
	a, b := Database(t), Database(t)
	if a == b {
		t.Fatalf("two tests got the same database %s", a)
	}
	ca, err := pgx.Connect(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close(ctx)
	cb, err := pgx.Connect(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	defer cb.Close(ctx)
	var v string
	if err := ca.QueryRow(ctx, "SELECT version()").Scan(&v); err != nil || !strings.HasPrefix(v, "PostgreSQL ") {
		t.Fatalf("version %q %v", v, err)
	}
	if _, err := ca.Exec(ctx, "CREATE TABLE only_in_a (x int); INSERT INTO only_in_a VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := ca.QueryRow(ctx, "SELECT count(*) FROM only_in_a").Scan(&n); err != nil || n != 1 {
		t.Fatalf("count %d %v", n, err)
	}
	if _, err := cb.Exec(ctx, "SELECT 1 FROM only_in_a"); err == nil {
		t.Fatal("database b sees a's table")
	}
	t.Logf("%s", v)
}

// StartWith starts a cluster of its own with the options given, and
// CreateDatabase refuses a name that would need quoting.
func TestStartWithFsync(t *testing.T) {
	ctx := context.Background()
	s, err := StartWith(Options{Fsync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	if s.Pid() <= 0 {
		t.Fatalf("pid %d", s.Pid())
	}
	if _, err := s.CreateDatabase(ctx, "x; DROP DATABASE postgres"); err == nil {
		t.Fatal("CreateDatabase took a name that needs quoting")
	}
	url, err := s.CreateDatabase(ctx, "soak_1")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var fsync string
	if err := conn.QueryRow(ctx, "SHOW fsync").Scan(&fsync); err != nil || fsync != "on" {
		t.Fatalf("fsync %q %v, want on", fsync, err)
	}
}
