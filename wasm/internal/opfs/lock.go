//go:build js && wasm

package opfs

import (
	"github.com/ncruces/go-sqlite3"
	"github.com/ncruces/go-sqlite3/vfs"
)

// SQLite's file locks, as bookkeeping. Across contexts (tabs, workers) the
// access handles already exclude everyone else, so these levels only
// arbitrate between connections of this process on the same DB, the way
// memdb does it, except that a lock that cannot be had fails with
// SQLITE_BUSY at once (nothing else can run while we would wait: SQLite
// runs on one goroutine). They are what SQLite expects to see:
// LockState (SQLITE_FCNTL_LOCKSTATE) reports the level a file holds, and
// locking_mode=EXCLUSIVE simply never unlocks.

func (f *file) Lock(lock vfs.LockLevel) error {
	if f.lock >= lock {
		return nil
	}
	if f.readOnly && lock >= vfs.LOCK_RESERVED {
		return sqlite3.IOERR_LOCK
	}
	h := f.h
	switch lock {
	case vfs.LOCK_SHARED:
		if h.pending {
			return sqlite3.BUSY
		}
		h.shared++
	case vfs.LOCK_RESERVED:
		if h.reserved {
			return sqlite3.BUSY
		}
		h.reserved = true
	case vfs.LOCK_EXCLUSIVE:
		if f.lock == vfs.LOCK_RESERVED {
			f.lock = vfs.LOCK_PENDING
			h.pending = true
		}
		if h.shared > 1 {
			return sqlite3.BUSY // other readers: SQLite retries or gives up
		}
	}
	f.lock = lock
	return nil
}

func (f *file) Unlock(lock vfs.LockLevel) error {
	if f.lock <= lock {
		return nil
	}
	h := f.h
	if f.lock >= vfs.LOCK_RESERVED {
		h.reserved = false
	}
	if f.lock >= vfs.LOCK_PENDING {
		h.pending = false
	}
	if lock < vfs.LOCK_SHARED {
		h.shared--
	}
	f.lock = lock
	return nil
}

func (f *file) CheckReservedLock() (bool, error) {
	if f.lock >= vfs.LOCK_RESERVED {
		return true, nil
	}
	return f.h.reserved, nil
}

func (f *file) LockState() vfs.LockLevel { return f.lock }
