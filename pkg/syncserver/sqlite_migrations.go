package syncserver

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// sqliteMigrations are the steps of the SQLite store's schema.
var sqliteMigrations = []migration{
	{1, "records, verdicts, positions", `
CREATE TABLE records (
	user_id    TEXT    NOT NULL,
	collection TEXT    NOT NULL,
	id         TEXT    NOT NULL,
	fields     TEXT    NOT NULL, -- JSON of protocol.Fields, tombstone included
	position   INTEGER NOT NULL, -- change position of the latest save
	PRIMARY KEY (user_id, collection, id)
) WITHOUT ROWID;
CREATE UNIQUE INDEX records_by_position ON records (user_id, position);

CREATE TABLE verdicts (
	user_id       TEXT    NOT NULL,
	mutation_id   TEXT    NOT NULL,
	status        TEXT    NOT NULL CHECK (status IN ('applied', 'rejected')),
	error_code    TEXT    NOT NULL DEFAULT '',
	error_message TEXT    NOT NULL DEFAULT '',
	client_id     TEXT    NOT NULL,
	collection    TEXT    NOT NULL,
	record_id     TEXT    NOT NULL,
	created_at    INTEGER NOT NULL, -- Unix ms
	PRIMARY KEY (user_id, mutation_id)
) WITHOUT ROWID;

CREATE TABLE positions (
	id   INTEGER PRIMARY KEY CHECK (id = 1),
	last INTEGER NOT NULL
);
INSERT INTO positions (id, last) VALUES (1, 0);
`},
	{2, "verdicts.keep, and an index to prune by", `
-- keep = 1: the verdict is never pruned (PruneVerdicts). Set for a mutation
-- the server re-stamped (clamped), and for every verdict given before this
-- column existed, whose clamping is not known.
ALTER TABLE verdicts ADD COLUMN keep INTEGER NOT NULL DEFAULT 1;
CREATE INDEX verdicts_prunable ON verdicts (created_at) WHERE keep = 0;
`},
}

// SQLiteSchemaVersion is the newest SQLite store schema this build knows.
var SQLiteSchemaVersion = sqliteMigrations[len(sqliteMigrations)-1].version

// migrate brings the schema up to SQLiteSchemaVersion, one transaction per
// step, and refuses a database with a newer schema (ErrNewerSchema).
func (s *SQLiteStore) migrate(ctx context.Context) error {
	if _, err := s.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT    NOT NULL,
		applied_at INTEGER NOT NULL
	)`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	current, err := schemaVersion(ctx, s.db)
	if err != nil {
		return err
	}
	pending, err := pendingMigrations(sqliteMigrations, current)
	if err != nil {
		return err
	}
	for _, m := range pending {
		if err := s.applyMigration(ctx, m); err != nil {
			return err
		}
	}
	return nil
}

type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func schemaVersion(ctx context.Context, q queryer) (int, error) {
	var v int
	if err := q.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&v); err != nil {
		return 0, fmt.Errorf("read schema_migrations: %w", err)
	}
	return v, nil
}

// applyMigration runs one step in its own transaction, unless another
// process applied it meanwhile.
func (s *SQLiteStore) applyMigration(ctx context.Context, m migration) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migration %d: begin: %w", m.version, err)
	}
	defer tx.Rollback() // no-op after Commit
	current, err := schemaVersion(ctx, tx)
	if err != nil || current >= m.version {
		return err
	}
	if _, err := tx.ExecContext(ctx, m.sql); err != nil {
		return fmt.Errorf("migration %d (%s): %w", m.version, m.name, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
		m.version, m.name, time.Now().UnixMilli()); err != nil {
		return fmt.Errorf("migration %d: record it: %w", m.version, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migration %d: commit: %w", m.version, err)
	}
	return nil
}
