package syncserver

import (
	"fmt"
	"net/http"
	"reflect"
	"strconv"
	"testing"

	"github.com/opfsync/opfsync/pkg/protocol"
)

// seed writes n records (t00..), then updates every third and deletes every
// fifth, and returns the expected final state by "todos/id".
func seed(t *testing.T, s *testServer, token string, n int) map[string]protocol.RecordState {
	t.Helper()
	var muts []protocol.Mutation
	for i := 0; i < n; i++ {
		muts = append(muts, putM(t, "todos", fmt.Sprintf("t%02d", i), hlc(baseWall, uint32(i), "c1"), "title", fmt.Sprint("v1 ", i)))
	}
	s.push(token, "c1", muts...)
	muts = nil
	for i := 0; i < n; i += 3 {
		muts = append(muts, patchM(t, "todos", fmt.Sprintf("t%02d", i), hlc(baseWall+1, uint32(i), "c1"), "title", fmt.Sprint("v2 ", i)))
	}
	for i := 0; i < n; i += 5 {
		muts = append(muts, deleteM("todos", fmt.Sprintf("t%02d", i), hlc(baseWall+2, uint32(i), "c1")))
	}
	s.push(token, "c1", muts...)
	want, _ := s.pullAll(token, protocol.MaxPullLimit)
	if len(want) != n {
		t.Fatalf("seeded %d records, pulled %d", n, len(want))
	}
	return want
}

func TestPullPagination(t *testing.T) {
	s := newTestServer(t, nil, nil)
	want := seed(t, s, tokA, 21)
	for i := 0; i < 21; i++ {
		r := want[fmt.Sprintf("todos/t%02d", i)]
		wantTitle := fmt.Sprintf(`"v1 %d"`, i)
		if i%3 == 0 {
			wantTitle = fmt.Sprintf(`"v2 %d"`, i)
		}
		if got := value(&r, "title"); got != wantTitle {
			t.Errorf("t%02d title %s, want %s", i, got, wantTitle)
		}
		if got, del := value(&r, protocol.DeletedField), i%5 == 0; got != strconv.FormatBool(del) {
			t.Errorf("t%02d _deleted %s (tombstones must be pulled)", i, got)
		}
	}
	for _, limit := range []int{1, 5, 7, 20, 21, 22} {
		got := map[string]protocol.RecordState{}
		cursor, pages := "", 0
		for {
			p := s.pull(tokA, cursor, limit)
			pages++
			if len(p.Changes) > limit {
				t.Fatalf("limit %d: page of %d", limit, len(p.Changes))
			}
			for _, r := range p.Changes {
				key := r.Collection + "/" + r.ID
				if _, dup := got[key]; dup {
					t.Fatalf("limit %d: %s twice", limit, key)
				}
				got[key] = r
			}
			if len(p.Changes) > 0 && p.Cursor == cursor {
				t.Fatalf("limit %d: cursor did not move", limit)
			}
			cursor = p.Cursor
			// HasMore is exact: it is false on the page that ends with
			// the last change, even when that page is full.
			if wantMore := len(got) < len(want); p.HasMore != wantMore {
				t.Fatalf("limit %d page %d: hasMore %v with %d of %d seen", limit, pages, p.HasMore, len(got), len(want))
			}
			if !p.HasMore {
				break
			}
		}
		if wantPages := (len(want) + limit - 1) / limit; pages != wantPages {
			t.Errorf("limit %d: %d pages, want %d", limit, pages, wantPages)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("limit %d: pulled state differs", limit)
		}
		// At the end: nothing new, the same cursor back.
		if p := s.pull(tokA, cursor, limit); len(p.Changes) != 0 || p.Cursor != cursor || p.HasMore {
			t.Errorf("limit %d: pull at the end answered %+v", limit, p)
		}
	}
}

func TestPullReturnsLatestStateOnce(t *testing.T) {
	s := newTestServer(t, nil, nil)
	s.push(tokA, "c1", putM(t, "todos", "a", hlc(baseWall, 0, "c1"), "title", "a1"), putM(t, "todos", "b", hlc(baseWall, 1, "c1"), "title", "b1"))
	first := s.pull(tokA, "", 1)
	if len(first.Changes) != 1 || first.Changes[0].ID != "a" || !first.HasMore {
		t.Fatalf("first page %+v", first)
	}
	// "a" changes again after the client read it, "b" before: the next
	// pages hold b once and a once, each in its newest state.
	s.push(tokA, "c1", patchM(t, "todos", "b", hlc(baseWall+1, 0, "c1"), "title", "b2"), patchM(t, "todos", "a", hlc(baseWall+1, 1, "c1"), "title", "a2"))
	s.push(tokA, "c1", patchM(t, "todos", "b", hlc(baseWall+2, 0, "c1"), "title", "b3"))
	rest := s.pull(tokA, first.Cursor, 10)
	var got []string
	for _, r := range rest.Changes {
		got = append(got, r.ID+"="+value(&r, "title"))
	}
	if want := []string{`a="a2"`, `b="b3"`}; !reflect.DeepEqual(got, want) || rest.HasMore {
		t.Errorf("rest %v (hasMore %v), want %v in change order", got, rest.HasMore, want)
	}
}

func TestPullDefaultLimit(t *testing.T) {
	s := newTestServer(t, nil, nil)
	n := protocol.DefaultPullLimit + 1
	for start := 0; start < n; start += protocol.MaxBatchMutations {
		var muts []protocol.Mutation
		for i := start; i < n && i < start+protocol.MaxBatchMutations; i++ {
			muts = append(muts, putM(t, "todos", fmt.Sprint(i), hlc(baseWall, uint32(i), "c1")))
		}
		s.push(tokA, "c1", muts...)
	}
	resp := s.do(request{method: http.MethodGet, path: protocol.PathPull, token: tokA})
	var p protocol.PullResponse
	decodeStrict(t, resp.body, &p)
	if len(p.Changes) != protocol.DefaultPullLimit || !p.HasMore {
		t.Fatalf("default page: %d changes, hasMore %v", len(p.Changes), p.HasMore)
	}
	if last := s.pull(tokA, p.Cursor, 0); len(last.Changes) != 1 || last.HasMore {
		t.Fatalf("second page: %d changes, hasMore %v", len(last.Changes), last.HasMore)
	}
}

func TestPullCursorsSurviveRestart(t *testing.T) {
	s := newTestServer(t, nil, nil)
	want := seed(t, s, tokA, 12)
	page := s.pull(tokA, "", 5)
	got := map[string]protocol.RecordState{}
	for _, r := range page.Changes {
		got[r.Collection+"/"+r.ID] = r
	}
	s.restart()
	for cursor, more := page.Cursor, true; more; {
		p := s.pull(tokA, cursor, 5)
		for _, r := range p.Changes {
			got[r.Collection+"/"+r.ID] = r
		}
		cursor, more = p.Cursor, p.HasMore
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("pull across a restart lost or changed records")
	}
	// New changes after the restart come after the old cursors.
	_, end := s.pullAll(tokA, 0)
	s.push(tokA, "c1", patchM(t, "todos", "t01", hlc(baseWall+10, 0, "c1"), "title", "after restart"))
	if p := s.pull(tokA, end, 0); len(p.Changes) != 1 || p.Changes[0].ID != "t01" {
		t.Fatalf("change after restart: %+v", p)
	}
	if st := s.stats(userA); st.Records != 12 {
		t.Errorf("stats after restart %+v", st)
	}
}

func TestPullCursorZeroIsTheBeginning(t *testing.T) {
	s := newTestServer(t, nil, nil)
	s.push(tokA, "c1", putM(t, "todos", "a", hlc(baseWall, 0, "c1")))
	if p := s.pull(tokA, "0", 0); len(p.Changes) != 1 {
		t.Fatalf("cursor 0: %+v", p)
	}
	if p := s.pull(tokB, "", 0); len(p.Changes) != 0 || p.Cursor != "" || p.HasMore {
		t.Fatalf("empty user: %+v", p)
	}
}
