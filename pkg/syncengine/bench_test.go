package syncengine

import (
	"context"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ncruces/go-sqlite3"
	"github.com/opfsync/opfsync/pkg/protocol"
)

// Native benchmarks of the engine's hot paths, each against a file database
// with the engine's real pragmas (WAL, synchronous=FULL, exclusive locking),
// and a raw-SQLite baseline with the same pragmas, so results can be quoted
// as ratios ("Put = N x a raw SQLite single-row insert"). Run with
//
//	go test -run='^$' -bench=. -benchmem ./pkg/syncengine

const benchRecords = 10_000

// benchPage builds a pull page of n live todos, ids prefix0..prefix(n-1),
// stamped by a remote node, with every declared field set.
func benchPage(r *remoteNode, prefix string, n int) *protocol.PullResponse {
	page := &protocol.PullResponse{Changes: make([]protocol.RecordState, n), Cursor: prefix}
	for i := 0; i < n; i++ {
		s := r.state("todos", prefix+strconv.Itoa(i), map[string]any{
			"title": "todo number " + strconv.Itoa(i),
			"done":  i%2 == 0,
			"rank":  (i * 7919) % n,
			"score": float64(i) / 3,
			"meta":  map[string]any{"tags": []string{"a", "b"}, "n": i},
		})
		s.Fields[protocol.DeletedField] = protocol.FieldState{Value: jsonFalse, HLC: s.Fields["title"].HLC, Origin: protocol.OriginUser}
		page.Changes[i] = s
	}
	return page
}

func benchRemote() *remoteNode {
	return newRemote("bench-server", func() int64 { return 1_700_000_000_000 - 1000 })
}

// applyPage runs one complete pull cycle of page.
func applyPage(tb testing.TB, te *testEngine, page *protocol.PullResponse) PullPageResult {
	tb.Helper()
	ctx := context.Background()
	ps, err := te.BeginPull(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	res, err := te.ApplyPullPage(ctx, ps.Epoch, page)
	if err != nil {
		tb.Fatal(err)
	}
	return res
}

// openBench10k opens a file database holding benchRecords server-confirmed
// todos, ids r0..r9999.
func openBench10k(b *testing.B) *testEngine {
	b.Helper()
	te := openTest(b, testSchema())
	if res := applyPage(b, te, benchPage(benchRemote(), "r", benchRecords)); res.Changed != benchRecords {
		b.Fatalf("seeded %d records", res.Changed)
	}
	return te
}

// BenchmarkPut: one single-record put, its own transaction, durable
// (fsync'ed WAL) and visible when it returns.
func BenchmarkPut(b *testing.B) {
	te := openTest(b, testSchema())
	ctx := context.Background()
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		i++
		if _, err := te.Put(ctx, "todos", Record{"id": "p" + strconv.Itoa(i), "title": "buy milk", "done": false, "rank": i}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPatch: one single-field patch of an existing record, its own
// transaction.
func BenchmarkPatch(b *testing.B) {
	te := openTest(b, testSchema())
	ctx := context.Background()
	te.put("todos", Record{"id": "t1", "title": "buy milk", "done": false, "rank": 0})
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		i++
		if _, err := te.Patch(ctx, "todos", "t1", Record{"rank": i}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkApplyPullPage10k: one pull page of 10,000 new records applied in
// one transaction (ns/op is per page). Every iteration inserts fresh ids; the
// page is built and the pull begun outside the timer.
func BenchmarkApplyPullPage10k(b *testing.B) {
	te := openTest(b, testSchema())
	te.put("todos", Record{"id": "local", "title": "a pending local write"})
	remote := benchRemote()
	ctx := context.Background()
	b.ReportAllocs()
	var total time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		page := benchPage(remote, "i"+strconv.Itoa(i)+"-", benchRecords)
		ps, err := te.BeginPull(ctx)
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		b.StartTimer()
		res, err := te.ApplyPullPage(ctx, ps.Epoch, page)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		total += time.Since(start)
		if res.Changed != benchRecords {
			b.Fatalf("page changed %d records", res.Changed)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(benchRecords*b.N)/total.Seconds(), "records/s")
}

// BenchmarkGet: a point read by id in a 10k-record collection.
func BenchmarkGet(b *testing.B) {
	te := openBench10k(b)
	ctx := context.Background()
	ids := make([]string, benchRecords)
	for i := range ids {
		ids[i] = "r" + strconv.Itoa((i*7919)%benchRecords)
	}
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		rec, err := te.Get(ctx, "todos", ids[i%len(ids)])
		if err != nil || rec == nil {
			b.Fatalf("get: %v, %v", rec, err)
		}
		i++
	}
}

// BenchmarkIndexedQuery: an indexed range query (the declared (done, rank)
// index) returning 100 of 10k records.
func BenchmarkIndexedQuery(b *testing.B) {
	te := openBench10k(b)
	ctx := context.Background()
	const sql = "SELECT * FROM todos WHERE done = ? ORDER BY rank LIMIT 100"
	var plan []string
	err := te.call(ctx, func() error {
		return te.stmts.query("EXPLAIN QUERY PLAN "+sql, []any{false}, func(st *sqlite3.Stmt) error {
			plan = append(plan, st.ColumnText(3))
			return nil
		})
	})
	if err != nil {
		b.Fatal(err)
	}
	if p := strings.Join(plan, "; "); !strings.Contains(p, "todos__idx__done__rank") || strings.Contains(p, "TEMP B-TREE") {
		b.Fatalf("query plan does not use the (done, rank) index: %s", p)
	}
	b.ReportAllocs()
	for b.Loop() {
		rows, err := te.Query(ctx, sql, false)
		if err != nil {
			b.Fatal(err)
		}
		if len(rows.Values) != 100 {
			b.Fatalf("%d rows", len(rows.Values))
		}
	}
}

// BenchmarkApplyBatch1000Patches: 1,000 patches of distinct records in one
// Apply call (one transaction).
func BenchmarkApplyBatch1000Patches(b *testing.B) {
	te := openBench10k(b)
	ctx := context.Background()
	writes := make([]Write, 1000)
	for i := range writes {
		writes[i] = Write{Op: protocol.OpPatch, Collection: "todos", ID: "r" + strconv.Itoa(i*10), Fields: Record{"rank": i, "done": true}}
	}
	b.ReportAllocs()
	for b.Loop() {
		res, err := te.Apply(ctx, writes...)
		if err != nil {
			b.Fatal(err)
		}
		if len(res.MutationIDs) != len(writes) {
			b.Fatalf("%d mutation ids", len(res.MutationIDs))
		}
	}
}

// openRawBaseline opens a file database with plain ncruces SQLite and the
// engine's pragmas, and a table shaped like the todos collection.
func openRawBaseline(b *testing.B) *sqlite3.Conn {
	b.Helper()
	if runtime.GOOS == "js" {
		b.Skip("the raw baseline needs a file on the OS VFS; in the browser, wasm/internal/opfs has its own commit benchmark")
	}
	conn, err := sqlite3.Open(filepath.Join(b.TempDir(), "raw.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	for _, p := range []string{
		"PRAGMA locking_mode=EXCLUSIVE",
		"PRAGMA temp_store=MEMORY",
		"PRAGMA cache_size=-16384",
		"PRAGMA journal_mode=WAL",
		"PRAGMA synchronous=FULL",
		`CREATE TABLE todos (id TEXT PRIMARY KEY NOT NULL, done INTEGER, meta TEXT, rank INTEGER, score REAL, title TEXT, _updated_at INTEGER NOT NULL DEFAULT 0)`,
		`CREATE INDEX todos_done_rank ON todos (done, rank)`,
		`CREATE INDEX todos_updated_at ON todos (_updated_at)`,
	} {
		if err := conn.Exec(p); err != nil {
			b.Fatalf("%s: %v", p, err)
		}
	}
	st, _, err := conn.Prepare("PRAGMA journal_mode")
	if err != nil {
		b.Fatal(err)
	}
	if !st.Step() || st.ColumnText(0) != "wal" {
		b.Fatalf("journal_mode %q, want wal", st.ColumnText(0))
	}
	st.Close()
	return conn
}

func rawInsert(b *testing.B, st *sqlite3.Stmt, id string, i int) {
	st.BindText(1, id)
	st.BindBool(2, false)
	st.BindNull(3)
	st.BindInt64(4, int64(i))
	st.BindNull(5)
	st.BindText(6, "buy milk")
	st.BindInt64(7, 1_700_000_000_000)
	if err := st.Exec(); err != nil {
		b.Fatal(err)
	}
	st.Reset()
}

const rawInsertSQL = `INSERT INTO todos (id, done, meta, rank, score, title, _updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)`

// BenchmarkBaselineRawInsert: the floor under BenchmarkPut — one prepared
// single-row INSERT, committed on its own (autocommit), with the same
// pragmas (WAL, synchronous=FULL, locking_mode=EXCLUSIVE) and indexes.
func BenchmarkBaselineRawInsert(b *testing.B) {
	conn := openRawBaseline(b)
	st, _, err := conn.Prepare(rawInsertSQL)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		i++
		rawInsert(b, st, "p"+strconv.Itoa(i), i)
	}
}

// BenchmarkBaselineRawInsert10kTxn: the floor under
// BenchmarkApplyPullPage10k — 10,000 prepared INSERTs in one transaction.
func BenchmarkBaselineRawInsert10kTxn(b *testing.B) {
	conn := openRawBaseline(b)
	st, _, err := conn.Prepare(rawInsertSQL)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	ids := make([]string, benchRecords)
	b.ReportAllocs()
	for n := 0; n < b.N; n++ {
		b.StopTimer()
		for i := range ids {
			ids[i] = "i" + strconv.Itoa(n) + "-" + strconv.Itoa(i)
		}
		b.StartTimer()
		tx, err := conn.BeginImmediate()
		if err != nil {
			b.Fatal(err)
		}
		for i, id := range ids {
			rawInsert(b, st, id, i)
		}
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
	}
}
