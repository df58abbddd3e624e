//go:build js && wasm

package vfstest

import (
	"context"
	"testing"

	"github.com/hack-pad/safejs"
	"github.com/opfsync/opfsync/wasm/internal/jsutil"
)

// The browser runner's hooks (tests/wasmexec/go_js_wasm_chromium_exec
// defines globalThis.goRunner in the worker that runs the tests).

// InBrowserRunner reports whether the tests run in the Chromium runner.
func InBrowserRunner() bool {
	r, err := safejs.Global().Get("goRunner")
	return err == nil && r.Type() == safejs.TypeObject
}

// A full quota, for real: the runner lowers the page origin's storage quota
// (CDP Storage.overrideQuotaForOrigin, through goRunner.setQuota), so
// writes past it fail with QuotaExceededError, exactly as on a full disk or
// a browser that evicts nothing more.

// SetQuota overrides the origin's quota (nil restores it).
func SetQuota(t testing.TB, bytes *int64) {
	t.Helper()
	r, _ := safejs.Global().Get("goRunner")
	var arg any = nil
	if bytes != nil {
		arg = float64(*bytes)
	}
	p, err := r.Call("setQuota", arg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := jsutil.Await(context.Background(), p, nil); err != nil {
		t.Fatalf("setQuota: %v", err)
	}
}

// Usage returns navigator.storage.estimate().usage.
func Usage(t testing.TB) int64 {
	t.Helper()
	nav, _ := safejs.Global().Get("navigator")
	storage, _ := nav.Get("storage")
	est, err := jsutil.CallAwait(context.Background(), storage, "estimate", nil)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := est.Get("usage")
	f, err := u.Float()
	if err != nil {
		t.Fatal(err)
	}
	return int64(f)
}

// LimitQuota sets the quota to the current usage plus headroom bytes until
// the test ends.
func LimitQuota(t testing.TB, headroom int64) {
	t.Helper()
	q := Usage(t) + headroom
	SetQuota(t, &q)
	t.Cleanup(func() { SetQuota(t, nil) })
}
