//go:build js && wasm

package opfs

import (
	"errors"
	"fmt"
	"io"
	"runtime"

	"github.com/ncruces/go-sqlite3"
	"github.com/ncruces/go-sqlite3/vfs"
	"github.com/opfsync/opfsync/wasm/internal/jsutil"
	"github.com/opfsync/opfsync/wasm/internal/vfskit"
)

// opfsVFS serves the pre-opened files of one DB. Every method is
// synchronous.
type opfsVFS struct{ db *DB }

// fileOf returns the pre-opened file SQLite means by name, or nil.
func (v *opfsVFS) fileOf(name string) *handle {
	if kind, ok := vfskit.KindOf(v.db.path, name); ok {
		return v.db.files[kind]
	}
	return nil
}

func (v *opfsVFS) Open(name string, flags vfs.OpenFlag) (vfs.File, vfs.OpenFlag, error) {
	// Temporary files live in memory: creating OPFS files would need the
	// asynchronous API.
	if f, flags, ok := vfskit.TempFile(name, flags); ok {
		return f, flags, nil
	}
	v.db.mu.Lock()
	defer v.db.mu.Unlock()
	if v.db.closed {
		return nil, flags, sqlite3.CANTOPEN
	}
	h := v.fileOf(name)
	if h == nil {
		// Another database (ATTACH), a super-journal: not pre-opened.
		return nil, flags, sqlite3.CANTOPEN
	}
	if err := vfskit.CheckOpen(h.kind, flags); err != nil {
		return nil, flags, err
	}
	v.db.openFiles++
	return &file{h: h, FileLock: vfskit.NewFileLock(&h.locks, flags&vfs.OPEN_READONLY != 0)}, flags, nil
}

// Delete empties the journal or WAL (the pre-opened files stay in OPFS,
// an empty one counts as absent). SQLite never deletes the main database.
func (v *opfsVFS) Delete(name string, syncDir bool) error {
	h := v.fileOf(name)
	if h == nil || h.kind == fileMain {
		return sqlite3.IOERR_DELETE_NOENT
	}
	if h.sah.IsUndefined() {
		return sqlite3.IOERR_DELETE
	}
	if err := h.truncate(0); err != nil {
		return vfskit.IOError(err, sqlite3.IOERR_DELETE)
	}
	if syncDir {
		if err := h.flush(); err != nil {
			return vfs.SystemError(err, sqlite3.IOERR_DELETE)
		}
	}
	return nil
}

// Access: the main database always exists; the journal and the WAL exist
// when they are not empty; nothing else exists.
func (v *opfsVFS) Access(name string, flags vfs.AccessFlag) (bool, error) {
	h := v.fileOf(name)
	if h == nil {
		return false, nil
	}
	return h.kind == fileMain || h.size > 0, nil
}

func (v *opfsVFS) FullPathname(name string) (string, error) { return vfskit.Normalize(name), nil }

// file is one SQLite file object on a pre-opened handle. Connections on the
// same DB share the handle; each file has its own lock level.
type file struct {
	vfskit.FileLock
	h      *handle
	closed bool
}

var (
	_ vfs.FileLockState = &file{}
	_ vfs.FileSizeHint  = &file{}
)

// Counters of the I/O that reached JS (tests compare them with
// opfsyncIO.calls to prove one crossing per read and write).
var ioStats struct{ reads, writes, syncs int64 }

func (f *file) Close() error {
	if f.closed {
		return nil
	}
	f.closed = true
	db := f.h.db
	db.mu.Lock()
	db.openFiles--
	if db.closed && db.openFiles == 0 {
		vfs.Unregister(db.vfsName) // Close left it registered for us
	}
	db.mu.Unlock()
	return f.Unlock(vfs.LOCK_NONE)
}

func (f *file) ReadAt(b []byte, off int64) (int, error) {
	n, err := f.h.readAt(b, off)
	if err != nil && err != io.EOF {
		return n, vfs.SystemError(err, sqlite3.IOERR_READ)
	}
	return n, err
}

// readAt reads at off; past the end of the file it zero-fills the rest of
// b and returns io.EOF (SQLite's short read, SQLITE_IOERR_SHORT_READ).
func (h *handle) readAt(b []byte, off int64) (int, error) {
	if h.sah.IsUndefined() {
		return 0, errClosed
	}
	if len(b) == 0 {
		return 0, nil
	}
	if off >= h.size {
		clear(b)
		return 0, io.EOF
	}
	ioStats.reads++
	n, err := h.db.io.number(h.db.io.read.Invoke(h.sah, jsutil.PtrOf(b), len(b), off))
	runtime.KeepAlive(b)
	if err != nil {
		return 0, fmt.Errorf("opfs: read %s at %d: %w", h.name, off, err)
	}
	if int(n) < len(b) {
		clear(b[n:])
		return int(n), io.EOF
	}
	return int(n), nil
}

func (f *file) WriteAt(b []byte, off int64) (int, error) {
	if f.ReadOnly() {
		return 0, sqlite3.READONLY
	}
	n, err := f.h.writeAt(b, off)
	if err != nil {
		return n, vfskit.IOError(err, sqlite3.IOERR_WRITE)
	}
	return n, nil
}

var errClosed = errors.New("opfs: the database was closed (DB.Close) while SQLite still used it")

// errShortWrite: the handle wrote fewer bytes than asked (no space).
var errShortWrite = &jsutil.Error{Name: "QuotaExceededError", Message: "short write"}

func (h *handle) writeAt(b []byte, off int64) (int, error) {
	if h.sah.IsUndefined() {
		return 0, errClosed
	}
	if len(b) == 0 {
		return 0, nil
	}
	ioStats.writes++
	n, err := h.db.io.number(h.db.io.write.Invoke(h.sah, jsutil.PtrOf(b), len(b), off))
	runtime.KeepAlive(b)
	if err != nil {
		h.resize()
		return 0, fmt.Errorf("opfs: write %s at %d: %w", h.name, off, err)
	}
	if end := off + n; end > h.size {
		h.size = end
	}
	if int(n) < len(b) {
		return int(n), fmt.Errorf("opfs: write %s at %d: %w", h.name, off, errShortWrite)
	}
	return int(n), nil
}

// resize re-reads the size after a failed write or truncate.
func (h *handle) resize() {
	if n, err := h.db.io.number(h.db.io.size.Invoke(h.sah)); err == nil {
		h.size = n
	}
}

func (f *file) Truncate(size int64) error {
	if f.ReadOnly() {
		return sqlite3.READONLY
	}
	return vfskit.IOError(f.h.truncate(size), sqlite3.IOERR_TRUNCATE)
}

func (h *handle) truncate(size int64) error {
	if h.sah.IsUndefined() {
		return errClosed
	}
	if _, err := h.db.io.number(h.db.io.truncate.Invoke(h.sah, size)); err != nil {
		h.resize()
		return fmt.Errorf("opfs: truncate %s to %d: %w", h.name, size, err)
	}
	h.size = size
	return nil
}

// SizeHint grows the file ahead of a large write (SQLITE_FCNTL_SIZE_HINT).
func (f *file) SizeHint(size int64) error {
	if size <= f.h.size || f.ReadOnly() {
		return nil
	}
	return vfskit.IOError(f.h.truncate(size), sqlite3.IOERR_TRUNCATE)
}

// Sync is FileSystemSyncAccessHandle.flush(): every write so far reaches
// the disk.
func (f *file) Sync(flags vfs.SyncFlag) error {
	if err := f.h.flush(); err != nil {
		return vfs.SystemError(err, sqlite3.IOERR_FSYNC)
	}
	return nil
}

func (h *handle) flush() error {
	if h.sah.IsUndefined() {
		return errClosed
	}
	ioStats.syncs++
	if _, err := h.db.io.number(h.db.io.flush.Invoke(h.sah)); err != nil {
		return fmt.Errorf("opfs: flush %s: %w", h.name, err)
	}
	return nil
}

// Size is the cached size: the access handle is exclusive, so only this
// VFS changes the file.
func (f *file) Size() (int64, error) {
	if f.h.sah.IsUndefined() {
		return 0, vfs.SystemError(errClosed, sqlite3.IOERR_FSTAT)
	}
	return f.h.size, nil
}

func (*file) SectorSize() int { return 4096 }

// DeviceCharacteristics: POWERSAFE_OVERWRITE (a write never damages bytes
// outside its range; SQLite's default on Unix too). Nothing about atomic or
// ordered writes is promised: flush() is the only ordering point.
func (*file) DeviceCharacteristics() vfs.DeviceCharacteristic {
	return vfs.IOCAP_POWERSAFE_OVERWRITE | vfs.IOCAP_SUBPAGE_READ
}
