package syncserver

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/opfsync/opfsync/pkg/protocol"
)

// Update implements Store. Writers take turns (in this process through a
// semaphore, against other processes through BEGIN IMMEDIATE and the busy
// timeout); the commit is synced to disk before Update returns.
func (s *SQLiteStore) Update(ctx context.Context, user string, fn func(Tx) error) error {
	select {
	case s.write <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("sqlite update: wait for the writer: %w", ctx.Err())
	}
	defer func() { <-s.write }()
	tx, err := s.db.BeginTx(ctx, nil) // IMMEDIATE (the DSN's _txlock)
	if err != nil {
		return fmt.Errorf("sqlite update: begin: %w", err)
	}
	defer tx.Rollback() // no-op after Commit; undoes everything on error or panic
	t := &sqliteTx{ctx: ctx, tx: tx, user: user, stmts: map[string]*sql.Stmt{}}
	defer t.closeStmts()
	if err := fn(t); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite update: commit: %w", err)
	}
	return nil
}

// sqliteTx is a Tx on one user's rows inside a SQLite transaction. Its
// statements are prepared once per transaction.
type sqliteTx struct {
	ctx   context.Context
	tx    *sql.Tx
	user  string
	stmts map[string]*sql.Stmt
}

func (t *sqliteTx) stmt(query string) (*sql.Stmt, error) {
	if st, ok := t.stmts[query]; ok {
		return st, nil
	}
	st, err := t.tx.PrepareContext(t.ctx, query)
	if err != nil {
		return nil, err
	}
	t.stmts[query] = st
	return st, nil
}

func (t *sqliteTx) closeStmts() {
	for _, st := range t.stmts {
		st.Close()
	}
}

func (t *sqliteTx) exec(query string, args ...any) (sql.Result, error) {
	st, err := t.stmt(query)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(t.ctx, args...)
}

func (t *sqliteTx) queryRow(query string, args ...any) (*sql.Row, error) {
	st, err := t.stmt(query)
	if err != nil {
		return nil, err
	}
	return st.QueryRowContext(t.ctx, args...), nil
}

// Verdict implements Tx.
func (t *sqliteTx) Verdict(mutationID string) (Verdict, bool, error) {
	row, err := t.queryRow(`SELECT status, error_code, error_message, client_id, collection, record_id, created_at
		FROM verdicts WHERE user_id = ? AND mutation_id = ?`, t.user, mutationID)
	if err != nil {
		return Verdict{}, false, fmt.Errorf("sqlite read verdict: %w", err)
	}
	v := Verdict{MutationID: mutationID}
	var code, msg string
	var at int64
	err = row.Scan(&v.Status, &code, &msg, &v.ClientID, &v.Collection, &v.RecordID, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return Verdict{}, false, nil
	}
	if err != nil {
		return Verdict{}, false, fmt.Errorf("sqlite read verdict: %w", err)
	}
	if code != "" {
		v.Error = &protocol.ErrorBody{Code: code, Message: msg}
	}
	v.At = time.UnixMilli(at)
	return v, true, nil
}

// SaveVerdict implements Tx.
func (t *sqliteTx) SaveVerdict(v Verdict) error {
	var code, msg string
	if v.Error != nil {
		code, msg = v.Error.Code, v.Error.Message
	}
	_, err := t.exec(`INSERT INTO verdicts (user_id, mutation_id, status, error_code, error_message, client_id, collection, record_id, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		t.user, v.MutationID, string(v.Status), code, msg, v.ClientID, v.Collection, v.RecordID, v.At.UnixMilli())
	if err != nil {
		return fmt.Errorf("sqlite save verdict: %w", err)
	}
	return nil
}

// Record implements Tx.
func (t *sqliteTx) Record(collection, id string) (protocol.Fields, bool, error) {
	row, err := t.queryRow(`SELECT fields FROM records WHERE user_id = ? AND collection = ? AND id = ?`, t.user, collection, id)
	if err != nil {
		return nil, false, fmt.Errorf("sqlite read record: %w", err)
	}
	var text string
	if err := row.Scan(&text); errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	} else if err != nil {
		return nil, false, fmt.Errorf("sqlite read record: %w", err)
	}
	fields, err := decodeFields(text)
	if err != nil {
		return nil, false, fmt.Errorf("sqlite read record %s/%s: %w", collection, id, err)
	}
	return fields, true, nil
}

// SaveRecord implements Tx.
func (t *sqliteTx) SaveRecord(collection, id string, fields protocol.Fields) (int64, error) {
	text, err := protocol.Marshal(fields)
	if err != nil {
		return 0, fmt.Errorf("sqlite save record: encode fields: %w", err)
	}
	row, err := t.queryRow(`UPDATE positions SET last = last + 1 WHERE id = 1 RETURNING last`)
	if err != nil {
		return 0, fmt.Errorf("sqlite save record: next position: %w", err)
	}
	var pos int64
	if err := row.Scan(&pos); err != nil {
		return 0, fmt.Errorf("sqlite save record: next position: %w", err)
	}
	if _, err := t.exec(`INSERT INTO records (user_id, collection, id, fields, position) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (user_id, collection, id) DO UPDATE SET fields = excluded.fields, position = excluded.position`,
		t.user, collection, id, string(text), pos); err != nil {
		return 0, fmt.Errorf("sqlite save record: %w", err)
	}
	return pos, nil
}

// decodeFields parses a records.fields value.
func decodeFields(text string) (protocol.Fields, error) {
	var f protocol.Fields
	if err := json.Unmarshal([]byte(text), &f); err != nil {
		return nil, fmt.Errorf("decode fields: %w", err)
	}
	if f == nil {
		f = protocol.Fields{}
	}
	return f, nil
}
