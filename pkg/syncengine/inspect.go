package syncengine

import (
	"context"
	"maps"
	"slices"

	"github.com/ncruces/go-sqlite3"
	"github.com/opfsync/opfsync/pkg/protocol"
)

// Inspection is what a developer looks at when something seems wrong: who
// this client is, how much each collection holds, the outbox (oldest first,
// at most Options' limit) and the pull state.
type Inspection struct {
	ClientID      string            `json:"clientId"`
	Version       uint64            `json:"version"`
	JournalMode   string            `json:"journalMode"`
	SchemaVersion int               `json:"schemaVersion"`
	EngineSchema  int               `json:"engineSchema"`
	Collections   map[string]int    `json:"collections"` // live records per declared collection
	PendingCount  int               `json:"pendingCount"`
	Pending       []PendingMutation `json:"pending"`
	Pull          PullState         `json:"pull"`
	Migrations    map[string]string `json:"migrations"` // localStorage keys imported, with their marker
}

// PendingMutation is one outbox entry as Inspect shows it.
type PendingMutation struct {
	Seq        int64           `json:"seq"`
	MutationID string          `json:"mutationId"`
	Collection string          `json:"collection"`
	ID         string          `json:"id"`
	Op         protocol.Op     `json:"op"`
	Origin     protocol.Origin `json:"origin"`
	HLC        string          `json:"hlc"`
	Attempts   int             `json:"attempts"`
	LastError  string          `json:"lastError"`
}

// Inspect returns the engine's state for an inspector panel, with at most
// limit outbox entries (0: 100).
func (e *Engine) Inspect(ctx context.Context, limit int) (*Inspection, error) {
	if limit <= 0 {
		limit = 100
	}
	in := &Inspection{Collections: map[string]int{}, Pending: []PendingMutation{}, Migrations: map[string]string{}}
	err := e.call(ctx, func() error {
		in.ClientID, in.Version, in.JournalMode = e.clientID, e.version, e.journal
		in.SchemaVersion, in.EngineSchema = e.schema.Version, EngineSchemaVersion
		for _, name := range slices.Sorted(maps.Keys(e.cols)) {
			err := e.stmts.query(`SELECT count(*) FROM `+quoteIdent(name), nil, func(st *sqlite3.Stmt) error {
				in.Collections[name] = st.ColumnInt(0)
				return nil
			})
			if err != nil {
				return storageErr("count "+name, err)
			}
		}
		var err error
		if in.PendingCount, err = e.countPending(); err != nil {
			return err
		}
		err = e.stmts.query(`SELECT `+pendingColumns+` FROM pending ORDER BY seq LIMIT ?`, []any{limit}, func(st *sqlite3.Stmt) error {
			m, err := scanPending(st)
			in.Pending = append(in.Pending, PendingMutation{Seq: m.seq, MutationID: m.mutationID, Collection: m.collection,
				ID: m.id, Op: m.op, Origin: m.origin, HLC: m.hlc.String(), Attempts: m.attempts, LastError: m.lastError})
			return err
		})
		if err != nil {
			return storageErr("read outbox", err)
		}
		err = e.stmts.query(`SELECT key, value FROM meta WHERE key LIKE 'migrated:%'`, nil, func(st *sqlite3.Stmt) error {
			in.Migrations[st.ColumnText(0)[len("migrated:"):]] = st.ColumnText(1)
			return nil
		})
		if err != nil {
			return storageErr("read migrations", err)
		}
		in.Pull, err = e.readPullState()
		return err
	})
	if err != nil {
		return nil, err
	}
	return in, nil
}
