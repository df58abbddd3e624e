package syncserver

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opfsync/opfsync/internal/pgtest"
	"github.com/opfsync/opfsync/pkg/protocol"
)

// testStoreKind is the store the server tests run on: "sqlite" (the
// default) or "postgres", from $OPFSYNC_TEST_STORE. make test runs the
// package once with each.
var testStoreKind = cmp.Or(os.Getenv("OPFSYNC_TEST_STORE"), "sqlite")

func TestMain(m *testing.M) {
	if testStoreKind != "sqlite" && testStoreKind != "postgres" {
		fmt.Fprintf(os.Stderr, "OPFSYNC_TEST_STORE=%q: want sqlite or postgres\n", testStoreKind)
		os.Exit(2)
	}
	os.Exit(pgtest.Main(m))
}

// newTestDatabase makes an empty database of testStoreKind for t and
// returns where it is: a file path or a PostgreSQL URL.
func newTestDatabase(t *testing.T) string {
	t.Helper()
	if testStoreKind == "postgres" {
		return pgtest.Database(t)
	}
	return filepath.Join(t.TempDir(), "server.db")
}

// openTestDatabase opens the store of kind at where (from
// newTestDatabase).
func openTestDatabase(kind, where string) (Store, error) {
	if kind == "postgres" {
		return OpenPostgres(context.Background(), where)
	}
	return OpenSQLite(context.Background(), where)
}

// Test tokens: two users.
const (
	tokA  = "token-alice"
	tokB  = "token-bob"
	userA = "alice"
	userB = "bob"
)

// testServer is a Handler on a real store (testStoreKind: a SQLite file
// in a temp dir, or a fresh database on a throwaway PostgreSQL cluster),
// behind a real loopback HTTP server.
type testServer struct {
	t      *testing.T
	kind   string // "sqlite" or "postgres"
	dbPath string // the SQLite file or the PostgreSQL URL
	opts   Options
	store  Store
	h      *Handler
	srv    *httptest.Server
	URL    string
	logs   *syncBuffer
	closed bool
}

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// newTestServer starts a server; tune changes the Options, configure the
// http.Server (before it starts).
func newTestServer(t *testing.T, tune func(*Options), configure func(*http.Server)) *testServer {
	t.Helper()
	return newTestServerOn(t, testStoreKind, newTestDatabase(t), tune, configure)
}

// newTestServerOn starts a server on the store of kind at where (a second
// instance on the same PostgreSQL database, say).
func newTestServerOn(t *testing.T, kind, where string, tune func(*Options), configure func(*http.Server)) *testServer {
	t.Helper()
	s := &testServer{t: t, kind: kind, dbPath: where, logs: &syncBuffer{}}
	s.opts = Options{
		Auth:   Tokens{tokA: userA, tokB: userB},
		Logger: slog.New(slog.NewTextHandler(s.logs, nil)),
	}
	if tune != nil {
		tune(&s.opts)
	}
	s.start(configure)
	t.Cleanup(s.stop)
	return s
}

// start opens the store and starts the HTTP server.
func (s *testServer) start(configure func(*http.Server)) {
	s.t.Helper()
	store, err := openTestDatabase(s.kind, s.dbPath)
	if err != nil {
		s.t.Fatalf("open store: %v", err)
	}
	s.store = store
	opts := s.opts
	opts.Store = store
	if s.h, err = New(opts); err != nil {
		s.t.Fatalf("new handler: %v", err)
	}
	s.srv = httptest.NewUnstartedServer(s.h)
	if configure != nil {
		configure(s.srv.Config)
	}
	s.srv.Start()
	s.URL = s.srv.URL
	s.closed = false
}

// stop ends the streams, the HTTP server and the store.
func (s *testServer) stop() {
	if s.closed {
		return
	}
	s.closed = true
	s.h.CloseStreams()
	s.srv.Close()
	if err := s.store.Close(); err != nil {
		s.t.Errorf("close store: %v", err)
	}
}

// restart stops everything and starts a new server on the same database
// (a new URL).
func (s *testServer) restart() {
	s.t.Helper()
	s.stop()
	s.start(nil)
}

// response is a whole HTTP answer.
type response struct {
	status int
	header http.Header
	body   []byte
}

// request describes one test request.
type request struct {
	method string
	path   string
	token  string            // "" sends no Authorization header
	header map[string]string // extra headers (Content-Type defaults to JSON for bodies)
	body   io.Reader
}

func (s *testServer) do(rq request) response {
	s.t.Helper()
	req, err := http.NewRequest(rq.method, s.URL+rq.path, rq.body)
	if err != nil {
		s.t.Fatal(err)
	}
	if rq.token != "" {
		req.Header.Set("Authorization", "Bearer "+rq.token)
	}
	if rq.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range rq.header {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", rq.method, rq.path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatalf("%s %s: read body: %v", rq.method, rq.path, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: body}
}

// pushRaw sends body to /sync/push as token.
func (s *testServer) pushRaw(token, body string) response {
	s.t.Helper()
	return s.do(request{method: http.MethodPost, path: protocol.PathPush, token: token, body: strings.NewReader(body)})
}

// push sends a batch and decodes the 200 answer.
func (s *testServer) push(token, clientID string, muts ...protocol.Mutation) protocol.PushResponse {
	s.t.Helper()
	if muts == nil {
		muts = []protocol.Mutation{}
	}
	body := mustJSON(s.t, protocol.PushRequest{ClientID: clientID, Mutations: muts})
	resp := s.pushRaw(token, body)
	if resp.status != http.StatusOK {
		s.t.Fatalf("push: %d %s", resp.status, resp.body)
	}
	var out protocol.PushResponse
	decodeStrict(s.t, resp.body, &out)
	if len(out.Results) != len(muts) {
		s.t.Fatalf("push: %d results for %d mutations", len(out.Results), len(muts))
	}
	return out
}

// pull fetches one page and decodes the 200 answer.
func (s *testServer) pull(token, cursor string, limit int) protocol.PullResponse {
	s.t.Helper()
	path := protocol.PathPull + "?cursor=" + cursor
	if limit > 0 {
		path += fmt.Sprintf("&limit=%d", limit)
	}
	resp := s.do(request{method: http.MethodGet, path: path, token: token})
	if resp.status != http.StatusOK {
		s.t.Fatalf("pull %s: %d %s", path, resp.status, resp.body)
	}
	var out protocol.PullResponse
	decodeStrict(s.t, resp.body, &out)
	return out
}

// pullAll pulls every page from the beginning and returns the records by
// "collection/id" (failing on a record seen twice) and the last cursor.
func (s *testServer) pullAll(token string, limit int) (map[string]protocol.RecordState, string) {
	s.t.Helper()
	out := map[string]protocol.RecordState{}
	cursor := ""
	for page := 0; ; page++ {
		p := s.pull(token, cursor, limit)
		for _, r := range p.Changes {
			key := r.Collection + "/" + r.ID
			if _, dup := out[key]; dup {
				s.t.Fatalf("pull: %s returned twice", key)
			}
			out[key] = r
		}
		cursor = p.Cursor
		if !p.HasMore {
			return out, cursor
		}
		if page > 10000 {
			s.t.Fatal("pull: no end")
		}
	}
}

// wantError checks an error answer: status, code, and (when set) a part of
// the message.
func wantError(t *testing.T, resp response, status int, code, msgPart string) {
	t.Helper()
	if resp.status != status {
		t.Fatalf("status %d, want %d; body %s", resp.status, status, resp.body)
	}
	if ct := resp.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	var e protocol.ErrorResponse
	decodeStrict(t, resp.body, &e)
	if e.Error.Code != code {
		t.Errorf("code %q, want %q (message %q)", e.Error.Code, code, e.Error.Message)
	}
	if e.Error.Message == "" {
		t.Error("empty error message")
	}
	if msgPart != "" && !strings.Contains(e.Error.Message, msgPart) {
		t.Errorf("message %q does not mention %q", e.Error.Message, msgPart)
	}
}

func decodeStrict(t *testing.T, body []byte, v any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := protocol.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Mutation builders. Stamps are (wall, counter) on the node given.

var midSeq atomic.Int64

// newMID returns a fresh mutation id.
func newMID() string { return fmt.Sprintf("m-%d", midSeq.Add(1)) }

func hlc(wall int64, counter uint32, node string) protocol.HLC {
	return protocol.HLC{Wall: wall, Counter: counter, Node: node}
}

// baseWall is a fixed past wall time (2023-11-14) for deterministic stamps.
const baseWall int64 = 1_700_000_000_000

func values(t *testing.T, kv ...any) map[string]json.RawMessage {
	t.Helper()
	out := map[string]json.RawMessage{}
	for i := 0; i+1 < len(kv); i += 2 {
		b, err := json.Marshal(kv[i+1])
		if err != nil {
			t.Fatal(err)
		}
		out[kv[i].(string)] = b
	}
	return out
}

func putM(t *testing.T, coll, id string, at protocol.HLC, kv ...any) protocol.Mutation {
	f := values(t, kv...)
	f[protocol.DeletedField] = json.RawMessage("false")
	return protocol.Mutation{MutationID: newMID(), Collection: coll, ID: id, Op: protocol.OpPut, HLC: at, Origin: protocol.OriginUser, Fields: f}
}

func patchM(t *testing.T, coll, id string, at protocol.HLC, kv ...any) protocol.Mutation {
	return protocol.Mutation{MutationID: newMID(), Collection: coll, ID: id, Op: protocol.OpPatch, HLC: at, Origin: protocol.OriginUser, Fields: values(t, kv...)}
}

func deleteM(coll, id string, at protocol.HLC) protocol.Mutation {
	return protocol.Mutation{MutationID: newMID(), Collection: coll, ID: id, Op: protocol.OpDelete, HLC: at, Origin: protocol.OriginUser,
		Fields: map[string]json.RawMessage{protocol.DeletedField: json.RawMessage("true")}}
}

// value returns the JSON text of a record's field ("" if absent).
func value(r *protocol.RecordState, field string) string {
	if r == nil {
		return ""
	}
	return string(r.Fields[field].Value)
}

// wantStatuses checks the statuses of a push answer.
func wantStatuses(t *testing.T, resp protocol.PushResponse, want ...protocol.MutationStatus) {
	t.Helper()
	var got []protocol.MutationStatus
	for _, r := range resp.Results {
		got = append(got, r.Status)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("statuses %v, want %v (results %+v)", got, want, resp.Results)
	}
}

// stats reads the store's counts for user.
func (s *testServer) stats(user string) Stats {
	s.t.Helper()
	st, err := s.store.Stats(context.Background(), user)
	if err != nil {
		s.t.Fatal(err)
	}
	return st
}

// eventually polls cond for up to d.
func eventually(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return cond()
}
