//go:build js && wasm

package opfs

import (
	"context"
	"os"
	"testing"

	"github.com/opfsync/opfsync/pkg/syncengine"
)

var notesSchema = &syncengine.Schema{Version: 1, Collections: map[string]syncengine.Collection{
	"notes": {Fields: map[string]syncengine.FieldType{"body": syncengine.TypeText}},
}}

// The engine, with its own pragmas (checked WAL, EXCLUSIVE, FULL), on OPFS.
func TestEngineOnOPFS(t *testing.T) {
	ctx := context.Background()
	db, name := openTestDB(t)
	eng, err := syncengine.Open(ctx, syncengine.Options{Path: db.Path(), VFS: db.VFSName(), Schema: notesSchema})
	if err != nil {
		t.Fatal(err)
	}
	if mode := eng.JournalMode(); mode != "wal" {
		t.Errorf("engine journal mode %q, want wal", mode)
	}
	for i := range 20 {
		if _, err := eng.Put(ctx, "notes", syncengine.Record{"id": "n" + itoa(i), "body": "note " + itoa(i)}); err != nil {
			t.Fatal(err)
		}
	}
	clientID := eng.ClientID()
	// A second engine on the same DB (same worker) fails with LOCKED.
	if eng2, err := syncengine.Open(ctx, syncengine.Options{Path: db.Path(), VFS: db.VFSName(), Schema: notesSchema}); err == nil {
		eng2.Close()
		t.Error("second engine on the same database opened")
	} else if code := syncengine.CodeOf(err); code != syncengine.CodeLocked {
		t.Errorf("second engine: %v, want LOCKED", err)
	}
	// And a second Open of the files: ErrLocked, which the engine's
	// classification also calls LOCKED.
	if _, err := Open(ctx, testDir, name); syncengine.CodeOf(err) != syncengine.CodeLocked {
		t.Errorf("second opfs.Open: %v (code %s), want LOCKED", err, syncengine.CodeOf(err))
	}
	if err := eng.Close(); err != nil {
		t.Fatal(err)
	}
	db = reopen(t, db)
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
	requireOPFS(t)
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
			if _, err := eng.Put(ctx, "notes", syncengine.Record{"id": "p" + itoa(i), "body": "persisted " + itoa(i)}); err != nil {
				t.Fatal(err)
			}
		}
		t.Logf("wrote 100 notes as client %s", eng.ClientID())
	case "check":
		for i := range 100 {
			rec, err := eng.Get(ctx, "notes", "p"+itoa(i))
			if err != nil || rec == nil || rec["body"] != "persisted "+itoa(i) {
				t.Fatalf("note p%d in the second runner: %v, %v", i, rec, err)
			}
		}
		if n, err := eng.PendingCount(ctx); err != nil || n != 100 {
			t.Errorf("outbox in the second runner: %d, %v", n, err)
		}
		t.Logf("read 100 notes back in a new browser process, client %s", eng.ClientID())
		eng.Close()
		db.Close()
		if err := Delete(ctx, testDir, name); err != nil {
			t.Error(err)
		}
	default:
		t.Fatalf("OPFSYNC_PERSIST_PHASE=%q: want write or check", phase)
	}
}
