package syncserver

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// postgresMigrations are the steps of the PostgreSQL store's schema.
var postgresMigrations = []migration{
	{1, "records, verdicts, heads", `
CREATE TABLE records (
	user_id    text   NOT NULL,
	collection text   NOT NULL,
	id         text   NOT NULL,
	fields     text   NOT NULL, -- JSON of protocol.Fields, tombstone included
	position   bigint NOT NULL, -- change position of the latest save
	PRIMARY KEY (user_id, collection, id)
);
CREATE UNIQUE INDEX records_by_position ON records (user_id, position);

CREATE TABLE verdicts (
	user_id       text   NOT NULL,
	mutation_id   text   NOT NULL,
	status        text   NOT NULL CHECK (status IN ('applied', 'rejected')),
	error_code    text   NOT NULL DEFAULT '',
	error_message text   NOT NULL DEFAULT '',
	client_id     text   NOT NULL,
	collection    text   NOT NULL,
	record_id     text   NOT NULL,
	created_at    bigint NOT NULL, -- Unix ms
	PRIMARY KEY (user_id, mutation_id)
);

CREATE TABLE heads (
	user_id text   PRIMARY KEY,
	last    bigint NOT NULL -- the last change position given to the user's records
);
`},
	{2, "verdicts.keep, and an index to prune by", `
-- keep = 1: the verdict is never pruned (PruneVerdicts). Set for a mutation
-- the server re-stamped (clamped), and for every verdict given before this
-- column existed, whose clamping is not known.
ALTER TABLE verdicts ADD COLUMN keep INTEGER NOT NULL DEFAULT 1;
CREATE INDEX verdicts_prunable ON verdicts (created_at) WHERE keep = 0;
`},
}

// PostgresSchemaVersion is the newest PostgreSQL store schema this build
// knows.
var PostgresSchemaVersion = postgresMigrations[len(postgresMigrations)-1].version

// postgresMigrationLock is the advisory lock key that instances migrating
// the same database at once take turns with.
const postgresMigrationLock = 0x6f7066_73796e63 // "opf" "sync"

// migrate brings the schema up to PostgresSchemaVersion in one
// transaction, holding an advisory lock so that instances starting together
// do not race, and refuses a database with a newer schema (ErrNewerSchema).
// PostgreSQL DDL is transactional: a failed step leaves no trace.
func (s *PostgresStore) migrate(ctx context.Context) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("migrate: begin: %w", err)
	}
	defer tx.Rollback(context.Background()) // no-op after Commit
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(postgresMigrationLock)); err != nil {
		return fmt.Errorf("migrate: lock: %w", err)
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    integer PRIMARY KEY,
		name       text    NOT NULL,
		applied_at bigint  NOT NULL
	)`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	var current int
	if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return fmt.Errorf("read schema_migrations: %w", err)
	}
	pending, err := pendingMigrations(postgresMigrations, current)
	if err != nil {
		return err
	}
	for _, m := range pending {
		if err := applyPostgresMigration(ctx, tx, m); err != nil {
			return err
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("migrate: commit: %w", err)
	}
	return nil
}

// applyPostgresMigration runs one step inside tx and records it.
func applyPostgresMigration(ctx context.Context, tx pgx.Tx, m migration) error {
	// Simple protocol: a step is several statements.
	if _, err := tx.Exec(ctx, m.sql, pgx.QueryExecModeSimpleProtocol); err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "42P07" { // duplicate_table
			return fmt.Errorf("migration %d (%s): %w (the database already holds tables of these names: give opfsync a database or schema of its own)", m.version, m.name, err)
		}
		return fmt.Errorf("migration %d (%s): %w", m.version, m.name, err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`,
		m.version, m.name, time.Now().UnixMilli()); err != nil {
		return fmt.Errorf("migration %d: record it: %w", m.version, err)
	}
	return nil
}
