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

// TestMain removes the built server binary after the package's tests.
func TestMain(m *testing.M) {
	code := m.Run()
	if serverBin != "" {
		os.RemoveAll(filepath.Dir(serverBin))
	}
	os.Exit(code)
}

// processServer is the opfsync-server binary running as its own process on
// a fixed loopback port and database file, so it can be SIGKILLed and
// started again at the same URL, as a crashing host would.
type processServer struct {
	t        testing.TB
	bin      string
	db       string
	log      string
	addr     string
	proc     *serverproc.Proc
	starts   int
	problems []string // the WARN and ERROR lines of every run
}

func startProcessServer(t testing.TB) *processServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	dir := t.TempDir()
	s := &processServer{t: t, bin: buildServerBinary(t), db: filepath.Join(dir, "server.db"), log: filepath.Join(dir, "server.log"), addr: addr}
	s.start()
	t.Cleanup(func() {
		s.kill()
		for _, line := range s.problems {
			t.Logf("server: %s", line)
		}
	})
	return s
}

func (s *processServer) URL() string { return "http://" + s.addr }

// start runs the binary until it listens (the port may take a moment to be
// free again after a kill).
func (s *processServer) start() {
	s.t.Helper()
	for attempt := 0; ; attempt++ {
		p, err := serverproc.Start(context.Background(), s.bin, s.log, "-addr", s.addr, "-db", s.db, "-token", devToken)
		if err == nil {
			s.proc = p
			s.starts++
			return
		}
		if attempt == 50 {
			s.t.Fatalf("the server would not start again on %s: %v", s.addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

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
