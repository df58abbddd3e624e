package syncserver

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/opfsync/opfsync/pkg/protocol"
)

// Update implements Store. Writers take turns (in this process through a
// semaphore, against other processes through BEGIN IMMEDIATE and the busy
// timeout); the commit is synced to disk before Update returns.
func (s *SQLiteStore) Update(ctx context.Context, user string, fn func(Tx) error) error {
	release, err := s.takeWriter(ctx)
	if err != nil {
		return fmt.Errorf("sqlite update: %w", err)
	}
	defer release()
	tx, err := s.db.BeginTx(ctx, nil) // IMMEDIATE (the DSN's _txlock)
	if err != nil {
		return fmt.Errorf("sqlite update: begin: %w", err)
	}
	defer tx.Rollback() // no-op after Commit; undoes everything on error or panic
	st := &sqliteStatements{ctx: ctx, tx: tx, stmts: map[string]*sql.Stmt{}}
	defer st.close()
	if err := fn(&sqliteTx{userRows: userRows{st: st, user: user, backend: "sqlite"}, st: st}); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite update: commit: %w", err)
	}
	return nil
}

// takeWriter waits for this store's one writer slot; release gives it back.
func (s *SQLiteStore) takeWriter(ctx context.Context) (release func(), err error) {
	select {
	case s.write <- struct{}{}:
		return func() { <-s.write }, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for the writer: %w", ctx.Err())
	}
}

// sqliteTx is a Tx on one user's rows inside a SQLite transaction.
// Positions come from the one-row positions table, so they grow across all
// users (writers take turns anyway).
type sqliteTx struct {
	userRows
	st *sqliteStatements
}

// SaveRecord implements Tx.
func (t *sqliteTx) SaveRecord(collection, id string, fields protocol.Fields) (int64, error) {
	row, err := t.st.queryRow(`UPDATE positions SET last = last + 1 WHERE id = 1 RETURNING last`)
	if err != nil {
		return 0, fmt.Errorf("sqlite save record: next position: %w", err)
	}
	var pos int64
	if err := row.Scan(&pos); err != nil {
		return 0, fmt.Errorf("sqlite save record: next position: %w", err)
	}
	return pos, t.saveRecordAt(collection, id, fields, pos)
}

// Announce implements Tx: a SQLite store serves one server instance, whose
// Handler wakes its own streams, so there is no one else to tell.
func (t *sqliteTx) Announce(string) error { return nil }

// sqliteStatements runs statements in one SQLite transaction, each
// prepared once per transaction.
type sqliteStatements struct {
	ctx   context.Context
	tx    *sql.Tx
	stmts map[string]*sql.Stmt
}

func (s *sqliteStatements) stmt(query string) (*sql.Stmt, error) {
	if st, ok := s.stmts[query]; ok {
		return st, nil
	}
	st, err := s.tx.PrepareContext(s.ctx, query)
	if err != nil {
		return nil, err
	}
	s.stmts[query] = st
	return st, nil
}

func (s *sqliteStatements) close() {
	for _, st := range s.stmts {
		st.Close()
	}
}

func (s *sqliteStatements) exec(query string, args ...any) error {
	st, err := s.stmt(query)
	if err != nil {
		return err
	}
	_, err = st.ExecContext(s.ctx, args...)
	return err
}

func (s *sqliteStatements) queryRow(query string, args ...any) (rowScanner, error) {
	st, err := s.stmt(query)
	if err != nil {
		return nil, err
	}
	return st.QueryRowContext(s.ctx, args...), nil
}
