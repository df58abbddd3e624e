package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/ncruces/go-sqlite3/driver"
	"github.com/opfsync/opfsync/internal/pgtest"
	"github.com/opfsync/opfsync/pkg/syncserver"
)

// The stores the soak can run the servers on (-store).
const (
	storeSQLite   = "sqlite"
	storePostgres = "postgres"
)

// postgresEnv is the server's environment variable for -postgres: the soak
// removes it from its own environment, so that the servers it starts use
// only the store it names on their command line.
const postgresEnv = "OPFSYNC_POSTGRES_URL"

// backend is the store the servers of one run share: a fresh SQLite file,
// or an empty PostgreSQL database, on a throwaway cluster the soak starts
// (internal/pgtest) or at -postgres-url.
type backend struct {
	kind    string
	path    string         // the SQLite file
	url     string         // the PostgreSQL database
	params  string         // added to url on the servers' command line (-pg-params)
	cluster *pgtest.Server // the cluster the soak started; nil for -postgres-url
	dir     string         // the run's temporary folder
	info    StoreInfo
}

// StoreInfo describes the store in the report.
type StoreInfo struct {
	Kind          string `json:"kind"`              // sqlite or postgres
	Instances     int    `json:"instances"`         // server processes on it
	Version       string `json:"version,omitempty"` // PostgreSQL's version()
	Fsync         string `json:"fsync,omitempty"`   // PostgreSQL's fsync setting
	SyncCommit    string `json:"synchronousCommit,omitempty"`
	SharedBuffers string `json:"sharedBuffers,omitempty"`
	Throwaway     bool   `json:"throwawayCluster"`    // a local cluster the soak started (and measured)
	Params        string `json:"urlParams,omitempty"` // -pg-params
}

// openBackend prepares the store of a run in dir.
func openBackend(ctx context.Context, cfg Config, dir string) (*backend, error) {
	os.Unsetenv(postgresEnv)
	b := &backend{kind: cfg.Store, dir: dir, params: cfg.PGParams, info: StoreInfo{Kind: cfg.Store, Instances: cfg.Instances, Params: cfg.PGParams}}
	if cfg.Store == storeSQLite {
		b.path = filepath.Join(dir, "soak.db")
		return b, nil
	}
	b.url = cfg.PostgresURL
	if b.url == "" {
		cluster, err := pgtest.StartWith(pgtest.Options{Fsync: cfg.PGFsync})
		if err != nil {
			return nil, err
		}
		b.cluster, b.info.Throwaway = cluster, true
		if b.url, err = cluster.CreateDatabase(ctx, "opfsync_soak"); err != nil {
			cluster.Stop()
			return nil, err
		}
	}
	if err := b.describePostgres(ctx); err != nil {
		b.close()
		return nil, err
	}
	// The checks compare the database with what this run pushed: it must
	// start empty (this also creates the schema before the servers start).
	st, err := b.stats(ctx)
	if err != nil {
		b.close()
		return nil, err
	}
	if st.Records != 0 || st.Applied != 0 || st.Rejected != 0 {
		b.close()
		return nil, fmt.Errorf("the PostgreSQL database %s is not empty (%d records, %d verdicts): give the soak an empty one",
			redactURL(b.url), st.Records, st.Applied+st.Rejected)
	}
	return b, nil
}

// describePostgres reads the server's version and durability settings.
func (b *backend) describePostgres(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, b.url)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", redactURL(b.url), err)
	}
	defer conn.Close(ctx)
	for q, dst := range map[string]*string{
		"SELECT version()":        &b.info.Version,
		"SHOW fsync":              &b.info.Fsync,
		"SHOW synchronous_commit": &b.info.SyncCommit,
		"SHOW shared_buffers":     &b.info.SharedBuffers,
	} {
		if err := conn.QueryRow(ctx, q).Scan(dst); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	if v, _, ok := strings.Cut(b.info.Version, " on "); ok {
		b.info.Version = v
	}
	return nil
}

// serverArgs are the store's flags on a server's command line.
func (b *backend) serverArgs() []string {
	if b.kind == storeSQLite {
		return []string{"-db", b.path}
	}
	if b.params == "" {
		return []string{"-postgres", b.url}
	}
	sep := "?"
	if strings.Contains(b.url, "?") {
		sep = "&"
	}
	return []string{"-postgres", b.url + sep + b.params}
}

// open opens the store through the server's own API.
func (b *backend) open(ctx context.Context) (syncserver.Store, error) {
	if b.kind == storeSQLite {
		return syncserver.OpenSQLite(ctx, b.path)
	}
	return syncserver.OpenPostgres(ctx, b.url)
}

// stats counts the whole store's records and verdicts (Store.Stats of
// every user).
func (b *backend) stats(ctx context.Context) (syncserver.Stats, error) {
	store, err := b.open(ctx)
	if err != nil {
		return syncserver.Stats{}, fmt.Errorf("open the server database: %w", err)
	}
	defer store.Close()
	st, err := store.Stats(ctx, "")
	if err != nil {
		return syncserver.Stats{}, fmt.Errorf("count the server database: %w", err)
	}
	return st, nil
}

// integrityName names what integrity runs, for the report.
func (b *backend) integrityName() string {
	switch {
	case b.kind == storeSQLite:
		return "PRAGMA integrity_check"
	case b.cluster != nil:
		return "amcheck (verify_heapam, bt_index_check with heapallindexed) and position invariants"
	default:
		return "position invariants"
	}
}

// integrity checks the stopped servers' store: "ok", or what is wrong.
func (b *backend) integrity(ctx context.Context) (string, error) {
	if b.kind == storeSQLite {
		return integrityCheck(ctx, b.path)
	}
	conn, err := pgx.Connect(ctx, b.url)
	if err != nil {
		return "", fmt.Errorf("integrity check: %w", err)
	}
	defer conn.Close(ctx)
	var problems []string
	if b.cluster != nil { // our own throwaway database: the extension may be added
		p, err := amcheck(ctx, conn)
		if err != nil {
			return "", err
		}
		problems = append(problems, p...)
	}
	p, err := positionInvariants(ctx, conn)
	if err != nil {
		return "", err
	}
	problems = append(problems, p...)
	if len(problems) == 0 {
		return "ok", nil
	}
	return strings.Join(problems, "; "), nil
}

// amcheck runs PostgreSQL's amcheck over every table (verify_heapam) and
// B-tree index (bt_index_check, every heap tuple looked up in the index)
// of the public schema.
func amcheck(ctx context.Context, conn *pgx.Conn) ([]string, error) {
	if _, err := conn.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS amcheck"); err != nil {
		return nil, fmt.Errorf("integrity check: amcheck: %w", err)
	}
	var problems []string
	rows, err := conn.Query(ctx, `SELECT c.relname, v.blkno, v.msg
		FROM pg_class c CROSS JOIN LATERAL verify_heapam(c.oid) v
		WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r'`)
	if err != nil {
		return nil, fmt.Errorf("integrity check: verify_heapam: %w", err)
	}
	for rows.Next() {
		var rel, msg string
		var blk int64
		if err := rows.Scan(&rel, &blk, &msg); err != nil {
			return nil, fmt.Errorf("integrity check: verify_heapam: %w", err)
		}
		problems = append(problems, fmt.Sprintf("table %s block %d: %s", rel, blk, msg))
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("integrity check: verify_heapam: %w", err)
	}
	// bt_index_check raises an error on the first corruption it finds.
	var indexes int
	if err := conn.QueryRow(ctx, `SELECT count(bt_index_check(c.oid, true))
		FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam
		WHERE am.amname = 'btree' AND c.relnamespace = 'public'::regnamespace`).Scan(&indexes); err != nil {
		problems = append(problems, "bt_index_check: "+err.Error())
	} else if indexes == 0 {
		problems = append(problems, "bt_index_check: no index found to check")
	}
	return problems, nil
}

// positionInvariants checks what pulls rely on, in the PostgreSQL store's
// own tables (postgres_migrations.go): every record's position is between
// 1 and its user's head, the head is the user's latest position (no
// position given out and then lost), and every applied verdict's record
// exists.
func positionInvariants(ctx context.Context, conn *pgx.Conn) ([]string, error) {
	checks := []struct{ what, query string }{
		{"records without a head or past it", `SELECT count(*) FROM records r LEFT JOIN heads h USING (user_id)
			WHERE h.user_id IS NULL OR r.position < 1 OR r.position > h.last`},
		{"heads that are not their user's latest position", `SELECT count(*) FROM heads h
			WHERE h.last <> COALESCE((SELECT max(position) FROM records r WHERE r.user_id = h.user_id), 0)`},
		{"applied verdicts without their record", `SELECT count(*) FROM verdicts v WHERE v.status = 'applied'
			AND NOT EXISTS (SELECT 1 FROM records r WHERE r.user_id = v.user_id AND r.collection = v.collection AND r.id = v.record_id)`},
	}
	var problems []string
	for _, c := range checks {
		var n int64
		if err := conn.QueryRow(ctx, c.query).Scan(&n); err != nil {
			return nil, fmt.Errorf("integrity check: %s: %w", c.what, err)
		}
		if n != 0 {
			problems = append(problems, fmt.Sprintf("%d %s", n, c.what))
		}
	}
	return problems, nil
}

// integrityCheck runs PRAGMA integrity_check on a read-only connection and
// returns its answer ("ok" when the file is sound).
func integrityCheck(ctx context.Context, dbPath string) (string, error) {
	abs, err := filepath.Abs(dbPath)
	if err != nil {
		return "", fmt.Errorf("integrity check: %w", err)
	}
	db, err := driver.Open("file:" + filepath.ToSlash(abs) + "?mode=ro")
	if err != nil {
		return "", fmt.Errorf("integrity check: open %s: %w", dbPath, err)
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, "PRAGMA integrity_check")
	if err != nil {
		return "", fmt.Errorf("integrity check: %w", err)
	}
	defer rows.Close()
	var lines []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return "", fmt.Errorf("integrity check: %w", err)
		}
		lines = append(lines, s)
	}
	if err := rows.Err(); err != nil {
		return "", fmt.Errorf("integrity check: %w", err)
	}
	return strings.Join(lines, "; "), nil
}

// size is the store's size on disk after the servers stopped: the SQLite
// file and its WAL, or pg_database_size (wal 0: PostgreSQL's WAL is the
// cluster's, not the database's).
func (b *backend) size(ctx context.Context) (db, wal int64) {
	if b.kind == storeSQLite {
		return fileSize(b.path), fileSize(b.path + "-wal")
	}
	conn, err := pgx.Connect(ctx, b.url)
	if err != nil {
		return 0, 0
	}
	defer conn.Close(ctx)
	_ = conn.QueryRow(ctx, "SELECT pg_database_size(current_database())").Scan(&db)
	return db, 0
}

// pid is the postmaster's process id when the soak started the cluster
// (0 otherwise: nothing to measure).
func (b *backend) pid() int {
	if b.cluster == nil {
		return 0
	}
	return b.cluster.Pid()
}

// close stops the throwaway cluster, first copying its log into the run's
// folder (kept with -keep or when the run fails).
func (b *backend) close() {
	if b.cluster == nil {
		return
	}
	if err := copyFile(b.cluster.LogPath(), filepath.Join(b.dir, "postgres.log")); err != nil {
		fmt.Fprintln(os.Stderr, "soak: keep the PostgreSQL log:", err)
	}
	b.cluster.Stop()
	b.cluster = nil
}

// describe is one line about the store for the report.
func (i StoreInfo) describe() string {
	if i.Kind == storeSQLite {
		return "SQLite file (WAL, synchronous=FULL), 1 server process"
	}
	where := "a database at -postgres-url"
	if i.Throwaway {
		where = "a throwaway local cluster (internal/pgtest)"
	}
	procs := "1 server process"
	if i.Instances > 1 {
		procs = fmt.Sprintf("%d server processes on the one database, clients spread round-robin (a user's clients on different instances)", i.Instances)
	}
	params := "the servers' URL as is (pgx pool defaults)"
	if i.Params != "" {
		params = "the servers' URL with " + i.Params
	}
	return fmt.Sprintf("%s on %s, fsync=%s, synchronous_commit=%s, shared_buffers=%s, %s; %s",
		i.Version, where, i.Fsync, i.SyncCommit, i.SharedBuffers, params, procs)
}

// redactURL drops the password from a connection URL for messages.
func redactURL(url string) string {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return "(unparsable URL)"
	}
	return fmt.Sprintf("%s:%d/%s", cfg.Host, cfg.Port, cfg.Database)
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
