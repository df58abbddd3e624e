package syncserver

import (
	"reflect"
	"testing"

	"github.com/opfsync/opfsync/pkg/protocol"
)

func TestUsersAreIsolated(t *testing.T) {
	s := newTestServer(t, nil, nil)
	aPut := putM(t, "todos", "t1", hlc(baseWall, 0, "ca"), "title", "alice's", "secret", "a-only")
	wantStatuses(t, s.push(tokA, "ca", aPut), "applied")
	aliceBefore, _ := s.pullAll(tokA, 0)

	// Bob sees nothing of Alice's.
	if got, _ := s.pullAll(tokB, 0); len(got) != 0 {
		t.Fatalf("bob pulled alice's records: %+v", got)
	}
	// Bob writes the same collection/id, with newer stamps, and reuses
	// Alice's mutation id: a new mutation on his own record.
	bPut := aPut
	bPut.HLC = hlc(baseWall+100, 0, "cb")
	bPut.Fields = values(t, protocol.DeletedField, false, "title", "bob's")
	res := s.push(tokB, "cb", bPut,
		patchM(t, "todos", "t1", hlc(baseWall+101, 0, "cb"), "secret", "overwritten?"),
		deleteM("todos", "t1", hlc(baseWall+102, 0, "cb")),
	)
	wantStatuses(t, res, "applied", "applied", "applied")
	if r := res.Results[0].Record; len(r.Fields) != 2 || value(r, "title") != `"bob's"` {
		t.Errorf("bob's record shows alice's fields: %+v", r.Fields)
	}
	// Alice's data is untouched, and her own retry is still a duplicate
	// of her own mutation.
	if got, _ := s.pullAll(tokA, 0); !reflect.DeepEqual(got, aliceBefore) {
		t.Errorf("alice's records changed: %+v", got)
	}
	retry := s.push(tokA, "ca", aPut)
	wantStatuses(t, retry, "duplicate")
	if !reflect.DeepEqual(*retry.Results[0].Record, aliceBefore["todos/t1"]) {
		t.Errorf("alice's duplicate answered %+v", retry.Results[0].Record)
	}
	// Bob sees only his own state.
	bob, _ := s.pullAll(tokB, 0)
	if r := bob["todos/t1"]; len(bob) != 1 || value(&r, "title") != `"bob's"` || value(&r, "secret") != `"overwritten?"` || value(&r, protocol.DeletedField) != "true" {
		t.Errorf("bob's records %+v", bob)
	}
	if a, b := s.stats(userA), s.stats(userB); a.Applied != 1 || b.Applied != 3 || a.Records != 1 || b.Records != 1 {
		t.Errorf("stats alice %+v bob %+v", a, b)
	}
	// Alice's cursor space does not reveal Bob's records either: her pull
	// from her own cursor after Bob's writes is empty.
	_, aEnd := s.pullAll(tokA, 0)
	if p := s.pull(tokA, aEnd, 0); len(p.Changes) != 0 {
		t.Errorf("alice pulled %+v after bob's writes", p.Changes)
	}
}
