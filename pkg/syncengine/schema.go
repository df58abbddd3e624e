package syncengine

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/opfsync/opfsync/pkg/protocol"
)

// FieldType is the declared type of a collection field.
type FieldType string

// The field types. Every field is nullable; null (or absent) means no value.
const (
	TypeText    FieldType = "text"    // a string
	TypeInteger FieldType = "integer" // a whole number within ±(2^53-1), exact in JS
	TypeReal    FieldType = "real"    // a finite number
	TypeBoolean FieldType = "boolean" // true or false (stored 1/0 in SQL)
	TypeJSON    FieldType = "json"    // any JSON value (stored as JSON text in SQL)
)

func (t FieldType) valid() bool {
	switch t {
	case TypeText, TypeInteger, TypeReal, TypeBoolean, TypeJSON:
		return true
	}
	return false
}

// sqlType is the column type (and so the affinity) a field type maps to.
func (t FieldType) sqlType() string {
	switch t {
	case TypeInteger, TypeBoolean:
		return "INTEGER"
	case TypeReal:
		return "REAL"
	}
	return "TEXT"
}

// Collection declares one collection: its typed fields, its indexes (each a
// list of field names, or "_updated_at"), whether records are write-once,
// and whether fields outside the declaration are accepted (kept in the
// "_extra" JSON column).
type Collection struct {
	Fields      map[string]FieldType `json:"fields"`
	Indexes     [][]string           `json:"indexes,omitempty"`
	Immutable   bool                 `json:"immutable,omitempty"`
	ExtraFields bool                 `json:"extraFields,omitempty"`
}

// Schema is the app's declared data model with its version. Additive changes
// apply at open; a destructive change needs a higher Version and an Upgrades
// step that names it.
type Schema struct {
	Version     int                   `json:"version"`
	Collections map[string]Collection `json:"collections"`
	Upgrades    []UpgradeStep         `json:"upgrades,omitempty"`
}

// UpgradeStep names one destructive schema change and the schema version
// that introduces it. Op is one of "dropCollection", "dropField",
// "changeType" (to the type the new schema declares) or "dropExtraFields".
type UpgradeStep struct {
	Version    int    `json:"version"`
	Op         string `json:"op"`
	Collection string `json:"collection"`
	Field      string `json:"field,omitempty"`
}

// Upgrade step ops.
const (
	StepDropCollection  = "dropCollection"
	StepDropField       = "dropField"
	StepChangeType      = "changeType"
	StepDropExtraFields = "dropExtraFields"
)

// reservedTables are the engine's own tables (and its index
// pending_by_record, since tables and indexes share one SQL namespace); no
// collection may take their name.
var reservedTables = []string{"schema_migrations", "meta", "base", "pending", "pull_state", "pending_by_record", "applied_requests"}

// UpdatedAtColumn is the derived column every collection has: the wall time
// (Unix ms) of the record's newest field stamp.
const UpdatedAtColumn = "_updated_at"

// ExtraColumn holds undeclared fields (as a JSON object) in collections
// declared with ExtraFields.
const ExtraColumn = "_extra"

// validate checks the declaration itself: names, types and index columns.
func (s *Schema) validate() error {
	if s.Version < 1 {
		return errorf(CodeSchema, "schema version must be 1 or more, got %d", s.Version)
	}
	for name, c := range s.Collections {
		if err := protocol.ValidateName("collection", name); err != nil {
			return &Error{Code: CodeSchema, Message: err.Error()}
		}
		lower := strings.ToLower(name)
		if slices.Contains(reservedTables, lower) || strings.HasPrefix(lower, "sqlite_") {
			return errorf(CodeSchema, "collection name %q is reserved by opfsync; choose another", name)
		}
		for other := range s.Collections {
			if other != name && strings.EqualFold(other, name) {
				return errorf(CodeSchema, "collections %q and %q differ only in case; SQL table names are case-insensitive", name, other)
			}
		}
		if len(c.Fields) > protocol.MaxFieldsPerRecord {
			return errorf(CodeSchema, "collection %q declares %d fields, the limit is %d", name, len(c.Fields), protocol.MaxFieldsPerRecord)
		}
		for f, t := range c.Fields {
			if err := protocol.ValidateName("field", f); err != nil {
				return errorf(CodeSchema, "collection %q: %v", name, err)
			}
			if strings.EqualFold(f, "id") {
				return errorf(CodeSchema, "collection %q: field name %q is reserved for the record id", name, f)
			}
			for g := range c.Fields {
				if g != f && strings.EqualFold(g, f) {
					return errorf(CodeSchema, "collection %q: fields %q and %q differ only in case", name, f, g)
				}
			}
			if !t.valid() {
				return errorf(CodeSchema, "collection %q field %q: unknown type %q (use text, integer, real, boolean or json)", name, f, t)
			}
		}
		for _, idx := range c.Indexes {
			if len(idx) == 0 {
				return errorf(CodeSchema, "collection %q: an index needs at least one field", name)
			}
			for _, f := range idx {
				if _, ok := c.Fields[f]; !ok && f != UpdatedAtColumn && f != "id" {
					return errorf(CodeSchema, "collection %q: index on undeclared field %q", name, f)
				}
			}
		}
	}
	if err := s.validateSQLNames(); err != nil {
		return err
	}
	for _, st := range s.Upgrades {
		switch st.Op {
		case StepDropCollection, StepDropField, StepChangeType, StepDropExtraFields:
		default:
			return errorf(CodeSchema, "upgrade step op %q unknown (use %s, %s, %s or %s)", st.Op, StepDropCollection, StepDropField, StepChangeType, StepDropExtraFields)
		}
		if st.Version < 2 || st.Version > s.Version {
			return errorf(CodeSchema, "upgrade step %s %s: version %d must be between 2 and the schema version %d", st.Op, st.target(), st.Version, s.Version)
		}
	}
	return nil
}

// validateSQLNames checks that the tables and indexes the declaration
// creates have distinct names: SQLite keeps tables and indexes in one
// case-insensitive namespace, so a collection named like another's index
// ("todos__updated_at") or an index declared twice could not be created.
func (s *Schema) validateSQLNames() error {
	taken := map[string]string{} // lower-case SQL name → what takes it
	claim := func(name, what string) error {
		if prev, ok := taken[strings.ToLower(name)]; ok {
			return errorf(CodeSchema, "%s and %s would have the same SQL name %q; rename the collection or remove the duplicate index", prev, what, name)
		}
		taken[strings.ToLower(name)] = what
		return nil
	}
	names := slices.Sorted(maps.Keys(s.Collections))
	for _, name := range names {
		if err := claim(name, fmt.Sprintf("collection %q", name)); err != nil {
			return err
		}
	}
	for _, name := range names {
		if err := claim(name+"__updated_at", fmt.Sprintf("the %s index of collection %q", UpdatedAtColumn, name)); err != nil {
			return err
		}
		for _, idx := range s.Collections[name].Indexes {
			if err := claim(indexName(name, idx), fmt.Sprintf("index %v of collection %q", idx, name)); err != nil {
				return err
			}
		}
	}
	return nil
}

func (st UpgradeStep) target() string {
	if st.Field != "" {
		return st.Collection + "." + st.Field
	}
	return st.Collection
}

// indexName is the deterministic SQL name of an index, so the declared and
// existing index sets compare by name.
func indexName(collection string, fields []string) string {
	return collection + "__idx__" + strings.Join(fields, "__")
}

// sortedFields returns the collection's field names in a stable order (the
// column order of its table is creation order; this order is for iteration).
func (c Collection) sortedFields() []string {
	names := make([]string, 0, len(c.Fields))
	for n := range c.Fields {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// quoteIdent quotes an SQL identifier. Names are validated to [A-Za-z0-9_],
// so this never needs escaping, but quoting keeps keywords usable as names.
func quoteIdent(name string) string { return `"` + strings.ReplaceAll(name, `"`, `""`) + `"` }
