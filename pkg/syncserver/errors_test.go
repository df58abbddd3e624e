package syncserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/opfsync/opfsync/pkg/protocol"
)

const validPush = `{"clientId":"c1","mutations":[]}`

func TestErrorResponses(t *testing.T) {
	s := newTestServer(t, nil, nil)
	over := make([]string, protocol.MaxBatchMutations+1)
	for i := range over {
		over[i] = fmt.Sprintf(`{"mutationId":"m%d","collection":"c","id":"x","op":"delete","hlc":"1700000000000-000000-c1","origin":"user","fields":{"_deleted":true}}`, i)
	}
	overLimit := `{"clientId":"c1","mutations":[` + strings.Join(over, ",") + `]}`
	push := func(token, body string, hdr map[string]string) request {
		return request{method: http.MethodPost, path: protocol.PathPush, token: token, body: strings.NewReader(body), header: hdr}
	}
	get := func(path, token string) request { return request{method: http.MethodGet, path: path, token: token} }
	cases := []struct {
		name   string
		req    request
		status int
		code   string
		msg    string
	}{
		{"push without token", push("", validPush, nil), 401, protocol.CodeUnauthorized, "Bearer"},
		{"pull without token", get(protocol.PathPull, ""), 401, protocol.CodeUnauthorized, "Bearer"},
		{"events without token", get(protocol.PathEvents+"?clientId=c1", ""), 401, protocol.CodeUnauthorized, "Bearer"},
		{"unknown token", get(protocol.PathPull, "nope"), 401, protocol.CodeUnauthorized, "unknown"},
		{"basic auth", request{method: http.MethodGet, path: protocol.PathPull, header: map[string]string{"Authorization": "Basic " + tokA}}, 401, protocol.CodeUnauthorized, ""},
		{"empty bearer", request{method: http.MethodGet, path: protocol.PathPull, header: map[string]string{"Authorization": "Bearer "}}, 401, protocol.CodeUnauthorized, ""},
		{"version 2", request{method: http.MethodGet, path: protocol.PathPull, token: tokA, header: map[string]string{protocol.VersionHeader: "2"}}, 400, protocol.CodeVersion, `"2"`},
		{"version garbage on push", push(tokA, validPush, map[string]string{protocol.VersionHeader: "v1"}), 400, protocol.CodeVersion, "version 1"},
		{"no content type", push(tokA, validPush, map[string]string{"Content-Type": ""}), 415, protocol.CodeContentType, "application/json"},
		{"text/plain", push(tokA, validPush, map[string]string{"Content-Type": "text/plain"}), 415, protocol.CodeContentType, "text/plain"},
		{"latin1 charset", push(tokA, validPush, map[string]string{"Content-Type": "application/json; charset=latin1"}), 415, protocol.CodeContentType, "charset"},
		{"bad JSON", push(tokA, `{"clientId":"c1","mutations":[}`, nil), 400, protocol.CodeValidation, "not valid JSON"},
		{"empty body", push(tokA, ``, nil), 400, protocol.CodeValidation, "empty"},
		{"truncated body", push(tokA, `{"clientId":"c1"`, nil), 400, protocol.CodeValidation, "ends"},
		{"not an object", push(tokA, `[1,2]`, nil), 400, protocol.CodeValidation, "object"},
		{"unknown field", push(tokA, `{"clientId":"c1","mutations":[],"extra":1}`, nil), 400, protocol.CodeValidation, `unknown field "extra"`},
		{"unknown mutation field", push(tokA, `{"clientId":"c1","mutations":[{"mutationId":"m","bogus":true}]}`, nil), 400, protocol.CodeValidation, `unknown field "bogus"`},
		{"wrong type", push(tokA, `{"clientId":7,"mutations":[]}`, nil), 400, protocol.CodeValidation, "clientId"},
		{"bad hlc text", push(tokA, `{"clientId":"c1","mutations":[{"mutationId":"m","hlc":"yesterday"}]}`, nil), 400, protocol.CodeValidation, "hlc"},
		{"trailing data", push(tokA, validPush+`{}`, nil), 400, protocol.CodeValidation, "after the JSON"},
		{"trailing garbage", push(tokA, validPush+` x`, nil), 400, protocol.CodeValidation, "after the JSON"},
		{"missing clientId", push(tokA, `{"mutations":[]}`, nil), 400, protocol.CodeValidation, "clientId"},
		{"bad clientId", push(tokA, `{"clientId":"a b","mutations":[]}`, nil), 400, protocol.CodeValidation, "clientId"},
		{"batch over limit", push(tokA, overLimit, nil), 400, protocol.CodeValidation, "limit is 500"},
		{"cursor letters", get(protocol.PathPull+"?cursor=abc", tokA), 400, protocol.CodeValidation, "cursor"},
		{"cursor negative", get(protocol.PathPull+"?cursor=-1", tokA), 400, protocol.CodeValidation, "cursor"},
		{"cursor plus", get(protocol.PathPull+"?cursor=%2B1", tokA), 400, protocol.CodeValidation, "cursor"},
		{"cursor huge", get(protocol.PathPull+"?cursor=99999999999999999999", tokA), 400, protocol.CodeValidation, "cursor"},
		{"cursor ahead of data", get(protocol.PathPull+"?cursor=42", tokA), 400, protocol.CodeValidation, "from the beginning"},
		{"limit zero", get(protocol.PathPull+"?limit=0", tokA), 400, protocol.CodeValidation, "limit"},
		{"limit over max", get(protocol.PathPull+"?limit=10001", tokA), 400, protocol.CodeValidation, "10000"},
		{"limit empty", get(protocol.PathPull+"?limit=", tokA), 400, protocol.CodeValidation, "limit"},
		{"limit text", get(protocol.PathPull+"?limit=ten", tokA), 400, protocol.CodeValidation, "limit"},
		{"events without clientId", get(protocol.PathEvents, tokA), 400, protocol.CodeValidation, "clientId"},
		{"events bad clientId", get(protocol.PathEvents+"?clientId=%20", tokA), 400, protocol.CodeValidation, "clientId"},
		{"unknown sync path", get("/sync/nope", tokA), 404, protocol.CodeNotFound, "/sync/nope"},
		{"unknown path", get("/elsewhere", ""), 404, protocol.CodeNotFound, ""},
	}
	before := s.snapshot()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp := s.do(c.req)
			wantError(t, resp, c.status, c.code, c.msg)
			wantNoLeak(t, s, resp.body)
			if c.status == 401 && !strings.HasPrefix(resp.header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("WWW-Authenticate %q", resp.header.Get("WWW-Authenticate"))
			}
			if resp.header.Get("Access-Control-Allow-Origin") != "*" {
				t.Error("error answer without CORS header")
			}
			s.wantUnchanged(t, before, false)
		})
	}
}

func TestAcceptedVariants(t *testing.T) {
	s := newTestServer(t, nil, nil)
	for name, hdr := range map[string]map[string]string{
		"charset utf-8":     {"Content-Type": "application/json; charset=UTF-8"},
		"version 1":         {protocol.VersionHeader: "1"},
		"no version header": {},
	} {
		resp := s.do(request{method: http.MethodPost, path: protocol.PathPush, token: tokA, body: strings.NewReader(validPush), header: hdr})
		if resp.status != 200 || string(resp.body) != `{"results":[]}` {
			t.Errorf("%s: %d %s", name, resp.status, resp.body)
		}
	}
	// A lower-case scheme is accepted too.
	resp := s.do(request{method: http.MethodGet, path: protocol.PathPull, header: map[string]string{"Authorization": "bearer " + tokA}})
	if resp.status != 200 {
		t.Errorf("bearer in lower case: %d %s", resp.status, resp.body)
	}
}

func TestMethodNotAllowed(t *testing.T) {
	s := newTestServer(t, nil, nil)
	for _, c := range []struct{ method, path, allow string }{
		{http.MethodGet, protocol.PathPush, "POST, OPTIONS"},
		{http.MethodPut, protocol.PathPush, "POST, OPTIONS"},
		{http.MethodPost, protocol.PathPull, "GET, OPTIONS"},
		{http.MethodDelete, protocol.PathEvents, "GET, OPTIONS"},
		{http.MethodPost, protocol.PathHealthz, "GET, HEAD, OPTIONS"},
	} {
		resp := s.do(request{method: c.method, path: c.path, token: tokA})
		wantError(t, resp, http.StatusMethodNotAllowed, protocol.CodeMethod, c.method)
		if got := resp.header.Get("Allow"); got != c.allow {
			t.Errorf("%s %s: Allow %q, want %q", c.method, c.path, got, c.allow)
		}
	}
}

func TestCORSPreflight(t *testing.T) {
	s := newTestServer(t, nil, nil)
	for _, path := range []string{protocol.PathPush, protocol.PathPull, protocol.PathEvents, protocol.PathHealthz} {
		resp := s.do(request{method: http.MethodOptions, path: path, header: map[string]string{
			"Origin": "https://app.example", "Access-Control-Request-Method": "POST",
			"Access-Control-Request-Headers": "authorization, content-type, opfsync-protocol",
		}})
		if resp.status != http.StatusNoContent {
			t.Fatalf("preflight %s: %d %s", path, resp.status, resp.body)
		}
		h := resp.header
		if h.Get("Access-Control-Allow-Origin") != "*" ||
			h.Get("Access-Control-Allow-Methods") != "GET, POST, OPTIONS" ||
			h.Get("Access-Control-Allow-Headers") != "Authorization, Content-Type, Opfsync-Protocol" {
			t.Errorf("preflight %s: headers %v", path, h)
		}
	}
	resp := s.do(request{method: http.MethodGet, path: protocol.PathHealthz, header: map[string]string{"Origin": "https://app.example"}})
	if resp.header.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("healthz without CORS: %v", resp.header)
	}
}

// unsizedReader hides its length, so the request is sent chunked (no
// Content-Length to refuse early).
type unsizedReader struct{ io.Reader }

func TestTooLarge(t *testing.T) {
	s := newTestServer(t, nil, nil)
	before := s.snapshot()
	t.Cleanup(func() { s.wantUnchanged(t, before, false) })
	big := `{"clientId":"c1","mutations":[],"pad":"` + strings.Repeat("x", protocol.MaxRequestBytes) + `"}`
	t.Run("content-length", func(t *testing.T) {
		wantError(t, s.pushRaw(tokA, big), http.StatusRequestEntityTooLarge, protocol.CodeTooLarge, "larger than")
	})
	t.Run("chunked", func(t *testing.T) {
		resp := s.do(request{method: http.MethodPost, path: protocol.PathPush, token: tokA, body: unsizedReader{strings.NewReader(big)}})
		wantError(t, resp, http.StatusRequestEntityTooLarge, protocol.CodeTooLarge, "larger than")
	})
	t.Run("just under the limit is read", func(t *testing.T) {
		body := `{"clientId":"c1","mutations":[]}` + strings.Repeat(" ", protocol.MaxRequestBytes-len(validPush))
		resp := s.pushRaw(tokA, body)
		if resp.status != 200 {
			t.Fatalf("%d bytes: %d %s", len(body), resp.status, resp.body)
		}
	})
}

func TestHealthz(t *testing.T) {
	s := newTestServer(t, nil, nil)
	resp := s.do(request{method: http.MethodGet, path: protocol.PathHealthz})
	if resp.status != 200 || string(resp.body) != `{"status":"ok"}` || resp.header.Get("Content-Type") != "application/json" {
		t.Fatalf("healthz: %d %q %v", resp.status, resp.body, resp.header)
	}
	if err := s.store.Close(); err != nil {
		t.Fatal(err)
	}
	resp = s.do(request{method: http.MethodGet, path: protocol.PathHealthz})
	wantError(t, resp, http.StatusServiceUnavailable, protocol.CodeInternal, "unavailable")
	if strings.Contains(string(resp.body), "closed") {
		t.Errorf("503 leaks the cause: %s", resp.body)
	}
}

const internalErrorBody = `{"error":{"code":"INTERNAL","message":"internal error"}}`

func TestInternalErrorsSayNothing(t *testing.T) {
	s := newTestServer(t, nil, nil)
	if err := s.store.Close(); err != nil { // every store call now fails
		t.Fatal(err)
	}
	m := putM(t, "todos", "t1", hlc(baseWall, 0, "c1"), "title", "x")
	for _, rq := range []request{
		{method: http.MethodPost, path: protocol.PathPush, token: tokA, body: strings.NewReader(mustJSON(t, protocol.PushRequest{ClientID: "c1", Mutations: []protocol.Mutation{m}}))},
		{method: http.MethodGet, path: protocol.PathPull, token: tokA},
		{method: http.MethodGet, path: protocol.PathEvents + "?clientId=c1", token: tokA},
	} {
		resp := s.do(rq)
		if resp.status != 500 || string(resp.body) != internalErrorBody {
			t.Errorf("%s %s: %d %s, want 500 %s", rq.method, rq.path, resp.status, resp.body, internalErrorBody)
		}
	}
	cause := map[string]string{"sqlite": "database is closed", "postgres": "closed pool"}[testStoreKind]
	if !strings.Contains(s.logs.String(), cause) {
		t.Errorf("the cause is not in the log:\n%s", s.logs.String())
	}
}

func TestPanicIsInternalError(t *testing.T) {
	s := newTestServer(t, func(o *Options) {
		o.Authorize = func(_ context.Context, user string, _ *protocol.Mutation) error {
			if user == userA {
				panic("secret detail")
			}
			return nil
		}
	}, nil)
	m := putM(t, "todos", "t1", hlc(baseWall, 0, "c1"), "title", "x")
	resp := s.pushRaw(tokA, mustJSON(t, protocol.PushRequest{ClientID: "c1", Mutations: []protocol.Mutation{m}}))
	if resp.status != 500 || string(resp.body) != internalErrorBody {
		t.Fatalf("%d %s", resp.status, resp.body)
	}
	if !strings.Contains(s.logs.String(), "secret detail") {
		t.Errorf("the panic is not in the log:\n%s", s.logs.String())
	}
	// The server still works.
	wantStatuses(t, s.push(tokB, "c1", putM(t, "todos", "t1", hlc(baseWall, 0, "c1"))), protocol.StatusApplied)
}

// failingAuth cannot tell who a token belongs to.
type failingAuth struct{}

func (failingAuth) Authenticate(context.Context, string) (string, bool, error) {
	return "", false, errors.New("token database down: secret detail")
}

func TestAuthenticatorFailureIsInternalError(t *testing.T) {
	s := newTestServer(t, func(o *Options) { o.Auth = failingAuth{} }, nil)
	resp := s.do(request{method: http.MethodGet, path: protocol.PathPull, token: "x"})
	if resp.status != 500 || !bytes.Equal(resp.body, []byte(internalErrorBody)) {
		t.Fatalf("%d %s", resp.status, resp.body)
	}
}

func TestNewNeedsStoreAndAuth(t *testing.T) {
	if _, err := New(Options{Auth: Tokens{"a": "b"}}); err == nil {
		t.Error("New without a store succeeded")
	}
	if _, err := New(Options{Store: &SQLiteStore{}}); err == nil {
		t.Error("New without an authenticator succeeded")
	}
}
