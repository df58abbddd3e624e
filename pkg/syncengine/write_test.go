package syncengine

import (
	"context"
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/opfsync/opfsync/pkg/protocol"
)

func TestInvalidWritesAreRefusedAndChangeNothing(t *testing.T) {
	long := strings.Repeat("x", protocol.MaxIDBytes+1)
	big := strings.Repeat("y", protocol.MaxRecordBytes)
	deep := strings.Repeat("[", protocol.MaxJSONDepth+1) + strings.Repeat("]", protocol.MaxJSONDepth+1)
	cases := []struct {
		name  string
		write Write
		code  Code
	}{
		{"unknown collection", Write{Op: protocol.OpPut, Collection: "nope", ID: "a"}, CodeValidation},
		{"missing id", Write{Op: protocol.OpPut, Collection: "todos", Fields: Record{"title": "x"}}, CodeValidation},
		{"oversized id", Write{Op: protocol.OpPut, Collection: "todos", ID: long}, CodeValidation},
		{"control character in id", Write{Op: protocol.OpPut, Collection: "todos", ID: "a\x00b"}, CodeValidation},
		{"unknown field", Write{Op: protocol.OpPut, Collection: "todos", ID: "a", Fields: Record{"colour": "red"}}, CodeValidation},
		{"reserved field", Write{Op: protocol.OpPut, Collection: "todos", ID: "a", Fields: Record{"_deleted": true}}, CodeValidation},
		{"id mismatch", Write{Op: protocol.OpPut, Collection: "todos", ID: "a", Fields: Record{"id": "b"}}, CodeValidation},
		{"text gets number", Write{Op: protocol.OpPut, Collection: "todos", ID: "a", Fields: Record{"title": 3}}, CodeValidation},
		{"boolean gets string", Write{Op: protocol.OpPut, Collection: "todos", ID: "a", Fields: Record{"done": "yes"}}, CodeValidation},
		{"boolean gets number", Write{Op: protocol.OpPut, Collection: "todos", ID: "a", Fields: Record{"done": 1}}, CodeValidation},
		{"integer gets fraction", Write{Op: protocol.OpPut, Collection: "todos", ID: "a", Fields: Record{"rank": 1.5}}, CodeValidation},
		{"integer beyond 2^53", Write{Op: protocol.OpPut, Collection: "todos", ID: "a", Fields: Record{"rank": int64(1) << 53}}, CodeValidation},
		{"integer gets string", Write{Op: protocol.OpPut, Collection: "todos", ID: "a", Fields: Record{"rank": "1"}}, CodeValidation},
		{"real gets NaN", Write{Op: protocol.OpPut, Collection: "todos", ID: "a", Fields: Record{"score": math.NaN()}}, CodeValidation},
		{"real gets infinity", Write{Op: protocol.OpPut, Collection: "todos", ID: "a", Fields: Record{"score": math.Inf(1)}}, CodeValidation},
		{"json not encodable", Write{Op: protocol.OpPut, Collection: "todos", ID: "a", Fields: Record{"meta": func() {}}}, CodeValidation},
		{"json too deep", Write{Op: protocol.OpPut, Collection: "todos", ID: "a", Fields: Record{"meta": json.RawMessage(deep)}}, CodeValidation},
		{"json malformed", Write{Op: protocol.OpPut, Collection: "todos", ID: "a", Fields: Record{"meta": json.RawMessage(`{"a":`)}}, CodeValidation},
		{"record over the size limit", Write{Op: protocol.OpPut, Collection: "todos", ID: "a", Fields: Record{"title": big}}, CodeValidation},
		{"server origin", Write{Op: protocol.OpPut, Collection: "todos", ID: "a", Origin: protocol.OriginServer}, CodeValidation},
		{"unknown origin", Write{Op: protocol.OpPut, Collection: "todos", ID: "a", Origin: "robot"}, CodeValidation},
		{"unknown op", Write{Op: "upsert", Collection: "todos", ID: "a"}, CodeValidation},
		{"empty patch", Write{Op: protocol.OpPatch, Collection: "todos", ID: "t1"}, CodeValidation},
		{"delete with fields", Write{Op: protocol.OpDelete, Collection: "todos", ID: "t1", Fields: Record{"title": "x"}}, CodeValidation},
		{"patch of a missing record", Write{Op: protocol.OpPatch, Collection: "todos", ID: "zz", Fields: Record{"title": "x"}}, CodeNotFound},
		{"patch of a deleted record", Write{Op: protocol.OpPatch, Collection: "todos", ID: "gone", Fields: Record{"title": "x"}}, CodeNotFound},
		{"patch of a missing extra-fields record", Write{Op: protocol.OpPatch, Collection: "notes", ID: "zz", Fields: Record{"body": "x"}}, CodeNotFound},
		{"second put of an immutable record", Write{Op: protocol.OpPut, Collection: "audit", ID: "e1", Fields: Record{"msg": "again"}}, CodeValidation},
		{"put of a deleted immutable record", Write{Op: protocol.OpPut, Collection: "audit", ID: "e2", Fields: Record{"msg": "again"}}, CodeValidation},
		{"patch of an immutable record", Write{Op: protocol.OpPatch, Collection: "audit", ID: "e1", Fields: Record{"msg": "edit"}}, CodeValidation},
	}
	te := openTest(t, testSchema())
	te.put("todos", Record{"id": "t1", "title": "keep", "done": true, "rank": 1, "score": 0.5, "meta": map[string]any{"k": 1}})
	te.put("todos", Record{"id": "gone", "title": "bye"})
	te.del("todos", "gone")
	te.put("audit", Record{"id": "e1", "msg": "logged"})
	te.put("audit", Record{"id": "e2", "msg": "logged"})
	te.del("audit", "e2")
	before := te.snapshot()
	te.takeEvents("")
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := te.Apply(context.Background(), c.write)
			wantCode(t, err, c.code)
			if after := te.snapshot(); after != before {
				t.Fatalf("a refused write changed the store:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
	if evs := te.takeEvents(""); len(evs) != 0 {
		t.Fatalf("refused writes emitted events: %v", evs)
	}
	// A batch with one bad write writes nothing at all.
	_, err := te.Apply(context.Background(),
		Write{Op: protocol.OpPut, Collection: "todos", ID: "new", Fields: Record{"title": "fine"}},
		Write{Op: protocol.OpPatch, Collection: "todos", ID: "t1", Fields: Record{"rank": "bad"}})
	wantCode(t, err, CodeValidation)
	if !strings.Contains(err.Error(), "write 1") {
		t.Fatalf("batch error does not say which write: %v", err)
	}
	_, err = te.Apply(context.Background(),
		Write{Op: protocol.OpPut, Collection: "todos", ID: "new", Fields: Record{"title": "fine"}},
		Write{Op: protocol.OpPatch, Collection: "todos", ID: "missing", Fields: Record{"rank": 2}})
	wantCode(t, err, CodeNotFound)
	if after := te.snapshot(); after != before {
		t.Fatalf("a refused batch changed the store")
	}
}

func TestWritesUpdateVisibleOutboxAndVersionTogether(t *testing.T) {
	te := openTest(t, testSchema())
	v0, _ := te.Version(context.Background())
	r1 := te.put("todos", Record{"id": "t1", "title": "Buy milk", "done": false, "rank": 3, "score": 1.25, "meta": map[string]any{"tags": []any{"a"}}})
	if r1.Version != v0+1 || len(r1.MutationIDs) != 1 {
		t.Fatalf("put result %+v, want version %d", r1, v0+1)
	}
	got := te.get("todos", "t1")
	want := Record{"id": "t1", "title": "Buy milk", "done": false, "rank": int64(3), "score": 1.25, "meta": json.RawMessage(`{"tags":["a"]}`)}
	if !recordsEqual(got, want) {
		t.Fatalf("get after put = %v, want %v", got, want)
	}
	te.patch("todos", "t1", Record{"done": true, "rank": nil})
	got = te.get("todos", "t1")
	if got["done"] != true || got["rank"] != nil || got["title"] != "Buy milk" {
		t.Fatalf("get after patch = %v", got)
	}
	// A put replaces the whole record: fields it omits become null.
	te.put("todos", Record{"id": "t1", "title": "Buy oat milk"})
	got = te.get("todos", "t1")
	if got["done"] != nil || got["score"] != nil || got["meta"] != nil || got["title"] != "Buy oat milk" {
		t.Fatalf("get after second put = %v", got)
	}
	te.del("todos", "t1")
	if got := te.get("todos", "t1"); got != nil {
		t.Fatalf("get after delete = %v", got)
	}
	// Deleting again, or deleting an id never seen, is not an error: the
	// tombstone is still queued so a record not yet pulled is deleted too.
	te.del("todos", "t1")
	te.del("todos", "never-seen")
	// A put restores a deleted record.
	te.put("todos", Record{"id": "t1", "title": "back"})
	if got := te.get("todos", "t1"); got == nil || got["title"] != "back" {
		t.Fatalf("get after restoring put = %v", got)
	}
	ms := te.pending()
	ops := []protocol.Op{}
	for i, m := range ms {
		ops = append(ops, m.Op)
		if i > 0 && !m.HLC.After(ms[i-1].HLC) {
			t.Fatalf("outbox stamps not increasing: %s then %s", ms[i-1].HLC, m.HLC)
		}
		if m.Origin != protocol.OriginUser {
			t.Fatalf("default origin %q, want user", m.Origin)
		}
		if err := protocol.ValidateMutation(&m); err != nil {
			t.Fatalf("queued mutation %d is not valid on the wire: %v", i, err)
		}
	}
	wantOps := []protocol.Op{"put", "patch", "put", "delete", "delete", "delete", "put"}
	if strings.Join(opsStrings(ops), ",") != strings.Join(opsStrings(wantOps), ",") {
		t.Fatalf("outbox ops %v, want %v", ops, wantOps)
	}
	v, _ := te.Version(context.Background())
	if v != v0+uint64(len(wantOps)) {
		t.Fatalf("version %d after %d writes from %d", v, len(wantOps), v0)
	}
	changes := te.takeEvents("change")
	if len(changes) != len(wantOps) {
		t.Fatalf("%d change events for %d writes", len(changes), len(wantOps))
	}
	for i, ev := range changes {
		ce := ev.(*ChangeEvent)
		if ce.Version != v0+uint64(i)+1 || strings.Join(ce.Tables, ",") != "pending,todos" {
			t.Fatalf("change event %d = %+v", i, ce)
		}
	}
	verifyVisible(t, te.Engine)
}

func TestWriteOriginsAreRecorded(t *testing.T) {
	te := openTest(t, testSchema())
	for _, o := range []protocol.Origin{protocol.OriginUser, protocol.OriginAgent, protocol.OriginSystem, protocol.OriginMigration} {
		_, err := te.Apply(context.Background(), Write{Op: protocol.OpPut, Collection: "todos", ID: string(o), Fields: Record{"title": "x"}, Origin: o})
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range te.pending() {
		if string(m.Origin) != m.ID {
			t.Fatalf("mutation for %s has origin %s", m.ID, m.Origin)
		}
	}
}

func TestBatchWritesCommitTogether(t *testing.T) {
	te := openTest(t, testSchema())
	v0, _ := te.Version(context.Background())
	var ws []Write
	for i := 0; i < 50; i++ {
		ws = append(ws, Write{Op: protocol.OpPut, Collection: "todos", ID: string(rune('a' + i%26)), Fields: Record{"rank": i}})
	}
	res, err := te.Apply(context.Background(), ws...)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.MutationIDs) != 50 || res.Version != v0+1 {
		t.Fatalf("batch result: %d ids, version %d", len(res.MutationIDs), res.Version)
	}
	// The later write of the same id wins.
	if got := te.get("todos", "a"); got["rank"] != int64(26) {
		t.Fatalf("a = %v, want rank 26", got)
	}
	verifyVisible(t, te.Engine)
}

func TestExtraFieldsCollection(t *testing.T) {
	te := openTest(t, testSchema())
	te.put("notes", Record{"id": "n1", "body": "hi", "mood": "happy", "stars": 3})
	got := te.get("notes", "n1")
	if got["body"] != "hi" || string(got["mood"].(json.RawMessage)) != `"happy"` || string(got["stars"].(json.RawMessage)) != "3" {
		t.Fatalf("get = %v", got)
	}
	te.patch("notes", "n1", Record{"stars": 4})
	te.put("notes", Record{"id": "n1", "body": "replaced", "colour": "blue"})
	got = te.get("notes", "n1")
	if _, ok := got["mood"]; ok {
		t.Fatalf("put kept an old extra field: %v", got)
	}
	if _, ok := got["stars"]; ok {
		t.Fatalf("put kept an old extra field: %v", got)
	}
	if string(got["colour"].(json.RawMessage)) != `"blue"` {
		t.Fatalf("get = %v", got)
	}
	verifyVisible(t, te.Engine)
}

func opsStrings(ops []protocol.Op) []string {
	out := make([]string, len(ops))
	for i, o := range ops {
		out[i] = string(o)
	}
	return out
}

func recordsEqual(a, b Record) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		w, ok := b[k]
		if !ok {
			return false
		}
		if rv, ok := v.(json.RawMessage); ok {
			rw, ok := w.(json.RawMessage)
			if !ok || string(rv) != string(rw) {
				return false
			}
			continue
		}
		if v != w {
			return false
		}
	}
	return true
}
