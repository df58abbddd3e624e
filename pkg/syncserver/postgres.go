package syncserver

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// PostgresStore is the Store for running several opfsync-server instances
// on one PostgreSQL database (a SharedStore), opened with OpenPostgres. It
// keeps a connection pool per instance; instances need no other
// coordination.
//
// Tables (see postgresMigrations for the exact schema):
//   - records, verdicts: as in SQLiteStore.
//   - heads(user_id, last): per user, the last change position given out.
//     Every Update locks its user's row first, so one user's transactions
//     take turns across all instances (other users' run in parallel), and
//     positions follow commit order: a pull never skips a change that
//     commits late, and positions never have gaps from rolled-back
//     transactions.
//   - schema_migrations(version, name, applied_at).
//
// Changes are announced to other instances with NOTIFY on the channel
// postgresChannel, sent at commit (see Follow).
type PostgresStore struct {
	pool     *pgxpool.Pool
	instance string // this store's id in announcements: its own are ignored
	closed   context.Context
	close    context.CancelFunc
}

// OpenPostgres connects to the PostgreSQL database at url (a postgres://
// URL or key=value connection string, as libpq reads them; pool settings
// such as pool_max_conns may be added to it) and brings its schema up to
// date. Give opfsync a database of its own, or a schema of its own through
// the search_path option (e.g. "...?search_path=opfsync"): its table names
// are plain (records, verdicts, heads, schema_migrations).
//
// Several instances may open the same database at once, even during an
// upgrade: migrations take turns through an advisory lock.
func OpenPostgres(ctx context.Context, url string) (*PostgresStore, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// The error may quote the URL, password included: keep it out.
		return nil, fmt.Errorf("postgres store: the connection URL cannot be parsed (check its syntax)")
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = 10 * time.Second
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres store: %w", err)
	}
	closed, cancel := context.WithCancel(context.Background())
	s := &PostgresStore{pool: pool, instance: randomHex(8), closed: closed, close: cancel}
	if err := s.migrate(ctx); err != nil {
		cancel()
		pool.Close()
		return nil, fmt.Errorf("postgres store %s: %w", s.Database(), err)
	}
	return s, nil
}

// Database names the database for messages and logs: host:port/name,
// never the user or password.
func (s *PostgresStore) Database() string {
	c := s.pool.Config().ConnConfig
	return fmt.Sprintf("%s:%d/%s", c.Host, c.Port, c.Database)
}

// Ping implements Store.
func (s *PostgresStore) Ping(ctx context.Context) error {
	var one int
	if err := s.pool.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("postgres ping: %w", err)
	}
	return nil
}

// Close implements Store. It waits for connections in use to be returned,
// and ends Follow.
func (s *PostgresStore) Close() error {
	s.close()
	s.pool.Close()
	return nil
}
