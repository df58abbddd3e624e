//go:build js && wasm

package opfs

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"unsafe"

	"github.com/hack-pad/safejs"
)

// jsError is a JavaScript exception (usually a DOMException) seen from Go:
// its name ("QuotaExceededError", "NoModificationAllowedError", …) and
// message.
type jsError struct {
	Name    string
	Message string
}

func (e *jsError) Error() string {
	if e.Message == "" {
		return e.Name
	}
	return e.Name + ": " + e.Message
}

// toJSError reads name and message of a thrown or returned JS value.
func toJSError(v safejs.Value) *jsError {
	e := &jsError{Name: "Error"}
	if v.Type() != safejs.TypeObject {
		if s, err := v.String(); err == nil {
			e.Message = s
		}
		return e
	}
	if n, err := v.Get("name"); err == nil && n.Type() == safejs.TypeString {
		e.Name, _ = n.String()
	}
	if m, err := v.Get("message"); err == nil && m.Type() == safejs.TypeString {
		e.Message, _ = m.String()
	}
	return e
}

// errorName returns the JS error name in err's chain, or "".
func errorName(err error) string {
	var je *jsError
	if errors.As(err, &je) {
		return je.Name
	}
	return ""
}

// await waits for the Promise p to settle and returns its value, or the
// rejection as a *jsError. It must run on a goroutine, never inside a
// js.FuncOf callback (that kills the Go instance). If ctx ends first, await
// returns ctx's error and, once p settles, hands a late value to cleanup (if
// not nil) so that nothing it holds, such as an access handle, leaks.
func await(ctx context.Context, p safejs.Value, cleanup func(safejs.Value)) (safejs.Value, error) {
	type result struct {
		v   safejs.Value
		err error
	}
	ch := make(chan result, 1)
	onOK, err := safejs.FuncOf(func(_ safejs.Value, args []safejs.Value) any {
		v := safejs.Undefined()
		if len(args) > 0 {
			v = args[0]
		}
		ch <- result{v: v}
		return nil
	})
	if err != nil {
		return safejs.Undefined(), err
	}
	onErr, err := safejs.FuncOf(func(_ safejs.Value, args []safejs.Value) any {
		e := &jsError{Name: "Error", Message: "promise rejected"}
		if len(args) > 0 {
			e = toJSError(args[0])
		}
		ch <- result{err: e}
		return nil
	})
	if err != nil {
		onOK.Release()
		return safejs.Undefined(), err
	}
	release := func() { onOK.Release(); onErr.Release() }
	if _, err := p.Call("then", onOK, onErr); err != nil {
		release()
		return safejs.Undefined(), fmt.Errorf("not a promise: %w", err)
	}
	select {
	case r := <-ch:
		release()
		return r.v, r.err
	case <-ctx.Done():
		go func() {
			r := <-ch
			release()
			if r.err == nil && cleanup != nil {
				cleanup(r.v)
			}
		}()
		return safejs.Undefined(), ctx.Err()
	}
}

// callAwait calls v.m(args...) and awaits the Promise it returns.
func callAwait(ctx context.Context, v safejs.Value, m string, cleanup func(safejs.Value), args ...any) (safejs.Value, error) {
	p, err := v.Call(m, args...)
	if err != nil {
		return safejs.Undefined(), err
	}
	return await(ctx, p, cleanup)
}

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
	n, err := h.number(h.probe.Invoke(ptrOf(probe), len(probe)))
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
	return 0, toJSError(v)
}

// ptrOf returns the linear-memory offset of b's first byte. The caller
// keeps b alive (runtime.KeepAlive) until the JS call returned.
func ptrOf(b []byte) float64 {
	return float64(uintptr(unsafe.Pointer(unsafe.SliceData(b))))
}
