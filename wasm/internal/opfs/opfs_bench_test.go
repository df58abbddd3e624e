//go:build js && wasm

package opfs

import (
	"context"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/hack-pad/safejs"
	"github.com/ncruces/go-sqlite3"
	"github.com/ncruces/go-sqlite3/vfs"
	_ "github.com/ncruces/go-sqlite3/vfs/memdb"
	"github.com/opfsync/opfsync/pkg/syncengine"
)

// Benchmarks, in Chromium through the runner:
//
//	GOOS=js GOARCH=wasm go test -run='^$' -bench=. -benchtime=1000x -count=3 \
//	    -exec=$PWD/tests/wasmexec/go_js_wasm_chromium_exec ./wasm/internal/opfs/
//
// BenchmarkCommit is the journal-mode measurement behind the package
// comment: one single-row INSERT commit per op.

func BenchmarkCommit(b *testing.B) {
	warmUp(b)
	for _, bc := range []struct {
		name    string
		pragmas []string // nil: an in-memory database (memdb), for the CPU part alone
	}{
		{"wal-full", enginePragmas},
		{"wal-normal", []string{"PRAGMA locking_mode=EXCLUSIVE", "PRAGMA temp_store=MEMORY", "PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL"}},
		{"delete-full", []string{"PRAGMA temp_store=MEMORY", "PRAGMA journal_mode=DELETE", "PRAGMA synchronous=FULL"}},
		{"exclusive-delete-full", []string{"PRAGMA locking_mode=EXCLUSIVE", "PRAGMA temp_store=MEMORY", "PRAGMA journal_mode=DELETE", "PRAGMA synchronous=FULL"}},
		{"memdb", nil},
	} {
		b.Run(bc.name, func(b *testing.B) {
			conn := benchConn(b, bc.pragmas)
			defer conn.Close()
			st, _, err := conn.Prepare("INSERT INTO todos (title, done) VALUES (?, 0)")
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			syncs := ioStats.syncs
			for i := 0; b.Loop(); i++ {
				st.BindText(1, "todo number "+itoa(i))
				if err := st.Exec(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(ioStats.syncs-syncs)/float64(b.N), "flushes/op")
		})
	}
}

func benchConn(b *testing.B, pragmas []string) *sqlite3.Conn {
	var conn *sqlite3.Conn
	if pragmas == nil {
		c, err := sqlite3.Open("file:/bench-" + testName(b) + "?vfs=memdb")
		if err != nil {
			b.Fatal(err)
		}
		conn = c
	} else {
		db, _ := openTestDB(b)
		conn = openConn(b, db, pragmas...)
	}
	exec(b, conn, "CREATE TABLE todos (id INTEGER PRIMARY KEY, title TEXT, done INTEGER)")
	return conn
}

// warmUp runs a few thousand commits in every journal mode once per
// process: until V8 has tiered up the translated SQLite (several seconds on
// two busy cores), the first benchmark measured would be up to 3x slower than
// the same one run later, whatever it is.
var warmUpOnce sync.Once

func warmUp(b *testing.B) {
	warmUpOnce.Do(func() {
		for _, pragmas := range [][]string{
			{"PRAGMA locking_mode=EXCLUSIVE", "PRAGMA journal_mode=WAL", "PRAGMA synchronous=OFF"},
			{"PRAGMA journal_mode=DELETE", "PRAGMA synchronous=OFF"},
		} {
			conn := benchConn(b, pragmas)
			for i := range 2000 {
				exec(b, conn, "INSERT INTO todos (title, done) VALUES ('warm-up "+itoa(i)+"', 0)")
			}
			conn.Close()
		}
	})
}

// BenchmarkEnginePut is one engine write (record + outbox + meta, one
// commit) on OPFS with the engine's pragmas.
func BenchmarkEnginePut(b *testing.B) {
	db, _ := openTestDB(b)
	ctx := context.Background()
	eng, err := syncengine.Open(ctx, syncengine.Options{Path: db.Path(), VFS: db.VFSName(), Schema: notesSchema})
	if err != nil {
		b.Fatal(err)
	}
	defer eng.Close()
	for i := 0; b.Loop(); i++ {
		if _, err := eng.Put(ctx, "notes", syncengine.Record{"id": "n" + itoa(i%500), "body": "note " + itoa(i)}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFileIO is one 4 KiB read or write through the VFS (one JS
// crossing each) at a random page of a 4 MiB file.
func BenchmarkFileIO(b *testing.B) {
	db, _ := openTestDB(b)
	f := rawFile(b, db, "", vfs.OPEN_MAIN_DB)
	const pages = 1024
	page := make([]byte, 4096)
	for i := range pages {
		if _, err := f.WriteAt(page, int64(i)*4096); err != nil {
			b.Fatal(err)
		}
	}
	rng := rand.New(rand.NewPCG(1, 1))
	b.Run("read4k", func(b *testing.B) {
		b.SetBytes(4096)
		for b.Loop() {
			if _, err := f.ReadAt(page, int64(rng.IntN(pages))*4096); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("write4k", func(b *testing.B) {
		b.SetBytes(4096)
		for b.Loop() {
			if _, err := f.WriteAt(page, int64(rng.IntN(pages))*4096); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("flush", func(b *testing.B) {
		for b.Loop() {
			if err := f.Sync(vfs.SYNC_FULL); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkCrossing is one bare syscall/js call (safejs Invoke of a JS
// function that returns a number): the unit a per-I/O crossing costs.
func BenchmarkCrossing(b *testing.B) {
	requireOPFS(b)
	fn, err := safejs.Global().Get("Math")
	if err != nil {
		b.Fatal(err)
	}
	abs, _ := fn.Get("abs")
	for b.Loop() {
		if _, err := abs.Invoke(-1); err != nil {
			b.Fatal(err)
		}
	}
}
