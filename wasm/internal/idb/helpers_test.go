//go:build js && wasm

package idb

import (
	"context"
	"testing"

	"github.com/ncruces/go-sqlite3"
	"github.com/ncruces/go-sqlite3/vfs"
	"github.com/opfsync/opfsync/wasm/internal/vfskit/vfstest"
)

// The tests run in a dedicated worker of headless Chromium through
// tests/wasmexec/go_js_wasm_chromium_exec (make test-wasm-browser), on real
// IndexedDB. Under Node there is no IndexedDB: they skip.

const testDir = "opfsync-test"

func requireIDB(t testing.TB) {
	t.Helper()
	if !vfstest.InBrowserRunner() {
		t.Skip("needs IndexedDB: run in Chromium with -exec=tests/wasmexec/go_js_wasm_chromium_exec")
	}
}

var testName = vfstest.TestName

// openTestDB opens a fresh database, closed and deleted after the test.
func openTestDB(t testing.TB) (*DB, string) {
	t.Helper()
	requireIDB(t)
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

// reopen closes db (storing what is unsynced) and opens it again.
func reopen(t testing.TB, db *DB, name string) *DB {
	t.Helper()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return openAgain(t, name)
}

func openAgain(t testing.TB, name string) *DB {
	t.Helper()
	db, err := Open(context.Background(), testDir, name)
	if err != nil {
		t.Fatalf("re-open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// crash drops db the way a dying worker does: what was not synced is gone,
// the IndexedDB connection and the Web Lock are released, and SQLite's
// later I/O on it fails.
func crash(db *DB) {
	db.mu.Lock()
	defer db.mu.Unlock()
	db.closed = true
	db.js.close(db.conn)
	db.unlock()
}

// rawFile opens one of db's files through its VFS, as SQLite would.
func rawFile(t testing.TB, db *DB, suffix string, flags vfs.OpenFlag) vfs.File {
	t.Helper()
	return vfstest.RawFile(t, db.VFSName(), db.Path(), suffix, flags)
}

func openConn(t testing.TB, db *DB, pragmas ...string) *sqlite3.Conn {
	t.Helper()
	return vfstest.OpenConn(t, db.URI(), pragmas...)
}

// smallCache makes every read past a few blocks go to IndexedDB, for the
// test's duration.
func smallCache(t testing.TB) {
	savedAhead, savedClean := readAhead, maxClean
	readAhead, maxClean = 2, 8
	t.Cleanup(func() { readAhead, maxClean = savedAhead, savedClean })
}
