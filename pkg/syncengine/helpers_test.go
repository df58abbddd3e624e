package syncengine

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ncruces/go-sqlite3"
	"github.com/opfsync/opfsync/pkg/protocol"
)

// testSchema is the schema most tests use: one collection of each kind.
func testSchema() *Schema {
	return &Schema{Version: 1, Collections: map[string]Collection{
		"todos": {
			Fields: map[string]FieldType{
				"title": TypeText, "done": TypeBoolean, "rank": TypeInteger, "score": TypeReal, "meta": TypeJSON,
			},
			Indexes: [][]string{{"done", "rank"}},
		},
		"notes": {Fields: map[string]FieldType{"body": TypeText}, ExtraFields: true},
		"audit": {Fields: map[string]FieldType{"msg": TypeText}, Immutable: true},
	}}
}

// manualClock is a wall clock the test moves by hand.
type manualClock struct {
	mu sync.Mutex
	t  time.Time
}

func newManualClock() *manualClock {
	return &manualClock{t: time.UnixMilli(1_700_000_000_000)}
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *manualClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// testEngine is an engine opened for one test, with its location so it can
// be re-opened, and a recorder of every event it emitted.
type testEngine struct {
	*Engine
	t      testing.TB
	path   string
	vfs    string
	clock  *manualClock
	mu     sync.Mutex
	events []Event
}

func openTest(t testing.TB, schema *Schema) *testEngine {
	t.Helper()
	path, vfsName := newTestDB(t)
	te := &testEngine{t: t, path: path, vfs: vfsName, clock: newManualClock()}
	te.open(schema)
	return te
}

func (te *testEngine) open(schema *Schema) {
	te.t.Helper()
	e, err := Open(context.Background(), Options{Path: te.path, VFS: te.vfs, Schema: schema, Now: te.clock.Now})
	if err != nil {
		te.t.Fatalf("open: %v", err)
	}
	te.Engine = e
	e.Subscribe(func(ev Event) {
		te.mu.Lock()
		te.events = append(te.events, ev)
		te.mu.Unlock()
	})
	te.t.Cleanup(func() { e.Close() })
}

// reopen closes the engine and opens the same database again.
func (te *testEngine) reopen(schema *Schema) {
	te.t.Helper()
	if err := te.Close(); err != nil {
		te.t.Fatalf("close: %v", err)
	}
	te.open(schema)
}

// takeEvents waits for queued events to be delivered and returns (and
// forgets) those of the given kind ("" for all).
func (te *testEngine) takeEvents(kind string) []Event {
	te.t.Helper()
	te.Engine.events.flush()
	te.mu.Lock()
	defer te.mu.Unlock()
	var out, keep []Event
	for _, ev := range te.events {
		if kind == "" || EventKind(ev) == kind {
			out = append(out, ev)
		} else {
			keep = append(keep, ev)
		}
	}
	te.events = keep
	return out
}

func (te *testEngine) put(coll string, rec Record) WriteResult {
	te.t.Helper()
	r, err := te.Put(context.Background(), coll, rec)
	if err != nil {
		te.t.Fatalf("put %s %v: %v", coll, rec, err)
	}
	return r
}

func (te *testEngine) patch(coll, id string, fields Record) WriteResult {
	te.t.Helper()
	r, err := te.Patch(context.Background(), coll, id, fields)
	if err != nil {
		te.t.Fatalf("patch %s/%s %v: %v", coll, id, fields, err)
	}
	return r
}

func (te *testEngine) del(coll, id string) WriteResult {
	te.t.Helper()
	r, err := te.Delete(context.Background(), coll, id)
	if err != nil {
		te.t.Fatalf("delete %s/%s: %v", coll, id, err)
	}
	return r
}

func (te *testEngine) get(coll, id string) Record {
	te.t.Helper()
	r, err := te.Get(context.Background(), coll, id)
	if err != nil {
		te.t.Fatalf("get %s/%s: %v", coll, id, err)
	}
	return r
}

func (te *testEngine) query(sql string, args ...any) []Record {
	te.t.Helper()
	rows, err := te.Query(context.Background(), sql, args...)
	if err != nil {
		te.t.Fatalf("query %q: %v", sql, err)
	}
	return rows.Records()
}

func (te *testEngine) pending() []protocol.Mutation {
	te.t.Helper()
	ms, err := te.PendingBatch(context.Background(), protocol.MaxBatchMutations)
	if err != nil {
		te.t.Fatal(err)
	}
	return ms
}

func (te *testEngine) ack(results ...protocol.MutationResult) {
	te.t.Helper()
	if err := te.AckPush(context.Background(), results); err != nil {
		te.t.Fatalf("ack: %v", err)
	}
}

// pull applies states as one complete pull cycle (one page).
func (te *testEngine) pull(states ...protocol.RecordState) PullPageResult {
	te.t.Helper()
	ps, err := te.BeginPull(context.Background())
	if err != nil {
		te.t.Fatal(err)
	}
	res, err := te.ApplyPullPage(context.Background(), ps.Epoch, &protocol.PullResponse{Changes: states, Cursor: "c" + strconv.FormatInt(ps.Epoch, 10) + "-" + strconv.Itoa(len(states))})
	if err != nil {
		te.t.Fatalf("apply pull page: %v", err)
	}
	return res
}

// snapshot captures everything observable about the store, to assert that
// a refused operation changed nothing.
func (te *testEngine) snapshot() string {
	te.t.Helper()
	d, err := te.Export(context.Background())
	if err != nil {
		te.t.Fatal(err)
	}
	d.ExportedAt = 0
	v, err := te.Version(context.Background())
	if err != nil {
		te.t.Fatal(err)
	}
	var tables []string
	for _, c := range slices.Sorted(maps.Keys(te.schemaCollections())) {
		tables = append(tables, fmt.Sprint(te.query(`SELECT * FROM "`+c+`" ORDER BY id`)))
	}
	raw, _ := json.Marshal(struct {
		D *Dump
		V uint64
		P []protocol.Mutation
		T []string
	}{d, v, te.pending(), tables})
	return string(raw)
}

func (te *testEngine) schemaCollections() map[string]Collection {
	var out map[string]Collection
	te.call(context.Background(), func() error { out = maps.Clone(te.schema.Collections); return nil })
	return out
}

// remoteNode stamps remote field states like another client would.
type remoteNode struct {
	clock *protocol.Clock
}

func newRemote(name string, wall func() int64) *remoteNode {
	return &remoteNode{clock: protocol.NewClock(name, wall)}
}

// state builds a remote record state whose fields are all written now by
// this node with origin server-confirmed user writes.
func (r *remoteNode) state(coll, id string, fields map[string]any) protocol.RecordState {
	h := r.clock.Now()
	fs := protocol.Fields{}
	for name, v := range fields {
		raw, err := marshalJSON(v)
		if err != nil {
			panic(err)
		}
		fs[name] = protocol.FieldState{Value: raw, HLC: h, Origin: protocol.OriginUser}
	}
	return protocol.RecordState{Collection: coll, ID: id, Fields: fs}
}

// stamp returns an HLC at an explicit wall time for node.
func stamp(wall int64, node string) protocol.HLC {
	return protocol.HLC{Wall: wall, Node: node}
}

func fieldState(v any, h protocol.HLC, o protocol.Origin) protocol.FieldState {
	raw, err := marshalJSON(v)
	if err != nil {
		panic(err)
	}
	return protocol.FieldState{Value: raw, HLC: h, Origin: o}
}

func wantCode(t testing.TB, err error, code Code) {
	t.Helper()
	if err == nil {
		t.Fatalf("want error %s, got nil", code)
	}
	if got := CodeOf(err); got != code {
		t.Fatalf("want error %s, got %s (%v)", code, got, err)
	}
}

// verifyVisible checks the central invariant: every collection table holds
// exactly base + pending folded in order, record by record.
func verifyVisible(t testing.TB, e *Engine) {
	t.Helper()
	err := e.call(context.Background(), func() error {
		for _, name := range slices.Sorted(maps.Keys(e.cols)) {
			ci := e.cols[name]
			want := map[string][]any{}
			pend := map[string][]pendingMut{}
			err := e.stmts.query(`SELECT `+pendingColumns+` FROM pending WHERE collection = ? ORDER BY seq`, []any{name}, func(st *sqlite3.Stmt) error {
				m, err := scanPending(st)
				pend[m.id] = append(pend[m.id], m)
				return err
			})
			if err != nil {
				return err
			}
			bases := map[string]protocol.Fields{}
			err = e.stmts.query(`SELECT id, fields FROM base WHERE collection = ?`, []any{name}, func(st *sqlite3.Stmt) error {
				var f protocol.Fields
				err := decodeBase(st.ColumnRawText(1), &f)
				bases[st.ColumnText(0)] = f
				return err
			})
			if err != nil {
				return err
			}
			for id := range pend {
				if _, ok := bases[id]; !ok {
					bases[id] = nil
				}
			}
			for id, b := range bases {
				f := fold(b, pend[id])
				if !f.live() {
					continue
				}
				row := []any{id}
				for i, fname := range ci.fields {
					row = append(row, expectedValue(ci.types[i], f[fname].Value))
				}
				row = append(row, f.updatedAt())
				if ci.decl.ExtraFields {
					extra, _ := extraObject(ci, f)
					if extra == nil {
						row = append(row, nil)
					} else {
						row = append(row, extra)
					}
				}
				want[id] = row
			}
			got := map[string][]any{}
			cols := []string{`"id"`}
			for _, f := range ci.fields {
				cols = append(cols, quoteIdent(f))
			}
			cols = append(cols, quoteIdent(UpdatedAtColumn))
			if ci.decl.ExtraFields {
				cols = append(cols, quoteIdent(ExtraColumn))
			}
			st, _, err := e.conn.Prepare("SELECT " + joinComma(cols) + " FROM " + quoteIdent(name))
			if err != nil {
				return err
			}
			for st.Step() {
				row := []any{st.ColumnText(0)}
				for i := range ci.fields {
					row = append(row, columnValue(st, i+1, ci.types[i]))
				}
				row = append(row, st.ColumnInt64(len(ci.fields)+1))
				if ci.decl.ExtraFields {
					row = append(row, columnValue(st, len(ci.fields)+2, TypeJSON))
				}
				got[st.ColumnText(0)] = row
			}
			st.Close()
			if !reflect.DeepEqual(normalizeRows(want), normalizeRows(got)) {
				return fmt.Errorf("collection %s: visible table differs from base+pending:\n want %v\n  got %v", name, normalizeRows(want), normalizeRows(got))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func joinComma(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += ", "
		}
		out += x
	}
	return out
}

func normalizeRows(m map[string][]any) map[string]string {
	out := map[string]string{}
	for k, row := range m {
		s := ""
		for _, v := range row {
			switch x := v.(type) {
			case json.RawMessage:
				s += "json:" + string(x) + "|"
			default:
				s += fmt.Sprintf("%T:%v|", v, v)
			}
		}
		out[k] = s
	}
	return out
}

// expectedValue is what reading a column of type t yields for raw.
func expectedValue(t FieldType, raw json.RawMessage) any {
	if len(raw) == 0 || string(raw) == "null" || !conforms(t, raw) {
		return nil
	}
	switch t {
	case TypeText:
		var s string
		json.Unmarshal(raw, &s)
		return s
	case TypeBoolean:
		return string(raw) == "true"
	case TypeInteger:
		n, _ := strconv.ParseInt(string(raw), 10, 64)
		return n
	case TypeReal:
		f, _ := strconv.ParseFloat(string(raw), 64)
		return f
	}
	return raw
}
