//go:build js && wasm

package opfs

import (
	"errors"
	"fmt"
	"runtime"

	"github.com/hack-pad/safejs"
	"github.com/opfsync/opfsync/wasm/internal/jsutil"
)

// io holds the opfsyncIO helpers (web/opfsync-io.js): one JS call per
// SQLite read or write.
type ioHelpers struct {
	read, write, truncate, size, flush, close, probe safejs.Value
}

func loadIO() (*ioHelpers, error) {
	g := safejs.Global()
	io, err := g.Get("opfsyncIO")
	if err != nil || io.Type() != safejs.TypeObject {
		return nil, errors.New("opfs: globalThis.opfsyncIO is missing: load opfsync-io.js (importScripts) in the worker before running the wasm")
	}
	h := &ioHelpers{}
	for name, dst := range map[string]*safejs.Value{
		"read": &h.read, "write": &h.write, "truncate": &h.truncate, "size": &h.size,
		"flush": &h.flush, "close": &h.close, "probe": &h.probe,
	} {
		f, err := io.Get(name)
		if err != nil || f.Type() != safejs.TypeFunction {
			return nil, fmt.Errorf("opfs: opfsyncIO.%s is missing: opfsync-io.js is out of date", name)
		}
		*dst = f
	}
	mem, err := g.Get("opfsyncMem")
	if err != nil || mem.Type() != safejs.TypeObject {
		return nil, errors.New("opfs: globalThis.opfsyncMem is not set: the worker must set it to the instance's exports.mem before running the wasm")
	}
	// Check that opfsyncMem really is this instance's memory.
	probe := []byte{1, 2, 3, 250}
	n, err := h.number(h.probe.Invoke(jsutil.PtrOf(probe), len(probe)))
	runtime.KeepAlive(probe)
	if err != nil || n != 256 {
		return nil, fmt.Errorf("opfs: globalThis.opfsyncMem is not this Go instance's memory (probe %v, %v)", n, err)
	}
	return h, nil
}

// number interprets a helper's answer: a number, or the Error it caught.
func (h *ioHelpers) number(v safejs.Value, err error) (int64, error) {
	if err != nil {
		return 0, err
	}
	if v.Type() == safejs.TypeNumber {
		f, err := v.Float()
		return int64(f), err
	}
	return 0, jsutil.ToError(v)
}
