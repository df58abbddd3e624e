//go:build js && wasm

package main

import (
	"context"
	"errors"

	"github.com/opfsync/opfsync/pkg/syncengine"
	"github.com/opfsync/opfsync/wasm/internal/bridge"
	"github.com/opfsync/opfsync/wasm/internal/idb"
	"github.com/opfsync/opfsync/wasm/internal/opfs"
)

// storageDir is the OPFS directory, and the IndexedDB name prefix, that
// holds every opfsync database.
const storageDir = "opfsync"

// openStorage opens the storage the page asked for:
//
//   - "opfs" (the default): OPFS files through pre-opened sync access
//     handles where the browser has them, otherwise (older WebKit, some
//     private modes, no dedicated worker) the IndexedDB VFS. A database that
//     already lives in IndexedDB stays there when OPFS becomes available
//     (a browser update), so the data never seems to vanish.
//   - "indexeddb": the IndexedDB VFS, even where OPFS exists.
//   - "memory": an in-memory database (explicit only: never a fallback).
//
// The Storage's Kind says which one it chose.
func openStorage(ctx context.Context, name, kind string) (bridge.Storage, error) {
	switch kind {
	case "memory":
		return bridge.OpenMemory(name), nil
	case "indexeddb":
		return openIDB(ctx, name)
	}
	db, err := opfs.Open(ctx, storageDir, name)
	switch {
	case errors.Is(err, opfs.ErrUnavailable):
		return openIDB(ctx, name)
	case errors.Is(err, opfs.ErrLocked):
		return bridge.Storage{}, lockedError(name, err)
	case err != nil:
		return bridge.Storage{}, &syncengine.Error{Code: syncengine.CodeStorage, Message: "open OPFS database " + name, Err: err}
	}
	if db.Empty() {
		if inIDB, err := idb.Exists(ctx, storageDir, name); err == nil && inIDB {
			db.Close()
			return openIDB(ctx, name)
		}
	}
	return bridge.Storage{Path: db.Path(), VFS: db.VFSName(), Kind: "opfs", Close: db.Close}, nil
}

func openIDB(ctx context.Context, name string) (bridge.Storage, error) {
	db, err := idb.Open(ctx, storageDir, name)
	switch {
	case errors.Is(err, idb.ErrStalled):
		return bridge.Storage{}, &syncengine.Error{Code: syncengine.CodeLocked,
			Message: "database " + name + " is still held in IndexedDB by a worker that was stopped in the middle of a write (WebKit can keep such a transaction until the browser restarts): try again later", Err: err}
	case errors.Is(err, idb.ErrLocked):
		return bridge.Storage{}, lockedError(name, err)
	case errors.Is(err, idb.ErrUnavailable):
		return bridge.Storage{}, &syncengine.Error{Code: syncengine.CodeStorage,
			Message: "no persistent storage in this browser context: neither OPFS sync access handles nor IndexedDB with Web Locks are available; open the store with storage: 'memory' to run without persistence", Err: err}
	case err != nil:
		return bridge.Storage{}, &syncengine.Error{Code: syncengine.CodeStorage, Message: "open IndexedDB database " + name, Err: err}
	}
	return bridge.Storage{Path: db.Path(), VFS: db.VFSName(), Kind: "indexeddb", Blocking: true, Close: db.Close}, nil
}

// deleteStorage removes database name from OPFS and from IndexedDB
// (wherever it is; a storage this context lacks holds nothing of it). It
// fails with CodeLocked while any context has the database open.
func deleteStorage(ctx context.Context, name string) error {
	err := opfs.Delete(ctx, storageDir, name)
	switch {
	case err == nil, errors.Is(err, opfs.ErrUnavailable):
	case errors.Is(err, opfs.ErrLocked):
		return lockedError(name, err)
	default:
		return &syncengine.Error{Code: syncengine.CodeStorage, Message: "delete OPFS database " + name, Err: err}
	}
	err = idb.Delete(ctx, storageDir, name)
	switch {
	case err == nil, errors.Is(err, idb.ErrUnavailable):
		return nil
	case errors.Is(err, idb.ErrLocked):
		return lockedError(name, err)
	default:
		return &syncengine.Error{Code: syncengine.CodeStorage, Message: "delete IndexedDB database " + name, Err: err}
	}
}

func lockedError(name string, err error) error {
	return &syncengine.Error{Code: syncengine.CodeLocked,
		Message: "database " + name + " is open in another tab or worker; close it there, or use the tab that holds it", Err: err}
}
