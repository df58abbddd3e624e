//go:build js && wasm

// Package idb is a SQLite VFS (for github.com/ncruces/go-sqlite3) on
// IndexedDB: the persistent storage for browsers and contexts where OPFS
// sync access handles do not exist (WebKit before them, some private
// modes). It works in any worker or window with IndexedDB and Web Locks.
//
// IndexedDB is asynchronous, and SQLite's VFS calls are not. On js/wasm a
// goroutine may block on a Promise (the runtime returns to the event loop
// until it settles), so this VFS stays synchronous to SQLite by blocking
// the goroutine that runs it. The one rule: SQLite must never run on this
// VFS inside a js.FuncOf callback (blocking there deadlocks the instance);
// Storage users run every call on a goroutine.
//
// # Layout and atomicity
//
// A database is one IndexedDB database (named dir+"/"+name) holding the
// database's three files (main, -journal, -wal) as fixed 8 KiB blocks keyed
// [file, index], and each file's size. Writes land in memory (a dirty-block
// overlay); xSync writes every dirty block of every file, the deletions
// of truncated blocks and the sizes in ONE readwrite transaction with
// durability 'strict' and returns when it committed. So what IndexedDB
// holds is always exactly the files as they were at some xSync, never a
// torn mix: the property wa-sqlite's IDBBatchAtomicVFS gets from
// SQLITE_IOCAP_BATCH_ATOMIC, here for any journal mode. The engine's WAL
// with synchronous=FULL syncs once per commit, so each commit is one
// IndexedDB transaction, and a commit that returned survives a crash.
//
// Reads come from the overlay or a bounded cache of clean blocks; a miss
// loads the block and a few after it (read-ahead) in one request.
//
// # Exclusivity
//
// While a DB is open, this context holds the Web Lock "opfsync-idb:"+name,
// so Open in any other tab or worker fails at once with ErrLocked (as an
// OPFS access handle does). Without Web Locks Open fails with
// ErrUnavailable: two writers could corrupt the database otherwise.
package idb

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hack-pad/safejs"
	"github.com/ncruces/go-sqlite3"
	"github.com/ncruces/go-sqlite3/vfs"
	"github.com/opfsync/opfsync/wasm/internal/jsutil"
	"github.com/opfsync/opfsync/wasm/internal/vfskit"
)

// Errors Open and Delete wrap; both answer errors.As with a
// sqlite3.ErrorCode (BUSY, CANTOPEN) so SQLite-error classifiers see them.
var (
	// ErrLocked: another context (tab, worker) or another DB in this one
	// has the database open.
	ErrLocked error = &vfskit.CodedError{Msg: "idb: the database is held by another tab, worker or connection", Code: sqlite3.BUSY}
	// ErrUnavailable: no IndexedDB or no Web Locks here, or the browser
	// refuses IndexedDB to this origin (some private modes).
	ErrUnavailable error = &vfskit.CodedError{Msg: "idb: IndexedDB with Web Locks is not available in this context", Code: sqlite3.CANTOPEN}
	// ErrStalled (which also matches ErrLocked): the Web Lock was free but
	// IndexedDB did not run Open's first read within stallTimeout, because
	// a transaction outside the lock still holds the database. WebKitGTK
	// 2.50 leaves the transaction of a worker terminated mid-commit
	// pending for the rest of the browser session (reloading or closing
	// the worker's page does not end it).
	ErrStalled = fmt.Errorf("%w: a transaction of a stopped worker still holds it (IndexedDB did not start Open's read)", ErrLocked)
)

// blockSize is the unit of storage: two 4 KiB SQLite pages, or a WAL
// commit of a few frames in one or two blocks.
const blockSize = 8192

// Tunables (variables so tests can shrink them).
var (
	// readAhead is how many blocks a cache miss loads at once.
	readAhead int64 = 16
	// maxClean bounds the clean blocks kept in memory (8 MiB; SQLite's
	// own page cache sits above this one).
	maxClean = 1024
	// stallTimeout bounds Open's first read: with the Web Lock held,
	// nothing of ours can delay it (see ErrStalled).
	stallTimeout = 5 * time.Second
)

// DB is a database whose IndexedDB database is open, whose Web Lock is
// held and whose VFS is registered.
type DB struct {
	vfsName string
	path    string // "/" + name: what SQLite opens
	idbName string
	js      helpers
	conn    safejs.Value // IDBDatabase
	release safejs.Value // releases the Web Lock

	mu        sync.Mutex // guards everything below: every VFS call and Close hold it
	closed    bool
	openFiles int

	files [vfskit.NumKinds]*blockFile
	clean cleanQueue
	stats struct{ loads, commits int64 }
}

var vfsSeq atomic.Int64

// idbName is the IndexedDB database that holds database name in dir.
func idbName(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}

// Open opens (creating if needed) database name, stored in the IndexedDB
// database dir+"/"+name, takes its Web Lock and registers a VFS for it.
//
// It must be called from a goroutine, never inside a js.FuncOf callback,
// and so must every SQLite call on the VFS. It fails at once with an error
// wrapping ErrLocked when another context or DB holds the database, after
// stallTimeout with one wrapping ErrStalled (and ErrLocked) when a stopped
// worker's transaction does, and with ErrUnavailable when IndexedDB or Web
// Locks are missing or refused.
//
// Open the database with SQLite as "file:"+db.Path()+"?vfs="+db.VFSName()
// (or syncengine.Options{Path, VFS}); call Close after the connection
// closed.
func Open(ctx context.Context, dir, name string) (*DB, error) {
	if err := vfskit.CheckName("idb", name); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	h, err := loadHelpers()
	if err != nil {
		return nil, err
	}
	db := &DB{path: "/" + name, idbName: idbName(dir, name), js: h}
	if db.release, err = lock(h, db.idbName); err != nil {
		return nil, fmt.Errorf("idb: open %s: %w", db.idbName, err)
	}
	if db.conn, err = h.await("open", db.idbName); err != nil {
		db.unlock()
		return nil, fmt.Errorf("idb: open %s: %w", db.idbName, classify(err))
	}
	readCtx, cancel := context.WithTimeout(ctx, stallTimeout)
	sizes, err := jsutil.CallAwait(readCtx, h.v, "sizes", nil, db.conn)
	cancel()
	if err != nil {
		h.close(db.conn) // the abandoned read settles once the other transaction ends
		db.unlock()
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			err = fmt.Errorf("no answer in %v: %w", stallTimeout, ErrStalled)
		}
		return nil, fmt.Errorf("idb: read the sizes of %s: %w", db.idbName, err)
	}
	for k := range vfskit.NumKinds {
		f := &blockFile{db: db, kind: k, blocks: map[int64][]byte{}, dirty: map[int64]bool{}, cut: -1}
		if v, err := sizes.Index(int(k)); err == nil {
			n, _ := v.Float()
			f.size, f.saved = int64(n), int64(n)
		}
		db.files[k] = f
	}
	db.vfsName = vfskit.VFSName("idb", vfsSeq.Add(1), name)
	vfs.Register(db.vfsName, &idbVFS{db: db})
	return db, nil
}

// lock takes the Web Lock of the database, or fails with ErrLocked when
// another context holds it.
func lock(h helpers, idbName string) (safejs.Value, error) {
	release, err := h.await("lock", "opfsync-idb:"+idbName)
	switch {
	case err != nil:
		return safejs.Undefined(), fmt.Errorf("%w (%v)", ErrUnavailable, err)
	case release.Type() != safejs.TypeFunction:
		return safejs.Undefined(), ErrLocked
	}
	return release, nil
}

// unlock releases the Web Lock and returns once it is free.
func (db *DB) unlock() {
	unlock(db.release)
	db.release = safejs.Undefined()
}

func unlock(release safejs.Value) {
	if release.Type() != safejs.TypeFunction {
		return
	}
	if p, err := release.Invoke(); err == nil {
		_, _ = jsutil.Await(context.Background(), p, nil)
	}
}

// classify maps the DOMExceptions of opening IndexedDB to ErrUnavailable.
func classify(err error) error {
	switch jsutil.ErrorName(err) {
	case "SecurityError", "NotSupportedError", "InvalidStateError", "UnknownError":
		return fmt.Errorf("%w (%v)", ErrUnavailable, err)
	}
	return err
}

// VFSName returns the registered VFS name, unique per open DB.
func (db *DB) VFSName() string { return db.vfsName }

// Path returns the filename to give SQLite together with the VFS name.
func (db *DB) Path() string { return db.path }

// URI returns the SQLite URI filename that opens the database on this VFS.
func (db *DB) URI() string { return "file:" + db.path + "?vfs=" + url.QueryEscape(db.vfsName) }

// Close writes what is still unsynced, closes the IndexedDB connection,
// releases the Web Lock and unregisters the VFS. Call it after the SQLite
// connection closed (a connection still open gets I/O errors from then
// on). Close is idempotent.
func (db *DB) Close() error {
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.closed {
		return nil
	}
	err := db.flush()
	db.closed = true
	if db.openFiles == 0 {
		vfs.Unregister(db.vfsName)
	}
	db.js.close(db.conn)
	db.unlock()
	if db.openFiles > 0 {
		err = errors.Join(err, fmt.Errorf("idb: %s closed while SQLite still had %d file(s) open", db.idbName, db.openFiles))
	}
	return err
}

// Exists reports whether database name has been created in dir (without
// creating it).
func Exists(ctx context.Context, dir, name string) (bool, error) {
	if err := vfskit.CheckName("idb", name); err != nil {
		return false, err
	}
	h, err := loadHelpers()
	if err != nil {
		return false, err
	}
	v, err := h.await("exists", idbName(dir, name))
	if err != nil {
		return false, fmt.Errorf("idb: exists %s: %w", idbName(dir, name), classify(err))
	}
	return v.Bool()
}

// Delete removes the database. It fails with an error wrapping ErrLocked
// while any context, this one included, has it open. Deleting a database
// that does not exist succeeds.
func Delete(ctx context.Context, dir, name string) error {
	if err := vfskit.CheckName("idb", name); err != nil {
		return err
	}
	h, err := loadHelpers()
	if err != nil {
		return err
	}
	n := idbName(dir, name)
	release, err := lock(h, n)
	if err != nil {
		return fmt.Errorf("idb: delete %s: %w", n, err)
	}
	defer unlock(release)
	if _, err := h.await("remove", n); err != nil {
		return fmt.Errorf("idb: delete %s: %w", n, err)
	}
	return nil
}
