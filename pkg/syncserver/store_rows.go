package syncserver

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/opfsync/opfsync/pkg/protocol"
)

// The SQL stores share their tables' layout (records, verdicts) and the
// statements on them, written in the dialect both SQLite and PostgreSQL
// read ($n parameters, INSERT ... ON CONFLICT). userRows holds those
// statements once for both.

// rowScanner is a single-row query result (*sql.Row, pgx.Row).
type rowScanner interface {
	Scan(dest ...any) error
}

// statements runs statements inside one backend's transaction.
type statements interface {
	queryRow(query string, args ...any) (rowScanner, error)
	exec(query string, args ...any) error
}

// userRows implements the reading and writing part of Tx on one user's
// rows; each store's Tx adds how positions are given out.
type userRows struct {
	st      statements
	user    string
	backend string // "sqlite", "postgres": the prefix of error messages
}

// noRows reports whether err says a query found no row, in either driver.
func noRows(err error) bool {
	return errors.Is(err, sql.ErrNoRows) || errors.Is(err, pgx.ErrNoRows)
}

// verdictColumns are the verdicts columns scanVerdict reads, in order.
const verdictColumns = `status, error_code, error_message, client_id, collection, record_id, created_at, keep`

// scanVerdict reads one row of lead's columns followed by verdictColumns
// into a Verdict (its MutationID left for the caller).
func scanVerdict(row rowScanner, lead ...any) (Verdict, error) {
	var v Verdict
	var status, code, msg string
	var at, keep int64
	if err := row.Scan(append(lead, &status, &code, &msg, &v.ClientID, &v.Collection, &v.RecordID, &at, &keep)...); err != nil {
		return Verdict{}, err
	}
	v.Keep = keep != 0
	v.Status = protocol.MutationStatus(status)
	if code != "" {
		v.Error = &protocol.ErrorBody{Code: code, Message: msg}
	}
	v.At = time.UnixMilli(at)
	return v, nil
}

// Verdict implements Tx.
func (u userRows) Verdict(mutationID string) (Verdict, bool, error) {
	row, err := u.st.queryRow(`SELECT `+verdictColumns+` FROM verdicts WHERE user_id = $1 AND mutation_id = $2`, u.user, mutationID)
	if err != nil {
		return Verdict{}, false, fmt.Errorf("%s read verdict: %w", u.backend, err)
	}
	v, err := scanVerdict(row)
	if noRows(err) {
		return Verdict{}, false, nil
	}
	if err != nil {
		return Verdict{}, false, fmt.Errorf("%s read verdict: %w", u.backend, err)
	}
	v.MutationID = mutationID
	return v, true, nil
}

// SaveVerdict implements Tx.
func (u userRows) SaveVerdict(v Verdict) error {
	var code, msg string
	if v.Error != nil {
		code, msg = v.Error.Code, v.Error.Message
	}
	keep := 0
	if v.Keep {
		keep = 1
	}
	err := u.st.exec(`INSERT INTO verdicts (user_id, mutation_id, status, error_code, error_message, client_id, collection, record_id, created_at, keep)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		u.user, v.MutationID, string(v.Status), code, msg, v.ClientID, v.Collection, v.RecordID, v.At.UnixMilli(), keep)
	if err != nil {
		return fmt.Errorf("%s save verdict: %w", u.backend, err)
	}
	return nil
}

// Record implements Tx.
func (u userRows) Record(collection, id string) (protocol.Fields, bool, error) {
	row, err := u.st.queryRow(`SELECT fields FROM records WHERE user_id = $1 AND collection = $2 AND id = $3`, u.user, collection, id)
	if err != nil {
		return nil, false, fmt.Errorf("%s read record: %w", u.backend, err)
	}
	var text string
	if err := row.Scan(&text); noRows(err) {
		return nil, false, nil
	} else if err != nil {
		return nil, false, fmt.Errorf("%s read record: %w", u.backend, err)
	}
	fields, err := decodeFields(text)
	if err != nil {
		return nil, false, fmt.Errorf("%s read record %s/%s: %w", u.backend, collection, id, err)
	}
	return fields, true, nil
}

// saveRecordAt stores fields as the whole state of collection/id with
// change position pos.
func (u userRows) saveRecordAt(collection, id string, fields protocol.Fields, pos int64) error {
	text, err := protocol.Marshal(fields)
	if err != nil {
		return fmt.Errorf("%s save record: encode fields: %w", u.backend, err)
	}
	if err := u.st.exec(`INSERT INTO records (user_id, collection, id, fields, position) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (user_id, collection, id) DO UPDATE SET fields = excluded.fields, position = excluded.position`,
		u.user, collection, id, string(text), pos); err != nil {
		return fmt.Errorf("%s save record: %w", u.backend, err)
	}
	return nil
}

// pruneQuery is PruneVerdicts's statement: $1 the cutoff (Unix ms), $2 the
// most rows to delete.
const pruneQuery = `DELETE FROM verdicts WHERE (user_id, mutation_id) IN (
	SELECT user_id, mutation_id FROM verdicts WHERE keep = 0 AND created_at < $1 LIMIT $2)`

// changeRows is a multi-row query result (*sql.Rows, pgx.Rows).
type changeRows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}

// changesQuery is Store.Changes's statement: $1 user, $2 after, $3 limit.
const changesQuery = `SELECT collection, id, fields, position FROM records
	WHERE user_id = $1 AND position > $2 ORDER BY position LIMIT $3`

// headQuery is Store.Head's statement: $1 user.
const headQuery = `SELECT coalesce(max(position), 0) FROM records WHERE user_id = $1`

// statsQuery is Store.Stats's statement: $1 is the user, or the empty
// string for all users.
const statsQuery = `SELECT
	(SELECT count(*) FROM records  WHERE $1 = '' OR user_id = $1),
	(SELECT count(*) FROM verdicts WHERE ($1 = '' OR user_id = $1) AND status = 'applied'),
	(SELECT count(*) FROM verdicts WHERE ($1 = '' OR user_id = $1) AND status = 'rejected')`

// readChanges collects the rows of changesQuery.
func readChanges(rows changeRows, backend string) ([]Change, error) {
	var out []Change
	for rows.Next() {
		var c Change
		var text string
		if err := rows.Scan(&c.Record.Collection, &c.Record.ID, &text, &c.Position); err != nil {
			return nil, fmt.Errorf("%s changes: %w", backend, err)
		}
		var err error
		if c.Record.Fields, err = decodeFields(text); err != nil {
			return nil, fmt.Errorf("%s changes: record %s/%s: %w", backend, c.Record.Collection, c.Record.ID, err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s changes: %w", backend, err)
	}
	return out, nil
}

// decodeFields parses a records.fields value.
func decodeFields(text string) (protocol.Fields, error) {
	var f protocol.Fields
	if err := json.Unmarshal([]byte(text), &f); err != nil {
		return nil, fmt.Errorf("decode fields: %w", err)
	}
	if f == nil {
		f = protocol.Fields{}
	}
	return f, nil
}
