// bench.mjs — the page side of the browser benchmark. tests/bench/run.mjs
// calls B.suite(engine, options) in a fresh page for each engine and
// repetition; it runs the workloads in order on one fresh database and
// returns their figures (ms; p50/p95 for latencies).
//
// opfsync is timed here, in the page, through its public API (every figure
// includes the page ↔ worker messages an app pays). The peers run in
// peer-worker.mjs and time themselves in their worker; only their cold
// start and re-open are timed from the page (new Worker → database open).
import * as opfsync from '../dist/opfsync.js';
import { N, SCHEMA, TOP_SQL, NEWEST_SQL, record, writeRecord, burstRecord, readIds, patchFields, pullPage, summarize } from './data.mjs';

// W6 holds writes back by making the client think it is offline: the
// link reads navigator.onLine and listens for 'online'/'offline'.
let online = true;
Object.defineProperty(Navigator.prototype, 'onLine', { configurable: true, get: () => online });
function setOnline(on) {
  online = on;
  dispatchEvent(new Event(on ? 'online' : 'offline'));
}

/** elapsed runs fn once and returns its duration in ms. */
async function elapsed(fn) {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

/** fieldsOf(i) is bulk record i without its id. */
function fieldsOf(i) {
  const { id, ...fields } = record(i);
  return fields;
}

/** step logs progress (run.mjs shows it with BENCH_DEBUG=1). */
const step = (what) => console.debug(`bench: ${what}`);

function check(cond, what) {
  if (!cond) throw new Error(`benchmark check failed: ${what}`);
}

/** opfsyncEngine drives a store of the given storage ('opfs', 'indexeddb' or 'memory'). */
function opfsyncEngine(storage) {
  let store = null;
  const open = async (name, sync) => {
    store = await opfsync.openStore({ name, schema: SCHEMA, storage, ...(sync ? { sync } : {}) });
    return store;
  };
  return {
    persistent: storage !== 'memory',
    open: (name) => open(name),
    close: async () => { await store.close(); store = null; },
    // W1: the real apply path of a pull page (an internal op; in a real
    // sync the page arrives in the worker and never crosses the page).
    bulk: async (n) => {
      const page = pullPage(n);
      let res;
      const ms = await elapsed(async () => { res = await store._applyPullPage(page); });
      check(res.applied && res.changed === n, `changed ${res.changed} of ${n}`);
      return ms;
    },
    writes: async (n) => {
      const put1 = [], seen = [];
      let waiting = null;
      const stop = store.watch(NEWEST_SQL, [], (rows) => {
        if (waiting && rows[0] && rows[0].id === waiting.id) waiting.resolve(performance.now());
      });
      await store.query('SELECT 1');
      for (let i = 0; i < n; i++) {
        const r = writeRecord(i);
        const delivered = new Promise((resolve) => { waiting = { id: r.id, resolve }; });
        const t0 = performance.now();
        await store.put('items', r);
        put1.push(performance.now() - t0);
        seen.push((await delivered) - t0);
      }
      stop();
      return { put: summarize(put1), watch: summarize(seen) };
    },
    // W2b: n puts made in one tick (an app saving several things at once).
    burst: (n) => elapsed(() => Promise.all(Array.from({ length: n }, (_, i) => store.put('items', burstRecord(i))))),
    reads: (n) => elapsed(async () => {
      for (const id of readIds(n)) check(await store.get('items', id), `get ${id}`);
    }),
    queries: (n) => elapsed(async () => {
      for (let i = 0; i < n; i++) check((await store.query(TOP_SQL)).length === N.queryLimit, 'top query length');
    }),
    patches: (n) => elapsed(() => store.apply(Array.from({ length: n }, (_, i) => ({ op: 'patch', collection: 'items', id: `r${i}`, fields: patchFields(i) })))),
    count: async () => (await store.query('SELECT count(*) AS n FROM items'))[0].n,
    /** sync: W6 against the server at url with two users' tokens. */
    sync: async (name, { url, pushToken, pullToken }) => {
      // Push: N.push writes queued while "offline", then one sync().
      setOnline(false);
      const s = await open(`${name}-push`, { url, token: pushToken });
      await s.apply(Array.from({ length: N.push }, (_, i) => ({ op: 'put', collection: 'items', id: `p${i}`, fields: fieldsOf(i) })));
      const queued = (await s.inspect({ limit: 1 })).pendingCount;
      check(queued === N.push, `${queued} mutations queued, want ${N.push}`);
      step('W6 push');
      const push = await elapsed(() => s.sync());
      check((await s.inspect({ limit: 1 })).pendingCount === 0, 'outbox empty after sync');
      await s.close();
      // Pull: N.pull records of another user, pushed by a memory store (the
      // user's other device); a new store opens and its watch sees them all.
      const seed = await opfsync.openStore({ name: `${name}-seed`, schema: SCHEMA, storage: 'memory', sync: { url, token: pullToken } });
      await seed.apply(Array.from({ length: N.pull }, (_, i) => ({ op: 'put', collection: 'items', id: `s${i}`, fields: fieldsOf(i) })));
      step('W6 seed');
      await seed.sync();
      step('W6 seeded');
      check((await seed.inspect({ limit: 1 })).pendingCount === 0, 'seed pushed');
      await seed.close();
      setOnline(true);
      let all;
      const done = new Promise((resolve) => { all = resolve; });
      step('W6 pull');
      const t0 = performance.now();
      const p = await opfsync.openStore({ name: `${name}-pull`, schema: SCHEMA, storage, sync: { url, token: pullToken } });
      const stop = p.watch('SELECT count(*) AS n FROM items', [], (rows) => { if (rows[0].n === N.pull) all(performance.now()); });
      const pull = (await done) - t0;
      stop();
      await p.close();
      return { push, pull };
    },
  };
}

/** peerEngine drives peer-worker.mjs with engine 'sqlite' or 'dexie'. */
function peerEngine(engine) {
  let worker = null;
  let answer = null;
  const call = (op, args = {}) => new Promise((resolve, reject) => {
    answer = (m) => (m.error ? reject(new Error(`${engine} ${op}: ${m.error}`)) : resolve(m.ok));
    worker.postMessage({ op, ...args });
  });
  return {
    persistent: true,
    open: async (name) => {
      worker = new Worker(new URL('./peer-worker.mjs', import.meta.url), { type: 'module' });
      worker.onmessage = (e) => answer(e.data);
      worker.onerror = (e) => answer({ error: e.message || 'worker error' });
      await call('open', { engine, name });
    },
    close: async () => { await call('close'); worker.terminate(); worker = null; },
    bulk: (n) => call('bulk', { n }),
    writes: (n) => call('writes', { n }),
    burst: (n) => call('burst', { n }),
    reads: (n) => call('reads', { n }),
    queries: (n) => call('queries', { n }),
    patches: (n) => call('patches', { n }),
    count: () => call('count'),
  };
}

const ENGINES = {
  opfsync: () => opfsyncEngine('opfs'),
  'opfsync-idb': () => opfsyncEngine('indexeddb'),
  'opfsync-memory': () => opfsyncEngine('memory'),
  'sqlite-wasm': () => peerEngine('sqlite'),
  dexie: () => peerEngine('dexie'),
};

/**
 * suite runs W0–W5 (and W6 when options.sync is given) on a fresh database
 * named options.name and returns {cold, bulk, writes, reads, queries,
 * patches, reopen?, sync?}.
 */
async function suite(engineName, options) {
  const e = ENGINES[engineName]();
  const out = {};
  step('W0 cold');
  out.cold = await elapsed(() => e.open(options.name));
  step('W1');
  out.bulk = await e.bulk(N.bulk);
  const bulkCount = await e.count();
  check(bulkCount === N.bulk, `bulk count ${bulkCount}`);
  step('W2');
  out.writes = await e.writes(N.writes);
  out.burst = await e.burst(N.burst);
  step('W3-W5');
  out.reads = await e.reads(N.reads);
  out.queries = await e.queries(N.queries);
  out.patches = await e.patches(N.patches);
  await e.close();
  if (e.persistent) {
    out.reopen = await elapsed(() => e.open(options.name));
    check(await e.count() === N.bulk + N.writes + N.burst, 're-opened count');
    await e.close();
  }
  step('W6');
  if (options.sync && e.sync) out.sync = await e.sync(options.name, options.sync);
  return out;
}

window.B = { loaded: true, suite };

/**
 * X is for tests/bench/profile.mjs (make bench-profile): its expression
 * awaits X.profileGate() (set by profile.mjs) where the profiled part
 * starts. The profile* helpers are ready-made expressions.
 */
window.X = {
  opfsync, N, SCHEMA, pullPage, readIds, elapsed,
  /** memoryStore opens a memory store with the bench schema. */
  memoryStore: (name = 'profile') => opfsync.openStore({ name, schema: SCHEMA, storage: 'memory' }),
  /** profileApplyPage: W1 on a fresh worker (the first run, as the suite measures it). */
  async profileApplyPage() {
    const s = await X.memoryStore();
    const page = pullPage(N.bulk);
    await X.profileGate();
    return { ms: await elapsed(() => s._applyPullPage(page)) };
  },
  /** profileGets: W3 after the worker is warm. */
  async profileGets() {
    const s = await X.memoryStore();
    await s._applyPullPage(pullPage(N.bulk));
    const ids = readIds(N.reads);
    for (let i = 0; i < 3; i++) for (const id of ids) await s.get('items', id);
    await X.profileGate();
    return { ms: await elapsed(async () => { for (const id of ids) await s.get('items', id); }) };
  },
  /** profileQueries: W4 after the worker is warm. */
  async profileQueries() {
    const s = await X.memoryStore();
    await s._applyPullPage(pullPage(N.bulk));
    for (let i = 0; i < 3 * N.queries; i++) await s.query(TOP_SQL);
    await X.profileGate();
    return { ms: await elapsed(async () => { for (let i = 0; i < N.queries; i++) await s.query(TOP_SQL); }) };
  },
};
