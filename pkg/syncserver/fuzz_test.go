package syncserver

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/opfsync/opfsync/pkg/protocol"
)

// FuzzDecodePush: any push body is either refused with a message for the
// client, or decodes to a request whose client id is valid and whose batch
// fits, that encodes and decodes again to the same request; validating its
// mutations never panics.
func FuzzDecodePush(f *testing.F) {
	f.Add([]byte(`{"clientId":"c1","mutations":[]}`))
	f.Add([]byte(`{"clientId":"c1","mutations":[{"mutationId":"m1","collection":"todos","id":"a","op":"put","hlc":"0001700000000-000001-c1","origin":"user","fields":{"_deleted":false,"title":"x"}}]}`))
	f.Add([]byte(`{"clientId":"c1","mutations":[{"mutationId":"m1","collection":"todos","id":"a","op":"patch","hlc":"bad","origin":"user","fields":{"t":{"deep":[[[1]]]}}}]}`))
	f.Add([]byte(`{"clientId":"","mutations":null,"extra":1}`))
	f.Add([]byte(`{"clientId":"c1","mutations":[]} {}`))
	f.Add([]byte("{\"clientId\":\"c\xff\",\"mutations\":[]}"))
	f.Add([]byte(`{"clientId":"c1","client\u0049d":"c2","mutations":[{"ID":"x","fields":{"a":1,"a":2}}]}`))
	f.Add([]byte(`{"clientId":"c1","mutations":[null,{"mutationId":"m\ud800","id":"\ud83d\ude00","fields":{"v":"\udc00"}}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		req, problem := decodePush(body)
		if problem != "" {
			if req != nil {
				t.Fatalf("decodePush refused %q (%s) but returned a request", body, problem)
			}
			return
		}
		if req == nil || protocol.ValidateNode(req.ClientID) != nil || len(req.Mutations) > protocol.MaxBatchMutations || req.Mutations == nil {
			t.Fatalf("decodePush accepted %q as %+v", body, req)
		}
		for i := range req.Mutations {
			_ = protocol.ValidateMutation(&req.Mutations[i])
		}
		again, err := protocol.Marshal(req) // the canonical form clients send (encoding/json would HTML-escape raw field values)
		if err != nil {
			t.Fatalf("re-encode %+v: %v", req, err)
		}
		req2, problem := decodePush(again)
		if problem != "" || !reflect.DeepEqual(normalizePush(req), normalizePush(req2)) {
			t.Fatalf("round trip of %q: %q refused (%s) or differs: %+v vs %+v", body, again, problem, req, req2)
		}
	})
}

// normalizePush compacts raw field values so that two decodings of the
// same JSON compare equal whatever their whitespace.
func normalizePush(r *protocol.PushRequest) *protocol.PushRequest {
	out := *r
	out.Mutations = make([]protocol.Mutation, len(r.Mutations))
	for i, m := range r.Mutations {
		fields := make(map[string]json.RawMessage, len(m.Fields))
		for k, v := range m.Fields {
			c, err := protocol.Marshal(v)
			if err != nil {
				c = v
			}
			fields[k] = c
		}
		if m.Fields == nil {
			fields = nil
		}
		m.Fields = fields
		out.Mutations[i] = m
	}
	return &out
}
