package syncserver

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// ErrNotEmpty is returned (wrapped) by CopySQLiteToPostgres when the
// destination already holds data.
var ErrNotEmpty = errors.New("the destination database already holds opfsync data")

// CopySQLiteToPostgres copies everything src holds — every record with its
// change position, every verdict — into dst, which must hold no records or
// verdicts (else ErrNotEmpty), in one PostgreSQL transaction: on any error
// dst is left as it was. Each user's head is set to their newest position,
// so the cursors clients hold stay valid and no client pulls again from the
// beginning. Stop every server using src first: writes made during the copy
// would be missed. It returns what dst then holds, which equals
// src.Stats(ctx, "") (checked: a mismatch is an error and nothing is kept).
func CopySQLiteToPostgres(ctx context.Context, src *SQLiteStore, dst *PostgresStore) (Stats, error) {
	want, err := src.Stats(ctx, "")
	if err != nil {
		return Stats{}, fmt.Errorf("copy: %w", err)
	}
	tx, err := dst.begin(ctx)
	if err != nil {
		return Stats{}, fmt.Errorf("copy: %w", err)
	}
	defer tx.Rollback(context.Background())
	var held bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM records) OR EXISTS (SELECT 1 FROM verdicts)`).Scan(&held); err != nil {
		return Stats{}, fmt.Errorf("copy: %w", err)
	}
	if held {
		return Stats{}, fmt.Errorf("copy to %s: %w; copy into a new, empty database", dst.Database(), ErrNotEmpty)
	}
	tables := []struct {
		name    string
		columns []string
	}{
		{"records", []string{"user_id", "collection", "id", "fields", "position"}},
		{"verdicts", []string{"user_id", "mutation_id", "status", "error_code", "error_message", "client_id", "collection", "record_id", "created_at", "keep"}},
	}
	for _, tbl := range tables {
		if err := copyTable(ctx, src.db, tx, tbl.name, tbl.columns); err != nil {
			return Stats{}, fmt.Errorf("copy %s: %w", tbl.name, err)
		}
	}
	if _, err := tx.Exec(ctx, `INSERT INTO heads (user_id, last)
		SELECT user_id, max(position) FROM records GROUP BY user_id
		ON CONFLICT (user_id) DO UPDATE SET last = excluded.last`); err != nil {
		return Stats{}, fmt.Errorf("copy: set heads: %w", err)
	}
	var got Stats
	if err := tx.QueryRow(ctx, statsQuery, "").Scan(&got.Records, &got.Applied, &got.Rejected); err != nil {
		return Stats{}, fmt.Errorf("copy: count: %w", err)
	}
	if got != want {
		return Stats{}, fmt.Errorf("copy: the copy holds %+v, the source %+v (was the source written meanwhile?); nothing was kept", got, want)
	}
	if err := tx.Commit(ctx); err != nil {
		return Stats{}, fmt.Errorf("copy: commit: %w", err)
	}
	return got, nil
}

// copyTable streams table's rows from the SQLite db into tx with COPY.
func copyTable(ctx context.Context, db *sql.DB, tx pgx.Tx, table string, columns []string) error {
	query := "SELECT " + strings.Join(columns, ", ") + " FROM " + table
	rows, err := db.QueryContext(ctx, query)
	if err != nil {
		return err
	}
	defer rows.Close()
	next := func() ([]any, error) {
		if !rows.Next() {
			return nil, rows.Err()
		}
		vals := make([]any, len(columns))
		ptrs := make([]any, len(columns))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		for i, v := range vals {
			if b, ok := v.([]byte); ok {
				vals[i] = string(b) // every column is text or an integer
			}
		}
		return vals, nil
	}
	_, err = tx.CopyFrom(ctx, pgx.Identifier{table}, columns, pgx.CopyFromFunc(next))
	return err
}
