package main

import (
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/opfsync/opfsync/internal/pgtest"
	"github.com/opfsync/opfsync/pkg/protocol"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func TestParseFlagsPostgres(t *testing.T) {
	t.Setenv(postgresEnv, "")
	c, err := parseFlags([]string{"-postgres", "postgres://h/db"}, io.Discard)
	if err != nil || c.postgres != "postgres://h/db" {
		t.Fatalf("%+v %v", c, err)
	}
	t.Setenv(postgresEnv, "postgres://from-env/db")
	if c, err = parseFlags(nil, io.Discard); err != nil || c.postgres != "postgres://from-env/db" {
		t.Fatalf("from %s: %+v %v", postgresEnv, c, err)
	}
	if c, err = parseFlags([]string{"-postgres", "postgres://flag/db"}, io.Discard); err != nil || c.postgres != "postgres://flag/db" {
		t.Fatalf("the flag must win over the environment: %+v %v", c, err)
	}
	if _, err = parseFlags([]string{"-db", "x.db"}, io.Discard); err == nil || !strings.Contains(err.Error(), "pick one") {
		t.Fatalf("-db with %s set: %v", postgresEnv, err)
	}
}

// TestServerRunsOnPostgres starts two server processes on one PostgreSQL
// database — one given -postgres, one OPFSYNC_POSTGRES_URL — and checks
// that a push through one is pulled through the other, and that the log
// names the database without its password.
func TestServerRunsOnPostgres(t *testing.T) {
	bin := buildServer(t)
	url := strings.Replace(pgtest.Database(t), "opfsync@", "opfsync:pw-not-for-logs@", 1)
	_, urlA, _, logA := startServerCmd(t, exec.Command(bin, "-addr", "127.0.0.1:0", "-postgres", url, "-token", "tok"))
	cmdB := exec.Command(bin, "-addr", "127.0.0.1:0", "-token", "tok")
	cmdB.Env = append(os.Environ(), postgresEnv+"="+url)
	_, urlB, _, _ := startServerCmd(t, cmdB)

	body := `{"clientId":"c1","mutations":[{"mutationId":"m1","collection":"todos","id":"t1","op":"put",` +
		`"hlc":"` + protocol.HLC{Wall: time.Now().UnixMilli(), Node: "c1"}.String() + `","origin":"user","fields":{"_deleted":false,"title":"from A"}}]}`
	req, _ := http.NewRequest(http.MethodPost, urlA+protocol.PathPush, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer tok")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(out), `"applied"`) {
		t.Fatalf("push through A: %d %s", resp.StatusCode, out)
	}
	if resp, out := get(t, urlB+protocol.PathPull, "tok"); resp.StatusCode != 200 || !strings.Contains(string(out), "from A") {
		t.Fatalf("pull through B: %d %s", resp.StatusCode, out)
	}
	var ready string
	for _, line := range logA {
		if strings.Contains(line, "pw-not-for-logs") {
			t.Errorf("the log shows the password: %s", line)
		}
		if strings.Contains(line, "opfsync-server ready") {
			ready = line
		}
	}
	if !strings.Contains(ready, `store="postgres 127.0.0.1:`) {
		t.Errorf("ready line %q does not name the PostgreSQL store", ready)
	}

	// A database that cannot be reached: exit 1 with a clear error, quickly.
	bad := url[:strings.LastIndex(url, ":")] + ":1/x?sslmode=disable"
	start := time.Now()
	msg, err := exec.Command(bin, "-addr", "127.0.0.1:0", "-postgres", bad, "-token", "tok").CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(string(msg), "connect") || strings.Contains(string(msg), "pw-not-for-logs") {
		t.Fatalf("unreachable database: %v\n%s", err, msg)
	}
	t.Logf("unreachable database refused in %v", time.Since(start).Round(time.Millisecond))
}

// TestCopyToPostgresCommand moves a SQLite server's data to PostgreSQL
// with the binary, then serves it from there.
func TestCopyToPostgresCommand(t *testing.T) {
	bin := buildServer(t)
	db := t.TempDir() + "/old.db"
	cmd, url, _ := startServer(t, bin, "-addr", "127.0.0.1:0", "-db", db, "-token", "tok")
	body := `{"clientId":"c1","mutations":[{"mutationId":"m1","collection":"todos","id":"t1","op":"put",` +
		`"hlc":"` + protocol.HLC{Wall: time.Now().UnixMilli(), Node: "c1"}.String() + `","origin":"user","fields":{"_deleted":false,"title":"moved"}}]}`
	req, _ := http.NewRequest(http.MethodPost, url+protocol.PathPush, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer tok")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("push: %v %v", resp, err)
	}
	resp.Body.Close()
	_ = cmd.Process.Signal(os.Interrupt)
	_ = cmd.Wait()

	pg := pgtest.Database(t)
	if out, err := exec.Command(bin, "copy-to-postgres", "-db", db).CombinedOutput(); err == nil || !strings.Contains(string(out), "required") {
		t.Fatalf("without -postgres: %v %s", err, out)
	}
	out, err := exec.Command(bin, "copy-to-postgres", "-db", db, "-postgres", pg).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "1 records, 1 applied") {
		t.Fatalf("copy: %v %s", err, out)
	}
	out, err = exec.Command(bin, "copy-to-postgres", "-db", db, "-postgres", pg).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "already holds opfsync data") {
		t.Fatalf("second copy: %v %s", err, out)
	}
	_, url, _ = startServer(t, bin, "-addr", "127.0.0.1:0", "-postgres", pg, "-token", "tok")
	if resp, out := get(t, url+protocol.PathPull, "tok"); resp.StatusCode != 200 || !strings.Contains(string(out), "moved") {
		t.Fatalf("pull after the move: %d %s", resp.StatusCode, out)
	}
}
