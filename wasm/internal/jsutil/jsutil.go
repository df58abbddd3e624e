//go:build js && wasm

// Package jsutil holds the few JavaScript helpers the wasm packages share:
// awaiting a Promise from a goroutine, and reading a thrown JS error.
package jsutil

import (
	"context"
	"errors"
	"fmt"
	"unsafe"

	"github.com/hack-pad/safejs"
)

// Error is a JavaScript exception (usually a DOMException) seen from Go:
// its name ("QuotaExceededError", "NoModificationAllowedError", …) and
// message.
type Error struct {
	Name    string
	Message string
}

func (e *Error) Error() string {
	if e.Message == "" {
		return e.Name
	}
	return e.Name + ": " + e.Message
}

// ToError reads name and message of a thrown or returned JS value.
func ToError(v safejs.Value) *Error {
	e := &Error{Name: "Error"}
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

// ErrorName returns the JS error name in err's chain, or "".
func ErrorName(err error) string {
	var je *Error
	if errors.As(err, &je) {
		return je.Name
	}
	return ""
}

// Await waits for the Promise p to settle and returns its value, or the
// rejection as a *Error. It must run on a goroutine, never inside a
// js.FuncOf callback (that kills the Go instance). If ctx ends first, await
// returns ctx's error and, once p settles, hands a late value to cleanup (if
// not nil) so that nothing it holds, such as an access handle, leaks.
func Await(ctx context.Context, p safejs.Value, cleanup func(safejs.Value)) (safejs.Value, error) {
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
		e := &Error{Name: "Error", Message: "promise rejected"}
		if len(args) > 0 {
			e = ToError(args[0])
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

// CallAwait calls v.m(args...) and awaits the Promise it returns.
func CallAwait(ctx context.Context, v safejs.Value, m string, cleanup func(safejs.Value), args ...any) (safejs.Value, error) {
	p, err := v.Call(m, args...)
	if err != nil {
		return safejs.Undefined(), err
	}
	return Await(ctx, p, cleanup)
}

// PtrOf returns the linear-memory offset of b's first byte (what JS reads
// at through globalThis.opfsyncMem). The caller keeps b alive
// (runtime.KeepAlive) until the JS call returned.
func PtrOf(b []byte) float64 {
	return float64(uintptr(unsafe.Pointer(unsafe.SliceData(b))))
}
