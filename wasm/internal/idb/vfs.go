//go:build js && wasm

package idb

import (
	"io"

	"github.com/ncruces/go-sqlite3"
	"github.com/ncruces/go-sqlite3/vfs"
	"github.com/opfsync/opfsync/wasm/internal/vfskit"
)

// idbVFS serves the three files of one DB. Each call blocks its goroutine
// until IndexedDB answered (when it needs IndexedDB at all).
type idbVFS struct{ db *DB }

func (v *idbVFS) fileOf(name string) *blockFile {
	if kind, ok := vfskit.KindOf(v.db.path, name); ok {
		return v.db.files[kind]
	}
	return nil
}

func (v *idbVFS) Open(name string, flags vfs.OpenFlag) (vfs.File, vfs.OpenFlag, error) {
	if f, flags, ok := vfskit.TempFile(name, flags); ok {
		return f, flags, nil
	}
	db := v.db
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.closed {
		return nil, flags, sqlite3.CANTOPEN
	}
	bf := v.fileOf(name)
	if bf == nil {
		return nil, flags, sqlite3.CANTOPEN // another database, a super-journal
	}
	if err := vfskit.CheckOpen(bf.kind, flags); err != nil {
		return nil, flags, err
	}
	db.openFiles++
	return &file{f: bf, FileLock: vfskit.NewFileLock(&bf.locks, flags&vfs.OPEN_READONLY != 0)}, flags, nil
}

// Delete empties the journal or WAL (SQLite never deletes the main
// database); with syncDir the emptying is stored before Delete returns.
func (v *idbVFS) Delete(name string, syncDir bool) error {
	db := v.db
	db.mu.Lock()
	defer db.mu.Unlock()
	f := v.fileOf(name)
	if f == nil || f.kind == vfskit.Main {
		return sqlite3.IOERR_DELETE_NOENT
	}
	if err := f.truncate(0); err != nil {
		return vfskit.IOError(err, sqlite3.IOERR_DELETE)
	}
	if syncDir {
		return vfskit.IOError(db.flush(), sqlite3.IOERR_DELETE)
	}
	return nil
}

// Access: the main database always exists; the journal and the WAL exist
// when they are not empty; nothing else exists.
func (v *idbVFS) Access(name string, flags vfs.AccessFlag) (bool, error) {
	v.db.mu.Lock()
	defer v.db.mu.Unlock()
	f := v.fileOf(name)
	return f != nil && (f.kind == vfskit.Main || f.size > 0), nil
}

func (v *idbVFS) FullPathname(name string) (string, error) { return vfskit.Normalize(name), nil }

// file is one SQLite file object; connections on the same DB share the
// blockFile, each has its own lock level.
type file struct {
	vfskit.FileLock
	f      *blockFile
	closed bool
}

var _ vfs.FileLockState = &file{}

func (f *file) Close() error {
	if f.closed {
		return nil
	}
	f.closed = true
	db := f.f.db
	db.mu.Lock()
	db.openFiles--
	if db.closed && db.openFiles == 0 {
		vfs.Unregister(db.vfsName) // Close left it registered for us
	}
	db.mu.Unlock()
	return f.Unlock(vfs.LOCK_NONE)
}

func (f *file) ReadAt(p []byte, off int64) (int, error) {
	f.f.db.mu.Lock()
	defer f.f.db.mu.Unlock()
	n, err := f.f.readAt(p, off)
	if err != nil && err != io.EOF {
		return n, vfs.SystemError(err, sqlite3.IOERR_READ)
	}
	return n, err
}

func (f *file) WriteAt(p []byte, off int64) (int, error) {
	if f.ReadOnly() {
		return 0, sqlite3.READONLY
	}
	f.f.db.mu.Lock()
	defer f.f.db.mu.Unlock()
	n, err := f.f.writeAt(p, off)
	return n, vfskit.IOError(err, sqlite3.IOERR_WRITE)
}

func (f *file) Truncate(size int64) error {
	if f.ReadOnly() {
		return sqlite3.READONLY
	}
	f.f.db.mu.Lock()
	defer f.f.db.mu.Unlock()
	return vfskit.IOError(f.f.truncate(size), sqlite3.IOERR_TRUNCATE)
}

// Sync stores every change to the database's files since the last sync in
// one IndexedDB transaction and returns when it committed.
func (f *file) Sync(flags vfs.SyncFlag) error {
	f.f.db.mu.Lock()
	defer f.f.db.mu.Unlock()
	return vfskit.IOError(f.f.db.flush(), sqlite3.IOERR_FSYNC)
}

func (f *file) Size() (int64, error) {
	f.f.db.mu.Lock()
	defer f.f.db.mu.Unlock()
	if f.f.db.closed {
		return 0, vfs.SystemError(errClosed, sqlite3.IOERR_FSTAT)
	}
	return f.f.size, nil
}

func (*file) SectorSize() int { return blockSize }

// DeviceCharacteristics: a write never damages bytes outside its range,
// and writes reach storage in order (a sync stores all of them at once, or
// none), so SQLite may skip the ordering syncs it needs elsewhere.
func (*file) DeviceCharacteristics() vfs.DeviceCharacteristic {
	return vfs.IOCAP_POWERSAFE_OVERWRITE | vfs.IOCAP_SUBPAGE_READ | vfs.IOCAP_SEQUENTIAL | vfs.IOCAP_SAFE_APPEND
}
