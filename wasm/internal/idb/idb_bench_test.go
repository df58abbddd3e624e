//go:build js && wasm

package idb

import (
	"context"
	"strconv"
	"testing"

	"github.com/opfsync/opfsync/pkg/protocol"
	"github.com/opfsync/opfsync/pkg/syncengine"
)

// BenchmarkEnginePut is one engine write (record + outbox + meta: one
// commit, one IndexedDB transaction) with the engine's pragmas; compare
// with opfs.BenchmarkEnginePut.
func BenchmarkEnginePut(b *testing.B) {
	db, _ := openTestDB(b)
	ctx := context.Background()
	eng, err := syncengine.Open(ctx, syncengine.Options{Path: db.Path(), VFS: db.VFSName(), Schema: notesSchema})
	if err != nil {
		b.Fatal(err)
	}
	defer eng.Close()
	for i := 0; b.Loop(); i++ {
		if _, err := eng.Put(ctx, "notes", syncengine.Record{"id": "n" + strconv.Itoa(i%500), "body": "note " + strconv.Itoa(i)}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkColdScan reads 5,000 records back after a re-open, from
// IndexedDB block loads (read-ahead) through an empty page cache.
func BenchmarkColdScan(b *testing.B) {
	db, name := openTestDB(b)
	ctx := context.Background()
	eng, err := syncengine.Open(ctx, syncengine.Options{Path: db.Path(), VFS: db.VFSName(), Schema: notesSchema})
	if err != nil {
		b.Fatal(err)
	}
	var writes []syncengine.Write
	for i := range 5000 {
		writes = append(writes, syncengine.Write{Op: protocol.OpPut, Collection: "notes", ID: "n" + strconv.Itoa(i), Fields: syncengine.Record{"body": "a note of a few words " + strconv.Itoa(i)}})
	}
	if _, err := eng.Apply(ctx, writes...); err != nil {
		b.Fatal(err)
	}
	eng.Close()
	for b.Loop() {
		db = reopen(b, db, name)
		eng, err := syncengine.Open(ctx, syncengine.Options{Path: db.Path(), VFS: db.VFSName(), Schema: notesSchema})
		if err != nil {
			b.Fatal(err)
		}
		rows, err := eng.Query(ctx, "SELECT count(*), sum(length(body)) FROM notes")
		if err != nil || len(rows.Values) != 1 {
			b.Fatal(rows, err)
		}
		eng.Close()
	}
	b.ReportMetric(float64(db.stats.loads), "loads/last-open")
}
