// opfsync-link.js — internal module of opfsync.js (not a public API): the
// typed error, the engine worker (opfsync-worker.js, one per leader), and the
// Link through which a store reaches the engine — its own worker when this
// tab leads, the leader tab's over a BroadcastChannel otherwise.

/** The error codes of every rejection (DESIGN.md). */
export const ERROR_CODES = Object.freeze(['VALIDATION', 'NOT_FOUND', 'SCHEMA', 'STORAGE', 'LOCKED', 'CLOSED', 'NETWORK', 'INTERNAL']);

/**
 * OpfsyncError is the Error every opfsync rejection uses: `code` is one of
 * ERROR_CODES, `message` says what went wrong and what to do.
 */
export class OpfsyncError extends Error {
  /** @param {string} code @param {string} message */
  constructor(code, message) {
    super(message);
    this.name = 'OpfsyncError';
    this.code = ERROR_CODES.includes(code) ? code : 'INTERNAL';
  }
}

/** toError turns an {code, message} answer (or anything thrown) into an OpfsyncError. */
export function toError(e) {
  if (e instanceof OpfsyncError) return e;
  if (e && typeof e === 'object' && typeof e.code === 'string') return new OpfsyncError(e.code, String(e.message || e.code));
  return new OpfsyncError('INTERNAL', String(e && e.message || e));
}

/** closedError is the CLOSED error of a call (named by `name`, when given) on a closed store. */
export function closedError(name) {
  return new OpfsyncError('CLOSED', `${name ? name + ': ' : ''}the store is closed; open it again with openStore()`);
}

/** uuid returns a random UUID (crypto.randomUUID where it exists). */
export function uuid() {
  if (typeof crypto !== 'undefined' && crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** report surfaces an error thrown by app code (a handler) without stopping the caller. */
export function report(err) {
  if (typeof reportError === 'function') reportError(err);
  else console.error(err);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------
// The engine worker. Requests are numbered per worker.

const WORKER_URL = new URL('./opfsync-worker.js', import.meta.url);

/**
 * startDedicatedWorker starts opfsync-worker.js. It must be a dedicated
 * Worker: OPFS FileSystemSyncAccessHandle, which the engine's VFS needs,
 * exists only there (not on the page, not in a SharedWorker).
 */
function startDedicatedWorker() {
  if (typeof Worker === 'undefined') {
    throw new OpfsyncError('INTERNAL', 'opfsync needs dedicated Web Workers (OPFS sync access handles exist only there); this context has no Worker');
  }
  return new Worker(WORKER_URL, { name: 'opfsync' });
}

class EngineWorker {
  #worker;
  #nextId = 1;
  /** @type {Map<number, {resolve: Function, reject: Function}>} */
  #calls = new Map();
  #onEvent;
  #onDead;
  /** @type {OpfsyncError|null} */
  #dead = null;

  constructor(onEvent, onDead) {
    this.#onEvent = onEvent;
    this.#onDead = onDead;
    this.#worker = startDedicatedWorker();
    this.#worker.onmessage = (e) => this.#onMessage(e.data);
    this.#worker.onerror = (e) => {
      e.preventDefault();
      // A 404 or a syntax error of the worker script itself arrives here
      // as a bare Event without a message.
      this.#die(`the opfsync worker ${WORKER_URL.href} failed: ${e.message || 'it could not be loaded (is opfsync-worker.js served next to opfsync.js?)'}`);
    };
  }

  /**
   * call sends one request; argsJson is the already validated JSON of its
   * arguments, spliced in as is (no re-encoding).
   * @returns {Promise<any>}
   */
  call(op, argsJson) {
    if (this.#dead) return Promise.reject(this.#dead);
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#calls.set(id, { resolve, reject });
      this.#worker.postMessage(`{"id":${id},"op":${JSON.stringify(op)},"args":${argsJson}}`);
    });
  }

  terminate() {
    this.#worker.terminate();
    this.#fail(new OpfsyncError('CLOSED', 'the store was closed'));
  }

  #onMessage(json) {
    let msg;
    try {
      msg = JSON.parse(json);
    } catch {
      console.error('opfsync: a worker message is not JSON:', json);
      return;
    }
    if (msg.id !== undefined) {
      const c = this.#calls.get(msg.id);
      if (!c) return;
      this.#calls.delete(msg.id);
      if (msg.error) c.reject(toError(msg.error));
      else c.resolve(msg.result === undefined ? null : msg.result);
      return;
    }
    if (msg.event === 'error') {
      if (msg.data && msg.data.fatal) this.#die(msg.data.message);
      else console.warn('opfsync engine:', msg.data && msg.data.message);
      return;
    }
    if (typeof msg.event === 'string') this.#onEvent(msg.event, msg.data);
  }

  #die(message) {
    if (this.#dead) return;
    const err = new OpfsyncError('INTERNAL', message);
    this.#fail(err);
    this.#worker.terminate();
    this.#onDead(err);
  }

  #fail(err) {
    this.#dead = this.#dead || err;
    const calls = [...this.#calls.values()];
    this.#calls.clear();
    for (const c of calls) c.reject(err);
  }
}

// ---------------------------------------------------------------------------
// The Link. Multi-tab: one tab (the leader) owns the worker and the
// database; the others (followers) send it their requests.
//
// THE PROTOCOL
//
// Locks (Web Locks API):
//   'opfsync:<name>'       the leader lock. Every store instance requests it
//                          at open and keeps waiting for it; the holder is the
//                          leader. Released on close() or when the page dies,
//                          so the next waiter takes over.
//   'opfsync-tab:<tabId>'  a liveness lock each store instance holds for its
//                          whole life (tabId is random per instance). A
//                          follower waits on its leader's liveness lock: being
//                          granted it means that leader is gone (closed, or
//                          its page died), for certain.
// Channel BroadcastChannel('opfsync:<name>'), messages (structured clone):
//   {type:'ping',   from}                         follower → all: who leads?
//   {type:'leader', from, session, status, storage}  the leader, once its engine
//                                                 is open, and in answer to a ping
//   {type:'bye',    from}                         the leader stops (close/pagehide)
//   {type:'req',    from, to, rid, op, args}      follower → leader; args is the
//                                                 request's JSON text
//   {type:'res',    from, to, rid, result|error}  leader → follower
//   {type:'event',  from, session, name, data}    leader → all: change, conflict,
//                                                 rejected, status
// A session is one open engine of a leader (random id): a leader whose
// worker died and that opened a new one announces a new session.
//
// Requests. Every request of a store instance gets an rid unique to it and
// stays in #pending until answered, remembering the session it was sent to.
// A request is (re)sent whenever the instance learns of a serving session it
// has not been sent to — including its own, on becoming leader — and waits
// (it does not fail) while no leader is known. A leader only takes requests
// while its engine is open; one it gets while opening or closing it ignores,
// and the sender re-sends it on the next announcement. Each write carries a
// requestId (crypto.randomUUID()) with which the engine records its result
// in the write's own transaction and answers a retried write from that
// record, so a write committed by a dying leader and sent again is applied
// once. An answer from any leader settles the request; later ones are
// ignored.
//
// Races, and why they are fine:
// - Two tabs open at once: the lock grants one; the other's ping may go
//   unanswered, but the leader announces when its engine is open, and the
//   waiter's requests wait until then.
// - The leader dies mid-request: the engine either committed the write
//   (requestId recorded with it) or not; the next lock holder opens the
//   database (retrying LOCKED with backoff for a few seconds: a dead
//   worker's access handles take ~200 ms to free, 1-3 s if it was busy),
//   announces, and every follower re-sends what is unanswered.
// - A follower's request arrives while the new leader is still opening: it
//   cannot, because a leader announces only after its open succeeded; a
//   follower that pinged in between gets the announcement when it comes.
// - A stale announcement (a dead leader's last message arriving late) is
//   ignored once the tab is known dead (liveness lock granted, or 'bye');
//   if it arrives before that, the follower follows it briefly, then its
//   liveness watch fires, it pings, and re-sends to the real leader.
// - The leader closes: it stops taking follower requests (they are re-sent
//   to the next leader, never dropped), answers every request already in
//   the engine (one queue: they come before 'close'), closes the engine,
//   says 'bye' and only then releases the lock, so the next leader finds
//   the database free.
// - The leader's worker dies but its tab lives: its in-flight requests fail
//   with INTERNAL (writes may be retried: requestId), it opens a new engine
//   and announces a new session; followers re-send what it dropped.
// - A takeover whose open fails for good: the tab releases the lock and
//   queues for it again a second later (another tab may succeed); requests
//   keep waiting; status().error says why.

// Ops a follower may ask the leader to run (open, close and setOnline are the
// leader's own business).
const REMOTE_OPS = new Set(['put', 'patch', 'delete', 'apply', 'batch', 'get', 'query', 'export', 'import', 'migrate', 'sync', 'status', 'integrityCheck', 'inspect', 'applyPullPage']);

const OPEN_LOCKED_RETRY_MS = 10000;     // openStore: a reloaded page frees its handles in ~200 ms, a killed busy worker in 1-3 s
const TAKEOVER_LOCKED_RETRY_MS = 10000; // takeover: a busy dead worker may run on for 1-3 s
const TAKEOVER_REQUEUE_MS = 1000;
const DELETE_LOCKED_RETRY_MS = 5000;   // deleteStore: a store just closed frees its files in ~200 ms, a killed busy worker in 1-3 s
const CLOSE_LOCK_WAIT_MS = 3000;       // close(): the longest it waits for the leader lock to be free

/**
 * retryWhileLocked calls attempt until it resolves, rejects with anything
 * but LOCKED, stop() says to give up, or retryMs have passed (then it
 * rejects with the last LOCKED error). It waits 50 ms between attempts,
 * doubling up to 400 ms.
 * @template T
 * @param {() => Promise<T>} attempt
 * @param {number} retryMs
 * @param {() => boolean} [stop]
 * @returns {Promise<T>}
 */
async function retryWhileLocked(attempt, retryMs, stop = () => false) {
  const deadline = Date.now() + retryMs;
  for (let delay = 50; ; delay = Math.min(delay * 2, 400)) {
    try {
      return await attempt();
    } catch (err) {
      if (err.code !== 'LOCKED' || stop() || Date.now() + delay >= deadline) throw err;
      await sleep(delay);
    }
  }
}

/**
 * deleteDatabase removes the database name, from OPFS and IndexedDB, in a
 * worker of its own, holding the database's leader lock all along so that
 * no store (in any tab) opens it meanwhile. It rejects with LOCKED when a
 * store of that name is open, in this tab or another.
 * @param {string} name a valid store name
 * @returns {Promise<void>}
 */
export async function deleteDatabase(name) {
  const remove = async () => {
    const engine = new EngineWorker(() => {}, () => {});
    try {
      // LOCKED without the leader lock: held by the worker of a store that
      // is just closing (or was killed), or by something else.
      await retryWhileLocked(() => engine.call('deleteDatabase', JSON.stringify({ name })), DELETE_LOCKED_RETRY_MS);
    } finally {
      engine.terminate();
    }
  };
  if (typeof navigator === 'undefined' || !navigator.locks) return remove();
  return navigator.locks.request(`opfsync:${name}`, { ifAvailable: true }, (lock) => {
    if (!lock) throw new OpfsyncError('LOCKED', `deleteStore: the store "${name}" is open (in this tab or another); close it there first`);
    return remove();
  });
}

/**
 * Link carries a store's requests to the engine and the engine's events
 * back, following the protocol above. It knows nothing of the public API.
 */
export class Link {
  #name;
  #openArgsJson;
  #sync;
  #openedOffline = false; // the last open message said the page was offline
  #hooks;
  #onEvent;
  #onReroute;
  #tabId = uuid();
  #solo; // no election: storage 'memory', or no Web Locks / BroadcastChannel
  /** @type {BroadcastChannel|null} */
  #channel = null;
  #releaseAlive = null;
  /** @type {AbortController|null} */
  #leaderLockAbort = null;
  #releaseLeaderLock = null;
  /** Settles once this instance's leader-lock request is over (lock released, or the wait aborted). */
  #leaderLockDone = Promise.resolve();
  /** @type {AbortController|null} */
  #leaderWatch = null;
  #deadTabs = new Set();
  #isLeader = false;
  #serving = false; // leader with an open engine
  /** @type {EngineWorker|null} */
  #engine = null;
  #leaderId = null; // the tab this instance follows (its own tabId while it leads)
  // Where requests go: `${tabId}:${session}` of the leader's serving session.
  // A leader that restarts its engine starts a new session, so requests its
  // old engine dropped are sent again.
  #leaderKey = null;
  #session = null; // this instance's serving session, while it leads
  #broken = null; // solo only: the engine died (a memory database is gone with it)
  #storage;
  /** @type {Map<string, {rid: string, op: string, args: string, sentTo: string|null, resolve: Function, reject: Function}>} */
  #pending = new Map();
  #nextRid = 1;
  #status = { online: typeof navigator === 'undefined' || navigator.onLine !== false, syncing: false, pending: 0, lastSyncAt: 0, error: '' };
  #ready = false;
  #openFailed = null;
  #closed = false;
  #listeners = [];

  /**
   * @param {{name: string, storage: string, openArgsJson: string, sync: boolean, hooks: object,
   *   onEvent: (name: string, data: any) => void, onReroute: () => void}} o
   *   onEvent gets change, conflict, rejected and status events (status
   *   after status() has been updated); onReroute is called when requests
   *   start going to another engine (a takeover), where events may have
   *   been missed.
   */
  constructor(o) {
    this.#name = o.name;
    this.#storage = o.storage;
    this.#openArgsJson = o.openArgsJson;
    this.#sync = o.sync;
    this.#hooks = o.hooks;
    this.#onEvent = o.onEvent;
    this.#onReroute = o.onReroute;
    this.#solo = o.storage === 'memory' || typeof navigator === 'undefined' || !navigator.locks || typeof BroadcastChannel === 'undefined';
  }

  /** leader reports whether this instance owns the database now. */
  get leader() { return this.#isLeader; }

  /**
   * storage is the storage kind the engine opened (the one asked for until
   * a leader reported it: 'opfs' may have fallen back to 'indexeddb').
   * @returns {'opfs'|'indexeddb'|'memory'}
   */
  get storage() { return this.#storage; }

  /** status returns the engine's last known sync status. */
  status() { return this.#status; }

  /**
   * start resolves once a leader (this instance, or another tab) serves
   * requests, or rejects with this instance's open failure.
   */
  async start() {
    try {
      if (this.#solo) {
        await this.#lead();
      } else {
        this.#channel = new BroadcastChannel(`opfsync:${this.#name}`);
        this.#channel.onmessage = (e) => this.#onChannel(e.data);
        await new Promise((granted, refused) => {
          navigator.locks.request(`opfsync-tab:${this.#tabId}`, () => {
            granted();
            return new Promise((r) => { this.#releaseAlive = r; });
          }).catch(refused);
        });
        const failed = new Promise((_, reject) => { this.#openFailed = reject; });
        failed.catch(() => {});
        this.#requestLeadership();
        this.#post({ type: 'ping' });
        // Ready when some leader (possibly this instance) answers.
        const status = await Promise.race([this.call('status', '{}'), failed]);
        if (!this.#isLeader && status && typeof status === 'object') this.#status = { ...this.#status, ...status };
      }
    } catch (err) {
      this.#closed = true;
      this.#rejectPending(new OpfsyncError('CLOSED', 'openStore failed'));
      this.#shutdown();
      throw toError(err);
    }
    this.#ready = true;
    this.#listen(globalThis, 'online', () => this.#sendOnline());
    this.#listen(globalThis, 'offline', () => this.#sendOnline());
    this.#listen(globalThis, 'pagehide', (e) => {
      if (!e.persisted && this.#isLeader) this.#post({ type: 'bye' });
    });
  }

  /**
   * call sends op with argsJson (its validated JSON arguments) to the
   * leader's engine and resolves with the result; it waits while no leader
   * is known.
   * @returns {Promise<any>}
   */
  call(op, argsJson) {
    if (this.#closed) return Promise.reject(closedError());
    if (this.#broken) return Promise.reject(this.#broken);
    return new Promise((resolve, reject) => {
      const req = { rid: `${this.#tabId}:${this.#nextRid++}`, op, args: argsJson, sentTo: null, resolve, reject };
      this.#pending.set(req.rid, req);
      this.#route(req);
    });
  }

  /**
   * close leaves: a leader first answers every request already sent to its
   * engine and closes the engine, then lets the next tab take over.
   * Unanswered requests of this instance reject with CLOSED.
   */
  async close() {
    if (this.#closed) return;
    this.#closed = true;
    for (const off of this.#listeners) off();
    this.#listeners = [];
    if (this.#isLeader && this.#serving && this.#engine) {
      try {
        await this.#engine.call('close', '{}');
      } catch {
        // Dead or already closed: nothing more to save.
      }
    }
    this.#rejectPending(closedError());
    this.#shutdown();
    // Resolve once the leader lock is free (the release is asynchronous),
    // so that deleteStore or an open right after close() finds it free; a
    // takeover still opening the engine may hold it a while: not for long.
    await Promise.race([this.#leaderLockDone, sleep(CLOSE_LOCK_WAIT_MS)]);
  }

  #shutdown() {
    this.#engine?.terminate();
    this.#engine = null;
    if (this.#isLeader) this.#post({ type: 'bye' });
    this.#isLeader = false;
    this.#serving = false;
    this.#leaderLockAbort?.abort();
    this.#releaseLeaderLock?.();
    this.#stopWatchingLeader();
    this.#releaseAlive?.();
    this.#channel?.close();
    this.#channel = null;
    for (const off of this.#listeners) off();
    this.#listeners = [];
  }

  #listen(target, type, fn) {
    if (!target || typeof target.addEventListener !== 'function') return;
    target.addEventListener(type, fn);
    this.#listeners.push(() => target.removeEventListener(type, fn));
  }

  // --- leading ---------------------------------------------------------------

  #requestLeadership() {
    const abort = new AbortController();
    this.#leaderLockAbort = abort;
    this.#leaderLockDone = navigator.locks.request(`opfsync:${this.#name}`, { signal: abort.signal }, async () => {
      if (this.#closed) return;
      const held = new Promise((r) => { this.#releaseLeaderLock = r; });
      // #lead releases the lock itself (through #releaseLeaderLock) when it
      // fails, also later, after an engine restart.
      if (await this.#lead()) await held;
      this.#releaseLeaderLock = null;
    }).catch((err) => {
      if (err && err.name !== 'AbortError') report(err);
    });
  }

  /**
   * lead opens the engine as the leader and starts a serving session. It
   * returns false when this instance did not become a serving leader.
   */
  async #lead() {
    const initial = !this.#ready;
    this.#stopWatchingLeader();
    this.#isLeader = true;
    this.#leaderId = this.#tabId;
    this.#leaderKey = null;
    let opened;
    try {
      opened = await this.#openEngine(initial ? OPEN_LOCKED_RETRY_MS : TAKEOVER_LOCKED_RETRY_MS);
    } catch (err) {
      this.#isLeader = false;
      this.#leaderId = null;
      this.#session = null;
      this.#engine?.terminate();
      this.#engine = null;
      if (this.#solo) throw err;
      this.#releaseLeaderLock?.();
      if (initial) {
        this.#openFailed(err);
      } else if (!this.#closed) {
        // Let another tab try; queue up again a moment later. Requests
        // keep waiting for whichever leader comes.
        this.#setStatus({ error: `could not take over the database: ${err.message}` });
        setTimeout(() => { if (!this.#closed) this.#requestLeadership(); }, TAKEOVER_REQUEUE_MS);
      }
      return false;
    }
    if (this.#closed) return false;
    this.#serving = true;
    this.#session = uuid();
    this.#leaderKey = `${this.#tabId}:${this.#session}`;
    this.#storage = opened.storage || this.#storage;
    this.#status = { ...this.#status, ...(opened.status || {}) };
    this.#post({ type: 'leader', session: this.#session, status: this.#status, storage: this.#storage });
    // Offline now, or opened offline (the network may have come back while
    // opening, before anyone listened): tell the engine the current state.
    if (typeof navigator !== 'undefined' && (navigator.onLine === false || this.#openedOffline)) this.#sendOnline();
    this.#onEvent('status', this.#status);
    this.#rerouteAll();
    return true;
  }

  async #openEngine(lockedRetryMs) {
    const open = () => {
      if (!this.#engine) {
        const engine = new EngineWorker((name, data) => this.#onEngineEvent(name, data), (err) => this.#onEngineDead(engine, err));
        this.#engine = engine;
      }
      return this.#engine.call('open', this.#openArgs());
    };
    try {
      // LOCKED: the database is still held, by the page that just
      // reloaded, or by the worker of a leader that died (its access
      // handles take a moment to free). Anyone else would not use our lock.
      return await retryWhileLocked(open, lockedRetryMs, () => this.#closed);
    } catch (err) {
      if (err.code === 'LOCKED') {
        throw new OpfsyncError('LOCKED', `${err.message} — the database "${this.#name}" is held by another context (a tab or worker not using this store's leader election, or one still shutting down); close it, or try again in a moment`);
      }
      throw err;
    }
  }

  // The open message: with sync, it says whether the page is offline now, so
  // the engine's first push or pull waits for the network instead of trying.
  #openArgs() {
    this.#openedOffline = false;
    if (!this.#sync || typeof navigator === 'undefined' || navigator.onLine !== false) return this.#openArgsJson;
    this.#openedOffline = true;
    const args = JSON.parse(this.#openArgsJson);
    if (args.sync) args.sync.offline = true;
    return JSON.stringify(args);
  }

  #onEngineDead(engine, err) {
    if (this.#engine !== engine) return;
    const wasServing = this.#serving;
    this.#engine = null;
    this.#serving = false;
    this.#setStatus({ error: err.message });
    if (this.#solo) {
      // A memory database died with its worker: fail now and later rather
      // than carry on with an empty one.
      this.#broken = new OpfsyncError('INTERNAL', `${err.message} — open the store again`);
      this.#rejectPending(this.#broken);
    } else if (wasServing && this.#isLeader && this.#ready && !this.#closed) {
      // Start a fresh engine (a new serving session) for the next requests;
      // those in flight were rejected (writes can be retried safely: they
      // carry a requestId). One that dies while opening fails #lead.
      this.#lead();
    }
  }

  #sendOnline() {
    if (!this.#isLeader || !this.#serving || !this.#engine) return;
    this.#engine.call('setOnline', `{"online":${navigator.onLine !== false}}`).catch(() => {});
  }

  #serveRemote(msg) {
    // Not serving (closing, opening, or not the leader any more): stay
    // silent; the follower re-sends to the next serving session.
    if (!this.#isLeader || !this.#serving || this.#closed || !this.#engine) return;
    const answer = (result, error) => {
      // Test hook: returning false drops the answer, as a leader dying
      // right after the commit would.
      if (this.#hooks.onRemoteAnswer && this.#hooks.onRemoteAnswer(msg.op) === false) return;
      this.#post({ type: 'res', to: msg.from, rid: msg.rid, result, error });
    };
    if (!REMOTE_OPS.has(msg.op) || typeof msg.args !== 'string') {
      answer(undefined, { code: 'VALIDATION', message: `op ${JSON.stringify(msg.op)} cannot be sent to the leader` });
      return;
    }
    this.#engine.call(msg.op, msg.args).then(
      (result) => answer(result, undefined),
      (err) => {
        if (err.code === 'CLOSED' && this.#closed) return; // re-sent to the next leader
        answer(undefined, { code: err.code, message: err.message });
      });
  }

  #onEngineEvent(name, data) {
    if (name === 'status') this.#status = { ...this.#status, ...data };
    this.#post({ type: 'event', session: this.#session, name, data });
    this.#onEvent(name, data);
  }

  #setStatus(patch) {
    this.#status = { ...this.#status, ...patch };
    this.#onEvent('status', this.#status);
  }

  // --- following -------------------------------------------------------------

  #follow(from, session, announce) {
    if (this.#isLeader || this.#closed || this.#deadTabs.has(from) || typeof session !== 'string') return;
    if (announce && announce.status) {
      this.#status = { ...this.#status, ...announce.status };
      if (announce.storage) this.#storage = announce.storage;
    }
    const key = `${from}:${session}`;
    if (key === this.#leaderKey) return;
    if (from !== this.#leaderId) this.#watchLeader(from);
    this.#leaderId = from;
    this.#leaderKey = key;
    this.#rerouteAll();
  }

  #watchLeader(id) {
    this.#stopWatchingLeader();
    const abort = new AbortController();
    this.#leaderWatch = abort;
    navigator.locks.request(`opfsync-tab:${id}`, { signal: abort.signal }, () => {
      // Granted: that instance is gone (closed, or its page died).
      this.#deadTabs.add(id);
      if (this.#leaderId === id && !this.#isLeader) this.#leaderGone();
    }).catch(() => {});
  }

  #stopWatchingLeader() {
    this.#leaderWatch?.abort();
    this.#leaderWatch = null;
  }

  #leaderGone() {
    this.#leaderId = null;
    this.#leaderKey = null;
    this.#stopWatchingLeader();
    if (!this.#closed) this.#post({ type: 'ping' });
  }

  #post(msg) {
    if (!this.#channel) return;
    try {
      this.#channel.postMessage({ ...msg, from: this.#tabId });
    } catch (err) {
      report(err);
    }
  }

  #onChannel(msg) {
    if (this.#closed || !msg || typeof msg !== 'object' || msg.from === this.#tabId) return;
    switch (msg.type) {
      case 'ping':
        if (this.#isLeader && this.#serving) this.#post({ type: 'leader', session: this.#session, status: this.#status, storage: this.#storage });
        break;
      case 'leader':
        this.#follow(msg.from, msg.session, msg);
        break;
      case 'bye':
        this.#deadTabs.add(msg.from);
        if (msg.from === this.#leaderId && !this.#isLeader) this.#leaderGone();
        break;
      case 'req':
        if (msg.to === this.#tabId) this.#serveRemote(msg);
        break;
      case 'res':
        if (msg.to === this.#tabId) this.#settle(msg.rid, msg.error ? toError(msg.error) : null, msg.result);
        break;
      case 'event':
        if (this.#isLeader) break;
        this.#follow(msg.from, msg.session, null);
        if (msg.from === this.#leaderId) {
          if (msg.name === 'status') this.#status = { ...this.#status, ...msg.data };
          this.#onEvent(msg.name, msg.data);
        }
        break;
    }
  }

  // --- requests --------------------------------------------------------------

  #route(req) {
    const resend = req.sentTo !== null;
    if (this.#isLeader) {
      if (!this.#serving || !this.#engine) return; // sent once the engine is open
      req.sentTo = this.#leaderKey;
      this.#engine.call(req.op, req.args).then((r) => this.#settle(req.rid, null, r), (e) => this.#settle(req.rid, e));
    } else if (this.#leaderKey) {
      req.sentTo = this.#leaderKey;
      this.#post({ type: 'req', to: this.#leaderId, rid: req.rid, op: req.op, args: req.args });
    } else {
      return;
    }
    if (resend && this.#hooks.onResend) this.#hooks.onResend(req.op);
  }

  #rerouteAll() {
    for (const req of this.#pending.values()) {
      if (req.sentTo !== this.#leaderKey) this.#route(req);
    }
    if (this.#ready) this.#onReroute();
  }

  #settle(rid, err, result) {
    const req = this.#pending.get(rid);
    if (!req) return;
    this.#pending.delete(rid);
    if (err) req.reject(toError(err));
    else req.resolve(result === undefined ? null : result);
  }

  #rejectPending(err) {
    const reqs = [...this.#pending.values()];
    this.#pending.clear();
    for (const r of reqs) r.reject(err);
  }
}
