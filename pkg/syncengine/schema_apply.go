package syncengine

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// storedSchema is what meta.app_schema keeps: the applied declaration
// without its upgrade steps.
type storedSchema struct {
	Version     int                   `json:"version"`
	Collections map[string]Collection `json:"collections"`
}

func decodeStoredSchema(s string, into *Schema) error {
	var st storedSchema
	if err := json.Unmarshal([]byte(s), &st); err != nil {
		return &Error{Code: CodeStorage, Message: "the stored app schema is corrupt", Err: err}
	}
	*into = Schema{Version: st.Version, Collections: st.Collections}
	return nil
}

// schemaChange is one difference between the stored and declared schema.
type schemaChange struct {
	op         string // an UpgradeStep op for destructive changes; "" otherwise
	collection string
	field      string
	what       string // human description
}

// rebuild marks collections whose table layout changed (fields, types,
// extra column): their table is recreated and refilled from base+pending.
type schemaPlan struct {
	create      []string // new collections
	drop        []string // dropped collections
	rebuild     []string // changed layout
	indexAdd    map[string][][]string
	indexDrop   map[string][][]string
	destructive []schemaChange
}

// applyAppSchema makes the database match decl (nil keeps the stored
// schema). Additive changes apply at once; destructive ones need a version
// bump and an upgrade step naming each. All of it is one transaction.
func (e *Engine) applyAppSchema(decl *Schema) error {
	if decl == nil {
		return nil
	}
	if err := decl.validate(); err != nil {
		return err
	}
	stored := e.schema
	if stored.Version > decl.Version {
		return errorf(CodeSchema, "the database has app schema version %d, newer than the declared version %d; the app is older than its data (deploy the newer app, or raise the version)", stored.Version, decl.Version)
	}
	plan := planSchema(stored, decl)
	if stored.Version == decl.Version && len(plan.destructive) > 0 {
		c := plan.destructive[0]
		return errorf(CodeSchema, "%s is a destructive change: raise the schema version above %d and add an upgrade step {version: %d, op: %q, collection: %q%s}",
			c.what, stored.Version, stored.Version+1, c.op, c.collection, fieldArg(c.field))
	}
	for _, c := range plan.destructive {
		if !hasStep(decl.Upgrades, stored.Version, c) {
			return errorf(CodeSchema, "%s is a destructive change: add an upgrade step {version: %d, op: %q, collection: %q%s} to confirm it",
				c.what, decl.Version, c.op, c.collection, fieldArg(c.field))
		}
	}
	next := Schema{Version: decl.Version, Collections: maps.Clone(decl.Collections)}
	if next.Collections == nil {
		next.Collections = map[string]Collection{}
	}
	if schemaEqual(stored, next) {
		return nil
	}
	prevSchema, prevCols := e.schema, e.cols
	err := e.write(func(t *txn) error {
		e.schema = next
		e.indexCollections()
		return e.executePlan(t, plan, stored)
	})
	e.stmts.forget()
	e.closeAppStmts()
	if err != nil {
		e.schema, e.cols = prevSchema, prevCols
		return err
	}
	return nil
}

func fieldArg(field string) string {
	if field == "" {
		return ""
	}
	return fmt.Sprintf(", field: %q", field)
}

func hasStep(steps []UpgradeStep, storedVersion int, c schemaChange) bool {
	for _, s := range steps {
		if s.Version > storedVersion && s.Op == c.op && s.Collection == c.collection && s.Field == c.field {
			return true
		}
	}
	return false
}

func schemaEqual(a, b Schema) bool {
	ja, _ := json.Marshal(storedSchema{a.Version, a.Collections})
	jb, _ := json.Marshal(storedSchema{b.Version, b.Collections})
	return string(ja) == string(jb)
}

// planSchema diffs stored against decl.
func planSchema(stored Schema, decl *Schema) schemaPlan {
	p := schemaPlan{indexAdd: map[string][][]string{}, indexDrop: map[string][][]string{}}
	for _, name := range slices.Sorted(maps.Keys(stored.Collections)) {
		if _, ok := decl.Collections[name]; !ok {
			p.drop = append(p.drop, name)
			p.destructive = append(p.destructive, schemaChange{StepDropCollection, name, "", fmt.Sprintf("dropping collection %q", name)})
		}
	}
	for _, name := range slices.Sorted(maps.Keys(decl.Collections)) {
		want := decl.Collections[name]
		have, ok := stored.Collections[name]
		if !ok {
			p.create = append(p.create, name)
			continue
		}
		layout := false
		for _, f := range slices.Sorted(maps.Keys(have.Fields)) {
			wt, ok := want.Fields[f]
			switch {
			case !ok:
				layout = true
				p.destructive = append(p.destructive, schemaChange{StepDropField, name, f, fmt.Sprintf("dropping field %s.%s", name, f)})
			case wt != have.Fields[f]:
				layout = true
				p.destructive = append(p.destructive, schemaChange{StepChangeType, name, f, fmt.Sprintf("changing the type of %s.%s from %s to %s", name, f, have.Fields[f], wt)})
			}
		}
		for f := range want.Fields {
			if _, ok := have.Fields[f]; !ok {
				layout = true
			}
		}
		if have.ExtraFields != want.ExtraFields {
			layout = true
			if have.ExtraFields {
				p.destructive = append(p.destructive, schemaChange{StepDropExtraFields, name, "", fmt.Sprintf("turning off extraFields on %q", name)})
			}
		}
		if layout {
			p.rebuild = append(p.rebuild, name)
			continue
		}
		haveIdx := indexSet(name, have.Indexes)
		wantIdx := indexSet(name, want.Indexes)
		for n, fields := range wantIdx {
			if _, ok := haveIdx[n]; !ok {
				p.indexAdd[name] = append(p.indexAdd[name], fields)
			}
		}
		for n, fields := range haveIdx {
			if _, ok := wantIdx[n]; !ok {
				p.indexDrop[name] = append(p.indexDrop[name], fields)
			}
		}
	}
	return p
}

func indexSet(collection string, idx [][]string) map[string][]string {
	out := map[string][]string{}
	for _, fields := range idx {
		out[indexName(collection, fields)] = fields
	}
	return out
}

// executePlan runs the DDL and refills rebuilt tables, inside the caller's
// transaction.
func (e *Engine) executePlan(t *txn, p schemaPlan, stored Schema) error {
	ddl := func(sql string) error {
		if err := e.conn.Exec(sql); err != nil {
			return storageErr("apply schema: "+firstLine(sql), err)
		}
		return nil
	}
	// Schema changes only change the local SQL view of the data. Base (the
	// server's state) and the outbox (the user's unsynced writes) are never
	// touched: a dropped collection's writes still sync, and declaring it
	// again (or re-adding a field) refills it from base.
	for _, name := range p.drop {
		if err := ddl("DROP TABLE IF EXISTS " + quoteIdent(name)); err != nil {
			return err
		}
		t.touch(name)
	}
	for _, name := range append(slices.Clone(p.rebuild), p.create...) {
		if slices.Contains(p.rebuild, name) {
			if err := ddl("DROP TABLE IF EXISTS " + quoteIdent(name)); err != nil {
				return err
			}
		}
		for _, sql := range e.cols[name].createSQL() {
			if err := ddl(sql); err != nil {
				return err
			}
		}
		e.stmts.forget()
		if err := e.refillCollection(name); err != nil {
			return err
		}
		t.touch(name)
	}
	for name, list := range p.indexDrop {
		for _, fields := range list {
			if err := ddl("DROP INDEX IF EXISTS " + quoteIdent(indexName(name, fields))); err != nil {
				return err
			}
		}
	}
	for name, list := range p.indexAdd {
		for _, fields := range list {
			if err := ddl(createIndexSQL(name, fields)); err != nil {
				return err
			}
		}
	}
	raw, err := json.Marshal(storedSchema{e.schema.Version, e.schema.Collections})
	if err != nil {
		return &Error{Code: CodeInternal, Message: "encode schema", Err: err}
	}
	if err := e.stmts.exec(`INSERT INTO meta (key, value) VALUES ('app_schema', ?)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value`, string(raw)); err != nil {
		return storageErr("save app schema", err)
	}
	return nil
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
