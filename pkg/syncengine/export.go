package syncengine

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/ncruces/go-sqlite3"
	"github.com/opfsync/opfsync/pkg/protocol"
)

// DumpFormat names the export format in Dump.Format.
const DumpFormat = "opfsync-export"

// Dump is an export: every record the store knows (confirmed and pending
// folded together), each field with its stamp and origin, tombstones
// included.
type Dump struct {
	Format     string                 `json:"format"`
	Version    int                    `json:"version"`
	ClientID   string                 `json:"clientId,omitempty"`
	ExportedAt int64                  `json:"exportedAt,omitempty"`
	Records    []protocol.RecordState `json:"records"`
}

// ImportResult counts what Import did with each dump record: inserted (new
// here), updated (at least one field won) or skipped (nothing newer, an
// immutable record already present, an undeclared collection, or invalid).
type ImportResult struct {
	Inserted int `json:"inserted"`
	Updated  int `json:"updated"`
	Skipped  int `json:"skipped"`
}

// DecodeDump parses an export. It fails with CodeValidation on anything
// that is not a well-formed dump of a known version; record contents are
// checked by Import.
func DecodeDump(raw []byte) (*Dump, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var d Dump
	if err := dec.Decode(&d); err != nil {
		return nil, errorf(CodeValidation, "import: not an opfsync export: %v", err)
	}
	if dec.More() {
		return nil, errorf(CodeValidation, "import: trailing data after the export")
	}
	if d.Format != DumpFormat {
		return nil, errorf(CodeValidation, "import: format is %q, want %q", d.Format, DumpFormat)
	}
	if d.Version != 1 {
		return nil, errorf(CodeValidation, "import: export version %d is not supported (this build reads 1)", d.Version)
	}
	return &d, nil
}

// Export returns every record with its field stamps, tombstones included,
// in (collection, id) order.
func (e *Engine) Export(ctx context.Context) (*Dump, error) {
	d := &Dump{Format: DumpFormat, Version: 1, Records: []protocol.RecordState{}}
	err := e.call(ctx, func() error {
		d.ClientID, d.ExportedAt = e.clientID, e.opts.now()
		pend := map[[2]string][]pendingMut{}
		err := e.stmts.query(`SELECT `+pendingColumns+` FROM pending ORDER BY seq`, nil, func(st *sqlite3.Stmt) error {
			m, err := scanPending(st)
			k := [2]string{m.collection, m.id}
			pend[k] = append(pend[k], m)
			return err
		})
		if err != nil {
			return err
		}
		err = e.stmts.query(`SELECT collection, id, fields FROM base ORDER BY collection, id`, nil, func(st *sqlite3.Stmt) error {
			var base protocol.Fields
			if err := decodeBase(st.ColumnRawText(2), &base); err != nil {
				return err
			}
			k := [2]string{st.ColumnText(0), st.ColumnText(1)}
			d.Records = append(d.Records, protocol.RecordState{Collection: k[0], ID: k[1], Fields: fold(base, pend[k]).fields()})
			delete(pend, k)
			return nil
		})
		if err != nil {
			return err
		}
		for k, ms := range pend {
			d.Records = append(d.Records, protocol.RecordState{Collection: k[0], ID: k[1], Fields: fold(nil, ms).fields()})
		}
		slices.SortFunc(d.Records, func(a, b protocol.RecordState) int {
			return cmp.Or(strings.Compare(a.Collection, b.Collection), strings.Compare(a.ID, b.ID))
		})
		return nil
	})
	if err != nil {
		return nil, storageErr("export", err)
	}
	return d, nil
}

// Import merges a dump by id with field-level LWW, in one transaction.
// Fields newer than what the store holds are queued as mutations with their
// original stamps (so they sync); older or equal ones are skipped, so
// importing the same dump twice changes nothing the second time. A
// tombstone in the dump is kept; a newer tombstone deletes, a newer put
// restores.
func (e *Engine) Import(ctx context.Context, d *Dump) (ImportResult, error) {
	var res ImportResult
	if d == nil || d.Format != DumpFormat || d.Version != 1 {
		return res, errorf(CodeValidation, "import: not an opfsync export (format %q, version 1)", DumpFormat)
	}
	err := e.call(ctx, func() error {
		res = ImportResult{}
		return e.write(func(t *txn) error {
			for i := range d.Records {
				outcome, err := e.importRecord(t, &d.Records[i])
				if err != nil {
					return err
				}
				switch outcome {
				case importInserted:
					res.Inserted++
				case importUpdated:
					res.Updated++
				default:
					res.Skipped++
				}
			}
			return nil
		})
	})
	return res, err
}

type importOutcome int

const (
	importSkipped importOutcome = iota
	importInserted
	importUpdated
)

// importRecord merges one dump record; it skips invalid ones rather than
// failing the import.
func (e *Engine) importRecord(t *txn, rs *protocol.RecordState) (importOutcome, error) {
	if protocol.ValidateRecordState(rs) != nil {
		return importSkipped, nil
	}
	ci := e.cols[rs.Collection]
	if ci == nil {
		return importSkipped, nil
	}
	// Values are checked by JSON kind, then stored in the engine's canonical
	// JSON form like any other write (a dump may have been re-encoded, e.g.
	// with HTML escaping, on its way here).
	fields := make(protocol.Fields, len(rs.Fields))
	for name, f := range rs.Fields {
		t, declared := ci.fieldType(name)
		switch {
		case name == protocol.DeletedField:
			t = TypeBoolean
		case !declared && !ci.decl.ExtraFields:
			return importSkipped, nil
		case !declared:
			t = TypeJSON
		case !conforms(t, f.Value):
			return importSkipped, nil
		}
		v, err := normalizeValue(t, f.Value)
		if err != nil {
			return importSkipped, nil
		}
		f.Value = v
		fields[name] = f
	}
	_, _, cur, err := e.loadFolded(ci.name, rs.ID)
	if err != nil {
		return importSkipped, storageErr("read record", err)
	}
	if ci.decl.Immutable && cur.exists() {
		return importSkipped, nil
	}
	// Winning fields, grouped by (stamp, origin): each group is one merge
	// mutation, so every field keeps its own stamp on the way to the server.
	type group struct {
		hlc    protocol.HLC
		origin protocol.Origin
		fields map[string]json.RawMessage
	}
	groups := map[string]*group{}
	for name, f := range fields {
		if !protocol.Wins(f, cur[name].FieldState) {
			continue
		}
		key := f.HLC.String() + "|" + string(f.Origin)
		g := groups[key]
		if g == nil {
			g = &group{hlc: f.HLC, origin: f.Origin, fields: map[string]json.RawMessage{}}
			groups[key] = g
		}
		g.fields[name] = f.Value
	}
	if len(groups) == 0 {
		return importSkipped, nil
	}
	for _, key := range slices.Sorted(maps.Keys(groups)) {
		g := groups[key]
		e.clock.Observe(g.hlc)
		m := pendingMut{
			mutationID: importMutationID(ci.name, rs.ID, g.hlc, g.fields),
			collection: ci.name, id: rs.ID, op: protocol.OpMerge,
			fields: g.fields, hlc: g.hlc, origin: g.origin,
		}
		if err := e.insertPendingIgnoringDuplicate(&m); err != nil {
			return importSkipped, err
		}
	}
	_, _, after, err := e.loadFolded(ci.name, rs.ID)
	if err != nil {
		return importSkipped, storageErr("read record", err)
	}
	if err := e.writeVisible(ci, rs.ID, after); err != nil {
		return importSkipped, storageErr("write "+ci.name, err)
	}
	t.touch(ci.name)
	t.touch("pending")
	t.queued = true
	if !cur.exists() {
		return importInserted, nil
	}
	return importUpdated, nil
}

// importMutationID is deterministic in the imported content, so importing
// the same fields again (even into a fresh database) yields the same id and
// the server applies it at most once.
func importMutationID(collection, id string, h protocol.HLC, fields map[string]json.RawMessage) string {
	sum := sha256.New()
	raw, _ := marshalJSON(fields)
	fmt.Fprintf(sum, "%s\x00%s\x00%s\x00", collection, id, h)
	sum.Write(raw)
	return "i" + hex.EncodeToString(sum.Sum(nil)[:16])
}

// insertPendingIgnoringDuplicate queues m unless a mutation with its id is
// already queued.
func (e *Engine) insertPendingIgnoringDuplicate(m *pendingMut) error {
	var exists bool
	if err := e.stmts.query(`SELECT 1 FROM pending WHERE mutation_id = ?`, []any{m.mutationID}, func(*sqlite3.Stmt) error {
		exists = true
		return nil
	}); err != nil {
		return storageErr("read outbox", err)
	}
	if exists {
		return nil
	}
	return e.insertPending(m)
}
