// Package vfskit holds what the browser SQLite VFSes (wasm/internal/opfs and
// wasm/internal/idb) share: the three files a database may need, the
// bookkeeping of SQLite's lock levels between connections of one process,
// and the checks on database names. It has no syscall/js, so it builds and
// is tested natively.
package vfskit

import (
	"fmt"
	"strings"

	"github.com/ncruces/go-sqlite3"
	"github.com/ncruces/go-sqlite3/util/vfsutil"
	"github.com/ncruces/go-sqlite3/vfs"
)

// Kind is one of the files of a database: the main file, the rollback
// journal or the WAL. SQLite names them path, path+"-journal", path+"-wal".
type Kind int

// The files of a database, in the order the VFSes keep them.
const (
	Main Kind = iota
	Journal
	WAL
	NumKinds
)

// Suffixes are the name suffixes SQLite gives each kind.
var Suffixes = [NumKinds]string{"", "-journal", "-wal"}

// openFlags is the open flag SQLite uses for each kind.
var openFlags = [NumKinds]vfs.OpenFlag{Main: vfs.OPEN_MAIN_DB, Journal: vfs.OPEN_MAIN_JOURNAL, WAL: vfs.OPEN_WAL}

// Normalize returns name as the VFSes compare it: one leading slash.
func Normalize(name string) string { return "/" + strings.TrimLeft(name, "/") }

// KindOf reports which file of the database at path (as Normalize returns
// it) SQLite means by name, and false for any other name (another database,
// a super-journal).
func KindOf(path, name string) (Kind, bool) {
	name = Normalize(name)
	for k, s := range Suffixes {
		if name == path+s {
			return Kind(k), true
		}
	}
	return 0, false
}

// CheckOpen refuses (with SQLITE_CANTOPEN) an open whose flags do not match
// the kind of file name resolved to.
func CheckOpen(k Kind, flags vfs.OpenFlag) error {
	if flags&openFlags[k] == 0 {
		return sqlite3.CANTOPEN
	}
	return nil
}

// TempFile serves the files that are not part of the database (statement
// journals, sorter spills, temporary databases) from memory, as
// temp_store=MEMORY would, and returns false for every other file. The
// OPEN_MEMORY flag tells SQLite so.
func TempFile(name string, flags vfs.OpenFlag) (vfs.File, vfs.OpenFlag, bool) {
	const temp = vfs.OPEN_TEMP_DB | vfs.OPEN_TRANSIENT_DB | vfs.OPEN_TEMP_JOURNAL | vfs.OPEN_SUBJOURNAL
	if name == "" || flags&temp != 0 {
		return &vfsutil.SliceFile{}, flags | vfs.OPEN_MEMORY, true
	}
	return nil, flags, false
}

// CheckName refuses database names a browser store cannot hold or that
// would escape their directory; pkg prefixes the error ("opfs", "idb").
func CheckName(pkg, name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\\\x00") {
		return fmt.Errorf("%s: invalid database name %q", pkg, name)
	}
	return nil
}

// VFSName returns a VFS name unique per seq that keeps the characters of
// name needing no escaping in a URI: prefix-seq-name.
func VFSName(prefix string, seq int64, name string) string {
	var b strings.Builder
	for _, r := range name {
		if r < 128 && (r == '-' || r == '_' || r == '.' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9') {
			b.WriteRune(r)
		}
		if b.Len() >= 32 {
			break
		}
	}
	return fmt.Sprintf("%s-%d-%s", prefix, seq, b.String())
}

// CodedError is an error that also answers errors.As with a
// sqlite3.ErrorCode, so code that classifies SQLite errors (e.g.
// syncengine.CodeOf) classifies it too.
type CodedError struct {
	Msg  string
	Code sqlite3.ErrorCode
}

func (e *CodedError) Error() string { return e.Msg }

// As sets a *sqlite3.ErrorCode target to the error's code.
func (e *CodedError) As(target any) bool {
	if p, ok := target.(*sqlite3.ErrorCode); ok {
		*p = e.Code
		return true
	}
	return false
}
