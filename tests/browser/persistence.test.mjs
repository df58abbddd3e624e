// Durability in OPFS: a reload keeps everything, and a page that dies
// without close() leaves a database the next page opens within seconds. A
// worker killed in the middle of write transactions or pull pages, and a full
// quota, are faults.test.mjs.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { useBrowser } from './lib/harness.mjs';
import { suiteEngines } from './lib/engines.mjs';

for (const engine of suiteEngines()) describe(`persistence [${engine}]`, { timeout: 180000 }, () => {
  const env = useBrowser(1, engine);

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
      return T.pendingSettled('p', 24);
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
});
