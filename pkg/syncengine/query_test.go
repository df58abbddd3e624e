package syncengine

import (
	"context"
	"encoding/json"
	"reflect"
	"slices"
	"testing"

	"github.com/opfsync/opfsync/pkg/protocol"
)

// queryFixture opens an engine with a few records of known content:
// todos a (every field set), b (false/zero values), c (only a title), gone
// (deleted), r (remote, with a value that does not conform to its type);
// notes a with extra fields.
func queryFixture(t *testing.T) *testEngine {
	te := openTest(t, testSchema())
	te.put("todos", Record{"id": "a", "title": "A", "done": true, "rank": 1, "score": 1.5, "meta": map[string]any{"k": "v", "n": []any{1, nil}}})
	te.put("todos", Record{"id": "b", "title": "B", "done": false, "rank": 0, "score": 2.0, "meta": "text"})
	te.put("todos", Record{"id": "c", "title": "C"})
	te.put("todos", Record{"id": "gone", "title": "G"})
	te.del("todos", "gone")
	h := stamp(1_600_000_000_000, "srv")
	te.pull(protocol.RecordState{Collection: "todos", ID: "r", Fields: protocol.Fields{
		"title":               fieldState("R", h, protocol.OriginServer),
		"rank":                fieldState("not a number", h, protocol.OriginServer),
		"done":                fieldState(true, h, protocol.OriginServer),
		protocol.DeletedField: fieldState(false, h, protocol.OriginServer),
	}})
	te.put("notes", Record{"id": "a", "body": "note A", "color": "red", "tags": []any{"x"}})
	return te
}

const fixtureWall = int64(1_700_000_000_000)

// TestGet: Get returns {id, declared fields} with the Go types the JS API
// maps to JS values, nil for a missing or deleted id, and refuses an
// unknown collection.
func TestGet(t *testing.T) {
	te := queryFixture(t)
	cases := []struct {
		name     string
		coll, id string
		want     Record
		code     Code
	}{
		{"every type", "todos", "a", Record{"id": "a", "title": "A", "done": true, "rank": int64(1), "score": 1.5, "meta": json.RawMessage(`{"k":"v","n":[1,null]}`)}, ""},
		{"false and zero values", "todos", "b", Record{"id": "b", "title": "B", "done": false, "rank": int64(0), "score": float64(2), "meta": json.RawMessage(`"text"`)}, ""},
		{"missing fields are nil", "todos", "c", Record{"id": "c", "title": "C", "done": nil, "rank": nil, "score": nil, "meta": nil}, ""},
		{"a remote value of the wrong type is nil", "todos", "r", Record{"id": "r", "title": "R", "done": true, "rank": nil, "score": nil, "meta": nil}, ""},
		{"extra fields as JSON", "notes", "a", Record{"id": "a", "body": "note A", "color": json.RawMessage(`"red"`), "tags": json.RawMessage(`["x"]`)}, ""},
		{"missing id", "todos", "nope", nil, ""},
		{"deleted id", "todos", "gone", nil, ""},
		{"id of another collection", "audit", "a", nil, ""},
		{"unknown collection", "ghosts", "a", nil, CodeValidation},
		{"collection name in another case", "Todos", "a", nil, CodeValidation},
		{"engine table", "pending", "a", nil, CodeValidation},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := te.Get(context.Background(), tc.coll, tc.id)
			if tc.code != "" {
				wantCode(t, err, tc.code)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.want == nil {
				if got != nil {
					t.Fatalf("Get = %#v, want nil", got)
				}
				return
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Get = %#v,\n want %#v", got, tc.want)
			}
		})
	}
}

// TestGetExtraFields: a collection with extraFields returns its undeclared
// fields too; a put replaces them, a patch adds to them, null removes one.
func TestGetExtraFields(t *testing.T) {
	te := openTest(t, testSchema())
	steps := []struct {
		name  string
		write func()
		want  Record
	}{
		{"put with extras", func() { te.put("notes", Record{"id": "n", "body": "one", "color": "red", "tags": []any{1, 2}}) },
			Record{"id": "n", "body": "one", "color": json.RawMessage(`"red"`), "tags": json.RawMessage(`[1,2]`)}},
		{"put replaces the extras", func() { te.put("notes", Record{"id": "n", "body": "two", "size": 3}) },
			Record{"id": "n", "body": "two", "size": json.RawMessage(`3`)}},
		{"patch adds an extra", func() { te.patch("notes", "n", Record{"mood": map[string]any{"ok": true}}) },
			Record{"id": "n", "body": "two", "size": json.RawMessage(`3`), "mood": json.RawMessage(`{"ok":true}`)}},
		{"patch with null removes an extra", func() { te.patch("notes", "n", Record{"size": nil}) },
			Record{"id": "n", "body": "two", "mood": json.RawMessage(`{"ok":true}`)}},
		{"put without extras clears them", func() { te.put("notes", Record{"id": "n"}) },
			Record{"id": "n", "body": nil}},
		{"delete", func() { te.del("notes", "n") }, nil},
		{"put after delete starts fresh", func() { te.put("notes", Record{"id": "n", "again": "yes"}) },
			Record{"id": "n", "body": nil, "again": json.RawMessage(`"yes"`)}},
	}
	for _, st := range steps {
		st.write()
		got := te.get("notes", "n")
		if !reflect.DeepEqual(got, st.want) {
			t.Fatalf("%s: Get = %#v, want %#v", st.name, got, st.want)
		}
		verifyVisible(t, te.Engine)
	}
	if rows := te.query(`SELECT _extra FROM notes`); !reflect.DeepEqual(rows, []Record{{ExtraColumn: json.RawMessage(`{"again":"yes"}`)}}) {
		t.Fatalf("_extra column = %v", rows)
	}
}

// TestQueryTyping: columns that come from a collection field are typed by
// the declared type (through aliases, joins, subqueries and CTEs); any
// other column by its SQLite storage class.
func TestQueryTyping(t *testing.T) {
	te := queryFixture(t)
	raw := func(s string) json.RawMessage { return json.RawMessage(s) }
	cases := []struct {
		name string
		sql  string
		want []Record
	}{
		{"declared fields", `SELECT id, title, done, rank, score, meta FROM todos WHERE id IN ('a', 'b', 'c') ORDER BY id`, []Record{
			{"id": "a", "title": "A", "done": true, "rank": int64(1), "score": 1.5, "meta": raw(`{"k":"v","n":[1,null]}`)},
			{"id": "b", "title": "B", "done": false, "rank": int64(0), "score": float64(2), "meta": raw(`"text"`)},
			{"id": "c", "title": "C", "done": nil, "rank": nil, "score": nil, "meta": nil},
		}},
		{"star includes _updated_at", `SELECT * FROM todos WHERE id = 'b'`, []Record{
			{"id": "b", "title": "B", "done": false, "rank": int64(0), "score": float64(2), "meta": raw(`"text"`), UpdatedAtColumn: fixtureWall},
		}},
		{"star with _extra", `SELECT * FROM notes`, []Record{
			{"id": "a", "body": "note A", UpdatedAtColumn: fixtureWall, ExtraColumn: raw(`{"color":"red","tags":["x"]}`)},
		}},
		{"aliases", `SELECT done AS d, rank AS r, score AS s, meta AS m, title AS "T" FROM todos WHERE id = 'a'`, []Record{
			{"d": true, "r": int64(1), "s": 1.5, "m": raw(`{"k":"v","n":[1,null]}`), "T": "A"},
		}},
		{"table alias and qualified names", `SELECT t.done, t."rank" FROM todos AS t WHERE t.id = 'b'`, []Record{{"done": false, "rank": int64(0)}}},
		{"case-insensitive names (result named as declared)", `SELECT DONE, Score FROM TODOS WHERE id = 'a'`, []Record{{"done": true, "score": 1.5}}},
		{"join", `SELECT t.id, t.done, n.body, n._extra AS x FROM todos t JOIN notes n ON n.id = t.id`, []Record{
			{"id": "a", "done": true, "body": "note A", "x": raw(`{"color":"red","tags":["x"]}`)},
		}},
		{"left join with no match", `SELECT t.id, n.body FROM todos t LEFT JOIN notes n ON n.id = t.id WHERE t.id = 'b'`, []Record{{"id": "b", "body": nil}}},
		{"subquery", `SELECT d FROM (SELECT done AS d FROM todos WHERE id IN ('a', 'b')) ORDER BY d`, []Record{{"d": false}, {"d": true}}},
		{"CTE", `WITH c AS (SELECT id, done FROM todos) SELECT done FROM c WHERE id = 'a'`, []Record{{"done": true}}},
		{"count is an integer", `SELECT count(*) AS n FROM todos`, []Record{{"n": int64(4)}}},
		{"aggregates by storage class", `SELECT max(rank) AS m, sum(score) AS s, total(rank) AS tr FROM todos WHERE id IN ('a', 'b')`, []Record{{"m": int64(1), "s": 3.5, "tr": float64(1)}}},
		{"an expression over a boolean is a number", `SELECT done = 1 AS x, NOT done AS y, done + 0 AS z FROM todos WHERE id = 'a'`, []Record{{"x": int64(1), "y": int64(0), "z": int64(1)}}},
		{"literals", `SELECT 'x' AS s, NULL AS n, 1.5 AS f, 2 AS i, x'0001' AS b`, []Record{{"s": "x", "n": nil, "f": 1.5, "i": int64(2), "b": []byte{0, 1}}}},
		{"json functions are plain", `SELECT json_extract(meta, '$.k') AS k FROM todos WHERE id = 'a'`, []Record{{"k": "v"}}},
		{"_updated_at is an integer", `SELECT _updated_at FROM todos WHERE id = 'r'`, []Record{{UpdatedAtColumn: int64(1_600_000_000_000)}}},
		{"engine tables are plain", `SELECT collection, id, op FROM pending WHERE id = 'gone' ORDER BY seq`, []Record{
			{"collection": "todos", "id": "gone", "op": "put"}, {"collection": "todos", "id": "gone", "op": "delete"},
		}},
		{"no rows", `SELECT id FROM todos WHERE id = 'gone'`, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rows, err := te.Query(context.Background(), tc.sql)
			if err != nil {
				t.Fatal(err)
			}
			if got := rows.Records(); !reflect.DeepEqual(got, tc.want) && !(len(got) == 0 && len(tc.want) == 0) {
				t.Fatalf("rows = %#v,\n want %#v", got, tc.want)
			}
		})
	}
	// The column order and names of the result.
	rows, err := te.Query(context.Background(), `SELECT * FROM todos WHERE id = 'a'`)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"id", "done", "meta", "rank", "score", "title", UpdatedAtColumn}; !slices.Equal(rows.Columns, want) {
		t.Fatalf("columns = %v, want %v", rows.Columns, want)
	}
	// Rows marshal as an array of objects, JSON fields inline.
	j, _ := json.Marshal(rows)
	if want := `[{"_updated_at":1700000000000,"done":true,"id":"a","meta":{"k":"v","n":[1,null]},"rank":1,"score":1.5,"title":"A"}]`; string(j) != want {
		t.Fatalf("rows JSON = %s, want %s", j, want)
	}
}

// TestQueryArgs: every supported Go argument type binds to the SQL value it
// stands for; a wrong count or an unsupported type is refused.
func TestQueryArgs(t *testing.T) {
	te := queryFixture(t)
	ids := func(rows []Record) []string {
		var out []string
		for _, r := range rows {
			out = append(out, r["id"].(string))
		}
		return out
	}
	cases := []struct {
		name string
		sql  string
		args []any
		want []string
	}{
		{"bool false matches done = 0", `SELECT id FROM todos WHERE done = ? ORDER BY id`, []any{false}, []string{"b"}},
		{"bool true matches done = 1", `SELECT id FROM todos WHERE done = ? ORDER BY id`, []any{true}, []string{"a", "r"}},
		{"nil is NULL", `SELECT id FROM todos WHERE ? IS NULL AND done IS ? ORDER BY id`, []any{nil, nil}, []string{"c"}},
		{"float", `SELECT id FROM todos WHERE score = ?`, []any{1.5}, []string{"a"}},
		{"whole float matches a real", `SELECT id FROM todos WHERE score = ?`, []any{2.0}, []string{"b"}},
		{"whole float matches an integer", `SELECT id FROM todos WHERE rank = ?`, []any{1.0}, []string{"a"}},
		{"float32", `SELECT id FROM todos WHERE score = ?`, []any{float32(1.5)}, []string{"a"}},
		{"int", `SELECT id FROM todos WHERE rank = ?`, []any{0}, []string{"b"}},
		{"int64", `SELECT id FROM todos WHERE rank = ?`, []any{int64(1)}, []string{"a"}},
		{"uint8", `SELECT id FROM todos WHERE rank = ?`, []any{uint8(1)}, []string{"a"}},
		{"json.Number", `SELECT id FROM todos WHERE rank > ? ORDER BY id`, []any{json.Number("0.5")}, []string{"a"}},
		{"string", `SELECT id FROM todos WHERE title = ?`, []any{"B"}, []string{"b"}},
		{"string against an integer column converts by affinity", `SELECT id FROM todos WHERE rank = ?`, []any{"1"}, []string{"a"}}, // INTEGER affinity converts
		{"json.RawMessage is JSON text", `SELECT id FROM todos WHERE meta = ?`, []any{json.RawMessage(`"text"`)}, []string{"b"}},
		{"several, by position", `SELECT id FROM todos WHERE title >= ? AND title <= ? AND done = ? ORDER BY id`, []any{"A", "C", true}, []string{"a"}},
		{"numbered parameters", `SELECT id FROM todos WHERE rank = ?1 OR score = ?1`, []any{1}, []string{"a"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := ids(te.withT(t).query(tc.sql, tc.args...)); !slices.Equal(got, tc.want) {
				t.Fatalf("ids = %v, want %v", got, tc.want)
			}
		})
	}
	te.withT(t)
	if rows := te.query(`SELECT ? AS b, ? AS s, ? AS n`, []byte{1, 2}, "s", nil); !reflect.DeepEqual(rows, []Record{{"b": []byte{1, 2}, "s": "s", "n": nil}}) {
		t.Fatalf("echoed args = %#v", rows)
	}

	refused := []struct {
		name string
		sql  string
		args []any
	}{
		{"too few", `SELECT id FROM todos WHERE done = ?`, nil},
		{"too many", `SELECT id FROM todos WHERE done = ?`, []any{true, false}},
		{"args to a query without parameters", `SELECT id FROM todos`, []any{1}},
		{"unsupported type", `SELECT ?`, []any{struct{}{}}},
		{"a map", `SELECT ?`, []any{map[string]any{"a": 1}}},
		{"integer beyond the safe range", `SELECT ?`, []any{uint64(1) << 60}},
		{"json.Number that is not a number", `SELECT ?`, []any{json.Number("abc")}},
	}
	for _, tc := range refused {
		t.Run("refused: "+tc.name, func(t *testing.T) {
			_, err := te.Query(context.Background(), tc.sql, tc.args...)
			wantCode(t, err, CodeValidation)
		})
	}
	// A refused call leaves the cached statement usable.
	if got := ids(te.query(`SELECT id FROM todos WHERE done = ?`, false)); !slices.Equal(got, []string{"b"}) {
		t.Fatalf("after refusals: %v", got)
	}
}

// TestQueryRefusesNonReads: app SQL is one read-only statement; anything
// else is refused with CodeValidation and changes nothing.
func TestQueryRefusesNonReads(t *testing.T) {
	te := queryFixture(t)
	want := te.snapshot()
	refused := []string{
		`INSERT INTO todos (id, title) VALUES ('z', 'z')`,
		`INSERT INTO todos (id) SELECT id || 'x' FROM todos RETURNING id`,
		`REPLACE INTO todos (id) VALUES ('a')`,
		`UPDATE todos SET title = 'hacked'`,
		`DELETE FROM todos`,
		`DELETE FROM pending`,
		`UPDATE meta SET value = 'x' WHERE key = 'client_id'`,
		`WITH x AS (SELECT 1) DELETE FROM todos`,
		`CREATE TABLE x (a)`,
		`CREATE TABLE x AS SELECT * FROM todos`,
		`CREATE TEMP TABLE x (a)`,
		`CREATE INDEX i ON todos (title)`,
		`CREATE VIEW v AS SELECT * FROM todos`,
		`CREATE TEMP VIEW v AS SELECT * FROM todos`,
		`CREATE TRIGGER tr AFTER INSERT ON todos BEGIN SELECT 1; END`,
		`DROP TABLE todos`,
		`DROP TABLE IF EXISTS nosuch`,
		`DROP INDEX todos__updated_at`,
		`ALTER TABLE todos ADD COLUMN x TEXT`,
		`ALTER TABLE todos RENAME TO t2`,
		`ATTACH DATABASE ':memory:' AS other`,
		`DETACH DATABASE other`,
		`PRAGMA user_version`,
		`PRAGMA user_version = 5`,
		`PRAGMA journal_mode = DELETE`,
		`PRAGMA foreign_keys = ON`,
		`PRAGMA table_info(todos)`,
		`SELECT * FROM pragma_optimize`, // would run ANALYZE
		`SELECT * FROM PRAGMA_OPTIMIZE`,
		`SELECT * FROM main.pragma_optimize`,
		`SELECT * FROM pragma_optimize(0x10002)`,
		`SELECT name FROM pragma_table_info('todos')`,
		`SELECT * FROM pragma_integrity_check`,
		`BEGIN`,
		`BEGIN IMMEDIATE`,
		`COMMIT`,
		`END`,
		`ROLLBACK`,
		`SAVEPOINT s`,
		`RELEASE s`,
		`VACUUM`,
		`ANALYZE`,
		`REINDEX`,
		`SELECT 1; SELECT 2`,
		`SELECT 1; DELETE FROM todos`,
		"SELECT 1; -- fine\nDELETE FROM todos",
		"SELECT 1; /* fine */ DELETE FROM todos",
		``,
		`   `,
		`;`,
		`-- only a comment`,
		`/* only a comment */`,
		`SELEC 1`,
		`SELECT * FROM`,
		`SELECT * FROM nosuch`,
		`SELECT nosuch FROM todos`,
		`SELECT "unterminated`,
	}
	for _, sql := range refused {
		t.Run(sql, func(t *testing.T) {
			te.withT(t)
			_, err := te.Query(context.Background(), sql)
			wantCode(t, err, CodeValidation)
			_, err = te.QueryTables(context.Background(), sql)
			wantCode(t, err, CodeValidation)
		})
	}
	te.withT(t)
	if got := te.snapshot(); got != want {
		t.Fatalf("a refused query changed the store:\n got %s\nwant %s", got, want)
	}
	if got := te.query(`SELECT count(*) AS n FROM todos`); got[0]["n"] != int64(4) {
		t.Fatalf("todos = %v", got)
	}
	if got := te.query(`SELECT name FROM sqlite_master WHERE name LIKE 'sqlite_stat%'`); len(got) != 0 {
		t.Fatalf("a refused query wrote planner statistics: %v", got)
	}
	// Writes still work: no refusal left an authorizer or a transaction
	// behind.
	te.put("todos", Record{"id": "after", "title": "ok"})
	if got := te.get("todos", "after"); got["title"] != "ok" {
		t.Fatalf("write after refusals: %v", got)
	}

	allowed := []struct {
		sql  string
		want int
	}{
		{`SELECT 1;`, 1},
		{"SELECT 1 ;  \n\t", 1},
		{`SELECT 1;;`, 1},
		{"SELECT 1; -- trailing comment", 1},
		{"SELECT 1 /* trailing */ ;", 1},
		{"SELECT 1; /* trailing */ \n -- more\n", 1},
		{"-- leading comment\nSELECT 1", 1},
		{`EXPLAIN QUERY PLAN SELECT * FROM todos WHERE done = 1`, -1},
		{`SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'todos'`, 1},
		{`VALUES (1), (2)`, 2},
		{`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5) SELECT i FROM n`, 5},
		{`SELECT * FROM pending`, 7},
	}
	for _, tc := range allowed {
		t.Run("allowed: "+tc.sql, func(t *testing.T) {
			rows, err := te.Query(context.Background(), tc.sql)
			if err != nil {
				t.Fatal(err)
			}
			if tc.want >= 0 && len(rows.Values) != tc.want {
				t.Fatalf("%d rows, want %d", len(rows.Values), tc.want)
			}
		})
	}
}

// TestQueryTables: the tables a query reads, for Query and QueryTables,
// are what a live query watches; the change events of writes name the
// tables they touched, with the version bumped once per committed call.
func TestQueryTables(t *testing.T) {
	te := queryFixture(t)
	cases := []struct {
		name string
		sql  string
		want []string
	}{
		{"plain select", `SELECT * FROM todos WHERE done = 1`, []string{"todos"}},
		{"count", `SELECT count(*) AS n FROM todos`, []string{"todos"}},
		{"join", `SELECT t.id FROM todos t JOIN notes n ON n.id = t.id`, []string{"notes", "todos"}},
		{"subquery", `SELECT id FROM todos WHERE id IN (SELECT id FROM notes)`, []string{"notes", "todos"}},
		{"exists", `SELECT 1 WHERE EXISTS (SELECT 1 FROM audit)`, []string{"audit"}},
		{"CTE", `WITH recent AS (SELECT * FROM todos ORDER BY _updated_at DESC LIMIT 5) SELECT id FROM recent`, []string{"todos"}},
		{"union", `SELECT id FROM todos UNION SELECT id FROM audit`, []string{"audit", "todos"}},
		{"the outbox", `SELECT count(*) FROM pending`, []string{"pending"}},
		{"outbox joined with a collection", `SELECT p.op FROM pending p JOIN todos t ON t.id = p.id`, []string{"pending", "todos"}},
		{"no table", `SELECT 1`, nil},
		// SQL names are case-insensitive: the tables are named as change
		// events name them, however the query spells them.
		{"spelled in capitals", `SELECT DONE FROM TODOS`, []string{"todos"}},
		{"count of a table spelled in another case", `SELECT count(*) FROM Todos`, []string{"todos"}},
		{"exists on a table spelled in another case", `SELECT 1 WHERE EXISTS (SELECT 1 FROM NOTES)`, []string{"notes"}},
		{"the outbox spelled in capitals", `SELECT count(*) FROM PENDING`, []string{"pending"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := te.QueryTables(context.Background(), tc.sql)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("QueryTables = %v, want %v", got, tc.want)
			}
			rows, err := te.Query(context.Background(), tc.sql)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(rows.Tables, tc.want) {
				t.Fatalf("Rows.Tables = %v, want %v", rows.Tables, tc.want)
			}
		})
	}
}

// TestChangeEventsAndVersions: each committed write call emits one change
// event naming the collections and engine tables it touched, with the
// version one higher than before; Rows.Version is the version a query saw.
func TestChangeEventsAndVersions(t *testing.T) {
	ctx := context.Background()
	te := queryFixture(t)
	h := stamp(1_800_000_000_000, "srv")
	cases := []struct {
		name   string
		write  func(t *testing.T) error
		tables []string // nil: no commit, no event, same version
	}{
		{"put", func(*testing.T) error { _, err := te.Put(ctx, "todos", Record{"id": "x", "title": "x"}); return err }, []string{"pending", "todos"}},
		{"patch", func(*testing.T) error { _, err := te.Patch(ctx, "todos", "x", Record{"done": true}); return err }, []string{"pending", "todos"}},
		{"delete", func(*testing.T) error { _, err := te.Delete(ctx, "todos", "x"); return err }, []string{"pending", "todos"}},
		{"delete of a missing id", func(*testing.T) error { _, err := te.Delete(ctx, "todos", "never"); return err }, []string{"pending", "todos"}},
		{"put to an extraFields collection", func(*testing.T) error { _, err := te.Put(ctx, "notes", Record{"id": "n", "x": 1}); return err }, []string{"notes", "pending"}},
		{"put to an immutable collection", func(*testing.T) error { _, err := te.Put(ctx, "audit", Record{"id": "l", "msg": "m"}); return err }, []string{"audit", "pending"}},
		{"several writes in one call", func(*testing.T) error {
			_, err := te.Apply(ctx,
				Write{Op: protocol.OpPut, Collection: "todos", ID: "y", Fields: Record{"title": "y"}},
				Write{Op: protocol.OpPatch, Collection: "notes", ID: "a", Fields: Record{"body": "z"}},
				Write{Op: protocol.OpPut, Collection: "todos", ID: "z"},
			)
			return err
		}, []string{"notes", "pending", "todos"}},
		{"import", func(t *testing.T) error {
			_, err := te.Import(ctx, dumpOf(protocol.RecordState{Collection: "todos", ID: "imp", Fields: protocol.Fields{
				"title": fieldState("i", h, protocol.OriginUser), protocol.DeletedField: fieldState(false, h, protocol.OriginUser),
			}}))
			return err
		}, []string{"pending", "todos"}},
		{"pull", func(t *testing.T) error {
			te.withT(t).pull(protocol.RecordState{Collection: "notes", ID: "p", Fields: protocol.Fields{
				"body": fieldState("p", h, protocol.OriginServer), protocol.DeletedField: fieldState(false, h, protocol.OriginServer),
			}})
			return nil
		}, []string{"base", "notes"}},
		{"ack", func(t *testing.T) error {
			ms := te.withT(t).pending()
			return te.AckPush(ctx, []protocol.MutationResult{{MutationID: ms[0].MutationID, Status: protocol.StatusApplied}})
		}, []string{"base", "pending", "todos"}},
		{"refused write", func(t *testing.T) error {
			_, err := te.Put(ctx, "todos", Record{"id": "bad", "rank": "high"})
			wantCode(t, err, CodeValidation)
			return nil
		}, nil},
		{"refused batch", func(t *testing.T) error {
			_, err := te.Apply(ctx,
				Write{Op: protocol.OpPut, Collection: "todos", ID: "ok", Fields: Record{"title": "fine"}},
				Write{Op: protocol.OpPatch, Collection: "todos", ID: "missing", Fields: Record{"title": "x"}},
			)
			wantCode(t, err, CodeNotFound)
			return nil
		}, nil},
		{"import of nothing new", func(t *testing.T) error {
			_, err := te.Import(ctx, te.withT(t).export())
			return err
		}, nil},
		{"read", func(t *testing.T) error { te.withT(t).query(`SELECT * FROM todos`); return nil }, nil},
	}
	te.takeEvents("")
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			te.withT(t)
			before, _ := te.Version(ctx)
			if err := tc.write(t); err != nil {
				t.Fatal(err)
			}
			after, _ := te.Version(ctx)
			events := te.takeEvents("change")
			if tc.tables == nil {
				if after != before || len(events) != 0 {
					t.Fatalf("version %d → %d, events %v; want no commit", before, after, events)
				}
				return
			}
			if after != before+1 {
				t.Fatalf("version %d → %d, want +1", before, after)
			}
			if len(events) != 1 {
				t.Fatalf("%d change events, want 1: %v", len(events), events)
			}
			ev := events[0].(*ChangeEvent)
			if !slices.Equal(ev.Tables, tc.tables) || ev.Version != after {
				t.Fatalf("change event %+v, want tables %v at version %d", ev, tc.tables, after)
			}
			// A query now runs at the new version.
			rows, err := te.Query(ctx, `SELECT count(*) FROM todos`)
			if err != nil {
				t.Fatal(err)
			}
			if rows.Version != after {
				t.Fatalf("Rows.Version = %d, want %d", rows.Version, after)
			}
		})
	}

	// WriteResult.Version, Rows.Version and Version agree, and persist.
	te.withT(t)
	w := te.put("todos", Record{"id": "v"})
	rows, err := te.Query(ctx, `SELECT id FROM todos WHERE id = ?`, "v")
	if err != nil {
		t.Fatal(err)
	}
	v, _ := te.Version(ctx)
	if w.Version != v || rows.Version != v {
		t.Fatalf("WriteResult.Version %d, Rows.Version %d, Version %d", w.Version, rows.Version, v)
	}
	te.reopen(testSchema())
	rows, err = te.Query(ctx, `SELECT id FROM todos WHERE id = ?`, "v")
	if err != nil {
		t.Fatal(err)
	}
	if rows.Version != v {
		t.Fatalf("Rows.Version %d after reopen, want %d", rows.Version, v)
	}
}
