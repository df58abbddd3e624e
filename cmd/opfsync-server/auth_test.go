package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opfsync/opfsync/pkg/protocol"
	"github.com/opfsync/opfsync/pkg/syncserver"
)

const testKeyHex = "8f1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9" // 64 bytes of text

// writeFile writes body to a new file in dir and returns its path.
func writeFile(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestParseFlagsSigningKey(t *testing.T) {
	c, err := parseFlags([]string{"-signing-key-file", "/k", "-token", "x"}, io.Discard)
	if err != nil || c.signingKeyFile != "/k" || c.token != "x" || c.timeouts != (timeouts{}) {
		t.Fatalf("%+v %v", c, err)
	}
	var usage bytes.Buffer
	if _, err := parseFlags([]string{"-h"}, &usage); !errors.Is(err, flag.ErrHelp) || !strings.Contains(usage.String(), "issue-token") || !strings.Contains(usage.String(), "-signing-key-file") {
		t.Errorf("usage %v:\n%s", err, usage.String())
	}
	// Zero timeouts are the production defaults.
	if got := (timeouts{}).withDefaults(); got != defaultTimeouts || defaultTimeouts.readHeader != 10*time.Second || defaultTimeouts.read != 60*time.Second ||
		defaultTimeouts.write != 60*time.Second || defaultTimeouts.idle != 120*time.Second {
		t.Errorf("defaults %+v", got)
	}
	if got := (timeouts{read: time.Second}).withDefaults(); got.read != time.Second || got.readHeader != defaultTimeouts.readHeader {
		t.Errorf("partial %+v", got)
	}
}

func TestParseIssueFlags(t *testing.T) {
	c, err := parseIssueFlags([]string{"-signing-key-file", "k", "-user", "ann", "-ttl", "90m"}, io.Discard)
	if err != nil || c != (issueConfig{signingKeyFile: "k", user: "ann", ttl: 90 * time.Minute}) {
		t.Fatalf("%+v %v", c, err)
	}
	if c, err := parseIssueFlags([]string{"-signing-key-file", "k", "-user", "ann"}, io.Discard); err != nil || c.ttl != 24*time.Hour {
		t.Errorf("default ttl: %+v %v", c, err)
	}
	for name, c := range map[string]struct {
		args []string
		msg  string
	}{
		"no key":       {[]string{"-user", "ann"}, "-signing-key-file is required"},
		"no user":      {[]string{"-signing-key-file", "k"}, "-user is required"},
		"zero ttl":     {[]string{"-signing-key-file", "k", "-user", "a", "-ttl", "0s"}, "at least 1s"},
		"negative ttl": {[]string{"-signing-key-file", "k", "-user", "a", "-ttl", "-1h"}, "at least 1s"},
		"bad ttl":      {[]string{"-signing-key-file", "k", "-user", "a", "-ttl", "tomorrow"}, "invalid value"},
		"stray":        {[]string{"-signing-key-file", "k", "-user", "a", "x"}, "unexpected argument"},
		"unknown flag": {[]string{"-signing-key-file", "k", "-user", "a", "-token", "t"}, "not defined"},
	} {
		var out bytes.Buffer
		_, err := parseIssueFlags(c.args, &out)
		if err == nil || !strings.Contains(err.Error()+out.String(), c.msg) {
			t.Errorf("%s: %v %s, want %q", name, err, out.String(), c.msg)
		}
	}
}

func TestLoadAuth(t *testing.T) {
	dir := t.TempDir()
	key := writeFile(t, dir, "key", testKeyHex+"\n")
	short := writeFile(t, dir, "short", strings.Repeat("k", 31)+"\n\n")
	blank := writeFile(t, dir, "blank", " \n")
	tokens := writeFile(t, dir, "tokens.json", `{"tok-ann": "ann"}`)
	signer, err := syncserver.NewSignedTokens([]byte(testKeyHex))
	if err != nil {
		t.Fatal(err)
	}
	bobTok, _ := signer.Issue("bob", time.Now().Add(time.Hour))
	ctx := context.Background()

	for name, c := range map[string]struct {
		cfg   config
		users map[string]string // token → user ("" = unknown)
	}{
		"signed only":       {config{signingKeyFile: key}, map[string]string{bobTok: "bob", "dev-tok": "", "tok-ann": ""}},
		"signed and -token": {config{signingKeyFile: key, token: "dev-tok"}, map[string]string{bobTok: "bob", "dev-tok": devUser}},
		"all three":         {config{signingKeyFile: key, token: "dev-tok", tokensFile: tokens}, map[string]string{bobTok: "bob", "dev-tok": devUser, "tok-ann": "ann"}},
		"static only":       {config{token: "dev-tok"}, map[string]string{bobTok: "", "dev-tok": devUser}},
	} {
		auth, _, err := loadAuth(c.cfg)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		for tok, want := range c.users {
			if user, ok, err := auth.Authenticate(ctx, tok); user != want || ok != (want != "") || err != nil {
				t.Errorf("%s: token %.20q → %q %v %v, want %q", name, tok, user, ok, err, want)
			}
		}
	}
	for name, c := range map[string]struct {
		cfg config
		msg string
	}{
		"short key":      {config{signingKeyFile: short}, "the key is 31 bytes, it must be at least 32"},
		"blank key file": {config{signingKeyFile: blank, token: "x"}, "the key is 0 bytes"},
		"missing key":    {config{signingKeyFile: filepath.Join(dir, "none")}, "-signing-key-file"},
		"nothing":        {config{}, "-signing-key-file FILE"},
		"bad tokens":     {config{signingKeyFile: key, tokensFile: writeFile(t, dir, "bad.json", `{"a": ""}`)}, "empty user"},
	} {
		if _, _, err := loadAuth(c.cfg); err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: %v, want %q", name, err, c.msg)
		}
	}
}

func TestIssueTokenCommand(t *testing.T) {
	dir := t.TempDir()
	key := writeFile(t, dir, "key", testKeyHex+"\n")
	now := time.Unix(1_800_000_000, 0)
	var stdout, stderr bytes.Buffer
	if code := issueToken([]string{"-signing-key-file", key, "-user", "ann", "-ttl", "2h"}, now, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	token := strings.TrimSuffix(stdout.String(), "\n")
	if strings.ContainsAny(token, " \n") || !strings.HasPrefix(token, "opfs1.") || stderr.Len() != 0 {
		t.Fatalf("stdout %q stderr %q", stdout.String(), stderr.String())
	}
	signed, err := loadSigningKey(key)
	if err != nil {
		t.Fatal(err)
	}
	for at, want := range map[time.Duration]string{0: "ann", 2*time.Hour - time.Second: "ann", 2 * time.Hour: ""} {
		signed.Now = func() time.Time { return now.Add(at) }
		user, _, err := signed.Authenticate(context.Background(), token)
		if user != want || (want == "") != errors.Is(err, syncserver.ErrTokenExpired) {
			t.Errorf("after %v: %q %v, want %q", at, user, err, want)
		}
	}
	for name, c := range map[string]struct {
		args []string
		msg  string
	}{
		"short key":   {[]string{"-signing-key-file", writeFile(t, dir, "short", "0123456789"), "-user", "a"}, "at least 32"},
		"missing key": {[]string{"-signing-key-file", filepath.Join(dir, "none"), "-user", "a"}, "no such file"},
		"bad user":    {[]string{"-signing-key-file", key, "-user", "a\tb"}, "control character"},
		"no user":     {[]string{"-signing-key-file", key}, "-user is required"},
	} {
		stdout.Reset()
		stderr.Reset()
		if code := issueToken(c.args, now, &stdout, &stderr); code != 2 || stdout.Len() != 0 || !strings.Contains(stderr.String(), c.msg) {
			t.Errorf("%s: exit %d, stdout %q, stderr %q, want %q", name, code, stdout.String(), stderr.String(), c.msg)
		}
	}
	stderr.Reset()
	if code := run(context.Background(), []string{"issue-token", "-h"}, &stdout, &stderr); code != 0 || !strings.Contains(stderr.String(), "usage: opfsync-server issue-token") {
		t.Errorf("issue-token -h: %d %s", code, stderr.String())
	}
}

// The binary end to end: a server started with a signing key (and a static
// token) accepts tokens minted by `opfsync-server issue-token`, tells an
// expired one apart from an unknown one, and refuses to start on a short
// key.
func TestServerAcceptsSignedTokens(t *testing.T) {
	bin := buildServer(t)
	dir := t.TempDir()
	key := writeFile(t, dir, "signing.key", testKeyHex+"\n")
	out, err := exec.Command(bin, "issue-token", "-signing-key-file", key, "-user", "ann", "-ttl", "1h").Output()
	if err != nil {
		t.Fatalf("issue-token: %v", err)
	}
	token := strings.TrimSpace(string(out))
	signer, _ := syncserver.NewSignedTokens([]byte(testKeyHex))
	signer.Now = func() time.Time { return time.Now().Add(-2 * time.Hour) }
	expired, err := signer.Issue("ann", time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}

	cmd, url, _ := startServer(t, bin, "-addr", "127.0.0.1:0", "-db", filepath.Join(dir, "s.db"), "-token", "dev-tok", "-signing-key-file", key)
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for _, tok := range []string{token, "dev-tok"} {
		if resp, body := get(t, url+protocol.PathPull, tok); resp.StatusCode != 200 {
			t.Errorf("pull with %.20s: %d %s", tok, resp.StatusCode, body)
		}
	}
	resp, body := get(t, url+protocol.PathPull, expired)
	if resp.StatusCode != 401 || !strings.Contains(string(body), "expired") ||
		resp.Header.Get("WWW-Authenticate") != `Bearer realm="opfsync", error="invalid_token", error_description="token expired"` {
		t.Errorf("expired token: %d %v %s", resp.StatusCode, resp.Header, body)
	}
	resp, body = get(t, url+protocol.PathPull, token[:len(token)-3]+"abc")
	if resp.StatusCode != 401 || !strings.Contains(string(body), "unknown bearer token") {
		t.Errorf("tampered token: %d %s", resp.StatusCode, body)
	}

	short := writeFile(t, dir, "short.key", "too-short\n")
	out, err = exec.Command(bin, "-addr", "127.0.0.1:0", "-db", filepath.Join(dir, "x.db"), "-signing-key-file", short).CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 || !strings.Contains(string(out), "must be at least 32") {
		t.Errorf("short key: %v\n%s", err, out)
	}
}
