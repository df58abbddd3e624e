//go:build js && wasm

package main

import (
	"context"
	"errors"

	"github.com/opfsync/opfsync/pkg/syncengine"
	"github.com/opfsync/opfsync/wasm/internal/bridge"
	"github.com/opfsync/opfsync/wasm/internal/opfs"
)

// opfsDir is the OPFS directory that holds every opfsync database.
const opfsDir = "opfsync"

// openStorage opens the storage the page asked for: OPFS files through the
// pre-opened sync access handles, or an in-memory database.
func openStorage(ctx context.Context, name, kind string) (bridge.Storage, error) {
	if kind == "memory" {
		return bridge.OpenMemory(name), nil
	}
	db, err := opfs.Open(ctx, opfsDir, name)
	switch {
	case errors.Is(err, opfs.ErrLocked):
		return bridge.Storage{}, &syncengine.Error{Code: syncengine.CodeLocked,
			Message: "database " + name + " is open in another tab or worker; close it there, or use the tab that holds it", Err: err}
	case errors.Is(err, opfs.ErrUnavailable):
		return bridge.Storage{}, &syncengine.Error{Code: syncengine.CodeStorage,
			Message: "OPFS sync access handles are not available in this browser context; open the store with storage: 'memory' or use a browser that supports OPFS", Err: err}
	case err != nil:
		return bridge.Storage{}, &syncengine.Error{Code: syncengine.CodeStorage, Message: "open OPFS database " + name, Err: err}
	}
	return bridge.Storage{Path: db.Path(), VFS: db.VFSName(), Kind: "opfs", Close: db.Close}, nil
}
