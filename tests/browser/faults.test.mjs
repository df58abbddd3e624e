// Faults: a worker killed at random points of write batches and of
// pull-page applies, many times — its renderer crashed (CDP Page.crash:
// stopped mid-instruction, nothing runs after) or worker.terminate() —
// and storage running out (the origin's quota lowered through CDP). After
// each fault the database must open, pass integrity_check, and hold exactly
// what was committed — every batch all or nothing, everything the app was
// told is durable there, the outbox holding exactly one mutation per
// durable write.
//
// The kill points are random, from a seeded generator: the seed is printed
// (t.diagnostic) and OPFSYNC_FAULTS_SEED=<seed> replays the same plans
// (the timing of a kill still depends on the machine).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ackChannel, crashPage, setQuota, useBrowser, userToken, waitFor } from './lib/harness.mjs';
import { DEFAULT_STORAGE, suiteEngines } from './lib/engines.mjs';

const SEED = Number(process.env.OPFSYNC_FAULTS_SEED || Math.floor(Math.random() * 2 ** 31));

/** rng returns a seeded generator of floats in [0, 1) (mulberry32). */
function rng(seed) {
  let a = seed | 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** assertOpened fails with openStore's error when T.attempt(open) did not succeed. */
function assertOpened(r, what) {
  assert.ok(r.ok, `${what}: openStore failed: ${JSON.stringify(r.error)}`);
}

/**
 * acksFor returns how a page reports each answer to the test as it
 * arrives (window.faultsAck(...args) → ch.on(...args)). On Chromium it is a
 * binding (ackChannel), so even a page that then crashes has reported what
 * it saw; elsewhere a buffer in the page that the test drains (ch.drain),
 * since only worker.terminate() kills there and the page lives on. Call
 * ch.prepare(page) on every new page.
 */
async function acksFor(env) {
  if (env.engine === 'chromium') {
    const ch = await ackChannel(env.profile.context);
    return Object.assign(ch, { prepare: async () => {}, drain: async () => {} });
  }
  const ch = { on: null };
  ch.prepare = (page) => page.evaluate(() => { window.faultsAck = (...args) => (window.faultsAcks ||= []).push(args); });
  ch.drain = async (page) => {
    for (const args of await page.evaluate(() => (window.faultsAcks || []).splice(0))) ch.on?.(...args);
  };
  return ch;
}

// Chromium kills a worker two ways: crashing its renderer (CDP Page.crash:
// stopped mid-instruction) and worker.terminate(). Firefox and WebKit have
// no CDP, so every kill there is worker.terminate(), and the quota test
// (CDP Storage.overrideQuotaForOrigin) is reported as skipped with why.
for (const engine of suiteEngines()) describe(`faults [${engine}]`, { timeout: 600000 }, () => {
  const env = useBrowser(1, engine);
  const canCrash = engine === 'chromium';

  // ---------------------------------------------------------------------
  // 1. Worker killed during write batches.
  // ---------------------------------------------------------------------

  /**
   * planRound makes the writes of one round: units sent to the worker one
   * message each (put, patch, delete, apply, or a batch of requests), each
   * made of parts that commit all or nothing (a batch's requests are parts
   * of their own). live is the model's records at the start of the round
   * (id → {title, rank, note}); patches and deletes pick ids from it, each
   * id at most once per round, so whether they committed is unambiguous.
   */
  function planRound(next, round, live) {
    const touched = new Set();
    const pickLive = () => {
      const ids = [...live.keys()].filter((id) => !touched.has(id));
      if (ids.length === 0) return null;
      const id = ids[Math.floor(next() * ids.length)];
      touched.add(id);
      return id;
    };
    let serial = 0;
    const put = (u) => {
      const id = `w${String(round).padStart(2, '0')}-${String(u).padStart(2, '0')}-${String(serial++).padStart(4, '0')}`;
      return { op: 'put', id, fields: { title: `title of ${id}`, rank: Math.floor(next() * 1e6) } };
    };
    const patchOrDelete = (u) => {
      const id = pickLive();
      if (id === null) return null;
      return next() < 0.6 ? { op: 'patch', id, fields: { note: `patched in ${round}-${u}` } } : { op: 'delete', id };
    };
    const applyWrites = (u, n) => {
      const writes = [];
      for (let i = 0; i < n; i++) writes.push(put(u));
      const extra = Math.floor(next() * 4);
      for (let i = 0; i < extra; i++) {
        const w = patchOrDelete(u);
        if (w) writes.splice(Math.floor(next() * writes.length), 0, w);
      }
      return writes;
    };
    const single = (w) => (w.op === 'put'
      ? { op: 'put', args: { collection: 'todos', record: { id: w.id, ...w.fields } } }
      : w.op === 'patch'
        ? { op: 'patch', args: { collection: 'todos', id: w.id, fields: w.fields } }
        : { op: 'delete', args: { collection: 'todos', id: w.id } });
    const applyMsg = (writes) => ({ op: 'apply', args: { writes: writes.map((w) => ({ op: w.op, collection: 'todos', id: w.id, ...(w.fields ? { fields: w.fields } : {}) })) } });

    const units = [];
    const count = 16 + Math.floor(next() * 12);
    for (let u = 0; u < count; u++) {
      const r = next();
      if (r < 0.35) {
        const w = put(u);
        units.push({ msg: single(w), parts: [[w]] });
      } else if (r < 0.5) {
        const w = patchOrDelete(u) || put(u);
        units.push({ msg: single(w), parts: [[w]] });
      } else if (r < 0.8) {
        const writes = applyWrites(u, 2 + Math.floor(next() * 150));
        units.push({ msg: applyMsg(writes), parts: [writes] });
      } else {
        // The writes of one tick, as the client sends them: one batch
        // message, one transaction, each request all or nothing.
        const parts = [];
        const n = 2 + Math.floor(next() * 30);
        for (let i = 0; i < n; i++) parts.push(next() < 0.7 ? [put(u)] : applyWrites(u, 1 + Math.floor(next() * 10)));
        const requests = parts.map((p) => (p.length === 1 && p[0].op === 'put' ? single(p[0]) : applyMsg(p)));
        units.push({ msg: { op: 'batch', args: { requests } }, parts });
      }
    }
    return units;
  }

  /** committedPart tells from the rows whether part committed, checking that it did so whole. */
  function committedPart(part, rows, live, where) {
    const states = part.map((w) => {
      const row = rows.get(w.id);
      if (w.op === 'put') {
        if (!row) return false;
        assert.deepEqual(row, { title: w.fields.title, rank: w.fields.rank, note: null }, `${where}: ${w.id} holds something else`);
        return true;
      }
      const before = live.get(w.id);
      if (w.op === 'delete') {
        if (!row) return true;
        assert.deepEqual(row, before, `${where}: ${w.id} (to be deleted) changed`);
        return false;
      }
      assert.ok(row, `${where}: ${w.id} (to be patched) vanished`);
      if (row.note === w.fields.note) {
        assert.deepEqual(row, { ...before, note: w.fields.note }, `${where}: ${w.id} patched wrongly`);
        return true;
      }
      assert.deepEqual(row, before, `${where}: ${w.id} (to be patched) changed`);
      return false;
    });
    assert.ok(states.every((s) => s === states[0]), `${where}: a part is half-written: ${JSON.stringify(part.map((w, i) => [w.op, w.id, states[i]]))}`);
    return states[0];
  }

  /**
   * readState opens database name after a kill and reads what the checks
   * need. via 'store': through openStore (which retries LOCKED while the
   * killed worker lets go), closed after; via 'raw': through a new raw
   * worker (tag), retrying LOCKED the same way, kept as T.W for the next
   * writes. Resolves to {ok: {integrity, rows, pending, pendingCount,
   * statusPending, pull, openMs}} or {error}.
   */
  const readState = (page, name, via, tag, rowsSQL = 'SELECT id, title, rank, note FROM todos ORDER BY id', storage = 'opfs') => page.evaluate(async ({ name, via, tag, rowsSQL, storage }) => T.attempt(async () => {
    const pendingSQL = 'SELECT collection, id, op, mutation_id AS m FROM pending ORDER BY seq';
    const t0 = performance.now();
    if (via === 'store') {
      const label = `check-${tag}`;
      await T.open(label, { name, storage });
      const s = T.stores[label];
      const openMs = performance.now() - t0;
      const out = {
        openMs,
        integrity: await s.integrityCheck(),
        rows: await s.query(rowsSQL),
        pending: await s.query(pendingSQL),
        inspect: await s.inspect({ limit: 1 }),
        statusPending: s.status().pending,
      };
      await s.close();
      return out;
    }
    const w = T.rawWorker(tag);
    T.W = w;
    const call = async (op, args) => {
      const answer = await w.send(op, args);
      if (answer.error) throw Object.assign(new Error(`${op}: ${answer.error.message}`), { code: answer.error.code });
      return answer.result;
    };
    for (;;) {
      const answer = await w.send('open', { name, schema: T.schema, storage });
      if (!answer.error) break;
      if (answer.error.code !== 'LOCKED' || performance.now() - t0 > 20000) {
        w.terminate();
        T.W = null;
        throw Object.assign(new Error(`open: ${answer.error.message}`), { code: answer.error.code });
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    return {
      openMs: performance.now() - t0,
      integrity: (await call('integrityCheck', {})).result,
      rows: (await call('query', { sql: rowsSQL })).rows,
      pending: (await call('query', { sql: pendingSQL })).rows,
      inspect: await call('inspect', { limit: 1 }),
      statusPending: (await call('status', {})).pending,
    };
  }), { name, via, tag, rowsSQL, storage });

  /**
   * wedgedByWebKit tells whether state (readState's answer) is the LOCKED
   * error the engine gives (idb.ErrStalled, after 5 s instead of hanging)
   * when WebKitGTK still holds the IndexedDB database for a worker that
   * worker.terminate() stopped in the middle of a commit: WebKitGTK 2.50
   * keeps that transaction pending for the rest of the browser session
   * (reloading or closing the page does not end it; measured for 90 s).
   * When it is, it reports so (t.diagnostic, where: after which kill) and
   * counts it in figures.wedged; the test then goes on with a fresh
   * database.
   */
  const wedgedByWebKit = (t, state, where, figures) => {
    if (engine !== 'webkit' || state.error?.code !== 'LOCKED' || !/stopped in the middle of a write/.test(state.error.message)) return false;
    t.diagnostic(`${where}: WebKit keeps the terminated worker's IndexedDB transaction; the reopen failed with LOCKED (${state.error.message.slice(0, 90)}…); going on with a fresh database`);
    figures.wedged++;
    return true;
  };

  /**
   * killWrites is the write-batch kill test on storage ('opfs', or the
   * IndexedDB fallback) for rounds rounds.
   */
  const killWrites = (storage, rounds) => async (t) => {
    const ROUNDS = rounds;
    const next = rng(SEED);
    t.diagnostic(`seed ${SEED} (OPFSYNC_FAULTS_SEED=${SEED} replays these plans); storage ${storage}`);
    const acks = await acksFor(env);
    let page = await env.profile.newPage(env.url);
    await acks.prepare(page);
    let name = `kill-writes-${storage}`;
    /** @type {Map<string, {title: string, rank: number, note: string|null}>} */
    const live = new Map();
    const outbox = []; // [op, id] of every committed write, in order
    const figures = { wedged: 0, kills: 0, crashed: 0, units: 0, unitsCommitted: 0, unitsAcked: 0, lostAnswers: 0, cut: 0, writesCommitted: 0, storeOpenMs: [] };
    const T0 = Date.now();
    const debug = (msg) => process.env.OPFSYNC_TEST_DEBUG && console.error(`[faults +${Date.now() - T0} ms] ${msg}`);
    let last = null; // the previous round: {units, answers, where}

    for (let round = 0; round <= ROUNDS; round++) {
      // Open the database (after the previous kill) and check it.
      const via = round === ROUNDS || (round > 0 && last?.terminated) ? 'store' : 'raw';
      const state = await readState(page, name, via, `writes-${round}`, undefined, storage);
      if (last && last.terminated && wedgedByWebKit(t, state, last.where, figures)) {
        name = `kill-writes-${storage}-${figures.wedged}`;
        live.clear();
        outbox.length = 0;
        last = null;
        round--; // this round again, on the fresh database
        continue;
      }
      const where = last ? last.where : 'round 0';
      assertOpened(state, `${where}, reopened via ${via}`);
      const got = state.ok;
      if (via === 'store') figures.storeOpenMs.push(Math.round(got.openMs));
      debug(`${where}: reopened via ${via} in ${Math.round(got.openMs)} ms; ${got.rows.length} rows, ${got.pending.length} pending`);
      assert.equal(got.integrity, 'ok', `${where}: integrity_check`);
      const rows = new Map(got.rows.map((r) => [r.id, { title: r.title, rank: r.rank, note: r.note }]));
      if (last) {
        // Which parts committed: each whole or not at all, in the order
        // they were sent (the engine applies requests in arrival order),
        // and every part the app was told about is there.
        let prefix = true;
        const committed = [];
        last.units.forEach((u, i) => {
          const answer = last.answers[i];
          if (answer) assert.ok(!answer.error, `${where}: unit ${i} (${u.msg.op}) was refused: ${JSON.stringify(answer.error)}`);
          u.parts.forEach((part, j) => {
            const c = committedPart(part, rows, live, `${where}, unit ${i} part ${j}`);
            if (c) assert.ok(prefix === true, `${where}: unit ${i} part ${j} (${u.msg.op}, ${part.length} writes, answered: ${!!answer}) committed after ${prefix} did not; units: ${last.units.map((v, n) => `${n}:${v.msg.op}/${v.parts.length}${last.answers[n] ? '+' : ''}`).join(' ')}`);
            if (!c && prefix === true) prefix = `unit ${i} part ${j} (${u.msg.op}, ${part.map((w) => w.op).join(',')})`;
            let ids = null;
            if (answer) {
              assert.ok(c, `${where}: unit ${i} part ${j} (${u.msg.op}) was acknowledged but is not in the database`);
              ids = u.msg.op === 'batch' ? answer.result.results[j].result.mutationIds : answer.result.mutationIds;
              assert.equal(ids.length, part.length, `${where}: unit ${i} part ${j}: one mutation id per write`);
            }
            committed.push({ c, part, ids });
          });
          const unitCommitted = committed.slice(-u.parts.length).every((p) => p.c);
          figures.units++;
          if (unitCommitted) figures.unitsCommitted++;
          if (answer) figures.unitsAcked++;
          else if (unitCommitted) figures.lostAnswers++;
        });
        if (prefix !== true) figures.cut++;

        // The model moves by exactly the committed parts; the database
        // must equal it, record for record, and the outbox must hold one
        // pending mutation per committed write, in order, with the
        // acknowledged mutation ids.
        const outboxFrom = outbox.length;
        const expectIds = [];
        for (const { c, part, ids } of committed) {
          if (!c) continue;
          part.forEach((w, k) => {
            if (w.op === 'put') live.set(w.id, { title: w.fields.title, rank: w.fields.rank, note: null });
            else if (w.op === 'patch') live.set(w.id, { ...live.get(w.id), note: w.fields.note });
            else live.delete(w.id);
            outbox.push([w.op, w.id]);
            expectIds.push(ids ? ids[k] : null);
            figures.writesCommitted++;
          });
        }
        got.pending.slice(outboxFrom).forEach((p, k) => {
          if (expectIds[k]) assert.equal(p.m, expectIds[k], `${where}: the outbox entry of an acknowledged write has another mutation id`);
        });
      }
      assert.deepEqual(Object.fromEntries(rows), Object.fromEntries(live), `${where}: the records are not exactly the committed writes`);
      assert.deepEqual(got.pending.map((p) => [p.op, p.id]), outbox, `${where}: the outbox is not exactly one mutation per committed write, in order`);
      assert.ok(got.pending.every((p) => p.collection === 'todos'));
      assert.equal(got.inspect.pendingCount, outbox.length, `${where}: inspect().pendingCount`);
      assert.equal(got.statusPending, outbox.length, `${where}: status().pending`);
      if (round === ROUNDS) break;

      // Write, and kill the worker at a random point. Most kills crash
      // the page's renderer process (CDP Page.crash): the worker stops at
      // whatever instruction it was running — mid-transaction, mid-write,
      // mid-flush — and nothing of it runs again, as when a tab crashes or
      // the browser is killed. Every fourth is worker.terminate() alone,
      // as a closing page does it (the worker finishes the task it is in).
      const units = planRound(next, round, live);
      const killAfter = Math.floor(next() * units.length); // answers to wait for before the kill
      const delay = Math.floor(next() * 30); // then ms
      const crash = canCrash && round % 4 !== 3;
      const answers = units.map(() => null);
      let acked = 0;
      let killed = false;
      acks.on = (i, answer) => {
        if (killed) return;
        answers[i] = answer;
        acked++;
      };
      const opened = await page.evaluate(async ({ name, msgs, tag, storage }) => {
        let w = T.W;
        T.W = null;
        if (!w) {
          w = T.rawWorker(tag);
          const o = await w.send('open', { name, schema: T.schema, storage });
          if (o.error) {
            w.terminate();
            return { error: o.error };
          }
        }
        T.killable = w;
        // Each answer goes to the test as it arrives: what the app saw.
        msgs.forEach((m, i) => w.send(m.op, m.args).then((answer) => window.faultsAck(i, answer)));
        return { ok: true };
      }, { name, msgs: units.map((u) => u.msg), tag: `writes-${round}`, storage });
      assert.ok(opened.ok, `round ${round}: the raw worker did not open: ${JSON.stringify(opened.error)}`);
      await waitFor(async () => { await acks.drain(page); return acked >= killAfter; }, 120000, `round ${round}: ${killAfter} answers`);
      await new Promise((r) => setTimeout(r, delay));
      if (crash) {
        killed = true;
        await crashPage(page);
        page = await env.profile.newPage(env.url);
        await acks.prepare(page);
      } else {
        await page.evaluate(() => T.killable.terminate());
        await acks.drain(page);
        killed = true;
      }
      figures.kills++;
      if (crash) figures.crashed++;
      const res = { answers };
      last = {
        units,
        answers: res.answers,
        terminated: !crash,
        where: `round ${round} (seed ${SEED}, ${crash ? 'renderer crashed' : 'worker terminated'} after ${killAfter} answers + ${delay} ms)`,
      };
      debug(`${last.where}: ${units.length} units, ${res.answers.filter(Boolean).length} answered`);
    }
    t.diagnostic(`${figures.kills} kills (${figures.crashed} renderer crashes, ${figures.kills - figures.crashed} by worker.terminate()${figures.wedged ? `, ${figures.wedged} of them leaving the database held by WebKit` : ''}): ${figures.units} units sent (${figures.unitsAcked} acknowledged, all there), ${figures.unitsCommitted} committed (${figures.lostAnswers} of them committed but unanswered), the stream cut short by ${figures.cut} kills; ${figures.writesCommitted} writes in the end, each with its pending mutation; openStore after terminate() ${Math.min(...figures.storeOpenMs)}–${Math.max(...figures.storeOpenMs)} ms`);
    await page.close();
  };

  const ROUNDS = Number(process.env.FAULTS_ROUNDS || 20);
  if (canCrash) {
    test('a worker killed at random points of write batches leaves exactly the committed writes, each batch whole, and their outbox', { timeout: 300000 }, killWrites('opfs', ROUNDS));
    // The IndexedDB fallback under the same kills (fewer rounds: each commit
    // is one IndexedDB transaction, slower than an OPFS flush).
    test('the same on the IndexedDB fallback (storage indexeddb)', { timeout: 300000 }, killWrites('indexeddb', Math.ceil(ROUNDS / 2)));
  } else {
    // Fewer rounds on the other engines (make test's time); every kill a
    // worker.terminate(), on the storage the engine uses by default.
    test(`a worker terminated at random points of write batches leaves exactly the committed writes, each batch whole, and their outbox (${DEFAULT_STORAGE[engine]})`, { timeout: 300000 }, killWrites(DEFAULT_STORAGE[engine], Math.ceil(ROUNDS / 4)));
  }

  // ---------------------------------------------------------------------
  // 2. Worker killed while pull pages are applied.
  // ---------------------------------------------------------------------

  /** serverPages reads the server's changes of token's user as pull pages of limit records (GET /sync/pull, as the engine reads them). */
  async function serverPages(token, limit) {
    const pages = [];
    let cursor = '';
    for (;;) {
      const res = await fetch(`${env.server.url}/sync/pull?cursor=${encodeURIComponent(cursor)}&limit=${limit}`, { headers: { Authorization: `Bearer ${token}` } });
      assert.ok(res.ok, `pull: HTTP ${res.status}`);
      const page = await res.json();
      pages.push(page);
      cursor = page.cursor;
      if (!page.hasMore) return pages;
    }
  }

  /** rowOf is the todos row a remote record state shows as (null when deleted). */
  function rowOf(change) {
    const f = change.fields;
    if (f._deleted?.value === true) return null;
    const v = (name) => (f[name] === undefined ? null : f[name].value);
    return { id: change.id, title: v('title'), rank: v('rank'), note: v('note'), tags: v('tags') };
  }

  /**
   * expectAfter is what the database must hold once pages[0..k-1] are
   * applied (and nothing of the later ones): base ids, and the todos rows
   * of the pulled records (local writes on the ids in `local` override).
   */
  function expectAfter(pages, k) {
    const base = new Map();
    for (const page of pages.slice(0, k)) for (const c of page.changes) base.set(c.id, c);
    const rows = new Map();
    for (const [id, c] of base) {
      const row = rowOf(c);
      if (row) rows.set(id, row);
    }
    return { baseIds: [...base.keys()].sort(), rows };
  }

  const PULL_STATE_SQL = 'SELECT id, title, rank, note, tags FROM todos ORDER BY id';

  test('a worker killed at random points of pull-page applies keeps each page whole, the cursor with it, and the outbox; a later pull converges', { timeout: 300000 }, async (t) => {
    const next = rng(SEED ^ 0x5eed);
    t.diagnostic(`seed ${SEED} (OPFSYNC_FAULTS_SEED=${SEED} replays these plans)`);
    const token = userToken(7);
    const acks = await acksFor(env);
    let page = await env.profile.newPage(env.url);
    await acks.prepare(page);
    const T0 = Date.now();
    const debug = (msg) => process.env.OPFSYNC_TEST_DEBUG && console.error(`[faults pull +${Date.now() - T0} ms] ${msg}`);

    // The server's data: 3,000 records pushed by another (memory) store,
    // then some deleted and some patched, so that pages carry tombstones
    // and records that moved to a later position.
    const N = 3000;
    const seeded = await page.evaluate(async ({ token, N }) => T.attempt(async () => {
      await T.open('seed', { name: 'seed', storage: 'memory', sync: { url: location.origin, token } });
      const s = T.stores.seed;
      const id = (i) => `srv-${String(i).padStart(5, '0')}`;
      for (let b = 0; b < N; b += 1000) {
        const writes = [];
        for (let i = b; i < Math.min(N, b + 1000); i++) writes.push({ op: 'put', collection: 'todos', id: id(i), fields: { title: `server ${i}`, rank: i, tags: { i, even: i % 2 === 0 } } });
        await s.apply(writes);
      }
      const more = [];
      for (let i = 0; i < N; i += 37) more.push({ op: 'delete', collection: 'todos', id: id(i) });
      for (let i = 5; i < N; i += 53) if (i % 37 !== 0) more.push({ op: 'patch', collection: 'todos', id: id(i), fields: { note: 'patched on the server' } });
      await s.apply(more);
      for (let i = 0; i < 20 && s.status().pending > 0; i++) await s.sync();
      const pending = s.status().pending;
      await s.close();
      return pending;
    }), { token, N });
    assert.equal(seeded.ok, 0, `seeding the server: ${JSON.stringify(seeded)}`);
    debug('seeded');

    const figures = { wedged: 0, kills: 0, realKills: 0, cutPages: 0, pagesApplied: 0, rounds: [], stores: 0 };

    /**
     * check opens name after a kill (raw worker, retrying LOCKED), and
     * checks it against pages: integrity ok, the cursor is one a page
     * ended at (or none), base holds exactly the records of the pages up
     * to it, todos shows them (with the local writes over them), the pull
     * state is not left Fetching*, and the outbox is exactly localPending.
     * It resolves to the number of pages applied, or null when WebKit
     * still holds the database (wedgedByWebKit).
     */
    async function check(name, pages, localPending, localRows, where, tag) {
      const state = await readState(page, name, 'raw', tag, PULL_STATE_SQL);
      if (wedgedByWebKit(t, state, where, figures)) return null;
      assertOpened(state, where);
      const got = state.ok;
      assert.equal(got.integrity, 'ok', `${where}: integrity_check`);
      const pull = got.inspect.pull;
      assert.ok(pull.state === 'Idle', `${where}: pull state ${JSON.stringify(pull)} after reopening (a Fetching* state is reset at open)`);
      const k = pull.cursor === '' ? 0 : pages.findIndex((p) => p.cursor === pull.cursor) + 1;
      assert.ok(k > 0 || pull.cursor === '', `${where}: cursor ${pull.cursor} is not one a page ended at (${pages.map((p) => p.cursor).join(', ')})`);
      const want = expectAfter(pages, k);
      const base = await page.evaluate(async () => (await T.W.send('query', { sql: "SELECT id FROM base WHERE collection = 'todos' ORDER BY id" })).result.rows.map((r) => r.id));
      assert.deepEqual(base, want.baseIds, `${where}: base is not exactly the records of the ${k} pages up to the cursor`);
      for (const [id, row] of localRows) {
        if (row) want.rows.set(id, row);
        else want.rows.delete(id);
      }
      assert.deepEqual(Object.fromEntries(got.rows.map((r) => [r.id, r])), Object.fromEntries(want.rows), `${where}: todos is not the ${k} pulled pages with the local writes over them`);
      assert.equal(pull.hydrated, k === pages.length, `${where}: hydrated`);
      assert.deepEqual(got.pending.map((p) => [p.op, p.id, p.m]), localPending, `${where}: the outbox is not exactly the local writes made before the pull`);
      assert.equal(got.inspect.pendingCount, localPending.length);
      assert.equal(got.statusPending, localPending.length);
      return k;
    }

    /** converge opens name with sync through openStore, syncs, and checks that it holds exactly the server's records and an empty outbox. */
    async function converge(name, where) {
      const res = await page.evaluate(async ({ name, token, sql }) => T.attempt(async () => {
        await T.open(name, { name, sync: { url: location.origin, token } });
        const s = T.stores[name];
        for (let i = 0; i < 20 && (i === 0 || s.status().pending > 0); i++) await s.sync();
        // The sync loop runs too (a poke after the push starts another
        // pull): wait for it to settle.
        let pull;
        const deadline = Date.now() + 20000;
        while ((pull = (await s.inspect()).pull).state !== 'Idle' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
        const out = { rows: await s.query(sql), pending: s.status().pending, integrity: await s.integrityCheck(), pull };
        await s.close();
        return out;
      }), { name, token, sql: PULL_STATE_SQL });
      assertOpened(res, where);
      const server = await env.server.pull(token);
      const want = {};
      for (const [key, rec] of Object.entries(server)) {
        const [collection, id] = key.split('/');
        if (collection !== 'todos' || rec._deleted) continue;
        want[id] = { id, title: rec.title ?? null, rank: rec.rank ?? null, note: rec.note ?? null, tags: rec.tags ?? null };
      }
      assert.equal(res.ok.integrity, 'ok', where);
      assert.equal(res.ok.pending, 0, `${where}: the outbox drained`);
      assert.equal(res.ok.pull.state, 'Idle', where);
      assert.deepEqual(Object.fromEntries(res.ok.rows.map((r) => [r.id, r])), want, `${where}: the store did not converge to the server's records`);
      figures.stores++;
    }

    // Phase A: pages the server answered (its real cursors), fed to the
    // engine's apply path through the applyPullPage op, with local writes
    // made before the pull waiting in the outbox. Pages of 300 records.
    const KILLS = Number(process.env.FAULTS_PULL_KILLS || (canCrash ? 6 : 3));
    for (let db = 0; figures.kills < KILLS; db++) {
      const name = `kill-pull-${db}`;
      const pages = await serverPages(token, 300);
      const overlapPut = 'srv-00003'; // a pulled record the user rewrote before the pull
      const overlapDel = 'srv-00010'; // and one the user deleted
      const local = await page.evaluate(async ({ name, db, overlapPut, overlapDel }) => {
        const w = T.rawWorker(`pull-${db}-local`);
        const call = async (op, args) => {
          const a = await w.send(op, args);
          if (a.error) throw new Error(`${op}: ${JSON.stringify(a.error)}`);
          return a.result;
        };
        await call('open', { name, schema: T.schema, storage: 'opfs' });
        const ids = [];
        for (let i = 0; i < 5; i++) ids.push(...(await call('put', { collection: 'todos', record: { id: `local-${db}-${i}`, title: `local ${i}`, rank: 10 + i } })).mutationIds);
        ids.push(...(await call('apply', { writes: Array.from({ length: 10 }, (_, i) => ({ op: 'put', collection: 'todos', id: `local-${db}-b${i}`, fields: { title: `local batch ${i}` } })) })).mutationIds);
        ids.push(...(await call('put', { collection: 'todos', record: { id: overlapPut, title: `rewritten locally in ${db}`, rank: 3 } })).mutationIds);
        ids.push(...(await call('delete', { collection: 'todos', id: overlapDel })).mutationIds);
        await call('close', {});
        w.terminate();
        return ids;
      }, { name, db, overlapPut, overlapDel });
      const localRows = new Map();
      const localPending = [];
      for (let i = 0; i < 5; i++) {
        localRows.set(`local-${db}-${i}`, { id: `local-${db}-${i}`, title: `local ${i}`, rank: 10 + i, note: null, tags: null });
        localPending.push(['put', `local-${db}-${i}`]);
      }
      for (let i = 0; i < 10; i++) {
        localRows.set(`local-${db}-b${i}`, { id: `local-${db}-b${i}`, title: `local batch ${i}`, rank: null, note: null, tags: null });
        localPending.push(['put', `local-${db}-b${i}`]);
      }
      localRows.set(overlapPut, { id: overlapPut, title: `rewritten locally in ${db}`, rank: 3, note: null, tags: null });
      localPending.push(['put', overlapPut]);
      localRows.set(overlapDel, null);
      localPending.push(['delete', overlapDel]);
      localPending.forEach((p, i) => p.push(local[i]));

      let k = 0;
      let where = `${name}, before the pull`;
      let wedged = false;
      for (let round = 0; ; round++) {
        const tag = `pull-${db}-${round}`;
        const done = await check(name, pages, localPending, localRows, where, tag);
        if (done === null) {
          wedged = true;
          break;
        }
        assert.ok(done >= k, `${where}: the cursor went back from page ${k} to ${done}`);
        if (round > 0) figures.rounds.push(done - k);
        k = done;
        if (k === pages.length || figures.kills >= KILLS) {
          // The rest (if any) comes through a real pull from the cursor.
          await page.evaluate(async () => { await T.W.send('close', {}); T.W.terminate(); });
          break;
        }
        const killAfter = Math.floor(next() * 3); // pages answered before the kill
        const delay = Math.floor(next() * 250);
        // As in the write test: most kills crash the renderer (the worker
        // stops mid-instruction), every fourth is worker.terminate().
        const crash = canCrash && round % 4 !== 3;
        where = `${name} round ${round} (seed ${SEED}, from page ${k}, ${crash ? 'renderer crashed' : 'worker terminated'} after ${killAfter} pages + ${delay} ms)`;
        let answered = 0;
        let failed = null;
        let killed = false;
        acks.on = (j, a) => {
          if (killed) return;
          if (a.error) failed = a.error;
          else answered++;
        };
        // The page applies the pages one after another, reporting each
        // answer as it comes.
        await page.evaluate(({ pages, k }) => {
          const w = T.W;
          T.killable = w;
          (async () => {
            for (let j = k; j < pages.length; j++) {
              const a = await w.send('applyPullPage', { page: pages[j] });
              window.faultsAck(j, a);
              if (a.error) return;
            }
          })();
        }, { pages, k });
        await waitFor(async () => { await acks.drain(page); return answered >= Math.min(killAfter, pages.length - k) || failed; }, 120000, `${where}: ${killAfter} pages`);
        await new Promise((r) => setTimeout(r, delay));
        if (crash) {
          killed = true;
          await crashPage(page);
          page = await env.profile.newPage(env.url);
          await acks.prepare(page);
        } else {
          await page.evaluate(() => T.killable.terminate());
          await acks.drain(page);
          killed = true;
        }
        const res = { answered, error: failed };
        assert.ok(!res.error, `${where}: applyPullPage refused: ${JSON.stringify(res.error)}`);
        figures.kills++;
        figures.pagesApplied += res.answered;
        debug(`${where}: ${res.answered} pages answered`);
      }
      if (wedged) continue;
      await converge(name, `${name}: sync after the last kill`);
      debug(`${name} converged`);
    }
    t.diagnostic(`${figures.kills} kills while pages of 300 were applied (${figures.pagesApplied} pages answered before them; pages gained per kill: ${figures.rounds.join(' ')}); ${figures.stores} stores converged to the server after their last kill${figures.wedged ? `; ${figures.wedged} databases left held by WebKit after a terminate()` : ''}`);
    await page.close();
  });

  // ---------------------------------------------------------------------
  // 3. Storage full.
  // ---------------------------------------------------------------------

  test('a full quota rejects writes with STORAGE, writes nothing half, keeps the data readable, and writes work again once there is room', { timeout: 180000, skip: canCrash ? false : `${engine}: lowering the quota needs CDP (Storage.overrideQuotaForOrigin), which only Chromium has; the IndexedDB VFS's QuotaExceededError → STORAGE path is tested in wasm/internal/idb` }, async (t) => {
    const page = await env.profile.newPage(env.url);
    t.after(() => setQuota(page, null).catch(() => {}));
    const opened = await page.evaluate(() => T.attempt(() => T.open('full', { name: 'full' })));
    assertOpened(opened, 'full');
    // What the app was told is stored: id → body.
    const acked = await page.evaluate(async () => {
      const s = T.stores.full;
      const out = {};
      for (let i = 0; i < 40; i++) {
        const body = `kept ${i}`;
        await s.put('drafts', { id: `k${i}`, body });
        out[`k${i}`] = body;
      }
      return out;
    });
    const usage = await page.evaluate(async () => (await navigator.storage.estimate()).usage);
    await setQuota(page, usage + (2 << 20));

    // Fill: 60 KiB puts one by one until one is refused.
    const fill = await page.evaluate(async () => {
      const s = T.stores.full;
      const acked = {};
      let refused = null;
      for (let i = 0; i < 500 && !refused; i++) {
        const big = `${i}:`.padEnd(60 << 10, 'x');
        const r = await T.attempt(() => s.put('drafts', { id: `f${i}`, body: `fill ${i}`, big }));
        if (r.error) refused = { i, ...r.error };
        else acked[`f${i}`] = `fill ${i}`;
      }
      return { acked, refused };
    });
    assert.ok(fill.refused, 'the quota never ran out');
    t.diagnostic(`full after ${Object.keys(fill.acked).length} puts of 60 KiB: ${fill.refused.code}: ${fill.refused.message}`);
    assert.equal(fill.refused.name, 'OpfsyncError');
    assert.equal(fill.refused.code, 'STORAGE', JSON.stringify(fill.refused));
    assert.match(fill.refused.message, /storage is full/);
    Object.assign(acked, fill.acked);

    // Full, a big transaction (apply) and the writes of one tick (one
    // batch) are refused whole; small writes may still fit, or not.
    const tx = await page.evaluate(async () => {
      const s = T.stores.full;
      const big = ''.padEnd(20 << 10, 'y');
      const apply = await T.attempt(() => s.apply(Array.from({ length: 200 }, (_, i) => ({ op: 'put', collection: 'drafts', id: `a${i}`, fields: { body: `apply ${i}`, big } }))));
      const tick = await Promise.all(Array.from({ length: 60 }, (_, i) => T.attempt(() => s.put('drafts', { id: `t${i}`, body: `tick ${i}`, big }))));
      const patchAll = await T.attempt(() => s.apply([{ op: 'patch', collection: 'drafts', id: 'k0', fields: { big: ''.padEnd(900 << 10, 'z') } }]));
      return { apply, tick, patchAll };
    });
    assert.equal(tx.apply.error?.code, 'STORAGE', `a 4 MB apply: ${JSON.stringify(tx.apply)}`);
    assert.match(tx.apply.error.message, /storage is full/);
    for (const r of tx.tick) assert.equal(r.error?.code, 'STORAGE', `a put of the 1.2 MB tick: ${JSON.stringify(r)}`);
    assert.equal(tx.patchAll.error?.code, 'STORAGE', `a 900 KiB patch: ${JSON.stringify(tx.patchAll)}`);

    const readAll = () => page.evaluate(async (label) => T.attempt(async () => {
      const s = T.stores[label];
      return {
        integrity: await s.integrityCheck(),
        rows: await s.query("SELECT id, body, length(big) AS big FROM drafts ORDER BY id"),
        k0: await s.get('drafts', 'k0'),
        pending: (await s.inspect({ limit: 1 })).pendingCount,
        status: s.status().pending,
      };
    }), 'full');
    const expectRows = (extra = {}) => Object.fromEntries(Object.entries({ ...acked, ...extra }).map(([id, body]) => [id, body]));
    const checkIntact = (got, where, extra) => {
      assert.ok(got.ok, `${where}: ${JSON.stringify(got.error)}`);
      assert.equal(got.ok.integrity, 'ok', `${where}: integrity_check`);
      assert.deepEqual(Object.fromEntries(got.ok.rows.map((r) => [r.id, r.body])), expectRows(extra), `${where}: the records are not exactly the acknowledged ones`);
      for (const r of got.ok.rows) assert.equal(r.big, /^[fg]/.test(r.id) ? 60 << 10 : null, `${where}: ${r.id}.big`);
      assert.equal(got.ok.k0.body, 'kept 0');
      const n = Object.keys(expectRows(extra)).length;
      assert.equal(got.ok.pending, n, `${where}: one pending mutation per acknowledged put`);
      assert.equal(got.ok.status, n, `${where}: status().pending`);
    };
    checkIntact(await readAll(), 'after the refused writes (still full)');

    // Room again: the same store writes, without reopening.
    await setQuota(page, null);
    const again = await page.evaluate(async () => T.attempt(async () => {
      const s = T.stores.full;
      await s.put('drafts', { id: 'after', body: 'room again' });
      await s.apply(Array.from({ length: 50 }, (_, i) => ({ op: 'put', collection: 'drafts', id: `r${i}`, fields: { body: `room ${i}` } })));
      return true;
    }));
    assert.ok(again.ok, `writes once the quota is back: ${JSON.stringify(again.error)}`);
    const roomRows = { after: 'room again' };
    for (let i = 0; i < 50; i++) roomRows[`r${i}`] = `room ${i}`;
    checkIntact(await readAll(), 'after the quota came back', roomRows);
    Object.assign(acked, roomRows);

    // Full again, close, and reopen while full: the store opens and reads;
    // a write is refused with STORAGE; with room again it writes.
    const usage2 = await page.evaluate(async () => (await navigator.storage.estimate()).usage);
    await setQuota(page, usage2 + (256 << 10));
    const refill = await page.evaluate(async () => {
      const s = T.stores.full;
      const acked = {};
      for (let i = 0; i < 200; i++) {
        const r = await T.attempt(() => s.put('drafts', { id: `g${i}`, body: `refill ${i}`, big: ''.padEnd(60 << 10, 'w') }));
        if (r.error) return { acked, refused: r.error };
        acked[`g${i}`] = `refill ${i}`;
      }
      return { acked };
    });
    assert.equal(refill.refused?.code, 'STORAGE', JSON.stringify(refill.refused));
    Object.assign(acked, refill.acked);
    const reopened = await page.evaluate(async () => {
      const closed = await T.attempt(() => T.stores.full.close());
      const open = await T.attempt(() => T.open('full', { name: 'full' }));
      const write = open.ok ? await T.attempt(() => T.stores.full.put('drafts', { id: 'while-full', body: 'x', big: ''.padEnd(900 << 10, 'v') })) : null;
      return { closed, open, write };
    });
    t.diagnostic(`reopened while full: close ${JSON.stringify(reopened.closed.error || 'ok')}, open ${JSON.stringify(reopened.open.error || 'ok')}, a 900 KiB put ${JSON.stringify(reopened.write?.error || reopened.write)}`);
    assert.ok(!reopened.closed.error, `close while full: ${JSON.stringify(reopened.closed)}`);
    assertOpened(reopened.open, 'reopening while full');
    assert.equal(reopened.write.error?.code, 'STORAGE', `a 900 KiB put while full: ${JSON.stringify(reopened.write)}`);
    checkIntact(await readAll(), 'after reopening while full');
    await setQuota(page, null);
    const last = await page.evaluate(() => T.attempt(async () => {
      await T.stores.full.put('drafts', { id: 'last', body: 'after reopening' });
      return (await T.stores.full.get('drafts', 'last')).body;
    }));
    assert.equal(last.ok, 'after reopening', JSON.stringify(last));
    await page.evaluate(() => T.stores.full.close());
    await page.close();
  });
});
