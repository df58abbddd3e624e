package syncserver

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/opfsync/opfsync/pkg/protocol"
)

// The hostile-input matrix: every bad request is answered with the right
// status and error code and a message that names the problem, the answer
// carries nothing internal, the store is unchanged afterwards, and the
// server still serves good requests. Cases already covered elsewhere are not
// repeated here: TestErrorResponses (missing/Basic/empty bearer and unknown
// tokens, version header, Content-Type, empty/truncated/non-object/trailing
// bodies, unknown top-level and mutation fields, batch over the limit, pull
// cursor and limit, events clientId; it now also checks for leaks and an
// unchanged store), TestTooLarge (bodies over the limit with a true
// Content-Length and chunked), TestUsersAreIsolated (another user's ids and
// mutation ids), TestPushRejectionsAreStored and TestPushPolicyHook (bad
// collection names, refused mutations), TestInternalErrorsSayNothing.

// internalMarkers must never appear in an error answer: they would be
// internal detail (store, Go errors and types, paths, stacks).
var internalMarkers = []string{
	"sqlite", "SQLITE", "postgres", "pgx", "SQLSTATE", "database", "/tmp", ".go:", "goroutine", "panic", "runtime",
	"json: ", "Go value", "Go struct", "protocol.", "syncserver", "%!", "0x",
}

// wantNoLeak fails when an error answer holds internal detail.
func wantNoLeak(t *testing.T, s *testServer, body []byte) {
	t.Helper()
	text := string(body)
	for _, m := range append(internalMarkers, s.dbPath) {
		if strings.Contains(text, m) {
			t.Errorf("answer leaks %q: %.300s", m, text)
		}
	}
}

// snapshot is everything the store holds, as the server shows it: the
// counts for every user and what each test user pulls.
type snapshot struct {
	stats  Stats
	pulled map[string]map[string]protocol.RecordState
}

func (s *testServer) snapshot(tokens ...string) snapshot {
	s.t.Helper()
	snap := snapshot{stats: s.stats(""), pulled: map[string]map[string]protocol.RecordState{}}
	for _, tok := range append([]string{tokA, tokB}, tokens...) {
		snap.pulled[tok], _ = s.pullAll(tok, 0)
	}
	return snap
}

// wantUnchanged checks the store against before and that the server still
// answers a good push and pull.
func (s *testServer) wantUnchanged(t *testing.T, before snapshot, ignoreRejected bool) {
	t.Helper()
	after := s.snapshot()
	if ignoreRejected { // a rejected mutation keeps its verdict, by design
		after.stats.Rejected = before.stats.Rejected
	}
	if !reflect.DeepEqual(before, after) {
		t.Errorf("the store changed:\nbefore %+v\nafter  %+v", before, after)
	}
	if resp := s.pushRaw(tokA, validPush); resp.status != http.StatusOK || string(resp.body) != `{"results":[]}` {
		t.Errorf("a good push after it: %d %s", resp.status, resp.body)
	}
}

// Raw JSON building blocks (hostile bytes go in as they are).

// js is s as a JSON string literal.
func js(s string) string { return string(protocol.AppendJSONString(nil, s)) }

const testStamp = `"1700000000000-000000-c1"`

// rawMut is one mutation; mid, coll and id are raw JSON texts.
func rawMut(mid, coll, id, op, fields string) string {
	return `{"mutationId":` + mid + `,"collection":` + coll + `,"id":` + id + `,"op":"` + op + `","hlc":` + testStamp + `,"origin":"user","fields":` + fields + `}`
}

// rawPut is a put of collection "todos" unless coll is given.
func rawPut(id, fields string) string {
	return rawMut(js(newMID()), `"todos"`, id, "put", `{"_deleted":false`+fields+`}`)
}

func rawBatch(muts ...string) string {
	return `{"clientId":"c1","mutations":[` + strings.Join(muts, ",") + `]}`
}

func nest(depth int, leaf string) string {
	return strings.Repeat("[", depth) + leaf + strings.Repeat("]", depth)
}

// newHostileServer serves users A and B (static tokens) and signed tokens
// on a fake clock, with some data of A's and B's stored.
func newHostileServer(t *testing.T) (*testServer, *SignedTokens, *fakeClock) {
	t.Helper()
	signed, clock := newSigned(t)
	s := newTestServer(t, func(o *Options) { o.Auth = AnyOf(Tokens{tokA: userA, tokB: userB}, signed) }, nil)
	wantStatuses(t, s.push(tokA, "ca",
		putM(t, "todos", "t1", hlc(baseWall, 0, "ca"), "title", "alice's", "n", 1),
		putM(t, "notes", "'); DROP TABLE records;--", hlc(baseWall, 1, "ca"), "body", "x"),
	), "applied", "applied")
	wantStatuses(t, s.push(tokB, "cb", putM(t, "todos", "b1", hlc(baseWall, 0, "cb"), "title", "bob's")), "applied")
	return s, signed, clock
}

func TestHostileRequestsAreRefused(t *testing.T) {
	s, signed, clock := newHostileServer(t)
	valid, err := signed.Issue(userA, clock.t.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	// An expired token: issued earlier, its hour is over by now.
	expired, err := signed.Issue(userA, clock.t.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	clock.t = clock.t.Add(2 * time.Minute)
	parts := strings.Split(valid, ".")
	tamperedUser := strings.Join([]string{parts[0], tokenB64.EncodeToString([]byte(userB)), parts[2], parts[3]}, ".")
	tamperedExpiry := strings.Join([]string{parts[0], parts[1], "9999999999", parts[3]}, ".")
	otherKey, _ := NewSignedTokens([]byte(strings.Repeat("z", 32)))
	otherKey.Now = clock.now
	foreign, _ := otherKey.Issue(userA, clock.t.Add(time.Hour))

	authHeader := func(v string) map[string]string { return map[string]string{"Authorization": v} }
	push := func(token, body string, hdr map[string]string) request {
		return request{method: http.MethodPost, path: protocol.PathPush, token: token, body: strings.NewReader(body), header: hdr}
	}
	pull := func(token, query string, hdr map[string]string) request {
		return request{method: http.MethodGet, path: protocol.PathPull + query, token: token, header: hdr}
	}
	goodPut := rawBatch(rawPut(`"new"`, `,"title":"x"`))
	huge := strings.Repeat("h", 1<<20)
	const (
		unknownChallenge = `Bearer realm="opfsync", error="invalid_token"`
		expiredChallenge = `Bearer realm="opfsync", error="invalid_token", error_description="token expired"`
		missingChallenge = `Bearer realm="opfsync"`
	)
	cases := []struct {
		name      string
		req       request
		status    int
		code      string
		msg       string
		challenge string
	}{
		// Authentication.
		{"Authorization: Bearer (no token)", push("", goodPut, authHeader("Bearer")), 401, protocol.CodeUnauthorized, "not a bearer token", missingChallenge},
		{"Authorization: Token scheme", push("", goodPut, authHeader("Token "+tokA)), 401, protocol.CodeUnauthorized, "not a bearer token", missingChallenge},
		{"Authorization: two tokens", push("", goodPut, authHeader("Bearer "+tokA+" "+tokB)), 401, protocol.CodeUnauthorized, "unknown", unknownChallenge},
		{"Authorization: token, comma", push("", goodPut, authHeader("Bearer "+tokA+", Bearer "+tokB)), 401, protocol.CodeUnauthorized, "unknown", unknownChallenge},
		{"Authorization: 32 KiB token", pull("", "", authHeader("Bearer "+strings.Repeat("t", 32<<10))), 401, protocol.CodeUnauthorized, "unknown", unknownChallenge},
		{"Authorization: non-ASCII token", pull("", "", authHeader("Bearer tøken\xff")), 401, protocol.CodeUnauthorized, "unknown", unknownChallenge},
		{"Authorization: SQL token", pull("", "", authHeader(`Bearer ' OR 1=1;--`)), 401, protocol.CodeUnauthorized, "unknown", unknownChallenge},
		{"expired signed token: push", push(expired, goodPut, nil), 401, protocol.CodeUnauthorized, "expired", expiredChallenge},
		{"expired signed token: pull", pull(expired, "", nil), 401, protocol.CodeUnauthorized, "expired", expiredChallenge},
		{"expired signed token: events", request{method: http.MethodGet, path: protocol.PathEvents + "?clientId=c1", token: expired}, 401, protocol.CodeUnauthorized, "expired", expiredChallenge},
		{"tampered signed token: user", push(tamperedUser, goodPut, nil), 401, protocol.CodeUnauthorized, "unknown", unknownChallenge},
		{"tampered signed token: expiry", pull(tamperedExpiry, "", nil), 401, protocol.CodeUnauthorized, "unknown", unknownChallenge},
		{"tampered signed token: signature", pull(valid[:len(valid)-2]+"AA", "", nil), 401, protocol.CodeUnauthorized, "unknown", unknownChallenge},
		{"truncated signed token", pull(valid[:len(valid)/2], "", nil), 401, protocol.CodeUnauthorized, "unknown", unknownChallenge},
		{"signed token of another key", pull(foreign, "", nil), 401, protocol.CodeUnauthorized, "unknown", unknownChallenge},

		// The body's JSON.
		{"null body", push(tokA, `null`, nil), 400, protocol.CodeValidation, "null", ""},
		{"whitespace body", push(tokA, " \n\t ", nil), 400, protocol.CodeValidation, "empty", ""},
		{"string body", push(tokA, `"push"`, nil), 400, protocol.CodeValidation, "object", ""},
		{"garbage after the object", push(tokA, validPush+`}}}`, nil), 400, protocol.CodeValidation, "after the JSON", ""},
		{"second object after the first", push(tokA, validPush+goodPut, nil), 400, protocol.CodeValidation, "after the JSON", ""},
		{"100k [ body", push(tokA, strings.Repeat("[", 100_000), nil), 400, protocol.CodeValidation, "not valid JSON", ""},
		{`100k {"a": body`, push(tokA, strings.Repeat(`{"a":`, 100_000), nil), 400, protocol.CodeValidation, "not valid JSON", ""},
		{"100k deep field value", push(tokA, rawBatch(rawPut(`"deep"`, `,"v":`+nest(100_000, "1"))), nil), 400, protocol.CodeValidation, "not valid JSON", ""},
		{"duplicate key: clientId", push(tokA, `{"clientId":"c1","clientId":"c2","mutations":[]}`, nil), 400, protocol.CodeValidation, `"clientId" appears twice`, ""},
		{"duplicate key: mutations", push(tokA, `{"clientId":"c1","mutations":[],"mutations":[`+rawPut(`"dup"`, "")+`]}`, nil), 400, protocol.CodeValidation, `"mutations" appears twice`, ""},
		{"duplicate key: id", push(tokA, rawBatch(strings.Replace(rawPut(`"t1"`, ""), `"id":"t1"`, `"id":"t1","id":"t2"`, 1)), nil), 400, protocol.CodeValidation, `mutation 1: key "id" appears twice`, ""},
		{"duplicate field name", push(tokA, rawBatch(rawPut(`"dupf"`, ""), rawPut(`"t1"`, `,"title":"a","title":"b"`)), nil), 400, protocol.CodeValidation, `mutation 2 fields: field name "title" appears twice`, ""},
		{"key in another case: ClientId", push(tokA, `{"ClientId":"c1","mutations":[]}`, nil), 400, protocol.CodeValidation, `unknown field "ClientId" (names are case-sensitive: send "clientId")`, ""},
		{"key in another case: ID", push(tokA, rawBatch(strings.Replace(rawPut(`"t1"`, ""), `"id":`, `"ID":`, 1)), nil), 400, protocol.CodeValidation, `unknown field "ID"`, ""},
		{"duplicate key spelled with an escape", push(tokA, `{"clientId":"c1","client\u0049d":"c2","mutations":[]}`, nil), 400, protocol.CodeValidation, `"clientId" appears twice`, ""},
		{"unknown key inside a mutation", push(tokA, rawBatch(strings.Replace(rawPut(`"t1"`, ""), `"op":`, `"user":"bob","op":`, 1)), nil), 400, protocol.CodeValidation, `unknown field "user"`, ""},

		// Invalid UTF-8 and unpaired surrogates in the strings the server
		// decodes (encoding/json would silently turn them into U+FFFD).
		{"invalid UTF-8 in an id", push(tokA, rawBatch(rawPut("\"t1\xff\"", "")), nil), 400, protocol.CodeValidation, "not valid UTF-8", ""},
		{"invalid UTF-8 in a collection", push(tokA, rawBatch(rawMut(js(newMID()), "\"tod\xc0\xafos\"", `"x"`, "put", `{"_deleted":false}`)), nil), 400, protocol.CodeValidation, "not valid UTF-8", ""},
		{"invalid UTF-8 in a field name", push(tokA, rawBatch(rawPut(`"t1"`, ",\"ti\xfftle\":1")), nil), 400, protocol.CodeValidation, "not valid UTF-8", ""},
		{"invalid UTF-8 in a string value", push(tokA, rawBatch(rawPut(`"t1"`, ",\"title\":\"\xed\xa0\x80\"")), nil), 400, protocol.CodeValidation, "not valid UTF-8", ""},
		{"invalid UTF-8 in the clientId", push(tokA, "{\"clientId\":\"c\xfe\",\"mutations\":[]}", nil), 400, protocol.CodeValidation, "at byte 14", ""},
		{"invalid UTF-8 in a mutation id", push(tokA, rawBatch(rawMut("\"m\x80\"", `"todos"`, `"t1"`, "put", `{"_deleted":false}`)), nil), 400, protocol.CodeValidation, "not valid UTF-8", ""},
		{"unpaired high surrogate in an id", push(tokA, rawBatch(rawPut(`"t1\ud800"`, "")), nil), 400, protocol.CodeValidation, `surrogate escape \ud800`, ""},
		{"unpaired low surrogate in an id", push(tokA, rawBatch(rawPut(`"\uDC00t1"`, "")), nil), 400, protocol.CodeValidation, `surrogate escape \uDC00`, ""},
		{"high surrogate before a non-surrogate", push(tokA, rawBatch(rawPut(`"\ud83d\u0041"`, "")), nil), 400, protocol.CodeValidation, `\ud83d`, ""},
		{"unpaired surrogate in a field name", push(tokA, rawBatch(rawPut(`"t1"`, `,"f\udfff":1`)), nil), 400, protocol.CodeValidation, `field name "f\udfff"`, ""},
		{"unpaired surrogate in a collection", push(tokA, rawBatch(rawMut(js(newMID()), `"todos\ud800"`, `"t1"`, "put", `{"_deleted":false}`)), nil), 400, protocol.CodeValidation, "collection", ""},

		// Numbers and types out of range.
		{"clientId is a huge number", push(tokA, `{"clientId":1e400,"mutations":[]}`, nil), 400, protocol.CodeValidation, "clientId", ""},
		{"hlc is a number", push(tokA, rawBatch(strings.Replace(rawPut(`"t1"`, ""), testStamp, `170000000000000000000`, 1)), nil), 400, protocol.CodeValidation, "hlc", ""},
		{"hlc wall past 13 digits", push(tokA, rawBatch(strings.Replace(rawPut(`"t1"`, ""), testStamp, `"99999999999999999-000000-c1"`, 1)), nil), 400, protocol.CodeValidation, "hlc", ""},
		{"mutations is a number", push(tokA, `{"clientId":"c1","mutations":1e999}`, nil), 400, protocol.CodeValidation, "mutations", ""},
		{"pull limit past int64", pull(tokA, "?limit=99999999999999999999", nil), 400, protocol.CodeValidation, "limit", ""},
		{"pull limit in exponent form", pull(tokA, "?limit=1e3", nil), 400, protocol.CodeValidation, "limit", ""},
		{"pull limit negative", pull(tokA, "?limit=-1", nil), 400, protocol.CodeValidation, "limit", ""},

		// SQL-looking input where the rules do not allow it.
		{"SQL in clientId", push(tokA, `{"clientId":"'); DROP TABLE records;--","mutations":[]}`, nil), 400, protocol.CodeValidation, "clientId", ""},
		{"SQL in pull cursor", pull(tokA, "?cursor=1%20OR%201%3D1", nil), 400, protocol.CodeValidation, "cursor", ""},
		{"SQL in pull cursor after ;", pull(tokA, "?cursor=0;DROP%20TABLE%20records", nil), 400, protocol.CodeValidation, "malformed", ""},
		{"bad %-escape in pull query", pull(tokA, "?cursor=%zz", nil), 400, protocol.CodeValidation, "malformed", ""},
		{"pull cursor twice", pull(tokA, "?cursor=&cursor=1", nil), 400, protocol.CodeValidation, "cursor appears more than once", ""},
		{"events clientId twice", request{method: http.MethodGet, path: protocol.PathEvents + "?clientId=c1&clientId=c2", token: tokA}, 400, protocol.CodeValidation, "clientId appears more than once", ""},
		{"SQL in events clientId", request{method: http.MethodGet, path: protocol.PathEvents + "?clientId=%27)%3B--", token: tokA}, 400, protocol.CodeValidation, "clientId", ""},

		// Huge strings the envelope refuses.
		{"1 MiB clientId", push(tokA, `{"clientId":"`+huge+`","mutations":[]}`, nil), 400, protocol.CodeValidation, "clientId", ""},
		{"1 MiB unknown key", push(tokA, `{"`+huge+`":1}`, nil), 400, protocol.CodeValidation, "unknown field", ""},
	}
	before := s.snapshot()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp := s.do(c.req)
			wantError(t, resp, c.status, c.code, c.msg)
			wantNoLeak(t, s, resp.body)
			if len(resp.body) > 1024 {
				t.Errorf("the answer is %d bytes: the message should not echo the input", len(resp.body))
			}
			if got := resp.header.Get("WWW-Authenticate"); got != c.challenge {
				t.Errorf("WWW-Authenticate %q, want %q", got, c.challenge)
			}
			s.wantUnchanged(t, before, false)
		})
	}
	// The valid signed token works, before and after all of that.
	if p := s.pull(valid, "", 0); len(p.Changes) != 2 {
		t.Errorf("alice with a signed token pulled %d records, want 2", len(p.Changes))
	}
}

func TestHostileMutationsAreRejectedOneByOne(t *testing.T) {
	s, _, _ := newHostileServer(t)
	cases := []struct {
		name string
		mut  string
		msg  string
	}{
		{"id one byte over the limit", rawPut(js(strings.Repeat("i", protocol.MaxIDBytes+1)), ""), "record id is 257 bytes, the limit is 256"},
		{"4 MiB id", rawPut(js(strings.Repeat("i", 4<<20)), ""), "the limit is 256"},
		{"empty id", rawPut(`""`, ""), "record id is empty"},
		{"control character in id", rawPut(`"a\u0000b"`, ""), "control character"},
		{"collection over the limit", rawMut(js(newMID()), js(strings.Repeat("c", protocol.MaxNameLen+1)), `"x"`, "put", `{"_deleted":false}`), "longer than 64"},
		{"1 MiB collection", rawMut(js(newMID()), js(strings.Repeat("c", 1<<20)), `"x"`, "put", `{"_deleted":false}`), "longer than 64"},
		{"SQL collection", rawMut(js(newMID()), js("'); DROP TABLE records;--"), `"x"`, "put", `{"_deleted":false}`), "collection name"},
		{"SQL collection 2", rawMut(js(newMID()), js(`todos" OR 1=1`), `"x"`, "put", `{"_deleted":false}`), "collection name"},
		{"LIKE pattern collection", rawMut(js(newMID()), js(`%_\`), `"x"`, "put", `{"_deleted":false}`), "collection name"},
		{"SQL field name", rawPut(`"x"`, `,`+js(`title" = 'x' --`)+`:1`), "field name"},
		{"LIKE pattern field name", rawPut(`"x"`, `,"%_":1`), "field name"},
		{"field name over the limit", rawPut(`"x"`, `,`+js(strings.Repeat("f", 65))+`:1`), "longer than 64"},
		{"mutation id with SQL and spaces", rawMut(js("'); DROP TABLE verdicts;--"), `"todos"`, `"x"`, "put", `{"_deleted":false}`), "mutation id"},
		{"mutation id over the limit", rawMut(js(strings.Repeat("m", protocol.MaxMutationIDBytes+1)), `"todos"`, `"x"`, "put", `{"_deleted":false}`), "mutation id"},
		{"field value nested 33 deep", rawPut(`"x"`, `,"v":`+nest(protocol.MaxJSONDepth+1, "1")), "nests 33 deep, the limit is 32"},
		{"field value nested 9000 deep", rawPut(`"x"`, `,"v":`+strings.Repeat(`{"a":`, 9000)+"1"+strings.Repeat("}", 9000)), "the limit is 32"},
		{"a null mutation", "null", "mutation id"},
		{"put without fields", rawMut(js(newMID()), `"todos"`, `"x"`, "put", `null`), "_deleted"},
		{"tombstone that is not a boolean", rawMut(js(newMID()), `"todos"`, `"x"`, "delete", `{"_deleted":"yes"}`), "true or false"},
		{"unknown op", rawMut(js(newMID()), `"todos"`, `"x"`, "drop", `{"_deleted":true}`), "unknown op"},
	}
	before := s.snapshot()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// The bad mutation sits between two good ones, which apply.
			body := rawBatch(rawPut(`"ok1"`, `,"title":"before"`), c.mut, rawPut(`"ok2"`, `,"title":"after"`))
			resp := s.pushRaw(tokB, body)
			if resp.status != http.StatusOK {
				t.Fatalf("%d %.300s", resp.status, resp.body)
			}
			if len(resp.body) > 4096 {
				t.Errorf("the answer is %d bytes: the message should not echo the input", len(resp.body))
			}
			var out protocol.PushResponse
			decodeStrict(t, resp.body, &out)
			if len(out.Results) != 3 || out.Results[0].Status == protocol.StatusRejected || out.Results[2].Status == protocol.StatusRejected {
				t.Fatalf("results %+v", out.Results)
			}
			r := out.Results[1]
			if r.Status != protocol.StatusRejected || r.Error == nil || r.Error.Code != protocol.CodeValidation || r.Record != nil {
				t.Fatalf("result %+v", r)
			}
			if !strings.Contains(r.Error.Message, c.msg) {
				t.Errorf("message %q does not mention %q", r.Error.Message, c.msg)
			}
			msgJSON, _ := json.Marshal(r.Error)
			wantNoLeak(t, s, msgJSON)
		})
	}
	// Bob's two good records were written; nothing else changed (the
	// rejections keep their verdicts, as designed), and Alice's data is
	// untouched.
	after := s.snapshot()
	bob := after.pulled[tokB]
	if len(bob) != len(before.pulled[tokB])+2 || value(ptr(bob["todos/ok1"]), "title") != `"before"` || value(ptr(bob["todos/ok2"]), "title") != `"after"` {
		t.Errorf("bob's records %+v", bob)
	}
	if !reflect.DeepEqual(after.pulled[tokA], before.pulled[tokA]) {
		t.Errorf("alice's records changed")
	}
	if st := s.stats(userB); st.Records != 3 {
		t.Errorf("bob's stats %+v", st)
	}
}

// Strings that look like SQL, LIKE patterns, escapes or odd Unicode are
// data: ids, collection and field names (where the name rules allow them),
// mutation ids and values are stored and pulled back byte for byte.
func TestHostileStringsAreStoredVerbatim(t *testing.T) {
	s, _, _ := newHostileServer(t)
	type rec struct{ coll, id, field, value string } // value is raw JSON
	recs := []rec{
		{"todos", "'); DROP TABLE records;--", "title", js("'); DROP TABLE records;--")},
		{"todos", `" OR 1=1`, "title", js(`" OR 1=1 --`)},
		{"todos", `%_\`, "title", js(`%_\ LIKE '%'`)},
		{"todos", `%`, "title", js(`%`)},
		{"todos", `_`, "title", js(`_`)},
		{"todos", `*`, "title", js(`*`)},
		{"todos", `' OR ''='`, "title", js(`' OR ''='`)},
		{"todos", `1; SELECT * FROM verdicts`, "title", js(`"; DELETE FROM records WHERE 1=1; --`)},
		{"todos", `\u0000 not an escape`, "title", `"\u0000 and \" and \\ and \ud800 unpaired in a value"`},
		{"todos", "ünïcødé 😀", "title", js("ünïcødé 😀")},
		{"todos", `<script>alert(1)</script>`, "title", js(`<b>&amp;</b>`)},
		{"todos", strings.Repeat("x", protocol.MaxIDBytes), "title", js("the longest id")},
		{"records", "sqlite_master", "sqlite_master", `"table"`},
		{"verdicts", "user_id", "user_id", js(userB)},
		{"sqlite_master", "1", "select", `{"where":"1=1","or":[1,"'"]}`},
		{"todos", "numbers", "huge", `1e400`},
		{"todos", "numbers", "tiny", `-1E-400`},
		{"todos", "numbers", "negzero", `-0`},
		{"todos", "numbers", "long", `123456789012345678901234567890.123456789012345678901234567890`},
		{"todos", "numbers", "int64max", `9223372036854775808`},
		{"todos", "deepest", "v", nest(protocol.MaxJSONDepth, `"leaf"`)},
		{"todos", "dupinvalue", "obj", `{"a":1,"a":2}`},
	}
	var muts []string
	for i, r := range recs {
		mid := js(fmt.Sprintf("');DROP/**/TABLE/**/records;--%d", i))
		muts = append(muts, rawMut(mid, js(r.coll), js(r.id), "patch", `{`+js(r.field)+`:`+r.value+`}`))
	}
	// The id "😀" also arrives as a surrogate pair escape, which is valid.
	muts = append(muts, rawMut(js(newMID()), `"todos"`, `"\ud83d\ude00"`, "patch", `{"title":"pair"}`))
	recs = append(recs, rec{"todos", "😀", "title", `"pair"`})
	resp := s.pushRaw(tokA, rawBatch(muts...))
	if resp.status != http.StatusOK {
		t.Fatalf("%d %s", resp.status, resp.body)
	}
	var out protocol.PushResponse
	decodeStrict(t, resp.body, &out)
	for i, r := range out.Results {
		if r.Status != protocol.StatusApplied {
			t.Errorf("mutation %d: %+v", i, r)
		}
	}
	if want := fmt.Sprintf("');DROP/**/TABLE/**/records;--%d", 0); out.Results[0].MutationID != want {
		t.Errorf("mutation id came back as %q", out.Results[0].MutationID)
	}
	all, _ := s.pullAll(tokA, 0)
	for _, r := range recs {
		got, ok := all[r.coll+"/"+r.id]
		if !ok {
			t.Errorf("%s/%q: not pulled", r.coll, r.id)
			continue
		}
		if got.Collection != r.coll || got.ID != r.id {
			t.Errorf("pulled as %q/%q, want %q/%q", got.Collection, got.ID, r.coll, r.id)
		}
		if v := value(&got, r.field); v != r.value {
			t.Errorf("%s/%q field %s: pulled %s, want %s", r.coll, r.id, r.field, v, r.value)
		}
	}
	// Every record is distinct: no pattern matched another id.
	if len(all) != 2+len(recs)-4 { // 2 seeded; "numbers" holds 5 of the fields
		t.Errorf("pulled %d records", len(all))
	}
	// The same strings as user ids: each user sees only its own records.
	for _, user := range []string{"'); DROP TABLE records;--", "%", "_", `" OR 1=1`} {
		tok := "tok-" + user
		s2 := newTestServer(t, func(o *Options) { o.Auth = Tokens{tokA: userA, tok: user} }, nil)
		wantStatuses(t, s2.push(tokA, "ca", putM(t, "todos", "t1", hlc(baseWall, 0, "ca"), "title", "alice's")), "applied")
		aBefore, _ := s2.pullAll(tokA, 0)
		if got, _ := s2.pullAll(tok, 0); len(got) != 0 {
			t.Errorf("user %q pulled %v", user, got)
		}
		wantStatuses(t, s2.push(tok, "cx", putM(t, "todos", "t1", hlc(baseWall+1, 0, "cx"), "title", "mine")), "applied")
		if got, _ := s2.pullAll(tokA, 0); !reflect.DeepEqual(got, aBefore) {
			t.Errorf("user %q changed alice's data: %v", user, got)
		}
		if got, _ := s2.pullAll(tok, 0); len(got) != 1 || value(ptr(got["todos/t1"]), "title") != `"mine"` {
			t.Errorf("user %q pulled %v", user, got)
		}
	}
}

// Another user's ids, beyond TestUsersAreIsolated: a mutation id that Alice
// got rejected is Bob's own when he uses it (he neither gets her rejection
// nor its message), and Alice's cursors show Bob nothing of hers.
func TestHostileOtherUsersIDs(t *testing.T) {
	s, _, _ := newHostileServer(t)
	bad := putM(t, "1bad", "t1", hlc(baseWall, 5, "ca"), "title", "alice's secret reason")
	wantStatuses(t, s.push(tokA, "ca", bad), "rejected")
	aliceBefore, aliceCursor := s.pullAll(tokA, 0)

	// Bob sends Alice's mutation id on Alice's record (collection and id),
	// as a patch, a delete and a put.
	reuse := putM(t, "todos", "t1", hlc(baseWall+100, 0, "cb"), "title", "bob was here")
	reuse.MutationID = bad.MutationID
	res := s.push(tokB, "cb", reuse,
		patchM(t, "todos", "t1", hlc(baseWall+101, 0, "cb"), "n", 99),
		deleteM("notes", "'); DROP TABLE records;--", hlc(baseWall+102, 0, "cb")),
	)
	wantStatuses(t, res, "applied", "applied", "applied")
	if r := res.Results[0].Record; value(r, "n") != "" || value(r, "title") != `"bob was here"` {
		t.Errorf("bob's record shows alice's fields: %+v", r)
	}
	if r := res.Results[2].Record; len(r.Fields) != 1 {
		t.Errorf("bob's delete of alice's id shows her fields: %+v", r)
	}
	// Bob pulls with Alice's cursor: only his own data (or a clear 400
	// when the cursor is past his newest change).
	bob, _ := s.pullAll(tokB, 0)
	resp := s.do(request{method: http.MethodGet, path: protocol.PathPull + "?cursor=" + aliceCursor, token: tokB})
	if resp.status == http.StatusOK {
		var p protocol.PullResponse
		decodeStrict(t, resp.body, &p)
		for _, r := range p.Changes {
			if _, mine := bob[r.Collection+"/"+r.ID]; !mine || value(&r, "title") == `"alice's"` {
				t.Errorf("bob pulled %+v with alice's cursor", r)
			}
		}
	} else {
		wantError(t, resp, http.StatusBadRequest, protocol.CodeValidation, "cursor")
	}
	if strings.Contains(string(resp.body), "alice") {
		t.Errorf("bob's pull shows alice's data: %s", resp.body)
	}
	// Alice's data and her verdict are unchanged.
	if got, _ := s.pullAll(tokA, 0); !reflect.DeepEqual(got, aliceBefore) {
		t.Errorf("alice's records changed:\n%+v\n%+v", got, aliceBefore)
	}
	again := s.push(tokA, "ca", bad)
	wantStatuses(t, again, "rejected")
	if st := s.stats(userA); st.Applied != 2 || st.Rejected != 1 || st.Records != 2 {
		t.Errorf("alice's stats %+v", st)
	}
	// Bob's writes do not poke Alice's event streams: covered by
	// TestEventsPokeOtherClients.
}

// rawExchange sends head and then body on a new connection to s (body
// written concurrently, its write errors ignored: the server may stop
// reading), optionally half-closes, and returns the first answer.
func (s *testServer) rawExchange(t *testing.T, head string, body []byte, halfClose bool) (*http.Response, []byte) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(30 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(conn, head); err != nil {
		t.Fatal(err)
	}
	go func() {
		_, _ = conn.Write(body)
		if halfClose {
			_ = conn.(*net.TCPConn).CloseWrite()
		}
	}()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read answer: %v", err)
	}
	return resp, b
}

// Bodies whose framing lies: the server reads what the framing says, never
// past the limit, answers clearly, and stays up.
func TestHostileBodyFraming(t *testing.T) {
	s, _, _ := newHostileServer(t)
	head := func(extra string) string {
		return "POST " + protocol.PathPush + " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + tokA + "\r\nContent-Type: application/json\r\n" + extra + "\r\n"
	}
	goodPut := rawBatch(rawPut(`"new"`, `,"title":"x"`))
	big := []byte(`{"clientId":"c1","mutations":[],"pad":"` + strings.Repeat("x", protocol.MaxRequestBytes) + `"}`)
	cases := []struct {
		name      string
		head      string
		body      []byte
		halfClose bool
		status    int
		code      string // "" when net/http answers before the handler (plain text)
		msg       string
	}{
		{"Content-Length smaller than the body", head("Content-Length: 20\r\n"), big, false, 400, protocol.CodeValidation, "ends in the middle"},
		{"Content-Length smaller than a good body", head("Content-Length: 20\r\n"), []byte(goodPut), false, 400, protocol.CodeValidation, "ends in the middle"},
		{"Content-Length larger than the body", head(fmt.Sprintf("Content-Length: %d\r\n", len(goodPut)+100)), []byte(goodPut), true, 408, protocol.CodeValidation, "ended before its Content-Length"},
		{"Content-Length past the limit, small body", head("Content-Length: 999999999\r\n"), []byte(goodPut), false, 413, protocol.CodeTooLarge, "larger than"},
		// net/http refuses the next four from the head and closes without
		// reading further: a body sent with them would sit unread, and the
		// kernel's RST on close may discard the answer before this test
		// reads it (seen in CI). So they send the head alone.
		{"Content-Length past int64", head("Content-Length: 99999999999999999999\r\n"), nil, false, 400, "", ""},
		{"negative Content-Length", head("Content-Length: -1\r\n"), nil, false, 400, "", ""},
		{"two different Content-Lengths", head("Content-Length: 10\r\nContent-Length: 20\r\n"), nil, false, 400, "", ""},
		{"chunked, past the limit", head("Transfer-Encoding: chunked\r\n"), chunked(big, 64<<10), false, 413, protocol.CodeTooLarge, "larger than"},
		{"chunked with a lying chunk size", head("Transfer-Encoding: chunked\r\n"), []byte("ffffffff\r\n" + goodPut + "\r\n0\r\n\r\n"), true, 408, protocol.CodeValidation, "ended in the middle"},
		// RFC 9112 6.3: Transfer-Encoding overrides Content-Length (net/http
		// reads the chunks and closes the connection afterwards).
		{"chunked and Content-Length", head("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n"), chunked([]byte(validPush), 7), false, 200, "", ""},
		{"unknown Transfer-Encoding", head("Transfer-Encoding: gzip\r\n"), nil, false, 501, "", ""},
	}
	before := s.snapshot()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, body := s.rawExchange(t, c.head, c.body, c.halfClose)
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d: %.300s", resp.StatusCode, c.status, body)
			}
			if c.code != "" {
				wantError(t, response{status: resp.StatusCode, header: resp.Header, body: body}, c.status, c.code, c.msg)
			}
			wantNoLeak(t, s, body)
			s.wantUnchanged(t, before, false)
		})
	}
}

// chunked encodes b in chunks of n bytes.
func chunked(b []byte, n int) []byte {
	var out []byte
	for len(b) > 0 {
		k := min(n, len(b))
		out = append(out, fmt.Sprintf("%x\r\n", k)...)
		out = append(out, b[:k]...)
		out = append(out, "\r\n"...)
		b = b[k:]
	}
	return append(out, "0\r\n\r\n"...)
}

// A body that stops arriving is cut off by the server's ReadTimeout and
// answered 408 (which clients retry), not 400 (which would make a client
// drop the mutations it carries); nothing is written.
func TestSlowBodyIsAnswered408(t *testing.T) {
	s := newTestServer(t, nil, func(srv *http.Server) { srv.ReadTimeout = 300 * time.Millisecond })
	before := s.snapshot()
	body := rawBatch(rawPut(`"slow"`, `,"title":"x"`))
	head := "POST " + protocol.PathPush + " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + tokA +
		"\r\nContent-Type: application/json\r\n" + fmt.Sprintf("Content-Length: %d\r\n\r\n", len(body))
	// Half the body, then nothing (the connection stays open).
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(30 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(conn, head+body[:len(body)/2]); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	wantError(t, response{status: resp.StatusCode, header: resp.Header, body: got}, http.StatusRequestTimeout, protocol.CodeValidation, "did not arrive in full")
	wantNoLeak(t, s, got)
	s.wantUnchanged(t, before, false)
}
