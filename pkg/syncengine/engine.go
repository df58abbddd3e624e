// Package syncengine is the opfsync engine: a local SQLite store that applies
// every write at once (optimistically), keeps it in a durable outbox until the
// server confirms it, merges remote changes with field-level last-writer-wins,
// and exposes each collection as an SQL table.
//
// The engine is platform-neutral: it reaches storage only through a SQLite VFS
// name and the network only through the sync loop's Transport. All SQLite work
// runs on one goroutine fed by a queue (SQLite is built single-threaded, and in
// the browser a call parked on a Promise must not be re-entered), so every
// method is safe for concurrent use.
package syncengine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/ncruces/go-sqlite3"
	"github.com/opfsync/opfsync/pkg/protocol"
)

// Engine is an open opfsync database. Create it with Open; call Close when
// done. All methods are safe for concurrent use.
type Engine struct {
	opts     Options
	turn     chan struct{} // holds a token while a call runs: one call at a time, FIFO
	stopped  chan struct{} // closed once Close has closed the database
	events   *dispatcher
	closeMu  sync.Mutex // guards isClosed and syncer
	isClosed bool
	syncer   *Syncer

	// Used only by the call holding the turn (and by Open before it returns).
	conn     *sqlite3.Conn
	stmts    *stmtCache
	scratch  []byte // reused encoding buffer (saveBase); SQLite copies what it binds
	schema   Schema
	clock    *protocol.Clock
	clientID string
	version  uint64
	journal  string
	quit     bool
	opening  bool                       // Open has not returned yet
	cols     map[string]*collectionInfo // per declared collection: column layout and SQL
	appStmts map[string]*appStmt        // compiled app queries, least recently used evicted
	appUse   uint64
}

// Open opens (creating if needed) the database named by opts, brings the
// engine's tables up to date, and applies the declared app schema. It fails
// with CodeLocked when another connection holds the database, CodeSchema when
// the database is newer than this engine or the schema change is not
// allowed, and CodeStorage when the file cannot be opened.
func Open(ctx context.Context, opts Options) (*Engine, error) {
	e := &Engine{
		opts:    opts,
		turn:    make(chan struct{}, 1),
		stopped: make(chan struct{}),
		events:  newDispatcher(),
	}
	if err := e.open(ctx); err != nil {
		e.closeConn()
		e.events.stop()
		return nil, err
	}
	return e, nil
}

func (e *Engine) open(ctx context.Context) error {
	e.opening = true
	defer func() { e.opening = false }()
	name := e.opts.Path
	if e.opts.VFS != "" {
		name = "file:" + strings.TrimPrefix(name, "file:") + "?vfs=" + url.QueryEscape(e.opts.VFS)
	}
	conn, err := sqlite3.OpenContext(ctx, name)
	if err != nil {
		return storageErr("open "+e.opts.Path, err)
	}
	e.conn = conn
	e.stmts = &stmtCache{conn: conn, stmts: map[string]*sqlite3.Stmt{}}
	if err := e.configure(); err != nil {
		return openErr(e.opts.Path, err)
	}
	if err := migrateEngine(conn, e.opts.now()); err != nil {
		return openErr(e.opts.Path, err)
	}
	if err := e.loadMeta(); err != nil {
		return err
	}
	if err := e.resetInterruptedPull(); err != nil {
		return err
	}
	if err := e.pruneRequests(); err != nil {
		return err
	}
	return e.applyAppSchema(e.opts.Schema)
}

// configure sets the connection pragmas.
//
//   - locking_mode=EXCLUSIVE: one connection owns the database for its whole
//     life. A second opener (another tab, worker or process) fails at once
//     with BUSY, reported as CodeLocked, instead of interleaving writes. It is
//     also what lets WAL work without shared memory (there is none on js).
//   - journal_mode=WAL: one append plus one sync per commit; measured ~20x
//     faster per small commit than the rollback journal on OPFS (DESIGN.md).
//     The answer is checked (SQLite silently answers another mode when the
//     VFS cannot do WAL). In-memory databases (memdb) use the memory journal.
//   - synchronous=FULL: the WAL is synced at every commit, so a write whose
//     call has returned survives a crash or power loss ("durable locally" is
//     part of the API contract). NORMAL would be ~2x faster per commit but
//     may lose the last commits.
//   - temp_store=MEMORY: no temp files (the OPFS VFS serves pre-opened
//     handles only; temp files would need asynchronous creation).
//   - cache_size: a larger page cache for bulk pull pages.
func (e *Engine) configure() error {
	cache := e.opts.CacheSizeKiB
	if cache <= 0 {
		cache = 16 << 10
	}
	for _, p := range []string{
		// The first statement reads the database header, so a database
		// another connection holds fails here, fast.
		"PRAGMA locking_mode=EXCLUSIVE",
		"PRAGMA temp_store=MEMORY",
		"PRAGMA cache_size=-" + strconv.Itoa(cache),
	} {
		if err := e.conn.Exec(p); err != nil {
			return storageErr(p, err)
		}
	}
	want := "wal"
	if e.inMemory() {
		want = "memory" // nothing to make durable; memdb has no WAL file
	}
	mode, err := e.pragmaText("PRAGMA journal_mode=" + want)
	if err != nil {
		return err
	}
	e.journal = mode
	if mode != want {
		return errorf(CodeStorage, "journal_mode=%s not available on this storage (SQLite answered %q)", want, mode)
	}
	return storageErr("set synchronous", e.conn.Exec("PRAGMA synchronous=FULL"))
}

func (e *Engine) inMemory() bool {
	return e.opts.VFS == "memdb" || e.opts.Path == ":memory:" || strings.Contains(e.opts.Path, "mode=memory")
}

func (e *Engine) pragmaText(sql string) (string, error) {
	st, _, err := e.conn.Prepare(sql)
	if err != nil {
		return "", storageErr(sql, err)
	}
	defer st.Close()
	if !st.Step() {
		if err := st.Err(); err != nil {
			return "", storageErr(sql, err)
		}
		return "", nil
	}
	return strings.ToLower(st.ColumnText(0)), nil
}

// loadMeta reads (or on first open creates) the client id, the clock's
// high-water stamp and the mutation version.
func (e *Engine) loadMeta() error {
	meta := map[string]string{}
	err := e.stmts.query(`SELECT key, value FROM meta WHERE key IN ('client_id', 'hlc', 'mutation_version', 'app_schema')`, nil,
		func(st *sqlite3.Stmt) error {
			meta[st.ColumnText(0)] = st.ColumnText(1)
			return nil
		})
	if err != nil {
		return storageErr("read meta", err)
	}
	e.clientID = meta["client_id"]
	if e.clientID == "" {
		var b [10]byte
		if _, err := rand.Read(b[:]); err != nil {
			return &Error{Code: CodeInternal, Message: "generate client id", Err: err}
		}
		e.clientID = "c" + hex.EncodeToString(b[:])
		if err := e.stmts.exec(`INSERT INTO meta (key, value) VALUES ('client_id', ?)`, e.clientID); err != nil {
			return storageErr("write client id", err)
		}
	}
	e.clock = protocol.NewClock(e.clientID, e.opts.now)
	if s := meta["hlc"]; s != "" {
		h, err := protocol.ParseHLC(s)
		if err != nil {
			return &Error{Code: CodeStorage, Message: "meta hlc is corrupt", Err: err}
		}
		e.clock.Observe(h)
	}
	if s := meta["mutation_version"]; s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return &Error{Code: CodeStorage, Message: "meta mutation_version is corrupt", Err: err}
		}
		e.version = v
	}
	if s := meta["app_schema"]; s != "" {
		if err := decodeStoredSchema(s, &e.schema); err != nil {
			return err
		}
		e.indexCollections()
	}
	return nil
}

// call runs fn alone on the engine (calls run one at a time, in the order
// they asked, each in its caller's goroutine: no hand-off to another
// goroutine, which on js/wasm costs more than a point read) and returns its
// error. It returns ErrClosed after Close, and ctx's error when ctx ends
// before fn starts; once fn has started it runs to completion.
func (e *Engine) call(ctx context.Context, fn func() error) error {
	select {
	case e.turn <- struct{}{}:
	case <-e.stopped:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-e.turn }()
	if e.quit {
		return ErrClosed // Close ran while this call waited
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return fn()
}

// Close waits for running calls, closes the database and stops event
// delivery after the queued events. Calls after Close fail with ErrClosed.
// Close is idempotent.
func (e *Engine) Close() error {
	e.closeMu.Lock()
	if e.isClosed {
		e.closeMu.Unlock()
		return nil
	}
	e.isClosed = true
	s := e.syncer
	e.closeMu.Unlock()
	if s != nil {
		s.Stop()
	}
	err := e.call(context.Background(), func() error {
		e.quit = true
		return e.closeConn()
	})
	close(e.stopped)
	e.events.stop()
	if err == ErrClosed {
		return nil
	}
	return err
}

func (e *Engine) closeConn() error {
	if e.conn == nil {
		return nil
	}
	if e.stmts != nil {
		e.stmts.closeAll()
	}
	e.closeAppStmts()
	err := e.conn.Close()
	e.conn = nil
	if err != nil {
		return storageErr("close database", err)
	}
	return nil
}

// Subscribe registers fn for every event the engine emits, delivered in
// order on a dedicated goroutine (fn may call the engine). It returns a
// function that unsubscribes.
func (e *Engine) Subscribe(fn func(Event)) (unsubscribe func()) { return e.events.subscribe(fn) }

// Status returns the sync status: the sync loop's when it runs, otherwise
// offline with the outbox size.
func (e *Engine) Status(ctx context.Context) (Status, error) {
	e.closeMu.Lock()
	s := e.syncer
	e.closeMu.Unlock()
	if s != nil {
		return s.Status(), nil
	}
	n, err := e.PendingCount(ctx)
	return Status{Pending: n}, err
}

// ClientID returns the database's stable client id (also the HLC node id).
func (e *Engine) ClientID() string { return e.clientID }

// JournalMode returns the journal mode SQLite confirmed at open ("wal" on
// files).
func (e *Engine) JournalMode() string { return e.journal }

// Version returns the current mutationVersion.
func (e *Engine) Version(ctx context.Context) (uint64, error) {
	var v uint64
	err := e.call(ctx, func() error { v = e.version; return nil })
	return v, err
}

// txn collects what one write transaction changed, for the version bump and
// the events emitted after it commits.
type txn struct {
	tables map[string]bool
	events []Event
	queued bool // local mutations were added to the outbox
}

// snapshot returns t's state, for restore when a savepoint is rolled back.
func (t *txn) snapshot() txn {
	return txn{tables: maps.Clone(t.tables), events: t.events[:len(t.events):len(t.events)], queued: t.queued}
}

// restore puts back a snapshot's state.
func (t *txn) restore(s txn) { *t = s }

func (t *txn) touch(table string) {
	if t.tables == nil {
		t.tables = map[string]bool{}
	}
	t.tables[table] = true
}

// write runs fn in one IMMEDIATE transaction within the current call. If fn
// touched any table, the mutation version is bumped and persisted with the
// clock in the same transaction. After commit, a ChangeEvent and fn's events
// are emitted; on any error everything is rolled back and nothing emitted.
func (e *Engine) write(fn func(t *txn) error) (err error) {
	if e.conn == nil {
		return ErrClosed
	}
	tx, err := e.conn.BeginImmediate()
	if err != nil {
		return storageErr("begin transaction", err)
	}
	t := &txn{}
	savedVersion := e.version
	defer func() {
		if err != nil {
			e.version = savedVersion
			tx.Rollback()
		}
	}()
	if err = fn(t); err != nil {
		return err
	}
	if len(t.tables) > 0 {
		e.version++
		if err = e.stmts.exec(`INSERT INTO meta (key, value) VALUES ('mutation_version', ?), ('hlc', ?)
			ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
			strconv.FormatUint(e.version, 10), e.clock.Last().String()); err != nil {
			return storageErr("save mutation version", err)
		}
	}
	if err = tx.Commit(); err != nil {
		return storageErr("commit", err)
	}
	if e.opening {
		return nil // nobody can have subscribed yet
	}
	if len(t.tables) > 0 {
		tables := make([]string, 0, len(t.tables))
		for name := range t.tables {
			tables = append(tables, name)
		}
		slices.Sort(tables)
		e.events.emit(&ChangeEvent{Tables: tables, Version: e.version, Queued: t.queued})
	}
	e.events.emit(t.events...)
	if t.tables["pending"] {
		e.emitLocalStatus()
	}
	return nil
}

// emitLocalStatus reports the outbox size after a commit that changed it,
// in commit order: through the sync loop's status when one runs (so a write
// made while a sync request is in flight is counted at once), else as a
// StatusEvent of its own. It runs inside an engine call.
func (e *Engine) emitLocalStatus() {
	n, err := e.countPending()
	if err != nil {
		return
	}
	e.closeMu.Lock()
	s := e.syncer
	e.closeMu.Unlock()
	if s != nil {
		s.updateStatus(func(st *Status) { st.Pending = n })
		return
	}
	e.events.emit(&StatusEvent{Status: Status{Pending: n}})
}

// IntegrityCheck runs SQLite's PRAGMA integrity_check and returns its
// answer ("ok" for a sound database).
func (e *Engine) IntegrityCheck(ctx context.Context) (string, error) {
	var out []string
	err := e.call(ctx, func() error {
		if e.conn == nil {
			return ErrClosed
		}
		st, _, err := e.conn.Prepare(`PRAGMA integrity_check`)
		if err != nil {
			return storageErr("integrity check", err)
		}
		defer st.Close()
		for st.Step() {
			out = append(out, st.ColumnText(0))
		}
		return storageErr("integrity check", st.Err())
	})
	return strings.Join(out, "\n"), err
}

// metaLastSyncAt is the meta key of the last successful sync (Unix ms).
const metaLastSyncAt = "last_sync_at"

// setMeta writes one meta key in its own transaction (no change event).
func (e *Engine) setMeta(ctx context.Context, key, value string) error {
	return e.call(ctx, func() error {
		return e.write(func(*txn) error {
			return storageErr("write meta "+key, e.stmts.exec(`INSERT INTO meta (key, value) VALUES (?, ?)
				ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, value))
		})
	})
}

// lastSyncAt returns the persisted time of the last successful sync (0 if
// none).
func (e *Engine) lastSyncAt(ctx context.Context) (int64, error) {
	var at int64
	err := e.call(ctx, func() error {
		return e.stmts.query(`SELECT value FROM meta WHERE key = ?`, []any{metaLastSyncAt}, func(st *sqlite3.Stmt) error {
			at, _ = strconv.ParseInt(st.ColumnText(0), 10, 64)
			return nil
		})
	})
	return at, storageErr("read meta", err)
}
