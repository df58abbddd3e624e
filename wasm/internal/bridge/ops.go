package bridge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/opfsync/opfsync/pkg/protocol"
	"github.com/opfsync/opfsync/pkg/syncengine"
)

// op is one request kind: its handler, whether it needs an open store,
// whether it may run alongside later requests (sync waits on the network),
// and whether it awaits JS promises (so it can never run inside a JS
// callback).
type op struct {
	run       func(b *Bridge, args json.RawMessage) (any, error)
	needsOpen bool
	async     bool
	awaitsJS  bool
}

var ops map[string]op

func init() {
	ops = map[string]op{
		"open":           {run: (*Bridge).open, awaitsJS: true},
		"close":          {run: (*Bridge).close, awaitsJS: true},
		"deleteDatabase": {run: (*Bridge).deleteDatabase, awaitsJS: true},
		"put":            {run: (*Bridge).put, needsOpen: true},
		"patch":          {run: (*Bridge).patch, needsOpen: true},
		"delete":         {run: (*Bridge).delete, needsOpen: true},
		"apply":          {run: (*Bridge).apply, needsOpen: true},
		"get":            {run: (*Bridge).get, needsOpen: true},
		"query":          {run: (*Bridge).query, needsOpen: true},
		"export":         {run: (*Bridge).export, needsOpen: true},
		"import":         {run: (*Bridge).importDump, needsOpen: true},
		"migrate":        {run: (*Bridge).migrate, needsOpen: true},
		"status":         {run: (*Bridge).status, needsOpen: true},
		"setOnline":      {run: (*Bridge).setOnline, needsOpen: true},
		"sync":           {run: (*Bridge).sync, needsOpen: true, async: true},
		"integrityCheck": {run: (*Bridge).integrityCheck, needsOpen: true},
		"inspect":        {run: (*Bridge).inspect, needsOpen: true},
		"applyPullPage":  {run: (*Bridge).applyPullPage, needsOpen: true},
		"batch":          {run: (*Bridge).batch, needsOpen: true},
	}
}

func validation(format string, args ...any) error {
	return &syncengine.Error{Code: syncengine.CodeValidation, Message: fmt.Sprintf(format, args...)}
}

func decode(raw json.RawMessage, into any, op string) error {
	if err := decodeArgs(raw, into); err != nil {
		return validation("%s: %v", op, err)
	}
	return nil
}

// validStoreName: 1 to 64 of [A-Za-z0-9_.-], starting with a letter or digit
// (it becomes an OPFS file name).
func validStoreName(name string) bool {
	if name == "" || len(name) > 64 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != '_' && c != '.' && c != '-') {
			return false
		}
	}
	return true
}

// checkStoreName refuses, for op, a name that is not a valid store name.
func checkStoreName(op, name string) error {
	if !validStoreName(name) {
		return validation("%s: name %s must be 1 to 64 letters, digits, '_', '.' or '-'", op, quote(name))
	}
	return nil
}

type deleteDatabaseArgs struct {
	Name string `json:"name"`
}

// deleteDatabase removes the database a.Name from every storage. A bridge
// with an open store refuses it: the store must be closed first (and the
// page must hold the database's leader lock, so no other tab opens it).
func (b *Bridge) deleteDatabase(raw json.RawMessage) (any, error) {
	var a deleteDatabaseArgs
	if err := decode(raw, &a, "deleteDatabase"); err != nil {
		return nil, err
	}
	if b.eng != nil {
		return nil, validation("deleteDatabase: this worker has a store open; close it first")
	}
	if err := checkStoreName("deleteDatabase", a.Name); err != nil {
		return nil, err
	}
	if b.storage.Delete == nil {
		return nil, &syncengine.Error{Code: syncengine.CodeInternal, Message: "deleteDatabase: this bridge cannot delete databases"}
	}
	if err := b.storage.Delete(context.Background(), a.Name); err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

type openArgs struct {
	Name    string             `json:"name"`
	Schema  *syncengine.Schema `json:"schema"`
	Storage string             `json:"storage"`
	Sync    *struct {
		URL     string `json:"url"`
		Token   string `json:"token"`
		Offline bool   `json:"offline"` // the page is offline as it opens: sync waits for setOnline
	} `json:"sync"`
}

type openResult struct {
	ClientID    string            `json:"clientId"`
	Storage     string            `json:"storage"`
	JournalMode string            `json:"journalMode"`
	Version     uint64            `json:"version"`
	Status      syncengine.Status `json:"status"`
}

func (b *Bridge) open(raw json.RawMessage) (any, error) {
	var a openArgs
	if err := decode(raw, &a, "open"); err != nil {
		return nil, err
	}
	if b.eng != nil {
		return nil, validation("open: the store is already open")
	}
	if err := checkStoreName("open", a.Name); err != nil {
		return nil, err
	}
	if a.Storage == "" {
		a.Storage = "opfs"
	}
	if a.Storage != "opfs" && a.Storage != "indexeddb" && a.Storage != "memory" {
		return nil, validation("open: storage must be \"opfs\", \"indexeddb\" or \"memory\", not %s", quote(a.Storage))
	}
	if a.Schema == nil {
		return nil, validation("open: a schema is required")
	}
	if a.Sync != nil && a.Sync.URL == "" {
		return nil, validation("open: sync.url is required when sync is given")
	}
	ctx := context.Background()
	st, err := b.storage.Open(ctx, a.Name, a.Storage)
	if err != nil {
		return nil, err
	}
	eng, err := syncengine.Open(ctx, syncengine.Options{Path: st.Path, VFS: st.VFS, Schema: a.Schema})
	if err != nil {
		st.Close()
		return nil, err
	}
	// A first throwaway query pays V8's lazy compilation of the SQLite
	// code now rather than on the app's first real query.
	eng.Query(ctx, "SELECT count(*) FROM pending")
	var syncer *syncengine.Syncer
	if a.Sync != nil {
		tr := b.transport(a.Sync.URL, a.Sync.Token)
		if syncer, err = eng.StartSync(syncengine.SyncOptions{Transport: tr, StartOffline: a.Sync.Offline}); err != nil {
			eng.Close()
			st.Close()
			return nil, err
		}
	}
	b.storeMu.Lock()
	b.eng, b.syncer, b.store = eng, syncer, st
	b.storeMu.Unlock()
	b.setBlocking(st.Blocking)
	b.unsub = eng.Subscribe(b.forward)
	status, _ := b.currentStatus(ctx)
	return openResult{ClientID: eng.ClientID(), Storage: st.Kind, JournalMode: eng.JournalMode(), Version: mustVersion(eng), Status: status}, nil
}

func mustVersion(eng *syncengine.Engine) uint64 {
	v, _ := eng.Version(context.Background())
	return v
}

// forward posts an engine event to the page.
func (b *Bridge) forward(ev syncengine.Event) {
	switch e := ev.(type) {
	case *syncengine.StatusEvent:
		b.emit("status", e.Status)
	default:
		b.emit(syncengine.EventKind(ev), ev)
	}
}

func (b *Bridge) close(json.RawMessage) (any, error) {
	if b.eng == nil {
		return nil, nil
	}
	b.storeMu.Lock()
	eng, st := b.eng, b.store
	b.eng, b.syncer = nil, nil
	b.storeMu.Unlock()
	if b.unsub != nil {
		b.unsub()
	}
	err := eng.Close()
	if cerr := st.Close(); err == nil && cerr != nil {
		err = &syncengine.Error{Code: syncengine.CodeStorage, Message: "close storage", Err: cerr}
	}
	b.setBlocking(false)
	return nil, err
}

// setBlocking tells Receive whether ops may run inline (see Storage).
func (b *Bridge) setBlocking(on bool) {
	b.mu.Lock()
	b.blocking = on
	b.mu.Unlock()
}

type writeArgs struct {
	Collection string            `json:"collection"`
	Record     syncengine.Record `json:"record"`
	ID         string            `json:"id"`
	Fields     syncengine.Record `json:"fields"`
	Origin     protocol.Origin   `json:"origin"`
	RequestID  string            `json:"requestId"`
}

// The write ops: each decodes its arguments into one exactly-once engine
// request (writeRequests), applied alone (put, patch, delete, apply) or
// with others in one commit (batch).
func (b *Bridge) put(raw json.RawMessage) (any, error)    { return b.applyOne(putRequest(raw)) }
func (b *Bridge) patch(raw json.RawMessage) (any, error)  { return b.applyOne(patchRequest(raw)) }
func (b *Bridge) delete(raw json.RawMessage) (any, error) { return b.applyOne(deleteRequest(raw)) }
func (b *Bridge) apply(raw json.RawMessage) (any, error)  { return b.applyOne(applyRequest(raw)) }

func (b *Bridge) applyOne(r syncengine.Request, err error) (any, error) {
	if err != nil {
		return nil, err
	}
	return b.eng.ApplyRequest(context.Background(), r.ID, r.Writes...)
}

// writeRequests maps each write op to the decoder of its arguments.
var writeRequests = map[string]func(json.RawMessage) (syncengine.Request, error){
	"put": putRequest, "patch": patchRequest, "delete": deleteRequest, "apply": applyRequest,
}

func putRequest(raw json.RawMessage) (syncengine.Request, error) {
	var a writeArgs
	if err := decode(raw, &a, "put"); err != nil {
		return syncengine.Request{}, err
	}
	if a.Record == nil {
		return syncengine.Request{}, validation("put: record must be an object")
	}
	id, ok := a.Record["id"].(string)
	if !ok || id == "" {
		return syncengine.Request{}, validation("put %s: record.id must be a non-empty string", a.Collection)
	}
	fields := make(syncengine.Record, len(a.Record))
	for k, v := range a.Record {
		if k != "id" {
			fields[k] = v
		}
	}
	return one(a.RequestID, syncengine.Write{Op: protocol.OpPut, Collection: a.Collection, ID: id, Fields: fields, Origin: a.Origin}), nil
}

func patchRequest(raw json.RawMessage) (syncengine.Request, error) {
	var a writeArgs
	if err := decode(raw, &a, "patch"); err != nil {
		return syncengine.Request{}, err
	}
	if a.Fields == nil {
		return syncengine.Request{}, validation("patch %s/%s: fields must be an object", a.Collection, a.ID)
	}
	return one(a.RequestID, syncengine.Write{Op: protocol.OpPatch, Collection: a.Collection, ID: a.ID, Fields: a.Fields, Origin: a.Origin}), nil
}

func deleteRequest(raw json.RawMessage) (syncengine.Request, error) {
	var a writeArgs
	if err := decode(raw, &a, "delete"); err != nil {
		return syncengine.Request{}, err
	}
	return one(a.RequestID, syncengine.Write{Op: protocol.OpDelete, Collection: a.Collection, ID: a.ID, Origin: a.Origin}), nil
}

func one(requestID string, w syncengine.Write) syncengine.Request {
	return syncengine.Request{ID: requestID, Writes: []syncengine.Write{w}}
}

type applyArgs struct {
	Writes []struct {
		Op         protocol.Op       `json:"op"`
		Collection string            `json:"collection"`
		ID         string            `json:"id"`
		Fields     syncengine.Record `json:"fields"`
		Origin     protocol.Origin   `json:"origin"`
	} `json:"writes"`
	RequestID string `json:"requestId"`
}

func applyRequest(raw json.RawMessage) (syncengine.Request, error) {
	var a applyArgs
	if err := decode(raw, &a, "apply"); err != nil {
		return syncengine.Request{}, err
	}
	writes := make([]syncengine.Write, len(a.Writes))
	for i, w := range a.Writes {
		writes[i] = syncengine.Write{Op: w.Op, Collection: w.Collection, ID: w.ID, Fields: w.Fields, Origin: w.Origin}
	}
	return syncengine.Request{ID: a.RequestID, Writes: writes}, nil
}

// maxBatch bounds the requests of one batch message.
const maxBatch = 10000

// batchItem is one answer of a batch: the write's result or its error.
type batchItem struct {
	Result *syncengine.WriteResult `json:"result,omitempty"`
	Error  *errorBody              `json:"error,omitempty"`
}

// batch applies several write requests, each given as {op, args} with
// the arguments of that op (put, patch, delete, apply), in one commit. Each
// is answered on its own, in order: {"results": [{"result": …} or
// {"error": {code, message}}, …]}; a refused one leaves the others alone.
func (b *Bridge) batch(raw json.RawMessage) (any, error) {
	var a struct {
		Requests []struct {
			Op   string          `json:"op"`
			Args json.RawMessage `json:"args"`
		} `json:"requests"`
	}
	if err := decode(raw, &a, "batch"); err != nil {
		return nil, err
	}
	if len(a.Requests) == 0 || len(a.Requests) > maxBatch {
		return nil, validation("batch: requests must hold 1 to %d writes, got %d", maxBatch, len(a.Requests))
	}
	out := make([]batchItem, len(a.Requests))
	reqs := make([]syncengine.Request, 0, len(a.Requests))
	at := make([]int, 0, len(a.Requests)) // reqs[k] answers out[at[k]]
	for i, item := range a.Requests {
		decode, ok := writeRequests[item.Op]
		if !ok {
			out[i].Error = errorOf(validation("batch: request %d: op must be put, patch, delete or apply, got %s", i, quote(item.Op)))
			continue
		}
		r, err := decode(item.Args)
		if err != nil {
			out[i].Error = errorOf(err)
			continue
		}
		reqs = append(reqs, r)
		at = append(at, i)
	}
	if len(reqs) > 0 {
		for k, res := range b.eng.ApplyRequests(context.Background(), reqs) {
			if res.Err != nil {
				out[at[k]].Error = errorOf(res.Err)
			} else {
				out[at[k]].Result = &res.Result
			}
		}
	}
	return map[string]any{"results": out}, nil
}

func (b *Bridge) get(raw json.RawMessage) (any, error) {
	var a struct {
		Collection string `json:"collection"`
		ID         string `json:"id"`
	}
	if err := decode(raw, &a, "get"); err != nil {
		return nil, err
	}
	rec, err := b.eng.Get(context.Background(), a.Collection, a.ID)
	if err != nil || rec == nil {
		return json.RawMessage("null"), err
	}
	return encodeRecord(rec)
}

func (b *Bridge) query(raw json.RawMessage) (any, error) {
	var a struct {
		SQL    string `json:"sql"`
		Params []any  `json:"params"`
	}
	if err := decode(raw, &a, "query"); err != nil {
		return nil, err
	}
	for i, p := range a.Params {
		switch p.(type) {
		case map[string]any, []any:
			return nil, validation("query: parameter %d is an object or array; pass strings, numbers, booleans or null (JSON.stringify it for a json column)", i+1)
		}
	}
	rows, err := b.eng.Query(context.Background(), a.SQL, a.Params...)
	if err != nil {
		return nil, err
	}
	// {"rows": [...], "tables": [...], "version": n}, encoded in one buffer.
	out := append(make([]byte, 0, 256), `{"rows":`...)
	if out, err = encodeRows(out, rows); err != nil {
		return nil, err
	}
	out = append(out, `,"tables":[`...)
	for i, t := range rows.Tables {
		if i > 0 {
			out = append(out, ',')
		}
		out = protocol.AppendJSONString(out, t)
	}
	out = append(out, `],"version":`...)
	out = strconv.AppendUint(out, rows.Version, 10)
	return encoded(append(out, '}')), nil
}

func (b *Bridge) export(json.RawMessage) (any, error) {
	return b.eng.Export(context.Background())
}

func (b *Bridge) importDump(raw json.RawMessage) (any, error) {
	var a struct {
		Dump json.RawMessage `json:"dump"`
	}
	if err := decode(raw, &a, "import"); err != nil {
		return nil, err
	}
	d, err := syncengine.DecodeDump(a.Dump)
	if err != nil {
		return nil, err
	}
	return b.eng.Import(context.Background(), d)
}

func (b *Bridge) migrate(raw json.RawMessage) (any, error) {
	var a syncengine.Migration
	if err := decode(raw, &a, "migrate"); err != nil {
		return nil, err
	}
	return b.eng.Migrate(context.Background(), a)
}

func (b *Bridge) currentStatus(ctx context.Context) (syncengine.Status, error) {
	return b.eng.Status(ctx)
}

func (b *Bridge) status(json.RawMessage) (any, error) {
	return b.currentStatus(context.Background())
}

func (b *Bridge) setOnline(raw json.RawMessage) (any, error) {
	var a struct {
		Online *bool `json:"online"`
	}
	if err := decode(raw, &a, "setOnline"); err != nil {
		return nil, err
	}
	if a.Online == nil {
		return nil, validation("setOnline: online must be true or false")
	}
	if b.syncer != nil {
		b.syncer.SetOnline(*a.Online)
	}
	return nil, nil
}

// syncTimeout bounds one explicit sync() call.
const syncTimeout = 2 * time.Minute

func (b *Bridge) sync(json.RawMessage) (any, error) {
	b.storeMu.Lock()
	s := b.syncer
	b.storeMu.Unlock()
	if s == nil {
		return nil, validation("sync: this store was opened without sync options; pass sync: {url, token} to openStore")
	}
	ctx, cancel := context.WithTimeout(context.Background(), syncTimeout)
	defer cancel()
	return nil, s.SyncNow(ctx)
}

func (b *Bridge) integrityCheck(json.RawMessage) (any, error) {
	res, err := b.eng.IntegrityCheck(context.Background())
	return map[string]string{"result": res}, err
}

// maxInspectLimit bounds the outbox entries one inspect lists.
const maxInspectLimit = 10000

func (b *Bridge) inspect(raw json.RawMessage) (any, error) {
	var a struct {
		Limit int `json:"limit"`
	}
	if err := decode(raw, &a, "inspect"); err != nil {
		return nil, err
	}
	if a.Limit < 0 || a.Limit > maxInspectLimit {
		return nil, validation("inspect: limit must be from 1 to %d (0 or none: 100), got %d", maxInspectLimit, a.Limit)
	}
	return b.eng.Inspect(context.Background(), a.Limit)
}

// applyPullPage applies a pull page given by the page (benchmarks, tests).
func (b *Bridge) applyPullPage(raw json.RawMessage) (any, error) {
	var page *protocol.PullResponse
	err := protocol.WalkObject(raw, func(key string, value []byte) (err error) {
		if key != "page" {
			return fmt.Errorf("unknown key %s", quote(key))
		}
		page, err = protocol.DecodePullResponse(value)
		return err
	})
	if err == nil && page == nil {
		err = errors.New("page is missing")
	}
	if err != nil {
		return nil, validation("applyPullPage: bad arguments: %v", err)
	}
	res, err := b.eng.ApplyRemotePage(context.Background(), page)
	if err != nil {
		return nil, err
	}
	return map[string]any{"applied": res.Applied, "changed": res.Changed, "skipped": res.Skipped}, nil
}
