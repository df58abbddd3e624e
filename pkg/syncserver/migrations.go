package syncserver

import (
	"errors"
	"fmt"
)

// migration is one step of a store's schema. Steps are append-only: a
// released step is never edited, only followed by a new one. Each runs in
// one transaction together with the schema_migrations row that records it,
// so a step is either wholly applied and recorded or not at all.
type migration struct {
	version int
	name    string
	sql     string
}

// ErrNewerSchema is returned (wrapped) by OpenSQLite and OpenPostgres when
// the database was written by a newer opfsync-server.
var ErrNewerSchema = errors.New("database schema is newer than this server")

// pendingMigrations returns the steps of steps newer than current, in
// order, or an error wrapping ErrNewerSchema when current is newer than
// every step this build knows.
func pendingMigrations(steps []migration, current int) ([]migration, error) {
	newest := steps[len(steps)-1].version
	if current > newest {
		return nil, fmt.Errorf("%w: it has schema %d, this opfsync-server knows up to %d; upgrade opfsync-server",
			ErrNewerSchema, current, newest)
	}
	var out []migration
	for _, m := range steps {
		if m.version > current {
			out = append(out, m)
		}
	}
	return out, nil
}
