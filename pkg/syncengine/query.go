package syncengine

import (
	"context"
	"encoding/json"
	"maps"
	"slices"
	"strings"

	"github.com/ncruces/go-sqlite3"
)

// Rows is a query result: column names, one value slice per row (string,
// int64, float64, bool, json.RawMessage, []byte or nil, typed by the
// declared field type when a column is a collection field), the tables the
// query reads, and the mutationVersion it was computed at.
type Rows struct {
	Columns []string
	Values  [][]any
	Tables  []string
	Version uint64
}

// Records returns the rows as maps keyed by column name (a later column
// with a repeated name wins).
func (r *Rows) Records() []Record {
	out := make([]Record, len(r.Values))
	for i, row := range r.Values {
		rec := make(Record, len(r.Columns))
		for j, c := range r.Columns {
			rec[c] = row[j]
		}
		out[i] = rec
	}
	return out
}

// MarshalJSON encodes the rows as a JSON array of objects.
func (r *Rows) MarshalJSON() ([]byte, error) {
	return marshalJSON(r.Records())
}

// appStmt is an app query compiled once and kept for reuse (watch queries
// re-run the same SQL after every relevant commit).
type appStmt struct {
	stmt    *sqlite3.Stmt
	columns []string
	types   []FieldType // declared type per column, "" when not a field
	tables  []string
	used    uint64
}

const appStmtCacheSize = 64

// Query runs one read-only SQL statement with positional arguments (nil,
// bool, numbers, string, []byte). It refuses with CodeValidation any
// statement that could change the database or the connection (writes,
// ATTACH, PRAGMA, transaction control) and any text with more than one
// statement.
func (e *Engine) Query(ctx context.Context, sql string, args ...any) (*Rows, error) {
	var rows *Rows
	err := e.call(ctx, func() error {
		as, err := e.prepareApp(sql)
		if err != nil {
			return err
		}
		st := as.stmt
		defer st.Reset()
		st.ClearBindings()
		if n := st.BindCount(); len(args) != n {
			return errorf(CodeValidation, "query takes %d argument(s), got %d", n, len(args))
		}
		for i, a := range args {
			if err := bindArg(st, i+1, a); err != nil {
				return &Error{Code: CodeValidation, Message: "query: " + err.Error()}
			}
		}
		rows = &Rows{Columns: as.columns, Tables: as.tables, Version: e.version}
		for st.Step() {
			row := make([]any, len(as.columns))
			for i, t := range as.types {
				if t != "" {
					row[i] = columnValue(st, i, t)
				} else {
					row[i] = plainColumnValue(st, i)
				}
			}
			rows.Values = append(rows.Values, row)
		}
		if err := st.Err(); err != nil {
			return queryErr(err)
		}
		return nil
	})
	return rows, err
}

// QueryTables returns the tables (collections, or engine tables such as
// "pending") that sql reads, without running it: what a live query must
// watch.
func (e *Engine) QueryTables(ctx context.Context, sql string) ([]string, error) {
	var tables []string
	err := e.call(ctx, func() error {
		as, err := e.prepareApp(sql)
		if err == nil {
			tables = as.tables
		}
		return err
	})
	return tables, err
}

func queryErr(err error) error {
	code := CodeOf(err)
	if code == CodeInternal {
		code = CodeValidation
	}
	return &Error{Code: code, Message: "query failed: " + err.Error()}
}

// prepareApp compiles app SQL under an authorizer that records the tables
// read and denies everything but reading.
func (e *Engine) prepareApp(sql string) (*appStmt, error) {
	if e.conn == nil {
		return nil, ErrClosed
	}
	e.appUse++
	if as, ok := e.appStmts[sql]; ok {
		as.used = e.appUse
		return as, nil
	}
	read := map[string]bool{}
	var denied string
	err := e.conn.SetAuthorizer(func(action sqlite3.AuthorizerActionCode, name3rd, name4th, schema, inner string) sqlite3.AuthorizerReturnCode {
		switch action {
		case sqlite3.AUTH_READ:
			if schema == "temp" {
				denied = "temporary tables"
				return sqlite3.AUTH_DENY
			}
			table := e.canonicalTable(name3rd)
			if _, ok := e.cols[table]; !ok && strings.HasPrefix(strings.ToLower(table), "pragma_") {
				// A table-valued PRAGMA runs the pragma when stepped,
				// past this authorizer (pragma_optimize runs ANALYZE).
				denied = "PRAGMA"
				return sqlite3.AUTH_DENY
			}
			read[table] = true
			return sqlite3.AUTH_OK
		case sqlite3.AUTH_SELECT, sqlite3.AUTH_FUNCTION, sqlite3.AUTH_RECURSIVE:
			return sqlite3.AUTH_OK
		}
		denied = authActionName(action)
		return sqlite3.AUTH_DENY
	})
	if err != nil {
		return nil, storageErr("set authorizer", err)
	}
	st, tail, err := e.conn.Prepare(sql)
	e.conn.SetAuthorizer(nil)
	if err != nil {
		if denied != "" {
			return nil, errorf(CodeValidation, "query: %s is not allowed; queries are read-only (write through put/patch/delete)", denied)
		}
		return nil, &Error{Code: CodeValidation, Message: "query: " + err.Error()}
	}
	if st == nil {
		return nil, errorf(CodeValidation, "query: the SQL text holds no statement")
	}
	if !onlySeparators(tail) {
		st.Close()
		return nil, errorf(CodeValidation, "query: one statement per query (found more after the first)")
	}
	if !st.ReadOnly() {
		st.Close()
		return nil, errorf(CodeValidation, "query: only read-only statements are allowed (write through put/patch/delete)")
	}
	as := &appStmt{stmt: st, tables: slices.Sorted(maps.Keys(read)), used: e.appUse}
	n := st.ColumnCount()
	as.columns = make([]string, n)
	as.types = make([]FieldType, n)
	for i := 0; i < n; i++ {
		as.columns[i] = st.ColumnName(i)
		as.types[i] = e.columnFieldType(st.ColumnTableName(i), st.ColumnOriginName(i))
	}
	e.cacheApp(sql, as)
	return as, nil
}

// onlySeparators reports whether the SQL text after the first statement
// holds nothing but whitespace, semicolons and comments (which SQLite
// skips), so "SELECT 1; -- note" is one statement.
func onlySeparators(s string) bool {
	for s != "" {
		switch {
		case strings.ContainsRune(" \t\r\n\f;", rune(s[0])):
			s = s[1:]
		case strings.HasPrefix(s, "--"):
			i := strings.IndexByte(s, '\n')
			if i < 0 {
				return true
			}
			s = s[i+1:]
		case strings.HasPrefix(s, "/*"):
			i := strings.Index(s[2:], "*/")
			if i < 0 {
				return true // SQLite ends an unterminated comment at the end of the text
			}
			s = s[2+i+2:]
		default:
			return false
		}
	}
	return true
}

// canonicalTable returns the name change events use for a table the query
// reads: SQL names are case-insensitive, and SQLite reports a table spelled
// as in the query when no column of it is read (count(*), EXISTS).
func (e *Engine) canonicalTable(name string) string {
	if _, ok := e.cols[name]; ok {
		return name
	}
	for c := range e.cols {
		if strings.EqualFold(c, name) {
			return c
		}
	}
	for _, t := range reservedTables {
		if strings.EqualFold(t, name) {
			return t
		}
	}
	return name
}

// columnFieldType maps a result column's origin to its declared type.
func (e *Engine) columnFieldType(table, column string) FieldType {
	if table == "" {
		return ""
	}
	ci := e.cols[table]
	if ci == nil {
		for name, c := range e.cols {
			if strings.EqualFold(name, table) {
				ci = c
				break
			}
		}
	}
	if ci == nil {
		return ""
	}
	switch {
	case strings.EqualFold(column, "id"):
		return TypeText
	case strings.EqualFold(column, UpdatedAtColumn):
		return TypeInteger
	case strings.EqualFold(column, ExtraColumn):
		return TypeJSON
	}
	for name, t := range ci.decl.Fields {
		if strings.EqualFold(name, column) {
			return t
		}
	}
	return ""
}

func (e *Engine) cacheApp(sql string, as *appStmt) {
	if e.appStmts == nil {
		e.appStmts = map[string]*appStmt{}
	}
	if len(e.appStmts) >= appStmtCacheSize {
		var oldest string
		var min uint64 = ^uint64(0)
		for k, v := range e.appStmts {
			if v.used < min {
				oldest, min = k, v.used
			}
		}
		e.appStmts[oldest].stmt.Close()
		delete(e.appStmts, oldest)
	}
	e.appStmts[sql] = as
}

func (e *Engine) closeAppStmts() {
	for k, as := range e.appStmts {
		as.stmt.Close()
		delete(e.appStmts, k)
	}
}

func authActionName(a sqlite3.AuthorizerActionCode) string {
	switch a {
	case sqlite3.AUTH_PRAGMA:
		return "PRAGMA"
	case sqlite3.AUTH_ATTACH:
		return "ATTACH"
	case sqlite3.AUTH_DETACH:
		return "DETACH"
	case sqlite3.AUTH_TRANSACTION, sqlite3.AUTH_SAVEPOINT:
		return "transaction control"
	case sqlite3.AUTH_INSERT, sqlite3.AUTH_UPDATE, sqlite3.AUTH_DELETE:
		return "writing"
	}
	return "changing the schema or connection"
}

// Get returns the live record with this id as {id, declared fields...} (plus
// undeclared fields in collections that accept them), or nil when it does
// not exist or is deleted.
func (e *Engine) Get(ctx context.Context, collection, id string) (Record, error) {
	var rec Record
	err := e.call(ctx, func() error {
		ci, err := e.collection(collection)
		if err != nil {
			return err
		}
		return e.stmts.query(ci.selectSQL, []any{id}, func(st *sqlite3.Stmt) error {
			rec = Record{"id": st.ColumnText(0)}
			for i, name := range ci.fields {
				rec[name] = columnValue(st, i+1, ci.types[i])
			}
			if ci.decl.ExtraFields && st.ColumnType(len(ci.fields)+1) != sqlite3.NULL {
				var extra map[string]json.RawMessage
				if err := json.Unmarshal(st.ColumnRawText(len(ci.fields)+1), &extra); err == nil {
					for k, v := range extra {
						rec[k] = v
					}
				}
			}
			return nil
		})
	})
	if err != nil {
		return nil, storageErr("get "+collection, err)
	}
	return rec, nil
}
