// Package serverproc runs the opfsync-server binary as a child process for
// tests and the load test: it starts it, reads the listen URL from its log,
// keeps its WARN and ERROR lines, and stops it gracefully (SIGTERM) or at
// once (SIGKILL).
package serverproc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Proc is one running opfsync-server process. Its stderr (the slog
// text log) is copied to a log file and scanned for the listen address and
// for warnings and errors.
type Proc struct {
	cmd     *exec.Cmd
	URL     string // http://127.0.0.1:port
	logPath string
	done    chan struct{} // closed when the process has exited
	exitErr error         // cmd.Wait's result, valid after done

	mu       sync.Mutex
	problems []string // log lines at level WARN or ERROR
}

// listenLine matches the server's startup line
// msg="opfsync-server listening" addr=… url=http://….
var listenLine = regexp.MustCompile(`msg="opfsync-server listening".* url=(\S+)`)

// Start runs binary with args, appending its log to logPath, and waits (up
// to 30 s) until it logs its listen address. It fails when the process
// exits before that (e.g. its port is still taken), with the log's tail.
func Start(ctx context.Context, binary, logPath string, args ...string) (*Proc, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("server log: %w", err)
	}
	cmd := exec.Command(binary, args...)
	cmd.Stdout = logFile
	stderr, err := cmd.StderrPipe()
	if err != nil {
		logFile.Close()
		return nil, fmt.Errorf("server stderr: %w", err)
	}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", binary, err)
	}
	s := &Proc{cmd: cmd, logPath: logPath, done: make(chan struct{})}
	urls := make(chan string, 1)
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		s.scanLog(stderr, logFile, urls)
	}()
	go func() {
		<-scanned // Wait closes the pipe: read it to the end first
		s.exitErr = cmd.Wait()
		logFile.Close()
		close(s.done)
	}()
	select {
	case s.URL = <-urls:
		return s, nil
	case <-s.done:
		return nil, fmt.Errorf("%s exited before listening (%v); log %s:\n%s", binary, s.exitErr, logPath, tail(logPath, 20))
	case <-time.After(30 * time.Second):
		s.Kill()
		return nil, fmt.Errorf("%s did not log its listen address within 30 s; log %s:\n%s", binary, logPath, tail(logPath, 20))
	case <-ctx.Done():
		s.Kill()
		return nil, fmt.Errorf("start server: %w", ctx.Err())
	}
}

// scanLog copies the server's log to w, sends the listen URL once, and
// keeps every WARN or ERROR line.
func (s *Proc) scanLog(r io.Reader, w io.Writer, urls chan<- string) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	sent := false
	for sc.Scan() {
		line := sc.Text()
		fmt.Fprintln(w, line)
		if !sent {
			if m := listenLine.FindStringSubmatch(line); m != nil {
				urls <- m[1]
				sent = true
			}
		}
		if strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR") {
			s.mu.Lock()
			s.problems = append(s.problems, line)
			s.mu.Unlock()
		}
	}
	io.Copy(w, r) // a line longer than the buffer: keep the rest in the log anyway
}

// Problems returns the WARN and ERROR lines the server logged so far.
func (s *Proc) Problems() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.problems...)
}

// Pid is the server's process id.
func (s *Proc) Pid() int { return s.cmd.Process.Pid }

// Stop sends SIGTERM and waits up to timeout for a graceful exit. It
// returns the exit code (0 = clean shutdown) and how long the shutdown
// took; a server that does not exit in time is killed and reported as an
// error.
func (s *Proc) Stop(timeout time.Duration) (int, time.Duration, error) {
	start := time.Now()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return -1, 0, fmt.Errorf("SIGTERM the server: %w", err)
	}
	select {
	case <-s.done:
	case <-time.After(timeout):
		s.Kill()
		return -1, time.Since(start), fmt.Errorf("the server did not exit within %s of SIGTERM (killed); log %s", timeout, s.logPath)
	}
	took := time.Since(start)
	var ee *exec.ExitError
	switch {
	case s.exitErr == nil:
		return 0, took, nil
	case errors.As(s.exitErr, &ee) && ee.Exited():
		return ee.ExitCode(), took, nil
	case errors.As(s.exitErr, &ee):
		return -1, took, fmt.Errorf("the server ended without exiting (%s) within %s of SIGTERM", ee.ProcessState, took.Round(time.Millisecond))
	default:
		return -1, took, fmt.Errorf("wait for the server: %w", s.exitErr)
	}
}

// Kill ends the process at once (SIGKILL: no shutdown, open transactions
// cut) and waits for it to be gone.
func (s *Proc) Kill() {
	_ = s.cmd.Process.Kill()
	<-s.done
}

// tail returns the last n lines of the file at path (for error messages).
func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return "(cannot read: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
