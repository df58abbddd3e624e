// opfsync.js — the JS client of opfsync: an offline-first store whose engine
// (Go compiled to WebAssembly, SQLite on the Origin Private File System) runs
// in a dedicated Web Worker. Dependency-free ES module; types in opfsync.d.ts.
//
//   import { openStore } from './opfsync.js';
//   const store = await openStore({ name: 'app', schema: {...} });
//
// The worker (opfsync-worker.js), wasm_exec.js and opfsync.wasm are loaded
// relative to this file's URL, so the files of web/dist/ can be copied to
// any folder of the app's origin. The page ↔ worker protocol is
// wasm/BRIDGE.md; the public API is the "Public JS API" of DESIGN.md. This
// module validates and serves the API; opfsync-link.js carries the requests
// to the engine (this tab's worker, or the leader tab's: the multi-tab
// protocol is described there).
//
// Decisions where DESIGN.md is silent:
// - storage 'memory' is private to the store that opens it: no leader
//   election, no sharing between tabs (nothing would survive a handover).
// - All tabs of an app are expected to open a store with the same schema
//   and sync options: the leader's apply to everyone.
// - watch() coalesces: while one run of its query is in flight, further
//   change events cause exactly one more run, so a burst of writes costs two
//   queries, and the last delivered result is always the newest state.
// - close() on the leader answers every request already sent to the engine
//   first; requests not yet sent (and a follower's unanswered requests)
//   reject with CLOSED.

/** @typedef {import('./opfsync.js').OpenOptions} OpenOptions */
/** @typedef {import('./opfsync.js').Status} Status */
/** @typedef {import('./opfsync.js').MigrationReport} MigrationReport */
/** @typedef {import('./opfsync.js').Inspection} Inspection */

import { ERROR_CODES, Link, OpfsyncError, closedError, report, toError, uuid } from './opfsync-link.js';

export { ERROR_CODES, OpfsyncError };

/**
 * openStore opens (creating it if needed) the store `options.name` and
 * resolves once it is ready: the schema applied and the listed localStorage
 * keys migrated (see store.migrationReport).
 * @param {OpenOptions} options
 * @returns {Promise<Store>}
 */
export async function openStore(options) {
  return Store.create(options);
}

// ---------------------------------------------------------------------------
// Validation at the JS boundary: nothing leaves this module unless it is
// well-typed and survives JSON exactly.

const OPTION_KEYS = ['name', 'schema', 'sync', 'migrateLocalStorage', 'storage', '_testHooks'];
const SYNC_KEYS = ['url', 'token'];
const MIGRATION_KEYS = ['key', 'collection', 'map', 'mode'];
const WRITE_OPTION_KEYS = ['origin'];
const ORIGINS = ['user', 'agent', 'system'];
const EVENTS = ['change', 'conflict', 'rejected', 'status'];
// The database name also names the OPFS files, the Web Lock and the channel.
const STORE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

function invalid(message) {
  return new OpfsyncError('VALIDATION', message);
}

function describe(v) {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') {
    const ctor = Object.getPrototypeOf(v)?.constructor?.name;
    return ctor && ctor !== 'Object' ? `a ${ctor}` : 'an object';
  }
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v)}`;
  return `${typeof v === 'undefined' ? '' : 'the ' + typeof v + ' '}${String(v)}`;
}

function isPlainObject(v) {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

function checkString(v, what) {
  if (typeof v !== 'string' || v === '') throw invalid(`${what} must be a non-empty string, got ${describe(v)}`);
  return v;
}

function checkKeys(obj, allowed, what) {
  for (const k of Object.keys(obj)) {
    if (!allowed.includes(k)) throw invalid(`${what}: unknown option ${JSON.stringify(k)} (allowed: ${allowed.filter((a) => !a.startsWith('_')).join(', ')})`);
  }
}

/**
 * encode is JSON.stringify that refuses what JSON would silently change or
 * drop: functions, symbols, undefined (use null), NaN and ±Infinity (JSON
 * would turn them into null), BigInt, cycles, and class instances such as
 * Map or Set (JSON would turn them into {}). Objects with toJSON (Date) are
 * stored as their JSON form.
 * @param {unknown} value
 * @param {string} what names the value in the error message
 * @returns {string}
 */
function encode(value, what) {
  // Where each object sits, for the error message (put.record.tags[2].x).
  const paths = new Map();
  try {
    return JSON.stringify(value, function (key, v) {
      const path = paths.has(this) ? `${paths.get(this)}${Array.isArray(this) ? `[${key}]` : `.${key}`}` : what;
      switch (typeof v) {
        case 'number':
          if (!Number.isFinite(v)) throw invalid(`${path} is ${v}; JSON has no NaN or Infinity, so it cannot be stored (use null or a finite number)`);
          break;
        case 'bigint':
          throw invalid(`${path} is a BigInt; store it as a number (exact up to 2^53-1) or a string`);
        case 'function':
        case 'symbol':
          throw invalid(`${path} is a ${typeof v}; only JSON values (objects, arrays, strings, finite numbers, booleans, null) can be stored`);
        case 'undefined':
          throw invalid(`${path} is undefined; use null to store "no value", or leave the key out`);
        case 'object':
          if (v !== null) {
            if (!Array.isArray(v) && !isPlainObject(v)) {
              throw invalid(`${path} is ${describe(v)}; only plain objects and arrays can be stored (convert it first, e.g. [...map] or Object.fromEntries(map))`);
            }
            paths.set(v, path);
          }
          break;
      }
      return v;
    });
  } catch (err) {
    if (err instanceof OpfsyncError) throw err;
    // A cycle is the only other way JSON.stringify throws here.
    throw invalid(`${what} cannot be stored as JSON: ${err && err.message || err}`);
  }
}

function checkWriteOptions(opts, what) {
  if (opts === undefined) return {};
  if (!isPlainObject(opts)) throw invalid(`${what}: options must be an object like {origin: 'agent'}, got ${describe(opts)}`);
  checkKeys(opts, WRITE_OPTION_KEYS, what);
  const out = {};
  if (opts.origin !== undefined) {
    if (!ORIGINS.includes(opts.origin)) throw invalid(`${what}: origin must be one of ${ORIGINS.join(', ')}, got ${describe(opts.origin)}`);
    out.origin = opts.origin;
  }
  return out;
}

/**
 * checkOptions validates openStore's options and returns them normalised.
 * @param {any} options
 */
function checkOptions(options) {
  if (!isPlainObject(options)) throw invalid(`openStore: options must be an object like {name: 'app', schema: {...}}, got ${describe(options)}`);
  checkKeys(options, OPTION_KEYS, 'openStore');
  const name = checkString(options.name, 'openStore: name');
  if (!STORE_NAME.test(name)) throw invalid(`openStore: name ${JSON.stringify(name)} must be 1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit`);
  if (!isPlainObject(options.schema)) throw invalid(`openStore: schema must be an object like {version: 1, collections: {todos: {fields: {title: 'text'}}}}, got ${describe(options.schema)}`);
  encode(options.schema, 'openStore: schema');
  const storage = options.storage === undefined ? 'opfs' : options.storage;
  if (storage !== 'opfs' && storage !== 'memory') throw invalid(`openStore: storage must be 'opfs' or 'memory', got ${describe(storage)}`);
  let sync;
  if (options.sync !== undefined && options.sync !== null) {
    if (!isPlainObject(options.sync)) throw invalid(`openStore: sync must be an object {url, token}, got ${describe(options.sync)}`);
    checkKeys(options.sync, SYNC_KEYS, 'openStore: sync');
    const url = checkString(options.sync.url, 'openStore: sync.url');
    let parsed;
    try {
      parsed = new URL(url);
    } catch {
      throw invalid(`openStore: sync.url ${JSON.stringify(url)} is not a URL; give the server's origin, e.g. 'https://sync.example.com'`);
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw invalid(`openStore: sync.url must be an http(s) URL, got ${JSON.stringify(url)}`);
    const token = checkString(options.sync.token, 'openStore: sync.token');
    sync = { url, token };
  }
  const migrations = [];
  if (options.migrateLocalStorage !== undefined) {
    if (!Array.isArray(options.migrateLocalStorage)) throw invalid(`openStore: migrateLocalStorage must be an array of {key, collection, map}, got ${describe(options.migrateLocalStorage)}`);
    options.migrateLocalStorage.forEach((m, i) => {
      const what = `openStore: migrateLocalStorage[${i}]`;
      if (!isPlainObject(m)) throw invalid(`${what} must be an object {key, collection, map, mode?}, got ${describe(m)}`);
      checkKeys(m, MIGRATION_KEYS, what);
      checkString(m.key, `${what}.key`);
      checkString(m.collection, `${what}.collection`);
      if (typeof m.map !== 'function') throw invalid(`${what}.map must be a function (value: string) => records[], got ${describe(m.map)}`);
      if (m.mode !== undefined && m.mode !== 'upsert' && m.mode !== 'patch') throw invalid(`${what}.mode must be 'upsert' or 'patch', got ${describe(m.mode)}`);
      migrations.push({ key: m.key, collection: m.collection, map: m.map, mode: m.mode });
    });
  }
  let hooks = {};
  if (options._testHooks !== undefined) {
    if (!isPlainObject(options._testHooks)) throw invalid('openStore: _testHooks must be an object');
    hooks = options._testHooks;
  }
  return { name, schema: options.schema, storage, sync, migrations, hooks };
}

const CREATE = Symbol('create');

/**
 * Store is an open opfsync store. Create it with openStore().
 */
class Store {
  #opts;
  /** @type {Link} */
  #link;
  #handlers = { change: new Set(), conflict: new Set(), rejected: new Set(), status: new Set() };
  #watches = new Set();
  #closed = false;
  #closing = null;

  /**
   * The report of the localStorage migration run by openStore:
   * {imported, skipped, errors: [{key, id?, reason}]}.
   * @type {MigrationReport}
   */
  migrationReport = { imported: 0, skipped: 0, errors: [] };

  constructor(token, opts) {
    if (token !== CREATE) throw new TypeError('use openStore() to open a store');
    this.#opts = opts;
    const open = { name: opts.name, schema: opts.schema, storage: opts.storage };
    if (opts.sync) open.sync = opts.sync;
    this.#link = new Link({
      name: opts.name,
      storage: opts.storage,
      openArgsJson: encode(open, 'openStore options'),
      sync: !!opts.sync,
      hooks: opts.hooks,
      onEvent: (name, data) => this.#dispatch(name, data),
      // Another engine now serves this store (a takeover): events may have
      // been missed in between, so every watch runs again.
      onReroute: () => { for (const w of this.#watches) this.#runWatch(w); },
    });
  }

  /** @param {OpenOptions} options */
  static async create(options) {
    const store = new Store(CREATE, checkOptions(options));
    await store.#link.start();
    try {
      await store.#migrate();
    } catch (err) {
      await store.close();
      throw toError(err);
    }
    return store;
  }

  /** write runs a write op with a fresh requestId. */
  /**
   * #write sends one write request. Writes made in the same tick (e.g. a
   * Promise.all of puts) go to the engine together in one `batch` message
   * and are committed in one transaction, one storage flush for all; each
   * still resolves or rejects on its own, once that commit is durable.
   */
  #write(op, args) {
    args.requestId = uuid();
    const json = encode(args, op);
    return new Promise((resolve, reject) => {
      this.#queuedWrites.push({ op, json, resolve, reject });
      if (this.#queuedWrites.length === 1) queueMicrotask(() => this.#flushWrites());
    });
  }

  /** Writes of the current tick, not yet sent (see #write). */
  #queuedWrites = [];

  #flushWrites() {
    const batch = this.#queuedWrites;
    this.#queuedWrites = [];
    if (batch.length === 0) return;
    if (batch.length === 1) {
      this.#link.call(batch[0].op, batch[0].json).then(batch[0].resolve, batch[0].reject);
      return;
    }
    const requests = batch.map((w) => `{"op":${JSON.stringify(w.op)},"args":${w.json}}`).join(',');
    this.#link.call('batch', `{"requests":[${requests}]}`).then((res) => {
      const results = res && Array.isArray(res.results) ? res.results : [];
      batch.forEach((w, i) => {
        const r = results[i];
        if (r && r.error) w.reject(toError(r.error));
        else if (r && r.result) w.resolve(r.result);
        else w.reject(new OpfsyncError('INTERNAL', 'the engine did not answer this write of a batch'));
      });
    }, (err) => {
      for (const w of batch) w.reject(err);
    });
  }

  #dispatch(name, data) {
    if (this.#closed) return;
    if (name === 'change') this.#onChange(data);
    const set = this.#handlers[name];
    if (!set) return;
    const payload = name === 'status' ? this.status() : data;
    for (const h of [...set]) {
      try {
        h(payload);
      } catch (err) {
        report(err);
      }
    }
  }

  #onChange(data) {
    const tables = data && Array.isArray(data.tables) ? data.tables : null;
    for (const w of this.#watches) {
      if (!w.tables || !tables || tables.some((t) => w.tables.includes(t))) this.#runWatch(w);
    }
  }

  #runWatch(w) {
    if (!w.active) return;
    if (w.running) {
      w.dirty = true;
      return;
    }
    w.running = true;
    w.dirty = false;
    this.#link.call('query', w.args).then((res) => {
      // The mutationVersion guard: a result computed before one already
      // delivered (e.g. answered late by a leader that then died) is dropped.
      if (!w.active || typeof res.version !== 'number' || res.version < w.delivered) return;
      w.delivered = res.version;
      w.tables = Array.isArray(res.tables) ? res.tables : [];
      try {
        w.cb(res.rows);
      } catch (err) {
        report(err);
      }
    }, (err) => {
      if (!w.active || err.code === 'CLOSED') return;
      if (w.onError) {
        try { w.onError(err); } catch (e) { report(e); }
      } else {
        console.error('opfsync watch:', err);
      }
    }).finally(() => {
      w.running = false;
      if (w.dirty) this.#runWatch(w);
    });
  }

  // --- localStorage migration ----------------------------------------------

  async #migrate() {
    const rep = { imported: 0, skipped: 0, errors: [] };
    for (const m of this.#opts.migrations) {
      const key = m.key;
      let raw;
      try {
        raw = localStorage.getItem(key);
      } catch (err) {
        rep.errors.push({ key, reason: `could not read localStorage: ${err && err.message || err}` });
        continue;
      }
      if (raw === null) continue;
      let items;
      try {
        items = await m.map(raw);
      } catch (err) {
        rep.errors.push({ key, reason: `map threw: ${err && err.message || err}; the key was left in localStorage` });
        continue;
      }
      if (!Array.isArray(items)) {
        rep.errors.push({ key, reason: `map must return an array of records, it returned ${describe(items)}; the key was left in localStorage` });
        continue;
      }
      // An item JSON cannot carry exactly is skipped here, like any other
      // invalid item; the rest is imported.
      const good = [];
      const bad = [];
      for (let i = 0; i < items.length; i++) {
        try {
          encode(items[i], `item ${i}`);
          good.push(items[i]);
        } catch (err) {
          const e = { key, reason: err.message };
          if (items[i] && typeof items[i].id === 'string') e.id = items[i].id;
          bad.push(e);
        }
      }
      const args = { key, collection: m.collection, items: good };
      if (m.mode) args.mode = m.mode;
      let res;
      try {
        res = await this.#link.call('migrate', encode(args, 'migrate'));
      } catch (err) {
        rep.errors.push({ key, reason: `${err.code}: ${err.message}; the key was left in localStorage` });
        continue;
      }
      if (this.#opts.hooks.afterMigrateCommit) await this.#opts.hooks.afterMigrateCommit(key, res);
      // Committed (or done by an earlier open that did not get to clear
      // the key): only now may the key go.
      try {
        localStorage.removeItem(key);
      } catch (err) {
        report(err);
      }
      if (!res.alreadyDone) {
        rep.skipped += bad.length;
        rep.errors.push(...bad);
      }
      rep.imported += res.imported || 0;
      rep.skipped += res.skipped || 0;
      for (const e of res.errors || []) rep.errors.push({ key, ...e });
    }
    this.migrationReport = rep;
  }

  // --- public API ------------------------------------------------------------

  /**
   * put inserts or replaces a record (declared fields it omits become null)
   * and resolves once the write is durable locally.
   * @param {string} collection
   * @param {{id: string, [field: string]: unknown}} record
   * @param {{origin?: 'user'|'agent'|'system'}} [options]
   */
  async put(collection, record, options) {
    this.#checkOpen();
    checkString(collection, 'put: collection');
    if (!isPlainObject(record)) throw invalid(`put: record must be an object like {id: 't1', ...fields}, got ${describe(record)}`);
    checkString(record.id, 'put: record.id');
    return this.#write('put', { collection, record, ...checkWriteOptions(options, 'put') });
  }

  /**
   * patch sets some fields of an existing record (NOT_FOUND when it does
   * not exist or is deleted) and resolves once durable locally.
   * @param {string} collection
   * @param {string} id
   * @param {{[field: string]: unknown}} fields
   * @param {{origin?: 'user'|'agent'|'system'}} [options]
   */
  async patch(collection, id, fields, options) {
    this.#checkOpen();
    checkString(collection, 'patch: collection');
    checkString(id, 'patch: id');
    if (!isPlainObject(fields)) throw invalid(`patch: fields must be an object like {done: true}, got ${describe(fields)}`);
    return this.#write('patch', { collection, id, fields, ...checkWriteOptions(options, 'patch') });
  }

  /**
   * delete marks a record deleted (a tombstone that syncs) and resolves once
   * durable locally. Deleting a missing id succeeds.
   * @param {string} collection
   * @param {string} id
   * @param {{origin?: 'user'|'agent'|'system'}} [options]
   */
  async delete(collection, id, options) {
    this.#checkOpen();
    checkString(collection, 'delete: collection');
    checkString(id, 'delete: id');
    return this.#write('delete', { collection, id, ...checkWriteOptions(options, 'delete') });
  }

  /**
   * apply runs several writes in one transaction: all or nothing.
   * @param {Array<{op: 'put'|'patch'|'delete', collection: string, id: string, fields?: object, origin?: string}>} writes
   */
  async apply(writes) {
    this.#checkOpen();
    if (!Array.isArray(writes)) throw invalid(`apply: writes must be an array of {op, collection, id, fields?}, got ${describe(writes)}`);
    const out = writes.map((w, i) => {
      const what = `apply: writes[${i}]`;
      if (!isPlainObject(w)) throw invalid(`${what} must be an object {op, collection, id, fields?, origin?}, got ${describe(w)}`);
      checkKeys(w, ['op', 'collection', 'id', 'fields', 'origin'], what);
      if (w.op !== 'put' && w.op !== 'patch' && w.op !== 'delete') throw invalid(`${what}.op must be 'put', 'patch' or 'delete', got ${describe(w.op)}`);
      const o = { op: w.op, collection: checkString(w.collection, `${what}.collection`), id: checkString(w.id, `${what}.id`) };
      if (w.op !== 'delete') {
        if (!isPlainObject(w.fields)) throw invalid(`${what}.fields must be an object, got ${describe(w.fields)}`);
        o.fields = w.fields;
      } else if (w.fields !== undefined) {
        throw invalid(`${what}: a delete takes no fields`);
      }
      Object.assign(o, checkWriteOptions(w.origin === undefined ? undefined : { origin: w.origin }, what));
      return o;
    });
    return this.#write('apply', { writes: out });
  }

  /**
   * get resolves to the record {id, ...declared fields}, or null when it is
   * missing or deleted.
   * @param {string} collection
   * @param {string} id
   */
  async get(collection, id) {
    this.#checkOpen();
    checkString(collection, 'get: collection');
    checkString(id, 'get: id');
    return this.#link.call('get', encode({ collection, id }, 'get'));
  }

  /**
   * query runs one read-only SQL statement over the collections' tables
   * and resolves to its rows as plain objects.
   * @param {string} sql
   * @param {unknown[]} [params]
   */
  async query(sql, params) {
    this.#checkOpen();
    const res = await this.#link.call('query', queryArgs(sql, params, 'query'));
    return res.rows;
  }

  /**
   * watch calls cb with the query's rows at once, then again after every
   * commit that touches a table the query reads. A result older than one
   * already delivered is never delivered. Returns the unsubscribe function.
   * @param {string} sql
   * @param {unknown[]} params
   * @param {(rows: object[]) => void} cb
   * @param {(err: OpfsyncError) => void} [onError] called when a run fails
   * @returns {() => void}
   */
  watch(sql, params, cb, onError) {
    this.#checkOpen();
    if (typeof params === 'function' && cb === undefined) {
      cb = params;
      params = [];
    }
    const args = queryArgs(sql, params, 'watch');
    if (typeof cb !== 'function') throw invalid(`watch: the callback must be a function, got ${describe(cb)}`);
    if (onError !== undefined && typeof onError !== 'function') throw invalid(`watch: onError must be a function, got ${describe(onError)}`);
    const w = { args, cb, onError, tables: null, delivered: -1, running: false, dirty: false, active: true };
    this.#watches.add(w);
    this.#runWatch(w);
    return () => {
      w.active = false;
      this.#watches.delete(w);
    };
  }

  /**
   * on subscribes handler to 'change' | 'conflict' | 'rejected' | 'status'
   * events and returns the unsubscribe function.
   * @param {'change'|'conflict'|'rejected'|'status'} event
   * @param {(data: any) => void} handler
   * @returns {() => void}
   */
  on(event, handler) {
    this.#checkOpen();
    if (!EVENTS.includes(event)) throw invalid(`on: event must be one of ${EVENTS.join(', ')}, got ${describe(event)}`);
    if (typeof handler !== 'function') throw invalid(`on: handler must be a function, got ${describe(handler)}`);
    // A wrapper, so that subscribing the same function twice needs two
    // unsubscribes.
    const h = (d) => handler(d);
    this.#handlers[event].add(h);
    return () => { this.#handlers[event].delete(h); };
  }

  /**
   * status returns the last known status (synchronously).
   * @returns {Status}
   */
  status() {
    const s = this.#link.status();
    return { online: s.online, syncing: s.syncing, pending: s.pending, lastSyncAt: s.lastSyncAt, error: s.error, leader: this.#link.leader, storage: this.#link.storage };
  }

  /** sync pushes then pulls now; it rejects with NETWORK when the server cannot be reached. */
  async sync() {
    this.#checkOpen();
    await this.#link.call('sync', '{}');
  }

  /** export resolves to a JSON dump of every record with its field stamps and tombstones. */
  async export() {
    this.#checkOpen();
    return this.#link.call('export', '{}');
  }

  /**
   * import merges a dump (from export()) by id with field-level
   * last-writer-wins.
   * @param {object} dump
   * @returns {Promise<{inserted: number, updated: number, skipped: number}>}
   */
  async import(dump) {
    this.#checkOpen();
    if (!isPlainObject(dump)) throw invalid(`import: dump must be the object export() returned, got ${describe(dump)}`);
    return this.#link.call('import', encode({ dump }, 'import'));
  }

  /**
   * integrityCheck runs SQLite's PRAGMA integrity_check on the database and
   * resolves to its answer: 'ok' when the database is sound.
   * @returns {Promise<string>}
   */
  async integrityCheck() {
    this.#checkOpen();
    const res = await this.#link.call('integrityCheck', '{}');
    return res.result;
  }

  /**
   * _applyPullPage applies a page of remote changes ({changes, cursor,
   * hasMore}, as GET /sync/pull answers) through the engine's real apply
   * path, as if the sync loop had fetched it. Internal: for benchmarks and
   * tests only — data applied this way is treated as server-confirmed and is
   * never pushed.
   * @param {{changes: object[], cursor?: string, hasMore?: boolean}} page
   * @returns {Promise<{applied: boolean, changed: number, skipped: number}>}
   */
  async _applyPullPage(page) {
    this.#checkOpen();
    if (!isPlainObject(page) || !Array.isArray(page.changes)) throw invalid('_applyPullPage: page must be {changes: [...]}');
    return this.#link.call('applyPullPage', encode({ page }, '_applyPullPage'));
  }

  /**
   * inspect resolves to the engine's state, for an inspector panel: the
   * client id, mutationVersion, journal mode, schema versions, live records
   * per collection, the outbox (oldest first, at most options.limit entries,
   * default 100, and its full count), the pull state and the localStorage
   * migration markers. Works from any tab (a follower asks the leader).
   * @param {{limit?: number}} [options]
   * @returns {Promise<Inspection>}
   */
  async inspect(options) {
    this.#checkOpen();
    const args = {};
    if (options !== undefined) {
      if (!isPlainObject(options)) throw invalid(`inspect: options must be an object like {limit: 20}, got ${describe(options)}`);
      checkKeys(options, ['limit'], 'inspect');
      if (options.limit !== undefined) {
        if (!Number.isInteger(options.limit) || options.limit < 1 || options.limit > 10000) throw invalid(`inspect: limit must be an integer from 1 to 10000, got ${describe(options.limit)}`);
        args.limit = options.limit;
      }
    }
    return this.#link.call('inspect', JSON.stringify(args));
  }

  /**
   * close closes the store: on the leader tab, after answering every
   * request already sent to the engine; another tab then takes over. Later
   * calls reject with CLOSED. Closing twice is fine.
   */
  close() {
    if (this.#closing) return this.#closing;
    this.#flushWrites(); // writes made just before close() still go out first
    this.#closed = true;
    for (const w of this.#watches) w.active = false;
    this.#watches.clear();
    this.#closing = this.#link.close();
    return this.#closing;
  }

  #checkOpen() {
    if (this.#closed) throw closedError();
  }
}

function queryArgs(sql, params, what) {
  checkString(sql, `${what}: sql`);
  if (params === undefined || params === null) params = [];
  if (!Array.isArray(params)) throw invalid(`${what}: params must be an array, got ${describe(params)}`);
  return encode({ sql, params }, `${what} params`);
}
