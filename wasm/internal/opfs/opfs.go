//go:build js && wasm

// Package opfs is a SQLite VFS (for github.com/ncruces/go-sqlite3) on the
// browser's Origin Private File System, through FileSystemSyncAccessHandle.
// It only works in a dedicated Web Worker, the one place sync access handles
// exist.
//
// Only obtaining a handle is asynchronous in OPFS, and a Go program must not
// wait on a Promise inside a js.FuncOf callback, so all the asynchronous work
// happens in Open, before SQLite runs: Open pre-opens the three files a
// database can need (the database, its -journal and its -wal) and registers
// a VFS that serves just those. xOpen, xDelete and xAccess are then map
// operations, and read/write/truncate/size/flush are synchronous calls on the
// handles, one syscall/js crossing each through web/opfsync-io.js.
//
// A sync access handle is exclusive: while this DB is open, no other tab or
// worker can open the same files (Open there fails at once with ErrLocked).
// Inside the process, the VFS keeps SQLite's lock levels per file as
// bookkeeping (as memdb does), so a second connection on the same DB gets
// SQLITE_BUSY rather than corrupting the first's WAL index.
//
// # Journal mode and durability (measured; see the numbers below)
//
// The engine opens databases with locking_mode=EXCLUSIVE, journal_mode=WAL
// and synchronous=FULL, and this VFS is built for that (the measurements
// and the decision follow):
//
//   - WAL needs either shared memory or exclusive locking. There is no shared
//     memory here (the VFS does not implement it), so SQLite keeps the WAL
//     index in heap memory, which it only allows with locking_mode=EXCLUSIVE;
//     without it, PRAGMA journal_mode=WAL silently answers "delete", and a
//     database already in WAL format fails to open (SQLITE_CANTOPEN). So
//     every connection must set locking_mode=EXCLUSIVE first.
//   - xSync is FileSystemSyncAccessHandle.flush(), which Chromium implements
//     as a sync of the backing file to disk (measured: 45 us on a clean file,
//     0.3-1.5 ms after a commit's writes). With synchronous=FULL SQLite syncs the
//     WAL at every commit, so a commit that returned survives a crash of the
//     browser or the machine. NORMAL would skip that sync (the WAL is synced
//     only at checkpoints): still safe against a tab or browser crash (the
//     writes are in the OS page cache), not against power loss.
//   - xDelete of the journal or WAL truncates the pre-opened file to zero
//     bytes (and flushes when SQLite asks for a directory sync), and xAccess
//     reports such a file as existing only when it is not empty; this is what
//     SQLite needs to find (or not) a hot journal.
//
// Measured in headless Chromium 156 (2 cores, ext4, while other test suites
// ran; BenchmarkCommit, 1,000 single-row INSERT commits per run, 5 runs):
//
//	mode                                   per commit (median, range)     flush() per commit
//	WAL, synchronous=FULL (the engine's)   0.8 ms  (0.38-1.6)             1
//	WAL, synchronous=NORMAL                0.13 ms (0.06-0.19)            0.003 (checkpoints)
//	DELETE, synchronous=FULL               1.0 ms  (0.86-1.16)            3
//	DELETE, FULL, locking_mode=EXCLUSIVE   1.0 ms  (0.83-1.11)            4
//	memdb (no I/O: the CPU part)           0.02 ms
//
// The engine's whole Put (record, outbox, meta: one commit) takes 0.8-1.0
// ms on OPFS. The fdatasync behind flush() is nearly all of a durable
// commit; a 4 KiB read costs ~4 us, a 4 KiB write 13-38 us, one bare
// syscall/js crossing 0.4-0.9 us (BenchmarkFileIO, BenchmarkCrossing).
// With the handles pre-opened, DELETE is no longer the 8 ms per commit the
// prototype measured with asynchronous handle acquisition, but it needs three
// flushes where WAL needs one, and flushes are what a slower disk makes
// slower.
//
// Decision: WAL + synchronous=FULL + locking_mode=EXCLUSIVE, as the engine
// sets it. A write the API has resolved must survive a crash of the machine
// ("durable locally"), which NORMAL does not promise; NORMAL's ~6x is what
// batching several writes into one transaction (one flush) gets back where it
// matters, without the risk.
package opfs

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/hack-pad/safejs"
	"github.com/ncruces/go-sqlite3"
	"github.com/ncruces/go-sqlite3/vfs"
	"github.com/opfsync/opfsync/wasm/internal/jsutil"
	"github.com/opfsync/opfsync/wasm/internal/vfskit"
)

// Errors Open and Delete wrap. Both also answer errors.As with a
// sqlite3.ErrorCode (BUSY and CANTOPEN), so code that classifies SQLite
// errors (e.g. syncengine.CodeOf: LOCKED and STORAGE) classifies them too.
var (
	// ErrLocked: another context (tab, worker) or another DB in this
	// worker holds the database's files.
	ErrLocked error = &vfskit.CodedError{Msg: "opfs: the database is held by another tab, worker or connection", Code: sqlite3.BUSY}
	// ErrUnavailable: OPFS sync access handles do not exist here (not a
	// dedicated worker, no navigator.storage.getDirectory, or no
	// createSyncAccessHandle), or the origin may not use OPFS.
	ErrUnavailable error = &vfskit.CodedError{Msg: "opfs: OPFS sync access handles are not available in this context (they need a dedicated Web Worker in a browser with OPFS)", Code: sqlite3.CANTOPEN}
)

// The three files of a database (vfskit.Kind).
const (
	fileMain    = vfskit.Main
	fileJournal = vfskit.Journal
	fileWAL     = vfskit.WAL
	numFiles    = vfskit.NumKinds
)

var suffixes = vfskit.Suffixes

// DB is a database whose OPFS files are open and whose VFS is registered.
type DB struct {
	vfsName string
	path    string // "/" + name: what SQLite opens
	dir     string
	name    string
	io      *ioHelpers
	files   [numFiles]*handle

	mu        sync.Mutex
	closed    bool
	openFiles int // SQLite files open on the pre-opened handles
}

// handle is one pre-opened OPFS file.
type handle struct {
	db   *DB
	kind vfskit.Kind
	name string       // OPFS file name
	sah  safejs.Value // FileSystemSyncAccessHandle
	size int64        // cached: the handle is exclusive, so only we change it

	// SQLite lock bookkeeping shared by the connections of this process.
	locks vfskit.Locks
}

var vfsSeq atomic.Int64

// Open pre-opens (creating if needed) the OPFS files database name needs,
// inside the OPFS directory dir (e.g. "opfsync"; created if needed; "" is the
// OPFS root; "a/b" nests), and registers a VFS for them.
//
// It must be called from a goroutine (it awaits Promises), never inside a
// js.FuncOf callback. It fails fast with an error wrapping ErrLocked when
// another context (tab, worker) holds the files (NoModificationAllowedError),
// and with ErrUnavailable when OPFS sync access handles do not exist in this
// context (no navigator.storage.getDirectory or no createSyncAccessHandle).
//
// Open the database with SQLite as "file:"+db.Path()+"?vfs="+db.VFSName()
// (or syncengine.Options{Path: db.Path(), VFS: db.VFSName()}), with
// PRAGMA locking_mode=EXCLUSIVE before journal_mode=WAL; call Close after the
// connection closed.
func Open(ctx context.Context, dir, name string) (*DB, error) {
	if err := vfskit.CheckName("opfs", name); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	io, err := loadIO()
	if err != nil {
		return nil, err
	}
	d, err := openDir(ctx, dir, true)
	if err != nil {
		return nil, fmt.Errorf("opfs: open %s: %w", join(dir, name), err)
	}
	db := &DB{dir: dir, name: name, path: "/" + name, io: io}
	for kind := range numFiles {
		h, err := db.openFile(ctx, d, kind)
		if err != nil {
			db.closeHandles(false)
			return nil, fmt.Errorf("opfs: open %s: %w", join(dir, name+suffixes[kind]), err)
		}
		db.files[kind] = h
	}
	db.vfsName = vfskit.VFSName("opfs", vfsSeq.Add(1), name)
	vfs.Register(db.vfsName, &opfsVFS{db: db})
	return db, nil
}

func (db *DB) openFile(ctx context.Context, d safejs.Value, kind vfskit.Kind) (*handle, error) {
	fname := db.name + suffixes[kind]
	opts, err := safejs.ValueOf(map[string]any{"create": true})
	if err != nil {
		return nil, err
	}
	fh, err := jsutil.CallAwait(ctx, d, "getFileHandle", nil, fname, opts)
	if err != nil {
		return nil, classify(err)
	}
	sah, err := jsutil.CallAwait(ctx, fh, "createSyncAccessHandle", func(late safejs.Value) {
		db.io.close.Invoke(late) // Open gave up (ctx ended): release the lock
	})
	if err != nil {
		return nil, classify(err)
	}
	h := &handle{db: db, kind: kind, name: fname, sah: sah}
	if h.size, err = db.io.number(db.io.size.Invoke(sah)); err != nil {
		db.io.close.Invoke(sah)
		return nil, err
	}
	return h, nil
}

// classify maps the DOMExceptions of handle acquisition to ErrLocked and
// ErrUnavailable.
func classify(err error) error {
	switch jsutil.ErrorName(err) {
	case "NoModificationAllowedError":
		return fmt.Errorf("%w (%v)", ErrLocked, err)
	case "SecurityError", "NotSupportedError":
		return fmt.Errorf("%w (%v)", ErrUnavailable, err)
	}
	return err
}

// openDir returns the OPFS directory dir ("" is the root), creating it when
// create is set.
func openDir(ctx context.Context, dir string, create bool) (safejs.Value, error) {
	undef := safejs.Undefined()
	nav, err := safejs.Global().Get("navigator")
	if err != nil || nav.Type() != safejs.TypeObject {
		return undef, ErrUnavailable
	}
	storage, err := nav.Get("storage")
	if err != nil || storage.Type() != safejs.TypeObject {
		return undef, ErrUnavailable
	}
	if gd, err := storage.Get("getDirectory"); err != nil || gd.Type() != safejs.TypeFunction {
		return undef, ErrUnavailable
	}
	if !hasSyncAccessHandles() {
		return undef, ErrUnavailable
	}
	d, err := jsutil.CallAwait(ctx, storage, "getDirectory", nil)
	if err != nil {
		return undef, classify(err)
	}
	if dir == "" {
		return d, nil
	}
	opts, err := safejs.ValueOf(map[string]any{"create": create})
	if err != nil {
		return undef, err
	}
	for _, seg := range strings.Split(dir, "/") {
		if d, err = jsutil.CallAwait(ctx, d, "getDirectoryHandle", nil, seg, opts); err != nil {
			return undef, classify(err)
		}
	}
	return d, nil
}

// hasSyncAccessHandles reports whether FileSystemFileHandle has
// createSyncAccessHandle (only in dedicated workers).
func hasSyncAccessHandles() bool {
	fh, err := safejs.Global().Get("FileSystemFileHandle")
	if err != nil || fh.Type() != safejs.TypeFunction {
		return false
	}
	proto, err := fh.Get("prototype")
	if err != nil || proto.Type() != safejs.TypeObject {
		return false
	}
	f, err := proto.Get("createSyncAccessHandle")
	return err == nil && f.Type() == safejs.TypeFunction
}

// Empty reports whether the database holds nothing yet: its file and its
// WAL are empty (created by this Open, or never written).
func (db *DB) Empty() bool {
	db.mu.Lock()
	defer db.mu.Unlock()
	for _, k := range []vfskit.Kind{fileMain, fileWAL} {
		if h := db.files[k]; h == nil || h.size != 0 {
			return false
		}
	}
	return true
}

// VFSName returns the registered VFS name, unique per open DB.
func (db *DB) VFSName() string { return db.vfsName }

// Path returns the filename to give SQLite together with the VFS name:
// "file:"+Path()+"?vfs="+VFSName(), or syncengine.Options{Path, VFS}.
func (db *DB) Path() string { return db.path }

// URI returns the SQLite URI filename that opens the database on this VFS.
func (db *DB) URI() string { return "file:" + db.path + "?vfs=" + url.QueryEscape(db.vfsName) }

// Close flushes and closes every access handle and unregisters the VFS.
// Call it after the SQLite connection closed; a connection still open then
// gets I/O errors from then on. Close is idempotent.
func (db *DB) Close() error {
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.closed {
		return nil
	}
	db.closed = true
	// A connection still open keeps the (now failing) VFS registered until
	// it closes its files: ncruces panics on calls to a VFS it cannot find.
	if db.openFiles == 0 {
		vfs.Unregister(db.vfsName)
	}
	err := db.closeHandles(true)
	if db.openFiles > 0 {
		err = errors.Join(err, fmt.Errorf("opfs: %s closed while SQLite still had %d file(s) open", db.name, db.openFiles))
	}
	return err
}

// closeHandles closes every pre-opened handle, flushing it first if asked.
func (db *DB) closeHandles(flush bool) error {
	var errs []error
	for i, h := range db.files {
		if h == nil {
			continue
		}
		if flush {
			if _, err := db.io.number(db.io.flush.Invoke(h.sah)); err != nil {
				errs = append(errs, fmt.Errorf("opfs: flush %s: %w", h.name, err))
			}
		}
		if _, err := db.io.number(db.io.close.Invoke(h.sah)); err != nil {
			errs = append(errs, fmt.Errorf("opfs: close %s: %w", h.name, err))
		}
		h.sah = safejs.Undefined()
		db.files[i] = nil
	}
	return errors.Join(errs...)
}

// Delete removes the database's files (for tests and "reset"). It fails with
// an error wrapping ErrLocked while any context, this one included, has the
// database open. Deleting a database that does not exist succeeds.
func Delete(ctx context.Context, dir, name string) error {
	if err := vfskit.CheckName("opfs", name); err != nil {
		return err
	}
	d, err := openDir(ctx, dir, false)
	if jsutil.ErrorName(err) == "NotFoundError" {
		return nil
	}
	if err != nil {
		return fmt.Errorf("opfs: delete %s: %w", join(dir, name), err)
	}
	for _, s := range suffixes {
		_, err := jsutil.CallAwait(ctx, d, "removeEntry", nil, name+s)
		switch jsutil.ErrorName(err) {
		case "", "NotFoundError":
		default:
			return fmt.Errorf("opfs: delete %s: %w", join(dir, name+s), classify(err))
		}
	}
	return nil
}

func join(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}
