// The public JS API in one tab: reads and writes, live queries, events,
// export/import, and every bad-input rejection with its code.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { useBrowser, waitFor } from './lib/harness.mjs';

describe('JS API', { timeout: 180000 }, () => {
  const env = useBrowser();
  let page;
  before(async () => {
    page = await env.profile.newPage(env.url);
  });

  test('cold start: a fresh profile opens a store (worker start, wasm compile, open) in seconds', { timeout: 60000 }, async (t) => {
    const ms = await page.evaluate(async () => {
      const t0 = performance.now();
      await T.open('cold', { name: 'cold' });
      const cold = performance.now() - t0;
      await T.stores.cold.close();
      const t1 = performance.now();
      await T.open('cold', { name: 'cold' });
      const warm = performance.now() - t1;
      await T.stores.cold.close();
      return { cold: Math.round(cold), warm: Math.round(warm) };
    });
    t.diagnostic(`openStore in a fresh profile: ${ms.cold} ms; again in the same page: ${ms.warm} ms`);
    assert.ok(ms.cold < 15000, `cold start took ${ms.cold} ms`);
  });

  test('writes made in the same tick commit together, each answered on its own', { timeout: 60000 }, async () => {
    const out = await page.evaluate(async () => {
      await T.open('tick', { name: 'tick' });
      const s = T.stores.tick;
      const seeded = (await s.put('todos', { id: 'seed', title: 'seed' })).version;
      const changes = [];
      // The seed's own change event may still arrive: count only later ones.
      const off = s.on('change', (c) => { if (c.version > seeded) changes.push(c.version); });
      const settle = (p) => p.then((v) => ({ ok: v }), (e) => ({ code: e.code, message: e.message }));
      const results = await Promise.all([
        ...Array.from({ length: 20 }, (_, i) => settle(s.put('todos', { id: `p${i}`, title: `t${i}`, rank: i }))),
        settle(s.patch('todos', 'missing', { done: true })),
        settle(s.put('todos', { id: 'bad', rank: 'high' })),
        settle(s.patch('todos', 'seed', { done: true })),
        settle(s.delete('todos', 'p0')),
      ]);
      const deadline = Date.now() + 3000;
      while (changes.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      await new Promise((r) => setTimeout(r, 200)); // a second change event would show by now
      off();
      return {
        results,
        count: (await s.query("SELECT count(*) AS n FROM todos WHERE id LIKE 'p%'"))[0].n,
        seed: await s.get('todos', 'seed'),
        bad: await s.get('todos', 'bad'),
        changes,
        pending: (await s.inspect({ limit: 1 })).pendingCount,
      };
    });
    const ok = out.results.filter((r) => r.ok);
    assert.equal(ok.length, 22, JSON.stringify(out.results));
    assert.equal(out.results[20].code, 'NOT_FOUND');
    assert.equal(out.results[21].code, 'VALIDATION');
    const versions = new Set(ok.map((r) => r.ok.version));
    assert.equal(versions.size, 1, `one commit for the tick's writes, got versions ${[...versions]}`);
    assert.deepEqual(out.changes, [...versions], 'one change event for the batch');
    assert.equal(out.count, 19, 'p1..p19 live, p0 deleted in the same batch');
    assert.equal(out.seed.done, true);
    assert.equal(out.bad, null);
    assert.equal(out.pending, 1 + 22, 'the seed and the 22 accepted writes are queued, the refused ones are not');
  });

  test('put / get / patch / delete / query', { timeout: 60000 }, async () => {
    const out = await page.evaluate(async () => {
      await T.open('crud', { name: 'crud' });
      const s = T.stores.crud;
      const r = {};
      r.putResult = await s.put('todos', { id: 't1', title: 'Buy milk', done: false, rank: 2, tags: ['a', { b: 1 }] });
      await s.put('todos', { id: 't2', title: 'Walk', done: true, rank: 1 });
      await s.put('todos', { id: 't3', title: 'Read', done: false, rank: 1 });
      r.get1 = await s.get('todos', 't1');
      await s.patch('todos', 't1', { done: true, note: 'semi-skimmed' });
      r.patched = await s.get('todos', 't1');
      r.open = await s.query('SELECT id, title, done, rank FROM todos WHERE done = ? ORDER BY rank', [false]);
      r.countDone = await s.query('SELECT count(*) AS n FROM todos WHERE done = ?', [true]);
      await s.delete('todos', 't2');
      r.deleted = await s.get('todos', 't2');
      r.afterDelete = await s.query('SELECT id FROM todos ORDER BY id');
      r.missing = await s.get('todos', 'nope');
      r.patchMissing = await T.attempt(() => s.patch('todos', 'nope', { done: true }));
      r.patchDeleted = await T.attempt(() => s.patch('todos', 't2', { done: true }));
      r.unknownField = await T.attempt(() => s.put('todos', { id: 't9', titel: 'typo' }));
      r.badType = await T.attempt(() => s.put('todos', { id: 't9', rank: 'high' }));
      r.unknownCollection = await T.attempt(() => s.get('nope', 't1'));
      r.writeSQL = await T.attempt(() => s.query("DELETE FROM todos"));
      // status() is the last known status: the outbox size arrives with a
      // status event shortly after the write.
      const deadline = Date.now() + 3000;
      while (s.status().pending !== 5 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      r.status = s.status();
      // A put replaces the whole record, and restores a deleted one.
      await s.put('todos', { id: 't2', title: 'Walk again' });
      r.restored = await s.get('todos', 't2');
      return r;
    });
    assert.equal(out.putResult.mutationIds.length, 1);
    assert.equal(typeof out.putResult.version, 'number');
    assert.deepEqual(out.get1, { id: 't1', title: 'Buy milk', done: false, rank: 2, note: null, tags: ['a', { b: 1 }] });
    assert.deepEqual(out.patched, { id: 't1', title: 'Buy milk', done: true, rank: 2, note: 'semi-skimmed', tags: ['a', { b: 1 }] });
    assert.deepEqual(out.open, [{ id: 't3', title: 'Read', done: false, rank: 1 }]);
    assert.deepEqual(out.countDone, [{ n: 2 }]);
    assert.equal(out.deleted, null);
    assert.deepEqual(out.afterDelete, [{ id: 't1' }, { id: 't3' }]);
    assert.equal(out.missing, null);
    assert.equal(out.patchMissing.error?.code, 'NOT_FOUND', JSON.stringify(out.patchMissing));
    assert.equal(out.patchDeleted.error?.code, 'NOT_FOUND', JSON.stringify(out.patchDeleted));
    assert.equal(out.unknownField.error?.code, 'VALIDATION');
    assert.match(out.unknownField.error.message, /titel/);
    assert.equal(out.badType.error?.code, 'VALIDATION');
    assert.ok(out.unknownCollection.error, 'get from an undeclared collection must fail');
    assert.equal(out.writeSQL.error?.code, 'VALIDATION');
    assert.equal(out.status.leader, true);
    assert.equal(out.status.storage, 'opfs');
    assert.equal(out.status.pending, 5, 'five local mutations wait in the outbox (no sync configured)');
    assert.deepEqual(out.restored, { id: 't2', title: 'Walk again', done: null, rank: null, note: null, tags: null });
  });

  test('watch: first result at once, updates after writes, only for the tables read, unsubscribe stops it', { timeout: 60000 }, async () => {
    await page.evaluate(async () => {
      await T.open('w', { name: 'watch' });
      T.watch('w', 'count', 'SELECT count(*) AS n FROM todos WHERE done = ?', [false]);
      T.watch('w', 'stars', 'SELECT count(*) AS n FROM stars', []);
    });
    // The first result comes without any write.
    await waitFor(() => page.evaluate(() => T.watched.count.length === 1 && T.watched.stars.length === 1), 5000, 'first watch results');
    assert.deepEqual(await page.evaluate(() => T.watched.count[0]), [{ n: 0 }]);

    await page.evaluate(() => T.stores.w.put('todos', { id: 'a', title: 'A', done: false }));
    await waitFor(() => page.evaluate(() => T.watched.count.at(-1)[0].n === 1), 5000, 'the watch to see the put');
    await page.evaluate(() => T.stores.w.patch('todos', 'a', { done: true }));
    await waitFor(() => page.evaluate(() => T.watched.count.at(-1)[0].n === 0), 5000, 'the watch to see the patch');
    // Writes to todos never re-ran the stars query.
    assert.equal(await page.evaluate(() => T.watched.stars.length), 1, 'a watch on stars must not re-run for todos writes');
    await page.evaluate(() => T.stores.w.put('stars', { id: 's', starred: true }));
    await waitFor(() => page.evaluate(() => T.watched.stars.at(-1)[0].n === 1), 5000, 'the stars watch');

    // A burst of concurrent writes: results only ever move forward, and the
    // last one shows every write.
    const seq = await page.evaluate(async () => {
      T.watched.count.length = 0;
      await Promise.all(Array.from({ length: 40 }, (_, i) => T.stores.w.put('todos', { id: `b${i}`, done: false })));
      const deadline = Date.now() + 5000;
      while (Date.now() < deadline && T.watched.count.at(-1)?.[0].n !== 40) await new Promise((r) => setTimeout(r, 20));
      return T.watched.count.map((rows) => rows[0].n);
    });
    assert.equal(seq.at(-1), 40, `last result ${JSON.stringify(seq)}`);
    for (let i = 1; i < seq.length; i++) assert.ok(seq[i] >= seq[i - 1], `results went backwards: ${JSON.stringify(seq)}`);
    assert.ok(seq.length < 40, `a burst of 40 writes should be coalesced into fewer runs, got ${seq.length}`);

    // Unsubscribed: no more results.
    const n = await page.evaluate(async () => {
      T.stops.count();
      const n = T.watched.count.length;
      await T.stores.w.put('todos', { id: 'c', done: false });
      await T.stores.w.query('SELECT 1'); // after the change event has been handled
      await new Promise((r) => setTimeout(r, 200));
      return T.watched.count.length - n;
    });
    assert.equal(n, 0, 'an unsubscribed watch must not be called');
  });

  test('watch: a result older than one already delivered is dropped (mutationVersion guard)', { timeout: 60000 }, async () => {
    // Two stores on one database in one page: the second is a follower of
    // the first. Its watch answers come over the BroadcastChannel; every
    // delivered result must carry a version no older than the previous one,
    // whatever the interleaving of change events and answers.
    const seq = await page.evaluate(async () => {
      await T.open('g1', { name: 'guard' });
      await T.open('g2', { name: 'guard' });
      const versions = [];
      const counts = [];
      T.stores.g2.watch('SELECT count(*) AS n FROM todos', [], (rows) => counts.push(rows[0].n));
      T.stores.g1.on('change', (e) => versions.push(e.version));
      const writes = [];
      for (let i = 0; i < 30; i++) writes.push((i % 2 ? T.stores.g1 : T.stores.g2).put('todos', { id: `g${i}` }));
      await Promise.all(writes);
      const deadline = Date.now() + 5000;
      while (Date.now() < deadline && counts.at(-1) !== 30) await new Promise((r) => setTimeout(r, 20));
      return counts;
    });
    assert.equal(seq.at(-1), 30, JSON.stringify(seq));
    for (let i = 1; i < seq.length; i++) assert.ok(seq[i] >= seq[i - 1], `a watch result went backwards: ${JSON.stringify(seq)}`);
  });

  test('events: change and status reach on() handlers; unsubscribe stops them', { timeout: 60000 }, async () => {
    const out = await page.evaluate(async () => {
      await T.open('ev', { name: 'events' });
      const s = T.stores.ev;
      const seen = [];
      const off = s.on('change', (e) => seen.push(e));
      await s.put('todos', { id: 'e1', title: 'x' });
      await s.query('SELECT 1');
      off();
      await s.put('todos', { id: 'e2', title: 'y' });
      await s.query('SELECT 1');
      await new Promise((r) => setTimeout(r, 100));
      return { seen, status: T.eventsOf('ev', 'status').at(-1), now: s.status() };
    });
    assert.equal(out.seen.length, 1, JSON.stringify(out.seen));
    assert.ok(out.seen[0].tables.includes('todos'));
    assert.equal(typeof out.seen[0].version, 'number');
    assert.equal(out.now.pending, 2);
    assert.equal(out.status?.pending, 2, 'a status event tells the new outbox size');
  });

  test('export / import: merge by id, re-import skips everything', { timeout: 60000 }, async () => {
    const out = await page.evaluate(async () => {
      await T.open('ex', { name: 'export-src' });
      await T.stores.ex.put('todos', { id: 'x1', title: 'one' });
      await T.stores.ex.put('todos', { id: 'x2', title: 'two' });
      await T.stores.ex.delete('todos', 'x2');
      const dump = await T.stores.ex.export();
      await T.open('im', { name: 'export-dst', storage: 'memory' });
      const first = await T.stores.im.import(dump);
      const again = await T.stores.im.import(dump);
      return { first, again, rows: await T.stores.im.query('SELECT id, title FROM todos') };
    });
    assert.equal(out.first.inserted, 2, JSON.stringify(out.first));
    assert.equal(out.again.inserted + out.again.updated, 0, JSON.stringify(out.again));
    assert.deepEqual(out.rows, [{ id: 'x1', title: 'one' }]);
  });

  test('bad input is rejected at the JS boundary with VALIDATION; calls after close() with CLOSED', { timeout: 60000 }, async () => {
    const out = await page.evaluate(async () => {
      await T.open('bad', { name: 'bad-input' });
      const s = T.stores.bad;
      const cyc = { id: 'c' };
      cyc.self = cyc;
      const cases = {
        putString: () => s.put('todos', 'x'),
        putNoId: () => s.put('todos', { title: 'x' }),
        putNumberId: () => s.put('todos', { id: 7 }),
        putCollectionNumber: () => s.put(42, { id: 'x' }),
        putFunction: () => s.put('todos', { id: 'f', title: () => 1 }),
        putSymbol: () => s.put('todos', { id: 'f', title: Symbol('s') }),
        putBigInt: () => s.put('todos', { id: 'f', rank: 10n }),
        putNaN: () => s.put('todos', { id: 'f', rank: NaN }),
        putInfinity: () => s.put('todos', { id: 'f', rank: Infinity }),
        putNestedNaN: () => s.put('todos', { id: 'f', tags: [1, { x: -Infinity }] }),
        putUndefined: () => s.put('todos', { id: 'f', title: undefined }),
        putCycle: () => s.put('todos', cyc),
        putMap: () => s.put('todos', { id: 'f', tags: new Map([[1, 2]]) }),
        putUnknownOption: () => s.put('todos', { id: 'f' }, { orign: 'agent' }),
        putBadOrigin: () => s.put('todos', { id: 'f' }, { origin: 'server' }),
        patchArray: () => s.patch('todos', 'f', [1]),
        patchNoId: () => s.patch('todos', '', { done: true }),
        deleteNoId: () => s.delete('todos'),
        getNumberId: () => s.get('todos', 1),
        querySQLNumber: () => s.query(1),
        queryParamsObject: () => s.query('SELECT 1', { a: 1 }),
        queryParamNaN: () => s.query('SELECT ?', [NaN]),
        importString: () => s.import('dump'),
        applyNotArray: () => s.apply({}),
        applyBadOp: () => s.apply([{ op: 'upsert', collection: 'todos', id: 'x', fields: {} }]),
        openNoOptions: () => T.opfsync.openStore(),
        openUnknownKey: () => T.opfsync.openStore({ name: 'x', schema: T.schema, strage: 'memory' }),
        openBadStorage: () => T.opfsync.openStore({ name: 'x', schema: T.schema, storage: 'disk' }),
        openNoSchema: () => T.opfsync.openStore({ name: 'x' }),
        openBadSyncURL: () => T.opfsync.openStore({ name: 'x', schema: T.schema, sync: { url: 'not a url', token: 't' } }),
        openSyncUnknownKey: () => T.opfsync.openStore({ name: 'x', schema: T.schema, sync: { url: 'http://a', token: 't', tokn: 1 } }),
        openMigrationNoMap: () => T.opfsync.openStore({ name: 'x', schema: T.schema, migrateLocalStorage: [{ key: 'k', collection: 'todos' }] }),
        openMigrationBadMode: () => T.opfsync.openStore({ name: 'x', schema: T.schema, migrateLocalStorage: [{ key: 'k', collection: 'todos', map: JSON.parse, mode: 'merge' }] }),
        openBadName: () => T.opfsync.openStore({ name: 'no/slashes', schema: T.schema, storage: 'memory' }),
        watchNoCallback: async () => s.watch('SELECT 1', []),
        watchBadParams: async () => s.watch('SELECT 1', 'x', () => {}),
        onBadEvent: async () => s.on('changed', () => {}),
        onNoHandler: async () => s.on('change', 'x'),
      };
      const res = {};
      for (const [k, fn] of Object.entries(cases)) res[k] = await T.attempt(fn);
      // Nothing of it reached the database.
      res.count = await s.query('SELECT count(*) AS n FROM todos');
      res.pending = (await T.attempt(() => s.status())).ok.pending;

      await s.close();
      res.closeAgain = await T.attempt(() => s.close());
      const after = {
        put: () => s.put('todos', { id: 'z' }),
        putBad: () => s.put('todos', 'x'),
        get: () => s.get('todos', 'z'),
        query: () => s.query('SELECT 1'),
        sync: () => s.sync(),
        export: () => s.export(),
        watch: async () => s.watch('SELECT 1', [], () => {}),
      };
      for (const [k, fn] of Object.entries(after)) res[`closed_${k}`] = await T.attempt(fn);
      return res;
    });
    const closedKeys = Object.keys(out).filter((k) => k.startsWith('closed_'));
    for (const [k, r] of Object.entries(out)) {
      if (k === 'count' || k === 'pending' || k === 'closeAgain' || closedKeys.includes(k)) continue;
      assert.ok(r.error, `${k} should have been rejected, got ${JSON.stringify(r)}`);
      assert.equal(r.error.code, 'VALIDATION', `${k}: ${JSON.stringify(r.error)}`);
      assert.equal(r.error.name, 'OpfsyncError', k);
    }
    for (const k of closedKeys) assert.equal(out[k].error?.code, 'CLOSED', `${k}: ${JSON.stringify(out[k])}`);
    assert.deepEqual(out.count, [{ n: 0 }]);
    assert.equal(out.pending, 0);
    assert.ok(!out.closeAgain.error, 'closing twice is fine');
    // Messages say what is wrong.
    assert.match(out.putNaN.error.message, /rank.*NaN/);
    assert.match(out.putUndefined.error.message, /title.*undefined.*null/);
    assert.match(out.putCycle.error.message, /circular|cycl/i);
    assert.match(out.putBigInt.error.message, /BigInt/);
    assert.match(out.openUnknownKey.error.message, /strage/);
  });

  test('inspect: client, collections, outbox, pull state, migration markers; also from a follower tab', { timeout: 60000 }, async () => {
    await page.evaluate(() => localStorage.setItem('insp-legacy', JSON.stringify([{ id: 'l1', title: 'legacy' }])));
    const out = await page.evaluate(async () => {
      await T.open('insp', { name: 'insp', migrateLocalStorage: [{ key: 'insp-legacy', collection: 'todos', map: (v) => JSON.parse(v) }] });
      const s = T.stores.insp;
      await s.put('todos', { id: 'a', title: 'A' });
      await s.patch('todos', 'a', { done: true });
      await s.put('stars', { id: 's1', starred: true });
      await s.delete('todos', 'l1');
      return {
        all: await s.inspect(),
        two: await s.inspect({ limit: 2 }),
        bad: await Promise.all([{ limit: 0 }, { limit: 1.5 }, { limit: '3' }, { max: 3 }, 'x'].map((o) => T.attempt(() => s.inspect(o)))),
      };
    });
    const { all, two } = out;
    assert.match(all.clientId, /^c[0-9a-f]+$/);
    assert.equal(all.journalMode, 'wal');
    assert.equal(all.schemaVersion, 1);
    assert.deepEqual(all.collections, { drafts: 0, stars: 1, todos: 1 });
    assert.equal(all.pendingCount, 5);
    assert.deepEqual(all.pending.map((m) => [m.op, m.collection, m.id, m.origin]),
      [['merge', 'todos', 'l1', 'migration'], ['put', 'todos', 'a', 'user'], ['patch', 'todos', 'a', 'user'], ['put', 'stars', 's1', 'user'], ['delete', 'todos', 'l1', 'user']]);
    assert.ok(all.pending.every((m) => m.attempts === 0 && m.lastError === '' && m.mutationId && m.hlc && m.seq > 0));
    assert.deepEqual(all.pull, { state: 'Idle', error: '', cursor: '', epoch: 0, hydrated: false });
    assert.deepEqual(Object.keys(all.migrations), ['insp-legacy']);
    assert.equal(JSON.parse(all.migrations['insp-legacy']).imported, 1);
    assert.equal(two.pendingCount, 5);
    assert.equal(two.pending.length, 2);
    for (const b of out.bad) assert.equal(b.error?.code, 'VALIDATION', JSON.stringify(b));

    // A follower tab asks the leader's engine.
    const follower = await env.profile.newPage(env.url);
    const seen = await follower.evaluate(async () => {
      await T.open('insp', { name: 'insp' });
      return { leader: T.stores.insp.status().leader, inspection: await T.stores.insp.inspect({ limit: 1 }) };
    });
    assert.equal(seen.leader, false);
    assert.equal(seen.inspection.clientId, all.clientId);
    assert.equal(seen.inspection.pendingCount, 5);
    await follower.evaluate(() => T.stores.insp.close());
    await follower.close();
    await page.evaluate(() => T.stores.insp.close());
  });

  test('storage memory: works, and a reopened memory store starts empty', { timeout: 60000 }, async () => {
    const out = await page.evaluate(async () => {
      await T.open('m1', { name: 'mem', storage: 'memory' });
      await T.stores.m1.put('todos', { id: 'm', title: 'in memory' });
      const got = await T.stores.m1.get('todos', 'm');
      const st = T.stores.m1.status();
      await T.stores.m1.close();
      await T.open('m2', { name: 'mem', storage: 'memory' });
      return { got, st, again: await T.stores.m2.get('todos', 'm') };
    });
    assert.equal(out.got.title, 'in memory');
    assert.equal(out.st.storage, 'memory');
    assert.equal(out.again, null);
  });

  test('loads from any folder; a missing wasm or a wrong wasm MIME type', { timeout: 60000 }, async () => {
    // The same files copied to /assets/v2/ work as they are.
    const p2 = await env.profile.newPage(`${env.server.url}/pages/store.html?dist=assets/v2`);
    const moved = await p2.evaluate(() => T.attempt(async () => {
      await T.open('s', { name: 'moved', storage: 'memory' });
      await T.stores.s.put('todos', { id: 'x' });
      return T.stores.s.get('todos', 'x');
    }));
    assert.deepEqual(moved.ok?.id, 'x', JSON.stringify(moved));

    // opfsync.wasm served as application/octet-stream: instantiateStreaming
    // refuses it, the worker falls back to compiling the bytes.
    await p2.route('**/opfsync.wasm', async (route) => {
      const resp = await route.fetch();
      await route.fulfill({ response: resp, headers: { ...resp.headers(), 'content-type': 'application/octet-stream' } });
    });
    const wrongType = await p2.evaluate(() => T.attempt(async () => {
      await T.open('t', { name: 'wrongtype', storage: 'memory' });
      return T.stores.t.query('SELECT 1 AS one');
    }));
    assert.deepEqual(wrongType.ok, [{ one: 1 }], JSON.stringify(wrongType));
    await p2.close();

    // No opfsync.wasm: openStore rejects with a message naming the file.
    const p3 = await env.profile.newPage(`${env.server.url}/pages/store.html?dist=nowasm`);
    const t0 = Date.now();
    const broken = await p3.evaluate(() => T.attempt(() => T.open('s', { name: 'broken', storage: 'memory' })));
    assert.ok(Date.now() - t0 < 10000, 'a broken deployment must fail fast');
    assert.equal(broken.error?.code, 'INTERNAL', JSON.stringify(broken));
    assert.match(broken.error.message, /opfsync\.wasm.*404/);
    await p3.close();
  });
});
