package syncengine

import (
	"github.com/ncruces/go-sqlite3"
	"github.com/opfsync/opfsync/pkg/protocol"
)

// remoteResult counts what applying remote record states did.
type remoteResult struct {
	changed int // records whose base changed
	skipped int // records refused (invalid, or an immutable record met again)
}

// pendingKeys returns the records that have pending mutations, as
// collection + "\x00" + id.
func (e *Engine) pendingKeys() (map[string]bool, error) {
	keys := map[string]bool{}
	err := e.stmts.query(`SELECT DISTINCT collection, id FROM pending`, nil, func(st *sqlite3.Stmt) error {
		keys[st.ColumnText(0)+"\x00"+st.ColumnText(1)] = true
		return nil
	})
	return keys, err
}

// applyRemote merges remote record states into base with field-level LWW,
// then recomputes the visible row of every record whose base changed. With
// reportConflicts, a user's pending edit that a newer remote value
// supersedes raises a ConflictEvent. It runs inside the caller's
// transaction. Invalid states are skipped and counted, never fatal.
func (e *Engine) applyRemote(t *txn, states []protocol.RecordState, reportConflicts bool) (remoteResult, error) {
	var res remoteResult
	pendingSet, err := e.pendingKeys()
	if err != nil {
		return res, storageErr("read outbox", err)
	}
	for i := range states {
		rs := &states[i]
		if err := protocol.ValidateRecordState(rs); err != nil {
			res.skipped++
			continue
		}
		base, err := e.loadBase(rs.Collection, rs.ID)
		if err != nil {
			return res, storageErr("read base", err)
		}
		hasPending := pendingSet[rs.Collection+"\x00"+rs.ID]
		var pend []pendingMut
		if hasPending {
			if pend, err = e.loadPending(rs.Collection, rs.ID); err != nil {
				return res, storageErr("read outbox", err)
			}
		}
		incoming := rs.Fields
		ci := e.cols[rs.Collection]
		if ci != nil && ci.decl.Immutable && (len(base) > 0 || hasPending) {
			// A write-once record met again is skipped; only its deletion
			// may still arrive.
			d, ok := rs.Fields[protocol.DeletedField]
			if !ok || string(d.Value) != "true" {
				res.skipped++
				continue
			}
			incoming = protocol.Fields{protocol.DeletedField: d}
		}
		merged := make(protocol.Fields, len(base)+len(incoming))
		for k, v := range base {
			merged[k] = v
		}
		if len(merged.Merge(incoming)) == 0 {
			if ci != nil && ci.decl.Immutable && (len(base) > 0 || hasPending) {
				res.skipped++
			}
			continue
		}
		for _, f := range incoming {
			e.clock.Observe(f.HLC)
		}
		if err := e.saveBase(rs.Collection, rs.ID, merged); err != nil {
			return res, storageErr("write base", err)
		}
		res.changed++
		t.touch("base")
		if ci == nil {
			continue // kept in base for a schema that declares it later
		}
		after := fold(merged, pend)
		if reportConflicts && hasPending {
			t.events = append(t.events, conflictsBetween(rs.Collection, rs.ID, fold(base, pend), after)...)
		}
		if err := e.writeVisible(ci, rs.ID, after); err != nil {
			return res, storageErr("write "+ci.name, err)
		}
		t.touch(ci.name)
	}
	return res, nil
}
