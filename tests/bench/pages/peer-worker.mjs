// peer-worker.mjs — the peers of the benchmark in a dedicated module
// worker: the official SQLite WASM build on its opfs-sahpool VFS doing the
// equivalent SQL from JS, or Dexie on IndexedDB. Each workload is timed
// here, inside the worker (the peers' best case: no page ↔ worker message
// in the figure), while opfsync is timed from the page through its public
// API.
//
// Protocol: the page posts {op, ...args}; the worker answers {ok: result}
// or {error: message}. {op: 'open', engine, name} answers once the
// database is open with its table and index.
import { N, SQL_SCHEMA, TOP_SQL, NEWEST_SQL, record, writeRecord, burstRecord, readIds, patchFields, summarize } from './data.mjs';

let impl = null;

self.onmessage = async (e) => {
  const { op, ...args } = e.data;
  try {
    if (op === 'open') impl = await (args.engine === 'dexie' ? openDexie : openSQLite)(args.name);
    else if (!impl || !impl[op]) throw new Error(`unknown op ${op}`);
    const result = op === 'open' ? true : await impl[op](args);
    postMessage({ ok: result });
  } catch (err) {
    postMessage({ error: String(err && err.stack || err) });
  }
};

/** time runs fn once and returns its duration in ms. */
async function time(fn) {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

async function openSQLite(name) {
  const { default: init } = await import('../vendor/sqlite-wasm/index.mjs');
  const sqlite3 = await init();
  const pool = await sqlite3.installOpfsSAHPoolVfs({ directory: `.bench-sahpool-${name}` });
  const db = new pool.OpfsSAHPoolDb(`/${name}.db`);
  for (const sql of SQL_SCHEMA) db.exec(sql);
  const upsert = db.prepare('INSERT OR REPLACE INTO items (id, title, body, done, rank) VALUES (?, ?, ?, ?, ?)');
  const byId = db.prepare('SELECT id, title, body, done, rank FROM items WHERE id = ?');
  const update = db.prepare('UPDATE items SET title = ?, done = ? WHERE id = ?');
  const bind = (r) => [r.id, r.title, r.body, r.done ? 1 : 0, r.rank];
  const put = (r) => upsert.bind(bind(r)).stepReset();
  const rows = (sql) => db.exec({ sql, rowMode: 'object', returnValue: 'resultRows' });
  return {
    bulk: ({ n }) => time(() => db.transaction(() => { for (let i = 0; i < n; i++) put(record(i)); })),
    // W2: each put is its own (durable) transaction; "watch" = the put,
    // then the query an app would re-run to show it.
    writes: ({ n }) => {
      const put1 = [], seen = [];
      for (let i = 0; i < n; i++) {
        const r = writeRecord(i);
        const t0 = performance.now();
        put(r);
        const t1 = performance.now();
        const top = rows(NEWEST_SQL);
        if (top[0].id !== r.id) throw new Error(`newest is ${top[0].id}, want ${r.id}`);
        put1.push(t1 - t0);
        seen.push(performance.now() - t0);
      }
      return { put: summarize(put1), watch: summarize(seen) };
    },
    // W2b: n separate writes, each its own commit (no batching layer).
    burst: ({ n }) => time(() => { for (let i = 0; i < n; i++) put(burstRecord(i)); }),
    reads: ({ n }) => time(() => {
      for (const id of readIds(n)) {
        byId.bind([id]);
        if (!byId.step()) throw new Error(`missing ${id}`);
        byId.get({});
        byId.reset();
      }
    }),
    queries: ({ n }) => time(() => { for (let i = 0; i < n; i++) if (rows(TOP_SQL).length !== N.queryLimit) throw new Error('short top query'); }),
    patches: ({ n }) => time(() => db.transaction(() => {
      for (let i = 0; i < n; i++) {
        const f = patchFields(i);
        update.bind([f.title, f.done ? 1 : 0, `r${i}`]).stepReset();
      }
    })),
    count: () => rows('SELECT count(*) AS n FROM items')[0].n,
    close: () => {
      upsert.finalize(); byId.finalize(); update.finalize();
      db.close();
      pool.pauseVfs?.();
      return true;
    },
  };
}

async function openDexie(name) {
  const { default: Dexie, liveQuery } = await import('../vendor/dexie/dexie.mjs');
  const db = new Dexie(name);
  db.version(1).stores({ items: 'id, rank' });
  await db.open();
  const newest = () => db.items.orderBy('rank').reverse().limit(1).toArray();
  return {
    bulk: ({ n }) => time(() => db.items.bulkPut(Array.from({ length: n }, (_, i) => record(i)))),
    // W2: each put its own transaction; "watch" = a liveQuery delivering it.
    writes: async ({ n }) => {
      const put1 = [], seen = [];
      let waiting = null;
      const sub = liveQuery(newest).subscribe((rows) => {
        if (waiting && rows[0] && rows[0].id === waiting.id) waiting.resolve(performance.now());
      });
      for (let i = 0; i < n; i++) {
        const r = writeRecord(i);
        const delivered = new Promise((resolve) => { waiting = { id: r.id, resolve }; });
        const t0 = performance.now();
        await db.items.put(r);
        put1.push(performance.now() - t0);
        seen.push((await delivered) - t0);
      }
      sub.unsubscribe();
      return { put: summarize(put1), watch: summarize(seen) };
    },
    // W2b: n puts made in one tick, each its own transaction.
    burst: ({ n }) => time(() => Promise.all(Array.from({ length: n }, (_, i) => db.items.put(burstRecord(i))))),
    reads: ({ n }) => time(async () => {
      for (const id of readIds(n)) if (!(await db.items.get(id))) throw new Error(`missing ${id}`);
    }),
    queries: ({ n }) => time(async () => {
      for (let i = 0; i < n; i++) if ((await db.items.orderBy('rank').reverse().limit(N.queryLimit).toArray()).length !== N.queryLimit) throw new Error('short top query');
    }),
    patches: ({ n }) => time(() => db.items.bulkUpdate(Array.from({ length: n }, (_, i) => ({ key: `r${i}`, changes: patchFields(i) })))),
    count: () => db.items.count(),
    close: () => { db.close(); return true; },
  };
}
