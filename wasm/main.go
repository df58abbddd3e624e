//go:build js && wasm

// Command wasm is the opfsync engine as a WebAssembly module for a dedicated
// Web Worker (web/opfsync-worker.js loads it). It registers
// globalThis.opfsyncBridge.request(json) for the page's requests, answers
// through globalThis.opfsyncPost(json), and calls globalThis.opfsyncReady()
// once it listens. The protocol is wasm/BRIDGE.md; the work is done by
// wasm/internal/bridge. This is the only package (with its internal ones)
// that touches syscall/js, always through hack-pad/safejs.
package main

import (
	"fmt"
	"os"
	"runtime/debug"

	"github.com/hack-pad/safejs"
	"github.com/opfsync/opfsync/pkg/syncengine"
	"github.com/opfsync/opfsync/wasm/internal/bridge"
	"github.com/opfsync/opfsync/wasm/internal/fetch"
)

// gcPercent trades memory for time: the worker's live heap is small (the
// data lives in SQLite) while a bulk apply allocates tens of MB of
// short-lived garbage, so the collector runs at 4x the live heap, not 2x.
const gcPercent = 300

func main() {
	debug.SetGCPercent(gcPercent)
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "opfsync:", err)
		os.Exit(1)
	}
	select {} // the registered callback keeps serving
}

func run() error {
	post, err := safejs.Global().Get("opfsyncPost")
	if err != nil || post.Type() != safejs.TypeFunction {
		return fmt.Errorf("globalThis.opfsyncPost is not a function: load opfsync.wasm through opfsync-worker.js")
	}
	b := bridge.New(func(msg string) {
		if _, err := post.Invoke(msg); err != nil {
			fmt.Fprintln(os.Stderr, "opfsync: post:", err)
		}
	}, bridge.Storages{Open: openStorage, Delete: deleteStorage}, func(url, token string) syncengine.Transport {
		return &fetch.Transport{URL: url, Token: token}
	})
	request, err := safejs.FuncOf(func(_ safejs.Value, args []safejs.Value) any {
		// A JS callback must never block: Receive only queues the string.
		// A non-string would read as "<object>": it is refused as not a
		// string instead.
		if len(args) == 1 && args[0].Type() == safejs.TypeString {
			if msg, err := args[0].String(); err == nil {
				b.Receive(msg)
				return nil
			}
		}
		b.Receive("") // answered with an error event
		return nil
	})
	if err != nil {
		return fmt.Errorf("register request handler: %w", err)
	}
	api, err := safejs.Global().Get("Object")
	if err == nil {
		api, err = api.New()
	}
	if err == nil {
		err = api.Set("request", request)
	}
	if err == nil {
		err = safejs.Global().Set("opfsyncBridge", api)
	}
	if err != nil {
		return fmt.Errorf("publish opfsyncBridge: %w", err)
	}
	if ready, err := safejs.Global().Get("opfsyncReady"); err == nil && ready.Type() == safejs.TypeFunction {
		if _, err := ready.Invoke(); err != nil {
			return fmt.Errorf("opfsyncReady: %w", err)
		}
	}
	return nil
}
