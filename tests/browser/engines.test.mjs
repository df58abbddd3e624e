// The engine matrix: one persistent-store scenario, run on Chromium, Firefox
// and WebKitGTK through the thin drivers of lib/engines.mjs, against the
// real server.
//
// The scenario: a store opened with the default storage must be persistent
// on every engine — OPFS where the worker has sync access handles
// (Chromium, Firefox), the IndexedDB fallback where it does not (WebKitGTK
// 2.50 has no navigator.storage.getDirectory) — and status().storage says
// which. Writes, a patch, a delete and the outbox survive a reload without
// close(), integrity is ok, sync() drains the outbox and the server holds
// the same records and the tombstone. On Chromium the scenario runs a second
// time with storage: 'indexeddb', and a default open afterwards stays on
// that IndexedDB database (a browser that gains OPFS keeps its data).
// Explicit storage: 'memory' works everywhere; it is never a fallback.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startServer, userToken } from './lib/harness.mjs';
import { ENGINES, launch, suiteEngines } from './lib/engines.mjs';

/**
 * persistentScenario runs the scenario on a store named name opened with
 * storage (undefined: the default) and checks it lands on want.
 */
async function persistentScenario(server, page, { name, storage, want, token, label }) {
  const opened = await page.evaluate(([name, storage, token]) => T.attempt(async () => {
    const info = await T.open('e', { name, ...(storage ? { storage } : {}), sync: { url: location.origin, token } });
    await T.stores.e.sync(); // nothing yet; proves the server answers
    await T.stores.e.close();
    return info.status.storage;
  }), [name, storage, token]);
  assert.equal(opened.ok, want, `${label}: first open: ${JSON.stringify(opened)}`);

  // Offline writes: the store is reopened without sync, written, reloaded.
  await page.reload();
  const wrote = await page.evaluate(([name, storage]) => T.attempt(async () => {
    await T.open('e', { name, ...(storage ? { storage } : {}) });
    const s = T.stores.e;
    for (let n = 0; n < 10; n++) await s.put('todos', { id: `t${n}`, title: `todo ${n}`, done: n % 2 === 0, rank: n, tags: { n } });
    await s.patch('todos', 't1', { title: 'patched' });
    await s.delete('todos', 't2');
    return T.pendingSettled('e', 12);
  }), [name, storage]);
  assert.equal(wrote.ok, 12, `${label}: ${JSON.stringify(wrote)}`);

  await page.reload(); // without close(): the page dies with the database open
  const kept = await page.evaluate(([name, storage, token]) => T.attempt(async () => {
    // First without sync, so that no push can drain the outbox before it
    // is counted; then with sync.
    const info = await T.open('e', { name, ...(storage ? { storage } : {}) });
    let s = T.stores.e;
    const rows = await s.query('SELECT id, title, done, rank FROM todos ORDER BY rank');
    const integrity = await s.integrityCheck();
    const pendingBefore = await T.pendingSettled('e', 12);
    await s.close();
    await T.open('e', { name, ...(storage ? { storage } : {}), sync: { url: location.origin, token } });
    s = T.stores.e;
    await s.sync();
    return { storage: info.status.storage, statusStorage: s.status().storage, rows, integrity, pendingBefore, pendingAfter: s.status().pending };
  }), [name, storage, token]);
  assert.ok(kept.ok, `${label}: ${JSON.stringify(kept)}`);
  assert.equal(kept.ok.storage, want);
  assert.equal(kept.ok.statusStorage, want, 'status().storage says which storage the store uses');
  assert.equal(kept.ok.integrity, 'ok');
  assert.equal(kept.ok.pendingBefore, 12, 'the outbox survived the reload');
  assert.equal(kept.ok.pendingAfter, 0, 'sync() drained the outbox');
  const rows = Array.from({ length: 10 }, (_, n) => ({ id: `t${n}`, title: n === 1 ? 'patched' : `todo ${n}`, done: n % 2 === 0, rank: n })).filter((r) => r.id !== 't2');
  assert.deepEqual(kept.ok.rows, rows);

  const remote = await server.pull(token);
  const live = Object.entries(remote).filter(([, r]) => !r._deleted).map(([k, r]) => ({ id: k.split('/')[1], title: r.title, done: r.done, rank: r.rank })).sort((a, b) => a.rank - b.rank);
  assert.deepEqual(live, rows, `${label}: the server holds what the browser wrote`);
  assert.equal(remote['todos/t2']?._deleted, true, 'the delete reached the server as a tombstone');
  return rows;
}

describe('engines', { timeout: 400000 }, () => {
  let server;
  before(async () => { server = await startServer(); });
  after(async () => { await server?.stop(); });

  for (const engine of suiteEngines()) {
    const i = ENGINES.indexOf(engine); // each engine syncs as its own user
    test(engine, { timeout: 240000 }, async (t) => {
      const browser = await launch(engine);
      try {
        const page = await browser.newPage(`${server.url}/pages/store.html`);
        const features = await page.evaluate(async () => {
          // What the worker will see: probe it in a worker, as the engine does.
          const src = `postMessage({ dir: typeof navigator.storage?.getDirectory === 'function', sah: typeof FileSystemSyncAccessHandle === 'function', locks: typeof navigator.locks?.request === 'function', idb: typeof indexedDB === 'object' })`;
          const w = new Worker(URL.createObjectURL(new Blob([src], { type: 'text/javascript' })));
          return new Promise((resolve) => { w.onmessage = (e) => { w.terminate(); resolve(e.data); }; });
        });
        t.diagnostic(`${engine} ${browser.version}: worker has ${JSON.stringify(features)}`);
        const hasOPFS = features.dir && features.sah;
        const want = hasOPFS ? 'opfs' : 'indexeddb';
        if (!hasOPFS) t.diagnostic(`${engine}: no OPFS sync access handles in a dedicated worker: the default storage must fall back to IndexedDB`);
        assert.ok(hasOPFS || (features.idb && features.locks), `${engine} has neither OPFS nor IndexedDB with Web Locks`);
        await persistentScenario(server, page, { name: 'engines', want, token: userToken(18 + i), label: `${engine} default storage` });

        if (engine === 'chromium') {
          const rows = await persistentScenario(server, page, { name: 'engines-idb', storage: 'indexeddb', want: 'indexeddb', token: userToken(21), label: 'chromium storage indexeddb' });
          // A default open of a database that lives in IndexedDB stays there.
          await page.reload();
          const sticky = await page.evaluate(() => T.attempt(async () => {
            const info = await T.open('e', { name: 'engines-idb' });
            return { storage: info.status.storage, rows: await T.stores.e.query('SELECT id, title, done, rank FROM todos ORDER BY rank') };
          }));
          assert.deepEqual(sticky.ok, { storage: 'indexeddb', rows }, JSON.stringify(sticky));
        }

        await page.reload();
        const mem = await page.evaluate(() => T.attempt(async () => {
          const info = await T.open('m', { name: 'engines-memory', storage: 'memory' });
          await T.stores.m.put('todos', { id: 'm1', title: 'in memory' });
          return { storage: info.status.storage, got: await T.stores.m.get('todos', 'm1') };
        }));
        assert.deepEqual(mem.ok, { storage: 'memory', got: { id: 'm1', title: 'in memory', done: null, rank: null, note: null, tags: null } }, JSON.stringify(mem));
      } finally {
        await browser.close();
      }
    });
  }
});
