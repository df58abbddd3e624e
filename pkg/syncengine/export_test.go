package syncengine

import (
	"context"
	"encoding/json"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/opfsync/opfsync/pkg/protocol"
)

// dumpOf builds a dump holding records.
func dumpOf(records ...protocol.RecordState) *Dump {
	return &Dump{Format: DumpFormat, Version: 1, Records: records}
}

// recordState builds a record state from field states.
func recordState(coll, id string, fields protocol.Fields) protocol.RecordState {
	return protocol.RecordState{Collection: coll, ID: id, Fields: fields}
}

func (te *testEngine) export() *Dump {
	te.t.Helper()
	d, err := te.Export(context.Background())
	if err != nil {
		te.t.Fatalf("export: %v", err)
	}
	return d
}

func (te *testEngine) importDump(d *Dump) ImportResult {
	te.t.Helper()
	res, err := te.Import(context.Background(), d)
	if err != nil {
		te.t.Fatalf("import: %v", err)
	}
	return res
}

// exported returns record coll/id of the export (nil if absent).
func exported(d *Dump, coll, id string) *protocol.RecordState {
	for i := range d.Records {
		if d.Records[i].Collection == coll && d.Records[i].ID == id {
			return &d.Records[i]
		}
	}
	return nil
}

// allRows returns every visible row of every declared collection.
func allRows(te *testEngine) map[string][]Record {
	te.t.Helper()
	out := map[string][]Record{}
	for _, c := range slices.Sorted(maps.Keys(te.schemaCollections())) {
		out[c] = te.query(`SELECT * FROM "` + c + `" ORDER BY id`)
	}
	return out
}

// wantQueuedWithDumpStamps fails unless every pending mutation's fields carry the
// stamp and origin the dump gave them, and every field of the dump records
// is queued.
func wantQueuedWithDumpStamps(t *testing.T, ms []protocol.Mutation, d *Dump) {
	t.Helper()
	queued := map[string]protocol.FieldState{}
	for _, m := range ms {
		if m.Op != protocol.OpMerge {
			t.Fatalf("imported mutation op %q, want merge: %+v", m.Op, m)
		}
		for name, v := range m.Fields {
			queued[m.Collection+"/"+m.ID+"/"+name] = protocol.FieldState{Value: v, HLC: m.HLC, Origin: m.Origin}
		}
	}
	want := map[string]protocol.FieldState{}
	for _, r := range d.Records {
		for name, f := range r.Fields {
			want[r.Collection+"/"+r.ID+"/"+name] = f
		}
	}
	if !reflect.DeepEqual(queued, want) {
		t.Fatalf("queued field states differ from the dump's:\n got %v\nwant %v", queued, want)
	}
}

// TestExportImport: one row per export/import rule, each on fresh engines
// (a exports or is imported into; b starts empty).
func TestExportImport(t *testing.T) {
	ctx := context.Background()
	const base = 1_700_000_000_000 // the test clock's start
	older := func(ms int64) protocol.HLC { return stamp(base-ms, "other") }
	newer := func(ms int64) protocol.HLC { return stamp(base+ms, "other") }
	srv := stamp(base-10_000, "server")

	cases := []struct {
		name string
		run  func(t *testing.T, a, b *testEngine)
	}{
		{"export holds every record with stamps, origins and tombstones, pending folded over base", func(t *testing.T, a, b *testEngine) {
			a.pull(recordState("todos", "r1", protocol.Fields{
				"title":               fieldState("remote", srv, protocol.OriginServer),
				"done":                fieldState(false, srv, protocol.OriginServer),
				protocol.DeletedField: fieldState(false, srv, protocol.OriginServer),
			}))
			a.patch("todos", "r1", Record{"title": "local"})
			a.put("todos", Record{"id": "l1", "title": "new", "rank": 2})
			a.put("todos", Record{"id": "d1", "title": "doomed"})
			a.del("todos", "d1")
			if _, err := a.Apply(ctx, Write{Op: protocol.OpPut, Collection: "notes", ID: "n1", Fields: Record{"body": "b", "color": "red"}, Origin: protocol.OriginAgent}); err != nil {
				t.Fatal(err)
			}
			ms := a.pending()
			if len(ms) != 5 {
				t.Fatalf("outbox = %v", ms)
			}
			patchH, putL1, putD1, delD1, putN1 := ms[0].HLC, ms[1].HLC, ms[2].HLC, ms[3].HLC, ms[4].HLC

			d := a.export()
			if d.Format != DumpFormat || d.Version != 1 || d.ClientID != a.ClientID() || d.ExportedAt != base {
				t.Fatalf("dump header = %q %d %q %d", d.Format, d.Version, d.ClientID, d.ExportedAt)
			}
			var order []string
			for _, r := range d.Records {
				order = append(order, r.Collection+"/"+r.ID)
			}
			if want := []string{"notes/n1", "todos/d1", "todos/l1", "todos/r1"}; !slices.Equal(order, want) {
				t.Fatalf("exported records %v, want %v", order, want)
			}
			user := protocol.OriginUser
			wants := map[string]protocol.Fields{
				"todos/r1": { // base with the pending patch folded over it
					"title":               fieldState("local", patchH, user),
					"done":                fieldState(false, srv, protocol.OriginServer),
					protocol.DeletedField: fieldState(false, srv, protocol.OriginServer),
				},
				"todos/l1": {
					"title": fieldState("new", putL1, user), "rank": fieldState(2, putL1, user),
					"done": fieldState(nil, putL1, user), "score": fieldState(nil, putL1, user), "meta": fieldState(nil, putL1, user),
					protocol.DeletedField: fieldState(false, putL1, user),
				},
				"todos/d1": { // the tombstone, with the fields it had
					"title": fieldState("doomed", putD1, user), "rank": fieldState(nil, putD1, user),
					"done": fieldState(nil, putD1, user), "score": fieldState(nil, putD1, user), "meta": fieldState(nil, putD1, user),
					protocol.DeletedField: fieldState(true, delD1, user),
				},
				"notes/n1": {
					"body": fieldState("b", putN1, protocol.OriginAgent), "color": fieldState("red", putN1, protocol.OriginAgent),
					protocol.DeletedField: fieldState(false, putN1, protocol.OriginAgent),
				},
			}
			for key, want := range wants {
				coll, id, _ := strings.Cut(key, "/")
				if got := exported(d, coll, id); got == nil || !reflect.DeepEqual(got.Fields, want) {
					t.Errorf("export %s = %v,\n want %v", key, got, want)
				}
			}
			// Confirming the pending writes does not change the export.
			var results []protocol.MutationResult
			for _, m := range ms {
				results = append(results, protocol.MutationResult{MutationID: m.MutationID, Status: protocol.StatusApplied})
			}
			a.ack(results...)
			if n, _ := a.PendingCount(ctx); n != 0 {
				t.Fatalf("outbox not empty after ack: %d", n)
			}
			d2 := a.export()
			if !reflect.DeepEqual(d2.Records, d.Records) {
				t.Fatalf("export after confirmation differs:\n got %v\nwant %v", d2.Records, d.Records)
			}
			// The dump is plain JSON with stamps as text.
			raw, _ := json.Marshal(d)
			if !strings.Contains(string(raw), `"_deleted":{"value":true,"hlc":"`+delD1.String()+`","origin":"user"}`) {
				t.Fatalf("tombstone not in the JSON dump: %s", raw)
			}
		}},
		{"import into an empty store inserts, shows and queues with the original stamps", func(t *testing.T, a, b *testEngine) {
			a.put("todos", Record{"id": "t1", "title": "one", "done": true, "rank": 1, "meta": []any{1, "x"}})
			a.clock.Advance(5e9)
			a.patch("todos", "t1", Record{"rank": 10})
			a.put("todos", Record{"id": "t2", "title": "two", "score": 2.5})
			a.put("notes", Record{"id": "n1", "body": "b", "color": "red"})
			a.put("audit", Record{"id": "x1", "msg": "m"})
			d := a.export()
			vb, _ := b.Version(ctx)
			if got := b.importDump(d); got != (ImportResult{Inserted: 4}) {
				t.Fatalf("import = %+v, want 4 inserted", got)
			}
			for _, k := range [][2]string{{"todos", "t1"}, {"todos", "t2"}, {"notes", "n1"}, {"audit", "x1"}} {
				if got, want := b.get(k[0], k[1]), a.get(k[0], k[1]); !reflect.DeepEqual(got, want) {
					t.Errorf("%s/%s imported as %v, want %v", k[0], k[1], got, want)
				}
			}
			ms := b.pending()
			wantQueuedWithDumpStamps(t, ms, d)
			// t1 has two stamps (the put and the later patch): two
			// mutations, the older first, like the writes were made.
			var t1 []protocol.Mutation
			for _, m := range ms {
				if m.ID == "t1" {
					t1 = append(t1, m)
				}
			}
			if len(t1) != 2 || !t1[1].HLC.After(t1[0].HLC) || string(t1[1].Fields["rank"]) != "10" {
				t.Fatalf("t1 mutations = %+v", t1)
			}
			// The import is one commit.
			if v, _ := b.Version(ctx); v != vb+1 {
				t.Fatalf("version %d after import, want %d", v, vb+1)
			}
			// b's clock moved past the imported stamps.
			w := b.put("todos", Record{"id": "t3"})
			last := b.pending()[len(b.pending())-1]
			if last.MutationID != w.MutationIDs[0] || !last.HLC.After(t1[1].HLC) {
				t.Fatalf("a write after the import is stamped %s, not after %s", last.HLC, t1[1].HLC)
			}
			verifyVisible(t, b.Engine)
		}},
		{"re-importing the same dump changes nothing", func(t *testing.T, a, b *testEngine) {
			a.pull(recordState("todos", "r1", protocol.Fields{
				"title": fieldState("remote", srv, protocol.OriginServer), protocol.DeletedField: fieldState(false, srv, protocol.OriginServer),
			}))
			a.put("todos", Record{"id": "t1", "title": "one"})
			a.put("todos", Record{"id": "t2", "title": "two"})
			a.del("todos", "t2")
			a.put("notes", Record{"id": "n1", "body": "b", "extra": 1})
			d := a.export()
			n := len(d.Records)
			// Into the store that exported it.
			snap := a.snapshot()
			if got := a.importDump(d); got != (ImportResult{Skipped: n}) {
				t.Fatalf("import into the exporter = %+v, want %d skipped", got, n)
			}
			if a.snapshot() != snap {
				t.Fatal("importing its own export changed the store")
			}
			// Into another store, twice.
			if got := b.importDump(d); got != (ImportResult{Inserted: n}) {
				t.Fatalf("first import = %+v", got)
			}
			b.takeEvents("")
			snap = b.snapshot()
			if got := b.importDump(d); got != (ImportResult{Skipped: n}) {
				t.Fatalf("second import = %+v, want %d skipped", got, n)
			}
			if b.snapshot() != snap {
				t.Fatal("re-import changed the store")
			}
			if ev := b.takeEvents("change"); len(ev) != 0 {
				t.Fatalf("re-import emitted %v", ev)
			}
			// Its own export too.
			if got := b.importDump(b.export()); got != (ImportResult{Skipped: n}) {
				t.Fatalf("import of the importer's export = %+v", got)
			}
			if b.snapshot() != snap {
				t.Fatal("re-import of its own export changed the store")
			}
		}},
		{"a newer field wins, an older one is skipped", func(t *testing.T, a, b *testEngine) {
			a.put("todos", Record{"id": "t1", "title": "mine", "rank": 1})
			a.put("todos", Record{"id": "t2", "title": "mine too", "rank": 2})
			a.put("todos", Record{"id": "t3", "title": "three", "rank": 3})
			got := a.importDump(dumpOf(
				recordState("todos", "t1", protocol.Fields{"title": fieldState("theirs", newer(1000), protocol.OriginUser)}),
				recordState("todos", "t2", protocol.Fields{"title": fieldState("old", older(1000), protocol.OriginUser)}),
				recordState("todos", "t3", protocol.Fields{ // one field newer, one older
					"title": fieldState("old", older(1), protocol.OriginUser),
					"rank":  fieldState(30, newer(1), protocol.OriginAgent),
				}),
			))
			if got != (ImportResult{Updated: 2, Skipped: 1}) {
				t.Fatalf("import = %+v, want 2 updated, 1 skipped", got)
			}
			want := map[string]Record{
				"t1": {"title": "theirs", "rank": int64(1)},
				"t2": {"title": "mine too", "rank": int64(2)},
				"t3": {"title": "three", "rank": int64(30)},
			}
			for id, w := range want {
				r := a.get("todos", id)
				if r["title"] != w["title"] || r["rank"] != w["rank"] {
					t.Errorf("todos/%s = %v, want %v", id, r, w)
				}
			}
			ms := a.pending()
			if len(ms) != 5 {
				t.Fatalf("outbox = %+v", ms)
			}
			if m := ms[3]; m.ID != "t1" || m.HLC != newer(1000) || string(m.Fields["title"]) != `"theirs"` || len(m.Fields) != 1 {
				t.Fatalf("queued t1 merge = %+v", m)
			}
			if m := ms[4]; m.ID != "t3" || m.HLC != newer(1) || m.Origin != protocol.OriginAgent || len(m.Fields) != 1 || string(m.Fields["rank"]) != "30" {
				t.Fatalf("queued t3 merge = %+v", m)
			}
			// An equal stamp is not newer.
			f := exported(a.export(), "todos", "t1").Fields["title"]
			f.Value = json.RawMessage(`"same stamp"`)
			if got := a.importDump(dumpOf(recordState("todos", "t1", protocol.Fields{"title": f}))); got != (ImportResult{Skipped: 1}) {
				t.Fatalf("equal stamp import = %+v", got)
			}
			verifyVisible(t, a.Engine)
		}},
		{"a tombstone in the dump is kept on insert", func(t *testing.T, a, b *testEngine) {
			d := dumpOf(recordState("todos", "t1", protocol.Fields{
				"title":               fieldState("ghost", older(2000), protocol.OriginUser),
				protocol.DeletedField: fieldState(true, older(1000), protocol.OriginUser),
			}))
			if got := b.importDump(d); got != (ImportResult{Inserted: 1}) {
				t.Fatalf("import = %+v, want 1 inserted", got)
			}
			if r := b.get("todos", "t1"); r != nil {
				t.Fatalf("deleted record visible: %v", r)
			}
			if rows := b.query(`SELECT count(*) AS n FROM todos`); rows[0]["n"] != int64(0) {
				t.Fatalf("todos rows = %v", rows)
			}
			got := exported(b.export(), "todos", "t1")
			if got == nil || !reflect.DeepEqual(got.Fields, d.Records[0].Fields) {
				t.Fatalf("exported again as %v, want %v", got, d.Records[0])
			}
			wantQueuedWithDumpStamps(t, b.pending(), d)
			// A patch cannot revive it; a put can.
			_, err := b.Patch(ctx, "todos", "t1", Record{"title": "x"})
			wantCode(t, err, CodeNotFound)
			b.put("todos", Record{"id": "t1", "title": "back"})
			if r := b.get("todos", "t1"); r["title"] != "back" {
				t.Fatalf("put after tombstone import: %v", r)
			}
		}},
		{"a newer tombstone deletes, an older one does not", func(t *testing.T, a, b *testEngine) {
			a.put("todos", Record{"id": "t1", "title": "one"})
			a.put("todos", Record{"id": "t2", "title": "two"})
			got := a.importDump(dumpOf(
				recordState("todos", "t1", protocol.Fields{protocol.DeletedField: fieldState(true, newer(1), protocol.OriginUser)}),
				recordState("todos", "t2", protocol.Fields{protocol.DeletedField: fieldState(true, older(1), protocol.OriginUser)}),
			))
			if got != (ImportResult{Updated: 1, Skipped: 1}) {
				t.Fatalf("import = %+v", got)
			}
			if r := a.get("todos", "t1"); r != nil {
				t.Fatalf("t1 not deleted: %v", r)
			}
			if r := a.get("todos", "t2"); r["title"] != "two" {
				t.Fatalf("t2 deleted by an older tombstone: %v", r)
			}
			if f := exported(a.export(), "todos", "t1").Fields[protocol.DeletedField]; string(f.Value) != "true" || f.HLC != newer(1) {
				t.Fatalf("t1 tombstone exported as %+v", f)
			}
			verifyVisible(t, a.Engine)
		}},
		{"a newer put restores a deleted record, an older one does not", func(t *testing.T, a, b *testEngine) {
			a.put("todos", Record{"id": "t1", "title": "one", "rank": 1})
			a.del("todos", "t1")
			a.put("todos", Record{"id": "t2", "title": "two"})
			a.del("todos", "t2")
			got := a.importDump(dumpOf(
				recordState("todos", "t1", protocol.Fields{
					protocol.DeletedField: fieldState(false, newer(1), protocol.OriginUser),
					"title":               fieldState("restored", newer(1), protocol.OriginUser),
				}),
				recordState("todos", "t2", protocol.Fields{protocol.DeletedField: fieldState(false, older(1), protocol.OriginUser)}),
			))
			if got != (ImportResult{Updated: 1, Skipped: 1}) {
				t.Fatalf("import = %+v", got)
			}
			if r := a.get("todos", "t1"); r["title"] != "restored" || r["rank"] != int64(1) {
				t.Fatalf("t1 not restored: %v", r)
			}
			if r := a.get("todos", "t2"); r != nil {
				t.Fatalf("t2 restored by an older put: %v", r)
			}
			verifyVisible(t, a.Engine)
		}},
		{"an immutable record met again is skipped", func(t *testing.T, a, b *testEngine) {
			a.put("audit", Record{"id": "x1", "msg": "original"})
			a.pull(recordState("audit", "x2", protocol.Fields{
				"msg": fieldState("confirmed", srv, protocol.OriginServer), protocol.DeletedField: fieldState(false, srv, protocol.OriginServer),
			}))
			before := a.pending()
			got := a.importDump(dumpOf(
				recordState("audit", "x1", protocol.Fields{
					"msg": fieldState("forged", newer(1), protocol.OriginUser), protocol.DeletedField: fieldState(false, newer(1), protocol.OriginUser),
				}),
				recordState("audit", "x2", protocol.Fields{
					"msg": fieldState("forged", newer(1), protocol.OriginUser), protocol.DeletedField: fieldState(true, newer(1), protocol.OriginUser),
				}),
				recordState("audit", "x3", protocol.Fields{
					"msg": fieldState("new", older(1), protocol.OriginUser), protocol.DeletedField: fieldState(false, older(1), protocol.OriginUser),
				}),
			))
			if got != (ImportResult{Inserted: 1, Skipped: 2}) {
				t.Fatalf("import = %+v, want 1 inserted, 2 skipped", got)
			}
			if r := a.get("audit", "x1"); r["msg"] != "original" {
				t.Fatalf("x1 = %v", r)
			}
			if r := a.get("audit", "x2"); r["msg"] != "confirmed" {
				t.Fatalf("x2 = %v", r)
			}
			if r := a.get("audit", "x3"); r["msg"] != "new" {
				t.Fatalf("x3 = %v", r)
			}
			if ms := a.pending(); len(ms) != len(before)+1 || ms[len(ms)-1].ID != "x3" {
				t.Fatalf("outbox after import = %+v", ms)
			}
		}},
		{"undeclared, invalid and wrongly typed records are skipped and counted", func(t *testing.T, a, b *testEngine) {
			h := older(1)
			ok := func(fields protocol.Fields) protocol.Fields {
				fields[protocol.DeletedField] = fieldState(false, h, protocol.OriginUser)
				return fields
			}
			f := func(v any) protocol.FieldState { return fieldState(v, h, protocol.OriginUser) }
			d := dumpOf(
				recordState("ghosts", "g1", ok(protocol.Fields{"boo": f("!")})),                                                                        // undeclared collection
				recordState("todos", "u1", ok(protocol.Fields{"title": f("x"), "color": f(1)})),                                                        // undeclared field
				recordState("todos", "w1", ok(protocol.Fields{"rank": f("high")})),                                                                     // text for integer
				recordState("todos", "w2", ok(protocol.Fields{"rank": f(2.5)})),                                                                        // real for integer
				recordState("todos", "w3", ok(protocol.Fields{"done": f(1)})),                                                                          // number for boolean
				recordState("todos", "w4", ok(protocol.Fields{"title": f(12)})),                                                                        // number for text
				recordState("todos", "w5", ok(protocol.Fields{"score": f("1.5")})),                                                                     // text for real
				recordState("todos", "w6", ok(protocol.Fields{"rank": f(int64(1) << 60)})),                                                             // beyond ±(2^53-1)
				recordState("todos", "", ok(protocol.Fields{"title": f("no id")})),                                                                     // invalid id
				recordState("todos", "z1", protocol.Fields{"title": {Value: json.RawMessage(`"x"`), Origin: protocol.OriginUser}}),                     // no stamp
				recordState("todos", "z2", protocol.Fields{"title": {Value: json.RawMessage(`"x"`), HLC: h, Origin: "robot"}}),                         // unknown origin
				recordState("todos", "z3", protocol.Fields{"title": {Value: json.RawMessage(`{`), HLC: h, Origin: protocol.OriginUser}}),               // bad JSON
				recordState("todos", "z4", protocol.Fields{protocol.DeletedField: {Value: json.RawMessage(`1`), HLC: h, Origin: protocol.OriginUser}}), // bad tombstone
				recordState("todos", "z5", ok(protocol.Fields{"_secret": f("x")})),                                                                     // reserved field name
				recordState("bad-name", "z6", ok(protocol.Fields{})),                                                                                   // invalid collection name
				recordState("todos", "t1", ok(protocol.Fields{"title": f("fine"), "rank": f(3), "done": f(true), "score": f(1), "meta": f(map[string]any{"a": nil})})),
				recordState("notes", "n1", ok(protocol.Fields{"body": f("b"), "color": f("red"), "tags": f([]any{1})})), // extras accepted
			)
			if got := b.importDump(d); got != (ImportResult{Inserted: 2, Skipped: len(d.Records) - 2}) {
				t.Fatalf("import = %+v, want 2 inserted, %d skipped", got, len(d.Records)-2)
			}
			if r := b.get("todos", "t1"); r["title"] != "fine" || r["rank"] != int64(3) || r["score"] != float64(1) || !reflect.DeepEqual(r["meta"], json.RawMessage(`{"a":null}`)) {
				t.Fatalf("t1 = %v", r)
			}
			if r := b.get("notes", "n1"); !reflect.DeepEqual(r, Record{"id": "n1", "body": "b", "color": json.RawMessage(`"red"`), "tags": json.RawMessage(`[1]`)}) {
				t.Fatalf("n1 = %v", r)
			}
			var ids []string
			for _, m := range b.pending() {
				ids = append(ids, m.Collection+"/"+m.ID)
			}
			if want := []string{"notes/n1", "todos/t1"}; !slices.Equal(slices.Sorted(slices.Values(ids)), want) {
				t.Fatalf("queued %v, want %v", ids, want)
			}
			if rows := b.query(`SELECT id FROM todos ORDER BY id`); !reflect.DeepEqual(rows, []Record{{"id": "t1"}}) {
				t.Fatalf("todos = %v", rows)
			}
			// An import whose records are all refused commits nothing.
			snap := b.snapshot()
			if got := b.importDump(dumpOf(d.Records[:3]...)); got != (ImportResult{Skipped: 3}) {
				t.Fatalf("refused-only import = %+v", got)
			}
			if b.snapshot() != snap {
				t.Fatal("a refused-only import changed the store")
			}
			verifyVisible(t, b.Engine)
		}},
		{"imported values are stored in canonical JSON", func(t *testing.T, a, b *testEngine) {
			h := older(1)
			f := func(raw string) protocol.FieldState {
				return protocol.FieldState{Value: json.RawMessage(raw), HLC: h, Origin: protocol.OriginUser}
			}
			// What another JSON encoder may produce: HTML escapes, spaces,
			// keys out of order.
			d := dumpOf(
				recordState("todos", "t1", protocol.Fields{
					"title": f(`"\u003cb\u003e \u0026"`), "meta": f(`{ "b" : 1, "a" : [ 1, "\u003c" ] }`),
					"rank": f(`7`), protocol.DeletedField: f(`false`),
				}),
				recordState("notes", "n1", protocol.Fields{"x": f(`{"q" : "\u003e"}`), protocol.DeletedField: f(`false`)}),
			)
			if got := b.importDump(d); got != (ImportResult{Inserted: 2}) {
				t.Fatalf("import = %+v", got)
			}
			if r := b.get("todos", "t1"); r["title"] != "<b> &" || !reflect.DeepEqual(r["meta"], json.RawMessage(`{"a":[1,"<"],"b":1}`)) {
				t.Fatalf("t1 = %#v", r)
			}
			if r := b.get("notes", "n1"); !reflect.DeepEqual(r["x"], json.RawMessage(`{"q":">"}`)) {
				t.Fatalf("n1 = %#v", r)
			}
			for _, m := range b.pending() {
				for name, v := range m.Fields {
					want, _ := marshalJSON(json.RawMessage(v))
					var decoded any
					json.Unmarshal(v, &decoded)
					canon, _ := marshalJSON(decoded)
					if string(v) != string(canon) || string(v) != string(want) {
						t.Errorf("queued %s.%s = %s, not canonical (%s)", m.ID, name, v, canon)
					}
				}
			}
			snap := b.snapshot()
			if got := b.importDump(d); got != (ImportResult{Skipped: 2}) {
				t.Fatalf("re-import = %+v", got)
			}
			if b.snapshot() != snap {
				t.Fatal("re-import changed the store")
			}
			verifyVisible(t, b.Engine)
		}},
		{"Import refuses a value that is not a dump", func(t *testing.T, a, b *testEngine) {
			snap := b.snapshot()
			for _, d := range []*Dump{nil, {Format: "other", Version: 1}, {Format: DumpFormat, Version: 2}, {Format: DumpFormat}} {
				_, err := b.Import(ctx, d)
				wantCode(t, err, CodeValidation)
			}
			if b.snapshot() != snap {
				t.Fatal("a refused import changed the store")
			}
		}},
		{"round trip through JSON gives the same rows", func(t *testing.T, a, b *testEngine) {
			a.pull(
				recordState("todos", "r1", protocol.Fields{
					"title": fieldState("remote", srv, protocol.OriginServer), "rank": fieldState(7, srv, protocol.OriginServer),
					protocol.DeletedField: fieldState(false, srv, protocol.OriginServer),
				}),
				recordState("todos", "r2", protocol.Fields{
					"title": fieldState("gone", srv, protocol.OriginServer), protocol.DeletedField: fieldState(true, srv, protocol.OriginServer),
				}),
			)
			a.patch("todos", "r1", Record{"done": true, "meta": map[string]any{"nested": []any{1, "two <&>", nil}}})
			a.put("todos", Record{"id": "t1", "title": "ünïcode ✓ <&>", "done": false, "rank": -3, "score": 1e-7})
			a.put("todos", Record{"id": "t2", "title": "deleted"})
			a.del("todos", "t2")
			a.put("notes", Record{"id": "n1", "body": "b", "color": "red", "deep": map[string]any{"a": map[string]any{"b": 1}}})
			a.put("notes", Record{"id": "n2"})
			a.put("audit", Record{"id": "x1", "msg": "logged"})
			a.clock.Advance(3e9)
			a.patch("todos", "t1", Record{"score": 2.25})

			raw, err := json.Marshal(a.export())
			if err != nil {
				t.Fatal(err)
			}
			d, err := DecodeDump(raw)
			if err != nil {
				t.Fatalf("decode our own export: %v", err)
			}
			res := b.importDump(d)
			if res.Inserted != len(d.Records) || res.Updated != 0 || res.Skipped != 0 {
				t.Fatalf("import = %+v, want %d inserted", res, len(d.Records))
			}
			if got, want := allRows(b), allRows(a); !reflect.DeepEqual(got, want) {
				t.Fatalf("rows after the round trip:\n got %v\nwant %v", got, want)
			}
			if got, want := b.export().Records, a.export().Records; !reflect.DeepEqual(got, want) {
				t.Fatalf("records after the round trip:\n got %v\nwant %v", got, want)
			}
			verifyVisible(t, b.Engine)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a, b := openTest(t, testSchema()), openTest(t, testSchema())
			tc.run(t, a, b)
		})
	}
}

// TestDecodeDump: anything that is not one well-formed dump of a known
// version is refused with CodeValidation.
func TestDecodeDump(t *testing.T) {
	const rec = `{"collection":"todos","id":"a","fields":{"title":{"value":"x","hlc":"1700000000000-000000-n","origin":"user"}}}`
	cases := []struct {
		name string
		raw  string
		ok   bool
	}{
		{"valid", `{"format":"opfsync-export","version":1,"records":[` + rec + `]}`, true},
		{"valid with header fields and whitespace", "\n {\"format\":\"opfsync-export\",\"version\":1,\"clientId\":\"c1\",\"exportedAt\":5,\"records\":[]} \n\t", true},
		{"valid without records", `{"format":"opfsync-export","version":1}`, true},
		{"empty input", ``, false},
		{"only whitespace", "  \n", false},
		{"malformed JSON", `{"format":"opfsync-export","version":1,`, false},
		{"not an object", `[1,2]`, false},
		{"null", `null`, false},
		{"a string", `"opfsync-export"`, false},
		{"wrong format", `{"format":"something-else","version":1,"records":[]}`, false},
		{"missing format", `{"version":1,"records":[]}`, false},
		{"format in another case", `{"format":"OPFSYNC-EXPORT","version":1,"records":[]}`, false},
		{"wrong version", `{"format":"opfsync-export","version":2,"records":[]}`, false},
		{"missing version", `{"format":"opfsync-export","records":[]}`, false},
		{"version as a string", `{"format":"opfsync-export","version":"1","records":[]}`, false},
		{"unknown top-level field", `{"format":"opfsync-export","version":1,"records":[],"extra":true}`, false},
		{"trailing garbage", `{"format":"opfsync-export","version":1,"records":[]} xyz`, false},
		{"two dumps", `{"format":"opfsync-export","version":1,"records":[]}{"format":"opfsync-export","version":1,"records":[]}`, false},
		{"records not an array", `{"format":"opfsync-export","version":1,"records":{}}`, false},
		{"bad stamp", `{"format":"opfsync-export","version":1,"records":[` + strings.Replace(rec, "1700000000000-000000-n", "yesterday", 1) + `]}`, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d, err := DecodeDump([]byte(tc.raw))
			if tc.ok {
				if err != nil || d == nil || d.Format != DumpFormat || d.Version != 1 {
					t.Fatalf("DecodeDump = %v, %v", d, err)
				}
				return
			}
			wantCode(t, err, CodeValidation)
			if d != nil {
				t.Fatalf("a refused dump was returned: %+v", d)
			}
		})
	}
}
