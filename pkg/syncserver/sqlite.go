package syncserver

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/ncruces/go-sqlite3"
	"github.com/ncruces/go-sqlite3/driver"
)

// SQLiteStore is the default Store: one SQLite file (plus its WAL), opened
// with OpenSQLite. Writes are serialised (one IMMEDIATE transaction at a
// time); reads run concurrently on a small connection pool.
//
// Tables (see sqliteMigrations for the exact schema):
//   - records(user_id, collection, id, fields, position): one row per record,
//     fields as the JSON of protocol.Fields, position the change position of
//     its latest save, indexed by (user_id, position).
//   - verdicts(user_id, mutation_id, status, error_code, error_message,
//     client_id, collection, record_id, created_at): one row per mutation id
//     ever given a verdict ('applied' or 'rejected'); its primary key
//     (user_id, mutation_id) makes applying a mutation twice impossible.
//     Count applied mutations with
//     SELECT count(*) FROM verdicts WHERE user_id = ? AND status = 'applied'
//     (or Stats).
//   - positions(id = 1, last): the last change position given out.
//   - schema_migrations(version, name, applied_at).
type SQLiteStore struct {
	db    *sql.DB
	path  string
	write chan struct{} // a one-slot semaphore: one writer at a time
}

// SQLite tuning.
const (
	sqliteBusyTimeout = 10 * time.Second // another process writing the file
	sqliteMaxConns    = 8
)

// OpenSQLite opens (creating if needed) the SQLite database file at path and
// brings its schema up to date. Every connection uses WAL, synchronous=FULL
// (an acknowledged push survives a crash or power loss) and a busy timeout.
func OpenSQLite(ctx context.Context, path string) (*SQLiteStore, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("sqlite store %s: %w", path, err)
	}
	dsn := (&url.URL{Scheme: "file", Path: filepath.ToSlash(abs), RawQuery: "_txlock=immediate"}).String()
	db, err := driver.Open(dsn, configureSQLite)
	if err != nil {
		return nil, fmt.Errorf("sqlite store %s: %w", path, err)
	}
	db.SetMaxOpenConns(sqliteMaxConns)
	db.SetMaxIdleConns(sqliteMaxConns)
	db.SetConnMaxIdleTime(5 * time.Minute)
	s := &SQLiteStore{db: db, path: path, write: make(chan struct{}, 1)}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite store %s: %w", path, err)
	}
	return s, nil
}

// configureSQLite sets the pragmas of every new connection.
func configureSQLite(c *sqlite3.Conn) error {
	if err := c.BusyTimeout(sqliteBusyTimeout); err != nil {
		return fmt.Errorf("busy timeout: %w", err)
	}
	st, _, err := c.Prepare("PRAGMA journal_mode=WAL")
	if err != nil {
		return fmt.Errorf("journal_mode: %w", err)
	}
	mode := ""
	if st.Step() {
		mode = st.ColumnText(0)
	}
	err = errors.Join(st.Err(), st.Close())
	if err != nil {
		return fmt.Errorf("journal_mode: %w", err)
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("journal_mode=WAL is not available (SQLite answered %q)", mode)
	}
	if err := c.Exec("PRAGMA synchronous=FULL"); err != nil {
		return fmt.Errorf("synchronous: %w", err)
	}
	return nil
}

// Ping implements Store.
func (s *SQLiteStore) Ping(ctx context.Context) error {
	var one int
	if err := s.db.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("sqlite ping: %w", err)
	}
	return nil
}

// Close implements Store. It waits for running transactions to finish.
func (s *SQLiteStore) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("sqlite close %s: %w", s.path, err)
	}
	return nil
}
