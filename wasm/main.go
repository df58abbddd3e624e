//go:build js && wasm

// Command wasm is the opfsync engine as a WebAssembly module for a dedicated
// Web Worker. This first version opens the engine on an in-memory SQLite
// database (the OPFS VFS and the worker bridge come with the browser
// runtime), checks a write and a read end to end, and announces readiness to
// the worker's owner with postMessage({type: "ready", ...}) (or on the
// console when there is no postMessage, e.g. under Node), again in answer to
// any message it receives.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/hack-pad/safejs"
	_ "github.com/ncruces/go-sqlite3/vfs/memdb"
	"github.com/opfsync/opfsync/pkg/syncengine"
)

func main() {
	ready, err := start(context.Background())
	if err != nil {
		fmt.Fprintln(os.Stderr, "opfsync:", err)
		announce(map[string]any{"type": "error", "message": err.Error()})
		os.Exit(1)
	}
	// A registered callback keeps the Go instance alive between events (a
	// bare select{} would be a deadlock to the runtime). The bridge that
	// serves the JS client replaces this in the browser runtime.
	onMessage, err := safejs.FuncOf(func(_ safejs.Value, args []safejs.Value) any {
		announce(ready)
		return nil
	})
	if err == nil {
		err = safejs.Global().Set("onmessage", onMessage)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "opfsync: register onmessage:", err)
	}
	announce(ready)
	select {}
}

// start opens the engine in memory and proves a round trip through SQLite.
func start(ctx context.Context) (map[string]any, error) {
	schema := &syncengine.Schema{Version: 1, Collections: map[string]syncengine.Collection{
		"selfcheck": {Fields: map[string]syncengine.FieldType{"ok": syncengine.TypeBoolean}},
	}}
	eng, err := syncengine.Open(ctx, syncengine.Options{Path: "/opfsync-selfcheck", VFS: "memdb", Schema: schema})
	if err != nil {
		return nil, fmt.Errorf("open engine: %w", err)
	}
	if _, err := eng.Put(ctx, "selfcheck", syncengine.Record{"id": "1", "ok": true}); err != nil {
		return nil, fmt.Errorf("self-check write: %w", err)
	}
	rec, err := eng.Get(ctx, "selfcheck", "1")
	if err != nil || rec["ok"] != true {
		return nil, fmt.Errorf("self-check read: got %v, %v", rec, err)
	}
	return map[string]any{"type": "ready", "clientId": eng.ClientID(), "engineSchema": syncengine.EngineSchemaVersion}, nil
}

// announce posts msg to the worker's owner, or prints it.
func announce(msg map[string]any) {
	post, err := safejs.Global().Get("postMessage")
	if err == nil && post.Type() == safejs.TypeFunction {
		v, err := safejs.ValueOf(msg)
		if err == nil {
			if _, err = safejs.Global().Call("postMessage", v); err == nil {
				return
			}
		}
		fmt.Fprintln(os.Stderr, "opfsync: postMessage:", err)
	}
	fmt.Println("opfsync:", msg["type"], msg)
}
