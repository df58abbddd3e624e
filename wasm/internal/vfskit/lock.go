package vfskit

import (
	"github.com/ncruces/go-sqlite3"
	"github.com/ncruces/go-sqlite3/vfs"
)

// SQLite's file locks, as bookkeeping. Across contexts (tabs, workers) each
// VFS already excludes everyone else (an exclusive access handle, a Web
// Lock), so these levels only arbitrate between connections of this process
// on the same file, the way memdb does it, except that a lock that cannot
// be had fails with SQLITE_BUSY at once (nothing else can run while we
// would wait: SQLite runs on one goroutine). They are what SQLite expects to
// see: LockState (SQLITE_FCNTL_LOCKSTATE) reports the level a file holds,
// and locking_mode=EXCLUSIVE simply never unlocks.

// Locks is the lock state of one file shared by every connection on it.
type Locks struct {
	shared   int
	reserved bool
	pending  bool
}

// FileLock is one SQLite file object's lock level on a shared file. Embed
// it in a vfs.File to implement Lock, Unlock, CheckReservedLock and
// LockState.
type FileLock struct {
	locks    *Locks
	level    vfs.LockLevel
	readOnly bool
}

// NewFileLock returns an unlocked FileLock on the shared state l. A
// read-only file cannot take RESERVED or above (SQLITE_IOERR_LOCK).
func NewFileLock(l *Locks, readOnly bool) FileLock { return FileLock{locks: l, readOnly: readOnly} }

// ReadOnly reports whether the file was opened read-only.
func (f *FileLock) ReadOnly() bool { return f.readOnly }

// Lock raises the level to lock, or fails with SQLITE_BUSY when another
// connection's level forbids it.
func (f *FileLock) Lock(lock vfs.LockLevel) error {
	if f.level >= lock {
		return nil
	}
	if f.readOnly && lock >= vfs.LOCK_RESERVED {
		return sqlite3.IOERR_LOCK
	}
	l := f.locks
	switch lock {
	case vfs.LOCK_SHARED:
		if l.pending {
			return sqlite3.BUSY
		}
		l.shared++
	case vfs.LOCK_RESERVED:
		if l.reserved {
			return sqlite3.BUSY
		}
		l.reserved = true
	case vfs.LOCK_EXCLUSIVE:
		if f.level == vfs.LOCK_RESERVED {
			f.level = vfs.LOCK_PENDING
			l.pending = true
		}
		if l.shared > 1 {
			return sqlite3.BUSY // other readers: SQLite retries or gives up
		}
	}
	f.level = lock
	return nil
}

// Unlock lowers the level to lock.
func (f *FileLock) Unlock(lock vfs.LockLevel) error {
	if f.level <= lock {
		return nil
	}
	l := f.locks
	if f.level >= vfs.LOCK_RESERVED {
		l.reserved = false
	}
	if f.level >= vfs.LOCK_PENDING {
		l.pending = false
	}
	if lock < vfs.LOCK_SHARED {
		l.shared--
	}
	f.level = lock
	return nil
}

// CheckReservedLock reports whether any connection holds RESERVED or above.
func (f *FileLock) CheckReservedLock() (bool, error) {
	if f.level >= vfs.LOCK_RESERVED {
		return true, nil
	}
	return f.locks.reserved, nil
}

// LockState is the level this file holds (SQLITE_FCNTL_LOCKSTATE).
func (f *FileLock) LockState() vfs.LockLevel { return f.level }
