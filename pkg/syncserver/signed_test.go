package syncserver

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

var testKey = []byte("0123456789abcdef0123456789abcdef") // 32 bytes

// fakeClock is a settable clock for SignedTokens.Now.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func newSigned(t *testing.T) (*SignedTokens, *fakeClock) {
	t.Helper()
	s, err := NewSignedTokens(testKey)
	if err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	s.Now = clock.now
	return s, clock
}

func TestSignedTokensRoundTripAndExpiry(t *testing.T) {
	s, clock := newSigned(t)
	ctx := context.Background()
	for _, user := range []string{"alice", "ünïcødé user", "'); DROP TABLE records;--", strings.Repeat("u", MaxUserIDBytes)} {
		tok, err := s.Issue(user, clock.t.Add(time.Hour))
		if err != nil {
			t.Fatalf("issue %q: %v", user, err)
		}
		if !strings.HasPrefix(tok, "opfs1.") || strings.ContainsAny(tok, " \"\\+/=") || len(tok) > maxSignedTokenBytes {
			t.Errorf("token %q is not URL- and header-safe", tok)
		}
		got, ok, err := s.Authenticate(ctx, tok)
		if err != nil || !ok || got != user {
			t.Errorf("authenticate token of %q: %q %v %v", user, got, ok, err)
		}
	}
	tok, err := s.Issue("alice", clock.t.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	clock.t = clock.t.Add(time.Hour - time.Second)
	if u, ok, err := s.Authenticate(ctx, tok); !ok || u != "alice" || err != nil {
		t.Fatalf("a second before expiry: %q %v %v", u, ok, err)
	}
	clock.t = clock.t.Add(time.Second) // exactly at the expiry: expired
	if u, ok, err := s.Authenticate(ctx, tok); ok || u != "" || !errors.Is(err, ErrTokenExpired) {
		t.Fatalf("at expiry: %q %v %v, want ErrTokenExpired", u, ok, err)
	}
	// A token signed with another key is unknown, not expired, not an error.
	other, _ := NewSignedTokens([]byte(strings.Repeat("k", 32)))
	other.Now = clock.now
	foreign, err := other.Issue("alice", clock.t.Add(-time.Hour+2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if u, ok, err := s.Authenticate(ctx, foreign); ok || u != "" || err != nil {
		t.Errorf("foreign token: %q %v %v", u, ok, err)
	}
}

func TestSignedTokensRefuseTampering(t *testing.T) {
	s, clock := newSigned(t)
	ctx := context.Background()
	tok, err := s.Issue("alice", clock.t.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 4 {
		t.Fatalf("token %q has %d parts", tok, len(parts))
	}
	bob, _ := s.Issue("bob", clock.t.Add(time.Hour))
	bobParts := strings.Split(bob, ".")
	later, _ := s.Issue("alice", clock.t.Add(100*time.Hour))
	laterParts := strings.Split(later, ".")
	flip := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	join := func(p ...string) string { return strings.Join(p, ".") }
	for name, bad := range map[string]string{
		"user swapped":         join(parts[0], bobParts[1], parts[2], parts[3]),
		"expiry extended":      join(parts[0], parts[1], laterParts[2], parts[3]),
		"expiry edited":        join(parts[0], parts[1], parts[2]+"0", parts[3]),
		"signature flipped":    join(parts[0], parts[1], parts[2], flip(parts[3], 5)),
		"signature last char":  join(parts[0], parts[1], parts[2], flip(parts[3], len(parts[3])-1)),
		"signature cut":        join(parts[0], parts[1], parts[2], parts[3][:20]),
		"signature padded":     tok + "=",
		"no signature":         join(parts[0], parts[1], parts[2]),
		"empty signature":      join(parts[0], parts[1], parts[2], ""),
		"other version":        "opfs2" + strings.TrimPrefix(tok, "opfs1"),
		"extra part":           join(parts[0], parts[1], parts[2], "x", parts[3]),
		"prefix only":          "opfs1.",
		"dots":                 "opfs1....",
		"garbage":              "not a token at all",
		"huge":                 "opfs1." + strings.Repeat("A", 1<<20),
		"space inside":         join(parts[0], parts[1]+" ", parts[2], parts[3]),
		"invalid utf-8":        join(parts[0], parts[1]+"\xff", parts[2], parts[3]),
		"standard base64 user": join(parts[0], parts[1]+"==", parts[2], parts[3]),
	} {
		if u, ok, err := s.Authenticate(ctx, bad); ok || u != "" || err != nil {
			t.Errorf("%s (%.60q): %q %v %v, want unknown", name, bad, u, ok, err)
		}
	}
	// Tampering with an expired token is still just unknown: the expiry is
	// only believed once the signature is.
	clock.t = clock.t.Add(2 * time.Hour)
	if _, ok, err := s.Authenticate(ctx, join(parts[0], bobParts[1], parts[2], parts[3])); ok || err != nil {
		t.Errorf("tampered expired token: %v %v, want unknown", ok, err)
	}
}

func TestSignedTokensRefuseBadInput(t *testing.T) {
	if _, err := NewSignedTokens(make([]byte, MinSigningKeyBytes-1)); err == nil || !strings.Contains(err.Error(), "at least 32") {
		t.Errorf("31-byte key: %v", err)
	}
	key := []byte(strings.Repeat("k", 32))
	s, err := NewSignedTokens(key)
	if err != nil {
		t.Fatal(err)
	}
	key[0] = 'x' // the caller's slice is copied
	if string(s.Key) != strings.Repeat("k", 32) {
		t.Error("NewSignedTokens kept the caller's slice")
	}
	var zero SignedTokens
	if _, err := zero.Issue("alice", time.Now().Add(time.Hour)); err == nil {
		t.Error("the zero SignedTokens issued a token")
	}
	if _, _, err := zero.Authenticate(context.Background(), "opfs1.x.1.y"); err == nil {
		t.Error("the zero SignedTokens authenticated without a key")
	}
	now := time.Now()
	for name, c := range map[string]struct {
		user string
		exp  time.Time
	}{
		"empty user":         {"", now.Add(time.Hour)},
		"long user":          {strings.Repeat("u", MaxUserIDBytes+1), now.Add(time.Hour)},
		"control char":       {"a\nb", now.Add(time.Hour)},
		"invalid utf-8":      {"a\xffb", now.Add(time.Hour)},
		"past expiry":        {"alice", now.Add(-time.Second)},
		"expiry is now":      {"alice", now},
		"rounds down to now": {"alice", now.Add(10 * time.Millisecond).Truncate(time.Second)},
		"zero expiry":        {"alice", time.Time{}},
	} {
		if tok, err := s.Issue(c.user, c.exp); err == nil {
			t.Errorf("%s: issued %q", name, tok)
		}
	}
}

func TestTokensValidateUserIDs(t *testing.T) {
	for name, toks := range map[string]Tokens{
		"control char":  {"t": "a\tb"},
		"invalid utf-8": {"t": "\xff"},
		"too long":      {"t": strings.Repeat("u", MaxUserIDBytes+1)},
	} {
		if err := toks.Validate(); err == nil {
			t.Errorf("%s: valid", name)
		}
	}
	if err := (Tokens{"t": "'); DROP TABLE records;--", "u": "ünïcødé"}).Validate(); err != nil {
		t.Errorf("SQL-looking and non-ASCII user ids: %v", err)
	}
}

// stubAuth answers every token the same way.
type stubAuth struct {
	user string
	ok   bool
	err  error
}

func (a stubAuth) Authenticate(context.Context, string) (string, bool, error) {
	return a.user, a.ok, a.err
}

func TestAnyOf(t *testing.T) {
	ctx := context.Background()
	down := errors.New("down")
	known := stubAuth{user: "u", ok: true}
	unknown := stubAuth{}
	expired := stubAuth{err: ErrTokenExpired}
	failing := stubAuth{err: down}
	for name, c := range map[string]struct {
		auths []Authenticator
		user  string
		err   error
	}{
		"none":                 {nil, "", nil},
		"nil skipped":          {[]Authenticator{nil, known}, "u", nil},
		"first known wins":     {[]Authenticator{unknown, known, stubAuth{user: "v", ok: true}}, "u", nil},
		"known beats failure":  {[]Authenticator{failing, known}, "u", nil},
		"known beats expired":  {[]Authenticator{expired, known}, "u", nil},
		"all unknown":          {[]Authenticator{unknown, unknown}, "", nil},
		"expired":              {[]Authenticator{unknown, expired}, "", ErrTokenExpired},
		"failure wins":         {[]Authenticator{expired, failing}, "", down},
		"empty user is not ok": {[]Authenticator{stubAuth{ok: true}}, "", nil},
	} {
		user, ok, err := AnyOf(c.auths...).Authenticate(ctx, "t")
		if user != c.user || ok != (c.user != "") || !errors.Is(err, c.err) || (c.err == nil) != (err == nil) {
			t.Errorf("%s: %q %v %v, want %q %v", name, user, ok, err, c.user, c.err)
		}
	}
	// Static and signed tokens together.
	s, clock := newSigned(t)
	tok, _ := s.Issue("carol", clock.t.Add(time.Minute))
	both := AnyOf(Tokens{"static": "dave"}, s)
	for tk, want := range map[string]string{"static": "dave", tok: "carol", "nope": ""} {
		if u, _, err := both.Authenticate(ctx, tk); u != want || err != nil {
			t.Errorf("token %q: %q %v, want %q", tk, u, err, want)
		}
	}
	clock.t = clock.t.Add(time.Hour)
	if _, _, err := both.Authenticate(ctx, tok); !errors.Is(err, ErrTokenExpired) {
		t.Errorf("expired signed token through AnyOf: %v", err)
	}
}
