package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/opfsync/opfsync/internal/pgtest"
	"github.com/opfsync/opfsync/internal/serverproc"
)

// The real opfsync-server binary, built once for the package's tests.
var (
	serverBinOnce sync.Once
	serverBin     string
	serverBinErr  error
)

func buildServerBinary(t testing.TB) string {
	t.Helper()
	serverBinOnce.Do(func() {
		dir, err := os.MkdirTemp("", "opfsync-e2e-bin-")
		if err != nil {
			serverBinErr = err
			return
		}
		serverBin = filepath.Join(dir, "opfsync-server")
		out, err := exec.Command("go", "build", "-o", serverBin, "github.com/opfsync/opfsync/cmd/opfsync-server").CombinedOutput()
		if err != nil {
			serverBinErr = fmt.Errorf("go build opfsync-server: %v\n%s", err, out)
		}
	})
	if serverBinErr != nil {
		t.Fatal(serverBinErr)
	}
	return serverBin
}

// TestMain stops the throwaway PostgreSQL cluster (pgtest) and removes the
// built server binary after the package's tests.
func TestMain(m *testing.M) {
	code := pgtest.Main(m)
	if serverBin != "" {
		os.RemoveAll(filepath.Dir(serverBin))
	}
	os.Exit(code)
}

// processServer is the opfsync-server binary running as its own process on
// a fixed loopback port and store (a database file, or a PostgreSQL
// database that several instances share), so it can be SIGKILLed and
// started again at the same URL, as a crashing host would.
type processServer struct {
	t     testing.TB
	bin   string
	db    string   // the SQLite file; "" on PostgreSQL
	store []string // the store's flags: -db FILE or -postgres URL
	log   string
	// movable: when the port stays taken after a kill (another socket got
	// it), start moves to a free one; only for instances behind the
	// balancer, which asks address() on every request.
	movable  bool
	mu       sync.Mutex // guards addr
	addr     string
	proc     *serverproc.Proc
	starts   int
	problems []string // the WARN and ERROR lines of every run
}

// startProcessServer runs the binary on a SQLite file of its own.
func startProcessServer(t testing.TB) *processServer {
	t.Helper()
	db := filepath.Join(t.TempDir(), "server.db")
	s := launchProcessServer(t, "-db", db)
	s.db = db
	return s
}

// startPostgresInstance runs the binary as one of the server instances that
// share the PostgreSQL database at url.
func startPostgresInstance(t testing.TB, url string) *processServer {
	t.Helper()
	s := launchProcessServer(t, "-postgres", url)
	s.movable = true
	return s
}

func launchProcessServer(t testing.TB, store ...string) *processServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	s := &processServer{t: t, bin: buildServerBinary(t), store: store, log: filepath.Join(t.TempDir(), "server.log"), addr: addr}
	s.start()
	t.Cleanup(func() {
		s.kill()
		for _, line := range s.problems {
			t.Logf("server: %s", line)
		}
	})
	return s
}

func (s *processServer) URL() string { return "http://" + s.address() }

// address is the host:port the server listens on (or will).
func (s *processServer) address() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// start runs the binary until it listens (the port may take a moment to be
// free again after a kill).
func (s *processServer) start() {
	s.t.Helper()
	for attempt := 0; ; attempt++ {
		if s.movable && attempt == 20 { // 2 s on a port another socket holds
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				s.t.Fatal(err)
			}
			s.t.Logf("port %s still taken after a restart: moving to %s", s.address(), ln.Addr())
			s.mu.Lock()
			s.addr = ln.Addr().String()
			s.mu.Unlock()
			ln.Close()
		}
		args := append([]string{"-addr", s.address(), "-token", devToken}, s.store...)
		p, err := serverproc.Start(context.Background(), s.bin, s.log, args...)
		if err == nil {
			s.proc = p
			s.starts++
			return
		}
		if attempt == 50 {
			s.t.Fatalf("the server would not start again on %s: %v", s.address(), err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// running reports whether the process is up (started and not killed or
// stopped since).
func (s *processServer) running() bool { return s.proc != nil }

// kill SIGKILLs the server: no shutdown, no flush, open transactions cut.
func (s *processServer) kill() {
	if s.proc == nil {
		return
	}
	s.proc.Kill()
	s.problems = append(s.problems, s.proc.Problems()...)
	s.proc = nil
}

// stop ends the server gracefully (SIGTERM) and waits for it to exit.
func (s *processServer) stop() {
	if s.proc == nil {
		return
	}
	if _, _, err := s.proc.Stop(30 * time.Second); err != nil {
		s.t.Error(err)
	}
	s.problems = append(s.problems, s.proc.Problems()...)
	s.proc = nil
}
