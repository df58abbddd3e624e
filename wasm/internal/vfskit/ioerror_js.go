//go:build js && wasm

package vfskit

import (
	"github.com/ncruces/go-sqlite3"
	"github.com/ncruces/go-sqlite3/vfs"
	"github.com/opfsync/opfsync/wasm/internal/jsutil"
)

// IOError tags a failed browser storage call for SQLite: SQLITE_FULL when
// the JS error is a QuotaExceededError (a full disk or quota), otherwise
// code; the JS error name stays in the message. nil stays nil.
func IOError(err error, code sqlite3.ExtendedErrorCode) error {
	if jsutil.ErrorName(err) == "QuotaExceededError" {
		return vfs.SystemError(err, sqlite3.FULL)
	}
	return vfs.SystemError(err, code)
}
