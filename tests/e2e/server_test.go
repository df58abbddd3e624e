package e2e

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/opfsync/opfsync/pkg/protocol"
	"github.com/opfsync/opfsync/pkg/syncserver"
)

const devToken = "dev-token"

// testServer is a real opfsync server (handler + SQLite store) listening
// on loopback. It can be stopped and started again on the same address and
// database file, like a process restart.
type testServer struct {
	t         testing.TB
	db        string
	addr      string
	authorize func(ctx context.Context, user string, m *protocol.Mutation) error
	store     *syncserver.SQLiteStore
	handler   *syncserver.Handler
	http      *http.Server
	restarts  int
}

func startServer(t testing.TB, authorize func(ctx context.Context, user string, m *protocol.Mutation) error) *testServer {
	t.Helper()
	s := &testServer{t: t, db: filepath.Join(t.TempDir(), "server.db"), addr: "127.0.0.1:0", authorize: authorize}
	s.start()
	t.Cleanup(s.stop)
	return s
}

func (s *testServer) URL() string { return "http://" + s.addr }

func (s *testServer) start() {
	s.t.Helper()
	store, err := syncserver.OpenSQLite(context.Background(), s.db)
	if err != nil {
		s.t.Fatalf("open server store: %v", err)
	}
	log := slog.New(slog.NewTextHandler(testLogWriter{s.t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	h, err := syncserver.New(syncserver.Options{Store: store, Auth: syncserver.Tokens{devToken: "dev"}, Authorize: s.authorize, Logger: log})
	if err != nil {
		s.t.Fatal(err)
	}
	// The same port again after a restart; it may take a moment to free.
	var ln net.Listener
	for deadline := time.Now().Add(5 * time.Second); ; {
		ln, err = net.Listen("tcp", s.addr)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		s.t.Fatalf("listen on %s: %v", s.addr, err)
	}
	if s.addr == "127.0.0.1:0" { // first start: the port is fixed from now on
		s.addr = ln.Addr().String()
	}
	s.store, s.handler = store, h
	s.http = &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := s.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.t.Logf("server: %v", err)
		}
	}()
}

// stop ends the server abruptly (open connections are cut) and closes the
// store.
func (s *testServer) stop() {
	if s.http == nil {
		return
	}
	s.handler.CloseStreams()
	s.http.Close()
	s.store.Close()
	s.http = nil
}

func (s *testServer) restart() {
	s.stop()
	s.restarts++
	s.start()
}

// testLogWriter sends the server's log to the test log.
type testLogWriter struct{ t testing.TB }

func (w testLogWriter) Write(p []byte) (int, error) {
	w.t.Logf("server log: %s", p)
	return len(p), nil
}
