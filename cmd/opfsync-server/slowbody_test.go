package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opfsync/opfsync/pkg/protocol"
	"github.com/opfsync/opfsync/pkg/syncserver"
)

// A client that sends its headers at once and then trickles the body is
// cut off by the server's ReadTimeout (here shortened to a second; the
// production default is 60 s): it gets a 408 (which sync clients retry) or
// a closed connection long before its body is done, nothing is written,
// and the server goes on serving.
func TestSlowBodyIsCutOff(t *testing.T) {
	dir := t.TempDir()
	cfg := config{db: filepath.Join(dir, "s.db"), timeouts: timeouts{read: time.Second}}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, store, err := setup(context.Background(), cfg, syncserver.Tokens{"tok": "ann"}, log)
	if err != nil {
		t.Fatal(err)
	}
	if srv.ReadTimeout != time.Second || srv.ReadHeaderTimeout != defaultTimeouts.readHeader || srv.WriteTimeout != defaultTimeouts.write {
		t.Fatalf("timeouts %v %v %v", srv.ReadTimeout, srv.ReadHeaderTimeout, srv.WriteTimeout)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close(); store.Close() })
	url := "http://" + ln.Addr().String()

	// A good body, sent one byte every 50 ms: 10+ s in all, ten times the
	// read timeout.
	body := `{"clientId":"c1","mutations":[{"mutationId":"m1","collection":"todos","id":"slow","op":"put","hlc":"1700000000000-000000-c1","origin":"user","fields":{"_deleted":false,"title":"` +
		strings.Repeat("x", 100) + `"}}]}`
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetReadDeadline(time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer tok\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", protocol.PathPush, len(body))
	var sent atomic.Int64
	go func() {
		for i := 0; i < len(body); i++ {
			if _, err := conn.Write([]byte{body[i]}); err != nil {
				return
			}
			sent.Add(1)
			time.Sleep(50 * time.Millisecond)
		}
	}()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err == nil {
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(got), "did not arrive in full") {
			t.Errorf("answer %d %s, want 408", resp.StatusCode, got)
		}
	} // else the connection was closed without an answer: cut off too
	if n := sent.Load(); n >= int64(len(body)) {
		t.Fatalf("the whole body (%d bytes) was read: the slow client was not cut off", n)
	}
	t.Logf("cut off after %d of %d body bytes", sent.Load(), len(body))

	// Nothing was written, and a normal client is served.
	st, err := store.Stats(context.Background(), "")
	if err != nil || st != (syncserver.Stats{}) {
		t.Errorf("stats %+v %v", st, err)
	}
	if resp, body := get(t, url+protocol.PathPull, "tok"); resp.StatusCode != 200 || !strings.Contains(string(body), `"changes":[]`) {
		t.Errorf("pull after: %d %s", resp.StatusCode, body)
	}
}
