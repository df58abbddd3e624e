package syncengine

import (
	"encoding/json"
	"maps"
	"slices"

	"github.com/ncruces/go-sqlite3"
	"github.com/opfsync/opfsync/pkg/protocol"
)

// writeVisible makes the collection table's row for id match the folded
// state: upserted when live, deleted otherwise.
func (e *Engine) writeVisible(ci *collectionInfo, id string, f folded) error {
	if !f.live() {
		return e.stmts.exec(ci.deleteSQL, id)
	}
	st, err := e.stmts.get(ci.upsertSQL)
	if err != nil {
		return err
	}
	defer st.Reset()
	if err := st.BindText(1, id); err != nil {
		return err
	}
	for i, name := range ci.fields {
		if err := bindValue(st, i+2, ci.types[i], f[name].Value); err != nil {
			return err
		}
	}
	n := len(ci.fields) + 2
	if err := st.BindInt64(n, f.updatedAt()); err != nil {
		return err
	}
	if ci.decl.ExtraFields {
		extra, err := extraObject(ci, f)
		if err != nil {
			return err
		}
		if err := bindNullableJSON(st, n+1, extra); err != nil {
			return err
		}
	}
	return st.Exec()
}

func bindNullableJSON(st *sqlite3.Stmt, i int, raw json.RawMessage) error {
	if raw == nil {
		return st.BindNull(i)
	}
	return st.BindRawText(i, raw)
}

// extraObject returns the undeclared, non-null fields of f as one JSON
// object with sorted keys (nil when there are none).
func extraObject(ci *collectionInfo, f folded) (json.RawMessage, error) {
	extra := map[string]json.RawMessage{}
	for name, s := range f {
		if name == protocol.DeletedField || string(s.Value) == "null" || len(s.Value) == 0 {
			continue
		}
		if _, declared := ci.decl.Fields[name]; declared {
			continue
		}
		extra[name] = s.Value
	}
	if len(extra) == 0 {
		return nil, nil
	}
	return marshalJSON(extra) // encoding/json sorts map keys
}

// refillCollection recomputes a collection's whole table from base and
// pending (after the table was created or rebuilt).
func (e *Engine) refillCollection(name string) error {
	ci := e.cols[name]
	if err := e.conn.Exec("DELETE FROM " + quoteIdent(name)); err != nil {
		return storageErr("refill "+name, err)
	}
	pend := map[string][]pendingMut{}
	err := e.stmts.query(`SELECT `+pendingColumns+` FROM pending WHERE collection = ? ORDER BY seq`, []any{name},
		func(st *sqlite3.Stmt) error {
			m, err := scanPending(st)
			pend[m.id] = append(pend[m.id], m)
			return err
		})
	if err != nil {
		return storageErr("refill "+name, err)
	}
	type row struct {
		id   string
		base protocol.Fields
	}
	var rows []row
	err = e.stmts.query(`SELECT id, fields FROM base WHERE collection = ?`, []any{name}, func(st *sqlite3.Stmt) error {
		r := row{id: st.ColumnText(0)}
		if err := decodeBase(st.ColumnRawText(1), &r.base); err != nil {
			return err
		}
		rows = append(rows, r)
		return nil
	})
	if err != nil {
		return storageErr("refill "+name, err)
	}
	for _, r := range rows {
		if err := e.writeVisible(ci, r.id, fold(r.base, pend[r.id])); err != nil {
			return storageErr("refill "+name, err)
		}
		delete(pend, r.id)
	}
	for _, id := range slices.Sorted(maps.Keys(pend)) {
		if err := e.writeVisible(ci, id, fold(nil, pend[id])); err != nil {
			return storageErr("refill "+name, err)
		}
	}
	return nil
}
