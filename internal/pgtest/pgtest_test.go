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
