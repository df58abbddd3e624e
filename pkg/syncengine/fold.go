package syncengine

import (
	"encoding/json"
	"maps"
	"slices"

	"github.com/ncruces/go-sqlite3"
	"github.com/opfsync/opfsync/pkg/protocol"
)

// pendingMut is one outbox row.
type pendingMut struct {
	seq        int64
	mutationID string
	collection string
	id         string
	op         protocol.Op
	fields     map[string]json.RawMessage
	hlc        protocol.HLC
	origin     protocol.Origin
	attempts   int
	lastError  string
}

// ownedField is a field of the visible state and where it came from: the
// base (seq 0) or the pending mutation with that seq.
type ownedField struct {
	protocol.FieldState
	seq int64
}

// folded is a record's visible state: the base with the pending mutations
// folded over it in order, each field taking a pending value only when the
// pending stamp is newer (the server's rule, so visible is what the server
// will converge to given what this client knows).
type folded map[string]ownedField

func fold(base protocol.Fields, pend []pendingMut) folded {
	out := make(folded, len(base)+4)
	for name, f := range base {
		out[name] = ownedField{FieldState: f}
	}
	for _, m := range pend {
		for name, v := range m.fields {
			if m.hlc.After(out[name].HLC) {
				out[name] = ownedField{FieldState: protocol.FieldState{Value: v, HLC: m.hlc, Origin: m.origin}, seq: m.seq}
			}
		}
	}
	return out
}

// live reports whether the folded record is present and not deleted.
func (f folded) live() bool {
	d, ok := f[protocol.DeletedField]
	return ok && string(d.Value) == "false"
}

// exists reports whether anything was ever written to the record.
func (f folded) exists() bool { return len(f) > 0 }

// updatedAt is the wall time of the newest field stamp.
func (f folded) updatedAt() int64 {
	var n int64
	for _, s := range f {
		if s.HLC.Wall > n {
			n = s.HLC.Wall
		}
	}
	return n
}

// fields returns the folded state as plain field states.
func (f folded) fields() protocol.Fields {
	out := make(protocol.Fields, len(f))
	for name, s := range f {
		out[name] = s.FieldState
	}
	return out
}

// conflictsBetween returns a ConflictEvent for every field whose visible
// value was a pending write of origin user in before and is a newer remote
// (base) value in after. A field reported once is owned by the base from
// then on, so it is never reported twice.
func conflictsBetween(collection, id string, before, after folded) []Event {
	var out []Event
	for _, name := range slices.Sorted(maps.Keys(before)) {
		b := before[name]
		if b.seq == 0 || b.Origin != protocol.OriginUser {
			continue
		}
		a, ok := after[name]
		if !ok || a.seq != 0 || !a.HLC.After(b.HLC) || jsonEqual(a.Value, b.Value) {
			continue
		}
		out = append(out, &ConflictEvent{Collection: collection, ID: id, Field: name, Local: b.Value, Remote: a.Value})
	}
	return out
}

// loadBase reads a record's base fields (nil when the server never
// confirmed anything of it).
func (e *Engine) loadBase(collection, id string) (protocol.Fields, error) {
	var fields protocol.Fields
	err := e.stmts.query(`SELECT fields FROM base WHERE collection = ? AND id = ?`, []any{collection, id},
		func(st *sqlite3.Stmt) error {
			return decodeBase(st.ColumnRawText(0), &fields)
		})
	return fields, err
}

func decodeBase(raw []byte, into *protocol.Fields) error {
	f, err := protocol.DecodeFields(raw)
	if err != nil {
		return &Error{Code: CodeStorage, Message: "a base record is corrupt", Err: err}
	}
	*into = f
	return nil
}

// saveBase writes a record's base fields in their canonical JSON
// (Fields.AppendJSON: no HTML escaping, so a value read back from base is
// byte for byte the same as in the outbox, in memory and on the server).
func (e *Engine) saveBase(collection, id string, fields protocol.Fields) error {
	raw, err := fields.AppendJSON(e.scratch[:0])
	if err != nil {
		return &Error{Code: CodeInternal, Message: "encode base record", Err: err}
	}
	e.scratch = raw
	return e.stmts.exec(`INSERT INTO base (collection, id, fields) VALUES (?, ?, ?)
		ON CONFLICT (collection, id) DO UPDATE SET fields = excluded.fields`, collection, id, raw)
}

const pendingColumns = `seq, mutation_id, collection, id, op, fields, hlc, origin, attempts, last_error`

func scanPending(st *sqlite3.Stmt) (pendingMut, error) {
	m := pendingMut{
		seq:        st.ColumnInt64(0),
		mutationID: st.ColumnText(1),
		collection: st.ColumnText(2),
		id:         st.ColumnText(3),
		op:         protocol.Op(st.ColumnText(4)),
		origin:     protocol.Origin(st.ColumnText(7)),
		attempts:   st.ColumnInt(8),
		lastError:  st.ColumnText(9),
	}
	if err := json.Unmarshal(st.ColumnRawText(5), &m.fields); err != nil {
		return m, &Error{Code: CodeStorage, Message: "a pending mutation is corrupt", Err: err}
	}
	h, err := protocol.ParseHLC(st.ColumnText(6))
	if err != nil {
		return m, &Error{Code: CodeStorage, Message: "a pending mutation's stamp is corrupt", Err: err}
	}
	m.hlc = h
	return m, nil
}

// loadPending reads a record's pending mutations in order.
func (e *Engine) loadPending(collection, id string) ([]pendingMut, error) {
	var out []pendingMut
	err := e.stmts.query(`SELECT `+pendingColumns+` FROM pending WHERE collection = ? AND id = ? ORDER BY seq`,
		[]any{collection, id}, func(st *sqlite3.Stmt) error {
			m, err := scanPending(st)
			out = append(out, m)
			return err
		})
	return out, err
}

// loadFolded reads a record's base and pending mutations and folds them.
func (e *Engine) loadFolded(collection, id string) (protocol.Fields, []pendingMut, folded, error) {
	base, err := e.loadBase(collection, id)
	if err != nil {
		return nil, nil, nil, err
	}
	pend, err := e.loadPending(collection, id)
	if err != nil {
		return nil, nil, nil, err
	}
	return base, pend, fold(base, pend), nil
}
