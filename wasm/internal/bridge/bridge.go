// Package bridge serves the JS client's requests with the engine: it decodes
// the page's messages (wasm/BRIDGE.md), runs each op, and posts answers and
// engine events back as JSON strings. It has no syscall/js: the worker's
// main (wasm/) gives it a function that posts a string and a function that
// opens storage, so it is tested natively too.
package bridge

import (
	"context"
	"encoding/json"
	"errors"
	"sync"

	"github.com/opfsync/opfsync/pkg/protocol"
	"github.com/opfsync/opfsync/pkg/syncengine"
)

// Storage is an opened place for one database: the SQLite filename and VFS
// to give the engine, what kind it is ("opfs", "indexeddb" or "memory"),
// and how to release it after the engine closed.
type Storage struct {
	Path string
	VFS  string
	Kind string
	// Blocking: the storage's I/O waits for the JS event loop (IndexedDB),
	// so the engine must never run inside a JS callback: every op then
	// runs on the serving goroutine.
	Blocking bool
	Close    func() error
}

// StorageOpener opens the storage the page asked for (kind: "opfs",
// "indexeddb" or "memory") for the database name; the Storage it returns
// says which kind it chose. It fails with a *syncengine.Error (CodeLocked
// when another context holds the database, CodeStorage when no storage of
// that kind is available).
type StorageOpener func(ctx context.Context, name, kind string) (Storage, error)

// StorageDeleter removes every file of the database name from every
// persistent storage. It fails with a *syncengine.Error (CodeLocked while
// any context has the database open).
type StorageDeleter func(ctx context.Context, name string) error

// Storages are how the bridge opens and deletes databases.
type Storages struct {
	Open   StorageOpener
	Delete StorageDeleter
}

// Bridge owns at most one open engine and serves requests in the order they
// arrive (so a read sent after a write sees it); only sync runs alongside.
// TransportMaker returns the transport to a sync server at url (its
// origin) with a bearer token: fetch in the browser, net/http natively.
type TransportMaker func(url, token string) syncengine.Transport

type Bridge struct {
	post      func(string)
	storage   Storages
	transport TransportMaker

	mu       sync.Mutex
	cond     *sync.Cond
	queue    []decoded
	busy     bool // a message is being handled (inline or by serve)
	blocking bool // the open storage is Blocking: nothing runs inline

	// Owned by the serving goroutine.
	eng     *syncengine.Engine
	syncer  *syncengine.Syncer
	store   Storage
	unsub   func()
	storeMu sync.Mutex // guards eng/syncer for the sync goroutines
}

// New returns a bridge that posts answers and events with post, opens and
// deletes databases with storage and reaches sync servers through
// transport, and starts serving.
func New(post func(string), storage Storages, transport TransportMaker) *Bridge {
	b := &Bridge{post: post, storage: storage, transport: transport}
	b.cond = sync.NewCond(&b.mu)
	go b.serve()
	return b
}

// Receive serves one message from the page. It is called from a JS
// callback, so it must never wait for the JS event loop: an op that awaits
// JS promises (open, close and the async sync) is queued for the serving
// goroutine. Any other op is run right here when nothing is queued or
// running (after open, the engine's storage I/O is synchronous), which
// saves the goroutine hand-off that costs more than a point read on
// js/wasm; otherwise it is queued behind the others, so requests are
// always served in the order they arrived. On Blocking storage
// (IndexedDB) every op is queued.
func (b *Bridge) Receive(msg string) {
	req, err := decodeRequest(msg)
	d := decoded{req, err}
	b.mu.Lock()
	if b.busy || len(b.queue) > 0 || b.blocking || !d.runsInline() {
		b.queue = append(b.queue, d)
		b.mu.Unlock()
		b.cond.Signal()
		return
	}
	b.busy = true
	b.mu.Unlock()
	b.handle(d)
	b.done()
}

// done marks the current message handled and wakes the serving goroutine
// when messages queued up meanwhile.
func (b *Bridge) done() {
	b.mu.Lock()
	b.busy = false
	more := len(b.queue) > 0
	b.mu.Unlock()
	if more {
		b.cond.Signal()
	}
}

// decoded is a message from the page, decoded (or why it could not be).
type decoded struct {
	req request
	err error
}

// runsInline reports whether d is a request whose op may run inside a JS
// callback. Malformed messages go through the queue (answered in order).
func (d decoded) runsInline() bool {
	if d.err != nil {
		return false
	}
	op, ok := ops[d.req.Op]
	return ok && !op.awaitsJS && !op.async
}

func (b *Bridge) next() decoded {
	b.mu.Lock()
	defer b.mu.Unlock()
	for len(b.queue) == 0 || b.busy {
		b.cond.Wait()
	}
	d := b.queue[0]
	b.queue[0] = decoded{}
	b.queue = b.queue[1:]
	b.busy = true
	return d
}

func (b *Bridge) serve() {
	for {
		b.handle(b.next())
		b.done()
	}
}

// handle runs one message to its answer.
func (b *Bridge) handle(d decoded) {
	req, err := d.req, d.err
	if err != nil {
		if len(req.ID) > 0 {
			b.reply(req.ID, nil, &syncengine.Error{Code: syncengine.CodeValidation, Message: err.Error()})
		} else {
			b.emit("error", errorBody{Code: string(syncengine.CodeValidation), Message: err.Error()})
		}
		return
	}
	op, ok := ops[req.Op]
	if !ok {
		b.reply(req.ID, nil, &syncengine.Error{Code: syncengine.CodeValidation, Message: "unknown op " + quote(req.Op)})
		return
	}
	if op.needsOpen && b.eng == nil {
		b.reply(req.ID, nil, syncengine.ErrClosed)
		return
	}
	if op.async {
		go func() {
			result, err := op.run(b, req.Args)
			b.reply(req.ID, result, err)
		}()
		return
	}
	result, err := op.run(b, req.Args)
	b.reply(req.ID, result, err)
}

func quote(s string) string {
	if len(s) > 40 {
		s = s[:40] + "…"
	}
	raw, _ := json.Marshal(s)
	return string(raw)
}

// reply posts the answer to request id.
func (b *Bridge) reply(id json.RawMessage, result any, err error) {
	if enc, ok := result.(encoded); ok && err == nil {
		msg := make([]byte, 0, len(enc)+len(id)+20)
		msg = append(msg, `{"id":`...)
		msg = append(msg, id...)
		msg = append(msg, `,"result":`...)
		msg = append(msg, enc...)
		b.post(string(append(msg, '}')))
		return
	}
	a := answer{ID: id}
	if err != nil {
		a.Error = errorOf(err)
	} else {
		if result == nil {
			result = struct{}{}
		}
		a.Result = result
	}
	raw, merr := protocol.Marshal(a)
	if merr != nil {
		raw, _ = protocol.Marshal(answer{ID: id, Error: &errorBody{Code: string(syncengine.CodeInternal), Message: "encode answer: " + merr.Error()}})
	}
	b.post(string(raw))
}

// emit posts an event.
func (b *Bridge) emit(name string, data any) {
	raw, err := protocol.Marshal(event{Event: name, Data: data})
	if err != nil {
		return
	}
	b.post(string(raw))
}

// errorOf turns any error into the typed error the page sees.
func errorOf(err error) *errorBody {
	var te *syncengine.TransportError
	if errors.As(err, &te) {
		return &errorBody{Code: string(syncengine.CodeNetwork), Message: "sync failed: " + te.Error() + "; the changes stay queued and are retried"}
	}
	var ee *syncengine.Error
	if errors.As(err, &ee) {
		msg := ee.Message
		if ee.Err != nil && ee.Code != syncengine.CodeValidation {
			msg += " (" + ee.Err.Error() + ")"
		}
		return &errorBody{Code: string(ee.Code), Message: msg}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return &errorBody{Code: string(syncengine.CodeClosed), Message: err.Error()}
	}
	return &errorBody{Code: string(syncengine.CodeOf(err)), Message: err.Error()}
}
