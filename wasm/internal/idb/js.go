//go:build js && wasm

package idb

import (
	"context"
	"errors"
	"fmt"
	"runtime"

	"github.com/hack-pad/safejs"
	"github.com/opfsync/opfsync/wasm/internal/jsutil"
)

// helpers is globalThis.opfsyncIDB (web/opfsync-io.js): every IndexedDB
// operation is one call that returns a Promise, awaited from a goroutine.
type helpers struct{ v safejs.Value }

func loadHelpers() (helpers, error) {
	g := safejs.Global()
	if idb, err := g.Get("indexedDB"); err != nil || idb.Type() != safejs.TypeObject {
		return helpers{}, fmt.Errorf("%w (no indexedDB in this context)", ErrUnavailable)
	}
	v, err := g.Get("opfsyncIDB")
	if err != nil || v.Type() != safejs.TypeObject {
		return helpers{}, errors.New("idb: globalThis.opfsyncIDB is missing: load opfsync-io.js (importScripts) in the worker before running the wasm")
	}
	for _, name := range []string{"lock", "exists", "open", "sizes", "load", "commit", "close", "remove"} {
		if f, err := v.Get(name); err != nil || f.Type() != safejs.TypeFunction {
			return helpers{}, fmt.Errorf("idb: opfsyncIDB.%s is missing: opfsync-io.js is out of date", name)
		}
	}
	if mem, err := g.Get("opfsyncMem"); err != nil || mem.Type() != safejs.TypeObject {
		return helpers{}, errors.New("idb: globalThis.opfsyncMem is not set: the worker must set it to the instance's exports.mem before running the wasm")
	}
	return helpers{v}, nil
}

// await calls opfsyncIDB.m(args...) and waits for its Promise. IndexedDB
// requests always settle, so nothing is ever abandoned.
func (h helpers) await(m string, args ...any) (safejs.Value, error) {
	return jsutil.CallAwait(context.Background(), h.v, m, nil, args...)
}

// load returns the stored blocks of file with indexes in [from, to).
func (h helpers) load(db safejs.Value, file int, from, to int64) (map[int64][]byte, error) {
	res, err := h.await("load", db, file, from, to)
	if err != nil {
		return nil, err
	}
	keys, err := res.Get("keys")
	if err != nil {
		return nil, err
	}
	n, err := keys.Length()
	if err != nil {
		return nil, err
	}
	data, err := res.Get("data")
	if err != nil {
		return nil, err
	}
	all := make([]byte, n*blockSize)
	if got, err := safejs.CopyBytesToGo(all, data); err != nil || got != len(all) {
		return nil, fmt.Errorf("idb: load %d blocks: copied %d bytes, %v", n, got, err)
	}
	blocks := make(map[int64][]byte, n)
	for i := range n {
		k, err := keys.Index(i)
		if err != nil {
			return nil, err
		}
		idx, err := k.Int()
		if err != nil {
			return nil, err
		}
		blocks[int64(idx)] = all[i*blockSize : (i+1)*blockSize : (i+1)*blockSize]
	}
	return blocks, nil
}

// commit stores blocks (back to back in data, keyed by keys: file, index
// pairs), deletes the cut ranges (file, first index pairs) and records the
// sizes (file, size pairs), in one transaction, and returns once it
// committed.
func (h helpers) commit(db safejs.Value, data []byte, keys, cuts, sizes []any) error {
	ptr := 0.0
	if len(data) > 0 {
		ptr = jsutil.PtrOf(data)
	}
	// The helper copies data out before it returns its Promise.
	p, err := h.v.Call("commit", db, ptr, keys, blockSize, cuts, sizes)
	runtime.KeepAlive(data)
	if err != nil {
		return err
	}
	_, err = jsutil.Await(context.Background(), p, nil)
	return err
}

func (h helpers) close(db safejs.Value) { _, _ = h.v.Call("close", db) }
