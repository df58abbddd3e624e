// Command opfsync-server runs the opfsync sync server: the sync protocol
// (pkg/syncserver) on a SQLite file, or on a PostgreSQL database that
// several instances share, and optionally a folder of static files (the JS
// client, the wasm engine, a demo) at "/".
//
//	opfsync-server -addr 127.0.0.1:8080 -db ./data/opfsync.db -static web -token dev-token
//	OPFSYNC_POSTGRES_URL=postgres://opfsync:secret@db:5432/opfsync opfsync-server -addr :8080 -tokens tokens.json
//
// At least one of -token (one development token for user "dev"), -tokens
// (a JSON file mapping tokens to user ids) and -signing-key-file (a key that
// signed, expiring tokens are checked with) is required; several may be
// given together. A signed token is minted with
//
//	opfsync-server issue-token -signing-key-file F -user U -ttl 24h
//
// which prints it to stdout (see syncserver.SignedTokens for its format). The server
// logs "listening" with the actual address and URL (so -addr host:0 works),
// and shuts down gracefully on SIGINT or SIGTERM: it stops accepting
// connections, ends event streams, finishes the requests in flight, closes
// the store and exits 0.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
