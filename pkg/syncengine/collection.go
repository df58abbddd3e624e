package syncengine

import (
	"strings"
)

// collectionInfo is the SQL layout of one declared collection's table:
// "id", the declared fields in column order, "_updated_at", and "_extra"
// when the collection accepts undeclared fields. The SQL texts are built
// once per layout and run through the statement cache.
type collectionInfo struct {
	name      string
	decl      Collection
	fields    []string // declared fields, in column order
	types     []FieldType
	upsertSQL string // (id, fields..., _updated_at[, _extra])
	deleteSQL string // (id)
	selectSQL string // id, fields...[, _extra] by id
	existsSQL string // 1 by id
}

func newCollectionInfo(name string, decl Collection) *collectionInfo {
	ci := &collectionInfo{name: name, decl: decl, fields: decl.sortedFields()}
	for _, f := range ci.fields {
		ci.types = append(ci.types, decl.Fields[f])
	}
	table := quoteIdent(name)
	cols := []string{`"id"`}
	for _, f := range ci.fields {
		cols = append(cols, quoteIdent(f))
	}
	selectCols := strings.Join(cols, ", ")
	cols = append(cols, quoteIdent(UpdatedAtColumn))
	if decl.ExtraFields {
		cols = append(cols, quoteIdent(ExtraColumn))
		selectCols += ", " + quoteIdent(ExtraColumn)
	}
	marks := strings.TrimSuffix(strings.Repeat("?, ", len(cols)), ", ")
	var set []string
	for _, c := range cols[1:] {
		set = append(set, c+" = excluded."+c)
	}
	ci.upsertSQL = "INSERT INTO " + table + " (" + strings.Join(cols, ", ") + ") VALUES (" + marks +
		") ON CONFLICT (\"id\") DO UPDATE SET " + strings.Join(set, ", ")
	ci.deleteSQL = "DELETE FROM " + table + ` WHERE "id" = ?`
	ci.selectSQL = "SELECT " + selectCols + " FROM " + table + ` WHERE "id" = ?`
	ci.existsSQL = "SELECT 1 FROM " + table + ` WHERE "id" = ?`
	return ci
}

// createSQL returns the DDL that creates the collection's table and its
// indexes (the declared ones and the one on _updated_at).
func (ci *collectionInfo) createSQL() []string {
	table := quoteIdent(ci.name)
	cols := []string{`"id" TEXT PRIMARY KEY NOT NULL`}
	for i, f := range ci.fields {
		cols = append(cols, quoteIdent(f)+" "+ci.types[i].sqlType())
	}
	cols = append(cols, quoteIdent(UpdatedAtColumn)+" INTEGER NOT NULL DEFAULT 0")
	if ci.decl.ExtraFields {
		cols = append(cols, quoteIdent(ExtraColumn)+" TEXT")
	}
	out := []string{
		"CREATE TABLE " + table + " (\n\t" + strings.Join(cols, ",\n\t") + "\n)",
		"CREATE INDEX " + quoteIdent(ci.name+"__updated_at") + " ON " + table + " (" + quoteIdent(UpdatedAtColumn) + ")",
	}
	for _, idx := range ci.decl.Indexes {
		out = append(out, createIndexSQL(ci.name, idx))
	}
	return out
}

func createIndexSQL(collection string, fields []string) string {
	quoted := make([]string, len(fields))
	for i, f := range fields {
		quoted[i] = quoteIdent(f)
	}
	return "CREATE INDEX " + quoteIdent(indexName(collection, fields)) + " ON " + quoteIdent(collection) + " (" + strings.Join(quoted, ", ") + ")"
}

// fieldType returns the declared type of field, and whether it is declared.
func (ci *collectionInfo) fieldType(field string) (FieldType, bool) {
	t, ok := ci.decl.Fields[field]
	return t, ok
}

// indexCollections rebuilds the per-collection layouts from e.schema.
func (e *Engine) indexCollections() {
	e.cols = make(map[string]*collectionInfo, len(e.schema.Collections))
	for name, c := range e.schema.Collections {
		e.cols[name] = newCollectionInfo(name, c)
	}
}

// collection returns the layout of a declared collection or a VALIDATION
// error naming the unknown collection.
func (e *Engine) collection(name string) (*collectionInfo, error) {
	ci, ok := e.cols[name]
	if !ok {
		for declared := range e.cols {
			if strings.EqualFold(declared, name) {
				return nil, errorf(CodeValidation, "unknown collection %q (did you mean %q? names are case-sensitive)", name, declared)
			}
		}
		return nil, errorf(CodeValidation, "unknown collection %q; declare it in the schema", name)
	}
	return ci, nil
}
