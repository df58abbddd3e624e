//go:build js && wasm

package idb

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hack-pad/safejs"
	"github.com/ncruces/go-sqlite3"
	"github.com/ncruces/go-sqlite3/vfs"
	"github.com/opfsync/opfsync/pkg/syncengine"
	"github.com/opfsync/opfsync/wasm/internal/jsutil"
	"github.com/opfsync/opfsync/wasm/internal/vfskit"
	"github.com/opfsync/opfsync/wasm/internal/vfskit/vfstest"
)

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7) + seed
	}
	return b
}

func readAll(t testing.TB, f vfs.File, n int, off int64) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, off); err != nil && err != io.EOF {
		t.Fatalf("read %d at %d: %v", n, off, err)
	}
	return b
}

// Writes at unaligned offsets across blocks read back before and after a
// sync and a re-open; a short read past the end is zero-filled io.EOF;
// truncation drops what was past the end, also in IndexedDB.
func TestReadWriteTruncatePersist(t *testing.T) {
	smallCache(t)
	db, name := openTestDB(t)
	f := rawFile(t, db, "", vfs.OPEN_MAIN_DB)
	a := pattern(3*blockSize+123, 1) // spans four blocks
	if n, err := f.WriteAt(a, 5000); err != nil || n != len(a) {
		t.Fatalf("write: %d, %v", n, err)
	}
	if got := readAll(t, f, len(a), 5000); !bytes.Equal(got, a) {
		t.Fatal("read before sync differs")
	}
	if head := readAll(t, f, 5000, 0); !bytes.Equal(head, make([]byte, 5000)) {
		t.Fatal("the hole before the first write is not zeros")
	}
	size := int64(5000 + len(a))
	b := make([]byte, 100)
	if n, err := f.ReadAt(b, size-40); err != io.EOF || n != 40 || !bytes.Equal(b[40:], make([]byte, 60)) {
		t.Fatalf("short read: %d, %v", n, err)
	}
	if err := f.Sync(vfs.SYNC_FULL); err != nil {
		t.Fatal(err)
	}
	f.Close()

	db = reopen(t, db, name)
	f = rawFile(t, db, "", vfs.OPEN_MAIN_DB)
	if s, _ := f.Size(); s != size {
		t.Fatalf("size after re-open %d, want %d", s, size)
	}
	if got := readAll(t, f, len(a), 5000); !bytes.Equal(got, a) {
		t.Fatal("read after re-open differs")
	}
	// Truncate into the middle of a block, grow again: the old bytes past
	// the cut read as zeros, in memory and after a re-open.
	cut := int64(5000 + blockSize + 10)
	if err := f.Truncate(cut); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	want := append(append([]byte{}, a[:cut-5000]...), make([]byte, size-cut)...)
	if got := readAll(t, f, len(a), 5000); !bytes.Equal(got, want) {
		t.Fatal("bytes past a truncation came back")
	}
	if err := f.Sync(vfs.SYNC_FULL); err != nil {
		t.Fatal(err)
	}
	f.Close()
	db = reopen(t, db, name)
	f = rawFile(t, db, "", vfs.OPEN_MAIN_DB)
	if got := readAll(t, f, len(a), 5000); !bytes.Equal(got, want) {
		t.Fatal("bytes past a truncation came back after re-open")
	}
}

// Nothing reaches IndexedDB before a sync, and one sync is one
// transaction however many blocks and files it carries; a crash loses
// exactly the unsynced writes.
func TestSyncIsOneTransactionAndUnsyncedIsLost(t *testing.T) {
	db, name := openTestDB(t)
	main := rawFile(t, db, "", vfs.OPEN_MAIN_DB)
	wal := rawFile(t, db, "-wal", vfs.OPEN_WAL)
	commits := db.stats.commits
	if _, err := main.WriteAt(pattern(10*blockSize, 2), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := wal.WriteAt(pattern(3000, 3), 0); err != nil {
		t.Fatal(err)
	}
	if db.stats.commits != commits {
		t.Fatal("a write reached IndexedDB before the sync")
	}
	if err := wal.Sync(vfs.SYNC_FULL); err != nil {
		t.Fatal(err)
	}
	if db.stats.commits != commits+1 {
		t.Fatalf("one sync of two files made %d transactions", db.stats.commits-commits)
	}
	if err := main.Sync(vfs.SYNC_FULL); err != nil || db.stats.commits != commits+1 {
		t.Fatalf("a sync with nothing new wrote again (%v)", err)
	}
	if _, err := main.WriteAt(pattern(100, 9), 20); err != nil { // never synced
		t.Fatal(err)
	}
	main.Close()
	wal.Close()
	crash(db)

	db = openAgain(t, name)
	main = rawFile(t, db, "", vfs.OPEN_MAIN_DB)
	if got := readAll(t, main, 10*blockSize, 0); !bytes.Equal(got, pattern(10*blockSize, 2)) {
		t.Fatal("after a crash the main file is not what the last sync stored")
	}
	wal = rawFile(t, db, "-wal", vfs.OPEN_WAL)
	if s, _ := wal.Size(); s != 3000 {
		t.Fatalf("WAL size after a crash %d, want 3000", s)
	}
}

// SQLite on the VFS with the engine's pragmas: integrity under many random
// transactions (checkpoints, a VACUUM, rollbacks), with a cache so small
// that reads keep going to IndexedDB, and again after a re-open.
func TestRandomTransactionsKeepIntegrity(t *testing.T) {
	smallCache(t)
	db, name := openTestDB(t)
	conn := openConn(t, db, vfstest.EnginePragmas...)
	vfstest.Exec(t, conn, "PRAGMA cache_size=20")
	vfstest.Exec(t, conn, "CREATE TABLE kv (k INTEGER PRIMARY KEY, v BLOB NOT NULL)")
	m := vfstest.Model{}
	rng := rand.New(rand.NewPCG(3, 4))
	vfstest.RunRandomTransactions(t, conn, m, rng, 120)
	vfstest.CheckModel(t, conn, m)
	if db.stats.loads == 0 {
		t.Error("the small cache never loaded a block from IndexedDB")
	}
	conn.Close()
	db = reopen(t, db, name)
	conn = openConn(t, db, vfstest.EnginePragmas...)
	defer conn.Close()
	vfstest.CheckModel(t, conn, m)
}

// A worker that dies in the middle of a big transaction (frames in the WAL
// without a commit, spilled from a tiny page cache) leaves exactly the
// committed transactions.
func TestCrashRecovery(t *testing.T) {
	db, name := openTestDB(t)
	conn := openConn(t, db, vfstest.EnginePragmas...)
	vfstest.Exec(t, conn, "PRAGMA cache_size=10")
	vfstest.Exec(t, conn, "CREATE TABLE kv (k INTEGER PRIMARY KEY, v BLOB NOT NULL)")
	m := vfstest.Model{}
	rng := rand.New(rand.NewPCG(7, 8))
	vfstest.RunRandomTransactions(t, conn, m, rng, 40)
	vfstest.Exec(t, conn, "BEGIN IMMEDIATE")
	for i := range 200 {
		vfstest.Exec(t, conn, "INSERT INTO kv VALUES ("+strconv.Itoa(1_000_000+i)+", randomblob(3000))")
	}
	vfstest.Exec(t, conn, "UPDATE kv SET v = zeroblob(100) WHERE k < 1000000")
	if s := db.files[vfskit.WAL].size; s < 600_000 {
		t.Fatalf("the uncommitted transaction did not reach the WAL (%d bytes)", s)
	}
	// Make the spilled frames reach IndexedDB too (a sync of another
	// commit would), then die.
	db.mu.Lock()
	err := db.flush()
	db.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	crash(db)
	conn.Close() // its rollback fails: the storage is gone

	db = openAgain(t, name)
	conn = openConn(t, db, vfstest.EnginePragmas...)
	defer conn.Close()
	vfstest.CheckModel(t, conn, m)
}

// Inside one worker, a second connection on the same DB gets BUSY; a
// second Open, in this context or any other, gets ErrLocked (the Web
// Lock), which the engine calls LOCKED; Delete of an open database too.
func TestLocked(t *testing.T) {
	ctx := context.Background()
	db, name := openTestDB(t)
	c1 := openConn(t, db, vfstest.EnginePragmas...)
	defer c1.Close()
	vfstest.Exec(t, c1, "CREATE TABLE t (x); INSERT INTO t VALUES (1)")
	c2, err := sqlite3.Open(db.URI())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if err := c2.Exec("PRAGMA locking_mode=EXCLUSIVE; SELECT * FROM t"); !errors.Is(err, sqlite3.BUSY) {
		t.Fatalf("second connection: %v, want BUSY", err)
	}
	if _, err := Open(ctx, testDir, name); !errors.Is(err, ErrLocked) || syncengine.CodeOf(err) != syncengine.CodeLocked {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
	if err := Delete(ctx, testDir, name); !errors.Is(err, ErrLocked) {
		t.Fatalf("Delete while open: %v, want ErrLocked", err)
	}
}

// holdTransaction keeps an IndexedDB transaction of mode on object store
// of IndexedDB database idbName running, outside the Web Lock, as WebKit
// does with the transaction of a worker terminated mid-commit or mid-read;
// the returned function ends it and waits until it completed.
func holdTransaction(t *testing.T, idbName, store, mode string) (end func()) {
	t.Helper()
	fn, _ := safejs.Global().Get("Function")
	mk, err := fn.New(`return { hold: (name, store, mode) => new Promise((resolve, reject) => {
		const r = indexedDB.open(name);
		r.onerror = () => reject(r.error);
		r.onsuccess = () => {
			const db = r.result;
			const tx = db.transaction(store, mode);
			const os = tx.objectStore(store);
			let stop = false;
			const spin = () => { if (!stop) os.count().onsuccess = spin; };
			spin();
			const completed = new Promise((done) => tx.addEventListener('complete', () => { db.close(); done(); }));
			resolve({ end: () => { stop = true; return completed; } });
		};
	}) }`)
	var holder, h safejs.Value
	if err == nil {
		h, err = mk.Invoke()
	}
	if err == nil {
		holder, err = jsutil.CallAwait(context.Background(), h, "hold", nil, idbName, store, mode)
	}
	if err != nil {
		t.Fatal(err)
	}
	var once bool
	end = func() {
		if once {
			return
		}
		once = true
		if _, err := jsutil.CallAwait(context.Background(), holder, "end", nil); err != nil {
			t.Error(err)
		}
	}
	t.Cleanup(end)
	return end
}

// A transaction outside the Web Lock that never ends (WebKit's leftover of
// a worker terminated mid-commit, or mid-read: that one would block only
// writes) makes Open fail after stallTimeout with ErrStalled, a LOCKED
// error, instead of hanging; the Web Lock is released again, and once the
// transaction ended the database opens with its data.
func TestOpenStalledByAForeignTransactionFailsAndKeepsTheData(t *testing.T) {
	for _, held := range []struct{ store, mode string }{{"files", "readwrite"}, {"blocks", "readonly"}} {
		t.Run(held.store+"-"+held.mode, func(t *testing.T) { testOpenStalled(t, held.store, held.mode) })
	}
}

func testOpenStalled(t *testing.T, store, mode string) {
	ctx := context.Background()
	db, name := openTestDB(t)
	c := openConn(t, db, vfstest.EnginePragmas...)
	vfstest.Exec(t, c, "CREATE TABLE t (x); INSERT INTO t VALUES ('kept')")
	c.Close()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	saved := stallTimeout
	stallTimeout = 300 * time.Millisecond
	t.Cleanup(func() { stallTimeout = saved })

	end := holdTransaction(t, idbName(testDir, name), store, mode)
	for attempt := range 2 { // the second finds the Web Lock free again
		start := time.Now()
		_, err := Open(ctx, testDir, name)
		if !errors.Is(err, ErrStalled) || !errors.Is(err, ErrLocked) || syncengine.CodeOf(err) != syncengine.CodeLocked {
			t.Fatalf("Open %d while a foreign transaction holds the database: %v, want ErrStalled (LOCKED)", attempt, err)
		}
		if waited := time.Since(start); waited < stallTimeout {
			t.Fatalf("Open %d failed after %v, before stallTimeout", attempt, waited)
		}
	}
	end()
	db = openAgain(t, name)
	c = openConn(t, db, vfstest.EnginePragmas...)
	defer c.Close()
	if got := vfstest.QueryText(t, c, "SELECT x FROM t"); got != "kept" {
		t.Fatalf("after the transaction ended: %q, want kept", got)
	}
}

func TestExistsAndDelete(t *testing.T) {
	requireIDB(t)
	ctx := context.Background()
	name := testName(t)
	if ok, err := Exists(ctx, testDir, name); err != nil || ok {
		t.Fatalf("Exists before Open: %v, %v", ok, err)
	}
	if ok, _ := Exists(ctx, testDir, name); ok {
		t.Fatal("Exists created the database")
	}
	db, err := Open(ctx, testDir, name)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if ok, err := Exists(ctx, testDir, name); err != nil || !ok {
		t.Fatalf("Exists after Open: %v, %v", ok, err)
	}
	if err := Delete(ctx, testDir, name); err != nil {
		t.Fatal(err)
	}
	if ok, _ := Exists(ctx, testDir, name); ok {
		t.Fatal("Exists after Delete")
	}
	if err := Delete(ctx, testDir, name); err != nil {
		t.Fatalf("deleting a missing database: %v", err)
	}
	for _, bad := range []string{"", "..", "a/b"} {
		if _, err := Open(ctx, testDir, bad); err == nil {
			t.Errorf("Open(%q) succeeded", bad)
		}
	}
}

// A failed IndexedDB transaction (here: the connection closed behind
// SQLite's back, InvalidStateError) fails the commit with SQLITE_IOERR
// naming the JS error, stores nothing, and keeps the changes pending: once
// IndexedDB works again the next commit stores them, and the database
// holds exactly the committed transactions.
func TestFailedTransactionKeepsTheDatabase(t *testing.T) {
	db, name := openTestDB(t)
	conn := openConn(t, db, vfstest.EnginePragmas...)
	defer conn.Close()
	vfstest.Exec(t, conn, "CREATE TABLE kv (k INTEGER PRIMARY KEY, v BLOB NOT NULL)")
	m := vfstest.Model{}
	rng := rand.New(rand.NewPCG(9, 10))
	vfstest.RunRandomTransactions(t, conn, m, rng, 20)

	db.js.close(db.conn)
	err := conn.Exec("INSERT INTO kv VALUES (-1, x'00')")
	if !errors.Is(err, sqlite3.IOERR) || !strings.Contains(err.Error(), "InvalidStateError") {
		t.Fatalf("commit on a closed IndexedDB connection: %v, want IOERR naming InvalidStateError", err)
	}
	conn.Exec("ROLLBACK") // SQLite may already have rolled back
	c, err := db.js.await("open", db.idbName)
	if err != nil {
		t.Fatal(err)
	}
	db.conn = c
	vfstest.RunRandomTransactions(t, conn, m, rng, 10)
	vfstest.CheckModel(t, conn, m)
	conn.Close()
	db = reopen(t, db, name)
	conn = openConn(t, db, vfstest.EnginePragmas...)
	defer conn.Close()
	vfstest.CheckModel(t, conn, m)
}

// withFailingCommits makes every IndexedDB commit fail as a full disk or
// quota makes it fail (the transaction aborts with QuotaExceededError)
// until the returned function restores it. Chromium's IndexedDB does not
// follow the CDP quota override the OPFS quota tests use (measured: it
// failed only after 88-112 MB more, 75-90 s), so the failure is injected
// at the one JS call the VFS makes.
func withFailingCommits(t testing.TB) (restore func()) {
	t.Helper()
	helpers, _ := safejs.Global().Get("opfsyncIDB")
	saved, _ := helpers.Get("commit")
	fn, _ := safejs.Global().Get("Function")
	failing, err := fn.New("return () => Promise.reject(new DOMException('the quota is exhausted', 'QuotaExceededError'))")
	if err == nil {
		failing, err = failing.Invoke()
	}
	if err == nil {
		err = helpers.Set("commit", failing)
	}
	if err != nil {
		t.Fatal(err)
	}
	restore = func() { helpers.Set("commit", saved) }
	t.Cleanup(restore)
	return restore
}

// A full disk or quota is SQLITE_FULL, which the engine reports as STORAGE
// "storage is full"; the refused write is not visible, and once there is
// room the same engine goes on and keeps everything after a re-open.
func TestQuotaExceededIsFull(t *testing.T) {
	ctx := context.Background()
	db, name := openTestDB(t)
	eng, err := syncengine.Open(ctx, syncengine.Options{Path: db.Path(), VFS: db.VFSName(), Schema: notesSchema})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := eng.Put(ctx, "notes", syncengine.Record{"id": "first", "body": "kept"}); err != nil {
		t.Fatal(err)
	}
	restore := withFailingCommits(t)
	_, putErr := eng.Put(ctx, "notes", syncengine.Record{"id": "refused", "body": "x"})
	if code := syncengine.CodeOf(putErr); code != syncengine.CodeStorage || !strings.Contains(putErr.Error(), "storage is full") {
		t.Fatalf("put on a full disk: %v (code %s), want STORAGE, storage is full", putErr, code)
	}
	if rec, err := eng.Get(ctx, "notes", "refused"); err != nil || rec != nil {
		t.Fatalf("the refused put is visible: %v, %v", rec, err)
	}
	restore()
	if _, err := eng.Put(ctx, "notes", syncengine.Record{"id": "after", "body": "ok"}); err != nil {
		t.Fatalf("put after room came back: %v", err)
	}
	eng.Close()
	db = reopen(t, db, name)
	eng, err = syncengine.Open(ctx, syncengine.Options{Path: db.Path(), VFS: db.VFSName(), Schema: notesSchema})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	for id, want := range map[string]bool{"first": true, "refused": false, "after": true} {
		if rec, err := eng.Get(ctx, "notes", id); err != nil || (rec != nil) != want {
			t.Errorf("after re-open, %s: %v, %v (want present %v)", id, rec, err, want)
		}
	}
	if n, err := eng.PendingCount(ctx); err != nil || n != 2 {
		t.Errorf("outbox after re-open: %d, %v; want 2", n, err)
	}
}
