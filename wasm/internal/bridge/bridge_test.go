//go:build !js

// The bridge runs natively here with file and memory storage and a real
// server over loopback; in the browser it is exercised by tests/browser.

package bridge

import (
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opfsync/opfsync/pkg/syncengine"
	"github.com/opfsync/opfsync/pkg/syncengine/httpsync"
	"github.com/opfsync/opfsync/pkg/syncserver"
)

// page plays the JS client: it sends request strings and collects what the
// bridge posts back.
type page struct {
	t      *testing.T
	b      *Bridge
	mu     sync.Mutex
	nextID int
	posts  []map[string]json.RawMessage
	signal chan struct{}
	// posters: the goroutine that posted each answer.
	posters []int
}

// goroutineID returns the calling goroutine's id (from its stack header).
func goroutineID() int {
	buf := make([]byte, 64)
	buf = buf[:runtime.Stack(buf, false)]
	f := strings.Fields(strings.TrimPrefix(string(buf), "goroutine "))
	id, _ := strconv.Atoi(f[0])
	return id
}

// TestBlockingStorageRunsNothingInline: ops that need no JS promise run
// inside the JS callback (Receive) on OPFS and memory storage, but on
// Blocking storage (IndexedDB, whose I/O waits for the event loop) every
// op runs on the serving goroutine, in order.
func TestBlockingStorageRunsNothingInline(t *testing.T) {
	for _, tc := range []struct {
		storage string
		inline  bool
	}{{"opfs", true}, {"indexeddb", false}} {
		t.Run(tc.storage, func(t *testing.T) {
			p := newPage(t)
			schema := map[string]any{"version": 1, "collections": map[string]any{"notes": map[string]any{"fields": map[string]any{"body": "text"}}}}
			if _, e := p.call("open", map[string]any{"name": "blocking", "schema": schema, "storage": tc.storage}); e != nil {
				t.Fatal(e.Message)
			}
			p.mu.Lock()
			from := len(p.posters)
			p.mu.Unlock()
			me := goroutineID()
			// idle waits until the previous message is done (its answer is
			// posted just before), so that only the storage decides.
			idle := func() {
				for {
					p.b.mu.Lock()
					free := !p.b.busy && len(p.b.queue) == 0
					p.b.mu.Unlock()
					if free {
						return
					}
					time.Sleep(time.Millisecond)
				}
			}
			for i := range 5 {
				idle()
				if _, e := p.call("put", map[string]any{"collection": "notes", "record": map[string]any{"id": "n" + strconv.Itoa(i), "body": "b"}}); e != nil {
					t.Fatal(e.Message)
				}
			}
			idle()
			res, e := p.call("get", map[string]any{"collection": "notes", "id": "n4"})
			if e != nil || !strings.Contains(string(res), `"b"`) {
				t.Fatalf("get after the puts: %s, %v", res, e)
			}
			p.mu.Lock()
			defer p.mu.Unlock()
			for _, g := range p.posters[from:] {
				if (g == me) != tc.inline {
					t.Fatalf("answer posted from goroutine %d, the caller is %d: want inline %v", g, me, tc.inline)
				}
			}
		})
	}
}

func newPage(t *testing.T) *page {
	p := &page{t: t, signal: make(chan struct{}, 1)}
	dir := t.TempDir()
	p.b = New(p.receive, Storages{
		Open: func(ctx context.Context, name, kind string) (Storage, error) {
			if kind == "memory" {
				return OpenMemory(name), nil
			}
			// Natively, "opfs" stands for a file in the test's temp dir, and
			// "indexeddb" for one whose I/O must not run in a JS callback.
			return Storage{Path: filepath.Join(dir, name+".db"), Kind: "file", Blocking: kind == "indexeddb", Close: func() error { return nil }}, nil
		},
		Delete: func(ctx context.Context, name string) error {
			for _, suffix := range []string{"", "-journal", "-wal"} {
				if err := os.Remove(filepath.Join(dir, name+".db"+suffix)); err != nil && !errors.Is(err, os.ErrNotExist) {
					return err
				}
			}
			return nil
		},
	}, func(url, token string) syncengine.Transport { return &httpsync.Transport{URL: url, Token: token} })
	t.Cleanup(func() { p.call("close", nil) })
	return p
}

func (p *page) receive(msg string) {
	if strings.HasPrefix(msg, `{"id":`) {
		p.mu.Lock()
		p.posters = append(p.posters, goroutineID())
		p.mu.Unlock()
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(msg), &m); err != nil {
		p.t.Errorf("the bridge posted invalid JSON %q: %v", msg, err)
		return
	}
	p.mu.Lock()
	p.posts = append(p.posts, m)
	p.mu.Unlock()
	select {
	case p.signal <- struct{}{}:
	default:
	}
}

// send posts a raw message and returns the id it used (or "").
func (p *page) sendRaw(msg string) { p.b.Receive(msg) }

// call sends op with args and waits for its answer: result or error.
func (p *page) call(op string, args any) (json.RawMessage, *errorBody) {
	p.t.Helper()
	p.mu.Lock()
	p.nextID++
	id := p.nextID
	p.mu.Unlock()
	msg, _ := json.Marshal(map[string]any{"id": id, "op": op, "args": args})
	p.b.Receive(string(msg))
	return p.await(json.RawMessage(mustJSON(id)))
}

func mustJSON(v any) string {
	raw, _ := json.Marshal(v)
	return string(raw)
}

func (p *page) await(id json.RawMessage) (json.RawMessage, *errorBody) {
	p.t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		p.mu.Lock()
		for _, m := range p.posts {
			if string(m["id"]) == string(id) {
				p.mu.Unlock()
				if e, ok := m["error"]; ok {
					var eb errorBody
					json.Unmarshal(e, &eb)
					return nil, &eb
				}
				return m["result"], nil
			}
		}
		p.mu.Unlock()
		select {
		case <-p.signal:
		case <-time.After(20 * time.Millisecond):
		case <-deadline:
			p.t.Fatalf("no answer to request %s", id)
		}
	}
}

func (p *page) ok(op string, args any) json.RawMessage {
	p.t.Helper()
	res, err := p.call(op, args)
	if err != nil {
		p.t.Fatalf("%s: %s %s", op, err.Code, err.Message)
	}
	return res
}

func (p *page) fails(code, op string, args any) string {
	p.t.Helper()
	_, err := p.call(op, args)
	if err == nil || err.Code != code {
		p.t.Fatalf("%s %v: want %s, got %+v", op, args, code, err)
	}
	return err.Message
}

// events returns the posted events of kind.
func (p *page) events(kind string) []json.RawMessage {
	time.Sleep(30 * time.Millisecond)
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []json.RawMessage
	for _, m := range p.posts {
		if string(m["event"]) == `"`+kind+`"` {
			out = append(out, m["data"])
		}
	}
	return out
}

var schema = map[string]any{"version": 1, "collections": map[string]any{
	"todos": map[string]any{"fields": map[string]any{"title": "text", "done": "boolean", "rank": "integer", "meta": "json"}, "indexes": [][]string{{"done", "rank"}}},
}}

func TestBridgeServesTheAPI(t *testing.T) {
	p := newPage(t)
	p.fails("CLOSED", "get", map[string]any{"collection": "todos", "id": "a"})
	res := p.ok("open", map[string]any{"name": "app", "schema": schema, "storage": "memory"})
	var opened openResult
	json.Unmarshal(res, &opened)
	if opened.ClientID == "" || opened.Storage != "memory" {
		t.Fatalf("open answered %s", res)
	}
	p.fails("VALIDATION", "open", map[string]any{"name": "app", "schema": schema, "storage": "memory"})
	p.ok("put", map[string]any{"collection": "todos", "record": map[string]any{"id": "t1", "title": "Buy milk", "done": false, "rank": 3, "meta": map[string]any{"tags": []string{"a"}}}})
	p.ok("patch", map[string]any{"collection": "todos", "id": "t1", "fields": map[string]any{"done": true}})
	got := p.ok("get", map[string]any{"collection": "todos", "id": "t1"})
	var rec map[string]any
	json.Unmarshal(got, &rec)
	if rec["done"] != true || rec["rank"] != 3.0 || rec["title"] != "Buy milk" || rec["meta"].(map[string]any)["tags"].([]any)[0] != "a" {
		t.Fatalf("get answered %s", got)
	}
	if got := p.ok("get", map[string]any{"collection": "todos", "id": "missing"}); string(got) != "null" {
		t.Fatalf("get of a missing id answered %s", got)
	}
	q := p.ok("query", map[string]any{"sql": "SELECT id, done, meta, rank FROM todos WHERE done = ? AND rank > ?", "params": []any{true, 2}})
	if want := `{"rows":[{"id":"t1","done":true,"meta":{"tags":["a"]},"rank":3}],"tables":["todos"],"version":`; !strings.HasPrefix(string(q), want) {
		t.Fatalf("query answered %s", q)
	}
	p.ok("delete", map[string]any{"collection": "todos", "id": "t1"})
	if got := p.ok("get", map[string]any{"collection": "todos", "id": "t1"}); string(got) != "null" {
		t.Fatalf("get after delete answered %s", got)
	}
	changes := p.events("change")
	if len(changes) != 3 || !strings.Contains(string(changes[0]), `"tables":["pending","todos"]`) {
		t.Fatalf("change events %s", changes)
	}
	dump := p.ok("export", nil)
	p.ok("close", nil)
	p.fails("CLOSED", "get", map[string]any{"collection": "todos", "id": "a"})
	// A fresh memory store imports the dump.
	p.ok("open", map[string]any{"name": "app", "schema": schema, "storage": "memory"})
	imp := p.ok("import", map[string]any{"dump": json.RawMessage(dump)})
	if string(imp) != `{"inserted":1,"updated":0,"skipped":0}` {
		t.Fatalf("import answered %s", imp)
	}
	if r := p.ok("integrityCheck", nil); string(r) != `{"result":"ok"}` {
		t.Fatalf("integrity check %s", r)
	}
}

// deleteDatabase removes a closed database's files, so the next open is
// empty; with a store open on the bridge, or with a bad name, it refuses.
func TestBridgeDeletesADatabase(t *testing.T) {
	p := newPage(t)
	p.ok("open", map[string]any{"name": "gone", "schema": schema})
	p.ok("put", map[string]any{"collection": "todos", "record": map[string]any{"id": "t1", "title": "kept until deleted"}})
	if msg := p.fails("VALIDATION", "deleteDatabase", map[string]any{"name": "gone"}); !strings.Contains(msg, "close it first") {
		t.Fatalf("deleteDatabase with a store open: %s", msg)
	}
	p.ok("close", nil)
	p.ok("open", map[string]any{"name": "gone", "schema": schema})
	if got := p.ok("get", map[string]any{"collection": "todos", "id": "t1"}); string(got) == "null" {
		t.Fatal("the record did not survive a close and reopen (the test's storage is not persistent)")
	}
	p.ok("close", nil)
	p.ok("deleteDatabase", map[string]any{"name": "gone"})
	p.ok("deleteDatabase", map[string]any{"name": "never-existed"})
	p.fails("VALIDATION", "deleteDatabase", map[string]any{"name": "../x"})
	p.fails("VALIDATION", "deleteDatabase", map[string]any{"name": "gone", "extra": 1})
	p.ok("open", map[string]any{"name": "gone", "schema": schema})
	if got := p.ok("get", map[string]any{"collection": "todos", "id": "t1"}); string(got) != "null" {
		t.Fatalf("after deleteDatabase the record is still there: %s", got)
	}
}

func TestBridgeRefusesBadMessages(t *testing.T) {
	p := newPage(t)
	p.sendRaw("not json")
	p.sendRaw(`{"op":"get"}`)
	if evs := p.events("error"); len(evs) != 2 || !strings.Contains(string(evs[0]), "VALIDATION") {
		t.Fatalf("error events %s", evs)
	}
	p.fails("VALIDATION", "nope", nil)
	p.fails("VALIDATION", "open", map[string]any{"name": "../etc", "schema": schema})
	p.fails("VALIDATION", "open", map[string]any{"name": "app", "schema": schema, "storage": "disk"})
	p.fails("VALIDATION", "open", map[string]any{"name": "app"})
	p.fails("VALIDATION", "open", map[string]any{"name": "app", "schema": schema, "storag": "memory"})
	p.fails("SCHEMA", "open", map[string]any{"name": "app", "schema": map[string]any{"version": 0, "collections": map[string]any{}}, "storage": "memory"})
	p.ok("open", map[string]any{"name": "app", "schema": schema, "storage": "memory"})
	p.fails("VALIDATION", "put", map[string]any{"collection": "todos", "record": "x"})
	p.fails("VALIDATION", "put", map[string]any{"collection": "todos", "record": map[string]any{"title": "no id"}})
	p.fails("VALIDATION", "put", map[string]any{"collection": "todos", "record": map[string]any{"id": "a", "rank": 1.5}})
	p.fails("VALIDATION", "put", map[string]any{"collection": "nope", "record": map[string]any{"id": "a"}})
	p.fails("NOT_FOUND", "patch", map[string]any{"collection": "todos", "id": "zz", "fields": map[string]any{"rank": 1}})
	p.fails("VALIDATION", "query", map[string]any{"sql": "DELETE FROM todos"})
	p.fails("VALIDATION", "query", map[string]any{"sql": "SELECT ?", "params": []any{map[string]any{"a": 1}}})
	p.fails("VALIDATION", "sync", nil)
	p.fails("VALIDATION", "setOnline", nil)
	p.fails("VALIDATION", "import", map[string]any{"dump": map[string]any{"format": "x"}})
	p.fails("VALIDATION", "inspect", map[string]any{"limit": -1})
	p.fails("VALIDATION", "inspect", map[string]any{"limit": maxInspectLimit + 1})
	p.fails("VALIDATION", "inspect", map[string]any{"limit": "3"})
}

// A message whose id the page could not match an answer to (an object,
// true, null), and a message that is not a string (main passes ""), are
// answered with an error event naming the problem, never with a reply
// carrying the bad id; an id with a bad op still gets its reply.
func TestBridgeBadIDsAreErrorEvents(t *testing.T) {
	p := newPage(t)
	for _, msg := range []string{`{"id":{},"op":"get"}`, `{"id":true,"op":"get"}`, `{"id":null,"op":"get"}`, `{"id":[1],"op":"get"}`, ``, `[1,2]`} {
		p.sendRaw(msg)
	}
	evs := p.events("error")
	if len(evs) != 6 {
		t.Fatalf("want 6 error events, got %s", evs)
	}
	for i, want := range []string{"id must be a number or a string", "id must be a number or a string", "id must be a number or a string", "id must be a number or a string", "not a string", "not a request message"} {
		if !strings.Contains(string(evs[i]), want) || !strings.Contains(string(evs[i]), `"VALIDATION"`) {
			t.Fatalf("error event %d: want %q, got %s", i, want, evs[i])
		}
	}
	p.mu.Lock()
	for _, m := range p.posts {
		if _, ok := m["id"]; ok {
			t.Errorf("a reply to a message without a usable id: %v", m)
		}
	}
	p.mu.Unlock()
	p.sendRaw(`{"id":"x1","op":7}`)
	if _, err := p.await(json.RawMessage(`"x1"`)); err == nil || err.Code != "VALIDATION" || !strings.Contains(err.Message, "op must be a string") {
		t.Fatalf("a numeric op: %+v", err)
	}
}

func TestBridgeRequestIDsMakeWritesExactlyOnce(t *testing.T) {
	p := newPage(t)
	p.ok("open", map[string]any{"name": "app", "schema": schema, "storage": "memory"})
	put := map[string]any{"collection": "todos", "record": map[string]any{"id": "a", "rank": 1}, "requestId": "r1"}
	first := p.ok("put", put)
	again := p.ok("put", put)
	if string(first) != string(again) {
		t.Fatalf("retried request answered %s, first %s", again, first)
	}
	q := p.ok("query", map[string]any{"sql": "SELECT count(*) AS n FROM pending"})
	if !strings.Contains(string(q), `"rows":[{"n":1}]`) {
		t.Fatalf("outbox after a retried put: %s", q)
	}
}

func TestBridgeMigrate(t *testing.T) {
	p := newPage(t)
	p.ok("open", map[string]any{"name": "app", "schema": schema, "storage": "memory"})
	args := map[string]any{"key": "todos-v0", "collection": "todos", "items": []any{
		map[string]any{"id": "a", "title": "legacy"}, map[string]any{"id": "b", "rank": "x"},
	}}
	res := p.ok("migrate", args)
	if !strings.Contains(string(res), `"imported":1,"skipped":1`) || !strings.Contains(string(res), `"alreadyDone":false`) {
		t.Fatalf("migrate answered %s", res)
	}
	res = p.ok("migrate", args)
	if !strings.Contains(string(res), `"alreadyDone":true`) {
		t.Fatalf("second migrate answered %s", res)
	}
}

func TestBridgeSyncsWithTheServer(t *testing.T) {
	store, err := syncserver.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "server.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	h, err := syncserver.New(syncserver.Options{Store: store, Auth: syncserver.Tokens{"tok": "u"}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(func() { h.CloseStreams(); srv.Close() })

	a, b := newPage(t), newPage(t)
	for _, p := range []*page{a, b} {
		p.ok("open", map[string]any{"name": "app", "schema": schema, "storage": "opfs", "sync": map[string]any{"url": srv.URL, "token": "tok"}})
	}
	a.ok("put", map[string]any{"collection": "todos", "record": map[string]any{"id": "x", "title": "from a"}})
	a.ok("sync", nil)
	b.ok("sync", nil)
	if got := b.ok("get", map[string]any{"collection": "todos", "id": "x"}); !strings.Contains(string(got), `"title":"from a"`) {
		t.Fatalf("b got %s", got)
	}
	st := a.ok("status", nil)
	var status syncengine.Status
	json.Unmarshal(st, &status)
	if !status.Online || status.Pending != 0 || status.LastSyncAt == 0 {
		t.Fatalf("status %s", st)
	}
	if len(a.events("status")) == 0 {
		t.Fatal("no status events")
	}
	// A dead server: sync fails with NETWORK and the write stays queued.
	srv.CloseClientConnections()
	srv.Close()
	a.ok("put", map[string]any{"collection": "todos", "record": map[string]any{"id": "y"}})
	msg := a.fails("NETWORK", "sync", nil)
	if !strings.Contains(msg, "queued") {
		t.Fatalf("NETWORK message %q does not say the changes are kept", msg)
	}
}
