// Several tabs on one database: one leader tab owns the worker, the others
// send it their requests over a BroadcastChannel and get its events. When
// the leader goes (its page dies, or it calls close()), another tab takes
// over, and the requests in flight are neither lost nor applied twice.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { useBrowser, waitFor } from './lib/harness.mjs';
import { suiteEngines } from './lib/engines.mjs';

for (const engine of suiteEngines()) describe(`multi-tab [${engine}]`, { timeout: 180000 }, () => {
  const env = useBrowser(1, engine);

  const openCounted = (page, name) => page.evaluate((name) => {
    window.resends = 0;
    return T.open('s', { name, _testHooks: { onResend: () => { window.resends++; } } });
  }, name);
  const pendingOf = (page) => page.evaluate(async () => {
    // The outbox size, settled: ask until two answers a moment apart agree.
    let last = -1;
    for (;;) {
      await T.stores.s.query('SELECT 1');
      await new Promise((r) => setTimeout(r, 150));
      const n = T.stores.s.status().pending;
      if (n === last) return n;
      last = n;
    }
  });

  test('tabs share one database and its events; in-flight requests survive the leader page dying and the leader closing', { timeout: 60000 }, async (t) => {
    const a = await env.profile.newPage(env.url);
    const b = await env.profile.newPage(env.url);
    const ra = await openCounted(a, 'tabs');
    const rb = await openCounted(b, 'tabs');
    assert.equal(ra.status.leader, true);
    assert.equal(rb.status.leader, false);

    // Reads and writes from either tab; the follower's watch follows the
    // leader's writes.
    await b.evaluate(() => T.watch('s', 'n', 'SELECT count(*) AS n FROM todos', []));
    await a.evaluate(() => T.stores.s.put('todos', { id: 'from-a', title: 'A' }));
    await b.evaluate(() => T.stores.s.put('todos', { id: 'from-b', title: 'B' }));
    assert.equal((await a.evaluate(() => T.stores.s.get('todos', 'from-b'))).title, 'B');
    assert.equal((await b.evaluate(() => T.stores.s.get('todos', 'from-a'))).title, 'A');
    await waitFor(() => b.evaluate(() => T.watched.n.at(-1)?.[0].n === 2), 5000, "the follower's watch");
    assert.ok((await b.evaluate(() => T.eventsOf('s', 'change'))).length >= 2, 'change events reach the follower');
    const p0 = await pendingOf(b);
    assert.equal(p0, 2);

    // The leader's engine is busy with a big transaction; the follower
    // fires 60 writes that queue behind it; then the leader page dies.
    await a.evaluate(() => {
      const writes = Array.from({ length: 3000 }, (_, i) => ({ op: 'put', collection: 'todos', id: `big${i}`, fields: { title: 'bulk' } }));
      T.stores.s.apply(writes).catch(() => {});
    });
    await b.evaluate(() => {
      T.results = [];
      T.inflight = Promise.all(Array.from({ length: 60 }, (_, i) => {
        const p = i % 2 ? T.stores.s.put('todos', { id: `h${i}`, title: `handover ${i}`, rank: i }) : T.stores.s.put('stars', { id: `h${i}`, starred: true });
        return p.then(() => T.results.push('ok'), (e) => T.results.push(e.code));
      }));
    });
    await a.close();
    const t0 = Date.now();
    await b.evaluate(() => T.inflight);
    const takeoverMs = Date.now() - t0;
    const afterDeath = await b.evaluate(async () => ({
      results: T.results,
      status: T.stores.s.status(),
      resends: window.resends,
      big: (await T.stores.s.query("SELECT count(*) AS n FROM todos WHERE id LIKE 'big%'"))[0].n,
      h: (await T.stores.s.query("SELECT (SELECT count(*) FROM todos WHERE id LIKE 'h%') + (SELECT count(*) FROM stars WHERE id LIKE 'h%') AS n"))[0].n,
      integrity: await T.stores.s.integrityCheck(),
    }));
    t.diagnostic(`leader page died: takeover + 60 writes in ${takeoverMs} ms, ${afterDeath.resends} requests re-sent, big batch ${afterDeath.big ? 'committed' : 'lost with the page'}`);
    assert.deepEqual(afterDeath.results, Array(60).fill('ok'), 'no write is lost');
    assert.equal(afterDeath.status.leader, true, 'the follower took over');
    assert.ok(afterDeath.resends > 0, 'requests in flight at the dead leader were re-sent');
    assert.equal(afterDeath.h, 60);
    assert.ok(afterDeath.big === 0 || afterDeath.big === 3000, `the big batch is one transaction: ${afterDeath.big}`);
    assert.equal(afterDeath.integrity, 'ok');
    const p1 = await pendingOf(b);
    assert.equal(p1, p0 + afterDeath.big + 60, `outbox ${p1}: every write applied exactly once`);
    // The follower's watch, now on its own engine, follows along.
    await waitFor(() => b.evaluate((n) => T.watched.n.at(-1)?.[0].n === n, 2 + 30 + afterDeath.big), 5000, 'the watch after the takeover');

    // A third tab follows the new leader; the leader calls close() while
    // the third tab's writes are in flight.
    const c = await env.profile.newPage(env.url);
    const rc = await openCounted(c, 'tabs');
    assert.equal(rc.status.leader, false);
    await c.evaluate(() => {
      T.results = [];
      T.inflight = Promise.all(Array.from({ length: 30 }, (_, i) => T.stores.s.patch('todos', `h${2 * i + 1}`, { note: `c${i}` })
        .then(() => T.results.push('ok'), (e) => T.results.push(e.code))));
    });
    const closed = b.evaluate(() => T.stores.s.close());
    await c.evaluate(() => T.inflight);
    await closed;
    await waitFor(() => c.evaluate(() => T.stores.s.status().leader), 10000, 'the third tab to take over');
    const afterClose = await c.evaluate(async () => ({
      results: T.results,
      leader: T.stores.s.status().leader,
      notes: (await T.stores.s.query("SELECT count(*) AS n FROM todos WHERE note LIKE 'c%'"))[0].n,
      closedCall: await T.attempt(() => T.stores.s.get('todos', 'h1')),
    }));
    assert.deepEqual(afterClose.results, Array(30).fill('ok'), 'no write is lost when the leader closes');
    assert.equal(afterClose.leader, true);
    assert.equal(afterClose.notes, 30);
    assert.equal(await pendingOf(c), p1 + 30, 'every patch applied exactly once');
    assert.equal((await b.evaluate(() => T.attempt(() => T.stores.s.get('todos', 'h1')))).error?.code, 'CLOSED');
    await b.close();
    await c.close();
  });

  test('writes a leader committed but died before answering are answered by the next leader, not applied again', { timeout: 60000 }, async (t) => {
    const a = await env.profile.newPage(env.url);
    const b = await env.profile.newPage(env.url);
    // The leader commits the follower's writes but its answers are lost
    // (a test hook drops them), as if it died right after each commit.
    await a.evaluate(() => T.open('s', { name: 'unanswered', _testHooks: { onRemoteAnswer: (op) => op !== 'put' && op !== 'batch' } }));
    await openCounted(b, 'unanswered');
    // 10 puts each in its own tick (10 put requests) and 10 in one tick
    // (one batch request): 11 requests in flight.
    await b.evaluate(async () => {
      T.results = [];
      const put = (i) => T.stores.s.put('todos', { id: `u${i}`, title: `unanswered ${i}` })
        .then((r) => T.results.push(r.mutationIds[0]), (e) => T.results.push(e.code));
      const inflight = [];
      for (let i = 0; i < 10; i++) {
        inflight.push(put(i));
        await new Promise((r) => setTimeout(r, 0));
      }
      for (let i = 10; i < 20; i++) inflight.push(put(i));
      T.inflight = Promise.all(inflight);
    });
    await waitFor(async () => (await a.evaluate(() => T.stores.s.query('SELECT count(*) AS n FROM todos')))[0].n === 20, 5000, 'the leader to commit the 20 writes');
    assert.deepEqual(await b.evaluate(() => T.results), [], 'no answer reached the follower');
    await a.close();
    await b.evaluate(() => T.inflight);
    const out = await b.evaluate(async () => ({
      results: T.results,
      resends: window.resends,
      count: (await T.stores.s.query('SELECT count(*) AS n FROM todos'))[0].n,
      dump: await T.stores.s.export(),
    }));
    t.diagnostic(`${out.resends} requests re-sent to the new leader`);
    assert.equal(out.resends, 11, '10 put requests and one batch of 10');
    assert.equal(out.results.length, 20);
    assert.ok(out.results.every((r) => typeof r === 'string' && r.length > 8), JSON.stringify(out.results));
    assert.equal(out.count, 20);
    assert.equal(await pendingOf(b), 20, 'each write is in the outbox once, not twice');
    await b.close();
  });

  test('three tabs opening at once: one leader; each reads the others\' writes; a follower close() leaves the others working', { timeout: 60000 }, async () => {
    const pages = await Promise.all([0, 1, 2].map(() => env.profile.newPage(env.url)));
    const opened = await Promise.all(pages.map((p) => p.evaluate(() => T.open('s', { name: 'three' }))));
    assert.equal(opened.filter((o) => o.status.leader).length, 1, JSON.stringify(opened.map((o) => o.status)));
    await Promise.all(pages.map((p, i) => p.evaluate(async (i) => {
      for (let k = 0; k < 5; k++) await T.stores.s.put('todos', { id: `t${i}-${k}`, title: `tab ${i}` });
    }, i)));
    for (const p of pages) {
      assert.deepEqual(await p.evaluate(async () => (await T.stores.s.query('SELECT count(*) AS n FROM todos'))[0].n), 15);
    }
    const followerIdx = opened.findIndex((o) => !o.status.leader);
    await pages[followerIdx].evaluate(() => T.stores.s.close());
    const others = pages.filter((_, i) => i !== followerIdx);
    for (const p of others) {
      await p.evaluate(() => T.stores.s.put('todos', { id: `after-${Math.random()}`, title: 'after a follower left' }));
    }
    assert.equal(await others[0].evaluate(async () => (await T.stores.s.query('SELECT count(*) AS n FROM todos'))[0].n), 17);
    await Promise.all(pages.map((p) => p.close()));
  });
});
