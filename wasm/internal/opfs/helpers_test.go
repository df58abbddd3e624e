//go:build js && wasm

package opfs

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"testing"
	"time"

	"github.com/hack-pad/safejs"
	"github.com/ncruces/go-sqlite3"
	"github.com/ncruces/go-sqlite3/vfs"
	"github.com/opfsync/opfsync/wasm/internal/jsutil"
	"github.com/opfsync/opfsync/wasm/internal/vfskit/vfstest"
)

// The tests run in a dedicated worker of headless Chromium through
// tests/wasmexec/go_js_wasm_chromium_exec (make test-wasm-browser), which
// defines globalThis.goRunner. Anywhere else (Node's go_js_wasm_exec) they
// skip: there is no OPFS there.

const testDir = "opfsync-test"

var inBrowserRunner = vfstest.InBrowserRunner

func requireOPFS(t testing.TB) {
	t.Helper()
	if !inBrowserRunner() {
		t.Skip("needs OPFS: run in Chromium with -exec=tests/wasmexec/go_js_wasm_chromium_exec")
	}
}

var testName = vfstest.TestName

// openTestDB opens a fresh database and closes and deletes it after the
// test.
func openTestDB(t testing.TB) (*DB, string) {
	t.Helper()
	requireOPFS(t)
	name := testName(t)
	db, err := Open(context.Background(), testDir, name)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		db.Close()
		if err := Delete(context.Background(), testDir, name); err != nil {
			t.Errorf("Delete: %v", err)
		}
	})
	return db, name
}

// reopen closes db and opens the same database again (closed after the
// test).
func reopen(t testing.TB, db *DB) *DB {
	t.Helper()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := Open(context.Background(), db.dir, db.name)
	if err != nil {
		t.Fatalf("re-open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// rawFile opens one of db's files through its VFS, as SQLite would.
func rawFile(t testing.TB, db *DB, suffix string, flags vfs.OpenFlag) vfs.File {
	t.Helper()
	return vfstest.RawFile(t, db.VFSName(), db.Path(), suffix, flags)
}

// The SQL helpers shared with the IndexedDB VFS's tests (vfstest).
var (
	enginePragmas         = vfstest.EnginePragmas
	queryText             = vfstest.QueryText
	exec                  = vfstest.Exec
	checkModel            = vfstest.CheckModel
	runRandomTransactions = vfstest.RunRandomTransactions
)

type model = vfstest.Model

func openConn(t testing.TB, db *DB, pragmas ...string) *sqlite3.Conn {
	t.Helper()
	return vfstest.OpenConn(t, db.URI(), pragmas...)
}

// jsCalls returns opfsyncIO.calls[name].
func jsCalls(t testing.TB, name string) int64 {
	t.Helper()
	io, _ := safejs.Global().Get("opfsyncIO")
	calls, _ := io.Get("calls")
	v, err := calls.Get(name)
	if err != nil {
		t.Fatal(err)
	}
	n, err := v.Int()
	if err != nil {
		t.Fatal(err)
	}
	return int64(n)
}

// exists reports whether dir/name is an OPFS file.
func exists(t testing.TB, dir, name string) bool {
	t.Helper()
	ctx := context.Background()
	d, err := openDir(ctx, dir, false)
	if jsutil.ErrorName(err) == "NotFoundError" {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	opts, _ := safejs.ValueOf(map[string]any{"create": false})
	_, err = jsutil.CallAwait(ctx, d, "getFileHandle", nil, name, opts)
	switch jsutil.ErrorName(err) {
	case "":
		return true
	case "NotFoundError":
		return false
	}
	t.Fatal(err)
	return false
}

// withGlobalRemoved runs fn with the JS property obj.prop deleted, then
// restores it.
func withGlobalRemoved(t testing.TB, path string, fn func()) {
	t.Helper()
	parts := strings.Split(path, ".")
	obj := safejs.Global()
	for _, p := range parts[:len(parts)-1] {
		var err error
		if obj, err = obj.Get(p); err != nil {
			t.Fatal(err)
		}
	}
	prop := parts[len(parts)-1]
	saved, err := obj.Get(prop)
	if err != nil {
		t.Fatal(err)
	}
	if err := obj.Set(prop, safejs.Undefined()); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := obj.Set(prop, saved); err != nil {
			t.Fatal(err)
		}
	}()
	fn()
}

// sqliteCode returns the primary SQLite result code in err's chain.
func sqliteCode(err error) sqlite3.ErrorCode {
	var rc sqlite3.ErrorCode
	if errors.As(err, &rc) {
		return rc
	}
	return 0
}

func since(t0 time.Time) string { return time.Since(t0).Round(10 * time.Microsecond).String() }

// tableHash hashes every row sql returns (columns as text or blob).
func tableHash(t testing.TB, conn *sqlite3.Conn, sql string) string {
	t.Helper()
	st, _, err := conn.Prepare(sql)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	defer st.Close()
	h := fnv.New128a()
	rows := 0
	for st.Step() {
		rows++
		for c := range st.ColumnCount() {
			b := st.ColumnRawBlob(c)
			fmt.Fprintf(h, "%d:", len(b))
			h.Write(b)
		}
	}
	if err := st.Err(); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return fmt.Sprintf("%d rows %x", rows, h.Sum(nil))
}
