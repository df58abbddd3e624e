// Durability in OPFS: a reload keeps everything, a page that dies without
// close() leaves a database the next page opens within seconds, and a worker
// killed in the middle of write transactions leaves a sound database.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { useBrowser } from './lib/harness.mjs';

describe('persistence', { timeout: 180000 }, () => {
  const env = useBrowser();

  const snapshot = () => T.attempt(async () => {
    const s = T.stores.p;
    await s.query('SELECT 1');
    return {
      todos: await s.query('SELECT id, title, done, rank, tags FROM todos ORDER BY id'),
      stars: await s.query('SELECT id, starred FROM stars ORDER BY id'),
      deleted: await s.get('todos', 'r3'),
      integrity: await s.integrityCheck(),
    };
  });

  test('a reload keeps everything, and the reopened store is writable', { timeout: 60000 }, async () => {
    const page = await env.profile.newPage(`${env.server.url}/pages/store.html`);
    await page.evaluate(async () => {
      await T.open('p', { name: 'persist' });
      const s = T.stores.p;
      for (let i = 0; i < 20; i++) await s.put('todos', { id: `r${i}`, title: `row ${i}`, done: i % 3 === 0, rank: i, tags: { i } });
      await s.patch('todos', 'r1', { title: 'patched' });
      await s.delete('todos', 'r3');
      await s.put('stars', { id: 'r1', starred: true });
    });
    const before = await page.evaluate(snapshot);
    assert.ok(before.ok, JSON.stringify(before));
    assert.equal(before.ok.todos.length, 19);

    // Reload without close(): the page dies with the database open.
    await page.reload();
    await page.waitForFunction(() => window.T && T.loaded);
    const t0 = Date.now();
    await page.evaluate(() => T.open('p', { name: 'persist' }));
    const reopenMs = Date.now() - t0;
    const after = await page.evaluate(snapshot);
    assert.ok(after.ok, JSON.stringify(after));
    assert.deepEqual(after.ok.todos, before.ok.todos);
    assert.deepEqual(after.ok.stars, before.ok.stars);
    assert.equal(after.ok.deleted, null);
    assert.equal(after.ok.integrity, 'ok');
    assert.ok(reopenMs < 8000, `reopening after a reload took ${reopenMs} ms`);
    const pending = await page.evaluate(async () => {
      await T.stores.p.put('todos', { id: 'new', title: 'after reload' });
      const deadline = Date.now() + 3000;
      while (T.stores.p.status().pending !== 24 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      return T.stores.p.status().pending;
    });
    assert.equal(pending, 24, 'the outbox survived the reload: 20 puts, a patch, a delete, a star, and the new put');

    // Closed without close(), reopened by another page.
    await page.close();
    const other = await env.profile.newPage(`${env.server.url}/pages/store.html`);
    const t1 = Date.now();
    const third = await other.evaluate(() => T.attempt(async () => {
      await T.open('p', { name: 'persist' });
      return T.stores.p.get('todos', 'new');
    }));
    assert.equal(third.ok?.title, 'after reload', JSON.stringify(third));
    assert.ok(Date.now() - t1 < 8000, 'the next page opens the database within seconds');
    await other.close();
  });

  test('a worker terminated in the middle of write batches leaves a database that opens and passes integrity_check', { timeout: 60000 }, async (t) => {
    const page = await env.profile.newPage(`${env.server.url}/pages/store.html`);
    const BATCH = 1500;
    const rounds = [];
    for (let round = 0; round < 3; round++) {
      const res = await page.evaluate(async ({ round, BATCH }) => {
        // Talk to the worker directly (wasm/BRIDGE.md), so it can be killed
        // at any moment, as a crashing tab would.
        const w = T.rawWorker();
        const opened = await w.send('open', { name: 'crash', schema: T.schema, storage: 'opfs' });
        if (opened.error) return { error: opened.error };
        const batches = [];
        for (let b = 0; b < 6; b++) {
          const writes = [];
          for (let i = 0; i < BATCH; i++) writes.push({ op: 'put', collection: 'todos', id: `${round}-${b}-${i}`, fields: { title: `round ${round} batch ${b} item ${i}`, rank: i } });
          batches.push(w.send('apply', { writes }));
        }
        // Kill it after the first batch committed, while the next ones run.
        const first = await batches[0];
        await new Promise((r) => setTimeout(r, round * 4));
        w.terminate();
        return { first: !first.error };
      }, { round, BATCH });
      assert.ok(res.first, `the first batch must commit: ${JSON.stringify(res)}`);

      // The killed worker may run on for a moment holding the database:
      // openStore retries LOCKED for a few seconds.
      const check = await page.evaluate(async (label) => T.attempt(async () => {
        await T.open(label, { name: 'crash' });
        const s = T.stores[label];
        const integrity = await s.integrityCheck();
        const batches = await s.query("SELECT substr(id, 1, instr(substr(id, 3), '-') + 1) AS batch, count(*) AS n FROM todos GROUP BY batch ORDER BY batch");
        await s.put('todos', { id: `after-${label}`, title: 'still writable' });
        await s.close();
        return { integrity, batches };
      }), `crash${round}`);
      assert.ok(check.ok, JSON.stringify(check));
      assert.equal(check.ok.integrity, 'ok');
      // Each batch is one transaction: all of it or none of it.
      for (const b of check.ok.batches) {
        if (b.batch.startsWith('after')) continue;
        assert.equal(b.n, BATCH, `batch ${b.batch} is partly there: ${JSON.stringify(check.ok.batches)}`);
      }
      assert.ok(check.ok.batches.some((b) => b.batch === `${round}-0`), `the acknowledged batch ${round}-0 is lost: ${JSON.stringify(check.ok.batches)}`);
      rounds.push(check.ok.batches.filter((b) => b.batch.startsWith(`${round}-`)).length);
    }
    t.diagnostic(`batches that survived each kill (of 6): ${rounds.join(', ')}`);
    await page.close();
  });
});
