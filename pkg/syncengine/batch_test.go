package syncengine

import (
	"context"
	"testing"

	"github.com/opfsync/opfsync/pkg/protocol"
)

// ApplyRequests: one commit for many requests, each all or nothing on its
// own, refused ones leaving the others (and the version, the outbox and the
// events) alone, and request ids answered exactly once.
func TestApplyRequestsIndependentInOneCommit(t *testing.T) {
	te := openTest(t, testSchema())
	te.put("todos", Record{"id": "a", "title": "before"})
	te.takeEvents("")
	v0 := te.put("todos", Record{"id": "b", "title": "b"}).Version
	te.takeEvents("")
	ctx := context.Background()
	put := func(id, title string) Write {
		return Write{Op: protocol.OpPut, Collection: "todos", ID: id, Fields: Record{"title": title}}
	}
	reqs := []Request{
		{ID: "r1", Writes: []Write{put("x1", "one")}},
		{Writes: []Write{{Op: protocol.OpPatch, Collection: "todos", ID: "missing", Fields: Record{"title": "t"}}}},
		{Writes: []Write{put("x2", "two"), {Op: protocol.OpPut, Collection: "todos", ID: "x3", Fields: Record{"rank": "not a number"}}}},
		{Writes: []Write{{Op: protocol.OpPatch, Collection: "todos", ID: "a", Fields: Record{"title": "after"}}, put("x4", "four")}},
		{ID: "r1", Writes: []Write{put("x1", "again")}},
		{Writes: []Write{{Op: protocol.OpPatch, Collection: "todos", ID: "x2", Fields: Record{"title": "t"}}}},
	}
	out := te.ApplyRequests(ctx, reqs)
	wantCodes := []Code{"", CodeNotFound, CodeValidation, "", "", CodeNotFound}
	for i, r := range out {
		if got := Code(""); r.Err != nil {
			got = CodeOf(r.Err)
			if got != wantCodes[i] {
				t.Errorf("request %d: error %v, want code %q", i, r.Err, wantCodes[i])
			}
		} else if wantCodes[i] != "" {
			t.Errorf("request %d succeeded, want %s", i, wantCodes[i])
		}
	}
	if out[0].Result.Version != v0+1 || out[3].Result.Version != v0+1 || len(out[3].Result.MutationIDs) != 2 {
		t.Fatalf("results %+v %+v: want both at version %d (one commit), two mutations for request 3", out[0].Result, out[3].Result, v0+1)
	}
	if out[4].Result.Version != out[0].Result.Version || len(out[4].Result.MutationIDs) != 1 || out[4].Result.MutationIDs[0] != out[0].Result.MutationIDs[0] {
		t.Fatalf("a repeated request id got %+v, want the first answer %+v", out[4].Result, out[0].Result)
	}
	if got := te.get("todos", "x1"); got["title"] != "one" {
		t.Errorf("x1 = %v, want the first write only", got)
	}
	for _, id := range []string{"x2", "x3", "missing"} {
		if got := te.get("todos", id); got != nil {
			t.Errorf("%s = %v, want nothing (its request was refused)", id, got)
		}
	}
	if te.get("todos", "a")["title"] != "after" || te.get("todos", "x4")["title"] != "four" {
		t.Errorf("request 3 not applied: a=%v x4=%v", te.get("todos", "a"), te.get("todos", "x4"))
	}
	if n, _ := te.PendingCount(ctx); n != 2+3 {
		t.Errorf("outbox holds %d mutations, want 5 (2 before, x1, a, x4)", n)
	}
	changes := te.takeEvents("change")
	if len(changes) != 1 || changes[0].(*ChangeEvent).Version != v0+1 {
		t.Errorf("change events %v, want exactly one at version %d", changes, v0+1)
	}
	// A batch where every request is refused commits nothing.
	out = te.ApplyRequests(ctx, []Request{{Writes: []Write{{Op: protocol.OpPatch, Collection: "todos", ID: "nope", Fields: Record{"title": "t"}}}}})
	if CodeOf(out[0].Err) != CodeNotFound {
		t.Fatalf("refused batch: %v", out[0].Err)
	}
	if v := te.put("todos", Record{"id": "z", "title": "z"}).Version; v != v0+2 {
		t.Errorf("version after a refused batch and one put = %d, want %d (the refused batch bumped nothing)", v, v0+2)
	}
}
