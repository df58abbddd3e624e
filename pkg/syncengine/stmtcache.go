package syncengine

import (
	"encoding/json"
	"fmt"

	"github.com/ncruces/go-sqlite3"
)

// stmtCache keeps the engine's internal statements prepared for the life of
// the connection: every operation runs a handful of fixed SQL texts, so each
// is compiled once. Only the call holding the engine's turn touches it.
type stmtCache struct {
	conn  *sqlite3.Conn
	stmts map[string]*sqlite3.Stmt
}

// get returns the prepared statement for sql, reset and with no bindings.
func (c *stmtCache) get(sql string) (*sqlite3.Stmt, error) {
	if st, ok := c.stmts[sql]; ok {
		return st, nil
	}
	st, tail, err := c.conn.Prepare(sql)
	if err != nil {
		return nil, fmt.Errorf("prepare %q: %w", sql, err)
	}
	if tail != "" {
		st.Close()
		return nil, fmt.Errorf("prepare %q: more than one statement", sql)
	}
	c.stmts[sql] = st
	return st, nil
}

// closeAll finalizes every cached statement.
func (c *stmtCache) closeAll() {
	for sql, st := range c.stmts {
		st.Close()
		delete(c.stmts, sql)
	}
}

// forget drops every cached statement (after schema changes that rename or
// drop tables the statements refer to).
func (c *stmtCache) forget() { c.closeAll() }

// bindAll binds internal statement arguments by position.
func bindAll(st *sqlite3.Stmt, args []any) error {
	for i, a := range args {
		var err error
		switch v := a.(type) {
		case nil:
			err = st.BindNull(i + 1)
		case string:
			err = st.BindText(i+1, v)
		case []byte:
			err = st.BindRawText(i+1, v)
		case json.RawMessage:
			err = st.BindRawText(i+1, v)
		case int:
			err = st.BindInt64(i+1, int64(v))
		case int64:
			err = st.BindInt64(i+1, v)
		case uint64:
			err = st.BindInt64(i+1, int64(v))
		case bool:
			err = st.BindBool(i+1, v)
		case float64:
			err = st.BindFloat(i+1, v)
		default:
			err = fmt.Errorf("bind %d: unsupported internal argument %T", i+1, a)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// bound returns the cached statement for sql with args bound; the caller
// must Reset it when done.
func (c *stmtCache) bound(sql string, args []any) (*sqlite3.Stmt, error) {
	st, err := c.get(sql)
	if err != nil {
		return nil, err
	}
	if err := bindAll(st, args); err != nil {
		st.Reset()
		return nil, err
	}
	return st, nil
}

// exec runs one cached statement that returns no rows.
func (c *stmtCache) exec(sql string, args ...any) error {
	st, err := c.bound(sql, args)
	if err != nil {
		return err
	}
	defer st.Reset()
	if err := st.Exec(); err != nil {
		return fmt.Errorf("exec %q: %w", sql, err)
	}
	return nil
}

// query runs one cached statement and calls row for each result row.
func (c *stmtCache) query(sql string, args []any, row func(st *sqlite3.Stmt) error) error {
	st, err := c.bound(sql, args)
	if err != nil {
		return err
	}
	defer st.Reset()
	for st.Step() {
		if err := row(st); err != nil {
			return err
		}
	}
	if err := st.Err(); err != nil {
		return fmt.Errorf("query %q: %w", sql, err)
	}
	return nil
}
