package syncserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/opfsync/opfsync/pkg/protocol"
)

func TestPushEmptyBatch(t *testing.T) {
	s := newTestServer(t, nil, nil)
	resp := s.pushRaw(tokA, `{"clientId":"c1","mutations":[]}`)
	if resp.status != 200 || string(resp.body) != `{"results":[]}` {
		t.Fatalf("%d %s", resp.status, resp.body)
	}
	if resp := s.pushRaw(tokA, `{"clientId":"c1"}`); resp.status != 200 || string(resp.body) != `{"results":[]}` {
		t.Fatalf("no mutations key: %d %s", resp.status, resp.body)
	}
}

func TestPushAppliesInOrderInOneBatch(t *testing.T) {
	s := newTestServer(t, nil, nil)
	res := s.push(tokA, "c1",
		putM(t, "todos", "t1", hlc(baseWall, 0, "c1"), "title", "a", "n", 1),
		patchM(t, "todos", "t1", hlc(baseWall+1, 0, "c1"), "title", "b"),
		patchM(t, "todos", "t1", hlc(baseWall+2, 0, "c1"), "n", 2),
		deleteM("todos", "t1", hlc(baseWall+3, 0, "c1")),
		putM(t, "todos", "t1", hlc(baseWall+4, 0, "c1"), "title", "c"),
	)
	wantStatuses(t, res, "applied", "applied", "applied", "applied", "applied")
	steps := []struct{ title, n, deleted string }{
		{`"a"`, `1`, `false`}, {`"b"`, `1`, `false`}, {`"b"`, `2`, `false`}, {`"b"`, `2`, `true`}, {`"c"`, `2`, `false`},
	}
	for i, want := range steps {
		r := res.Results[i].Record
		if got := [3]string{value(r, "title"), value(r, "n"), value(r, protocol.DeletedField)}; got != [3]string{want.title, want.n, want.deleted} {
			t.Errorf("after mutation %d: title, n, _deleted = %v, want %v", i+1, got, want)
		}
	}
	// n was not part of the last put (a put names only the fields it
	// writes), so it keeps its stamp; the record carries every field.
	last := res.Results[4].Record
	if last.Fields["n"].HLC != hlc(baseWall+2, 0, "c1") || last.Fields["title"].HLC != hlc(baseWall+4, 0, "c1") {
		t.Errorf("stamps: %+v", last.Fields)
	}
	all, _ := s.pullAll(tokA, 0)
	if got := all["todos/t1"]; !reflect.DeepEqual(got, *last) {
		t.Errorf("pulled %+v, want %+v", got, *last)
	}
}

func TestPushFieldLevelLWW(t *testing.T) {
	s := newTestServer(t, nil, nil)
	wantStatuses(t, s.push(tokA, "c1", putM(t, "todos", "t1", hlc(baseWall+10, 0, "c1"), "title", "from c1", "done", false)), "applied")
	// c2 writes later on "done" but earlier on "title": it wins one field.
	res := s.push(tokA, "c2",
		patchM(t, "todos", "t1", hlc(baseWall+5, 0, "c2"), "title", "old title"),
		patchM(t, "todos", "t1", hlc(baseWall+20, 0, "c2"), "done", true),
		// Same stamp as the current title: the current value stays.
		patchM(t, "todos", "t1", hlc(baseWall+10, 0, "c1"), "title", "same stamp"),
		// Same wall, higher counter wins.
		patchM(t, "todos", "t1", hlc(baseWall+20, 1, "c2"), "note", "n1"),
		patchM(t, "todos", "t1", hlc(baseWall+20, 0, "c3"), "note", "n0"),
	)
	wantStatuses(t, res, "applied", "applied", "applied", "applied", "applied")
	r := res.Results[4].Record
	if value(r, "title") != `"from c1"` || value(r, "done") != `true` || value(r, "note") != `"n1"` {
		t.Errorf("merged record %+v", r.Fields)
	}
	if r.Fields["done"].HLC.Node != "c2" || r.Fields["title"].HLC.Node != "c1" {
		t.Errorf("stamps %+v", r.Fields)
	}
	// A losing mutation changes nothing, so no new change position.
	_, cursor := s.pullAll(tokA, 0)
	wantStatuses(t, s.push(tokA, "c2", patchM(t, "todos", "t1", hlc(baseWall, 0, "c2"), "title", "loses")), "applied")
	if p := s.pull(tokA, cursor, 0); len(p.Changes) != 0 {
		t.Errorf("a losing mutation produced a change: %+v", p.Changes)
	}
}

func TestPushRetryIsIdempotent(t *testing.T) {
	s := newTestServer(t, nil, nil)
	batch := []protocol.Mutation{
		putM(t, "todos", "t1", hlc(baseWall, 0, "c1"), "title", "a"),
		putM(t, "todos", "t2", hlc(baseWall, 1, "c1"), "title", "b"),
		patchM(t, "todos", "t1", hlc(baseWall, 2, "c1"), "title", "a2"),
		deleteM("todos", "t2", hlc(baseWall, 3, "c1")),
	}
	first := s.push(tokA, "c1", batch...)
	wantStatuses(t, first, "applied", "applied", "applied", "applied")
	before, beforeCursor := s.pullAll(tokA, 0)
	statsBefore := s.stats(userA)

	again := s.push(tokA, "c1", batch...)
	wantStatuses(t, again, "duplicate", "duplicate", "duplicate", "duplicate")
	for i, r := range again.Results {
		if r.MutationID != batch[i].MutationID {
			t.Errorf("result %d is for %q", i, r.MutationID)
		}
		// Duplicates answer the record's current state.
		want := before[batch[i].Collection+"/"+batch[i].ID]
		if !reflect.DeepEqual(*r.Record, want) {
			t.Errorf("duplicate %d answered %+v, want the current %+v", i, r.Record, want)
		}
	}
	after, afterCursor := s.pullAll(tokA, 0)
	if !reflect.DeepEqual(before, after) || beforeCursor != afterCursor {
		t.Errorf("a retried batch changed the data:\nbefore %v %+v\nafter  %v %+v", beforeCursor, before, afterCursor, after)
	}
	if st := s.stats(userA); st != statsBefore || st.Applied != 4 || st.Records != 2 {
		t.Errorf("stats %+v, before %+v", st, statsBefore)
	}
	// Retried from another client, or mixed with new mutations, the old
	// ones are still duplicates; within one batch a repeated id is too.
	fresh := patchM(t, "todos", "t1", hlc(baseWall+1, 0, "c2"), "title", "z")
	mixed := s.push(tokA, "c2", fresh, batch[0], fresh)
	wantStatuses(t, mixed, "applied", "duplicate", "duplicate")
	if value(mixed.Results[1].Record, "title") != `"z"` {
		t.Errorf("a duplicate answered a stale state: %+v", mixed.Results[1].Record)
	}
	if st := s.stats(userA); st.Applied != 5 {
		t.Errorf("applied %d, want 5", st.Applied)
	}
}

func TestPushRejectionsAreStored(t *testing.T) {
	s := newTestServer(t, nil, nil)
	bad := putM(t, "1todos", "t1", hlc(baseWall, 0, "c1"), "title", "x")
	badPatch := patchM(t, "todos", "t1", hlc(baseWall, 0, "c1"), protocol.DeletedField, true)
	good := putM(t, "todos", "t1", hlc(baseWall, 1, "c1"), "title", "ok")
	res := s.push(tokA, "c1", bad, badPatch, good)
	wantStatuses(t, res, "rejected", "rejected", "applied")
	for _, r := range res.Results[:2] {
		if r.Error == nil || r.Error.Code != protocol.CodeValidation || r.Error.Message == "" || r.Record != nil {
			t.Errorf("rejection %+v", r)
		}
	}
	if !strings.Contains(res.Results[0].Error.Message, "collection") {
		t.Errorf("message %q does not say what is wrong", res.Results[0].Error.Message)
	}
	// The retry answers the same rejection, even when the mutation under
	// the same id is now valid: the verdict stands.
	fixed := bad
	fixed.Collection = "todos"
	again := s.push(tokA, "c1", bad, fixed, badPatch)
	wantStatuses(t, again, "rejected", "rejected", "rejected")
	for i, r := range again.Results {
		want := res.Results[[]int{0, 0, 1}[i]].Error
		if !reflect.DeepEqual(r.Error, want) {
			t.Errorf("retry %d: %+v, want %+v", i, r.Error, want)
		}
	}
	if st := s.stats(userA); st.Rejected != 2 || st.Applied != 1 {
		t.Errorf("stats %+v", st)
	}
	all, _ := s.pullAll(tokA, 0)
	if len(all) != 1 || value(ptr(all["todos/t1"]), "title") != `"ok"` {
		t.Errorf("records %+v", all)
	}
}

func TestPushInvalidMutationIDIsRejectedWithoutVerdict(t *testing.T) {
	s := newTestServer(t, nil, nil)
	m := putM(t, "todos", "t1", hlc(baseWall, 0, "c1"), "title", "x")
	m.MutationID = "has space"
	res := s.push(tokA, "c1", m)
	wantStatuses(t, res, "rejected")
	if res.Results[0].Error.Code != protocol.CodeValidation || res.Results[0].MutationID != "has space" {
		t.Errorf("%+v", res.Results[0])
	}
	if st := s.stats(userA); st != (Stats{}) {
		t.Errorf("stats %+v", st)
	}
}

func TestPushClampsFutureStamps(t *testing.T) {
	s := newTestServer(t, nil, nil)
	now := time.Now().UnixMilli()
	hourAhead := hlc(now+time.Hour.Milliseconds(), 0, "liar")
	withinSkew := hlc(now+30_000, 0, "fast")
	res := s.push(tokA, "liar",
		putM(t, "todos", "t1", hourAhead, "title", "first"),
		patchM(t, "todos", "t1", hlc(hourAhead.Wall, 1, "liar"), "title", "second"),
		putM(t, "todos", "t2", withinSkew, "title", "kept"),
	)
	wantStatuses(t, res, "applied", "applied", "applied")
	r := res.Results[1].Record
	st := r.Fields["title"].HLC
	if value(r, "title") != `"second"` {
		t.Errorf("the later clamped mutation lost: %+v", r.Fields)
	}
	if st.Node != s.h.node || st.Wall < now-1000 || st.Wall > time.Now().UnixMilli()+1000 {
		t.Errorf("clamped stamp %v, want a server stamp within a second of %d", st, now)
	}
	if first := res.Results[0].Record.Fields["title"].HLC; !st.After(first) || first.Node != s.h.node {
		t.Errorf("clamped stamps out of order: %v then %v", first, st)
	}
	if got := res.Results[2].Record.Fields["title"].HLC; got != withinSkew {
		t.Errorf("a stamp within the skew was changed: %v", got)
	}
	// The server clock observed the accepted stamp: later server stamps
	// sort after it.
	res = s.push(tokA, "liar", patchM(t, "todos", "t2", hourAhead, "title", "clamped again"))
	if got := res.Results[0].Record.Fields["title"]; !got.HLC.After(withinSkew) || string(got.Value) != `"clamped again"` {
		t.Errorf("clamped stamp %v does not sort after the observed %v", got.HLC, withinSkew)
	}
}

func TestPushPolicyHook(t *testing.T) {
	var asked []string
	s := newTestServer(t, func(o *Options) {
		o.Authorize = func(_ context.Context, user string, m *protocol.Mutation) error {
			asked = append(asked, user+":"+m.MutationID)
			if m.Collection == "secrets" {
				return errors.New("you may not write secrets")
			}
			return nil
		}
	}, nil)
	refused := putM(t, "secrets", "s1", hlc(baseWall, 0, "c1"), "v", 1)
	allowed := putM(t, "todos", "t1", hlc(baseWall, 1, "c1"), "title", "x")
	invalid := putM(t, "9", "t1", hlc(baseWall, 1, "c1"))
	res := s.push(tokA, "c1", refused, allowed, invalid)
	wantStatuses(t, res, "rejected", "applied", "rejected")
	if e := res.Results[0].Error; e == nil || e.Code != protocol.CodeForbidden || e.Message != "you may not write secrets" {
		t.Errorf("refusal %+v", e)
	}
	if res.Results[2].Error.Code != protocol.CodeValidation {
		t.Errorf("invalid mutation: %+v", res.Results[2].Error)
	}
	if !reflect.DeepEqual(asked, []string{userA + ":" + refused.MutationID, userA + ":" + allowed.MutationID}) {
		t.Errorf("hook asked about %v (never about invalid mutations)", asked)
	}
	// The refusal is stored: asked again, it stands.
	again := s.push(tokA, "c1", refused)
	wantStatuses(t, again, "rejected")
	if !reflect.DeepEqual(again.Results[0].Error, res.Results[0].Error) {
		t.Errorf("retry %+v", again.Results[0].Error)
	}
	if all, _ := s.pullAll(tokA, 0); len(all) != 1 {
		t.Errorf("records %v", all)
	}
}

// faultyStore fails SaveRecord on the nth call within one Update.
type faultyStore struct {
	Store
	failAt int
}

type faultyTx struct {
	Tx
	saves, failAt int
}

func (f *faultyStore) Update(ctx context.Context, user string, fn func(Tx) error) error {
	return f.Store.Update(ctx, user, func(tx Tx) error { return fn(&faultyTx{Tx: tx, failAt: f.failAt}) })
}

func (t *faultyTx) SaveRecord(c, id string, f protocol.Fields) (int64, error) {
	if t.saves++; t.saves == t.failAt {
		return 0, errors.New("disk on fire")
	}
	return t.Tx.SaveRecord(c, id, f)
}

func TestPushBatchIsOneTransaction(t *testing.T) {
	s := newTestServer(t, nil, nil)
	faulty := &faultyStore{Store: s.store, failAt: 3}
	h, err := New(Options{Store: faulty, Auth: Tokens{tokA: userA}, Logger: s.opts.Logger})
	if err != nil {
		t.Fatal(err)
	}
	s.srv.Config.Handler = h
	batch := []protocol.Mutation{
		putM(t, "todos", "t1", hlc(baseWall, 0, "c1"), "title", "a"),
		putM(t, "todos", "t2", hlc(baseWall, 1, "c1"), "title", "b"),
		putM(t, "todos", "t3", hlc(baseWall, 2, "c1"), "title", "c"),
	}
	resp := s.pushRaw(tokA, mustJSON(t, protocol.PushRequest{ClientID: "c1", Mutations: batch}))
	if resp.status != http.StatusInternalServerError || string(resp.body) != internalErrorBody {
		t.Fatalf("%d %s", resp.status, resp.body)
	}
	if !strings.Contains(s.logs.String(), "disk on fire") {
		t.Error("cause not logged")
	}
	if st := s.stats(""); st != (Stats{}) {
		t.Fatalf("a failed batch left %+v behind", st)
	}
	faulty.failAt = 0
	wantStatuses(t, s.push(tokA, "c1", batch...), "applied", "applied", "applied")
}

func TestPushKeepsJSONValuesVerbatim(t *testing.T) {
	s := newTestServer(t, nil, nil)
	m := putM(t, "notes", "n1", hlc(baseWall, 0, "c1"))
	m.Fields["html"] = json.RawMessage(`"<b>&amp;</b>"`)
	m.Fields["obj"] = json.RawMessage(`{"a":[1,2.5,null,"é"]}`)
	m.Fields["nothing"] = json.RawMessage(`null`)
	res := s.pushRaw(tokA, mustJSON(t, protocol.PushRequest{ClientID: "c1", Mutations: []protocol.Mutation{m}}))
	if !strings.Contains(string(res.body), `"<b>&amp;</b>"`) {
		t.Errorf("HTML-escaped answer: %s", res.body)
	}
	all, _ := s.pullAll(tokA, 0)
	r := all["notes/n1"]
	if value(&r, "obj") != `{"a":[1,2.5,null,"é"]}` || value(&r, "nothing") != `null` || value(&r, "html") != `"<b>&amp;</b>"` {
		t.Errorf("values changed: %+v", r.Fields)
	}
}

func ptr[T any](v T) *T { return &v }

func TestPushRefusesToGrowARecordPastItsLimits(t *testing.T) {
	s := newTestServer(t, nil, nil)
	big := strings.Repeat("x", protocol.MaxRecordBytes/2)
	res := s.push(tokA, "c1",
		putM(t, "docs", "d1", hlc(baseWall, 0, "c1"), "a", big),
		patchM(t, "docs", "d1", hlc(baseWall, 1, "c1"), "b", big), // each mutation is within the limit, the record would not be
		patchM(t, "docs", "d1", hlc(baseWall, 2, "c1"), "a", "small"),
		patchM(t, "docs", "d1", hlc(baseWall, 3, "c1"), "b", big), // now it fits
	)
	wantStatuses(t, res, "applied", "rejected", "applied", "applied")
	if e := res.Results[1].Error; e.Code != protocol.CodeValidation || !strings.Contains(e.Message, "limit") {
		t.Errorf("refusal %+v", e)
	}
	// Fields: a record holds at most MaxFieldsPerRecord fields besides
	// the tombstone, however many mutations wrote them.
	var muts []protocol.Mutation
	for i := 0; i < protocol.MaxFieldsPerRecord; i += 64 {
		var kv []any
		for j := i; j < i+64; j++ {
			kv = append(kv, fmt.Sprintf("f%d", j), j)
		}
		muts = append(muts, patchM(t, "wide", "w1", hlc(baseWall, uint32(i), "c1"), kv...))
	}
	muts = append(muts, deleteM("wide", "w1", hlc(baseWall+1, 0, "c1")), patchM(t, "wide", "w1", hlc(baseWall+2, 0, "c1"), "one_more", 1))
	res = s.push(tokA, "c1", muts...)
	wantStatuses(t, res, "applied", "applied", "applied", "applied", "applied", "rejected")
	all, _ := s.pullAll(tokA, 0)
	for key, r := range all {
		if err := protocol.ValidateRecordState(&r); err != nil {
			t.Errorf("the server holds %s, which clients would skip: %v", key, err)
		}
	}
}
