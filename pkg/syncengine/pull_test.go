package syncengine

import (
	"context"
	"testing"

	"github.com/opfsync/opfsync/pkg/protocol"
)

func TestPullStateMachine(t *testing.T) {
	ctx := context.Background()
	te := openTest(t, testSchema())
	rec := func(id string, wall int64) protocol.RecordState {
		return remoteRec("todos", id, protocol.Fields{
			"_deleted": fieldState(false, stamp(wall, "o"), protocol.OriginUser),
			"title":    fieldState(id, stamp(wall, "o"), protocol.OriginUser),
		})
	}
	ps, err := te.PullState(ctx)
	if err != nil || ps.State != PullIdle || ps.Cursor != "" || ps.Epoch != 0 || ps.Hydrated {
		t.Fatalf("initial pull state %+v %v", ps, err)
	}

	ps, _ = te.BeginPull(ctx)
	if ps.State != PullFetchingFirst {
		t.Fatalf("after BeginPull: %+v", ps)
	}
	res, err := te.ApplyPullPage(ctx, ps.Epoch, &protocol.PullResponse{Changes: []protocol.RecordState{rec("a", 10)}, Cursor: "p1", HasMore: true})
	if err != nil || !res.Applied || res.State.State != PullFetchingNext || res.State.Cursor != "p1" || res.State.Hydrated {
		t.Fatalf("after page 1: %+v %v", res, err)
	}
	// A crash (or closed page) while fetching: the state resets at open,
	// the cursor stays after the last applied page.
	te.reopen(testSchema())
	ps, _ = te.PullState(ctx)
	if ps.State != PullIdle || ps.Cursor != "p1" || ps.Hydrated {
		t.Fatalf("after reopen mid-pull: %+v", ps)
	}
	ps, _ = te.BeginPull(ctx)
	if ps.Cursor != "p1" {
		t.Fatalf("resumed pull starts at %q, want p1", ps.Cursor)
	}
	res, _ = te.ApplyPullPage(ctx, ps.Epoch, &protocol.PullResponse{Changes: []protocol.RecordState{rec("b", 20)}, Cursor: "p2"})
	if res.State.State != PullIdle || !res.State.Hydrated || res.State.Cursor != "p2" {
		t.Fatalf("after the last page: %+v", res)
	}

	// A failed fetch: Error with the text, cleared by the next cycle.
	ps, _ = te.BeginPull(ctx)
	if err := te.FailPull(ctx, ps.Epoch, "server said 503"); err != nil {
		t.Fatal(err)
	}
	ps, _ = te.PullState(ctx)
	if ps.State != PullError || ps.Error != "server said 503" || ps.Cursor != "p2" {
		t.Fatalf("after FailPull: %+v", ps)
	}
	ps, _ = te.BeginPull(ctx)
	if ps.State != PullFetchingFirst || ps.Error != "" {
		t.Fatalf("BeginPull after an error: %+v", ps)
	}

	// A reset bumps the epoch and rewinds the cursor; a page fetched under
	// the old epoch is discarded without touching the data.
	old := ps.Epoch
	ps, _ = te.ResetPull(ctx)
	if ps.Epoch != old+1 || ps.Cursor != "" || ps.State != PullIdle || !ps.Hydrated {
		t.Fatalf("after ResetPull: %+v", ps)
	}
	before := te.snapshot()
	res, err = te.ApplyPullPage(ctx, old, &protocol.PullResponse{Changes: []protocol.RecordState{rec("stale", 30)}, Cursor: "stale"})
	if err != nil || res.Applied {
		t.Fatalf("a stale-epoch page was applied: %+v %v", res, err)
	}
	if te.snapshot() != before {
		t.Fatal("a stale-epoch page changed the store")
	}
	if err := te.FailPull(ctx, old, "stale failure"); err != nil {
		t.Fatal(err)
	}
	if ps, _ := te.PullState(ctx); ps.State == PullError {
		t.Fatalf("a stale-epoch failure was recorded: %+v", ps)
	}
	// The new epoch resyncs from the start; re-pulled records merge
	// idempotently.
	ps, _ = te.BeginPull(ctx)
	res, _ = te.ApplyPullPage(ctx, ps.Epoch, &protocol.PullResponse{Changes: []protocol.RecordState{rec("a", 10), rec("b", 20)}, Cursor: "p2"})
	if !res.Applied || res.Changed != 0 {
		t.Fatalf("resync of known records: %+v", res)
	}
	if n := len(te.query(`SELECT id FROM todos`)); n != 2 {
		t.Fatalf("%d records after resync, want 2", n)
	}
	verifyVisible(t, te.Engine)
}

func TestPullPageIsAtomic(t *testing.T) {
	ctx := context.Background()
	te := openTest(t, testSchema())
	// Break the second record's table behind the engine's back, so the page
	// fails half way: nothing of it may stay, not even the first record.
	if err := te.call(ctx, func() error { return te.conn.Exec(`DROP TABLE notes`) }); err != nil {
		t.Fatal(err)
	}
	ps, _ := te.BeginPull(ctx)
	page := &protocol.PullResponse{Cursor: "after", Changes: []protocol.RecordState{
		remoteRec("todos", "a", protocol.Fields{"_deleted": fieldState(false, stamp(10, "o"), protocol.OriginUser)}),
		remoteRec("notes", "n", protocol.Fields{"_deleted": fieldState(false, stamp(10, "o"), protocol.OriginUser)}),
	}}
	if _, err := te.ApplyPullPage(ctx, ps.Epoch, page); err == nil {
		t.Fatal("the page applied over a missing table")
	}
	if got := te.get("todos", "a"); got != nil {
		t.Fatalf("half a page stayed: %v", got)
	}
	d, _ := te.Export(ctx)
	if len(d.Records) != 0 {
		t.Fatalf("half a page stayed in base: %+v", d.Records)
	}
	if ps, _ := te.PullState(ctx); ps.Cursor != "" || ps.State != PullFetchingFirst {
		t.Fatalf("pull state moved without the page: %+v", ps)
	}
}

func TestApplyRemotePageRunsAWholePullCycle(t *testing.T) {
	te := openTest(t, testSchema())
	res, err := te.ApplyRemotePage(context.Background(), &protocol.PullResponse{Changes: []protocol.RecordState{
		remoteRec("todos", "a", protocol.Fields{"_deleted": fieldState(false, stamp(10, "o"), protocol.OriginUser)}),
	}})
	if err != nil || !res.Applied || res.Changed != 1 || res.State.State != PullIdle || res.State.Cursor != "" {
		t.Fatalf("ApplyRemotePage: %+v %v", res, err)
	}
	if te.get("todos", "a") == nil {
		t.Fatal("record not applied")
	}
}
