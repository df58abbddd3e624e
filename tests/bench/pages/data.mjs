// The benchmark's data, the same for every engine: records of one table
// "items" (id, title, body, done, rank) with an index on rank.

/** N is the size of each workload: records per bulk apply, writes, reads. */
export const N = { bulk: 10000, writes: 1000, burst: 100, reads: 1000, queries: 100, queryLimit: 100, patches: 1000, push: 1000, pull: 10000 };

/** SCHEMA is the opfsync schema of the benchmark. */
export const SCHEMA = {
  version: 1,
  collections: { items: { fields: { title: 'text', body: 'text', done: 'boolean', rank: 'integer' }, indexes: [['rank']] } },
};

/** SQL_SCHEMA is the same table for engines that take SQL. */
export const SQL_SCHEMA = [
  'CREATE TABLE IF NOT EXISTS items (id TEXT PRIMARY KEY, title TEXT, body TEXT, done INTEGER, rank INTEGER)',
  'CREATE INDEX IF NOT EXISTS items_rank ON items (rank)',
];

/** TOP_SQL is W4's query: the 100 records with the highest rank. */
export const TOP_SQL = `SELECT id, title, body, done, rank FROM items ORDER BY rank DESC LIMIT ${N.queryLimit}`;
/** NEWEST_SQL is what W2's watch follows: the id with the highest rank. */
export const NEWEST_SQL = 'SELECT id FROM items ORDER BY rank DESC LIMIT 1';

const BODY = 'Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore.';

/** record(i) is bulk record i: id "r<i>", rank i. */
export function record(i) {
  return { id: `r${i}`, title: `Item ${i}`, body: BODY, done: i % 3 === 0, rank: i };
}

/** writeRecord(i) is W2's record i: id "w<i>", ranked above every bulk record, so it is the newest. */
export function writeRecord(i) {
  return { id: `w${i}`, title: `Write ${i}`, body: BODY, done: false, rank: 1e6 + i };
}

/** burstRecord(i) is W2b's record i: id "b<i>". */
export function burstRecord(i) {
  return { id: `b${i}`, title: `Burst ${i}`, body: BODY, done: false, rank: -1 - i };
}

/** readIds(n) is W3's n ids: bulk ids in a fixed pseudo-random order. */
export function readIds(n) {
  const ids = [];
  let x = 12345;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) % 2147483648;
    ids.push(`r${x % N.bulk}`);
  }
  return ids;
}

/** patchFields(i) is W5's change to bulk record i. */
export function patchFields(i) {
  return { title: `Patched ${i}`, done: true };
}

/**
 * pullPage(n) is a pull page of n remote records in the wire format
 * (pkg/protocol: {changes: [{collection, id, fields: {f: {value, hlc,
 * origin}}}], cursor, hasMore}; a live record has _deleted: false),
 * stamped by another client.
 */
export function pullPage(n) {
  const wall = String(Date.now()).padStart(13, '0');
  const changes = [];
  for (let i = 0; i < n; i++) {
    const r = record(i);
    const hlc = `${wall}-${String(i % 1000000).padStart(6, '0')}-benchremote`;
    const fields = { _deleted: { value: false, hlc, origin: 'user' } };
    for (const f of ['title', 'body', 'done', 'rank']) fields[f] = { value: r[f], hlc, origin: 'user' };
    changes.push({ collection: 'items', id: r.id, fields });
  }
  return { changes, cursor: `bench-${n}`, hasMore: false };
}

/** percentile(sorted, p) is the p-th percentile (0–100) of ascending numbers. */
export function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

/** summarize(samples) is {p50, p95} of latencies in ms. */
export function summarize(samples) {
  const s = [...samples].sort((a, b) => a - b);
  return { p50: percentile(s, 50), p95: percentile(s, 95), n: s.length };
}
