package protocol

import (
	"bytes"
	"encoding/json"
	"testing"
)

// plainPull is PullResponse decoded by reflection only: the reference.
type plainPull struct {
	Changes []struct {
		Collection string      `json:"collection"`
		ID         string      `json:"id"`
		Fields     plainFields `json:"fields"`
	} `json:"changes"`
	Cursor  string `json:"cursor"`
	HasMore bool   `json:"hasMore"`
}

var pullSamples = []string{
	`{"changes":[],"cursor":"","hasMore":false}`,
	`{"changes":null}`,
	`{}`,
	` {"changes":[{"collection":"todos","id":"a","fields":{"title":{"value":"x y","hlc":"0001700000000-000001-n1","origin":"user"}}},{"collection":"todos","id":"b","fields":null,"extra":1}],"cursor":"c1","hasMore":true,"more":{"x":[]}} `,
	`{"CHANGES":[{"Collection":"t","ID":"i","Fields":{}}],"Cursor":null,"HasMore":null}`,
	`{"changes":[null]}`,
	`{"changes":[{"collection":"t","id":"i","fields":{"f":{"value":1,"hlc":"0001700000000-000001-n1","origin":"user"}}}],"cursor":"1","cursor":"2"}`,
	`{"changes":{}}`,
	`{"changes":[1]}`,
	`{"hasMore":"yes"}`,
	`{"cursor":5}`,
	`{"changes":[{"id":5}]}`,
	`{"changes":[{"collection":"t","id":"i","fields":{"f":{"value":1,"hlc":"bad","origin":"user"}}}]}`,
	`{"changes":[}`,
	`{"changes":[]} []`,
	`null`,
	`[]`,
}

func checkPullSameAsReflection(t *testing.T, input []byte) {
	t.Helper()
	var want plainPull
	wantErr := json.Unmarshal(input, &want)
	var got PullResponse
	gotErr := Unmarshal(input, &got)
	if string(bytes.TrimSpace(input)) == "null" {
		return // json.Unmarshal accepts a top-level null as "no change"; a page never is one
	}
	if (wantErr == nil) != (gotErr == nil) {
		t.Fatalf("%q: encoding/json error %v, DecodePullResponse error %v", input, wantErr, gotErr)
	}
	if wantErr != nil {
		return
	}
	if got.Cursor != want.Cursor || got.HasMore != want.HasMore || len(got.Changes) != len(want.Changes) || (got.Changes == nil) != (want.Changes == nil) {
		t.Fatalf("%q: got %+v, want %+v", input, got, want)
	}
	for i, w := range want.Changes {
		g := got.Changes[i]
		if g.Collection != w.Collection || g.ID != w.ID || len(g.Fields) != len(w.Fields) || (g.Fields == nil) != (w.Fields == nil) {
			t.Fatalf("%q: change %d = %+v, want %+v", input, i, g, w)
		}
		for name, wf := range w.Fields {
			gf := g.Fields[name]
			if !bytes.Equal(gf.Value, wf.Value) || gf.HLC != wf.HLC || gf.Origin != wf.Origin {
				t.Fatalf("%q: change %d field %q = %+v, want %+v", input, i, name, gf, wf)
			}
		}
	}
}

func TestDecodePullResponseMatchesEncodingJSON(t *testing.T) {
	for _, s := range pullSamples {
		checkPullSameAsReflection(t, []byte(s))
	}
}

func TestWalkObject(t *testing.T) {
	var keys []string
	var vals []string
	err := WalkObject([]byte(` {"id": 7, "op":"get","args":{"a":[1, 2]}} `), func(k string, v []byte) error {
		keys = append(keys, k)
		vals = append(vals, string(v))
		return nil
	})
	if err != nil || len(keys) != 3 || keys[2] != "args" || vals[2] != `{"a":[1, 2]}` || vals[0] != "7" {
		t.Fatalf("WalkObject = %v %v, %v", keys, vals, err)
	}
	for _, bad := range []string{``, `[]`, `{"a":1`, `{"a":1} x`, `{"a":}`, `"s"`} {
		if err := WalkObject([]byte(bad), func(string, []byte) error { return nil }); err == nil {
			t.Errorf("WalkObject(%q) succeeded", bad)
		}
	}
}

func FuzzDecodePullResponse(f *testing.F) {
	for _, s := range pullSamples {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, input []byte) {
		checkPullSameAsReflection(t, input)
	})
}
