package syncengine

import (
	"fmt"

	"github.com/ncruces/go-sqlite3"
)

// engineMigration is one step of the engine's own schema (not the app's).
// Steps are append-only: a released step is never edited, only followed by
// a new one.
type engineMigration struct {
	version int
	name    string
	sql     string
}

// engineMigrations are applied in order, each in its own transaction, and
// recorded in schema_migrations.
var engineMigrations = []engineMigration{
	{1, "core tables", `
CREATE TABLE meta (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
) WITHOUT ROWID;

-- base: the server-confirmed state of every record, one row per record, its
-- fields (with stamps and origins, the tombstone included) as a JSON object.
CREATE TABLE base (
	collection TEXT NOT NULL,
	id         TEXT NOT NULL,
	fields     TEXT NOT NULL,
	PRIMARY KEY (collection, id)
) WITHOUT ROWID;

-- pending: the outbox, local mutations not yet confirmed by the server, in
-- the order they were made.
CREATE TABLE pending (
	seq         INTEGER PRIMARY KEY AUTOINCREMENT,
	mutation_id TEXT NOT NULL UNIQUE,
	collection  TEXT NOT NULL,
	id          TEXT NOT NULL,
	op          TEXT NOT NULL,
	fields      TEXT NOT NULL,
	hlc         TEXT NOT NULL,
	origin      TEXT NOT NULL,
	attempts    INTEGER NOT NULL DEFAULT 0,
	last_error  TEXT NOT NULL DEFAULT ''
);
CREATE INDEX pending_by_record ON pending (collection, id, seq);

-- pull_state: the one row of the pull state machine.
CREATE TABLE pull_state (
	id       INTEGER PRIMARY KEY CHECK (id = 1),
	state    TEXT NOT NULL,
	error    TEXT NOT NULL DEFAULT '',
	cursor   TEXT NOT NULL DEFAULT '',
	epoch    INTEGER NOT NULL DEFAULT 0,
	hydrated INTEGER NOT NULL DEFAULT 0
);
INSERT INTO pull_state (id, state) VALUES (1, 'Idle');
`},
	{2, "applied write requests", `
-- applied_requests: the write requests already applied, by the caller's
-- request id, with the answer given, so a retried request (e.g. re-sent by
-- another tab after the leader died) is answered again instead of applied
-- twice. Rows older than requestMemory are pruned at open.
CREATE TABLE applied_requests (
	request_id TEXT PRIMARY KEY,
	result     TEXT NOT NULL,
	at         INTEGER NOT NULL
) WITHOUT ROWID;
`},
}

// EngineSchemaVersion is the newest engine schema this build knows.
var EngineSchemaVersion = engineMigrations[len(engineMigrations)-1].version

// migrateEngine brings the engine tables up to EngineSchemaVersion. It
// refuses a database whose engine schema is newer than this build.
func migrateEngine(conn *sqlite3.Conn, now int64) error {
	if err := conn.Exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT NOT NULL,
		applied_at INTEGER NOT NULL
	)`); err != nil {
		return storageErr("create schema_migrations", err)
	}
	current, err := currentEngineVersion(conn)
	if err != nil {
		return err
	}
	if current > EngineSchemaVersion {
		return errorf(CodeSchema, "this database was written by a newer opfsync (engine schema %d; this build knows up to %d); upgrade opfsync to open it", current, EngineSchemaVersion)
	}
	for _, m := range engineMigrations {
		if m.version <= current {
			continue
		}
		if err := applyEngineMigration(conn, m, now); err != nil {
			return err
		}
	}
	return nil
}

func currentEngineVersion(conn *sqlite3.Conn) (int, error) {
	st, _, err := conn.Prepare(`SELECT coalesce(max(version), 0) FROM schema_migrations`)
	if err != nil {
		return 0, storageErr("read schema_migrations", err)
	}
	defer st.Close()
	if !st.Step() {
		return 0, storageErr("read schema_migrations", st.Err())
	}
	return st.ColumnInt(0), nil
}

func applyEngineMigration(conn *sqlite3.Conn, m engineMigration, now int64) (err error) {
	tx, err := conn.BeginImmediate()
	if err != nil {
		return storageErr(fmt.Sprintf("begin engine migration %d", m.version), err)
	}
	defer tx.End(&err)
	if err := conn.Exec(m.sql); err != nil {
		return storageErr(fmt.Sprintf("engine migration %d (%s)", m.version, m.name), err)
	}
	st, _, err := conn.Prepare(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`)
	if err != nil {
		return storageErr("record engine migration", err)
	}
	defer st.Close()
	if err := bindAll(st, []any{m.version, m.name, now}); err != nil {
		return err
	}
	return storageErr("record engine migration", st.Exec())
}
