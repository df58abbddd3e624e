// Sync with the real server: offline writes survive a reload and reach the
// server when the browser is back online; two browser profiles converge; the
// profile whose edit lost gets a conflict event; a write the server refuses
// rolls back in the UI state.
import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, test } from 'node:test';
import { useBrowser, userToken, waitFor } from './lib/harness.mjs';
import { suiteEngines } from './lib/engines.mjs';

const MIME = { '.html': 'text/html', '.js': 'text/javascript', '.wasm': 'application/wasm', '.ts': 'text/plain' };

/** assertOpened fails with openStore's error when T.attempt(open) did not succeed. */
function assertOpened(r) {
  assert.ok(r.ok, `openStore failed: ${JSON.stringify(r.error)}`);
}

// On Firefox and WebKit there is no offline emulation or request routing
// (Playwright's, Chromium only), so "offline" there is what an app without
// network sees from the store: the sync server unreachable (stopped), and a
// store opened without sync; the guarantees checked are the same.
for (const engine of suiteEngines()) describe(`sync [${engine}]`, { timeout: 240000 }, () => {
  const env = useBrowser(2, engine);
  const emulatesOffline = engine === 'chromium';

  // Each test syncs as its own user, so tests do not see each other's data.
  const openSynced = (page, label, name, user) => page.evaluate(({ label, name, token }) => T.attempt(() => T.open(label, { name, sync: { url: location.origin, token } })), { label, name, token: userToken(user) });

  test('writes made offline survive a reload and sync when the browser is back online', { timeout: 90000 }, async (t) => {
    if (!emulatesOffline) return offlineWithoutEmulation(t);
    const { context } = env.profiles[0];
    const files = /\/(pages|dist)\//;
    // Whatever happens, the next tests get the profile back online.
    t.after(async () => {
      await context.unroute(files).catch(() => {});
      await context.setOffline(false).catch(() => {});
    });
    const page = await env.profiles[0].newPage(`${env.server.url}/pages/store.html`);
    assertOpened(await openSynced(page, 's', 'offline', 1));
    await page.evaluate(() => T.stores.s.put('todos', { id: 'o0', title: 'before going offline' }));
    await waitFor(async () => (await env.server.pull(userToken(1)))['todos/o0'], 10000, 'o0 on the server');

    await context.setOffline(true);
    await waitFor(() => page.evaluate(() => T.stores.s.status().online === false), 10000, 'status().online to turn false');
    const offline = await page.evaluate(async () => {
      const s = T.stores.s;
      await s.put('todos', { id: 'o1', title: 'made offline' });
      await s.patch('todos', 'o0', { title: 'edited offline' });
      await s.put('todos', { id: 'o2', title: 'short-lived' });
      await s.delete('todos', 'o2');
      return { sync: await T.attempt(() => s.sync()) };
    });
    assert.equal(offline.sync.error?.code, 'NETWORK', `sync() while offline: ${JSON.stringify(offline.sync)}`);

    // Reload while offline. An offline-first app serves its files from a
    // service worker or cache; here Playwright serves them from disk, while
    // the sync server stays unreachable.
    await context.route(files, async (route) => {
      const p = new URL(route.request().url()).pathname;
      await route.fulfill({ path: path.join(env.server.dir, 'static', p), contentType: MIME[path.extname(p)] || 'application/octet-stream' });
    });
    await page.reload();
    await page.waitForFunction(() => window.T && T.loaded);
    assertOpened(await openSynced(page, 's', 'offline', 1));
    const reloaded = await page.evaluate(async () => {
      const s = T.stores.s;
      return { rows: await s.query('SELECT id, title FROM todos ORDER BY id'), online: navigator.onLine };
    });
    assert.equal(reloaded.online, false);
    assert.deepEqual(reloaded.rows, [{ id: 'o0', title: 'edited offline' }, { id: 'o1', title: 'made offline' }]);
    await waitFor(() => page.evaluate(() => {
      const st = T.stores.s.status();
      if (st.pending === 4) return true;
      throw new Error(`status() ${JSON.stringify(st)}`); // the timeout's message says what it was
    }), 5000, 'the 4 offline writes in the outbox after the reload');
    const onServer = await env.server.pull(userToken(1));
    assert.equal(onServer['todos/o1'], undefined, 'nothing reaches the server while offline');
    assert.equal(onServer['todos/o0'].title, 'before going offline');

    // Back online: the 'online' event makes the engine push at once.
    await context.unroute(files);
    await context.setOffline(false);
    await offlineWritesReachServer(page);
  });

  /**
   * offlineWithoutEmulation: the server stops, so sync() fails with NETWORK
   * and nothing can reach it; the writes made meanwhile and the outbox
   * survive a reload (the store reopened without sync: the app is offline)
   * and reach the server once the store syncs again.
   */
  async function offlineWithoutEmulation(t) {
    t.diagnostic(`${engine}: no offline emulation; the sync server is stopped instead, and the store reopened without sync after the reload`);
    const page = await env.profiles[0].newPage(`${env.server.url}/pages/store.html`);
    assertOpened(await openSynced(page, 's', 'offline', 1));
    await page.evaluate(() => T.stores.s.put('todos', { id: 'o0', title: 'before going offline' }));
    await waitFor(async () => (await env.server.pull(userToken(1)))['todos/o0'], 10000, 'o0 on the server');
    await env.server.pause();
    let offline;
    try {
      offline = await page.evaluate(async () => {
        const s = T.stores.s;
        await s.put('todos', { id: 'o1', title: 'made offline' });
        await s.patch('todos', 'o0', { title: 'edited offline' });
        await s.put('todos', { id: 'o2', title: 'short-lived' });
        await s.delete('todos', 'o2');
        return { sync: await T.attempt(() => s.sync()), online: s.status().online };
      });
    } finally {
      await env.server.resume();
    }
    assert.equal(offline.sync.error?.code, 'NETWORK', `sync() while the server is down: ${JSON.stringify(offline.sync)}`);
    assert.equal(offline.online, false, 'status().online is false after a request got no answer');
    await page.reload();
    const reloaded = await page.evaluate(() => T.attempt(async () => {
      await T.open('s', { name: 'offline' }); // no sync: the app is offline
      return { rows: await T.stores.s.query('SELECT id, title FROM todos ORDER BY id'), pending: await T.pendingSettled('s', 4) };
    }));
    assert.deepEqual(reloaded.ok, { rows: [{ id: 'o0', title: 'edited offline' }, { id: 'o1', title: 'made offline' }], pending: 4 }, JSON.stringify(reloaded));
    const onServer = await env.server.pull(userToken(1));
    assert.equal(onServer['todos/o1'], undefined, 'nothing reached the server while offline');
    await page.evaluate(() => T.stores.s.close());
    assertOpened(await openSynced(page, 's', 'offline', 1));
    await offlineWritesReachServer(page);
  }

  /** offlineWritesReachServer waits for the offline test's writes on the server and an empty outbox, then closes page. */
  async function offlineWritesReachServer(page) {
    const onServer = await waitFor(async () => {
      const recs = await env.server.pull(userToken(1));
      return recs['todos/o1'] && recs['todos/o0'].title === 'edited offline' && recs['todos/o2']?._deleted === true && recs;
    }, 15000, 'the offline writes on the server');
    assert.equal(onServer['todos/o1'].title, 'made offline');
    await waitFor(() => page.evaluate(() => T.stores.s.status().pending === 0 && T.stores.s.status().online), 10000, 'an empty outbox');
    await page.close();
  }

  test('two browser profiles converge, and the profile whose edit lost gets a conflict event', { timeout: 90000 }, async (t) => {
    if (emulatesOffline) t.after(() => env.profiles[1].context.setOffline(false).catch(() => {}));
    const a = await env.profiles[0].newPage(`${env.server.url}/pages/store.html`);
    const b = await env.profiles[1].newPage(`${env.server.url}/pages/store.html`);
    assertOpened(await openSynced(a, 'c', 'converge', 2));
    assertOpened(await openSynced(b, 'c', 'converge', 2));

    // Both write; each sees the other's records (pushed, poked, pulled).
    await a.evaluate(async () => {
      for (let i = 0; i < 10; i++) await T.stores.c.put('todos', { id: `a${i}`, title: `from A ${i}`, rank: i });
    });
    await b.evaluate(async () => {
      for (let i = 0; i < 10; i++) await T.stores.c.put('todos', { id: `b${i}`, title: `from B ${i}`, rank: i });
      await T.stores.c.patch('todos', 'b0', { done: true });
    });
    const all = () => T.stores.c.query('SELECT id, title, done, rank FROM todos ORDER BY id');
    await waitFor(async () => (await a.evaluate(all)).length === 20 && (await b.evaluate(all)).length === 20, 20000, 'both profiles to have all 20 records');

    // Concurrent edits of the same records from both sides converge.
    await Promise.all([
      a.evaluate(async () => { for (let i = 0; i < 10; i++) await T.stores.c.patch('todos', `b${i}`, { rank: 100 + i }); }),
      b.evaluate(async () => { for (let i = 0; i < 10; i++) await T.stores.c.patch('todos', `a${i}`, { title: `B edited ${i}` }); await T.stores.c.delete('todos', 'a9'); }),
    ]);
    const converged = await waitFor(async () => {
      const [ra, rb] = [await a.evaluate(all), await b.evaluate(all)];
      return JSON.stringify(ra) === JSON.stringify(rb) && ra.length === 19 && ra.every((r) => !r.id.startsWith('b') || r.rank >= 100) && ra;
    }, 20000, 'the two profiles to converge');
    assert.equal(converged.find((r) => r.id === 'a1').title, 'B edited 1');
    const serverRecs = await env.server.pull(userToken(2));
    for (const r of converged) {
      const s = serverRecs[`todos/${r.id}`];
      assert.equal(s.title, r.title, `server ${r.id}`);
      assert.equal(s.rank, r.rank, `server ${r.id}`);
    }
    assert.equal(serverRecs['todos/a9']._deleted, true);

    // A conflict: B edits a1's title offline; A edits it later and syncs;
    // B comes back: A's newer edit wins, and B is told its edit lost.
    // (Without offline emulation, B's store is reopened without sync
    // instead: B is offline as far as the store can tell.)
    await waitFor(() => b.evaluate(() => T.stores.c.status().pending === 0), 10000, 'B drained');
    if (emulatesOffline) {
      await env.profiles[1].context.setOffline(true);
      await waitFor(() => b.evaluate(() => T.stores.c.status().online === false), 10000, 'B offline');
    } else {
      t.diagnostic(`${engine}: no offline emulation; B's store is reopened without sync for its offline edit`);
      await b.evaluate(async () => { await T.stores.c.close(); await T.open('c', { name: 'converge' }); });
    }
    await b.evaluate(() => T.stores.c.patch('todos', 'a1', { title: 'B offline edit' }));
    await new Promise((r) => setTimeout(r, 30)); // A's stamp is later
    await a.evaluate(() => T.stores.c.patch('todos', 'a1', { title: 'A later edit' }));
    await waitFor(async () => (await env.server.pull(userToken(2)))['todos/a1'].title === 'A later edit', 10000, "A's edit on the server");
    assert.deepEqual(await b.evaluate(() => T.eventsOf('c', 'conflict')), []);
    if (emulatesOffline) await env.profiles[1].context.setOffline(false);
    else {
      await b.evaluate(() => T.stores.c.close());
      assertOpened(await openSynced(b, 'c', 'converge', 2));
    }
    const conflicts = await waitFor(async () => {
      const c = await b.evaluate(() => T.eventsOf('c', 'conflict'));
      return c.length > 0 && c;
    }, 15000, 'a conflict event in B');
    assert.deepEqual(conflicts, [{ collection: 'todos', id: 'a1', field: 'title', local: 'B offline edit', remote: 'A later edit' }]);
    assert.deepEqual(await a.evaluate(() => T.eventsOf('c', 'conflict')), [], 'the winner gets no conflict');
    await waitFor(async () => (await b.evaluate(() => T.stores.c.get('todos', 'a1'))).title === 'A later edit', 10000, 'B to show the winning value');
    await a.close();
    await b.close();
  });

  test('a write the server refuses rolls back in the UI state and emits rejected', { timeout: 90000 }, async () => {
    // The server refuses a mutation that would make its record exceed the
    // record size limit (1 MiB of values): two 600 kB fields are fine one
    // by one on the client, but not together on the env.server.
    const page = await env.profiles[0].newPage(`${env.server.url}/pages/store.html`);
    assertOpened(await openSynced(page, 'r', 'rejected', 3));
    await page.evaluate(async () => {
      await T.stores.r.put('drafts', { id: 'd1', body: 'x'.repeat(600000) });
      await T.stores.r.sync();
      T.watch('r', 'big', 'SELECT id, length(big) AS big FROM drafts', []);
    });
    await waitFor(() => page.evaluate(() => T.watched.big.length > 0), 5000, 'first watch result');
    const optimistic = await page.evaluate(async () => {
      await T.stores.r.patch('drafts', 'd1', { big: 'y'.repeat(600000) });
      return (await T.stores.r.query('SELECT length(big) AS n FROM drafts'))[0].n;
    });
    assert.equal(optimistic, 600000, 'the write shows at once (optimistic)');
    const rejected = await waitFor(async () => {
      const r = await page.evaluate(() => T.eventsOf('r', 'rejected'));
      return r.length > 0 && r;
    }, 15000, 'a rejected event');
    assert.equal(rejected.length, 1);
    assert.equal(rejected[0].collection, 'drafts');
    assert.equal(rejected[0].id, 'd1');
    assert.equal(rejected[0].code, 'VALIDATION');
    assert.equal(typeof rejected[0].mutationId, 'string');
    assert.match(rejected[0].message, /limit/);
    const after = await page.evaluate(async () => {
      const rec = await T.stores.r.get('drafts', 'd1');
      return { big: rec.big, body: rec.body.length, watched: T.watched.big.map((rows) => rows[0].big) };
    });
    assert.equal(after.big, null, 'the refused write is rolled back');
    assert.equal(after.body, 600000);
    assert.deepEqual(after.watched.slice(-1), [null], `the watch saw the rollback: ${JSON.stringify(after.watched)}`);
    assert.ok(after.watched.includes(600000), 'the watch saw the optimistic value first');
    await waitFor(() => page.evaluate(() => T.stores.r.status().pending === 0), 10000, 'the refused mutation leaves the outbox');
    assert.equal((await env.server.pull(userToken(3)))['drafts/d1'].big, null, 'the server never took the refused field');
    await page.close();
  });
});
