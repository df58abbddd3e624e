package e2e

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
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
	t      testing.TB
	bin    string
	db     string
	addr   string
	cmd    *exec.Cmd
	exited chan struct{}
	starts int
}

func startProcessServer(t testing.TB) *processServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	s := &processServer{t: t, bin: buildServerBinary(t), db: filepath.Join(t.TempDir(), "server.db"), addr: addr}
	s.start()
	t.Cleanup(func() { s.kill() })
	return s
}

func (s *processServer) URL() string { return "http://" + s.addr }

// start runs the binary and waits for its "listening" log line (the port
// may take a moment to be free again after a kill).
func (s *processServer) start() {
	s.t.Helper()
	for attempt := 0; ; attempt++ {
		cmd := exec.Command(s.bin, "-addr", s.addr, "-db", s.db, "-token", devToken)
		stderr, err := cmd.StderrPipe()
		if err != nil {
			s.t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			s.t.Fatal(err)
		}
		listening := make(chan bool, 1)
		exited := make(chan struct{})
		go func() {
			sc := bufio.NewScanner(stderr)
			said := false
			for sc.Scan() {
				line := sc.Text()
				if !said && strings.Contains(line, "opfsync-server listening") {
					said = true
					listening <- true
				}
				if strings.Contains(line, "level=ERROR") {
					s.t.Logf("server: %s", line)
				}
			}
			if !said {
				listening <- false
			}
			cmd.Wait()
			close(exited)
		}()
		select {
		case ok := <-listening:
			if ok {
				s.cmd, s.exited = cmd, exited
				s.starts++
				return
			}
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			s.t.Fatal("the server did not say it was listening within 15 s")
		}
		<-exited
		if attempt == 50 {
			s.t.Fatalf("the server would not start again on %s", s.addr)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// kill SIGKILLs the server: no shutdown, no flush, open transactions cut.
func (s *processServer) kill() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.exited
	s.cmd = nil
}

// stop ends the server gracefully (SIGTERM) and waits for it to exit.
func (s *processServer) stop() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		s.t.Error("the server did not exit within 30 s of SIGTERM")
		s.kill()
	}
	s.cmd = nil
}
