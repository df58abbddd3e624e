//go:build !js

package bridge

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/opfsync/opfsync/pkg/syncengine"
)

// FuzzBridgeMessage: whatever string the page sends, the bridge posts only
// valid JSON, never panics, and keeps serving: a well-formed request sent
// right after it is answered (and when the fuzz input closed the store, the
// store opens again).
func FuzzBridgeMessage(f *testing.F) {
	posts := make(chan string, 1024)
	b := New(func(msg string) { posts <- msg }, Storages{Open: func(ctx context.Context, name, kind string) (Storage, error) {
		return OpenMemory(name), nil
	}}, func(url, token string) syncengine.Transport { return nil })
	seq := 0
	// call sends a request and returns its answer, failing t (or f) when
	// none comes or a post is not JSON.
	call := func(tb testing.TB, op, args string) map[string]json.RawMessage {
		seq++
		id := `"probe-` + strconv.Itoa(seq) + `"`
		b.Receive(`{"id":` + id + `,"op":"` + op + `","args":` + args + `}`)
		deadline := time.After(10 * time.Second)
		for {
			select {
			case msg := <-posts:
				var m map[string]json.RawMessage
				if err := json.Unmarshal([]byte(msg), &m); err != nil {
					tb.Fatalf("the bridge posted invalid JSON %q", msg)
				}
				if string(m["id"]) == id {
					return m
				}
			case <-deadline:
				tb.Fatalf("no answer to %s %s within 10 s", op, args)
			}
		}
	}
	schema, _ := json.Marshal(map[string]any{"name": "fuzz", "storage": "memory", "schema": schema})
	if m := call(f, "open", string(schema)); m["error"] != nil {
		f.Fatalf("open: %s", m["error"])
	}
	for _, seed := range []string{
		`{"id":1,"op":"put","args":{"collection":"todos","record":{"id":"a","title":"x"}}}`,
		`{"id":2,"op":"batch","args":{"requests":[{"op":"put","args":{"collection":"todos","record":{"id":"b"}}},{"op":"nope","args":{}}]}}`,
		`{"id":3,"op":"query","args":{"sql":"SELECT * FROM todos WHERE id = ?","params":["a"]}}`,
		`{"id":4,"op":"applyPullPage","args":{"page":{"changes":[{"collection":"todos","id":"c","fields":{}}]}}}`,
		`{"id":5,"op":"close","args":{}}`,
		`{"id":"x","op":"get"}`, `{"op":"get"}`, `[]`, `"str"`, ``, `{"id":1,"op":"import","args":{"dump":{}}}`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, msg string) {
		b.Receive(msg)
		m := call(t, "get", `{"collection":"todos","id":"a"}`)
		if e := m["error"]; e != nil && strings.Contains(string(e), `"CLOSED"`) {
			if m := call(t, "open", string(schema)); m["error"] != nil {
				t.Fatalf("reopen after %q: %s", msg, m["error"])
			}
		}
	})
}
