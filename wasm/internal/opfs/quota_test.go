//go:build js && wasm

package opfs

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/ncruces/go-sqlite3"
	"github.com/ncruces/go-sqlite3/vfs"
	"github.com/opfsync/opfsync/pkg/syncengine"
	"github.com/opfsync/opfsync/wasm/internal/vfskit/vfstest"
)

// A full quota, for real: the runner lowers the page origin's storage quota
// (CDP Storage.overrideQuotaForOrigin, through goRunner.setQuota), so OPFS
// writes past it throw QuotaExceededError, exactly as on a full disk or a
// browser that evicts nothing more.

var (
	setQuota   = vfstest.SetQuota
	limitQuota = vfstest.LimitQuota
)

func TestQuotaExceededIsFullAndKeepsTheDatabase(t *testing.T) {
	db, _ := openTestDB(t)
	conn := openConn(t, db, enginePragmas...)
	defer conn.Close()
	exec(t, conn, "CREATE TABLE kv (k INTEGER PRIMARY KEY, v BLOB NOT NULL)")
	m := model{}
	rng := rand.New(rand.NewPCG(9, 10))
	runRandomTransactions(t, conn, m, rng, 20)

	limitQuota(t, 2<<20)
	ins, _, err := conn.Prepare("INSERT INTO kv (k, v) VALUES (?, ?)")
	if err != nil {
		t.Fatal(err)
	}
	defer ins.Close()
	var full error
	k := int64(1 << 40)
	for i := 0; i < 10_000 && full == nil; i++ {
		v := make([]byte, 16<<10)
		for j := range v {
			v[j] = byte(rng.IntN(256))
		}
		ins.BindInt64(1, k)
		ins.BindBlob(2, v)
		if err := ins.Exec(); err != nil {
			full = err
			break
		}
		m[k] = v
		k++
	}
	if full == nil {
		t.Fatal("never ran out of quota")
	}
	t.Logf("after %d rows of 16 KiB: %v", k-1<<40, full)
	if !errors.Is(full, sqlite3.FULL) {
		t.Fatalf("error %v, want SQLITE_FULL", full)
	}
	// (ncruces keeps the VFS's message for IOERR and CANTOPEN only; the
	// file level shows it.)
	j := rawFile(t, db, "-journal", vfs.OPEN_MAIN_JOURNAL)
	if _, err := j.WriteAt(make([]byte, 8<<20), 0); err == nil || !strings.Contains(err.Error(), "QuotaExceededError") {
		t.Errorf("an 8 MiB write under the quota: %v, want QuotaExceededError", err)
	}
	if err := j.Truncate(0); err != nil {
		t.Fatal(err)
	}
	// Nothing half-written: exactly the committed rows, integrity ok, and
	// a large transaction that cannot fit rolls back whole.
	checkModel(t, conn, m)
	err = conn.Exec("BEGIN; INSERT INTO kv (v) SELECT randomblob(8000) FROM generate_series(1, 1000); COMMIT")
	if !errors.Is(err, sqlite3.FULL) {
		t.Fatalf("big transaction: %v, want SQLITE_FULL", err)
	}
	conn.Exec("ROLLBACK") // SQLite may already have rolled back
	checkModel(t, conn, m)

	// With room again, the same connection goes on.
	setQuota(t, nil)
	runRandomTransactions(t, conn, m, rng, 10)
	checkModel(t, conn, m)
}

// The engine reports a full quota as STORAGE, "storage is full", and the
// store stays usable.
func TestEngineReportsFullStorage(t *testing.T) {
	db, _ := openTestDB(t)
	ctx := context.Background()
	schema := &syncengine.Schema{Version: 1, Collections: map[string]syncengine.Collection{
		"notes": {Fields: map[string]syncengine.FieldType{"body": syncengine.TypeText}},
	}}
	eng, err := syncengine.Open(ctx, syncengine.Options{Path: db.Path(), VFS: db.VFSName(), Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	if _, err := eng.Put(ctx, "notes", syncengine.Record{"id": "first", "body": "kept"}); err != nil {
		t.Fatal(err)
	}
	limitQuota(t, 2<<20)
	body := strings.Repeat("x", 60<<10)
	var putErr error
	n := 0
	for ; n < 2000; n++ {
		if _, putErr = eng.Put(ctx, "notes", syncengine.Record{"id": "n" + itoa(n), "body": body}); putErr != nil {
			break
		}
	}
	if putErr == nil {
		t.Fatal("never ran out of quota")
	}
	t.Logf("after %d puts of 60 KiB: %v", n, putErr)
	if code := syncengine.CodeOf(putErr); code != syncengine.CodeStorage {
		t.Fatalf("code %s, want STORAGE", code)
	}
	if !strings.Contains(putErr.Error(), "storage is full") {
		t.Errorf("message does not say the storage is full: %v", putErr)
	}
	rec, err := eng.Get(ctx, "notes", "first")
	if err != nil || rec["body"] != "kept" {
		t.Fatalf("first record after FULL: %v, %v", rec, err)
	}
	if rec, err := eng.Get(ctx, "notes", "n"+itoa(n)); err != nil || rec != nil {
		t.Fatalf("the refused put is visible: %v, %v", rec, err)
	}
	setQuota(t, nil)
	if _, err := eng.Put(ctx, "notes", syncengine.Record{"id": "after", "body": "ok"}); err != nil {
		t.Fatalf("put after the quota came back: %v", err)
	}
}
