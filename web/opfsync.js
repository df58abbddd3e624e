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

import { ERROR_CODES, Link, OpfsyncError, closedError, deleteDatabase, report, toError, uuid } from './opfsync-link.js';

export { ERROR_CODES, OpfsyncError };

/**
 * openStore opens (creating it if needed) the store `options.name` and
 * resolves once it is ready: the schema applied and the listed localStorage
 * keys migrated (see store.migrationReport).
 * @param {OpenOptions} options
 * @returns {Promise<Store>}
 */
export async function openStore(options) {
  checkArity(arguments, 1, 'openStore(options)');
  return Store.create(options);
}

/**
 * deleteStore deletes the store `name` from this origin — its database in
 * OPFS or IndexedDB, with every record and the outbox: writes not synced yet
 * are lost (check status().pending first if that matters, e.g. before a
 * sign-out). It resolves once the data is gone (also when there was none)
 * and rejects with LOCKED while a store of that name is open in this or
 * another tab: close it there first. A store opened after it starts empty.
 * @param {string} name
 * @returns {Promise<void>}
 */
export async function deleteStore(name) {
  checkArity(arguments, 1, 'deleteStore(name)');
  await deleteDatabase(checkStoreName(name, 'deleteStore: name'));
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

/** errText is the message of anything thrown (by a getter or a Proxy trap of the caller's data). */
function errText(err) {
  try {
    return String(err && err.message || err);
  } catch {
    return 'an unprintable error';
  }
}

/** unreadable is the error for a value whose getter or Proxy trap threw while opfsync read it. */
function unreadable(what, err) {
  return invalid(`${what} could not be read (${errText(err)}); pass plain data: a getter or Proxy trap threw`);
}

function describe(v) {
  try {
    if (v === null) return 'null';
    if (Array.isArray(v)) return 'an array';
    if (typeof v === 'object') {
      const ctor = Object.getPrototypeOf(v)?.constructor?.name;
      return ctor && ctor !== 'Object' ? `a ${ctor}` : 'an object';
    }
    if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v)}`;
    if (typeof v === 'undefined') return 'undefined';
    if (typeof v === 'bigint') return `the BigInt ${v}n`;
    return `the ${typeof v} ${String(v)}`;
  } catch {
    return 'a value that cannot be read';
  }
}

function isPlainObject(v) {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/** plain is isPlainObject for the caller's data: a throwing Proxy trap becomes VALIDATION naming what. */
function plain(v, what) {
  try {
    return isPlainObject(v);
  } catch (err) {
    throw unreadable(what, err);
  }
}

/** prop reads obj[key] of the caller's data: a throwing getter becomes VALIDATION naming what.key. */
function prop(obj, key, what) {
  try {
    return obj[key];
  } catch (err) {
    throw unreadable(`${what}.${key}`, err);
  }
}

// A lone UTF-16 surrogate: JSON.stringify escapes it, and the engine's JSON
// decoder would turn it into U+FFFD, so it could not come back as it went in.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const wellFormed = typeof String.prototype.isWellFormed === 'function'
  ? (s) => s.isWellFormed()
  : (s) => !LONE_SURROGATE.test(s);

function checkText(s, what) {
  if (!wellFormed(s)) {
    const at = s.search(LONE_SURROGATE);
    throw invalid(`${what} is not well-formed Unicode: a lone surrogate (\\u${s.charCodeAt(at).toString(16)}) at index ${at}; it cannot be stored as it is (fix the text, e.g. str.toWellFormed())`);
  }
}

function checkString(v, what) {
  if (typeof v !== 'string' || v === '') throw invalid(`${what} must be a non-empty string, got ${describe(v)}`);
  checkText(v, what);
  return v;
}

/** checkStoreName returns v when it is a valid store name (it names files and locks). */
function checkStoreName(v, what) {
  const name = checkString(v, what);
  if (!STORE_NAME.test(name)) throw invalid(`${what} ${JSON.stringify(name)} must be 1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit`);
  return name;
}

function checkKeys(obj, allowed, what) {
  let keys;
  try {
    keys = Object.keys(obj);
  } catch (err) {
    throw unreadable(what, err);
  }
  for (const k of keys) {
    if (!allowed.includes(k)) throw invalid(`${what}: unknown option ${JSON.stringify(k)} (allowed: ${allowed.filter((a) => !a.startsWith('_')).join(', ')})`);
  }
}

/**
 * checkArity refuses arguments past the signature's last parameter (a
 * trailing undefined counts as not given): store.query(sql, a, b) instead
 * of store.query(sql, [a, b]) must not be silently ignored.
 */
function checkArity(args, max, signature) {
  for (let i = args.length - 1; i >= max; i--) {
    if (args[i] !== undefined) {
      throw invalid(`${signature} takes at most ${max} argument${max === 1 ? '' : 's'}, got ${describe(args[i])} as argument ${i + 1}`);
    }
  }
}

/**
 * The deepest nesting encode follows. The engine refuses field values
 * nested more than 32 deep anyway; this bound only keeps a pathological
 * value (a 100,000-deep chain) from overflowing the stack.
 */
const MAX_DEPTH = 256;

/**
 * encode is JSON.stringify that refuses, with VALIDATION naming the path
 * (put.record.tags[2].x), whatever JSON would silently change or drop, so
 * that what get() returns is what was written: functions, symbols (values
 * and enumerable symbol keys), undefined (use null) and array holes, NaN
 * and ±Infinity, BigInt, cycles, strings with lone surrogates (values and
 * keys), and every object that is not a plain object or array — Map, Set,
 * Date, typed arrays, boxed primitives, class instances, and plain objects
 * with a toJSON method (JSON would store what toJSON returns). A getter or
 * Proxy trap that throws is refused the same way; nesting deeper than
 * MAX_DEPTH too. -0 is stored as 0.
 * @param {unknown} value
 * @param {string} what names the value in the error message
 * @returns {string}
 */
function encode(value, what) {
  check(value, what);
  // check refused everything JSON.stringify would change, so it writes
  // exactly the value (natively, several times faster than building the
  // text here).
  try {
    return JSON.stringify(value);
  } catch (err) {
    // Only a getter or Proxy trap that threw on this second read can get
    // here (check read everything once already).
    throw unreadable(what, err);
  }
}

/** check is encode's walk: it throws VALIDATION naming the path of the first value JSON cannot carry exactly. */
function check(value, what) {
  // The path of the value being checked, as a chain of {up, key} links:
  // turned into text (put.record.tags[2].x) only for an error message.
  const ancestors = new Set();
  walk(value, null, 0);

  function pathOf(at) {
    let s = '';
    for (; at; at = at.up) {
      const k = at.key;
      s = (typeof k === 'number' ? `[${k}]` : /^[A-Za-z_$][\w$]*$/.test(k) ? `.${k}` : `[${JSON.stringify(k)}]`) + s;
    }
    return what + (s.length > 120 ? `…${s.slice(-120)}` : s);
  }

  function walk(v, at, depth) {
    switch (typeof v) {
      case 'string':
        if (!wellFormed(v)) checkText(v, pathOf(at));
        return;
      case 'number':
        if (!Number.isFinite(v)) throw invalid(`${pathOf(at)} is ${v}; JSON has no NaN or Infinity, so it cannot be stored (use null or a finite number)`);
        return;
      case 'boolean':
        return;
      case 'bigint':
        throw invalid(`${pathOf(at)} is a BigInt; store it as a number (exact up to 2^53-1) or a string`);
      case 'function':
      case 'symbol':
        throw invalid(`${pathOf(at)} is a ${typeof v}; only JSON values (objects, arrays, strings, finite numbers, booleans, null) can be stored`);
      case 'undefined':
        throw invalid(`${pathOf(at)} is undefined; use null to store "no value", or leave the key out`);
    }
    if (v === null) return;
    if (ancestors.has(v)) throw invalid(`${pathOf(at)} is circular (it contains itself); JSON cannot store a cycle`);
    if (depth >= MAX_DEPTH) throw invalid(`${pathOf(at)} is nested more than ${MAX_DEPTH} levels deep`);
    ancestors.add(v);
    let isArray;
    try {
      isArray = Array.isArray(v);
    } catch (err) {
      throw unreadable(pathOf(at), err);
    }
    if (isArray) {
      let i = -1;
      try {
        const n = v.length;
        for (i = 0; i < n; i++) {
          if (!(i in v)) throw invalid(`${pathOf({ up: at, key: i })} is a hole of a sparse array; JSON would store null there (fill it, e.g. with null)`);
          walk(v[i], { up: at, key: i }, depth + 1);
        }
      } catch (err) {
        if (err instanceof OpfsyncError) throw err;
        throw unreadable(pathOf(i < 0 ? at : { up: at, key: i }), err);
      }
    } else {
      let keys;
      try {
        const proto = Object.getPrototypeOf(v);
        if (proto !== Object.prototype && proto !== null) {
          throw invalid(`${pathOf(at)} is ${describe(v)}; only plain objects and arrays can be stored (convert it first, e.g. date.toISOString(), [...set] or Object.fromEntries(map))`);
        }
        keys = Object.keys(v);
        const symbols = Object.getOwnPropertySymbols(v);
        for (let i = 0; i < symbols.length; i++) {
          if (Object.prototype.propertyIsEnumerable.call(v, symbols[i])) throw invalid(`${pathOf(at)} has a property keyed by ${String(symbols[i])}; JSON drops symbol keys, so it cannot be stored`);
        }
      } catch (err) {
        if (err instanceof OpfsyncError) throw err;
        throw unreadable(pathOf(at), err);
      }
      for (let i = 0; i < keys.length; i++) {
        const k = keys[i];
        if (!wellFormed(k)) checkText(k, `${pathOf(at)} has a key ${JSON.stringify(k)} that`);
        let item;
        try {
          item = v[k];
        } catch (err) {
          throw unreadable(pathOf({ up: at, key: k }), err);
        }
        if (k === 'toJSON' && typeof item === 'function') {
          throw invalid(`${pathOf(at)} has a toJSON method; JSON would store what it returns instead of the object: pass that value itself`);
        }
        walk(item, { up: at, key: k }, depth + 1);
      }
    }
    ancestors.delete(v);
  }
}

function checkWriteOptions(opts, what) {
  if (opts === undefined) return {};
  if (!plain(opts, `${what}: options`)) throw invalid(`${what}: options must be an object like {origin: 'agent'}, got ${describe(opts)}`);
  checkKeys(opts, WRITE_OPTION_KEYS, `${what}: options`);
  const out = {};
  const origin = prop(opts, 'origin', `${what}: options`);
  if (origin !== undefined) {
    if (!ORIGINS.includes(origin)) throw invalid(`${what}: options.origin must be one of ${ORIGINS.join(', ')}, got ${describe(origin)}`);
    out.origin = origin;
  }
  return out;
}

/**
 * checkOptions validates openStore's options and returns them normalised.
 * @param {any} options
 */
function checkOptions(options) {
  const o = 'openStore: options';
  if (!plain(options, o)) throw invalid(`openStore: options must be an object like {name: 'app', schema: {...}}, got ${describe(options)}`);
  checkKeys(options, OPTION_KEYS, 'openStore');
  const name = checkStoreName(prop(options, 'name', o), 'openStore: name');
  const schema = prop(options, 'schema', o);
  if (!plain(schema, 'openStore: schema')) throw invalid(`openStore: schema must be an object like {version: 1, collections: {todos: {fields: {title: 'text'}}}}, got ${describe(schema)}`);
  const schemaJson = encode(schema, 'openStore: schema');
  const storageOpt = prop(options, 'storage', o);
  const storage = storageOpt === undefined ? 'opfs' : storageOpt;
  if (storage !== 'opfs' && storage !== 'indexeddb' && storage !== 'memory') throw invalid(`openStore: storage must be 'opfs', 'indexeddb' or 'memory', got ${describe(storage)}`);
  let sync;
  const syncOpt = prop(options, 'sync', o);
  if (syncOpt !== undefined && syncOpt !== null) {
    if (!plain(syncOpt, 'openStore: sync')) throw invalid(`openStore: sync must be an object {url, token}, got ${describe(syncOpt)}`);
    checkKeys(syncOpt, SYNC_KEYS, 'openStore: sync');
    const url = checkString(prop(syncOpt, 'url', 'openStore: sync'), 'openStore: sync.url');
    let parsed;
    try {
      parsed = new URL(url);
    } catch {
      throw invalid(`openStore: sync.url ${JSON.stringify(url)} is not a URL; give the server's origin, e.g. 'https://sync.example.com'`);
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw invalid(`openStore: sync.url must be an http(s) URL, got ${JSON.stringify(url)}`);
    const token = checkString(prop(syncOpt, 'token', 'openStore: sync'), 'openStore: sync.token');
    sync = { url, token };
  }
  // The collections the schema declares (the engine checks the schema
  // itself; this only lets a migration naming an undeclared collection fail
  // here, before anything is opened).
  const declared = JSON.parse(schemaJson).collections;
  const migrations = [];
  const mls = prop(options, 'migrateLocalStorage', o);
  if (mls !== undefined) {
    if (!Array.isArray(mls)) throw invalid(`openStore: migrateLocalStorage must be an array of {key, collection, map}, got ${describe(mls)}`);
    for (let i = 0; i < mls.length; i++) {
      const what = `openStore: migrateLocalStorage[${i}]`;
      const m = prop(mls, i, 'openStore: migrateLocalStorage');
      if (!plain(m, what)) throw invalid(`${what} must be an object {key, collection, map, mode?}, got ${describe(m)}`);
      checkKeys(m, MIGRATION_KEYS, what);
      const key = checkString(prop(m, 'key', what), `${what}.key`);
      const collection = checkString(prop(m, 'collection', what), `${what}.collection`);
      if (isPlainObject(declared) && !Object.hasOwn(declared, collection)) {
        throw invalid(`${what}.collection ${JSON.stringify(collection)} is not declared in schema.collections (declared: ${Object.keys(declared).join(', ') || 'none'})`);
      }
      const map = prop(m, 'map', what);
      if (typeof map !== 'function') throw invalid(`${what}.map must be a function (value: string) => records[], got ${describe(map)}`);
      const mode = prop(m, 'mode', what);
      if (mode !== undefined && mode !== 'upsert' && mode !== 'patch') throw invalid(`${what}.mode must be 'upsert' or 'patch', got ${describe(mode)}`);
      migrations.push({ key, collection, map, mode });
    }
  }
  let hooks = {};
  const testHooks = prop(options, '_testHooks', o);
  if (testHooks !== undefined) {
    if (!plain(testHooks, 'openStore: _testHooks')) throw invalid('openStore: _testHooks must be an object');
    hooks = testHooks;
  }
  return { name, schema: JSON.parse(schemaJson), storage, sync, migrations, hooks };
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
    const payload = name === 'status' ? this.#status() : data;
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
  //
  // Every method first checks that it is called on an open store
  // (Store.#enter: VALIDATION when detached from its store, CLOSED after
  // close()), then its arguments, and refuses anything it cannot pass on
  // exactly with VALIDATION naming the argument. The methods that return a
  // Promise never throw synchronously (they are async); watch, on and
  // status throw.

  /**
   * #enter checks that a public method runs on a store (not detached, e.g.
   * `const {put} = store`) and that the store is open, and refuses extra
   * arguments.
   */
  static #enter(self, name, args, max, signature) {
    if (self === null || typeof self !== 'object' || !(#closed in self)) {
      throw invalid(`${name} must be called on a store, as store.${name}(…); it was called on ${describe(self)} (bind it, or wrap it in an arrow function)`);
    }
    if (self.#closed) throw closedError(name);
    checkArity(args, max, signature);
  }

  /**
   * put inserts or replaces a record (declared fields it omits become null)
   * and resolves once the write is durable locally.
   * @param {string} collection
   * @param {{id: string, [field: string]: unknown}} record
   * @param {{origin?: 'user'|'agent'|'system'}} [options]
   */
  async put(collection, record, options) {
    Store.#enter(this, 'put', arguments, 3, 'put(collection, record, options?)');
    checkString(collection, 'put: collection');
    if (!plain(record, 'put: record')) throw invalid(`put: record must be an object like {id: 't1', ...fields}, got ${describe(record)}`);
    checkString(prop(record, 'id', 'put: record'), 'put: record.id');
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
    Store.#enter(this, 'patch', arguments, 4, 'patch(collection, id, fields, options?)');
    checkString(collection, 'patch: collection');
    checkString(id, 'patch: id');
    if (!plain(fields, 'patch: fields')) throw invalid(`patch: fields must be an object like {done: true}, got ${describe(fields)}`);
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
    Store.#enter(this, 'delete', arguments, 3, 'delete(collection, id, options?)');
    checkString(collection, 'delete: collection');
    checkString(id, 'delete: id');
    return this.#write('delete', { collection, id, ...checkWriteOptions(options, 'delete') });
  }

  /**
   * apply runs several writes in one transaction: all or nothing.
   * @param {Array<{op: 'put'|'patch'|'delete', collection: string, id: string, fields?: object, origin?: string}>} writes
   */
  async apply(writes) {
    Store.#enter(this, 'apply', arguments, 1, 'apply(writes)');
    let isArray;
    try {
      isArray = Array.isArray(writes);
    } catch (err) {
      throw unreadable('apply: writes', err);
    }
    if (!isArray) throw invalid(`apply: writes must be an array of {op, collection, id, fields?}, got ${describe(writes)}`);
    const n = prop(writes, 'length', 'apply: writes');
    if (n === 0) throw invalid('apply: writes is empty; pass at least one {op, collection, id, fields?}');
    const out = [];
    for (let i = 0; i < n; i++) {
      const what = `apply: writes[${i}]`;
      const w = prop(writes, i, 'apply: writes');
      if (!plain(w, what)) throw invalid(`${what} must be an object {op, collection, id, fields?, origin?}, got ${describe(w)}`);
      checkKeys(w, ['op', 'collection', 'id', 'fields', 'origin'], what);
      const op = prop(w, 'op', what);
      if (op !== 'put' && op !== 'patch' && op !== 'delete') throw invalid(`${what}.op must be 'put', 'patch' or 'delete', got ${describe(op)}`);
      const o = { op, collection: checkString(prop(w, 'collection', what), `${what}.collection`), id: checkString(prop(w, 'id', what), `${what}.id`) };
      const fields = prop(w, 'fields', what);
      if (op !== 'delete') {
        if (!plain(fields, `${what}.fields`)) throw invalid(`${what}.fields must be an object, got ${describe(fields)}`);
        o.fields = fields;
      } else if (fields !== undefined) {
        throw invalid(`${what}: a delete takes no fields`);
      }
      const origin = prop(w, 'origin', what);
      Object.assign(o, checkWriteOptions(origin === undefined ? undefined : { origin }, what));
      out.push(o);
    }
    return this.#write('apply', { writes: out });
  }

  /**
   * get resolves to the record {id, ...declared fields}, or null when it is
   * missing or deleted.
   * @param {string} collection
   * @param {string} id
   */
  async get(collection, id) {
    Store.#enter(this, 'get', arguments, 2, 'get(collection, id)');
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
    Store.#enter(this, 'query', arguments, 2, 'query(sql, params?)');
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
    if (typeof params === 'function' && arguments.length <= 2) {
      Store.#enter(this, 'watch', arguments, 2, 'watch(sql, cb)');
      cb = params;
      params = [];
    } else {
      Store.#enter(this, 'watch', arguments, 4, 'watch(sql, params, cb, onError?)');
    }
    const args = queryArgs(sql, params, 'watch');
    if (typeof cb !== 'function') throw invalid(`watch: cb must be a function (rows) => void, got ${describe(cb)}`);
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
    Store.#enter(this, 'on', arguments, 2, 'on(event, handler)');
    if (!EVENTS.includes(event)) throw invalid(`on: event must be one of ${EVENTS.join(', ')}, got ${describe(event)}`);
    if (typeof handler !== 'function') throw invalid(`on: handler must be a function, got ${describe(handler)}`);
    // A wrapper, so that subscribing the same function twice needs two
    // unsubscribes.
    const h = (d) => handler(d);
    this.#handlers[event].add(h);
    return () => { this.#handlers[event].delete(h); };
  }

  /**
   * status returns the last known status (synchronously). It throws CLOSED
   * after close().
   * @returns {Status}
   */
  status() {
    Store.#enter(this, 'status', arguments, 0, 'status()');
    return this.#status();
  }

  #status() {
    const s = this.#link.status();
    return { online: s.online, syncing: s.syncing, pending: s.pending, lastSyncAt: s.lastSyncAt, error: s.error, leader: this.#link.leader, storage: this.#link.storage };
  }

  /** sync pushes then pulls now; it rejects with NETWORK when the server cannot be reached. */
  async sync() {
    Store.#enter(this, 'sync', arguments, 0, 'sync()');
    await this.#link.call('sync', '{}');
  }

  /** export resolves to a JSON dump of every record with its field stamps and tombstones. */
  async export() {
    Store.#enter(this, 'export', arguments, 0, 'export()');
    return this.#link.call('export', '{}');
  }

  /**
   * import merges a dump (from export()) by id with field-level
   * last-writer-wins.
   * @param {object} dump
   * @returns {Promise<{inserted: number, updated: number, skipped: number}>}
   */
  async import(dump) {
    Store.#enter(this, 'import', arguments, 1, 'import(dump)');
    if (!plain(dump, 'import: dump')) throw invalid(`import: dump must be the object export() returned, got ${describe(dump)}`);
    return this.#link.call('import', encode({ dump }, 'import'));
  }

  /**
   * integrityCheck runs SQLite's PRAGMA integrity_check on the database and
   * resolves to its answer: 'ok' when the database is sound.
   * @returns {Promise<string>}
   */
  async integrityCheck() {
    Store.#enter(this, 'integrityCheck', arguments, 0, 'integrityCheck()');
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
    Store.#enter(this, '_applyPullPage', arguments, 1, '_applyPullPage(page)');
    if (!plain(page, '_applyPullPage: page') || !Array.isArray(prop(page, 'changes', '_applyPullPage: page'))) throw invalid(`_applyPullPage: page must be {changes: [...]}, got ${describe(page)}`);
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
    Store.#enter(this, 'inspect', arguments, 1, 'inspect(options?)');
    const args = {};
    if (options !== undefined) {
      if (!plain(options, 'inspect: options')) throw invalid(`inspect: options must be an object like {limit: 20}, got ${describe(options)}`);
      checkKeys(options, ['limit'], 'inspect: options');
      const limit = prop(options, 'limit', 'inspect: options');
      if (limit !== undefined) {
        if (!Number.isInteger(limit) || limit < 1 || limit > 10000) throw invalid(`inspect: options.limit must be an integer from 1 to 10000, got ${describe(limit)}`);
        args.limit = limit;
      }
    }
    return this.#link.call('inspect', JSON.stringify(args));
  }

  /**
   * close closes the store: on the leader tab, after answering every
   * request already sent to the engine; another tab then takes over. Later
   * calls reject with CLOSED (status, watch and on throw it). Closing twice
   * is fine.
   * @returns {Promise<void>}
   */
  close() {
    if (this === null || typeof this !== 'object' || !(#closed in this)) {
      return Promise.reject(invalid(`close must be called on a store, as store.close(); it was called on ${describe(this)}`));
    }
    try {
      checkArity(arguments, 0, 'close()');
    } catch (err) {
      return Promise.reject(err);
    }
    if (this.#closing) return this.#closing;
    this.#flushWrites(); // writes made just before close() still go out first
    this.#closed = true;
    for (const w of this.#watches) w.active = false;
    this.#watches.clear();
    this.#closing = this.#link.close();
    return this.#closing;
  }
}

function queryArgs(sql, params, what) {
  checkString(sql, `${what}: sql`);
  if (params === undefined || params === null) params = [];
  let isArray;
  try {
    isArray = Array.isArray(params);
  } catch (err) {
    throw unreadable(`${what}: params`, err);
  }
  if (!isArray) throw invalid(`${what}: params must be an array, got ${describe(params)}`);
  const n = prop(params, 'length', `${what}: params`);
  for (let i = 0; i < n; i++) {
    const p = prop(params, i, `${what}: params`);
    if (p !== null && typeof p === 'object') {
      throw invalid(`${what}: params[${i}] is ${describe(p)}; a parameter is a string, a finite number, a boolean or null (JSON.stringify it to compare with a json column)`);
    }
  }
  return encode({ sql, params }, what);
}
