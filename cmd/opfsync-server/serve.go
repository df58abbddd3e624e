package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/opfsync/opfsync/pkg/protocol"
	"github.com/opfsync/opfsync/pkg/syncserver"
)

// HTTP server limits. Event streams lift the read and write timeouts for
// themselves; everything else must finish within them.
var defaultTimeouts = timeouts{
	readHeader: 10 * time.Second,
	read:       60 * time.Second, // a full push body on a slow link
	write:      60 * time.Second,
	idle:       120 * time.Second,
}

const (
	maxHeaderBytes  = 64 << 10
	shutdownTimeout = 25 * time.Second // in-flight requests get this long to finish
)

// run is the whole program: it serves until ctx ends, then shuts down; or,
// with the first argument "issue-token", it prints a signed token to stdout.
// It returns the exit code: 0 after a clean shutdown (or a printed token),
// 2 for a bad command line or configuration, 1 for any other failure.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "issue-token" {
		return issueToken(args[1:], time.Now(), stdout, stderr)
	}
	if len(args) > 0 && args[0] == "copy-to-postgres" {
		return copyToPostgres(ctx, args[1:], stdout, stderr)
	}
	cfg, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	if err != nil {
		log.Error("bad command line", "err", err)
		return 2
	}
	auth, authText, err := loadAuth(cfg)
	if err != nil {
		log.Error("cannot start", "err", err)
		return 2
	}
	srv, store, err := setup(ctx, cfg, auth, log)
	if err != nil {
		log.Error("cannot start", "err", err)
		return 1
	}
	log.Info("opfsync-server ready", "store", storeText(cfg, store), "static", cfg.static, "auth", authText)
	stopPruning := pruneVerdicts(ctx, cfg.verdictRetention, store, log)
	return serve(ctx, srv, store, cfg.addr, log, stopPruning)
}

// pruneVerdicts starts forgetting verdicts older than retention (when it is
// not 0), checking a quarter of it apart (between 1 s and 1 h); the
// function it returns stops that and waits for it.
func pruneVerdicts(ctx context.Context, retention time.Duration, store syncserver.Store, log *slog.Logger) (stop func()) {
	pruner, ok := store.(syncserver.VerdictPruner)
	if retention == 0 || !ok {
		return func() {}
	}
	interval := min(max(retention/4, time.Second), time.Hour)
	log.Info("pruning verdicts", "retention", retention.String(), "every", interval.String())
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		syncserver.PruneVerdictsEvery(ctx, pruner, retention, interval, log)
	}()
	return func() { cancel(); <-done }
}

// issueToken is the issue-token command: it prints a token signed with the
// key of -signing-key-file for -user, valid for -ttl from now.
func issueToken(args []string, now time.Time, stdout, stderr io.Writer) int {
	c, err := parseIssueFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "opfsync-server issue-token: %v (see -h)\n", err)
		return 2
	}
	signed, err := loadSigningKey(c.signingKeyFile)
	if err != nil {
		fmt.Fprintf(stderr, "opfsync-server issue-token: %v\n", err)
		return 2
	}
	signed.Now = func() time.Time { return now }
	token, err := signed.Issue(c.user, now.Add(c.ttl))
	if err != nil {
		fmt.Fprintf(stderr, "opfsync-server issue-token: -user %q: %v\n", c.user, err)
		return 2
	}
	fmt.Fprintln(stdout, token)
	return 0
}

// openStore opens the PostgreSQL store when cfg names one, else the SQLite
// file (creating its directory).
func openStore(ctx context.Context, cfg config) (syncserver.Store, error) {
	if cfg.postgres != "" {
		return syncserver.OpenPostgres(ctx, cfg.postgres)
	}
	if dir := filepath.Dir(cfg.db); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("-db: create directory: %w", err)
		}
	}
	return syncserver.OpenSQLite(ctx, cfg.db)
}

// storeText describes the store for the log, without credentials.
func storeText(cfg config, store syncserver.Store) string {
	if pg, ok := store.(*syncserver.PostgresStore); ok {
		return "postgres " + pg.Database()
	}
	return "sqlite " + cfg.db
}

// setup opens the store and builds the HTTP server.
func setup(ctx context.Context, cfg config, auth syncserver.Authenticator, log *slog.Logger) (*http.Server, syncserver.Store, error) {
	var static http.Handler
	if cfg.static != "" {
		var err error
		if static, err = staticHandler(cfg.static); err != nil {
			return nil, nil, err
		}
	}
	store, err := openStore(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	h, err := syncserver.New(syncserver.Options{Store: store, Auth: auth, Logger: log})
	if err != nil {
		store.Close()
		return nil, nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/sync/", h)
	mux.Handle(protocol.PathHealthz, h)
	if static != nil {
		mux.Handle("/", static)
	} else {
		mux.Handle("/", h) // answers 404 NOT_FOUND as JSON
	}
	limits := cfg.timeouts.withDefaults()
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: limits.readHeader,
		ReadTimeout:       limits.read,
		WriteTimeout:      limits.write,
		IdleTimeout:       limits.idle,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	srv.RegisterOnShutdown(h.CloseStreams)
	return srv, store, nil
}

// serve listens on addr and serves until ctx ends or the server fails, then
// shuts down gracefully, calls stopBackground and closes the store.
func serve(ctx context.Context, srv *http.Server, store syncserver.Store, addr string, log *slog.Logger, stopBackground func()) int {
	code := serveUntilDone(ctx, srv, addr, log)
	stopBackground()
	if err := store.Close(); err != nil {
		log.Error("close store", "err", err)
		code = 1
	}
	log.Info("opfsync-server stopped", "exit", code)
	return code
}

// serveUntilDone serves on addr until ctx ends (then shuts down gracefully:
// no new connections, event streams ended, requests in flight finished) or
// the server fails.
func serveUntilDone(ctx context.Context, srv *http.Server, addr string, log *slog.Logger) int {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		log.Error("cannot listen", "addr", addr, "err", err)
		return 1
	}
	log.Info("opfsync-server listening", "addr", ln.Addr().String(), "url", listenURL(ln.Addr()))
	failed := make(chan error, 1)
	go func() { failed <- srv.Serve(ln) }()
	select {
	case err := <-failed:
		log.Error("server failed", "err", err)
		return 1
	case <-ctx.Done():
	}
	log.Info("shutting down: finishing requests in flight")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Error("shutdown: requests still running were cut", "err", err)
		srv.Close()
		return 1
	}
	return 0
}

// listenURL is the http URL of a listening address (an unspecified host
// becomes localhost).
func listenURL(a net.Addr) string {
	tcp, ok := a.(*net.TCPAddr)
	if !ok {
		return "http://" + a.String()
	}
	host := tcp.IP.String()
	if tcp.IP.IsUnspecified() {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, fmt.Sprint(tcp.Port))
}
