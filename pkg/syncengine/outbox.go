package syncengine

import (
	"context"

	"github.com/ncruces/go-sqlite3"
	"github.com/opfsync/opfsync/pkg/protocol"
)

// PendingBatch returns up to limit outbox mutations, oldest first: the next
// batch to push. Mutations of one record always come in the order they were
// made, because the whole outbox is sent in seq order.
func (e *Engine) PendingBatch(ctx context.Context, limit int) ([]protocol.Mutation, error) {
	if limit <= 0 || limit > protocol.MaxBatchMutations {
		limit = protocol.MaxBatchMutations
	}
	var out []protocol.Mutation
	err := e.call(ctx, func() error {
		return e.stmts.query(`SELECT `+pendingColumns+` FROM pending ORDER BY seq LIMIT ?`, []any{limit},
			func(st *sqlite3.Stmt) error {
				m, err := scanPending(st)
				if err != nil {
					return err
				}
				out = append(out, m.mutation())
				return nil
			})
	})
	return out, storageErr("read outbox", err)
}

// PendingCount returns the number of mutations in the outbox.
func (e *Engine) PendingCount(ctx context.Context) (int, error) {
	var n int
	err := e.call(ctx, func() (err error) {
		n, err = e.countPending()
		return err
	})
	return n, err
}

// countPending counts the outbox; it runs inside an engine call.
func (e *Engine) countPending() (int, error) {
	n := 0
	err := e.stmts.query(`SELECT count(*) FROM pending`, nil, func(st *sqlite3.Stmt) error {
		n = st.ColumnInt(0)
		return nil
	})
	return n, storageErr("count outbox", err)
}

// MarkPushFailed records a failed delivery attempt of the given mutations
// (they stay queued for the retry).
func (e *Engine) MarkPushFailed(ctx context.Context, mutationIDs []string, reason string) error {
	return e.call(ctx, func() error {
		return e.write(func(t *txn) error {
			for _, id := range mutationIDs {
				if err := e.stmts.exec(`UPDATE pending SET attempts = attempts + 1, last_error = ? WHERE mutation_id = ?`, reason, id); err != nil {
					return storageErr("mark push failed", err)
				}
			}
			return nil
		})
	})
}

// AckPush applies the server's verdicts on pushed mutations, in one
// transaction. An applied or duplicate mutation leaves the outbox and the
// server's record state is merged into base; a rejected one leaves the
// outbox, its optimistic effect disappears from the visible state, and a
// RejectedEvent is emitted. Results for mutations no longer queued are
// ignored, so acking twice is harmless. A user edit that the server's state
// shows lost raises a ConflictEvent (once the store is hydrated: like pull
// pages, push results during the initial hydration raise none).
func (e *Engine) AckPush(ctx context.Context, results []protocol.MutationResult) error {
	return e.call(ctx, func() error {
		return e.write(func(t *txn) error {
			ps, err := e.readPullState()
			if err != nil {
				return err
			}
			for i := range results {
				if err := e.ackOne(t, &results[i], ps.Hydrated); err != nil {
					return err
				}
			}
			return nil
		})
	})
}

func (e *Engine) ackOne(t *txn, r *protocol.MutationResult, reportConflicts bool) error {
	var m *pendingMut
	err := e.stmts.query(`SELECT `+pendingColumns+` FROM pending WHERE mutation_id = ?`, []any{r.MutationID},
		func(st *sqlite3.Stmt) error {
			pm, err := scanPending(st)
			m = &pm
			return err
		})
	if err != nil {
		return storageErr("read outbox", err)
	}
	if m == nil {
		return nil
	}
	base, pend, before, err := e.loadFolded(m.collection, m.id)
	if err != nil {
		return storageErr("read record", err)
	}
	rest := make([]pendingMut, 0, len(pend))
	for _, p := range pend {
		if p.seq != m.seq {
			rest = append(rest, p)
		}
	}
	if err := e.stmts.exec(`DELETE FROM pending WHERE seq = ?`, m.seq); err != nil {
		return storageErr("drop acked mutation", err)
	}
	t.touch("pending")
	newBase := base
	switch r.Status {
	case protocol.StatusApplied, protocol.StatusDuplicate:
		mut := m.mutation()
		confirmed := mut.States()
		if r.Record != nil && r.Record.Collection == m.collection && r.Record.ID == m.id && protocol.ValidateRecordState(r.Record) == nil {
			confirmed = r.Record.Fields
		}
		newBase = make(protocol.Fields, len(base)+len(confirmed))
		for k, v := range base {
			newBase[k] = v
		}
		if len(newBase.Merge(confirmed)) > 0 {
			for _, f := range confirmed {
				e.clock.Observe(f.HLC)
			}
			if err := e.saveBase(m.collection, m.id, newBase); err != nil {
				return storageErr("write base", err)
			}
			t.touch("base")
		}
	default: // rejected, or a verdict this engine does not know: drop it
		code, msg := protocol.CodeValidation, "the server refused this change"
		if r.Error != nil {
			code, msg = r.Error.Code, r.Error.Message
		}
		t.events = append(t.events, &RejectedEvent{Collection: m.collection, ID: m.id, MutationID: m.mutationID, Code: code, Message: msg})
	}
	ci := e.cols[m.collection]
	if ci == nil {
		return nil
	}
	after := fold(newBase, rest)
	if reportConflicts {
		t.events = append(t.events, conflictsBetween(m.collection, m.id, before, after)...)
	}
	if err := e.writeVisible(ci, m.id, after); err != nil {
		return storageErr("write "+ci.name, err)
	}
	t.touch(ci.name)
	return nil
}

// mutation returns the outbox row as the mutation pushed to the server.
func (m *pendingMut) mutation() protocol.Mutation {
	return protocol.Mutation{
		MutationID: m.mutationID, Collection: m.collection, ID: m.id, Op: m.op,
		HLC: m.hlc, Origin: m.origin, Fields: m.fields,
	}
}
