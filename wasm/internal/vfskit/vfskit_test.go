package vfskit

import (
	"errors"
	"testing"

	"github.com/ncruces/go-sqlite3"
	"github.com/ncruces/go-sqlite3/vfs"
)

func TestKindOf(t *testing.T) {
	for name, want := range map[string]Kind{"/a.db": Main, "a.db": Main, "//a.db-journal": Journal, "/a.db-wal": WAL} {
		if k, ok := KindOf("/a.db", name); !ok || k != want {
			t.Errorf("KindOf(%q) = %v, %v; want %v", name, k, ok, want)
		}
	}
	for _, name := range []string{"/b.db", "/a.db-shm", "/a.db-mj123", ""} {
		if _, ok := KindOf("/a.db", name); ok {
			t.Errorf("KindOf(%q) claims a file of a.db", name)
		}
	}
	if err := CheckOpen(WAL, vfs.OPEN_MAIN_DB); !errors.Is(err, sqlite3.CANTOPEN) {
		t.Errorf("opening the WAL as a main database: %v", err)
	}
	if err := CheckOpen(Main, vfs.OPEN_MAIN_DB|vfs.OPEN_CREATE); err != nil {
		t.Errorf("opening the main database: %v", err)
	}
}

func TestCheckNameAndVFSName(t *testing.T) {
	for _, bad := range []string{"", ".", "..", "a/b", `a\b`, "a\x00"} {
		if CheckName("x", bad) == nil {
			t.Errorf("CheckName accepted %q", bad)
		}
	}
	if err := CheckName("x", "notes.db"); err != nil {
		t.Error(err)
	}
	if got := VFSName("idb", 7, "my notes?.db"); got != "idb-7-mynotes.db" {
		t.Errorf("VFSName = %q", got)
	}
}

func TestCodedError(t *testing.T) {
	var code sqlite3.ErrorCode
	if err := error(&CodedError{Msg: "held", Code: sqlite3.BUSY}); !errors.As(err, &code) || code != sqlite3.BUSY || err.Error() != "held" {
		t.Errorf("CodedError: %v as %v", err, code)
	}
}

func TestLocksBetweenConnections(t *testing.T) {
	var l Locks
	a, b := NewFileLock(&l, false), NewFileLock(&l, false)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(a.Lock(vfs.LOCK_SHARED))
	must(b.Lock(vfs.LOCK_SHARED))
	must(a.Lock(vfs.LOCK_RESERVED))
	if err := b.Lock(vfs.LOCK_RESERVED); !errors.Is(err, sqlite3.BUSY) {
		t.Fatalf("second RESERVED: %v", err)
	}
	if r, _ := b.CheckReservedLock(); !r {
		t.Error("b does not see a's RESERVED")
	}
	if err := a.Lock(vfs.LOCK_EXCLUSIVE); !errors.Is(err, sqlite3.BUSY) {
		t.Fatalf("EXCLUSIVE with another reader: %v", err)
	}
	if a.LockState() != vfs.LOCK_PENDING {
		t.Fatalf("a waits at %v, want PENDING", a.LockState())
	}
	must(b.Unlock(vfs.LOCK_NONE))
	must(a.Lock(vfs.LOCK_EXCLUSIVE))
	if err := b.Lock(vfs.LOCK_SHARED); !errors.Is(err, sqlite3.BUSY) {
		t.Fatalf("SHARED during EXCLUSIVE: %v", err)
	}
	must(a.Unlock(vfs.LOCK_NONE))
	must(b.Lock(vfs.LOCK_RESERVED))
	ro := NewFileLock(&l, true)
	if err := ro.Lock(vfs.LOCK_RESERVED); !errors.Is(err, sqlite3.IOERR_LOCK) || !ro.ReadOnly() {
		t.Errorf("read-only RESERVED: %v", err)
	}
}
