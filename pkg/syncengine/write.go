package syncengine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/ncruces/go-sqlite3"
	"github.com/opfsync/opfsync/pkg/protocol"
)

// Write is one local write. Op is put, patch or delete; Fields holds the
// values (without "id") for put and patch; Origin defaults to user.
type Write struct {
	Op         protocol.Op
	Collection string
	ID         string
	Fields     Record
	Origin     protocol.Origin
}

// WriteResult reports a committed batch of writes: the mutation ids queued
// in the outbox (in order) and the mutationVersion after the commit.
type WriteResult struct {
	MutationIDs []string `json:"mutationIds"`
	Version     uint64   `json:"version"`
}

// Put upserts a whole record (rec["id"] names it): declared fields missing
// from rec become null, and a deleted record is restored. It returns once
// the write is durable locally and visible to queries.
func (e *Engine) Put(ctx context.Context, collection string, rec Record) (WriteResult, error) {
	id, _ := rec["id"].(string)
	fields := maps.Clone(rec)
	delete(fields, "id")
	if _, ok := rec["id"]; ok && id == "" {
		return WriteResult{}, errorf(CodeValidation, "put %s: id must be a non-empty string", collection)
	}
	return e.Apply(ctx, Write{Op: protocol.OpPut, Collection: collection, ID: id, Fields: fields})
}

// Patch writes some fields of a live record; it fails with CodeNotFound
// when the record does not exist or is deleted.
func (e *Engine) Patch(ctx context.Context, collection, id string, fields Record) (WriteResult, error) {
	return e.Apply(ctx, Write{Op: protocol.OpPatch, Collection: collection, ID: id, Fields: fields})
}

// Delete writes a tombstone for the record (a no-op locally when it does
// not exist, but still synced, so a record not yet pulled is deleted too).
func (e *Engine) Delete(ctx context.Context, collection, id string) (WriteResult, error) {
	return e.Apply(ctx, Write{Op: protocol.OpDelete, Collection: collection, ID: id})
}

// Apply validates every write, then commits them all in one transaction:
// each updates the visible table, is queued in the outbox with a fresh HLC
// stamp, and bumps the mutationVersion. If any write is invalid nothing is
// written and the error (CodeValidation, CodeNotFound) names it.
func (e *Engine) Apply(ctx context.Context, writes ...Write) (WriteResult, error) {
	return e.ApplyRequest(ctx, "", writes...)
}

// requestMemory is how long applied request ids are remembered.
const requestMemory = 7 * 24 * time.Hour

// ApplyRequest is Apply made exactly-once across retries: requestID (when
// not empty) is recorded with the result in the same transaction, and a
// request whose id was already applied is answered with that result
// without writing anything again. Ids are remembered for a week.
func (e *Engine) ApplyRequest(ctx context.Context, requestID string, writes ...Write) (WriteResult, error) {
	out := e.ApplyRequests(ctx, []Request{{ID: requestID, Writes: writes}})
	return out[0].Result, out[0].Err
}

// Request is one exactly-once write request of ApplyRequests: its id (""
// for none) and its writes, applied all or nothing.
type Request struct {
	ID     string
	Writes []Write
}

// RequestResult is the outcome of one Request: its result, or the error
// that refused it (then nothing of it was written).
type RequestResult struct {
	Result WriteResult
	Err    error
}

// ApplyRequests applies independent requests in one transaction, so in
// one commit (one flush to storage) however many there are. Each request is
// applied exactly as ApplyRequest would apply it, all or nothing on its own:
// one that is refused (CodeValidation, CodeNotFound, an id already applied
// answered from its record) leaves the others alone. A storage failure of
// the transaction fails every request that was to be written in it. The
// result has one entry per request, in order.
func (e *Engine) ApplyRequests(ctx context.Context, reqs []Request) []RequestResult {
	out := make([]RequestResult, len(reqs))
	err := e.call(ctx, func() error {
		todo := make([][]preparedWrite, len(reqs)) // nil: answered without writing
		pending := 0
		for i, r := range reqs {
			if todo[i], out[i].Err = e.prepareRequest(r, &out[i].Result); todo[i] != nil {
				pending++
			}
		}
		if pending == 0 {
			return nil
		}
		// A request id repeated within the batch is answered with the
		// result of its first (applied) occurrence, as a retry would be.
		dupOf := map[int]int{}
		werr := e.write(func(t *txn) error {
			firstByID := map[string]int{}
			for i, r := range reqs {
				if todo[i] == nil {
					continue
				}
				if j, ok := firstByID[r.ID]; ok && r.ID != "" {
					dupOf[i] = j
					continue
				}
				if err := e.applyRequestIn(t, r.ID, todo[i], len(r.Writes) > 1, &out[i].Result); err != nil {
					if code := CodeOf(err); code == CodeStorage || code == CodeInternal {
						return err
					}
					out[i], todo[i] = RequestResult{Err: err}, nil
					continue
				}
				firstByID[r.ID] = i
			}
			return nil
		})
		for i := range reqs {
			switch {
			case todo[i] == nil:
			case werr != nil:
				out[i] = RequestResult{Err: werr}
			default:
				out[i].Result.Version = e.version
			}
		}
		for i, j := range dupOf {
			out[i] = out[j]
		}
		return nil
	})
	if err != nil { // closed, or ctx ended before the call ran
		for i := range out {
			out[i] = RequestResult{Err: err}
		}
	}
	return out
}

// prepareRequest validates r. It returns the prepared writes to apply, or
// nil with res filled (r's id was already applied) or with the error that
// refuses it.
func (e *Engine) prepareRequest(r Request, res *WriteResult) ([]preparedWrite, error) {
	if len(r.Writes) == 0 {
		return nil, errorf(CodeValidation, "no writes given")
	}
	if len(r.ID) > 128 {
		return nil, errorf(CodeValidation, "request id is longer than 128 bytes")
	}
	if r.ID != "" {
		done, err := e.appliedRequest(r.ID, res)
		if err != nil || done {
			return nil, err
		}
	}
	prepared := make([]preparedWrite, len(r.Writes))
	for i, w := range r.Writes {
		p, err := e.prepareWrite(w)
		if err != nil {
			if len(r.Writes) > 1 {
				return nil, wrapIndex(i, err)
			}
			return nil, err
		}
		prepared[i] = p
	}
	return prepared, nil
}

// applyRequestIn applies one prepared request inside the open transaction
// t, under a savepoint: on error everything it wrote is rolled back and
// the transaction goes on. The result's version is what write() is about
// to commit.
func (e *Engine) applyRequestIn(t *txn, requestID string, prepared []preparedWrite, indexed bool, res *WriteResult) (err error) {
	if err := e.conn.Exec(`SAVEPOINT request`); err != nil {
		return storageErr("savepoint", err)
	}
	saved := t.snapshot()
	defer func() {
		if err != nil {
			t.restore(saved)
			if rerr := e.conn.Exec(`ROLLBACK TO request`); rerr != nil {
				err = storageErr("roll back a refused request", rerr)
			}
		}
		if rerr := e.conn.Exec(`RELEASE request`); rerr != nil && err == nil {
			err = storageErr("release savepoint", rerr)
		}
	}()
	res.MutationIDs = res.MutationIDs[:0]
	for i, p := range prepared {
		id, err := e.applyLocal(t, p)
		if err != nil {
			if indexed {
				return wrapIndex(i, err)
			}
			return err
		}
		res.MutationIDs = append(res.MutationIDs, id)
	}
	if requestID == "" {
		return nil
	}
	res.Version = e.version + 1 // what write() is about to commit
	return e.recordRequest(requestID, *res)
}

// appliedRequest loads the recorded result of requestID, if it was applied.
func (e *Engine) appliedRequest(requestID string, res *WriteResult) (bool, error) {
	var found bool
	err := e.stmts.query(`SELECT result FROM applied_requests WHERE request_id = ?`, []any{requestID}, func(st *sqlite3.Stmt) error {
		found = true
		return json.Unmarshal(st.ColumnRawText(0), res)
	})
	if err != nil {
		return false, storageErr("read applied requests", err)
	}
	return found, nil
}

func (e *Engine) recordRequest(requestID string, res WriteResult) error {
	raw, err := marshalJSON(res)
	if err != nil {
		return &Error{Code: CodeInternal, Message: "encode request result", Err: err}
	}
	return storageErr("record request", e.stmts.exec(
		`INSERT INTO applied_requests (request_id, result, at) VALUES (?, ?, ?)`, requestID, raw, e.opts.now()))
}

// pruneRequests forgets request ids older than requestMemory (at open).
func (e *Engine) pruneRequests() error {
	return storageErr("prune applied requests", e.stmts.exec(
		`DELETE FROM applied_requests WHERE at < ?`, e.opts.now()-requestMemory.Milliseconds()))
}

func wrapIndex(i int, err error) error {
	if e, ok := err.(*Error); ok {
		return &Error{Code: e.Code, Message: fmt.Sprintf("write %d: %s", i, e.Message), Err: e.Err}
	}
	return fmt.Errorf("write %d: %w", i, err)
}

// preparedWrite is a validated write with canonical JSON values.
type preparedWrite struct {
	ci     *collectionInfo
	op     protocol.Op
	id     string
	values map[string]json.RawMessage // without DeletedField
	origin protocol.Origin
}

// prepareWrite validates a write against the schema without touching the
// database.
func (e *Engine) prepareWrite(w Write) (preparedWrite, error) {
	p := preparedWrite{op: w.Op, id: w.ID, origin: w.Origin}
	if p.origin == "" {
		p.origin = protocol.OriginUser
	}
	what := fmt.Sprintf("%s %s/%s", w.Op, w.Collection, w.ID)
	if !p.origin.Valid() || p.origin == protocol.OriginServer {
		return p, errorf(CodeValidation, "%s: origin %q is not one of user, agent, system, migration", what, p.origin)
	}
	ci, err := e.collection(w.Collection)
	if err != nil {
		return p, err
	}
	p.ci = ci
	if err := protocol.ValidateID(w.ID); err != nil {
		return p, errorf(CodeValidation, "%s %s: %v", w.Op, w.Collection, err)
	}
	switch w.Op {
	case protocol.OpPut, protocol.OpPatch:
	case protocol.OpDelete:
		if len(w.Fields) > 0 {
			return p, errorf(CodeValidation, "%s: a delete takes no fields", what)
		}
		return p, nil
	default:
		return p, errorf(CodeValidation, "%s: op must be put, patch or delete", what)
	}
	if w.Op == protocol.OpPatch && len(w.Fields) == 0 {
		return p, errorf(CodeValidation, "%s: a patch needs at least one field", what)
	}
	if ci.decl.Immutable && w.Op == protocol.OpPatch {
		return p, errorf(CodeValidation, "%s: collection %q is immutable; records are written once", what, ci.name)
	}
	p.values = make(map[string]json.RawMessage, len(ci.fields)+len(w.Fields))
	size := 0
	for _, name := range slices.Sorted(maps.Keys(w.Fields)) {
		if name == "id" {
			if v, _ := w.Fields[name].(string); v != w.ID {
				return p, errorf(CodeValidation, "%s: field id %v does not match the record id", what, w.Fields[name])
			}
			continue
		}
		if err := protocol.ValidateFieldName(name); err != nil || strings.HasPrefix(name, "_") {
			if err == nil {
				err = fmt.Errorf("field names starting with _ are reserved")
			}
			return p, errorf(CodeValidation, "%s: %v", what, err)
		}
		t, declared := ci.fieldType(name)
		if !declared {
			if !ci.decl.ExtraFields {
				return p, errorf(CodeValidation, "%s: unknown field %q (declared: %s)", what, name, strings.Join(ci.fields, ", "))
			}
			t = TypeJSON
		}
		raw, err := normalizeValue(t, w.Fields[name])
		if err != nil {
			return p, errorf(CodeValidation, "%s: field %q: %v", what, name, err)
		}
		size += len(raw)
		p.values[name] = raw
	}
	if size > protocol.MaxRecordBytes {
		return p, errorf(CodeValidation, "%s: the record is %d bytes of JSON, the limit is %d", what, size, protocol.MaxRecordBytes)
	}
	if w.Op == protocol.OpPut {
		for _, name := range ci.fields {
			if _, ok := p.values[name]; !ok {
				p.values[name] = jsonNull
			}
		}
	}
	return p, nil
}

// applyLocal writes one validated write inside the caller's transaction
// and returns its mutation id.
func (e *Engine) applyLocal(t *txn, p preparedWrite) (string, error) {
	ci := p.ci
	fields := p.values
	if fields == nil {
		fields = map[string]json.RawMessage{}
	}
	switch p.op {
	case protocol.OpPut:
		fields[protocol.DeletedField] = jsonFalse
	case protocol.OpDelete:
		fields[protocol.DeletedField] = jsonTrue
	}
	// Collections with extra fields or write-once records need the record's
	// full state; the others take the direct path (a local stamp is newer
	// than anything the record holds, so its values simply win).
	if ci.decl.ExtraFields || ci.decl.Immutable {
		_, _, cur, err := e.loadFolded(ci.name, p.id)
		if err != nil {
			return "", err
		}
		if ci.decl.Immutable && p.op == protocol.OpPut && cur.exists() {
			return "", errorf(CodeValidation, "put %s/%s: collection %q is immutable and the record already exists", ci.name, p.id, ci.name)
		}
		if p.op == protocol.OpPatch && !cur.live() {
			return "", errorf(CodeNotFound, "patch %s/%s: no such record (it does not exist or was deleted); put it first", ci.name, p.id)
		}
		if p.op == protocol.OpPut {
			for name, s := range cur {
				if _, declared := ci.decl.Fields[name]; !declared && name != protocol.DeletedField && string(s.Value) != "null" {
					if _, given := fields[name]; !given {
						fields[name] = jsonNull
					}
				}
			}
		}
	}
	stamp := e.clock.Now()
	m := pendingMut{
		mutationID: newMutationID(),
		collection: ci.name, id: p.id, op: p.op,
		fields: fields, hlc: stamp, origin: p.origin,
	}
	if err := e.insertPending(&m); err != nil {
		return "", err
	}
	if err := e.applyLocalVisible(ci, p, m); err != nil {
		return "", err
	}
	t.touch(ci.name)
	t.touch("pending")
	t.queued = true
	return m.mutationID, nil
}

// applyLocalVisible updates the visible row for a fresh local mutation.
func (e *Engine) applyLocalVisible(ci *collectionInfo, p preparedWrite, m pendingMut) error {
	if ci.decl.ExtraFields || ci.decl.Immutable {
		_, _, cur, err := e.loadFolded(ci.name, p.id)
		if err != nil {
			return err
		}
		return storageErr("write "+ci.name, e.writeVisible(ci, p.id, cur))
	}
	switch p.op {
	case protocol.OpDelete:
		return storageErr("delete "+ci.name, e.stmts.exec(ci.deleteSQL, p.id))
	case protocol.OpPut:
		f := make(folded, len(m.fields))
		for name, v := range m.fields {
			f[name] = ownedField{FieldState: protocol.FieldState{Value: v, HLC: m.hlc, Origin: m.origin}, seq: -1}
		}
		return storageErr("put "+ci.name, e.writeVisible(ci, p.id, f))
	}
	// Patch: update just the given columns; no row means no live record.
	names := slices.Sorted(maps.Keys(p.values))
	set := make([]string, 0, len(names)+1)
	for _, n := range names {
		set = append(set, quoteIdent(n)+" = ?")
	}
	set = append(set, quoteIdent(UpdatedAtColumn)+" = ?")
	sql := "UPDATE " + quoteIdent(ci.name) + " SET " + strings.Join(set, ", ") + ` WHERE "id" = ?`
	st, err := e.stmts.get(sql)
	if err != nil {
		return storageErr("patch "+ci.name, err)
	}
	defer st.Reset()
	for i, n := range names {
		t, _ := ci.fieldType(n)
		if err := bindValue(st, i+1, t, p.values[n]); err != nil {
			return err
		}
	}
	if err := st.BindInt64(len(names)+1, m.hlc.Wall); err != nil {
		return err
	}
	if err := st.BindText(len(names)+2, p.id); err != nil {
		return err
	}
	if err := st.Exec(); err != nil {
		return storageErr("patch "+ci.name, err)
	}
	if e.conn.Changes() == 0 {
		return errorf(CodeNotFound, "patch %s/%s: no such record (it does not exist or was deleted); put it first", ci.name, p.id)
	}
	return nil
}

// insertPending appends m to the outbox and sets its seq.
func (e *Engine) insertPending(m *pendingMut) error {
	raw, err := marshalJSON(m.fields)
	if err != nil {
		return &Error{Code: CodeInternal, Message: "encode mutation", Err: err}
	}
	if err := e.stmts.exec(`INSERT INTO pending (mutation_id, collection, id, op, fields, hlc, origin) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		m.mutationID, m.collection, m.id, string(m.op), raw, m.hlc.String(), string(m.origin)); err != nil {
		return storageErr("queue mutation", err)
	}
	m.seq = e.conn.LastInsertRowID()
	return nil
}

// newMutationID returns a random, globally unique mutation id.
func newMutationID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand failed: %v", err))
	}
	return "m" + hex.EncodeToString(b[:])
}
