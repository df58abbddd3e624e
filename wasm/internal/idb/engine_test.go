//go:build js && wasm

package idb

import (
	"context"
	"os"
	"strconv"
	"testing"

	"github.com/opfsync/opfsync/pkg/syncengine"
)

var notesSchema = &syncengine.Schema{Version: 1, Collections: map[string]syncengine.Collection{
	"notes": {Fields: map[string]syncengine.FieldType{"body": syncengine.TypeText}},
}}

// The engine, with its own pragmas (checked WAL, EXCLUSIVE, FULL), on
// IndexedDB: one IndexedDB transaction per write, a second engine LOCKED,
// everything back after a re-open.
func TestEngineOnIDB(t *testing.T) {
	ctx := context.Background()
	db, name := openTestDB(t)
	eng, err := syncengine.Open(ctx, syncengine.Options{Path: db.Path(), VFS: db.VFSName(), Schema: notesSchema})
	if err != nil {
		t.Fatal(err)
	}
	if mode := eng.JournalMode(); mode != "wal" {
		t.Errorf("engine journal mode %q, want wal", mode)
	}
	before := db.stats.commits
	for i := range 20 {
		if _, err := eng.Put(ctx, "notes", syncengine.Record{"id": "n" + strconv.Itoa(i), "body": "note " + strconv.Itoa(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if n := db.stats.commits - before; n != 20 {
		t.Errorf("20 puts made %d IndexedDB transactions, want 20 (one per commit)", n)
	}
	clientID := eng.ClientID()
	if eng2, err := syncengine.Open(ctx, syncengine.Options{Path: db.Path(), VFS: db.VFSName(), Schema: notesSchema}); err == nil {
		eng2.Close()
		t.Error("second engine on the same database opened")
	} else if code := syncengine.CodeOf(err); code != syncengine.CodeLocked {
		t.Errorf("second engine: %v, want LOCKED", err)
	}
	if err := eng.Close(); err != nil {
		t.Fatal(err)
	}
	db = reopen(t, db, name)
	eng, err = syncengine.Open(ctx, syncengine.Options{Path: db.Path(), VFS: db.VFSName(), Schema: notesSchema})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	if eng.ClientID() != clientID {
		t.Errorf("client id changed across re-open: %s → %s", clientID, eng.ClientID())
	}
	rec, err := eng.Get(ctx, "notes", "n19")
	if err != nil || rec == nil || rec["body"] != "note 19" {
		t.Fatalf("after re-open: %v, %v", rec, err)
	}
	if n, err := eng.PendingCount(ctx); err != nil || n != 20 {
		t.Errorf("outbox after re-open: %d, %v; want 20", n, err)
	}
	if ok, err := eng.IntegrityCheck(ctx); err != nil || ok != "ok" {
		t.Errorf("integrity after re-open: %q, %v", ok, err)
	}
}

// Persistence across two runner processes (two browser launches on one
// profile): `make test-wasm-browser` runs this test with
// OPFSYNC_PERSIST_PHASE=write, then again in a new runner with
// OPFSYNC_PERSIST_PHASE=check and the same GO_JS_WASM_CHROMIUM_PROFILE.
func TestPersistAcrossRunners(t *testing.T) {
	phase := os.Getenv("OPFSYNC_PERSIST_PHASE")
	if phase == "" {
		t.Skip("set OPFSYNC_PERSIST_PHASE=write, then check, with one GO_JS_WASM_CHROMIUM_PROFILE (make test-wasm-browser does)")
	}
	requireIDB(t)
	ctx := context.Background()
	const name = "persist-across-runners.db"
	if phase == "write" {
		if err := Delete(ctx, testDir, name); err != nil {
			t.Fatal(err)
		}
	}
	db, err := Open(ctx, testDir, name)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	eng, err := syncengine.Open(ctx, syncengine.Options{Path: db.Path(), VFS: db.VFSName(), Schema: notesSchema})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	switch phase {
	case "write":
		for i := range 100 {
			if _, err := eng.Put(ctx, "notes", syncengine.Record{"id": "p" + strconv.Itoa(i), "body": "persisted " + strconv.Itoa(i)}); err != nil {
				t.Fatal(err)
			}
		}
	case "check":
		for i := range 100 {
			rec, err := eng.Get(ctx, "notes", "p"+strconv.Itoa(i))
			if err != nil || rec == nil || rec["body"] != "persisted "+strconv.Itoa(i) {
				t.Fatalf("note p%d in the second runner: %v, %v", i, rec, err)
			}
		}
		if n, err := eng.PendingCount(ctx); err != nil || n != 100 {
			t.Errorf("outbox in the second runner: %d, %v", n, err)
		}
	}
}
