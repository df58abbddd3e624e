// The engine matrix: one scenario, run on Chromium, Firefox and WebKitGTK
// through the thin drivers of lib/engines.mjs, against the real server.
//
// Where the engine gives the worker OPFS sync access handles, the store must
// be persistent there: writes, a delete and the outbox survive a reload,
// integrity is ok, sync() brings the server to the same records, and
// status().storage says 'opfs'. Where it does not (WebKitGTK 2.50 has no
// navigator.storage.getDirectory), the test says so and checks what the
// client does there today: openStore fails with STORAGE naming OPFS — never
// a silently non-persistent store — and storage: 'memory' works when asked
// for explicitly. (The IndexedDB fallback of issue 9 is not built yet.)
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startServer, userToken } from './lib/harness.mjs';
import { ENGINES, launch } from './lib/engines.mjs';

const only = process.env.OPFSYNC_ENGINES ? process.env.OPFSYNC_ENGINES.split(',') : ENGINES;

describe('engines', { timeout: 300000 }, () => {
  let server;
  before(async () => { server = await startServer(); });
  after(async () => { await server?.stop(); });

  ENGINES.forEach((engine, i) => {
    test(engine, { timeout: 180000, skip: only.includes(engine) ? false : `OPFSYNC_ENGINES=${process.env.OPFSYNC_ENGINES}` }, async (t) => {
      const browser = await launch(engine);
      try {
        const page = await browser.open(`${server.url}/pages/store.html`);
        const features = await page.evaluate(async () => {
          // What the worker will see: probe it in a worker, as the engine does.
          const src = `postMessage({ dir: typeof navigator.storage?.getDirectory === 'function', sah: typeof FileSystemSyncAccessHandle === 'function', locks: typeof navigator.locks?.request === 'function', idb: typeof indexedDB === 'object' })`;
          const w = new Worker(URL.createObjectURL(new Blob([src], { type: 'text/javascript' })));
          return new Promise((resolve) => { w.onmessage = (e) => { w.terminate(); resolve(e.data); }; });
        });
        t.diagnostic(`${engine} ${browser.version}: worker has ${JSON.stringify(features)}`);
        const token = userToken(18 + i);
        const opened = await page.evaluate((token) => T.attempt(() => T.open('e', { name: 'engines', sync: { url: location.origin, token } })), token);

        if (!(features.dir && features.sah)) {
          t.diagnostic(`${engine}: no OPFS sync access handles in a dedicated worker; checking the documented failure instead of the persistent scenario`);
          assert.equal(opened.error?.code, 'STORAGE', `openStore without OPFS: ${JSON.stringify(opened)}`);
          assert.match(opened.error.message, /OPFS/);
          const mem = await page.evaluate(() => T.attempt(async () => {
            const info = await T.open('m', { name: 'engines-memory', storage: 'memory' });
            await T.stores.m.put('todos', { id: 'm1', title: 'in memory' });
            return { storage: info.status.storage, got: await T.stores.m.get('todos', 'm1') };
          }));
          assert.deepEqual(mem.ok, { storage: 'memory', got: { id: 'm1', title: 'in memory', done: null, rank: null, note: null, tags: null } }, JSON.stringify(mem));
          return;
        }

        assert.ok(opened.ok, `openStore on ${engine}: ${JSON.stringify(opened)}`);
        assert.equal(opened.ok.status.storage, 'opfs');
        const first = await page.evaluate(() => T.attempt(async () => {
          await T.stores.e.sync(); // nothing yet; proves the server answers
          await T.stores.e.close();
        }));
        assert.ok(!first.error, `first sync on ${engine}: ${JSON.stringify(first)}`);
        // Offline writes: the store is reopened without sync, written, reloaded.
        await page.reload();
        const wrote = await page.evaluate(() => T.attempt(async () => {
          await T.open('e', { name: 'engines' });
          const s = T.stores.e;
          for (let n = 0; n < 10; n++) await s.put('todos', { id: `t${n}`, title: `todo ${n}`, done: n % 2 === 0, rank: n, tags: { n } });
          await s.patch('todos', 't1', { title: 'patched' });
          await s.delete('todos', 't2');
          return T.pendingSettled('e', 12);
        }));
        assert.equal(wrote.ok, 12, JSON.stringify(wrote));

        await page.reload(); // without close(): the page dies with the database open
        const kept = await page.evaluate((token) => T.attempt(async () => {
          const info = await T.open('e', { name: 'engines', sync: { url: location.origin, token } });
          const s = T.stores.e;
          const rows = await s.query('SELECT id, title, done, rank FROM todos ORDER BY rank');
          const integrity = await s.integrityCheck();
          const pendingBefore = await T.pendingSettled('e', 12);
          await s.sync();
          return { storage: info.status.storage, rows, integrity, pendingBefore, pendingAfter: s.status().pending };
        }), token);
        assert.ok(kept.ok, JSON.stringify(kept));
        assert.equal(kept.ok.storage, 'opfs');
        assert.equal(kept.ok.integrity, 'ok');
        assert.equal(kept.ok.pendingBefore, 12, 'the outbox survived the reload');
        assert.equal(kept.ok.pendingAfter, 0, 'sync() drained the outbox');
        const want = Array.from({ length: 10 }, (_, n) => ({ id: `t${n}`, title: n === 1 ? 'patched' : `todo ${n}`, done: n % 2 === 0, rank: n })).filter((r) => r.id !== 't2');
        assert.deepEqual(kept.ok.rows, want);

        const remote = await server.pull(token);
        const live = Object.entries(remote).filter(([, r]) => !r._deleted).map(([k, r]) => ({ id: k.split('/')[1], title: r.title, done: r.done, rank: r.rank })).sort((a, b) => a.rank - b.rank);
        assert.deepEqual(live, want, 'the server holds what the browser wrote');
        assert.equal(remote['todos/t2']?._deleted, true, 'the delete reached the server as a tombstone');
      } finally {
        await browser.close();
      }
    });
  });
});
