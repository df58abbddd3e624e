//go:build !js

package bridge

import (
	"encoding/json"
	"strings"
	"testing"
)

// batch answers each write on its own: refused ones (bad op, bad
// arguments, NOT_FOUND, VALIDATION) leave the others, which commit
// together; a repeated requestId is answered, not applied twice.
func TestBatchAnswersEachWrite(t *testing.T) {
	p := newPage(t)
	if _, e := p.call("open", map[string]any{"name": "batch", "storage": "memory", "schema": schema}); e != nil {
		t.Fatalf("open: %+v", e)
	}
	put := func(id, title, rid string) map[string]any {
		return map[string]any{"op": "put", "args": map[string]any{"collection": "todos", "record": map[string]any{"id": id, "title": title}, "requestId": rid}}
	}
	res, e := p.call("batch", map[string]any{"requests": []any{
		put("a", "A", "r-1"),
		map[string]any{"op": "patch", "args": map[string]any{"collection": "todos", "id": "missing", "fields": map[string]any{"title": "x"}, "requestId": "r-2"}},
		map[string]any{"op": "get", "args": map[string]any{}},
		map[string]any{"op": "put", "args": map[string]any{"collection": "todos", "record": map[string]any{"id": "b", "title": 5}, "requestId": "r-3"}},
		put("c", "C", "r-4"),
		put("a", "again", "r-1"),
	}})
	if e != nil {
		t.Fatalf("batch: %+v", e)
	}
	var out struct {
		Results []struct {
			Result *struct {
				MutationIDs []string `json:"mutationIds"`
				Version     uint64   `json:"version"`
			} `json:"result"`
			Error *errorBody `json:"error"`
		} `json:"results"`
	}
	if err := json.Unmarshal(res, &out); err != nil || len(out.Results) != 6 {
		t.Fatalf("batch answered %s (%v), want 6 results", res, err)
	}
	wantErr := []string{"", "NOT_FOUND", "VALIDATION", "VALIDATION", "", ""}
	for i, r := range out.Results {
		switch {
		case wantErr[i] == "" && (r.Error != nil || r.Result == nil):
			t.Errorf("result %d = %+v, want success", i, r)
		case wantErr[i] != "" && (r.Error == nil || r.Error.Code != wantErr[i]):
			t.Errorf("result %d = %+v, want %s", i, r, wantErr[i])
		}
	}
	if a, c, again := out.Results[0].Result, out.Results[4].Result, out.Results[5].Result; a == nil || c == nil || again == nil ||
		a.Version != c.Version || again.MutationIDs[0] != a.MutationIDs[0] {
		t.Fatalf("results %+v: want one commit for a and c, and r-1's answer repeated", out.Results)
	}
	got, _ := p.call("get", map[string]any{"collection": "todos", "id": "a"})
	if !json.Valid(got) || !strings.Contains(string(got), `"title":"A"`) {
		t.Fatalf("a = %s, want the first write only", got)
	}
	if got, _ := p.call("get", map[string]any{"collection": "todos", "id": "b"}); string(got) != "null" {
		t.Fatalf("b = %s, want nothing (refused)", got)
	}
	if _, e := p.call("batch", map[string]any{"requests": []any{}}); e == nil || e.Code != "VALIDATION" {
		t.Fatalf("empty batch: %+v, want VALIDATION", e)
	}
}
