//go:build js && wasm

// Command wasm is the opfsync engine as a WebAssembly module for a dedicated
// Web Worker. This first version opens the engine on an in-memory SQLite
// database (the OPFS VFS and the worker bridge come with the browser
// runtime) and reports readiness on the console.
package main

import (
	"context"
	"fmt"
	"os"

	_ "github.com/ncruces/go-sqlite3/vfs/memdb"
	"github.com/opfsync/opfsync/pkg/syncengine"
)

func main() {
	ctx := context.Background()
	eng, err := syncengine.Open(ctx, syncengine.Options{Path: "/opfsync", VFS: "memdb"})
	if err != nil {
		fmt.Fprintln(os.Stderr, "opfsync: open engine:", err)
		os.Exit(1)
	}
	fmt.Println("opfsync: engine ready, client", eng.ClientID())
	select {} // keep the module alive for the worker
}
