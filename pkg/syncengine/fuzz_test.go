package syncengine

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/ncruces/go-sqlite3"
	"github.com/opfsync/opfsync/pkg/protocol"
)

// The fuzz targets open one engine per fuzz process and put it back into a
// known state before each input (resetStore), so every input sees the same
// starting point and a failure reproduces from its input alone.

// resetStore empties base, outbox and every collection table, puts the pull
// state back to a fresh store's (hydrated as asked) and restarts the HLC, all
// behind the engine's back on its own goroutine.
func resetStore(t testing.TB, te *testEngine, hydrated bool) {
	t.Helper()
	err := te.call(context.Background(), func() error {
		stmts := []string{`DELETE FROM pending`, `DELETE FROM base`, `DELETE FROM sqlite_sequence WHERE name = 'pending'`}
		for _, name := range slices.Sorted(maps.Keys(te.cols)) {
			stmts = append(stmts, "DELETE FROM "+quoteIdent(name))
		}
		h := 0
		if hydrated {
			h = 1
		}
		stmts = append(stmts, `UPDATE pull_state SET state = 'Idle', error = '', cursor = '', epoch = 0, hydrated = `+strconv.Itoa(h))
		for _, s := range stmts {
			if err := te.conn.Exec(s); err != nil {
				return fmt.Errorf("%s: %w", s, err)
			}
		}
		te.Engine.clock = protocol.NewClock(te.clientID, te.opts.now)
		return nil
	})
	if err != nil {
		t.Fatalf("reset store: %v", err)
	}
	te.Engine.events.flush()
	te.mu.Lock()
	te.events = nil
	te.mu.Unlock()
}

// fatalCatcher is a testing.TB whose Fatal records the message instead of
// stopping the test.
type fatalCatcher struct {
	testing.TB
	msg string
}

func (c *fatalCatcher) Helper()                      {}
func (c *fatalCatcher) Fatal(args ...any)            { c.msg = fmt.Sprint(args...) }
func (c *fatalCatcher) Fatalf(f string, args ...any) { c.msg = fmt.Sprintf(f, args...) }

// checkVisible is verifyVisible except for one known, harmless difference:
// SQLite stores a REAL column's -0.0 as the integer 0 (it stores whole REAL
// values as integers), so a real field whose value is -0 reads back as 0
// while base/outbox keep -0 (and verifyVisible, comparing %v texts, sees
// "-0" and "0"). -0 == 0 in Go and JS alike, and JSON.stringify(-0) is "0".
// Any other difference fails the test.
func checkVisible(t testing.TB, e *Engine) {
	t.Helper()
	c := &fatalCatcher{TB: t}
	verifyVisible(c, e)
	if c.msg == "" {
		return
	}
	lines := strings.Split(c.msg, "\n")
	if len(lines) == 3 {
		want, okW := strings.CutPrefix(strings.TrimSpace(lines[1]), "want ")
		got, okG := strings.CutPrefix(strings.TrimSpace(lines[2]), "got ")
		if okW && okG && want != got && strings.ReplaceAll(want, "float64:-0|", "float64:0|") == got {
			return
		}
	}
	t.Fatal(c.msg)
}

// openFuzzEngine opens the one engine of a fuzz process. Durability is not
// under test here, so its commits skip the fsync (synchronous=OFF): a fuzz
// input runs about ten transactions, and with an fsync each that is the
// whole cost of an input.
func openFuzzEngine(f *testing.F) *testEngine {
	te := openTest(f, testSchema())
	if err := te.call(context.Background(), func() error { return te.conn.Exec("PRAGMA synchronous=OFF") }); err != nil {
		f.Fatal(err)
	}
	return te
}

// ---------------------------------------------------------------------------
// FuzzValidateWrite

// todoModel is the test's own statement of what a put of rec into "todos"
// (testSchema) must do: refuse it (ok false), or store exactly want (every
// declared field, missing ones nil, values normalized to the Go types Get
// returns: string, bool, int64, float64, json.RawMessage).
func todoModel(rec Record) (want Record, ok bool) {
	id, isString := rec["id"].(string)
	if !isString || protocol.ValidateID(id) != nil {
		return nil, false
	}
	want = Record{"id": id, "title": nil, "done": nil, "rank": nil, "score": nil, "meta": nil}
	size := 0
	for name, v := range rec {
		if name == "id" {
			continue
		}
		if _, declared := want[name]; !declared {
			return nil, false // unknown, reserved (_deleted, _updated_at) or invalid names alike
		}
		if v == nil {
			size += len("null")
			continue
		}
		switch name {
		case "title":
			s, ok := v.(string)
			if !ok {
				return nil, false
			}
			want[name] = s
			size += len(canonicalJSON(s))
		case "done":
			b, ok := v.(bool)
			if !ok {
				return nil, false
			}
			want[name] = b
			size += 5
		case "rank":
			// JSON numbers are JS numbers (float64): an integer field takes
			// any number whose float64 value is a whole number within
			// ±(2^53-1), as a JS client would send it.
			n, ok := v.(json.Number)
			if !ok {
				return nil, false
			}
			f, err := strconv.ParseFloat(string(n), 64)
			if err != nil || f != math.Trunc(f) || math.Abs(f) > 1<<53-1 {
				return nil, false
			}
			want[name] = int64(f)
			size += len(strconv.FormatInt(int64(f), 10))
		case "score":
			n, ok := v.(json.Number)
			if !ok {
				return nil, false
			}
			f, err := strconv.ParseFloat(string(n), 64)
			if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
				return nil, false
			}
			want[name] = f
			size += len(canonicalJSON(f))
		case "meta":
			if jsonValueDepth(v) > protocol.MaxJSONDepth {
				return nil, false
			}
			raw := canonicalJSON(v)
			want[name] = json.RawMessage(raw)
			size += len(raw)
		}
	}
	if size > protocol.MaxRecordBytes {
		return nil, false
	}
	return want, true
}

// canonicalJSON is v as the wire carries it: encoding/json without HTML
// escaping (the size limit counts these bytes).
func canonicalJSON(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic(err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// jsonValueDepth is the nesting of arrays and objects in a decoded value.
func jsonValueDepth(v any) int {
	d := 0
	switch x := v.(type) {
	case []any:
		for _, e := range x {
			d = max(d, jsonValueDepth(e))
		}
		return d + 1
	case map[string]any:
		for _, e := range x {
			d = max(d, jsonValueDepth(e))
		}
		return d + 1
	}
	return 0
}

// sameValue compares a value Get returned with the model's.
func sameValue(t FieldType, got, want any) bool {
	if want == nil || got == nil {
		return got == nil && want == nil
	}
	switch t {
	case TypeReal:
		g, ok := got.(float64)
		return ok && g == want.(float64) // == so that -0 and 0 compare equal
	case TypeJSON:
		g, ok := got.(json.RawMessage)
		if !ok {
			return false
		}
		var compact bytes.Buffer
		if json.Compact(&compact, g) != nil || !bytes.Equal(compact.Bytes(), g) {
			return false // not compact
		}
		return reflect.DeepEqual(decodeNumbers(g), decodeNumbers(want.(json.RawMessage)))
	}
	return reflect.DeepEqual(got, want)
}

func decodeNumbers(raw []byte) any {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return fmt.Sprintf("undecodable %q: %v", raw, err)
	}
	return v
}

// storeCounts is a cheap fingerprint of the whole store.
func storeCounts(t testing.TB, te *testEngine) string {
	t.Helper()
	var out string
	err := te.call(context.Background(), func() error {
		return te.stmts.query(`SELECT (SELECT count(*) FROM pending), (SELECT count(*) FROM base),
			(SELECT count(*) FROM todos), (SELECT coalesce(max(seq), 0) FROM pending),
			(SELECT value FROM meta WHERE key = 'mutation_version')`, nil, func(st *sqlite3.Stmt) error {
			out = fmt.Sprintf("pending=%d base=%d todos=%d maxseq=%d version=%s/%d",
				st.ColumnInt(0), st.ColumnInt(1), st.ColumnInt(2), st.ColumnInt(3), st.ColumnText(4), te.version)
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

var validateWriteSeeds = []string{
	// Valid records.
	`{"id":"t1","title":"Buy milk","done":false,"rank":1,"score":1.5,"meta":{"tags":["a","b"]}}`,
	`{"id":"t2"}`,
	`{"id":"t3","title":null,"done":null,"rank":null,"score":null,"meta":null}`,
	`{"id":"t4","title":"","done":true,"rank":-7,"score":0,"meta":[]}`,
	`{"id":"日本語 ✓","title":"unicode \u00e9 \ud83d\ude00 <&>","meta":"a string"}`,
	`{"id":"t5","title":"nul \u0000 inside","meta":{"nested":{"deep":[1,2,{"x":null}]}}}`,
	`{"id":"t6","rank":1.0,"score":1e2}`,
	`{"id":"t7","rank":1e2,"score":-0}`,
	`{"id":"t8","rank":-0,"score":5e-324}`,
	`{"id":"t9","score":1.7976931348623157e308}`,
	`{"id":"t10","meta":123456789012345678901234567890}`,
	`{"id":"t11","meta":1.50}`,
	// 2^53 boundaries.
	`{"id":"b1","rank":9007199254740991}`,
	`{"id":"b2","rank":-9007199254740991}`,
	`{"id":"b3","rank":9007199254740992}`,
	`{"id":"b4","rank":-9007199254740992}`,
	`{"id":"b5","rank":9007199254740993}`,
	`{"id":"b6","rank":9.007199254740991e15}`,
	`{"id":"b7","rank":9007199254740990.5}`,
	// Huge and odd numbers.
	`{"id":"h1","rank":1e400}`,
	`{"id":"h2","score":1e400}`,
	`{"id":"h3","score":-1e400}`,
	`{"id":"h4","rank":99999999999999999999999}`,
	`{"id":"h5","rank":1.5}`,
	`{"id":"h6","rank":1e-400}`,
	`{"id":"h7","score":1e-400}`,
	// Wrong types and NaN-ish strings.
	`{"id":"w1","title":5}`,
	`{"id":"w2","done":"true"}`,
	`{"id":"w3","done":1}`,
	`{"id":"w4","rank":"5"}`,
	`{"id":"w5","score":"NaN"}`,
	`{"id":"w6","score":"Infinity"}`,
	`{"id":"w7","rank":true}`,
	`{"id":"w8","title":["a"]}`,
	`{"id":"w9","score":{"value":1}}`,
	`{"id":"w10","rank":"-Infinity"}`,
	// Nested json, at and past the depth limit.
	`{"id":"j1","meta":` + nestedJSON(protocol.MaxJSONDepth) + `}`,
	`{"id":"j2","meta":` + nestedJSON(protocol.MaxJSONDepth+1) + `}`,
	`{"id":"j3","meta":{"a":{"b":{"c":{"d":{"e":{"f":[[[[[[[[]]]]]]]]}}}}}}}`,
	// Unknown and reserved fields.
	`{"id":"u1","color":"red"}`,
	`{"id":"u2","_deleted":true}`,
	`{"id":"u3","_updated_at":5}`,
	`{"id":"u4","Title":"case differs"}`,
	`{"id":"u5","":1}`,
	`{"id":"u6","bad-name":1}`,
	// Ids: long, empty, non-string, control characters, missing.
	`{"id":"` + strings.Repeat("i", protocol.MaxIDBytes) + `"}`,
	`{"id":"` + strings.Repeat("i", protocol.MaxIDBytes+1) + `"}`,
	`{"id":"` + strings.Repeat("é", protocol.MaxIDBytes/2) + `x"}`,
	`{"id":""}`,
	`{"id":5}`,
	`{"id":null}`,
	`{"id":true}`,
	`{"id":["t1"]}`,
	`{"id":{"x":1}}`,
	`{"id":"tab\there"}`,
	`{"id":"nul\u0000"}`,
	`{"id":"del\u007f"}`,
	`{"title":"no id"}`,
	`{}`,
	// Not objects at all.
	`[]`,
	`null`,
	`"t1"`,
	`{"id":"t1"`,
}

func nestedJSON(depth int) string {
	return strings.Repeat("[", depth) + strings.Repeat("]", depth)
}

// FuzzValidateWrite puts a fuzzed JSON object into "todos". A put never
// panics; it either fails with CodeValidation and changes nothing, or
// succeeds and Get returns exactly the normalized input (and the visible
// table stays base + pending folded). The test's own model (todoModel)
// says which of the two must happen.
func FuzzValidateWrite(f *testing.F) {
	for _, s := range validateWriteSeeds {
		f.Add([]byte(s))
	}
	te := openFuzzEngine(f)
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, data []byte) {
		te.t = t
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		var rec Record
		if err := dec.Decode(&rec); err != nil || rec == nil {
			return
		}
		resetStore(t, te, false)
		// One existing record, so a refused put must leave it untouched too.
		if _, err := te.Put(ctx, "todos", Record{"id": "existing", "title": "keep", "rank": 3}); err != nil {
			t.Fatal(err)
		}
		want, valid := todoModel(rec)
		before := te.snapshot()
		beforeCounts := storeCounts(t, te)
		res, err := te.Put(ctx, "todos", rec)
		if err != nil {
			if code := CodeOf(err); code != CodeValidation {
				t.Fatalf("put %s: error code %s (%v), want %s", data, code, err, CodeValidation)
			}
			if valid {
				t.Fatalf("put %s refused (%v), but it is valid; want stored %v", data, err, want)
			}
			if after := storeCounts(t, te); after != beforeCounts {
				t.Fatalf("refused put changed the store: %s → %s", beforeCounts, after)
			}
			if after := te.snapshot(); after != before {
				t.Fatalf("refused put changed the store:\n before %s\n after  %s", before, after)
			}
			return
		}
		if !valid {
			t.Fatalf("put %s accepted (%+v), but it is invalid", data, res)
		}
		if len(res.MutationIDs) != 1 {
			t.Fatalf("put returned %d mutation ids", len(res.MutationIDs))
		}
		id := want["id"].(string)
		got, err := te.Get(ctx, "todos", id)
		if err != nil {
			t.Fatalf("get %q: %v", id, err)
		}
		if len(got) != len(want) {
			t.Fatalf("get %q = %v, want %v", id, got, want)
		}
		ci := te.cols["todos"]
		for i, name := range ci.fields {
			if !sameValue(ci.types[i], got[name], want[name]) {
				t.Fatalf("put %s: field %s = %#v (%T), want %#v (%T)", data, name, got[name], got[name], want[name], want[name])
			}
		}
		if got["id"] != id {
			t.Fatalf("get id = %#v, want %q", got["id"], id)
		}
		// The outbox holds exactly one new put with every declared field.
		ms := te.pending()
		last := ms[len(ms)-1]
		if last.MutationID != res.MutationIDs[0] || last.Op != protocol.OpPut || last.ID != id || last.Origin != protocol.OriginUser {
			t.Fatalf("queued mutation %+v", last)
		}
		if len(last.Fields) != len(ci.fields)+1 || string(last.Fields[protocol.DeletedField]) != "false" {
			t.Fatalf("queued fields %v", last.Fields)
		}
		if err := protocol.ValidateMutation(&last); err != nil {
			t.Fatalf("queued mutation is not valid on the wire: %v", err)
		}
		// Record "existing" is unharmed (unless the fuzzer overwrote it).
		if id != "existing" {
			if ex, _ := te.Get(ctx, "todos", "existing"); ex["title"] != "keep" || ex["rank"] != int64(3) {
				t.Fatalf("record existing changed: %v", ex)
			}
		}
		checkVisible(t, te.Engine)
	})
}

// ---------------------------------------------------------------------------
// FuzzApplyRemotePage

// The wall time of the fuzz engine's manual clock, and remote nodes before
// and after it.
const (
	fuzzLocalWall = 1_700_000_000_000
)

// seedLocalWrites makes the couple of pending local writes every page is
// applied over: a put and a patch of todos/t1, a put of notes/n1 with an
// undeclared field, a put of audit/a1, and a delete of todos/gone.
func seedLocalWrites(t testing.TB, te *testEngine) {
	t.Helper()
	ctx := context.Background()
	_, err := te.Apply(ctx,
		Write{Op: protocol.OpPut, Collection: "todos", ID: "t1", Fields: Record{"title": "local", "done": false, "rank": 1}},
		Write{Op: protocol.OpPut, Collection: "notes", ID: "n1", Fields: Record{"body": "local note", "color": "red"}},
		Write{Op: protocol.OpPut, Collection: "audit", ID: "a1", Fields: Record{"msg": "local entry"}},
		Write{Op: protocol.OpPatch, Collection: "todos", ID: "t1", Fields: Record{"rank": 2, "meta": map[string]any{"k": "v"}}},
		Write{Op: protocol.OpDelete, Collection: "todos", ID: "gone"},
	)
	if err != nil {
		t.Fatal(err)
	}
}

func applyRemotePageSeeds() [][]byte {
	newer := newRemote("remote-b", func() int64 { return fuzzLocalWall + 500 })
	older := newRemote("remote-a", func() int64 { return fuzzLocalWall - 500 })
	page := func(hasMore bool, states ...protocol.RecordState) []byte {
		raw, err := json.Marshal(protocol.PullResponse{Changes: states, Cursor: "cur-" + strconv.Itoa(len(states)), HasMore: hasMore})
		if err != nil {
			panic(err)
		}
		return raw
	}
	live := func(s protocol.RecordState) protocol.RecordState {
		s.Fields[protocol.DeletedField] = protocol.FieldState{Value: jsonFalse, HLC: s.Fields.Newest(), Origin: protocol.OriginUser}
		return s
	}
	var seeds [][]byte
	seeds = append(seeds,
		// Valid pages.
		page(false),
		page(true, live(older.state("todos", "r1", map[string]any{"title": "remote", "done": true, "rank": 5, "score": 2.5, "meta": []any{1, "x"}}))),
		page(false,
			live(newer.state("todos", "r2", map[string]any{"title": "two"})),
			live(newer.state("notes", "r3", map[string]any{"body": "b", "mood": "happy", "n": 3})),
			live(newer.state("audit", "r4", map[string]any{"msg": "hello"})),
		),
		// The ids with local pending writes, newer and older than them.
		page(false, live(newer.state("todos", "t1", map[string]any{"title": "remote wins", "rank": 9}))),
		page(false, live(older.state("todos", "t1", map[string]any{"title": "remote loses", "rank": 0, "done": true}))),
		page(false, live(newer.state("notes", "n1", map[string]any{"color": "blue", "body": nil}))),
		page(false, live(newer.state("audit", "a1", map[string]any{"msg": "second write of an immutable record"}))),
		page(false, live(newer.state("todos", "gone", map[string]any{"title": "restored remotely"}))),
		// Tombstones.
		page(false, newer.state("todos", "t1", map[string]any{protocol.DeletedField: true})),
		page(false, older.state("todos", "t1", map[string]any{protocol.DeletedField: true})),
		page(false, newer.state("audit", "a1", map[string]any{protocol.DeletedField: true})),
		page(false, newer.state("todos", "never", map[string]any{protocol.DeletedField: true, "title": "dead"})),
		page(false, newer.state("todos", "nodeleted", map[string]any{"title": "no tombstone field at all"})),
		// Wrong value types for declared fields (kept in base, shown as null).
		page(false, live(newer.state("todos", "w1", map[string]any{"title": 5, "done": "yes", "rank": 1.5, "score": "x", "meta": nil}))),
		page(false, live(newer.state("todos", "w2", map[string]any{"rank": 9007199254740993.0, "score": true, "done": 1}))),
		// Unknown collections.
		page(false, live(newer.state("widgets", "x1", map[string]any{"size": 3}))),
		page(false, live(newer.state("Todos", "t1", map[string]any{"title": "case differs"}))),
		// The same record twice in one page.
		page(false, live(older.state("todos", "d1", map[string]any{"title": "first"})), live(newer.state("todos", "d1", map[string]any{"title": "second"}))),
		page(false, live(newer.state("todos", "d2", map[string]any{"title": "first"})), live(older.state("todos", "d2", map[string]any{"title": "second"}))),
	)
	// Hand-written pages: bad stamps, bad origins, bad names and values.
	h := newer.clock.Now().String()
	for _, s := range []string{
		`{"changes":[{"collection":"todos","id":"b1","fields":{"title":{"value":"\"x\"","hlc":"bogus","origin":"user"}}}]}`,
		`{"changes":[{"collection":"todos","id":"b2","fields":{"title":{"value":"x","hlc":"","origin":"user"},"_deleted":{"value":false,"hlc":"` + h + `","origin":"user"}}}],"cursor":"c","hasMore":false}`,
		`{"changes":[{"collection":"todos","id":"b3","fields":{"title":{"value":"x","hlc":"` + h + `","origin":"root"},"_deleted":{"value":false,"hlc":"` + h + `","origin":"user"}}}]}`,
		`{"changes":[{"collection":"todos","id":"b4","fields":{"title":{"value":"x","hlc":"` + h + `"},"_deleted":{"value":false,"hlc":"` + h + `","origin":"user"}}}]}`,
		`{"changes":[{"collection":"todos","id":"b5","fields":{"_deleted":{"value":"no","hlc":"` + h + `","origin":"user"}}}]}`,
		`{"changes":[{"collection":"todos","id":"b6","fields":{"_deleted":{"hlc":"` + h + `","origin":"user"}}}]}`,
		`{"changes":[{"collection":"todos","id":"","fields":{"_deleted":{"value":false,"hlc":"` + h + `","origin":"user"}}}]}`,
		`{"changes":[{"collection":"bad name","id":"b8","fields":{"_deleted":{"value":false,"hlc":"` + h + `","origin":"user"}}}]}`,
		`{"changes":[{"collection":"todos","id":"b9","fields":{"id":{"value":"\"x\"","hlc":"` + h + `","origin":"user"}}}]}`,
		`{"changes":[{"collection":"todos","id":"b10","fields":{"_secret":{"value":1,"hlc":"` + h + `","origin":"user"}}}]}`,
		`{"changes":[{"collection":"todos","id":"b11","fields":{"meta":{"value":` + nestedJSON(protocol.MaxJSONDepth+1) + `,"hlc":"` + h + `","origin":"user"},"_deleted":{"value":false,"hlc":"` + h + `","origin":"user"}}}]}`,
		`{"changes":[{"collection":"todos","id":"b12","fields":{"score":{"value":-0,"hlc":"` + h + `","origin":"user"},"rank":{"value":1e2,"hlc":"` + h + `","origin":"user"},"_deleted":{"value":false,"hlc":"` + h + `","origin":"user"}}}]}`,
		`{"changes":[{"collection":"todos","id":"tab\tid","fields":{"_deleted":{"value":false,"hlc":"` + h + `","origin":"user"}}}]}`,
		`{"changes":null,"cursor":"","hasMore":true}`,
		`{"changes":[{}]}`,
		`{"changes":[{"collection":"todos","id":"n","fields":null}]}`,
		// Stamps at the end of the representable range.
		`{"changes":[{"collection":"todos","id":"max","fields":{"title":{"value":"\"end of time\"","hlc":"9999999999999-999999-zz","origin":"user"},"_deleted":{"value":false,"hlc":"9999999999999-999999-zz","origin":"user"}}}]}`,
		`{"changes":[{"collection":"widgets","id":"max","fields":{"a":{"value":1,"hlc":"9999999999999-999998-zz","origin":"agent"}}}]}`,
		`not json`,
	} {
		seeds = append(seeds, []byte(s))
	}
	return seeds
}

// FuzzApplyRemotePage applies a fuzzed pull page over a store with pending
// local writes. It never panics or fails the page (invalid records are
// skipped and counted); afterwards the visible tables are base + pending
// folded, every applied stamp is merged, the outbox is untouched, no
// conflict is reported during hydration, the clock has moved past every
// applied stamp, and applying the same page again changes nothing.
func FuzzApplyRemotePage(f *testing.F) {
	for _, s := range applyRemotePageSeeds() {
		f.Add(s)
	}
	te := openFuzzEngine(f)
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, data []byte) {
		te.t = t
		var page protocol.PullResponse
		if err := json.Unmarshal(data, &page); err != nil {
			return
		}
		// Odd-length inputs start hydrated, so the conflict path runs too.
		hydrated := len(data)%2 == 1
		resetStore(t, te, hydrated)
		seedLocalWrites(t, te)
		pendingBefore := te.pending()

		invalid := 0
		for i := range page.Changes {
			if protocol.ValidateRecordState(&page.Changes[i]) != nil {
				invalid++
			}
		}
		ps, err := te.BeginPull(ctx)
		if err != nil {
			t.Fatal(err)
		}
		res, err := te.ApplyPullPage(ctx, ps.Epoch, &page)
		if err != nil {
			t.Fatalf("apply page: %v", err)
		}
		if !res.Applied {
			t.Fatalf("page of the current epoch not applied: %+v", res)
		}
		if res.Skipped < invalid || res.Changed+res.Skipped > len(page.Changes) {
			t.Fatalf("page of %d records (%d invalid): changed %d, skipped %d", len(page.Changes), invalid, res.Changed, res.Skipped)
		}
		if res.State.Cursor != page.Cursor || res.State.Hydrated != (hydrated || !page.HasMore) {
			t.Fatalf("pull state after the page: %+v", res.State)
		}
		checkVisible(t, te.Engine)
		if got := te.pending(); !reflect.DeepEqual(got, pendingBefore) {
			t.Fatalf("a pull page changed the outbox:\n before %v\n after  %v", pendingBefore, got)
		}

		// Every valid record of a mutable collection is merged: the store
		// holds each of its fields at the page's stamp or a newer one.
		dump, err := te.Export(ctx)
		if err != nil {
			t.Fatal(err)
		}
		stored := map[[2]string]protocol.Fields{}
		for _, r := range dump.Records {
			stored[[2]string{r.Collection, r.ID}] = r.Fields
		}
		var newest protocol.HLC
		for i := range page.Changes {
			rs := &page.Changes[i]
			if protocol.ValidateRecordState(rs) != nil || rs.Collection == "audit" {
				continue
			}
			have := stored[[2]string{rs.Collection, rs.ID}]
			for name, fs := range rs.Fields {
				if fs.HLC.After(have[name].HLC) {
					t.Fatalf("%s/%s field %s: page stamp %v not merged (store has %v)", rs.Collection, rs.ID, name, fs.HLC, have[name].HLC)
				}
				if fs.HLC.After(newest) {
					newest = fs.HLC
				}
			}
		}

		// Conflicts: never while hydrating; otherwise only for fields a
		// pending user write held, reporting the value that won.
		for _, ev := range te.takeEvents("conflict") {
			c := ev.(*ConflictEvent)
			if !hydrated {
				t.Fatalf("conflict reported during the initial hydration: %+v", c)
			}
			wrote := false
			for _, m := range pendingBefore {
				if m.Collection == c.Collection && m.ID == c.ID && bytes.Equal(m.Fields[c.Field], c.Local) && m.Origin == protocol.OriginUser {
					wrote = true
				}
			}
			if !wrote {
				t.Fatalf("conflict %+v names no pending user write", c)
			}
			if got := stored[[2]string{c.Collection, c.ID}][c.Field].Value; !bytes.Equal(got, c.Remote) {
				t.Fatalf("conflict %+v: the store holds %s", c, got)
			}
		}

		// Applying the same page again (a new pull cycle) changes nothing.
		before := te.snapshot()
		ps2, err := te.BeginPull(ctx)
		if err != nil {
			t.Fatal(err)
		}
		res2, err := te.ApplyPullPage(ctx, ps2.Epoch, &page)
		if err != nil {
			t.Fatalf("apply the page again: %v", err)
		}
		if res2.Changed != 0 {
			t.Fatalf("applying the page again changed %d records", res2.Changed)
		}
		if after := te.snapshot(); after != before {
			t.Fatalf("applying the page again changed the store:\n before %s\n after  %s", before, after)
		}
		if evs := te.takeEvents("conflict"); len(evs) != 0 {
			t.Fatalf("applying the page again reported conflicts: %v", evs)
		}

		// The clock moved past every stamp it took in: a local write now
		// is newer than all of them (at the very end of the stamp range the
		// clock saturates, so there "not older" is all it can promise).
		w, err := te.Put(ctx, "todos", Record{"id": "after", "title": "written after the page"})
		if err != nil {
			t.Fatalf("local write after the page: %v", err)
		}
		ms := te.pending()
		last := ms[len(ms)-1]
		if last.MutationID != w.MutationIDs[0] {
			t.Fatalf("last queued mutation %v, want %s", last, w.MutationIDs[0])
		}
		atEnd := newest.Wall == protocol.MaxWall && newest.Counter == protocol.MaxCounter
		if !last.HLC.After(newest) && !(atEnd && last.HLC.Wall == newest.Wall && last.HLC.Counter == newest.Counter) {
			t.Fatalf("local stamp %v after the page is not newer than the page's %v", last.HLC, newest)
		}
		checkVisible(t, te.Engine)
	})
}
