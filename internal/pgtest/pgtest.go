// Package pgtest runs a throwaway PostgreSQL server for tests: a fresh
// cluster (initdb) in a temporary directory, listening on a free loopback
// port, stopped and deleted when the test binary ends. Each test gets its
// own empty database on it. It needs Debian's postgresql package (initdb
// and postgres on PATH or under /usr/lib/postgresql/*/bin); without it a
// test fails with a message saying so, it is never skipped. Run as root (as
// in CI), the server runs as the postgres user, since PostgreSQL refuses to
// run as root.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Server is a running throwaway PostgreSQL cluster.
type Server struct {
	dir  string
	port int
	cmd  *exec.Cmd
	done chan struct{}
	log  string // the server's log file
}

var (
	shared    *Server
	sharedErr error
	once      sync.Once
	dbSerial  atomic.Int64
)

// Options are the settings of a cluster that StartWith starts.
type Options struct {
	// Fsync runs PostgreSQL with fsync on (its own default), so that a
	// commit waits for its WAL to reach the disk, as a production server
	// does. Off by default: test clusters are thrown away, and the
	// durability under test is opfsync's, not PostgreSQL's.
	Fsync bool
}

// Start starts a new cluster with the default Options (fsync off). Stop it
// with Stop.
func Start() (*Server, error) { return StartWith(Options{}) }

// StartWith starts a new cluster with the given options. Stop it with Stop.
func StartWith(o Options) (*Server, error) {
	bin, err := binDir()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "opfsync-pg-")
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	s := &Server{dir: dir, done: make(chan struct{}), log: filepath.Join(dir, "server.log")}
	data := filepath.Join(dir, "data")
	asUser, err := runAs(dir)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	initdb := command(asUser, filepath.Join(bin, "initdb"), "-D", data, "-U", "opfsync", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync")
	if out, err := initdb.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("pgtest: initdb: %v\n%s", err, out)
	}
	if s.port, err = freePort(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	logf, err := os.Create(s.log)
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	fsync := "off"
	if o.Fsync {
		fsync = "on"
	}
	s.cmd = command(asUser, filepath.Join(bin, "postgres"), "-D", data, "-k", dir, "-h", "127.0.0.1",
		"-p", strconv.Itoa(s.port), "-c", "fsync="+fsync, "-c", "max_connections=200", "-c", "shared_buffers=32MB")
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	if err := s.cmd.Start(); err != nil {
		logf.Close()
		os.RemoveAll(dir)
		return nil, fmt.Errorf("pgtest: start postgres: %w", err)
	}
	go func() { s.cmd.Wait(); logf.Close(); close(s.done) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := pgx.Connect(context.Background(), s.URL("postgres"))
		if err == nil {
			conn.Close(context.Background())
			return s, nil
		}
		select {
		case <-s.done:
			logText, _ := os.ReadFile(s.log)
			os.RemoveAll(dir)
			return nil, fmt.Errorf("pgtest: postgres exited at start:\n%s", logText)
		default:
		}
		if time.Now().After(deadline) {
			s.Stop()
			return nil, fmt.Errorf("pgtest: postgres did not accept connections within 30 s: %w", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// URL is the connection URL of database db on the server.
func (s *Server) URL(db string) string {
	return fmt.Sprintf("postgres://opfsync@127.0.0.1:%d/%s?sslmode=disable", s.port, db)
}

// Pid is the process id of the postmaster (the backends are its children).
func (s *Server) Pid() int { return s.cmd.Process.Pid }

// LogPath is the server's log file (deleted by Stop).
func (s *Server) LogPath() string { return s.log }

// CreateDatabase creates the empty database name (a plain SQL identifier:
// letters, digits, underscores) and returns its URL.
func (s *Server) CreateDatabase(ctx context.Context, name string) (string, error) {
	if !plainIdentifier(name) {
		return "", fmt.Errorf("pgtest: database name %q: want lower-case letters, digits and underscores, not starting with a digit", name)
	}
	conn, err := pgx.Connect(ctx, s.URL("postgres"))
	if err != nil {
		return "", fmt.Errorf("pgtest: connect: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", fmt.Errorf("pgtest: create database %s: %w", name, err)
	}
	return s.URL(name), nil
}

// plainIdentifier reports whether name needs no quoting in SQL.
func plainIdentifier(name string) bool {
	if name == "" || len(name) > 63 || (name[0] >= '0' && name[0] <= '9') {
		return false
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_') {
			return false
		}
	}
	return true
}

// Stop shuts the server down (fast shutdown) and deletes its directory.
func (s *Server) Stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-s.done:
		case <-time.After(20 * time.Second):
			s.cmd.Process.Kill()
			<-s.done
		}
	}
	os.RemoveAll(s.dir)
}

// Database returns the URL of a new, empty database on the test binary's
// shared cluster (started on first use, stopped by Main). It fails t when
// PostgreSQL cannot run here.
func Database(t testing.TB) string {
	t.Helper()
	once.Do(func() { shared, sharedErr = Start() })
	if sharedErr != nil {
		t.Fatal(sharedErr)
	}
	url, err := shared.CreateDatabase(context.Background(), fmt.Sprintf("t%d_%d", os.Getpid(), dbSerial.Add(1)))
	if err != nil {
		t.Fatal(err)
	}
	return url
}

// Main runs a test binary's tests (call it from TestMain) and stops the
// shared cluster afterwards.
func Main(m *testing.M) int {
	code := m.Run()
	if shared != nil {
		shared.Stop()
	}
	return code
}

// binDir finds the directory of initdb and postgres.
func binDir() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		if _, err := exec.LookPath("postgres"); err == nil {
			return filepath.Dir(p), nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "postgres")); err == nil {
			return d, nil
		}
	}
	return "", errors.New("pgtest: PostgreSQL is not installed (no initdb/postgres on PATH or in /usr/lib/postgresql/*/bin): apt-get install -y postgresql (.ci/run does)")
}

func version(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

// runAs returns the user the server must run as: nil for the current user,
// or the postgres user when running as root (dir is given to it).
func runAs(dir string) (*user.User, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("pgtest: running as root, and there is no postgres user to run PostgreSQL as: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(dir, uid, gid); err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	return u, nil
}

// command runs name as u (nil: the current user).
func command(u *user.User, name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.SysProcAttr = processAttrs(u)
	if u != nil {
		cmd.Env = append(os.Environ(), "HOME="+u.HomeDir)
	}
	cmd.Dir = os.TempDir()
	return cmd
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgtest: find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
