// Package vfstest holds the SQL helpers the browser VFSes' tests share:
// connections with the engine's pragmas, and a random-transaction workload
// checked against a model of what the table must hold.
package vfstest

import (
	"bytes"
	crand "crypto/rand"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/ncruces/go-sqlite3"
	"github.com/ncruces/go-sqlite3/vfs"
)

// EnginePragmas are the pragmas syncengine sets on a file database.
var EnginePragmas = []string{
	"PRAGMA locking_mode=EXCLUSIVE",
	"PRAGMA temp_store=MEMORY",
	"PRAGMA cache_size=-16384",
	"PRAGMA journal_mode=WAL",
	"PRAGMA synchronous=FULL",
}

// OpenConn opens an SQLite connection on uri with pragmas (closed by the
// caller) and checks that
// a journal_mode pragma got the mode it asked for.
func OpenConn(t testing.TB, uri string, pragmas ...string) *sqlite3.Conn {
	t.Helper()
	conn, err := sqlite3.Open(uri)
	if err != nil {
		t.Fatalf("sqlite3.Open(%s): %v", uri, err)
	}
	for _, p := range pragmas {
		if mode, ok := strings.CutPrefix(p, "PRAGMA journal_mode="); ok {
			if got := QueryText(t, conn, p); !strings.EqualFold(got, mode) {
				conn.Close()
				t.Fatalf("%s answered %q", p, got)
			}
			continue
		}
		if err := conn.Exec(p); err != nil {
			conn.Close()
			t.Fatalf("%s: %v", p, err)
		}
	}
	return conn
}

// QueryText returns the first column of the first row sql returns ("" for
// no row); an error fails the test.
func QueryText(t testing.TB, conn *sqlite3.Conn, sql string) string {
	t.Helper()
	st, _, err := conn.Prepare(sql)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	defer st.Close()
	if !st.Step() {
		if err := st.Err(); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		return ""
	}
	return st.ColumnText(0)
}

// Exec runs sql; an error fails the test.
func Exec(t testing.TB, conn *sqlite3.Conn, sql string) {
	t.Helper()
	if err := conn.Exec(sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// Model is what the table kv(k INTEGER PRIMARY KEY, v BLOB) must hold.
type Model map[int64][]byte

// CheckModel fails the test unless integrity_check is ok and kv holds
// exactly want.
func CheckModel(t testing.TB, conn *sqlite3.Conn, want Model) {
	t.Helper()
	if ok := QueryText(t, conn, "PRAGMA integrity_check"); ok != "ok" {
		t.Fatalf("integrity_check: %s", ok)
	}
	st, _, err := conn.Prepare("SELECT k, v FROM kv ORDER BY k")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	got := Model{}
	for st.Step() {
		got[st.ColumnInt64(0)] = st.ColumnBlob(1, nil)
	}
	if err := st.Err(); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("table has %d rows, model %d", len(got), len(want))
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || !bytes.Equal(g, v) {
			t.Fatalf("row %d: got %d bytes (present %v), want %d bytes", k, len(g), ok, len(v))
		}
	}
}

// RandomValue returns random bytes: mostly small, some overflowing a page.
func RandomValue(rng *rand.Rand) []byte {
	// Mostly small rows, some that overflow a 4 KiB page.
	n := rng.IntN(300)
	if rng.IntN(8) == 0 {
		n = 3000 + rng.IntN(9000)
	}
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.IntN(256))
	}
	return b
}

// RunRandomTransactions applies n random transactions (inserts, updates,
// deletes; one in ten rolled back; the odd checkpoint and VACUUM) to both
// conn and m.
func RunRandomTransactions(t testing.TB, conn *sqlite3.Conn, m Model, rng *rand.Rand, n int) {
	t.Helper()
	ins, _, err := conn.Prepare("INSERT INTO kv (k, v) VALUES (?, ?)")
	if err != nil {
		t.Fatal(err)
	}
	defer ins.Close()
	upd, _, _ := conn.Prepare("UPDATE kv SET v = ? WHERE k = ?")
	defer upd.Close()
	del, _, _ := conn.Prepare("DELETE FROM kv WHERE k = ?")
	defer del.Close()
	nextKey := int64(len(m) + 1)
	for k := range m {
		nextKey = max(nextKey, k+1)
	}
	for i := range n {
		Exec(t, conn, "BEGIN IMMEDIATE")
		txn := maps.Clone(m)
		for range 1 + rng.IntN(12) {
			keys := slices.Collect(maps.Keys(txn))
			switch op := rng.IntN(10); {
			case op < 5 || len(keys) == 0:
				v := RandomValue(rng)
				ins.BindInt64(1, nextKey)
				ins.BindBlob(2, v)
				if err := ins.Exec(); err != nil {
					t.Fatalf("txn %d insert: %v", i, err)
				}
				txn[nextKey] = v
				nextKey++
			case op < 8:
				k := keys[rng.IntN(len(keys))]
				v := RandomValue(rng)
				upd.BindBlob(1, v)
				upd.BindInt64(2, k)
				if err := upd.Exec(); err != nil {
					t.Fatalf("txn %d update: %v", i, err)
				}
				txn[k] = v
			default:
				k := keys[rng.IntN(len(keys))]
				del.BindInt64(1, k)
				if err := del.Exec(); err != nil {
					t.Fatalf("txn %d delete: %v", i, err)
				}
				delete(txn, k)
			}
		}
		if rng.IntN(10) == 0 {
			Exec(t, conn, "ROLLBACK")
		} else {
			Exec(t, conn, "COMMIT")
			clear(m)
			maps.Copy(m, txn)
		}
		switch {
		case i%97 == 96:
			Exec(t, conn, "PRAGMA wal_checkpoint(TRUNCATE)")
		case i == n/2:
			Exec(t, conn, "VACUUM") // rewrites and shrinks the file
		}
	}
}

// TestName returns a database name unique to this test run.
func TestName(t testing.TB) string {
	n := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())
	return n + "-" + crand.Text()[:8] + ".db"
}

// RawFile opens path+suffix through the registered VFS vfsName, as SQLite
// would (read-write, created if needed), closed after the test.
func RawFile(t testing.TB, vfsName, path, suffix string, flags vfs.OpenFlag) vfs.File {
	t.Helper()
	v := vfs.Find(vfsName)
	if v == nil {
		t.Fatalf("VFS %q not registered", vfsName)
	}
	f, _, err := v.Open(path+suffix, flags|vfs.OPEN_READWRITE|vfs.OPEN_CREATE)
	if err != nil {
		t.Fatalf("open %s%s: %v", path, suffix, err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}
