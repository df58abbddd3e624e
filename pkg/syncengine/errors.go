package syncengine

import (
	"context"
	"errors"
	"fmt"

	"github.com/ncruces/go-sqlite3"
)

// Code classifies an engine error. The JS client exposes it as Error.code.
type Code string

// The error codes of the public contract.
const (
	CodeValidation Code = "VALIDATION" // the input is invalid; nothing was written
	CodeNotFound   Code = "NOT_FOUND"  // the record does not exist (or is deleted)
	CodeSchema     Code = "SCHEMA"     // the declared schema cannot be applied to this database
	CodeStorage    Code = "STORAGE"    // the storage failed (full, I/O error, corrupt)
	CodeLocked     Code = "LOCKED"     // another connection holds the database
	CodeClosed     Code = "CLOSED"     // the engine is closed
	CodeNetwork    Code = "NETWORK"    // the server could not be reached
	CodeInternal   Code = "INTERNAL"   // a bug; the message has the detail
)

// Error is the engine's error type: a code and a message that says what to
// do, wrapping the cause when there is one.
type Error struct {
	Code    Code
	Message string
	Err     error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// ErrClosed is returned by every call on a closed engine.
var ErrClosed = &Error{Code: CodeClosed, Message: "the store is closed; open it again"}

// CodeOf returns the code of err: the Code of the first *Error in its
// chain, a storage code for SQLite errors, and CodeInternal otherwise.
func CodeOf(err error) Code {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return CodeClosed
	}
	if rc, ok := sqliteErrorCode(err); ok {
		return sqliteCode(rc)
	}
	return CodeInternal
}

// sqliteErrorCode extracts the primary SQLite result code from err's chain.
func sqliteErrorCode(err error) (sqlite3.ErrorCode, bool) {
	var rc sqlite3.ErrorCode
	if errors.As(err, &rc) {
		return rc, true
	}
	return 0, false
}

func sqliteCode(rc sqlite3.ErrorCode) Code {
	switch rc {
	case sqlite3.BUSY, sqlite3.LOCKED:
		return CodeLocked
	case sqlite3.FULL, sqlite3.IOERR, sqlite3.CANTOPEN, sqlite3.CORRUPT, sqlite3.NOTADB, sqlite3.READONLY, sqlite3.PERM, sqlite3.NOMEM:
		return CodeStorage
	}
	return CodeInternal
}

func errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// storageErr classifies an SQLite failure during op as a typed engine error.
func storageErr(op string, err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	code := CodeOf(err)
	msg := op
	switch code {
	case CodeLocked:
		msg = op + ": the database is held by another tab, worker or process; close it there or wait"
	case CodeStorage:
		if rc, _ := sqliteErrorCode(err); rc == sqlite3.FULL {
			msg = op + ": storage is full; free space (delete data or grant quota) and retry; nothing was written"
		} else {
			msg = op + ": storage failed"
		}
	}
	return &Error{Code: code, Message: msg, Err: err}
}

// openErr reports a failure to open the database; a lock held elsewhere
// gets a message that says what to do.
func openErr(path string, err error) error {
	if CodeOf(err) == CodeLocked {
		return &Error{Code: CodeLocked, Message: "open " + path + ": the database is held by another tab, worker or process; close it there, or wait and retry", Err: err}
	}
	return err
}
