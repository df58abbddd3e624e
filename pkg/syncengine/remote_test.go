package syncengine

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/opfsync/opfsync/pkg/protocol"
)

// remoteRec builds a remote record state from explicit field states.
func remoteRec(coll, id string, fields protocol.Fields) protocol.RecordState {
	return protocol.RecordState{Collection: coll, ID: id, Fields: fields}
}

func TestRemoteChangesMergeFieldByFieldByHLC(t *testing.T) {
	const node = "other"
	live := func(wall int64) protocol.FieldState { return fieldState(false, stamp(wall, node), protocol.OriginUser) }
	dead := func(wall int64) protocol.FieldState { return fieldState(true, stamp(wall, node), protocol.OriginUser) }
	text := func(s string, wall int64) protocol.FieldState {
		return fieldState(s, stamp(wall, node), protocol.OriginUser)
	}
	cases := []struct {
		name  string
		pages [][]protocol.RecordState
		want  Record // nil: not visible
	}{
		{"insert", [][]protocol.RecordState{{remoteRec("todos", "a", protocol.Fields{"_deleted": live(10), "title": text("x", 10)})}},
			Record{"title": "x"}},
		{"newer field wins", [][]protocol.RecordState{
			{remoteRec("todos", "a", protocol.Fields{"_deleted": live(10), "title": text("old", 10)})},
			{remoteRec("todos", "a", protocol.Fields{"title": text("new", 20)})}},
			Record{"title": "new"}},
		{"older field loses", [][]protocol.RecordState{
			{remoteRec("todos", "a", protocol.Fields{"_deleted": live(10), "title": text("new", 20)})},
			{remoteRec("todos", "a", protocol.Fields{"title": text("old", 15)})}},
			Record{"title": "new"}},
		{"fields merge independently", [][]protocol.RecordState{
			{remoteRec("todos", "a", protocol.Fields{"_deleted": live(10), "title": text("t1", 30), "rank": fieldState(1, stamp(10, node), protocol.OriginUser)})},
			{remoteRec("todos", "a", protocol.Fields{"title": text("t0", 20), "rank": fieldState(2, stamp(20, node), protocol.OriginUser)})}},
			Record{"title": "t1", "rank": int64(2)}},
		{"newer tombstone deletes", [][]protocol.RecordState{
			{remoteRec("todos", "a", protocol.Fields{"_deleted": live(10), "title": text("x", 10)})},
			{remoteRec("todos", "a", protocol.Fields{"_deleted": dead(20)})}},
			nil},
		{"older tombstone does not", [][]protocol.RecordState{
			{remoteRec("todos", "a", protocol.Fields{"_deleted": live(30), "title": text("x", 30)})},
			{remoteRec("todos", "a", protocol.Fields{"_deleted": dead(20)})}},
			Record{"title": "x"}},
		{"newer put restores", [][]protocol.RecordState{
			{remoteRec("todos", "a", protocol.Fields{"_deleted": dead(20), "title": text("x", 10)})},
			{remoteRec("todos", "a", protocol.Fields{"_deleted": live(30), "title": text("back", 30)})}},
			Record{"title": "back"}},
		{"a later field edit does not restore", [][]protocol.RecordState{
			{remoteRec("todos", "a", protocol.Fields{"_deleted": dead(20), "title": text("x", 10)})},
			{remoteRec("todos", "a", protocol.Fields{"title": text("edit", 30)})}},
			nil},
		{"fields without any put are not a record", [][]protocol.RecordState{
			{remoteRec("todos", "a", protocol.Fields{"title": text("orphan", 10)})}},
			nil},
		{"equal stamps keep what is there", [][]protocol.RecordState{
			{remoteRec("todos", "a", protocol.Fields{"_deleted": live(10), "title": text("first", 10)})},
			{remoteRec("todos", "a", protocol.Fields{"title": text("second", 10)})}},
			Record{"title": "first"}},
		{"a value of the wrong type shows as null", [][]protocol.RecordState{
			{remoteRec("todos", "a", protocol.Fields{"_deleted": live(10), "title": text("x", 10), "rank": text("not a number", 10)})}},
			Record{"title": "x", "rank": nil}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			te := openTest(t, testSchema())
			for _, p := range c.pages {
				te.pull(p...)
			}
			got := te.get("todos", "a")
			if c.want == nil {
				if got != nil {
					t.Fatalf("visible %v, want none", got)
				}
			} else {
				for k, v := range c.want {
					if got[k] != v {
						t.Fatalf("visible %v, want %s = %v", got, k, v)
					}
				}
			}
			verifyVisible(t, te.Engine)
			if n := len(te.pending()); n != 0 {
				t.Fatalf("remote changes queued %d mutations", n)
			}
		})
	}
}

func TestPendingEditStaysVisibleUntilANewerRemoteValue(t *testing.T) {
	te := openTest(t, testSchema())
	te.put("todos", Record{"id": "a", "title": "mine", "rank": 1})
	local := te.pending()[0].HLC
	// An older remote write (stamped before the local edit) does not show.
	te.pull(remoteRec("todos", "a", protocol.Fields{
		"_deleted": fieldState(false, stamp(local.Wall-5, "other"), protocol.OriginUser),
		"title":    fieldState("theirs", stamp(local.Wall-5, "other"), protocol.OriginUser),
		"score":    fieldState(2.5, stamp(local.Wall-5, "other"), protocol.OriginUser),
	}))
	if got := te.get("todos", "a"); got["title"] != "mine" || got["score"] != nil {
		t.Fatalf("older remote value shows over a pending edit: %v", got)
	}
	// A newer one does, field by field.
	te.pull(remoteRec("todos", "a", protocol.Fields{"title": fieldState("newer", stamp(local.Wall+1000, "other"), protocol.OriginUser)}))
	if got := te.get("todos", "a"); got["title"] != "newer" || got["rank"] != int64(1) {
		t.Fatalf("newer remote value does not show: %v", got)
	}
	// And the clock moved past it: the next local edit wins again.
	te.patch("todos", "a", Record{"title": "mine again"})
	if got := te.get("todos", "a"); got["title"] != "mine again" {
		t.Fatalf("local edit after a newer remote one: %v", got)
	}
	verifyVisible(t, te.Engine)
}

// serverResult answers a mutation the way a server that applied it would:
// the record's state is the mutation's fields merged over prior.
func serverResult(m protocol.Mutation, prior protocol.Fields, status protocol.MutationStatus) protocol.MutationResult {
	rec := protocol.Fields{}
	rec.Merge(prior)
	rec.Merge(m.States())
	return protocol.MutationResult{MutationID: m.MutationID, Status: status,
		Record: &protocol.RecordState{Collection: m.Collection, ID: m.ID, Fields: rec}}
}

func TestAckMovesMutationIntoBase(t *testing.T) {
	te := openTest(t, testSchema())
	te.put("todos", Record{"id": "a", "title": "x", "rank": 1})
	te.patch("todos", "a", Record{"rank": 2})
	ms := te.pending()
	te.ack(serverResult(ms[0], nil, protocol.StatusApplied))
	if got := te.pending(); len(got) != 1 || got[0].MutationID != ms[1].MutationID {
		t.Fatalf("outbox after ack: %v", got)
	}
	if got := te.get("todos", "a"); got["rank"] != int64(2) || got["title"] != "x" {
		t.Fatalf("visible after first ack: %v", got)
	}
	verifyVisible(t, te.Engine)
	// Acking the same mutation again (a duplicate response) is harmless.
	te.ack(serverResult(ms[0], nil, protocol.StatusDuplicate))
	te.ack(serverResult(ms[1], ms[0].States(), protocol.StatusDuplicate))
	if n := len(te.pending()); n != 0 {
		t.Fatalf("outbox holds %d after all acks", n)
	}
	if got := te.get("todos", "a"); got["rank"] != int64(2) || got["title"] != "x" {
		t.Fatalf("visible after acks: %v", got)
	}
	d, _ := te.Export(context.Background())
	if len(d.Records) != 1 || d.Records[0].Fields["rank"].HLC != ms[1].HLC {
		t.Fatalf("base after acks: %+v", d.Records)
	}
	verifyVisible(t, te.Engine)
	if evs := te.takeEvents("conflict"); len(evs) != 0 {
		t.Fatalf("plain acks raised conflicts: %v", evs)
	}
}

func TestAckWithAClampedStampKeepsTheValue(t *testing.T) {
	te := openTest(t, testSchema())
	te.put("todos", Record{"id": "a", "title": "from the future"})
	m := te.pending()[0]
	clamped := m
	clamped.HLC = protocol.HLC{Wall: m.HLC.Wall - 3_600_000, Node: "server"}
	te.ack(serverResult(clamped, nil, protocol.StatusApplied))
	if got := te.get("todos", "a"); got["title"] != "from the future" {
		t.Fatalf("visible after a clamped ack: %v", got)
	}
	if evs := te.takeEvents("conflict"); len(evs) != 0 {
		t.Fatalf("a clamped stamp raised a conflict: %v", evs)
	}
	verifyVisible(t, te.Engine)
}

func TestAckWithoutRecordFallsBackToTheMutation(t *testing.T) {
	te := openTest(t, testSchema())
	te.put("todos", Record{"id": "a", "title": "x"})
	m := te.pending()[0]
	te.ack(protocol.MutationResult{MutationID: m.MutationID, Status: protocol.StatusApplied})
	if got := te.get("todos", "a"); got["title"] != "x" {
		t.Fatalf("visible: %v", got)
	}
	verifyVisible(t, te.Engine)
}

func TestRejectedMutationRollsBackAndEmitsRejected(t *testing.T) {
	te := openTest(t, testSchema())
	te.pull(remoteRec("todos", "a", protocol.Fields{
		"_deleted": fieldState(false, stamp(10, "other"), protocol.OriginUser),
		"title":    fieldState("confirmed", stamp(10, "other"), protocol.OriginUser),
	}))
	te.patch("todos", "a", Record{"title": "refused"})
	te.patch("todos", "a", Record{"rank": 7})
	te.put("todos", Record{"id": "b", "title": "new and refused"})
	ms := te.pending()
	te.takeEvents("")
	te.ack(protocol.MutationResult{MutationID: ms[0].MutationID, Status: protocol.StatusRejected,
		Error: &protocol.ErrorBody{Code: "FORBIDDEN", Message: "read-only record"}})
	if got := te.get("todos", "a"); got["title"] != "confirmed" || got["rank"] != int64(7) {
		t.Fatalf("after rejecting the title edit: %v (the later rank edit must stay)", got)
	}
	te.ack(protocol.MutationResult{MutationID: ms[2].MutationID, Status: protocol.StatusRejected})
	if got := te.get("todos", "b"); got != nil {
		t.Fatalf("a rejected insert is still visible: %v", got)
	}
	rej := te.takeEvents("rejected")
	if len(rej) != 2 {
		t.Fatalf("rejected events: %v", rej)
	}
	r0 := rej[0].(*RejectedEvent)
	if r0.Collection != "todos" || r0.ID != "a" || r0.MutationID != ms[0].MutationID || r0.Code != "FORBIDDEN" || r0.Message != "read-only record" {
		t.Fatalf("first rejected event: %+v", r0)
	}
	if r1 := rej[1].(*RejectedEvent); r1.ID != "b" || r1.Code == "" || r1.Message == "" {
		t.Fatalf("second rejected event: %+v", r1)
	}
	if got := te.pending(); len(got) != 1 || got[0].MutationID != ms[1].MutationID {
		t.Fatalf("outbox after rejections: %v", got)
	}
	verifyVisible(t, te.Engine)
}

func TestConflictEvents(t *testing.T) {
	ctx := context.Background()
	hydrate := func(te *testEngine) {
		te.pull(remoteRec("todos", "a", protocol.Fields{
			"_deleted": fieldState(false, stamp(10, "other"), protocol.OriginUser),
			"title":    fieldState("base", stamp(10, "other"), protocol.OriginUser),
		}))
	}
	newer := func(te *testEngine, v string) protocol.RecordState {
		h := te.pending()[0].HLC
		return remoteRec("todos", "a", protocol.Fields{"title": fieldState(v, protocol.HLC{Wall: h.Wall + 1000, Node: "other"}, protocol.OriginUser)})
	}

	t.Run("a losing user edit raises one conflict", func(t *testing.T) {
		te := openTest(t, testSchema())
		hydrate(te)
		te.patch("todos", "a", Record{"title": "mine"})
		m := te.pending()[0]
		winner := newer(te, "theirs")
		te.pull(winner)
		evs := te.takeEvents("conflict")
		if len(evs) != 1 {
			t.Fatalf("conflict events: %v", evs)
		}
		c := evs[0].(*ConflictEvent)
		if c.Collection != "todos" || c.ID != "a" || c.Field != "title" || string(c.Local) != `"mine"` || string(c.Remote) != `"theirs"` {
			t.Fatalf("conflict event: %+v", c)
		}
		if got := te.get("todos", "a"); got["title"] != "theirs" {
			t.Fatalf("the newer remote value does not show: %v", got)
		}
		// The push result shows the same loss: no second event.
		prior := protocol.Fields{"_deleted": fieldState(false, stamp(10, "other"), protocol.OriginUser)}
		prior.Merge(winner.Fields)
		te.ack(serverResult(m, prior, protocol.StatusApplied))
		if evs := te.takeEvents("conflict"); len(evs) != 0 {
			t.Fatalf("the same conflict was reported again: %v", evs)
		}
		verifyVisible(t, te.Engine)
	})

	t.Run("a loss seen first in the push result raises one conflict", func(t *testing.T) {
		te := openTest(t, testSchema())
		hydrate(te)
		te.patch("todos", "a", Record{"title": "mine"})
		m := te.pending()[0]
		winner := newer(te, "theirs")
		prior := protocol.Fields{"_deleted": fieldState(false, stamp(10, "other"), protocol.OriginUser)}
		prior.Merge(winner.Fields)
		te.ack(serverResult(m, prior, protocol.StatusApplied))
		if evs := te.takeEvents("conflict"); len(evs) != 1 {
			t.Fatalf("conflict events: %v", evs)
		}
		te.pull(winner)
		if evs := te.takeEvents("conflict"); len(evs) != 0 {
			t.Fatalf("reported twice: %v", evs)
		}
	})

	for _, o := range []protocol.Origin{protocol.OriginSystem, protocol.OriginAgent, protocol.OriginMigration} {
		t.Run("a losing "+string(o)+" edit raises none", func(t *testing.T) {
			te := openTest(t, testSchema())
			hydrate(te)
			if _, err := te.Apply(ctx, Write{Op: protocol.OpPatch, Collection: "todos", ID: "a", Fields: Record{"title": "auto"}, Origin: o}); err != nil {
				t.Fatal(err)
			}
			te.pull(newer(te, "theirs"))
			if evs := te.takeEvents("conflict"); len(evs) != 0 {
				t.Fatalf("conflict for a %s edit: %v", o, evs)
			}
			if got := te.get("todos", "a"); got["title"] != "theirs" {
				t.Fatalf("visible: %v", got)
			}
		})
	}

	t.Run("none during the initial hydration", func(t *testing.T) {
		te := openTest(t, testSchema())
		te.put("todos", Record{"id": "a", "title": "offline draft"})
		ps, err := te.BeginPull(ctx)
		if err != nil {
			t.Fatal(err)
		}
		page := []protocol.RecordState{newer(te, "server copy")}
		page[0].Fields["_deleted"] = fieldState(false, page[0].Fields["title"].HLC, protocol.OriginUser)
		res, err := te.ApplyPullPage(ctx, ps.Epoch, &protocol.PullResponse{Changes: page, Cursor: "1", HasMore: true})
		if err != nil || !res.Applied {
			t.Fatalf("apply: %+v %v", res, err)
		}
		if evs := te.takeEvents("conflict"); len(evs) != 0 {
			t.Fatalf("conflict during hydration: %v", evs)
		}
		if _, err := te.ApplyPullPage(ctx, ps.Epoch, &protocol.PullResponse{Cursor: "2"}); err != nil {
			t.Fatal(err)
		}
		// Hydrated now: the next loss is reported.
		te.patch("todos", "a", Record{"title": "edit"})
		h := te.pending()[len(te.pending())-1].HLC
		te.pull(remoteRec("todos", "a", protocol.Fields{"title": fieldState("later", protocol.HLC{Wall: h.Wall + 1, Node: "other"}, protocol.OriginUser)}))
		if evs := te.takeEvents("conflict"); len(evs) != 1 {
			t.Fatalf("after hydration: %v", evs)
		}
	})

	t.Run("equal values are not a conflict", func(t *testing.T) {
		te := openTest(t, testSchema())
		hydrate(te)
		te.patch("todos", "a", Record{"title": "same"})
		te.pull(newer(te, "same"))
		if evs := te.takeEvents("conflict"); len(evs) != 0 {
			t.Fatalf("conflict for equal values: %v", evs)
		}
	})
}

func TestRemoteRecordsForUndeclaredCollectionsWaitInBase(t *testing.T) {
	te := openTest(t, testSchema())
	res := te.pull(remoteRec("later", "x", protocol.Fields{"_deleted": fieldState(false, stamp(10, "o"), protocol.OriginUser), "v": fieldState(1, stamp(10, "o"), protocol.OriginUser)}))
	if res.Changed != 1 {
		t.Fatalf("page result %+v", res)
	}
	d, _ := te.Export(context.Background())
	if len(d.Records) != 1 || d.Records[0].Collection != "later" {
		t.Fatalf("export: %+v", d.Records)
	}
	s := testSchema()
	s.Collections["later"] = Collection{Fields: map[string]FieldType{"v": TypeInteger}}
	te.reopen(s)
	if got := te.get("later", "x"); got["v"] != int64(1) {
		t.Fatalf("record in a newly declared collection: %v", got)
	}
}

func TestInvalidRemoteRecordsAreSkippedNotFatal(t *testing.T) {
	te := openTest(t, testSchema())
	good := remoteRec("todos", "ok", protocol.Fields{"_deleted": fieldState(false, stamp(10, "o"), protocol.OriginUser)})
	bad := []protocol.RecordState{
		remoteRec("todos", "", good.Fields),
		remoteRec("bad name!", "x", good.Fields),
		remoteRec("todos", "x", protocol.Fields{"title": {Value: json.RawMessage(`"x"`), Origin: protocol.OriginUser}}),
		remoteRec("todos", "x", protocol.Fields{"title": {Value: json.RawMessage(`"x"`), HLC: stamp(1, "o"), Origin: "alien"}}),
		remoteRec("todos", "x", protocol.Fields{"_deleted": fieldState("maybe", stamp(1, "o"), protocol.OriginUser)}),
		remoteRec("todos", "x", protocol.Fields{"title": {Value: json.RawMessage(`{bad`), HLC: stamp(1, "o"), Origin: protocol.OriginUser}}),
	}
	res := te.pull(append(bad, good)...)
	if res.Skipped != len(bad) || res.Changed != 1 {
		t.Fatalf("page result %+v, want %d skipped and 1 changed", res, len(bad))
	}
	if te.get("todos", "ok") == nil {
		t.Fatal("the valid record of the page was not applied")
	}
	verifyVisible(t, te.Engine)
}

func TestImmutableRecordsMetAgainInAPullAreSkipped(t *testing.T) {
	te := openTest(t, testSchema())
	te.put("audit", Record{"id": "e1", "msg": "original"})
	res := te.pull(remoteRec("audit", "e1", protocol.Fields{
		"_deleted": fieldState(false, stamp(1<<42, "o"), protocol.OriginUser),
		"msg":      fieldState("rewritten", stamp(1<<42, "o"), protocol.OriginUser),
	}))
	if res.Skipped != 1 {
		t.Fatalf("page result %+v", res)
	}
	if got := te.get("audit", "e1"); got["msg"] != "original" {
		t.Fatalf("immutable record rewritten by a pull: %v", got)
	}
	// Its tombstone may still arrive: records can be deleted.
	te.pull(remoteRec("audit", "e1", protocol.Fields{"_deleted": fieldState(true, stamp(1<<43, "o"), protocol.OriginUser)}))
	if got := te.get("audit", "e1"); got != nil {
		t.Fatalf("immutable record not deleted by a newer tombstone: %v", got)
	}
}
