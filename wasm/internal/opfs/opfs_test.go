//go:build js && wasm

package opfs

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

	"github.com/ncruces/go-sqlite3"
	"github.com/ncruces/go-sqlite3/vfs"
)

// The VFS conformance suite. File-level tests go through the registered
// VFS exactly as SQLite does (vfs.Find(name).Open, then the vfs.File
// methods); SQLite-level tests open ncruces connections on it.

func TestOpenCreatesFilesAndRegistersVFS(t *testing.T) {
	db, name := openTestDB(t)
	for _, s := range suffixes {
		if !exists(t, testDir, name+s) {
			t.Errorf("OPFS file %s/%s%s missing after Open", testDir, name, s)
		}
	}
	if vfs.Find(db.VFSName()) == nil {
		t.Fatalf("VFS %q not registered", db.VFSName())
	}
	if db.Path() != "/"+name {
		t.Errorf("Path() = %q", db.Path())
	}
	// Every open DB has its own VFS name.
	db2, _ := openTestDB(t)
	if db2.VFSName() == db.VFSName() {
		t.Errorf("two DBs share VFS name %q", db.VFSName())
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if vfs.Find(db.VFSName()) != nil {
		t.Errorf("VFS %q still registered after Close", db.VFSName())
	}
	if err := db.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestOpenRefusesBadNames(t *testing.T) {
	requireOPFS(t)
	for _, name := range []string{"", ".", "..", "a/b", `a\b`, "a\x00b"} {
		if db, err := Open(context.Background(), testDir, name); err == nil {
			db.Close()
			t.Errorf("Open(%q) succeeded", name)
		}
	}
}

func TestReadWriteAtOffsets(t *testing.T) {
	db, _ := openTestDB(t)
	f := rawFile(t, db, "", vfs.OPEN_MAIN_DB)
	rng := rand.New(rand.NewPCG(1, 2))
	var model []byte
	write := func(off int64, n int) {
		t.Helper()
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.IntN(256))
		}
		if got, err := f.WriteAt(b, off); err != nil || got != n {
			t.Fatalf("WriteAt(%d bytes at %d) = %d, %v", n, off, got, err)
		}
		if end := int(off) + n; end > len(model) {
			model = append(model, make([]byte, end-len(model))...)
		}
		copy(model[off:], b)
	}
	check := func(off int64, n int) {
		t.Helper()
		got := make([]byte, n)
		m, err := f.ReadAt(got, off)
		if m != n || err != nil {
			t.Fatalf("ReadAt(%d bytes at %d) = %d, %v (size %d)", n, off, m, err, len(model))
		}
		if !bytes.Equal(got, model[off:int(off)+n]) {
			t.Fatalf("ReadAt(%d bytes at %d): data differs", n, off)
		}
	}
	// Page-aligned, across 4 KiB boundaries, unaligned, single bytes.
	write(0, 4096)
	write(4096, 4096)
	write(4090, 12)         // straddles the first boundary
	write(3*4096+17, 10000) // unaligned, spans three pages, leaves a hole
	write(1, 1)
	write(8191, 2)
	check(0, 4096)
	check(4090, 12)
	check(4095, 2)
	check(1, 1)
	check(8000, 300)
	check(3*4096, 17) // the hole reads as zeros
	check(3*4096+17, 10000)
	check(0, len(model))
	// Random writes and reads against the model.
	for range 300 {
		off := int64(rng.IntN(64 << 10))
		n := 1 + rng.IntN(9000)
		if rng.IntN(2) == 0 {
			write(off, n)
		} else if int(off)+n <= len(model) {
			check(off, n)
		}
	}
	check(0, len(model))
	if size, err := f.Size(); err != nil || size != int64(len(model)) {
		t.Fatalf("Size() = %d, %v; want %d", size, err, len(model))
	}
}

func TestShortReadIsZeroFilledEOF(t *testing.T) {
	db, _ := openTestDB(t)
	f := rawFile(t, db, "", vfs.OPEN_MAIN_DB)
	data := bytes.Repeat([]byte("opfsync!"), 1000) // 8000 bytes
	if _, err := f.WriteAt(data, 0); err != nil {
		t.Fatal(err)
	}
	// Partly past the end: the bytes there, then zeros, and io.EOF (which
	// ncruces turns into SQLITE_IOERR_SHORT_READ).
	buf := bytes.Repeat([]byte{0xAA}, 4096)
	n, err := f.ReadAt(buf, 4096)
	if n != 8000-4096 || err != io.EOF {
		t.Fatalf("ReadAt across EOF = %d, %v; want %d, io.EOF", n, err, 8000-4096)
	}
	if !bytes.Equal(buf[:n], data[4096:]) {
		t.Error("bytes before EOF differ")
	}
	if !bytes.Equal(buf[n:], make([]byte, 4096-n)) {
		t.Error("bytes past EOF are not zero-filled")
	}
	// Wholly past the end.
	buf = bytes.Repeat([]byte{0xAA}, 4096)
	n, err = f.ReadAt(buf, 1<<20)
	if n != 0 || err != io.EOF || !bytes.Equal(buf, make([]byte, 4096)) {
		t.Fatalf("ReadAt past EOF = %d, %v, zeroed %v", n, err, bytes.Equal(buf, make([]byte, 4096)))
	}
	// Through SQLite: an empty database file (every read short) is a valid
	// empty database.
	if err := f.Truncate(0); err != nil {
		t.Fatal(err)
	}
	conn := openConn(t, db)
	defer conn.Close()
	if got := queryText(t, conn, "SELECT count(*) FROM sqlite_schema"); got != "0" {
		t.Errorf("sqlite_schema has %s rows", got)
	}
}

func TestTruncateAndSize(t *testing.T) {
	db, _ := openTestDB(t)
	f := rawFile(t, db, "", vfs.OPEN_MAIN_DB)
	data := bytes.Repeat([]byte{7}, 10000)
	if _, err := f.WriteAt(data, 0); err != nil {
		t.Fatal(err)
	}
	size := func() int64 {
		t.Helper()
		n, err := f.Size()
		if err != nil {
			t.Fatal(err)
		}
		// The cached size must be the handle's real size.
		real, err := db.io.number(db.io.size.Invoke(db.files[fileMain].sah))
		if err != nil || real != n {
			t.Fatalf("cached size %d, getSize() %d, %v", n, real, err)
		}
		return n
	}
	if got := size(); got != 10000 {
		t.Fatalf("size %d, want 10000", got)
	}
	// Shrink, unaligned.
	if err := f.Truncate(5000); err != nil {
		t.Fatal(err)
	}
	if got := size(); got != 5000 {
		t.Fatalf("size after shrink %d", got)
	}
	buf := make([]byte, 6000)
	if n, err := f.ReadAt(buf, 0); n != 5000 || err != io.EOF {
		t.Fatalf("read after shrink = %d, %v", n, err)
	}
	// Grow: the new part reads as zeros, the old data stays.
	if err := f.Truncate(3 * 4096); err != nil {
		t.Fatal(err)
	}
	if got := size(); got != 3*4096 {
		t.Fatalf("size after grow %d", got)
	}
	buf = make([]byte, 3*4096)
	if n, err := f.ReadAt(buf, 0); n != len(buf) || err != nil {
		t.Fatalf("read after grow = %d, %v", n, err)
	}
	if !bytes.Equal(buf[:5000], data[:5000]) || !bytes.Equal(buf[5000:], make([]byte, len(buf)-5000)) {
		t.Error("contents after shrink+grow wrong")
	}
	// SizeHint grows, never shrinks.
	if err := f.(vfs.FileSizeHint).SizeHint(1 << 16); err != nil {
		t.Fatal(err)
	}
	if err := f.(vfs.FileSizeHint).SizeHint(10); err != nil {
		t.Fatal(err)
	}
	if got := size(); got != 1<<16 {
		t.Fatalf("size after SizeHint %d", got)
	}
	if err := f.Truncate(0); err != nil {
		t.Fatal(err)
	}
	if got := size(); got != 0 {
		t.Fatalf("size after truncate(0) %d", got)
	}
}

func TestSyncFlushes(t *testing.T) {
	db, _ := openTestDB(t)
	f := rawFile(t, db, "-wal", vfs.OPEN_WAL)
	if _, err := f.WriteAt([]byte("x"), 0); err != nil {
		t.Fatal(err)
	}
	before, beforeJS := ioStats.syncs, jsCalls(t, "flush")
	t0 := time.Now()
	for range 20 {
		if err := f.Sync(vfs.SYNC_FULL); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("flush(): %v each", time.Since(t0)/20)
	if ioStats.syncs-before != 20 || jsCalls(t, "flush")-beforeJS != 20 {
		t.Errorf("20 Syncs made %d VFS flushes and %d JS flush() calls", ioStats.syncs-before, jsCalls(t, "flush")-beforeJS)
	}
}

func TestAccessDeleteAndOpenRules(t *testing.T) {
	db, _ := openTestDB(t)
	v := vfs.Find(db.VFSName())
	access := func(name string) bool {
		ok, err := v.Access(name, vfs.ACCESS_EXISTS)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	p := db.Path()
	if !access(p) {
		t.Error("main database does not exist")
	}
	if access(p+"-journal") || access(p+"-wal") {
		t.Error("empty journal/WAL reported as existing")
	}
	if access(p + "-other") {
		t.Error("unknown file exists")
	}
	j := rawFile(t, db, "-journal", vfs.OPEN_MAIN_JOURNAL)
	if _, err := j.WriteAt([]byte("journal"), 0); err != nil {
		t.Fatal(err)
	}
	if !access(p + "-journal") {
		t.Error("non-empty journal does not exist")
	}
	if err := v.Delete(p+"-journal", true); err != nil {
		t.Fatal(err)
	}
	if access(p+"-journal") || db.files[fileJournal].size != 0 {
		t.Error("journal still exists after Delete")
	}
	if err := v.Delete(p+"-nope", false); sqliteCode(err) != sqlite3.IOERR {
		t.Errorf("Delete of an unknown file: %v", err)
	}
	// Files the DB did not pre-open cannot be opened; temp files live in memory.
	for _, tc := range []struct {
		name  string
		flags vfs.OpenFlag
	}{
		{"/other.db", vfs.OPEN_MAIN_DB},
		{p + "-mj0123", vfs.OPEN_SUPER_JOURNAL},
		{p, vfs.OPEN_WAL}, // right name, wrong kind
	} {
		if f, _, err := v.Open(tc.name, tc.flags|vfs.OPEN_READWRITE|vfs.OPEN_CREATE); err == nil {
			f.Close()
			t.Errorf("Open(%s, %x) succeeded", tc.name, tc.flags)
		} else if sqliteCode(err) != sqlite3.CANTOPEN {
			t.Errorf("Open(%s): %v, want CANTOPEN", tc.name, err)
		}
	}
	f, flags, err := v.Open("", vfs.OPEN_TEMP_JOURNAL|vfs.OPEN_READWRITE|vfs.OPEN_CREATE|vfs.OPEN_DELETEONCLOSE)
	if err != nil || flags&vfs.OPEN_MEMORY == 0 {
		t.Fatalf("temp journal: %v, flags %x", err, flags)
	}
	f.Close()
}

func TestPersistsAcrossCloseAndReopen(t *testing.T) {
	data := bytes.Repeat([]byte("persist "), 3000)
	db, _ := openTestDB(t)
	conn := openConn(t, db, enginePragmas...)
	exec(t, conn, "CREATE TABLE kv (k INTEGER PRIMARY KEY, v BLOB)")
	for i := range 50 {
		exec(t, conn, "INSERT INTO kv VALUES ("+itoa(i)+", randomblob(2000))")
	}
	want := tableHash(t, conn, "SELECT k, v FROM kv ORDER BY k")
	if err := conn.Close(); err != nil {
		t.Fatal(err)
	}
	// Raw bytes too.
	w := rawFile(t, db, "-journal", vfs.OPEN_MAIN_JOURNAL)
	if _, err := w.WriteAt(data, 0); err != nil {
		t.Fatal(err)
	}
	w.Close()
	oldVFS := db.VFSName()
	db = reopen(t, db)
	if db.VFSName() == oldVFS {
		t.Error("re-open reused the VFS name")
	}
	// Empty the leftover journal first, so that SQLite does not take it for
	// a hot journal.
	j := rawFile(t, db, "-journal", vfs.OPEN_MAIN_JOURNAL)
	got := make([]byte, len(data))
	if n, err := j.ReadAt(got, 0); n != len(data) || err != nil || !bytes.Equal(got, data) {
		t.Fatalf("journal bytes after re-open: %d, %v, equal %v", n, err, bytes.Equal(got, data))
	}
	if err := j.Truncate(0); err != nil {
		t.Fatal(err)
	}
	j.Close()
	conn = openConn(t, db, enginePragmas...)
	defer conn.Close()
	if h := tableHash(t, conn, "SELECT k, v FROM kv ORDER BY k"); h != want {
		t.Errorf("contents after re-open differ")
	}
	if ok := queryText(t, conn, "PRAGMA integrity_check"); ok != "ok" {
		t.Errorf("integrity_check: %s", ok)
	}
}

func TestDelete(t *testing.T) {
	requireOPFS(t)
	ctx := context.Background()
	name := testName(t)
	db, err := Open(ctx, testDir, name)
	if err != nil {
		t.Fatal(err)
	}
	conn := openConn(t, db, enginePragmas...)
	exec(t, conn, "CREATE TABLE t (x); INSERT INTO t VALUES (1)")
	conn.Close()
	// While open, Delete is refused with ErrLocked.
	if err := Delete(ctx, testDir, name); !errors.Is(err, ErrLocked) {
		t.Errorf("Delete of an open database: %v, want ErrLocked", err)
	}
	db.Close()
	if err := Delete(ctx, testDir, name); err != nil {
		t.Fatal(err)
	}
	for _, s := range suffixes {
		if exists(t, testDir, name+s) {
			t.Errorf("%s%s still exists", name, s)
		}
	}
	// Deleting what does not exist (file or directory) is fine.
	if err := Delete(ctx, testDir, name); err != nil {
		t.Errorf("second Delete: %v", err)
	}
	if err := Delete(ctx, "no-such-dir/"+testName(t), name); err != nil {
		t.Errorf("Delete in a missing directory: %v", err)
	}
	// A new database of the same name starts empty.
	db, err = Open(ctx, testDir, name)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { db.Close(); Delete(ctx, testDir, name) }()
	if db.files[fileMain].size != 0 {
		t.Errorf("re-created database has %d bytes", db.files[fileMain].size)
	}
}

func TestNestedDirectory(t *testing.T) {
	requireOPFS(t)
	ctx := context.Background()
	dir := testDir + "/nested-" + testName(t) + "/deeper"
	db, err := Open(ctx, dir, "n.db")
	if err != nil {
		t.Fatal(err)
	}
	conn := openConn(t, db, enginePragmas...)
	exec(t, conn, "CREATE TABLE t (x)")
	conn.Close()
	db.Close()
	if !exists(t, dir, "n.db") {
		t.Error("n.db not in the nested directory")
	}
	if err := Delete(ctx, dir, "n.db"); err != nil {
		t.Fatal(err)
	}
}

// The locked case, in the same worker: a second createSyncAccessHandle
// fails exactly as it does from another tab (NoModificationAllowedError).
func TestSecondOpenFailsFastWithLocked(t *testing.T) {
	db, name := openTestDB(t)
	ctx := context.Background()
	var worst time.Duration
	for range 5 {
		t0 := time.Now()
		db2, err := Open(ctx, testDir, name)
		d := time.Since(t0)
		worst = max(worst, d)
		if err == nil {
			db2.Close()
			t.Fatal("second Open of a held database succeeded")
		}
		if !errors.Is(err, ErrLocked) {
			t.Fatalf("second Open: %v, want ErrLocked", err)
		}
		if !strings.Contains(err.Error(), "NoModificationAllowedError") {
			t.Errorf("error does not name the DOMException: %v", err)
		}
		// Code that classifies SQLite errors (the engine) sees BUSY.
		if sqliteCode(err) != sqlite3.BUSY {
			t.Errorf("errors.As(ErrLocked, sqlite3.ErrorCode) = %v, want BUSY", sqliteCode(err))
		}
	}
	t.Logf("locked Open fails in at most %v", worst)
	if worst > time.Second {
		t.Errorf("locked Open took %v; it must fail fast", worst)
	}
	// The failed attempts released nothing of the first DB and leaked no
	// handle: after Close, the database opens again at once.
	conn := openConn(t, db, enginePragmas...)
	exec(t, conn, "CREATE TABLE t (x)")
	conn.Close()
	db.Close()
	t0 := time.Now()
	db3, err := Open(ctx, testDir, name)
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	t.Logf("Open after the holder closed: %v", time.Since(t0))
	db3.Close()
}

func TestUnavailable(t *testing.T) {
	requireOPFS(t)
	ctx := context.Background()
	withGlobalRemoved(t, "FileSystemFileHandle.prototype.createSyncAccessHandle", func() {
		if _, err := Open(ctx, testDir, "x.db"); !errors.Is(err, ErrUnavailable) {
			t.Errorf("Open without createSyncAccessHandle: %v, want ErrUnavailable", err)
		}
	})
	withGlobalRemoved(t, "navigator.storage.getDirectory", func() {
		if _, err := Open(ctx, testDir, "x.db"); !errors.Is(err, ErrUnavailable) {
			t.Errorf("Open without getDirectory: %v, want ErrUnavailable", err)
		}
	})
	withGlobalRemoved(t, "opfsyncIO", func() {
		_, err := Open(ctx, testDir, "x.db")
		if err == nil || !strings.Contains(err.Error(), "opfsync-io.js") {
			t.Errorf("Open without opfsyncIO: %v", err)
		}
	})
	withGlobalRemoved(t, "opfsyncMem", func() {
		_, err := Open(ctx, testDir, "x.db")
		if err == nil || !strings.Contains(err.Error(), "opfsyncMem") {
			t.Errorf("Open without opfsyncMem: %v", err)
		}
	})
	if sqliteCode(ErrUnavailable) != sqlite3.CANTOPEN {
		t.Errorf("ErrUnavailable classifies as %v", sqliteCode(ErrUnavailable))
	}
}

func TestOpenHonoursContext(t *testing.T) {
	requireOPFS(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Open(ctx, testDir, testName(t)); !errors.Is(err, context.Canceled) {
		t.Errorf("Open with a cancelled context: %v", err)
	}
}

// One JS crossing per SQLite read and write: every read/write the VFS
// makes is exactly one opfsyncIO call, and nothing else crosses per I/O.
func TestOneCrossingPerIO(t *testing.T) {
	db, _ := openTestDB(t)
	conn := openConn(t, db, enginePragmas...)
	defer conn.Close()
	exec(t, conn, "CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)")
	r0, w0, s0 := ioStats.reads, ioStats.writes, ioStats.syncs
	jr0, jw0, jf0, jz0, jt0 := jsCalls(t, "read"), jsCalls(t, "write"), jsCalls(t, "flush"), jsCalls(t, "size"), jsCalls(t, "truncate")
	for i := range 100 {
		exec(t, conn, "INSERT INTO t (v) VALUES ('row "+itoa(i)+"')")
	}
	exec(t, conn, "PRAGMA wal_checkpoint(TRUNCATE)")
	reads, writes, syncs := ioStats.reads-r0, ioStats.writes-w0, ioStats.syncs-s0
	jr, jw, jf := jsCalls(t, "read")-jr0, jsCalls(t, "write")-jw0, jsCalls(t, "flush")-jf0
	t.Logf("100 commits + a checkpoint: %d reads, %d writes, %d syncs; JS calls: read %d, write %d, flush %d, size %d, truncate %d",
		reads, writes, syncs, jr, jw, jf, jsCalls(t, "size")-jz0, jsCalls(t, "truncate")-jt0)
	if reads != jr || writes != jw || syncs != jf {
		t.Errorf("VFS I/O (%d reads, %d writes, %d syncs) != JS helper calls (%d, %d, %d)", reads, writes, syncs, jr, jw, jf)
	}
	if jsCalls(t, "size")-jz0 != 0 {
		t.Errorf("xFileSize crossed to JS %d times; the size is cached", jsCalls(t, "size")-jz0)
	}
	// WAL + FULL: each commit is a few appends and one sync.
	if syncs < 100 || syncs > 110 {
		t.Errorf("%d syncs for 100 commits (synchronous=FULL syncs the WAL once per commit)", syncs)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// Empty: true for a database just created, false once SQLite wrote it
// (the storage fallback keeps an IndexedDB database when OPFS's is empty).
func TestEmpty(t *testing.T) {
	db, _ := openTestDB(t)
	if !db.Empty() {
		t.Fatal("a new database is not Empty")
	}
	conn := openConn(t, db, enginePragmas...)
	exec(t, conn, "CREATE TABLE t (x)")
	conn.Close()
	if db = reopen(t, db); db.Empty() {
		t.Fatal("a written database is Empty")
	}
}
