package syncengine

import (
	"context"
	"encoding/json"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/opfsync/opfsync/pkg/protocol"
)

// Helpers for the schema tests.

// schemaWith returns testSchema() changed by fn.
func schemaWith(fn func(s *Schema)) *Schema {
	s := testSchema()
	if fn != nil {
		fn(s)
	}
	return s
}

// editCollection changes the collection name of s through fn
// (Collection is a value type, so it must be written back).
func editCollection(s *Schema, name string, fn func(c *Collection)) {
	c := s.Collections[name]
	c.Fields = maps.Clone(c.Fields)
	c.Indexes = slices.Clone(c.Indexes)
	fn(&c)
	s.Collections[name] = c
}

// tryOpen closes te's engine and opens its database with schema, returning
// Open's error. A successful open is closed again, so the caller decides
// what to reopen with (te.open).
func tryOpen(te *testEngine, schema *Schema) error {
	te.t.Helper()
	if err := te.Close(); err != nil {
		te.t.Fatalf("close: %v", err)
	}
	e, err := Open(context.Background(), Options{Path: te.path, VFS: te.vfs, Schema: schema, Now: te.clock.Now})
	if e != nil {
		e.Close()
	}
	return err
}

// tableColumns returns the columns of an SQL table, in order, with their
// declared types, read from the connection directly.
func tableColumns(te *testEngine, table string) map[string]string {
	te.t.Helper()
	out := map[string]string{}
	err := te.call(context.Background(), func() error {
		st, _, err := te.conn.Prepare(`SELECT name, type FROM pragma_table_info(?)`)
		if err != nil {
			return err
		}
		defer st.Close()
		if err := st.BindText(1, table); err != nil {
			return err
		}
		for st.Step() {
			out[st.ColumnText(0)] = st.ColumnText(1)
		}
		return st.Err()
	})
	if err != nil {
		te.t.Fatal(err)
	}
	return out
}

func columnNames(cols map[string]string) []string { return slices.Sorted(maps.Keys(cols)) }

// sqlObjects returns name → type ("table", "index") of the database's
// schema objects, skipping SQLite's own autoindexes.
func sqlObjects(te *testEngine) map[string]string {
	te.t.Helper()
	out := map[string]string{}
	for _, r := range te.query(`SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'`) {
		out[r["name"].(string)] = r["type"].(string)
	}
	return out
}

// queryPlan returns the EXPLAIN QUERY PLAN details of sql, one per line
// (Query accepts EXPLAIN QUERY PLAN: it is read-only).
func queryPlan(te *testEngine, sql string, args ...any) string {
	te.t.Helper()
	var lines []string
	for _, r := range te.query("EXPLAIN QUERY PLAN "+sql, args...) {
		lines = append(lines, r["detail"].(string))
	}
	return strings.Join(lines, "\n")
}

// wantPlanUses fails unless the plan of sql reads through index and sorts
// without a temporary b-tree.
func wantPlanUses(t *testing.T, te *testEngine, index, sql string, args ...any) {
	t.Helper()
	plan := queryPlan(te, sql, args...)
	if !strings.Contains(plan, "USING INDEX "+index) && !strings.Contains(plan, "USING COVERING INDEX "+index) {
		t.Errorf("plan of %q does not use index %s:\n%s", sql, index, plan)
	}
	if strings.Contains(plan, "TEMP B-TREE") {
		t.Errorf("plan of %q sorts in a temp b-tree:\n%s", sql, plan)
	}
}

// exportRecords returns the export's records (which never depend on the
// app schema: they are base + pending).
func exportRecords(te *testEngine) []protocol.RecordState {
	te.t.Helper()
	d, err := te.Export(context.Background())
	if err != nil {
		te.t.Fatal(err)
	}
	return d.Records
}

// remoteState is a live remote record state with every field stamped h by
// the server.
func remoteState(coll, id string, h protocol.HLC, fields map[string]any) protocol.RecordState {
	fs := protocol.Fields{protocol.DeletedField: fieldState(false, h, protocol.OriginServer)}
	for k, v := range fields {
		fs[k] = fieldState(v, h, protocol.OriginServer)
	}
	return protocol.RecordState{Collection: coll, ID: id, Fields: fs}
}

// TestSchemaDeclarationRefused: a declaration that breaks a naming, type or
// index rule is refused with CodeSchema at open, and the database keeps
// working with its previous schema, unchanged.
func TestSchemaDeclarationRefused(t *testing.T) {
	field := func(coll, name string, ft FieldType) func(*Schema) {
		return func(s *Schema) {
			editCollection(s, coll, func(c *Collection) { c.Fields[name] = ft })
		}
	}
	collection := func(name string) func(*Schema) {
		return func(s *Schema) {
			s.Collections[name] = Collection{Fields: map[string]FieldType{"a": TypeText}}
		}
	}
	index := func(coll string, idx ...[]string) func(*Schema) {
		return func(s *Schema) {
			editCollection(s, coll, func(c *Collection) { c.Indexes = append(c.Indexes, idx...) })
		}
	}
	step := func(version int, st UpgradeStep) func(*Schema) {
		return func(s *Schema) {
			s.Version = version
			s.Upgrades = append(s.Upgrades, st)
		}
	}
	cases := []struct {
		name   string
		change func(*Schema)
	}{
		{"version 0", func(s *Schema) { s.Version = 0 }},
		{"negative version", func(s *Schema) { s.Version = -1 }},
		{"empty collection name", collection("")},
		{"collection name starting with a digit", collection("1todos")},
		{"collection name starting with _", collection("_todos")},
		{"collection name with a dash", collection("to-dos")},
		{"collection name with a space", collection("to dos")},
		{"collection name with a quote", collection(`to"dos`)},
		{"collection name too long", collection(strings.Repeat("a", protocol.MaxNameLen+1))},
		{"reserved meta", collection("meta")},
		{"reserved pending", collection("pending")},
		{"reserved base", collection("base")},
		{"reserved pull_state", collection("pull_state")},
		{"reserved schema_migrations", collection("schema_migrations")},
		{"reserved sqlite_ prefix", collection("sqlite_x")},
		{"reserved name in another case", collection("Meta")},
		{"reserved SQLITE_ prefix in another case", collection("SQLITE_stat1")},
		{"engine index name pending_by_record", collection("pending_by_record")},
		{"collection name equal to an index of another collection", collection("todos__updated_at")},
		{"collection name equal to a declared index", collection("todos__idx__done__rank")},
		{"collection names differing only in case", collection("Todos")},
		{"field name id", field("todos", "id", TypeText)},
		{"field name ID", field("todos", "ID", TypeText)},
		{"field name starting with _", field("todos", "_deleted", TypeBoolean)},
		{"field name starting with a digit", field("todos", "2nd", TypeText)},
		{"field name with a dot", field("todos", "a.b", TypeText)},
		{"empty field name", field("todos", "", TypeText)},
		{"field names differing only in case", field("todos", "Title", TypeText)},
		{"unknown type", field("todos", "when", FieldType("date"))},
		{"empty type", field("todos", "when", FieldType(""))},
		{"type in upper case", field("todos", "when", FieldType("TEXT"))},
		{"index on an undeclared field", index("todos", []string{"nope"})},
		{"index on a field of another collection", index("todos", []string{"body"})},
		{"empty index", index("todos", []string{})},
		{"index declared twice", index("todos", []string{"title"}, []string{"title"})},
		{"index repeating the existing one", index("todos", []string{"done", "rank"})},
		{"upgrade step with an unknown op", step(2, UpgradeStep{Version: 2, Op: "renameField", Collection: "todos", Field: "title"})},
		{"upgrade step with an empty op", step(2, UpgradeStep{Version: 2, Collection: "todos"})},
		{"upgrade step at version 1", step(2, UpgradeStep{Version: 1, Op: StepDropField, Collection: "todos", Field: "score"})},
		{"upgrade step after the schema version", step(2, UpgradeStep{Version: 3, Op: StepDropField, Collection: "todos", Field: "score"})},
		{"upgrade step at version 0", step(2, UpgradeStep{Version: 0, Op: StepDropCollection, Collection: "audit"})},
	}

	te := openTest(t, testSchema())
	te.put("todos", Record{"id": "a", "title": "one", "done": true, "rank": 1})
	te.put("notes", Record{"id": "n", "body": "b", "color": "red"})
	te.put("audit", Record{"id": "x", "msg": "m"})
	want := te.snapshot()
	wantObjects := sqlObjects(te)

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			te.withT(t) // the engine opened below closes with this subtest
			s := schemaWith(tc.change)
			err := s.validate()
			wantCode(t, err, CodeSchema)
			wantCode(t, tryOpen(te, s), CodeSchema)
			// The same declaration on a fresh database is refused too.
			path, vfs := newTestDB(t)
			e, err := Open(context.Background(), Options{Path: path, VFS: vfs, Schema: s})
			if e != nil {
				e.Close()
			}
			wantCode(t, err, CodeSchema)
			// The database is unchanged and opens with its schema.
			te.open(testSchema())
			if got := te.snapshot(); got != want {
				t.Fatalf("store changed by a refused schema:\n got %s\nwant %s", got, want)
			}
			if got := sqlObjects(te); !reflect.DeepEqual(got, wantObjects) {
				t.Fatalf("schema objects changed: got %v, want %v", got, wantObjects)
			}
		})
	}

	// Names that are close to the rules but valid are accepted.
	ok := schemaWith(func(s *Schema) {
		s.Collections["Projects2"] = Collection{Fields: map[string]FieldType{"order": TypeInteger, "select": TypeText, "x_1": TypeJSON}, Indexes: [][]string{{"id"}, {UpdatedAtColumn}, {"order", "select"}}}
		s.Collections["metadata"] = Collection{Fields: map[string]FieldType{"a": TypeText}}
		s.Collections[strings.Repeat("b", protocol.MaxNameLen)] = Collection{Fields: map[string]FieldType{}}
	})
	te.withT(t)
	te.reopen(ok)
	te.put("Projects2", Record{"id": "p", "order": 3, "select": "s"})
	if got := te.query(`SELECT "order", "select" FROM projects2`); !reflect.DeepEqual(got, []Record{{"order": int64(3), "select": "s"}}) {
		t.Fatalf("keyword-named fields: %v", got)
	}
	wantPlanUses(t, te, "Projects2__idx__order__select", `SELECT * FROM Projects2 WHERE "order" = 3 ORDER BY "select"`)
}

// withT makes te's helpers report through t (a subtest's); an engine
// opened afterwards is closed when t ends.
func (te *testEngine) withT(t *testing.T) *testEngine {
	te.t = t
	return te
}

// TestSchemaTablesAndIndexes: each collection is an SQL table with one
// typed column per declared field plus id and _updated_at (and _extra when
// it accepts undeclared fields), and the declared indexes and the one on
// _updated_at serve the queries they are for.
func TestSchemaTablesAndIndexes(t *testing.T) {
	te := openTest(t, testSchema())
	for i := range 20 {
		te.put("todos", Record{"id": string(rune('a' + i)), "title": "t", "done": i%2 == 0, "rank": 20 - i})
	}
	tables := []struct {
		name string
		want map[string]string
	}{
		{"todos", map[string]string{"id": "TEXT", "title": "TEXT", "done": "INTEGER", "rank": "INTEGER", "score": "REAL", "meta": "TEXT", UpdatedAtColumn: "INTEGER"}},
		{"notes", map[string]string{"id": "TEXT", "body": "TEXT", UpdatedAtColumn: "INTEGER", ExtraColumn: "TEXT"}},
		{"audit", map[string]string{"id": "TEXT", "msg": "TEXT", UpdatedAtColumn: "INTEGER"}},
	}
	for _, tc := range tables {
		t.Run("table "+tc.name, func(t *testing.T) {
			if got := tableColumns(te, tc.name); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("columns of %s = %v, want %v", tc.name, got, tc.want)
			}
		})
	}
	if got, want := sqlObjects(te), map[string]string{
		"meta": "table", "base": "table", "pending": "table", "pull_state": "table", "schema_migrations": "table", "applied_requests": "table",
		"pending_by_record": "index",
		"todos":             "table", "notes": "table", "audit": "table",
		"todos__updated_at": "index", "notes__updated_at": "index", "audit__updated_at": "index",
		"todos__idx__done__rank": "index",
	}; !reflect.DeepEqual(got, want) {
		t.Fatalf("schema objects = %v, want %v", got, want)
	}

	plans := []struct {
		sql   string
		args  []any
		index string
	}{
		{`SELECT * FROM todos WHERE done = ? ORDER BY rank`, []any{false}, "todos__idx__done__rank"},
		{`SELECT * FROM todos WHERE done = ? AND rank > ? ORDER BY rank`, []any{true, 3}, "todos__idx__done__rank"},
		{`SELECT * FROM todos ORDER BY _updated_at DESC LIMIT 10`, nil, "todos__updated_at"},
		{`SELECT id FROM notes WHERE _updated_at > ? ORDER BY _updated_at`, []any{0}, "notes__updated_at"},
	}
	for _, tc := range plans {
		t.Run("plan "+tc.sql, func(t *testing.T) {
			wantPlanUses(t, te.withT(t), tc.index, tc.sql, tc.args...)
		})
	}
	te.withT(t)
	// The index answers correctly, not just fast.
	rows := te.query(`SELECT id FROM todos WHERE done = ? ORDER BY rank LIMIT 3`, true)
	if want := []Record{{"id": "s"}, {"id": "q"}, {"id": "o"}}; !reflect.DeepEqual(rows, want) {
		t.Fatalf("indexed query = %v, want %v", rows, want)
	}
}

// TestSchemaAdditiveChanges: a new collection, field or index, a removed
// index, or extraFields turned on apply at open with the same version, and
// every record, the base and the outbox survive.
func TestSchemaAdditiveChanges(t *testing.T) {
	remote := stamp(1_600_000_000_000, "srv")
	cases := []struct {
		name   string
		change func(*Schema)
		check  func(t *testing.T, te *testEngine)
	}{
		{
			name: "new collection",
			change: func(s *Schema) {
				s.Collections["projects"] = Collection{Fields: map[string]FieldType{"name": TypeText}, Indexes: [][]string{{"name"}}}
			},
			check: func(t *testing.T, te *testEngine) {
				if got := tableColumns(te, "projects"); !reflect.DeepEqual(columnNames(got), []string{UpdatedAtColumn, "id", "name"}) {
					t.Fatalf("projects columns = %v", got)
				}
				te.put("projects", Record{"id": "p1", "name": "P"})
				if got := te.get("projects", "p1"); !reflect.DeepEqual(got, Record{"id": "p1", "name": "P"}) {
					t.Fatalf("projects/p1 = %v", got)
				}
				wantPlanUses(t, te, "projects__idx__name", `SELECT * FROM projects WHERE name = ?`, "P")
			},
		},
		{
			name: "new field filled from base",
			change: func(s *Schema) {
				editCollection(s, "todos", func(c *Collection) { c.Fields["priority"] = TypeInteger; c.Fields["tag"] = TypeText })
			},
			check: func(t *testing.T, te *testEngine) {
				cols := tableColumns(te, "todos")
				if cols["priority"] != "INTEGER" || cols["tag"] != "TEXT" {
					t.Fatalf("todos columns = %v", cols)
				}
				got := te.query(`SELECT id, priority, tag FROM todos ORDER BY id`)
				want := []Record{
					{"id": "local", "priority": nil, "tag": nil},
					{"id": "r1", "priority": int64(7), "tag": "urgent"},
					{"id": "r2", "priority": nil, "tag": nil}, // "high" is not an integer
				}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("new columns = %v, want %v", got, want)
				}
				if got := te.get("todos", "r1"); got["priority"] != int64(7) || got["title"] != "patched" {
					t.Fatalf("get r1 = %v", got)
				}
				te.patch("todos", "local", Record{"priority": 1})
				if got := te.get("todos", "local")["priority"]; got != int64(1) {
					t.Fatalf("priority after patch = %v", got)
				}
			},
		},
		{
			name: "declared field taken out of _extra",
			change: func(s *Schema) {
				editCollection(s, "notes", func(c *Collection) { c.Fields["color"] = TypeText })
			},
			check: func(t *testing.T, te *testEngine) {
				got := te.query(`SELECT id, color, _extra FROM notes ORDER BY id`)
				want := []Record{{"id": "n1", "color": "red", ExtraColumn: json.RawMessage(`{"size":3}`)}}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("notes = %v, want %v", got, want)
				}
			},
		},
		{
			name: "new index",
			change: func(s *Schema) {
				editCollection(s, "todos", func(c *Collection) { c.Indexes = append(c.Indexes, []string{"title"}) })
			},
			check: func(t *testing.T, te *testEngine) {
				if sqlObjects(te)["todos__idx__title"] != "index" {
					t.Fatal("index todos__idx__title not created")
				}
				wantPlanUses(t, te, "todos__idx__title", `SELECT * FROM todos WHERE title = ?`, "patched")
				wantPlanUses(t, te, "todos__idx__done__rank", `SELECT * FROM todos WHERE done = ? ORDER BY rank`, true)
			},
		},
		{
			name: "removed index",
			change: func(s *Schema) {
				editCollection(s, "todos", func(c *Collection) { c.Indexes = nil })
			},
			check: func(t *testing.T, te *testEngine) {
				if _, ok := sqlObjects(te)["todos__idx__done__rank"]; ok {
					t.Fatal("removed index still exists")
				}
				if plan := queryPlan(te, `SELECT * FROM todos WHERE done = ? ORDER BY rank`, true); strings.Contains(plan, "todos__idx__done__rank") {
					t.Fatalf("plan uses the removed index: %s", plan)
				}
				wantPlanUses(t, te, "todos__updated_at", `SELECT * FROM todos ORDER BY _updated_at DESC LIMIT 10`)
			},
		},
		{
			name: "extraFields turned on",
			change: func(s *Schema) {
				editCollection(s, "todos", func(c *Collection) { c.ExtraFields = true })
			},
			check: func(t *testing.T, te *testEngine) {
				// The remote undeclared fields kept in base show up as extras.
				got := te.query(`SELECT id, _extra FROM todos ORDER BY id`)
				want := []Record{
					{"id": "local", ExtraColumn: nil},
					{"id": "r1", ExtraColumn: json.RawMessage(`{"priority":7,"tag":"urgent"}`)},
					{"id": "r2", ExtraColumn: json.RawMessage(`{"priority":"high"}`)},
				}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("todos extras = %v, want %v", got, want)
				}
				te.put("todos", Record{"id": "x", "title": "x", "free": true})
				if got := te.get("todos", "x")["free"]; !reflect.DeepEqual(got, json.RawMessage("true")) {
					t.Fatalf("extra field = %v", got)
				}
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			te := openTest(t, testSchema())
			// Remote records whose undeclared fields go to base only.
			te.pull(
				remoteState("todos", "r1", remote, map[string]any{"title": "remote", "priority": 7, "tag": "urgent"}),
				remoteState("todos", "r2", remote, map[string]any{"title": "two", "priority": "high"}),
			)
			te.put("todos", Record{"id": "local", "title": "mine", "done": true, "rank": 2, "score": 0.5, "meta": map[string]any{"k": 1}})
			te.patch("todos", "r1", Record{"title": "patched", "done": true})
			te.put("notes", Record{"id": "n1", "body": "b", "color": "red", "size": 3})
			te.put("audit", Record{"id": "x1", "msg": "m"})
			before := exportRecords(te)
			pendingBefore := te.pending()
			getsBefore := map[string]Record{}
			for _, k := range [][2]string{{"todos", "local"}, {"todos", "r1"}, {"todos", "r2"}, {"notes", "n1"}, {"audit", "x1"}} {
				getsBefore[k[0]+"/"+k[1]] = te.get(k[0], k[1])
			}

			s := schemaWith(tc.change)
			te.reopen(s)
			te.withT(t)
			if got := te.schemaCollections(); !reflect.DeepEqual(got, s.Collections) {
				t.Fatalf("stored schema = %v, want %v", got, s.Collections)
			}
			if got := exportRecords(te); !reflect.DeepEqual(got, before) {
				t.Fatalf("base/pending changed by an additive change:\n got %v\nwant %v", got, before)
			}
			if got := te.pending(); !reflect.DeepEqual(got, pendingBefore) {
				t.Fatalf("outbox changed: %v, want %v", got, pendingBefore)
			}
			for k, was := range getsBefore {
				coll, id, _ := strings.Cut(k, "/")
				now := te.get(coll, id)
				for f, v := range was {
					if _, declared := testSchema().Collections[coll].Fields[f]; !declared && f != "id" {
						continue // an extra that became a column may change its Go type
					}
					if !reflect.DeepEqual(now[f], v) {
						t.Fatalf("%s.%s = %v after the change, was %v", k, f, now[f], v)
					}
				}
			}
			verifyVisible(t, te.Engine)
			tc.check(t, te)
			verifyVisible(t, te.Engine)
			// The change is stored: reopening with the same schema changes nothing.
			snap := te.snapshot()
			te.reopen(s)
			te.withT(t)
			if got := te.snapshot(); got != snap {
				t.Fatalf("second open with the same schema changed the store")
			}
		})
	}
}

// TestSchemaAdditiveChangeIsOneTransaction: when one step of a schema change
// fails, none of it is applied.
func TestSchemaAdditiveChangeIsOneTransaction(t *testing.T) {
	te := openTest(t, testSchema())
	te.put("todos", Record{"id": "a", "title": "one"})
	// A table the engine does not know blocks the creation of "zzz" (which
	// is created after "aaa").
	if err := te.call(context.Background(), func() error { return te.conn.Exec(`CREATE TABLE zzz (x)`) }); err != nil {
		t.Fatal(err)
	}
	want := te.snapshot()
	s := schemaWith(func(s *Schema) {
		s.Collections["aaa"] = Collection{Fields: map[string]FieldType{"a": TypeText}}
		s.Collections["zzz"] = Collection{Fields: map[string]FieldType{"a": TypeText}}
		editCollection(s, "todos", func(c *Collection) { c.Fields["extra"] = TypeText; c.Indexes = nil })
	})
	if err := tryOpen(te, s); err == nil {
		t.Fatal("schema change over a conflicting table succeeded")
	}
	te.open(testSchema())
	objects := sqlObjects(te)
	if _, ok := objects["aaa"]; ok {
		t.Fatal("collection aaa created by a failed schema change")
	}
	if objects["todos__idx__done__rank"] != "index" {
		t.Fatal("index dropped by a failed schema change")
	}
	if _, ok := tableColumns(te, "todos")["extra"]; ok {
		t.Fatal("field added by a failed schema change")
	}
	if got := te.snapshot(); got != want {
		t.Fatalf("store changed by a failed schema change:\n got %s\nwant %s", got, want)
	}
}

// TestSchemaUndeclaredCollectionKeptInBase: remote records of a collection
// the app does not declare (yet) are kept in base and appear, merged with
// later pulls, when the collection is declared.
func TestSchemaUndeclaredCollectionKeptInBase(t *testing.T) {
	te := openTest(t, testSchema())
	h1, h2 := stamp(1_600_000_000_000, "srv"), stamp(1_600_000_000_500, "srv")
	res := te.pull(
		remoteState("projects", "p1", h1, map[string]any{"name": "one", "n": 1}),
		remoteState("projects", "p2", h1, map[string]any{"name": "two", "n": "not a number"}),
		protocol.RecordState{Collection: "projects", ID: "gone", Fields: protocol.Fields{
			"name":                fieldState("deleted", h1, protocol.OriginServer),
			protocol.DeletedField: fieldState(true, h1, protocol.OriginServer),
		}},
	)
	if res.Changed != 3 || res.Skipped != 0 {
		t.Fatalf("pull result %+v, want 3 changed", res)
	}
	_, err := te.Query(context.Background(), `SELECT * FROM projects`)
	wantCode(t, err, CodeValidation)
	_, err = te.Get(context.Background(), "projects", "p1")
	wantCode(t, err, CodeValidation)
	// A later pull, still undeclared, merges into base.
	te.pull(protocol.RecordState{Collection: "projects", ID: "p1", Fields: protocol.Fields{"name": fieldState("one v2", h2, protocol.OriginServer)}})

	s := schemaWith(func(s *Schema) {
		s.Collections["projects"] = Collection{Fields: map[string]FieldType{"name": TypeText, "n": TypeInteger}}
	})
	te.reopen(s)
	got := te.query(`SELECT id, name, n, _updated_at FROM projects ORDER BY id`)
	want := []Record{
		{"id": "p1", "name": "one v2", "n": int64(1), UpdatedAtColumn: h2.Wall},
		{"id": "p2", "name": "two", "n": nil, UpdatedAtColumn: h1.Wall},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("projects = %v, want %v", got, want)
	}
	if r := te.get("projects", "gone"); r != nil {
		t.Fatalf("deleted remote record visible: %v", r)
	}
	verifyVisible(t, te.Engine)
}

// TestSchemaDestructiveChanges: dropping a field or collection, changing a
// type or turning off extraFields is refused with the same version or
// without an upgrade step (database unchanged), and applied with both.
func TestSchemaDestructiveChanges(t *testing.T) {
	cases := []struct {
		name   string
		change func(*Schema)
		steps  []UpgradeStep
		check  func(t *testing.T, te *testEngine)
	}{
		{
			name:   "drop field",
			change: func(s *Schema) { editCollection(s, "todos", func(c *Collection) { delete(c.Fields, "score") }) },
			steps:  []UpgradeStep{{Version: 2, Op: StepDropField, Collection: "todos", Field: "score"}},
			check: func(t *testing.T, te *testEngine) {
				if _, ok := tableColumns(te, "todos")["score"]; ok {
					t.Fatal("dropped field still a column")
				}
				if got := te.get("todos", "a"); !reflect.DeepEqual(got, Record{"id": "a", "title": "12", "done": true, "rank": int64(5), "meta": nil}) {
					t.Fatalf("todos/a = %v", got)
				}
				_, err := te.Put(context.Background(), "todos", Record{"id": "z", "score": 1.0})
				wantCode(t, err, CodeValidation)
			},
		},
		{
			name: "drop an indexed field with its index",
			change: func(s *Schema) {
				editCollection(s, "todos", func(c *Collection) { delete(c.Fields, "rank"); c.Indexes = [][]string{{"done"}} })
			},
			steps: []UpgradeStep{{Version: 2, Op: StepDropField, Collection: "todos", Field: "rank"}},
			check: func(t *testing.T, te *testEngine) {
				objects := sqlObjects(te)
				if _, ok := objects["todos__idx__done__rank"]; ok {
					t.Fatal("the index on the dropped field still exists")
				}
				if objects["todos__idx__done"] != "index" || objects["todos__updated_at"] != "index" {
					t.Fatalf("indexes after the rebuild: %v", objects)
				}
				wantPlanUses(t, te, "todos__idx__done", `SELECT id FROM todos WHERE done = ?`, true)
				if got := te.query(`SELECT id, done FROM todos ORDER BY id`); !reflect.DeepEqual(got, []Record{{"id": "a", "done": true}, {"id": "b", "done": nil}, {"id": "r1", "done": false}}) {
					t.Fatalf("todos = %v", got)
				}
			},
		},
		{
			name:   "drop collection",
			change: func(s *Schema) { delete(s.Collections, "audit") },
			steps:  []UpgradeStep{{Version: 2, Op: StepDropCollection, Collection: "audit"}},
			check: func(t *testing.T, te *testEngine) {
				if _, ok := sqlObjects(te)["audit"]; ok {
					t.Fatal("dropped collection's table still exists")
				}
				if _, ok := sqlObjects(te)["audit__updated_at"]; ok {
					t.Fatal("dropped collection's index still exists")
				}
				_, err := te.Get(context.Background(), "audit", "x1")
				wantCode(t, err, CodeValidation)
				// The user's unsynced writes are never lost to a schema
				// change: they stay queued and in the export.
				queued := 0
				for _, m := range te.pending() {
					if m.Collection == "audit" {
						queued++
					}
				}
				if queued == 0 {
					t.Fatal("dropping the collection dropped its unsynced writes")
				}
				exported := 0
				for _, r := range exportRecords(te) {
					if r.Collection == "audit" {
						exported++
					}
				}
				if exported == 0 {
					t.Fatal("dropping the collection dropped its records from base/outbox")
				}
				if got := te.get("todos", "a")["title"]; got != "12" {
					t.Fatalf("other collection lost data: %v", got)
				}
			},
		},
		{
			name: "change types",
			change: func(s *Schema) {
				editCollection(s, "todos", func(c *Collection) {
					c.Fields["title"] = TypeInteger
					c.Fields["rank"] = TypeReal
					c.Fields["score"] = TypeInteger
					c.Fields["done"] = TypeText
				})
			},
			steps: []UpgradeStep{
				{Version: 2, Op: StepChangeType, Collection: "todos", Field: "title"},
				{Version: 2, Op: StepChangeType, Collection: "todos", Field: "rank"},
				{Version: 2, Op: StepChangeType, Collection: "todos", Field: "score"},
				{Version: 2, Op: StepChangeType, Collection: "todos", Field: "done"},
			},
			check: func(t *testing.T, te *testEngine) {
				cols := tableColumns(te, "todos")
				if cols["title"] != "INTEGER" || cols["rank"] != "REAL" || cols["score"] != "INTEGER" || cols["done"] != "TEXT" {
					t.Fatalf("column types after the change: %v", cols)
				}
				// Conformance is by JSON kind: the string "12" is no
				// integer, 5 is a real, 3 (a whole real) is an integer,
				// 2.5 is not, and a boolean is no text.
				got := te.query(`SELECT id, title, rank, score, done FROM todos ORDER BY id`)
				want := []Record{
					{"id": "a", "title": nil, "rank": float64(5), "score": int64(3), "done": nil},
					{"id": "b", "title": nil, "rank": float64(-2), "score": nil, "done": nil},
					{"id": "r1", "title": nil, "rank": nil, "score": nil, "done": nil},
				}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("converted values = %v, want %v", got, want)
				}
				// New writes follow the new types.
				te.patch("todos", "a", Record{"title": 12, "done": "yes"})
				if got := te.get("todos", "a"); got["title"] != int64(12) || got["done"] != "yes" {
					t.Fatalf("todos/a after patch = %v", got)
				}
				_, err := te.Patch(context.Background(), "todos", "a", Record{"title": "twelve"})
				wantCode(t, err, CodeValidation)
			},
		},
		{
			name:   "turn off extraFields",
			change: func(s *Schema) { editCollection(s, "notes", func(c *Collection) { c.ExtraFields = false }) },
			steps:  []UpgradeStep{{Version: 2, Op: StepDropExtraFields, Collection: "notes"}},
			check: func(t *testing.T, te *testEngine) {
				if _, ok := tableColumns(te, "notes")[ExtraColumn]; ok {
					t.Fatal("_extra column still exists")
				}
				if got := te.get("notes", "n1"); !reflect.DeepEqual(got, Record{"id": "n1", "body": "b"}) {
					t.Fatalf("notes/n1 = %v", got)
				}
				_, err := te.Put(context.Background(), "notes", Record{"id": "n2", "color": "red"})
				wantCode(t, err, CodeValidation)
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			te := openTest(t, testSchema())
			te.pull(remoteState("todos", "r1", stamp(1_600_000_000_000, "srv"), map[string]any{"title": "remote", "done": false}))
			te.put("todos", Record{"id": "a", "title": "12", "done": true, "rank": 5, "score": 3.0})
			te.put("todos", Record{"id": "b", "title": "x", "rank": -2, "score": 2.5})
			te.put("notes", Record{"id": "n1", "body": "b", "color": "red"})
			te.put("audit", Record{"id": "x1", "msg": "m"})
			want := te.snapshot()
			unchanged := func(t *testing.T) {
				t.Helper()
				te.open(testSchema())
				te.withT(t)
				if got := te.snapshot(); got != want {
					t.Fatalf("store changed by a refused schema change:\n got %s\nwant %s", got, want)
				}
				verifyVisible(t, te.Engine)
			}

			sameVersion := schemaWith(tc.change)
			wantCode(t, tryOpen(te, sameVersion), CodeSchema)
			unchanged(t)

			noStep := schemaWith(tc.change)
			noStep.Version = 2
			wantCode(t, tryOpen(te, noStep), CodeSchema)
			unchanged(t)

			// A step at the same version as the stored schema does not count.
			oldStep := schemaWith(tc.change)
			oldStep.Version = 2
			for _, st := range tc.steps {
				st.Version = 1
				oldStep.Upgrades = append(oldStep.Upgrades, st)
			}
			wantCode(t, tryOpen(te, oldStep), CodeSchema)
			unchanged(t)

			// Steps for all but one change are not enough.
			if len(tc.steps) > 1 {
				partial := schemaWith(tc.change)
				partial.Version = 2
				partial.Upgrades = tc.steps[1:]
				wantCode(t, tryOpen(te, partial), CodeSchema)
				unchanged(t)
			}

			// A step naming something else is not enough.
			wrong := schemaWith(tc.change)
			wrong.Version = 2
			wrong.Upgrades = []UpgradeStep{{Version: 2, Op: StepDropField, Collection: "todos", Field: "nosuch"}}
			wantCode(t, tryOpen(te, wrong), CodeSchema)
			unchanged(t)

			withStep := schemaWith(tc.change)
			withStep.Version = 2
			withStep.Upgrades = tc.steps
			te.reopen(withStep)
			te.withT(t)
			verifyVisible(t, te.Engine)
			tc.check(t, te)
			verifyVisible(t, te.Engine)

			// Version 2 is stored: the same schema (steps or not) opens and
			// changes nothing; the old one is now older than the data.
			snap := te.snapshot()
			again := schemaWith(tc.change)
			again.Version = 2
			te.reopen(again)
			te.withT(t)
			if got := te.snapshot(); got != snap {
				t.Fatal("reopening with the applied schema changed the store")
			}
			wantCode(t, tryOpen(te, testSchema()), CodeSchema)
			te.open(again)
		})
	}
}

// TestSchemaVersionRules: a declared version lower than the stored one is
// refused; a higher version with only additive changes applies; a nil
// schema keeps the stored one.
func TestSchemaVersionRules(t *testing.T) {
	v2 := schemaWith(func(s *Schema) {
		s.Version = 2
		s.Collections["projects"] = Collection{Fields: map[string]FieldType{"name": TypeText}}
	})
	cases := []struct {
		name string
		run  func(t *testing.T, te *testEngine)
	}{
		{"lower version refused", func(t *testing.T, te *testEngine) {
			te.reopen(v2)
			te.withT(t)
			want := te.snapshot()
			wantCode(t, tryOpen(te, testSchema()), CodeSchema)
			older := schemaWith(func(s *Schema) { s.Collections = v2.Collections })
			wantCode(t, tryOpen(te, older), CodeSchema)
			te.open(v2)
			if got := te.snapshot(); got != want {
				t.Fatal("store changed by a refused older schema")
			}
		}},
		{"higher version with additive changes only", func(t *testing.T, te *testEngine) {
			te.reopen(v2)
			te.withT(t)
			te.put("projects", Record{"id": "p", "name": "n"})
			if got := te.get("todos", "a"); got["title"] != "one" {
				t.Fatalf("todos/a = %v", got)
			}
		}},
		{"upgrade step of an earlier version does not count", func(t *testing.T, te *testEngine) {
			te.reopen(v2)
			te.withT(t)
			want := te.snapshot()
			v3 := schemaWith(func(s *Schema) {
				s.Version = 3
				s.Collections = maps.Clone(v2.Collections)
				editCollection(s, "todos", func(c *Collection) { delete(c.Fields, "score") })
				s.Upgrades = []UpgradeStep{{Version: 2, Op: StepDropField, Collection: "todos", Field: "score"}}
			})
			wantCode(t, tryOpen(te, v3), CodeSchema)
			te.open(v2)
			if got := te.snapshot(); got != want {
				t.Fatal("store changed by a refused schema")
			}
			v3.Upgrades[0].Version = 3
			te.reopen(v3)
			if _, ok := tableColumns(te, "todos")["score"]; ok {
				t.Fatal("score not dropped")
			}
		}},
		{"same version, same schema changes nothing", func(t *testing.T, te *testEngine) {
			want := te.snapshot()
			te.reopen(testSchema())
			te.withT(t)
			if got := te.snapshot(); got != want {
				t.Fatal("reopen with the same schema changed the store")
			}
		}},
		{"nil schema keeps the stored one", func(t *testing.T, te *testEngine) {
			te.reopen(v2)
			te.withT(t)
			want := te.snapshot()
			te.reopen(nil)
			te.withT(t)
			if got := te.schemaCollections(); !reflect.DeepEqual(got, v2.Collections) {
				t.Fatalf("schema after nil open = %v", got)
			}
			if got := te.snapshot(); got != want {
				t.Fatal("nil schema changed the store")
			}
			// Writes are still validated against the stored declaration.
			te.put("projects", Record{"id": "p2", "name": "x"})
			_, err := te.Put(context.Background(), "todos", Record{"id": "b", "nope": 1})
			wantCode(t, err, CodeValidation)
			_, err = te.Put(context.Background(), "todos", Record{"id": "b", "rank": "high"})
			wantCode(t, err, CodeValidation)
			// The stored version still guards against older apps.
			wantCode(t, tryOpen(te, testSchema()), CodeSchema)
			te.open(nil)
		}},
		{"nil schema on a new database has no collections", func(t *testing.T, _ *testEngine) {
			te := openTest(t, nil)
			if got := te.schemaCollections(); len(got) != 0 {
				t.Fatalf("collections = %v", got)
			}
			_, err := te.Put(context.Background(), "todos", Record{"id": "a"})
			wantCode(t, err, CodeValidation)
			// Declaring later creates everything.
			te.reopen(testSchema())
			te.put("todos", Record{"id": "a", "title": "x"})
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			te := openTest(t, testSchema())
			te.put("todos", Record{"id": "a", "title": "one"})
			tc.run(t, te)
			verifyVisible(t, te.Engine)
		})
	}
}
