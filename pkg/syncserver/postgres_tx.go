package syncserver

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/opfsync/opfsync/pkg/protocol"
)

// Update implements Store. It runs at READ COMMITTED and first locks the
// user's heads row (creating it for a new user): the user's transactions on
// every instance wait there for each other, and once the lock is held every
// later statement sees the previous holder's commit. Positions are given
// from that row, so a commit's positions are above every position committed
// before it. The commit is durable when PostgreSQL's synchronous_commit is
// on (its default).
func (s *PostgresStore) Update(ctx context.Context, user string, fn func(Tx) error) error {
	tx, err := s.begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres update: begin: %w", err)
	}
	// Rollback is a no-op after Commit; it undoes everything on error or
	// panic, and must run even when ctx is cancelled.
	defer tx.Rollback(context.Background())
	st := postgresStatements{ctx: ctx, tx: tx}
	t := &postgresTx{userRows: userRows{st: st, user: user, backend: "postgres"}, st: st, instance: s.instance}
	if err := tx.QueryRow(ctx, `INSERT INTO heads (user_id, last) VALUES ($1, 0)
		ON CONFLICT (user_id) DO UPDATE SET last = heads.last RETURNING last`, user).Scan(&t.last); err != nil {
		return fmt.Errorf("postgres update: lock the user's head: %w", err)
	}
	start := t.last
	if err := fn(t); err != nil {
		return err
	}
	if t.last != start {
		if _, err := tx.Exec(ctx, `UPDATE heads SET last = $2 WHERE user_id = $1`, user, t.last); err != nil {
			return fmt.Errorf("postgres update: save the user's head: %w", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres update: commit: %w", err)
	}
	return nil
}

// begin starts a READ COMMITTED transaction. A pooled connection that the
// database ended (a restart, a failover, an administrator) fails on its
// first use and leaves the pool; BEGIN has no effect of its own, so begin
// tries again, once more than the pool has connections, unless ctx ended.
func (s *PostgresStore) begin(ctx context.Context) (pgx.Tx, error) {
	var err error
	for range s.pool.Config().MaxConns + 1 {
		var tx pgx.Tx
		if tx, err = s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted}); err == nil || ctx.Err() != nil || s.closed.Err() != nil {
			return tx, err
		}
	}
	return nil, err
}

// postgresTx is a Tx on one user's rows inside a PostgreSQL transaction
// that holds the user's heads row lock.
type postgresTx struct {
	userRows
	st        postgresStatements
	instance  string
	last      int64 // the last position given to the user's records, this transaction's included
	announced bool
}

// SaveRecord implements Tx.
func (t *postgresTx) SaveRecord(collection, id string, fields protocol.Fields) (int64, error) {
	pos := t.last + 1
	if err := t.saveRecordAt(collection, id, fields, pos); err != nil {
		return 0, err
	}
	t.last = pos
	return pos, nil
}

// Announce implements Tx: a NOTIFY, which PostgreSQL delivers to the other
// instances' listeners when (and only if) the transaction commits.
func (t *postgresTx) Announce(exceptClientID string) error {
	if t.announced {
		return nil
	}
	payload, err := encodeAnnouncement(announcement{Instance: t.instance, User: t.user, Except: exceptClientID})
	if err != nil {
		return fmt.Errorf("postgres announce: %w", err)
	}
	if err := t.st.exec(`SELECT pg_notify($1, $2)`, postgresChannel, payload); err != nil {
		return fmt.Errorf("postgres announce: %w", err)
	}
	t.announced = true
	return nil
}

// postgresStatements runs statements in one PostgreSQL transaction (pgx
// prepares and caches each per connection).
type postgresStatements struct {
	ctx context.Context
	tx  pgx.Tx
}

func (s postgresStatements) exec(query string, args ...any) error {
	_, err := s.tx.Exec(s.ctx, query, args...)
	return err
}

func (s postgresStatements) queryRow(query string, args ...any) (rowScanner, error) {
	return s.tx.QueryRow(s.ctx, query, args...), nil
}
