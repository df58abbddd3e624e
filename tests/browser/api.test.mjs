// The public JS API in one tab: reads and writes, live queries, events,
// export/import, and every bad-input rejection with its code.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { useBrowser, waitFor } from './lib/harness.mjs';
import { DEFAULT_STORAGE, suiteEngines } from './lib/engines.mjs';

for (const engine of suiteEngines()) describe(`JS API [${engine}]`, { timeout: 180000 }, () => {
  const env = useBrowser(1, engine);
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
      await T.pendingSettled('crud', 5);
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
    assert.equal(out.status.storage, DEFAULT_STORAGE[engine]);
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

  // The bad-input matrix: one row per public function × bad input, each
  // with the code it must fail with and a word its message must contain
  // (the argument it names). Functions that return a Promise must reject
  // (never throw); watch, on and status must throw synchronously. Nothing
  // of it may reach the database: a full export(), the outbox count and the
  // mutationVersion are the same before and after. Then every function is
  // called after close().
  test('bad input: every function × every kind of bad input fails with its code and names the argument; nothing written; CLOSED after close()', { timeout: 120000 }, async (t) => {
    const out = await page.evaluate(async () => {
      await T.open('bad', { name: 'bad-input' });
      const s = T.stores.bad;
      const { openStore, OpfsyncError } = T.opfsync;
      await s.put('todos', { id: 'seed', title: 'seed', rank: 1, tags: ['a'] });
      await s.put('stars', { id: 'st', starred: true });
      const snapshot = async () => {
        const i = await s.inspect({ limit: 1 });
        const { exportedAt, ...dump } = await s.export(); // the one field that changes by itself
        return { dump: JSON.stringify(dump), pending: i.pendingCount, version: i.version };
      };
      const before = await snapshot();
      const offChange = s.on('change', () => {});
      const stopWatch = s.watch('SELECT count(*) AS n FROM todos', [], () => {});

      const rows = [];
      // row(function, input class, what, call, word the message must contain, code)
      const row = (fn, cls, what, call, word, code = 'VALIDATION') => rows.push({ fn, cls, what, call, word, code });
      const SYNC = new Set(['watch', 'on', 'status']);

      // Values JSON cannot carry exactly.
      class Point { constructor() { this.x = 1; } }
      const cyc = { a: 1 };
      cyc.self = cyc;
      let deep = {};
      const deepRoot = deep;
      for (let i = 0; i < 100000; i++) deep = deep.x = {};
      const nonJSON = {
        function: [() => () => 1, 'function'],
        symbol: [() => Symbol('s'), 'symbol'],
        'symbol key': [() => ({ [Symbol('k')]: 1 }), 'Symbol(k)'],
        cycle: [() => cyc, 'circular'],
        BigInt: [() => 10n, 'BigInt'],
        NaN: [() => NaN, 'NaN'],
        Infinity: [() => Infinity, 'Infinity'],
        '-Infinity': [() => -Infinity, '-Infinity'],
        undefined: [() => undefined, 'undefined'],
        Date: [() => new Date(0), 'Date'],
        Map: [() => new Map([[1, 2]]), 'Map'],
        Set: [() => new Set([1]), 'Set'],
        'class instance': [() => new Point(), 'Point'],
        Uint8Array: [() => new Uint8Array(2), 'Uint8Array'],
        'boxed string': [() => new String('x'), 'String'],
        'sparse array': [() => [1, , 3], 'hole'], // eslint-disable-line no-sparse-arrays
        'throwing getter': [() => ({ get g() { throw new Error('boom'); } }), 'boom'],
        'Proxy throwing on get': [() => new Proxy({ a: 1 }, { get() { throw new Error('trap-get'); } }), 'trap-get'],
        'Proxy throwing on ownKeys': [() => new Proxy({}, { ownKeys() { throw new Error('trap-keys'); } }), 'trap-keys'],
        'nesting 100,000 deep': [() => deepRoot, 'nested more than'],
        'lone surrogate': [() => 'a\uD800b', 'lone surrogate'],
        'lone surrogate key': [() => ({ ['k\uDC00']: 1 }), 'lone surrogate'],
        'toJSON method': [() => ({ toJSON: () => 'x' }), 'toJSON'],
      };
      for (const [label, [make, word]] of Object.entries(nonJSON)) {
        row('put', `non-JSON value: ${label}`, 'record.tags', () => s.put('todos', { id: 'nv', tags: make() }), word);
        row('patch', `non-JSON value: ${label}`, 'fields.tags', () => s.patch('todos', 'seed', { tags: make() }), word);
        row('apply', `non-JSON value: ${label}`, 'writes[0].fields.tags', () => s.apply([{ op: 'put', collection: 'todos', id: 'nv', fields: { tags: make() } }]), word);
        row('query', `non-JSON value: ${label}`, 'params[0]', () => s.query('SELECT ?', [make()]), 'params[0]');
        row('watch', `non-JSON value: ${label}`, 'params[0]', () => s.watch('SELECT ?', [make()], () => {}), 'params[0]');
        row('import', `non-JSON value: ${label}`, 'dump.x', () => s.import({ x: make() }), word);
        row('_applyPullPage', `non-JSON value: ${label}`, 'page.x', () => s._applyPullPage({ changes: [], x: make() }), word);
        row('openStore', `non-JSON value: ${label}`, 'schema.x', () => openStore({ name: 'x', schema: { ...T.schema, x: make() }, storage: 'memory' }), word);
      }

      // Wrong types where a string goes, and the empty string.
      const notStrings = { missing: undefined, number: 42, null: null, object: {}, array: ['todos'], boolean: true, 'empty string': '' };
      for (const [label, v] of Object.entries(notStrings)) {
        const cls = `wrong type: ${label}`;
        row('put', cls, 'collection', () => s.put(v, { id: 'x' }), 'collection');
        row('put', cls, 'record.id', () => s.put('todos', { id: v, title: 'x' }), 'record.id');
        row('patch', cls, 'collection', () => s.patch(v, 'seed', { done: true }), 'collection');
        row('patch', cls, 'id', () => s.patch('todos', v, { done: true }), 'id');
        row('delete', cls, 'collection', () => s.delete(v, 'seed'), 'collection');
        row('delete', cls, 'id', () => s.delete('todos', v), 'id');
        row('apply', cls, 'writes[0].collection', () => s.apply([{ op: 'delete', collection: v, id: 'seed' }]), 'writes[0].collection');
        row('apply', cls, 'writes[0].id', () => s.apply([{ op: 'delete', collection: 'todos', id: v }]), 'writes[0].id');
        row('apply', cls, 'writes[0].op', () => s.apply([{ op: v, collection: 'todos', id: 'seed' }]), 'writes[0].op');
        row('get', cls, 'collection', () => s.get(v, 'seed'), 'collection');
        row('get', cls, 'id', () => s.get('todos', v), 'id');
        row('query', cls, 'sql', () => s.query(v), 'sql');
        row('watch', cls, 'sql', () => s.watch(v, [], () => {}), 'sql');
        row('on', cls, 'event', () => s.on(v, () => {}), 'event');
        row('openStore', cls, 'name', () => openStore({ name: v, schema: T.schema, storage: 'memory' }), 'name');
        row('openStore', cls, 'sync.url', () => openStore({ name: 'x', schema: T.schema, sync: { url: v, token: 't' } }), 'sync.url');
        row('openStore', cls, 'sync.token', () => openStore({ name: 'x', schema: T.schema, sync: { url: 'http://127.0.0.1:1', token: v } }), 'sync.token');
        row('openStore', cls, 'migrateLocalStorage[0].key', () => openStore({ name: 'x', schema: T.schema, migrateLocalStorage: [{ key: v, collection: 'todos', map: JSON.parse }] }), 'migrateLocalStorage[0].key');
      }

      // Wrong types where an object (or array, or function) goes.
      const notObjects = { missing: undefined, string: 'x', number: 42, null: null, array: [1], Map: new Map(), 'class instance': new Point() };
      for (const [label, v] of Object.entries(notObjects)) {
        const cls = `wrong type: ${label}`;
        row('put', cls, 'record', () => s.put('todos', v), 'record');
        row('patch', cls, 'fields', () => s.patch('todos', 'seed', v), 'fields');
        if (v !== undefined) row('put', cls, 'options', () => s.put('todos', { id: 'x' }, v), 'options');
        if (v !== undefined) row('patch', cls, 'options', () => s.patch('todos', 'seed', { done: true }, v), 'options');
        if (v !== undefined) row('delete', cls, 'options', () => s.delete('todos', 'seed', v), 'options');
        if (label !== 'array') row('apply', cls, 'writes', () => s.apply(v), 'writes');
        row('apply', cls, 'writes[0]', () => s.apply([v]), 'writes[0]');
        row('apply', cls, 'writes[0].fields', () => s.apply([{ op: 'patch', collection: 'todos', id: 'seed', fields: v }]), 'writes[0].fields');
        if (v !== undefined && v !== null && label !== 'array') row('query', cls, 'params', () => s.query('SELECT 1', v), 'params');
        if (v !== undefined && v !== null && label !== 'array') row('watch', cls, 'params', () => s.watch('SELECT 1', v, () => {}), 'params');
        row('watch', cls, 'cb', () => s.watch('SELECT 1', [], v), 'cb');
        if (v !== undefined) row('watch', cls, 'onError', () => s.watch('SELECT 1', [], () => {}, v), 'onError');
        row('on', cls, 'handler', () => s.on('change', v), 'handler');
        row('import', cls, 'dump', () => s.import(v), 'dump');
        if (v !== undefined) row('inspect', cls, 'options', () => s.inspect(v), 'options');
        row('_applyPullPage', cls, 'page', () => s._applyPullPage(v), 'page');
        row('openStore', cls, 'options', () => openStore(v), 'options');
        row('openStore', cls, 'schema', () => openStore({ name: 'x', schema: v, storage: 'memory' }), 'schema');
        if (v !== undefined && v !== null) row('openStore', cls, 'sync', () => openStore({ name: 'x', schema: T.schema, sync: v }), 'sync');
        if (v !== undefined) row('openStore', cls, 'migrateLocalStorage', () => openStore({ name: 'x', schema: T.schema, migrateLocalStorage: v }), 'migrateLocalStorage');
        row('openStore', cls, 'migrateLocalStorage[0].map', () => openStore({ name: 'x', schema: T.schema, migrateLocalStorage: [{ key: 'k', collection: 'todos', map: v }] }), 'map');
      }

      // Values outside the allowed set; unknown keys.
      const cls = 'bad value / unknown key';
      row('put', cls, 'options.origin', () => s.put('todos', { id: 'x' }, { origin: 'server' }), 'origin');
      row('put', cls, 'options key', () => s.put('todos', { id: 'x' }, { orign: 'agent' }), 'orign');
      row('patch', cls, 'options.origin', () => s.patch('todos', 'seed', { done: true }, { origin: 'migration' }), 'origin');
      row('delete', cls, 'options.origin', () => s.delete('todos', 'seed', { origin: 5 }), 'origin');
      row('apply', cls, 'writes (empty)', () => s.apply([]), 'empty');
      row('apply', cls, 'writes[0].op', () => s.apply([{ op: 'upsert', collection: 'todos', id: 'x', fields: {} }]), 'writes[0].op');
      row('apply', cls, 'writes[0] key', () => s.apply([{ op: 'put', collection: 'todos', id: 'x', fields: {}, feilds: {} }]), 'feilds');
      row('apply', cls, 'writes[0].fields on a delete', () => s.apply([{ op: 'delete', collection: 'todos', id: 'seed', fields: {} }]), 'delete takes no fields');
      row('apply', cls, 'writes[0].origin', () => s.apply([{ op: 'delete', collection: 'todos', id: 'seed', origin: 'server' }]), 'origin');
      row('apply', cls, 'writes[1] after a good one', () => s.apply([{ op: 'put', collection: 'todos', id: 'ok' , fields: {} }, { op: 'put', collection: 'todos', id: 'nv', fields: { rank: NaN } }]), 'writes[1]');
      row('put', cls, 'record field of the wrong declared type (engine)', () => s.put('todos', { id: 'x', rank: 'high' }), 'rank');
      row('put', cls, 'undeclared field (engine)', () => s.put('todos', { id: 'x', titel: 'typo' }), 'titel');
      row('query', cls, 'params[0] an object', () => s.query('SELECT ?', [{ a: 1 }]), 'params[0]');
      row('query', cls, 'a write statement (engine)', () => s.query('DELETE FROM todos'), '');
      row('on', cls, 'event', () => s.on('changed', () => {}), 'changed');
      for (const o of [{ limit: 0 }, { limit: 1.5 }, { limit: '3' }, { limit: 10001 }, { limit: -1 }]) row('inspect', cls, `options.limit ${JSON.stringify(o.limit)}`, () => s.inspect(o), 'limit');
      row('inspect', cls, 'options key', () => s.inspect({ max: 3 }), 'max');
      row('_applyPullPage', cls, 'page.changes', () => s._applyPullPage({ changes: 'x' }), 'page');
      row('openStore', cls, 'options key', () => openStore({ name: 'x', schema: T.schema, strage: 'memory' }), 'strage');
      row('openStore', cls, 'storage', () => openStore({ name: 'x', schema: T.schema, storage: 'disk' }), 'storage');
      row('openStore', cls, 'name with a slash', () => openStore({ name: 'no/slashes', schema: T.schema, storage: 'memory' }), 'name');
      row('openStore', cls, 'name of 65 characters', () => openStore({ name: 'a'.repeat(65), schema: T.schema, storage: 'memory' }), 'name');
      row('openStore', cls, 'sync.url not a URL', () => openStore({ name: 'x', schema: T.schema, sync: { url: 'not a url', token: 't' } }), 'sync.url');
      row('openStore', cls, 'sync.url not http(s)', () => openStore({ name: 'x', schema: T.schema, sync: { url: 'ftp://a', token: 't' } }), 'sync.url');
      row('openStore', cls, 'sync key', () => openStore({ name: 'x', schema: T.schema, sync: { url: 'http://a', token: 't', tokn: 1 } }), 'tokn');
      row('openStore', cls, 'migrateLocalStorage[0].mode', () => openStore({ name: 'x', schema: T.schema, migrateLocalStorage: [{ key: 'k', collection: 'todos', map: JSON.parse, mode: 'merge' }] }), 'mode');
      row('openStore', cls, 'migrateLocalStorage[0] key', () => openStore({ name: 'x', schema: T.schema, migrateLocalStorage: [{ key: 'k', collection: 'todos', map: JSON.parse, kye: 1 }] }), 'kye');
      row('openStore', cls, 'schema field type (engine)', () => openStore({ name: 'x', storage: 'memory', schema: { version: 1, collections: { t: { fields: { a: 'varchar' } } } } }), 'varchar', 'SCHEMA');

      // Unknown collections (checked by the engine: the leader's schema is the one that counts).
      const uc = 'unknown collection';
      row('put', uc, 'collection', () => s.put('nope', { id: 'x' }), 'nope');
      row('put', uc, 'collection (case)', () => s.put('Todos', { id: 'x' }), 'did you mean "todos"');
      row('patch', uc, 'collection', () => s.patch('nope', 'seed', { done: true }), 'nope');
      row('delete', uc, 'collection', () => s.delete('nope', 'seed'), 'nope');
      row('get', uc, 'collection', () => s.get('nope', 'seed'), 'nope');
      row('apply', uc, 'writes[1].collection (all or nothing)', () => s.apply([{ op: 'put', collection: 'todos', id: 'ok', fields: {} }, { op: 'delete', collection: 'nope', id: 'x' }]), 'nope');
      row('query', uc, 'table', () => s.query('SELECT * FROM nope'), 'nope');
      row('openStore', uc, 'migrateLocalStorage[0].collection', () => openStore({ name: 'x', schema: T.schema, migrateLocalStorage: [{ key: 'k', collection: 'nope', map: JSON.parse }] }), 'nope');

      // Extra arguments (a trailing undefined counts as not given).
      const ex = 'extra argument';
      row('openStore', ex, '2nd argument', () => openStore({ name: 'x', schema: T.schema, storage: 'memory' }, { storage: 'memory' }), 'at most 1');
      row('put', ex, '4th argument', () => s.put('todos', { id: 'x' }, {}, 'more'), 'at most 3');
      row('patch', ex, '5th argument', () => s.patch('todos', 'seed', { done: true }, {}, 1), 'at most 4');
      row('delete', ex, '4th argument', () => s.delete('todos', 'seed', {}, 1), 'at most 3');
      row('apply', ex, '2nd argument', () => s.apply([{ op: 'delete', collection: 'todos', id: 'seed' }], {}), 'at most 1');
      row('get', ex, '3rd argument', () => s.get('todos', 'seed', 'x'), 'at most 2');
      row('query', ex, '3rd argument (params not in an array)', () => s.query('SELECT ?, ?', 1, 2), 'at most 2');
      row('watch', ex, '5th argument', () => s.watch('SELECT 1', [], () => {}, () => {}, 1), 'at most 4');
      row('watch', ex, '3rd argument after a callback', () => s.watch('SELECT 1', () => {}, 1), 'params');
      row('on', ex, '3rd argument', () => s.on('change', () => {}, { once: true }), 'at most 2');
      row('status', ex, '1st argument', () => s.status(1), 'at most 0');
      row('sync', ex, '1st argument', () => s.sync({ force: true }), 'at most 0');
      row('export', ex, '1st argument', () => s.export({}), 'at most 0');
      row('import', ex, '2nd argument', () => s.import({}, {}), 'at most 1');
      row('integrityCheck', ex, '1st argument', () => s.integrityCheck('quick'), 'at most 0');
      row('inspect', ex, '2nd argument', () => s.inspect({}, 1), 'at most 1');
      row('_applyPullPage', ex, '2nd argument', () => s._applyPullPage({ changes: [] }, 1), 'at most 1');
      row('close', ex, '1st argument', () => s.close(true), 'at most 0');

      // Detached from the store (const {put} = store).
      const valid = {
        put: ['todos', { id: 'x' }], patch: ['todos', 'seed', { done: true }], delete: ['todos', 'seed'],
        apply: [[{ op: 'delete', collection: 'todos', id: 'seed' }]], get: ['todos', 'seed'], query: ['SELECT 1'],
        watch: ['SELECT 1', [], () => {}], on: ['change', () => {}], status: [], sync: [], export: [], import: [{}],
        integrityCheck: [], inspect: [], _applyPullPage: [{ changes: [] }], close: [],
      };
      for (const [fn, args] of Object.entries(valid)) {
        row(fn, 'detached this', 'this', () => Reflect.apply(s[fn], undefined, args), 'called on a store');
        row(fn, 'detached this', 'this', () => Reflect.apply(s[fn], { fake: true }, args), 'called on a store');
      }

      const run = async (r) => {
        let mode;
        let error = null;
        try {
          const ret = r.call();
          if (ret && typeof ret.then === 'function') {
            mode = 'reject';
            try {
              await ret;
              mode = 'resolve';
            } catch (e) {
              error = e;
            }
          } else {
            mode = 'return';
          }
        } catch (e) {
          mode = 'throw';
          error = e;
        }
        return {
          fn: r.fn, cls: r.cls, what: r.what, word: r.word, code: r.code, mode, sync: SYNC.has(r.fn),
          error: error && { isOpfsyncError: error instanceof OpfsyncError, name: error.name, code: error.code, message: String(error.message) },
        };
      };
      const results = [];
      for (const r of rows) results.push(await run(r));
      const stillWorks = await T.attempt(() => s.get('todos', 'seed'));
      const after = await snapshot();

      // After close(): every function, with good and with bad arguments.
      await s.close();
      const closed = [];
      const closedRow = (fn, what, call) => closed.push({ fn, cls: 'after close()', what, call, word: `${fn}: the store is closed`, code: 'CLOSED' });
      for (const [fn, args] of Object.entries(valid)) if (fn !== 'close') closedRow(fn, 'good arguments', () => s[fn](...args));
      closedRow('put', 'bad arguments', () => s.put('todos', 'x'));
      closedRow('query', 'bad arguments', () => s.query(1));
      closedRow('watch', 'bad arguments', () => s.watch(1));
      closedRow('on', 'bad arguments', () => s.on('nope'));
      for (const r of closed) results.push(await run(r));
      return {
        results, before, after, stillWorks,
        closeAgain: await T.attempt(() => s.close()),
        unsubscribeAfterClose: await T.attempt(async () => { offChange(); stopWatch(); return 'ok'; }),
        migrationReport: await T.attempt(async () => s.migrationReport),
      };
    });

    const failures = [];
    const counts = {};
    for (const r of out.results) {
      const key = `${r.fn} | ${r.cls}`;
      counts[r.fn] = (counts[r.fn] || 0) + 1;
      const wantMode = r.sync ? 'throw' : 'reject';
      const e = r.error;
      if (r.mode !== wantMode) failures.push(`${key} | ${r.what}: should ${wantMode}, did ${r.mode} ${e ? JSON.stringify(e) : ''}`);
      else if (!e?.isOpfsyncError || e.name !== 'OpfsyncError') failures.push(`${key} | ${r.what}: not an OpfsyncError: ${JSON.stringify(e)}`);
      else if (e.code !== r.code) failures.push(`${key} | ${r.what}: code ${e.code}, want ${r.code}: ${e.message}`);
      else if (!e.message.includes(r.word)) failures.push(`${key} | ${r.what}: message should name ${JSON.stringify(r.word)}: ${e.message}`);
      else if (r.code === 'VALIDATION' && r.cls !== 'unknown collection' && !/engine/.test(r.what) && !e.message.startsWith(r.fn === 'openStore' ? 'openStore' : r.fn)) failures.push(`${key} | ${r.what}: message should start with the function's name: ${e.message}`);
    }
    assert.deepEqual(failures, [], `${failures.length} of ${out.results.length} cases misbehave:\n${failures.join('\n')}`);
    // The database is unchanged, and the store still serves.
    assert.equal(out.after.dump, out.before.dump, 'export() after the bad calls differs from before');
    assert.equal(out.after.pending, out.before.pending, 'the outbox changed');
    assert.equal(out.after.version, out.before.version, 'the mutationVersion changed');
    assert.equal(out.stillWorks.ok?.title, 'seed', JSON.stringify(out.stillWorks));
    assert.ok(!out.closeAgain.error, 'closing twice is fine');
    assert.equal(out.unsubscribeAfterClose.ok, 'ok', 'unsubscribing after close() is a no-op');
    assert.ok(out.migrationReport.ok, 'migrationReport stays readable after close()');
    const byClass = {};
    for (const r of out.results) {
      const c = r.cls.replace(/:.*/, '');
      byClass[c] = (byClass[c] || 0) + 1;
    }
    t.diagnostic(`${out.results.length} bad-input cases: per function ${JSON.stringify(counts)}; per class ${JSON.stringify(byClass)}`);
    assert.ok(out.results.length >= 400, `the matrix shrank to ${out.results.length} cases`);
  });

  // The worker bridge validates what crosses it: messages of the wrong
  // shape or types, posted straight to opfsync-worker.js (no client in
  // between), get a typed error — a reply when the message has a usable id,
  // an `error` event otherwise — never a crash: after each one the worker
  // still answers, and the database is unchanged.
  test('worker bridge: malformed messages get a typed error reply or event, and the worker keeps serving', { timeout: 60000 }, async () => {
    const out = await page.evaluate(async () => {
      const worker = new Worker(new URL('../dist/opfsync-worker.js', location.href));
      const posts = [];
      const notJSON = [];
      let wake = null;
      worker.onmessage = (e) => {
        try {
          posts.push(JSON.parse(e.data));
        } catch {
          notJSON.push(String(e.data));
        }
        wake?.();
      };
      const answerTo = async (id) => {
        const deadline = Date.now() + 10000;
        for (;;) {
          const m = posts.find((p) => p.id === id);
          if (m) return m;
          if (Date.now() > deadline) return { timeout: true };
          await new Promise((r) => { wake = r; setTimeout(r, 50); });
        }
      };
      let next = 1;
      const send = (op, args) => {
        const id = next++;
        worker.postMessage(JSON.stringify({ id, op, args }));
        return answerTo(id);
      };
      const results = {};
      results.beforeOpen = await send('get', { collection: 'todos', id: 'a' });
      results.openBad = await send('open', { name: 5, schema: T.schema });
      results.openBadStorage = await send('open', { name: 'raw', schema: T.schema, storage: 'disk' });
      results.openUnknownKey = await send('open', { name: 'raw', schema: T.schema, storage: 'memory', extra: 1 });
      results.open = await send('open', { name: 'raw', schema: T.schema, storage: 'memory' });
      await send('put', { collection: 'todos', record: { id: 'a', title: 'A', rank: 1 } });
      const dumpOf = async () => { const { exportedAt, ...d } = (await send('export', {})).result; return JSON.stringify(d); };
      const dumpBefore = await dumpOf();

      // [label, what to post, 'reply' (with the id 900+i) | 'event', expected code]
      const bad = [
        ['not JSON', 'garbage', 'event'],
        ['empty string', '', 'event'],
        ['JSON array', '[1,2]', 'event'],
        ['JSON string', '"get"', 'event'],
        ['no id', '{"op":"get","args":{}}', 'event'],
        ['object id', '{"id":{},"op":"get"}', 'event'],
        ['boolean id', '{"id":true,"op":"get"}', 'event'],
        ['null id', '{"id":null,"op":"get"}', 'event'],
        ['unknown envelope key', (id) => `{"id":${id},"op":"get","args":{},"extra":1}`, 'reply', 'VALIDATION'],
        ['no op', (id) => `{"id":${id}}`, 'reply', 'VALIDATION'],
        ['numeric op', (id) => `{"id":${id},"op":7}`, 'reply', 'VALIDATION'],
        ['unknown op', (id) => `{"id":${id},"op":"drop"}`, 'reply', 'VALIDATION'],
        ['args an array', (id) => `{"id":${id},"op":"get","args":[]}`, 'reply', 'VALIDATION'],
        ['args a string', (id) => `{"id":${id},"op":"get","args":"x"}`, 'reply', 'VALIDATION'],
        ['get: collection a number', (id) => `{"id":${id},"op":"get","args":{"collection":5,"id":"a"}}`, 'reply', 'VALIDATION'],
        ['get: unknown arg', (id) => `{"id":${id},"op":"get","args":{"collection":"todos","id":"a","x":1}}`, 'reply', 'VALIDATION'],
        ['put: record a string', (id) => `{"id":${id},"op":"put","args":{"collection":"todos","record":"x"}}`, 'reply', 'VALIDATION'],
        ['put: record without id', (id) => `{"id":${id},"op":"put","args":{"collection":"todos","record":{"title":"x"}}}`, 'reply', 'VALIDATION'],
        ['put: unknown collection', (id) => `{"id":${id},"op":"put","args":{"collection":"nope","record":{"id":"x"}}}`, 'reply', 'VALIDATION'],
        ['put: wrong field type', (id) => `{"id":${id},"op":"put","args":{"collection":"todos","record":{"id":"a","rank":"x"}}}`, 'reply', 'VALIDATION'],
        ['patch: fields an array', (id) => `{"id":${id},"op":"patch","args":{"collection":"todos","id":"a","fields":[1]}}`, 'reply', 'VALIDATION'],
        ['patch: missing id', (id) => `{"id":${id},"op":"patch","args":{"collection":"todos","id":"zz","fields":{"rank":2}}}`, 'reply', 'NOT_FOUND'],
        ['delete: id a number', (id) => `{"id":${id},"op":"delete","args":{"collection":"todos","id":5}}`, 'reply', 'VALIDATION'],
        ['apply: writes an object', (id) => `{"id":${id},"op":"apply","args":{"writes":{}}}`, 'reply', 'VALIDATION'],
        ['apply: bad op', (id) => `{"id":${id},"op":"apply","args":{"writes":[{"op":"upsert","collection":"todos","id":"a"}]}}`, 'reply', 'VALIDATION'],
        ['batch: requests not an array', (id) => `{"id":${id},"op":"batch","args":{"requests":5}}`, 'reply', 'VALIDATION'],
        ['batch: empty', (id) => `{"id":${id},"op":"batch","args":{"requests":[]}}`, 'reply', 'VALIDATION'],
        ['query: sql a number', (id) => `{"id":${id},"op":"query","args":{"sql":1}}`, 'reply', 'VALIDATION'],
        ['query: a write', (id) => `{"id":${id},"op":"query","args":{"sql":"DELETE FROM todos"}}`, 'reply', 'VALIDATION'],
        ['query: params an object', (id) => `{"id":${id},"op":"query","args":{"sql":"SELECT ?","params":{"a":1}}}`, 'reply', 'VALIDATION'],
        ['query: param an object', (id) => `{"id":${id},"op":"query","args":{"sql":"SELECT ?","params":[{"a":1}]}}`, 'reply', 'VALIDATION'],
        ['import: dump a string', (id) => `{"id":${id},"op":"import","args":{"dump":"x"}}`, 'reply', 'VALIDATION'],
        ['import: dump of another format', (id) => `{"id":${id},"op":"import","args":{"dump":{"format":"x"}}}`, 'reply', 'VALIDATION'],
        ['migrate: items not an array', (id) => `{"id":${id},"op":"migrate","args":{"key":"k","collection":"todos","items":5}}`, 'reply', 'VALIDATION'],
        ['setOnline: not a boolean', (id) => `{"id":${id},"op":"setOnline","args":{"online":"yes"}}`, 'reply', 'VALIDATION'],
        ['inspect: limit a string', (id) => `{"id":${id},"op":"inspect","args":{"limit":"3"}}`, 'reply', 'VALIDATION'],
        ['inspect: limit negative', (id) => `{"id":${id},"op":"inspect","args":{"limit":-1}}`, 'reply', 'VALIDATION'],
        ['applyPullPage: page a number', (id) => `{"id":${id},"op":"applyPullPage","args":{"page":5}}`, 'reply', 'VALIDATION'],
        ['sync without sync options', (id) => `{"id":${id},"op":"sync","args":{}}`, 'reply', 'VALIDATION'],
        ['open again', (id) => `{"id":${id},"op":"open","args":{"name":"raw","schema":{"version":1,"collections":{}},"storage":"memory"}}`, 'reply', 'VALIDATION'],
        ['a structured-clone object, not a string', { id: 950, op: 'get', args: {} }, 'event'],
        ['a number, not a string', 42, 'event'],
        ['null', null, 'event'],
        ['an ArrayBuffer', new ArrayBuffer(8), 'event'],
      ];
      const seen = [];
      for (let i = 0; i < bad.length; i++) {
        const [label, msg, kind, code] = bad[i];
        const id = 900 + i;
        const from = posts.length;
        worker.postMessage(typeof msg === 'function' ? msg(id) : msg);
        // A good request right after: the worker must still answer it.
        const probe = await send('get', { collection: 'todos', id: 'a' });
        const between = posts.slice(from).filter((p) => p.id !== probe.id || p === probe);
        const reply = between.find((p) => p.id === id);
        const events = between.filter((p) => p.event === 'error');
        seen.push({ label, kind, code, reply: reply || null, events, probeOK: probe.result?.title === 'A' });
      }
      const dumpAfter = await dumpOf();
      results.closeOK = await send('close', {});
      results.afterClose = await send('get', { collection: 'todos', id: 'a' });
      worker.terminate();
      return { results, seen, dumpBefore, dumpAfter, notJSON };
    });
    const r = out.results;
    assert.equal(r.beforeOpen.error?.code, 'CLOSED', JSON.stringify(r.beforeOpen));
    assert.equal(r.openBad.error?.code, 'VALIDATION', JSON.stringify(r.openBad));
    assert.equal(r.openBadStorage.error?.code, 'VALIDATION', JSON.stringify(r.openBadStorage));
    assert.equal(r.openUnknownKey.error?.code, 'VALIDATION', JSON.stringify(r.openUnknownKey));
    assert.ok(r.open.result?.clientId, JSON.stringify(r.open));
    const failures = [];
    for (const s of out.seen) {
      if (!s.probeOK) failures.push(`${s.label}: the worker did not answer the next request`);
      if (s.kind === 'reply') {
        if (s.reply?.error?.code !== s.code) failures.push(`${s.label}: want a ${s.code} reply, got ${JSON.stringify(s.reply)} / events ${JSON.stringify(s.events)}`);
        else if (!s.reply.error.message) failures.push(`${s.label}: an error without a message`);
      } else {
        if (s.reply) failures.push(`${s.label}: want an error event, got a reply ${JSON.stringify(s.reply)}`);
        if (s.events.length !== 1 || s.events[0].data?.code !== 'VALIDATION' || !s.events[0].data?.message || s.events[0].data?.fatal) failures.push(`${s.label}: want one non-fatal VALIDATION error event, got ${JSON.stringify(s.events)}`);
      }
    }
    assert.deepEqual(failures, [], failures.join('\n'));
    assert.deepEqual(out.notJSON, [], 'everything the worker posts is JSON');
    assert.equal(out.dumpAfter, out.dumpBefore, 'the bad messages changed the database');
    assert.ok(r.closeOK.result !== undefined && !r.closeOK.error, JSON.stringify(r.closeOK));
    assert.equal(r.afterClose.error?.code, 'CLOSED');
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

  test(`deleteStore: removes a closed store's data (${DEFAULT_STORAGE[engine]}), refuses while it is open in this tab or another, and checks its argument`, { timeout: 90000 }, async () => {
    const storage = DEFAULT_STORAGE[engine];
    const other = await env.profile.newPage(env.url);
    try {
      const out = await page.evaluate(async (storage) => {
        const del = (name) => T.attempt(() => T.opfsync.deleteStore(name));
        await T.open('doomed', { name: 'doomed', storage });
        await T.stores.doomed.put('todos', { id: 'gone', title: 'unsynced and deleted' });
        const whileOpen = await del('doomed');
        const stillThere = await T.stores.doomed.get('todos', 'gone');
        await T.stores.doomed.close();
        const deleted = await del('doomed');
        await T.open('reborn', { name: 'doomed', storage });
        const reborn = {
          get: await T.stores.reborn.get('todos', 'gone'),
          count: (await T.stores.reborn.query('SELECT count(*) AS n FROM todos'))[0].n,
          pending: (await T.stores.reborn.inspect({ limit: 1 })).pendingCount,
          storage: T.stores.reborn.status().storage,
        };
        return { whileOpen, stillThere, deleted, reborn };
      }, storage);
      assert.equal(out.whileOpen.error?.code, 'LOCKED', `deleteStore while open here: ${JSON.stringify(out.whileOpen)}`);
      assert.match(out.whileOpen.error.message, /close it there first/);
      assert.equal(out.stillThere?.title, 'unsynced and deleted', 'the refused deleteStore changed the open store');
      assert.ok(!out.deleted.error, `deleteStore after close: ${JSON.stringify(out.deleted)}`);
      assert.deepEqual(out.reborn, { get: null, count: 0, pending: 0, storage });
      // Open in this page: another tab cannot delete it.
      const fromOther = await other.evaluate(() => T.attempt(() => T.opfsync.deleteStore('doomed')));
      assert.equal(fromOther.error?.code, 'LOCKED', `deleteStore from another tab: ${JSON.stringify(fromOther)}`);
      const after = await page.evaluate(async () => {
        const still = await T.stores.reborn.put('todos', { id: 'after', title: 'still writable' });
        await T.stores.reborn.close();
        const bad = {};
        for (const [label, args] of Object.entries({ none: [], number: [7], empty: [''], slash: ['a/b'], long: ['x'.repeat(65)], two: ['doomed', {}] })) {
          bad[label] = (await T.attempt(() => T.opfsync.deleteStore(...args))).error;
        }
        return { still: !!still.version, never: await T.attempt(() => T.opfsync.deleteStore('never-existed')), bad };
      });
      assert.ok(after.still);
      assert.ok(!after.never.error, `deleteStore of a store that never existed: ${JSON.stringify(after.never)}`);
      for (const [label, err] of Object.entries(after.bad)) {
        assert.equal(err?.code, 'VALIDATION', `deleteStore(${label}): ${JSON.stringify(err)}`);
        assert.match(err.message, /deleteStore/, `deleteStore(${label}) names the function: ${err.message}`);
      }
      // Closed everywhere now: the other tab deletes it.
      const deletedThere = await other.evaluate(() => T.attempt(() => T.opfsync.deleteStore('doomed')));
      assert.ok(!deletedThere.error, `deleteStore from another tab once closed: ${JSON.stringify(deletedThere)}`);
    } finally {
      await other.close();
    }
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

  test('loads from any folder; a missing wasm or a wrong wasm MIME type', { timeout: 60000 }, async (t) => {
    // The same files copied to /assets/v2/ work as they are.
    const p2 = await env.profile.newPage(`${env.server.url}/pages/store.html?dist=assets/v2`);
    const moved = await p2.evaluate(() => T.attempt(async () => {
      await T.open('s', { name: 'moved', storage: 'memory' });
      await T.stores.s.put('todos', { id: 'x' });
      return T.stores.s.get('todos', 'x');
    }));
    assert.deepEqual(moved.ok?.id, 'x', JSON.stringify(moved));

    // opfsync.wasm served as application/octet-stream: instantiateStreaming
    // refuses it, the worker falls back to compiling the bytes. Rewriting a
    // response's headers needs Playwright's request routing: Chromium only
    // (the fallback is the same worker code on every engine).
    if (engine === 'chromium') {
      await p2.route('**/opfsync.wasm', async (route) => {
        const resp = await route.fetch();
        await route.fulfill({ response: resp, headers: { ...resp.headers(), 'content-type': 'application/octet-stream' } });
      });
      const wrongType = await p2.evaluate(() => T.attempt(async () => {
        await T.open('t', { name: 'wrongtype', storage: 'memory' });
        return T.stores.t.query('SELECT 1 AS one');
      }));
      assert.deepEqual(wrongType.ok, [{ one: 1 }], JSON.stringify(wrongType));
    } else {
      t.diagnostic(`${engine}: the wrong-MIME case needs request routing (Playwright, Chromium only); checked on Chromium`);
    }
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
