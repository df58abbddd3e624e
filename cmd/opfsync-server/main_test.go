package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/opfsync/opfsync/pkg/protocol"
)

// buildServer compiles the binary once per test into a temp dir.
func buildServer(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "opfsync-server")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// startServer runs the binary with args and returns the process, its URL
// (read from the "listening" log line) and a channel of its log lines.
func startServer(t *testing.T, bin string, args ...string) (*exec.Cmd, string, <-chan string) {
	t.Helper()
	cmd, url, lines, _ := startServerCmd(t, exec.Command(bin, args...))
	return cmd, url, lines
}

// startServerCmd is startServer for a prepared command (its environment
// set, say); it also returns the log lines up to the "listening" one.
func startServerCmd(t *testing.T, cmd *exec.Cmd) (*exec.Cmd, string, <-chan string, []string) {
	t.Helper()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	lines := make(chan string, 100)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	urlRE := regexp.MustCompile(`msg="opfsync-server listening" addr=127\.0\.0\.1:(\d+) url=(http://127\.0\.0\.1:\d+)`)
	timeout := time.After(10 * time.Second)
	var earlier []string
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("server exited before listening:\n%s", strings.Join(earlier, "\n"))
			}
			earlier = append(earlier, line)
			if m := urlRE.FindStringSubmatch(line); m != nil {
				if m[1] == "0" {
					t.Fatalf("logged port 0: %s", line)
				}
				return cmd, m[2], lines, earlier
			}
		case <-timeout:
			t.Fatal("no listening line within 10 s")
		}
	}
}

func get(t *testing.T, url, token string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}

func TestServerRunsAndShutsDownGracefully(t *testing.T) {
	bin := buildServer(t)
	dir := t.TempDir()
	static := filepath.Join(dir, "web")
	if err := os.MkdirAll(static, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{"index.html": "<h1>hi</h1>", "m.wasm": "\x00asm", "a.mjs": "export{}", "b.js": "1"} {
		if err := os.WriteFile(filepath.Join(static, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tokensFile := filepath.Join(dir, "tokens.json")
	if err := os.WriteFile(tokensFile, []byte(`{"tok-ann": "ann"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "nested", "data", "server.db")
	cmd, url, lines := startServer(t, bin, "-addr", "127.0.0.1:0", "-db", db, "-static", static, "-token", "dev-tok", "-tokens", tokensFile)

	if resp, body := get(t, url+"/healthz", ""); resp.StatusCode != 200 || string(body) != `{"status":"ok"}` {
		t.Fatalf("healthz: %d %s", resp.StatusCode, body)
	}
	for _, tok := range []string{"dev-tok", "tok-ann"} {
		if resp, body := get(t, url+protocol.PathPull, tok); resp.StatusCode != 200 {
			t.Errorf("pull with %s: %d %s", tok, resp.StatusCode, body)
		}
	}
	if resp, _ := get(t, url+protocol.PathPull, "nope"); resp.StatusCode != 401 {
		t.Errorf("unknown token: %d", resp.StatusCode)
	}
	for path, ct := range map[string]string{"/m.wasm": "application/wasm", "/a.mjs": "text/javascript; charset=utf-8", "/b.js": "text/javascript; charset=utf-8", "/": "text/html; charset=utf-8"} {
		resp, _ := get(t, url+path, "")
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != ct || resp.Header.Get("Cache-Control") != "no-cache" {
			t.Errorf("%s: %d Content-Type %q Cache-Control %q", path, resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Cache-Control"))
		}
	}
	if resp, body := get(t, url+"/sync/nope", "dev-tok"); resp.StatusCode != 404 || !strings.Contains(string(body), protocol.CodeNotFound) {
		t.Errorf("/sync/nope: %d %s", resp.StatusCode, body)
	}

	// An open event stream must not hold up the shutdown.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+protocol.PathEvents+"?clientId=c1", nil)
	req.Header.Set("Authorization", "Bearer dev-tok")
	stream, err := http.DefaultClient.Do(req)
	if err != nil || stream.StatusCode != 200 {
		t.Fatalf("events: %v %v", err, stream)
	}
	defer stream.Body.Close()
	streamEnded := make(chan struct{})
	go func() { _, _ = io.Copy(io.Discard, stream.Body); close(streamEnded) }()

	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() {
		for range lines { // drain the log so the process never blocks on it
		}
		exited <- cmd.Wait()
	}()
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("still running 10 s after SIGTERM")
	}
	t.Logf("stopped %v after SIGTERM", time.Since(start))
	select {
	case <-streamEnded:
	case <-time.After(2 * time.Second):
		t.Error("the event stream did not end")
	}
	if _, err := os.Stat(db); err != nil {
		t.Errorf("database file: %v", err)
	}
}

func TestServerRefusesToStartWithoutTokens(t *testing.T) {
	bin := buildServer(t)
	for name, c := range map[string]struct {
		args []string
		msg  string
	}{
		"no tokens":        {[]string{"-db", filepath.Join(t.TempDir(), "x.db")}, "no tokens"},
		"missing file":     {[]string{"-tokens", filepath.Join(t.TempDir(), "none.json")}, "-tokens"},
		"stray argument":   {[]string{"-token", "x", "extra"}, "unexpected argument"},
		"static not a dir": {[]string{"-token", "x", "-db", filepath.Join(t.TempDir(), "x.db"), "-static", "/nonexistent-dir"}, "-static"},
	} {
		out, err := exec.Command(bin, append(c.args, "-addr", "127.0.0.1:0")...).CombinedOutput()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() == 0 {
			t.Errorf("%s: started (%v)\n%s", name, err, out)
			continue
		}
		if !strings.Contains(string(out), c.msg) {
			t.Errorf("%s: output does not mention %q:\n%s", name, c.msg, out)
		}
	}
}

func TestLoadTokens(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.json", `{"a": "ann", "b": "bob"}`)
	toks, err := loadTokens(config{token: "dev", tokensFile: good})
	if err != nil || len(toks) != 3 || toks["dev"] != devUser || toks["b"] != "bob" {
		t.Fatalf("tokens %v %v", toks, err)
	}
	for name, c := range map[string]config{
		"not an object": {tokensFile: write("arr.json", `["a"]`)},
		"empty object":  {tokensFile: write("empty.json", `{}`)},
		"empty user":    {tokensFile: write("eu.json", `{"a": ""}`)},
		"empty token":   {tokensFile: write("et.json", `{"": "ann"}`)},
		"token clash":   {token: "a", tokensFile: good},
		"nothing":       {},
	} {
		if toks, err := loadTokens(c); err == nil {
			t.Errorf("%s: accepted %v", name, toks)
		}
	}
}

// With -verdict-retention, a verdict older than that is forgotten: a retry
// of its mutation is then decided (and applied) again instead of being
// answered as a duplicate.
func TestServerPrunesVerdictsAfterTheRetention(t *testing.T) {
	bin := buildServer(t)
	_, url, lines := startServer(t, bin, "-addr", "127.0.0.1:0", "-db", filepath.Join(t.TempDir(), "s.db"), "-token", "dev-tok", "-verdict-retention", "1s")
	stamp := protocol.HLC{Wall: time.Now().UnixMilli(), Node: "c1"}
	body := `{"clientId":"c1","mutations":[{"mutationId":"m-1","collection":"todos","id":"t1","op":"put","hlc":"` + stamp.String() +
		`","origin":"user","fields":{"_deleted":false,"title":"once"}}]}`
	push := func() string {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, url+protocol.PathPush, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer dev-tok")
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out protocol.PushResponse
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || len(out.Results) != 1 {
			t.Fatalf("push: %d %v %+v", resp.StatusCode, err, out)
		}
		return string(out.Results[0].Status)
	}
	if got := push(); got != "applied" {
		t.Fatalf("first push: %s", got)
	}
	if got := push(); got != "duplicate" {
		t.Fatalf("retry within the retention: %s", got)
	}
	deadline := time.After(10 * time.Second)
	for pruned := false; !pruned; {
		select {
		case line := <-lines:
			pruned = strings.Contains(line, `msg="pruned verdicts" removed=1`)
		case <-deadline:
			t.Fatal("no verdict pruned within 10 s")
		}
	}
	if got := push(); got != "applied" {
		t.Fatalf("retry after the verdict was pruned: %s", got)
	}
}

func TestVerdictRetentionFlag(t *testing.T) {
	for _, bad := range []string{"-1s", "500ms"} {
		if _, err := parseFlags([]string{"-token", "x", "-verdict-retention", bad}, io.Discard); err == nil || !strings.Contains(err.Error(), "at least 1s") {
			t.Errorf("-verdict-retention %s: %v", bad, err)
		}
	}
	if c, err := parseFlags([]string{"-token", "x", "-verdict-retention", "2160h"}, io.Discard); err != nil || c.verdictRetention != 2160*time.Hour {
		t.Errorf("-verdict-retention 2160h: %v %v", c.verdictRetention, err)
	}
	if c, err := parseFlags([]string{"-token", "x"}, io.Discard); err != nil || c.verdictRetention != 0 {
		t.Errorf("default: %v %v", c.verdictRetention, err)
	}
}
