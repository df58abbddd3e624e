// report.mjs — turns the benchmark's runs into a summary (medians over the
// repetitions), a markdown table with the ratio of opfsync to sqlite-wasm
// and the targets of the performance issue, and the payload sizes.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { brotliCompressSync, gzipSync, constants } from 'node:zlib';

/**
 * The rows of the table: what each figure is, how to read it from one
 * run, and its target (a ratio to sqlite-wasm, or to Dexie) when it has one.
 */
const ROWS = [
  { key: 'cold', label: 'W0 cold start: new worker → store open (no HTTP cache), ms', get: (r) => r.cold, target: 1.5 },
  { key: 'reopen', label: 'W0 re-open a 11k-record store (HTTP cache warm), ms', get: (r) => r.reopen },
  { key: 'bulk', label: 'W1 apply a 10,000-record pull page (peers: insert in 1 tx), ms', get: (r) => r.bulk, target: 2, beatDexie: true },
  { key: 'put50', label: 'W2 single durable put, call → resolved, p50 ms', get: (r) => r.writes.put.p50, target: 1.5 },
  { key: 'put95', label: 'W2 single durable put, call → resolved, p95 ms', get: (r) => r.writes.put.p95 },
  { key: 'watch50', label: 'W2 put → watch delivered the row, p50 ms', get: (r) => r.writes.watch.p50, target: 1.5 },
  { key: 'watch95', label: 'W2 put → watch delivered the row, p95 ms', get: (r) => r.writes.watch.p95 },
  { key: 'burst', label: 'W2b 100 puts made in one tick, until all resolved (sqlite-wasm: 100 commits), ms', get: (r) => r.burst },
  { key: 'reads', label: 'W3 1,000 get by id, ms', get: (r) => r.reads, target: 2, beatDexie: true },
  { key: 'queries', label: 'W4 100 × top 100 by an indexed field, ms', get: (r) => r.queries, target: 2, beatDexie: true },
  { key: 'patches', label: 'W5 1,000 patches in one batch, ms', get: (r) => r.patches },
  { key: 'push', label: 'W6 push 1,000 pending mutations (sync()), ms', get: (r) => r.sync?.push },
  { key: 'pull', label: 'W6 open + pull 10,000 records until a watch sees them all, ms', get: (r) => r.sync?.pull },
];

/** median of the numbers (NaN-free), or undefined when there are none. */
export function median(xs) {
  const s = xs.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return undefined;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

const safe = (get) => (r) => {
  try {
    return get(r);
  } catch {
    return undefined;
  }
};

const fmt = (x) => (x === undefined ? '–' : x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));

/**
 * report returns {summary, markdown}: summary[row][engine] is the median
 * over the runs; the markdown has the table, the run's facts (meta:
 * browser, reps, cpus, load, commit, date) and, when sizes is given, the
 * payload sizes.
 */
export function report(runs, sizes, meta) {
  const engines = Object.keys(runs);
  const summary = {};
  for (const row of ROWS) {
    summary[row.key] = {};
    for (const e of engines) summary[row.key][e] = median(runs[e].map(safe(row.get)));
  }
  const lines = [];
  lines.push(`| workload | ${engines.join(' | ')} | opfsync / sqlite-wasm | target | met |`);
  lines.push(`| --- | ${engines.map(() => '---:').join(' | ')} | ---: | --- | --- |`);
  for (const row of ROWS) {
    const v = summary[row.key];
    const ratio = v.opfsync !== undefined && v['sqlite-wasm'] ? v.opfsync / v['sqlite-wasm'] : undefined;
    const targets = [];
    const met = [];
    if (row.target) {
      targets.push(`≤ ${row.target}x`);
      if (ratio !== undefined) met.push(ratio <= row.target ? 'yes' : `no (${ratio.toFixed(2)}x)`);
    }
    if (row.beatDexie) {
      targets.push('< Dexie');
      if (v.opfsync !== undefined && v.dexie !== undefined) met.push(v.opfsync < v.dexie ? 'yes' : 'no');
    }
    lines.push(`| ${row.label} | ${engines.map((e) => fmt(v[e])).join(' | ')} | ${ratio === undefined ? '–' : `${ratio.toFixed(2)}x`} | ${targets.join(', ') || '–'} | ${met.join(', ') || '–'} |`);
  }
  lines.push('');
  lines.push(`Medians of ${meta.reps} repetitions; ${meta.browser}; ${meta.cpus}; load average before ${meta.load.before.join(' ')}, after ${meta.load.after.join(' ')}; commit ${meta.commit}; ${meta.date}.`);
  if (!sizes) return { summary, markdown: lines.join('\n') + '\n' };
  lines.push('');
  lines.push('| payload (what a page downloads) | raw | gzip -9 | brotli -11 | target |');
  lines.push('| --- | ---: | ---: | ---: | --- |');
  for (const [name, s] of Object.entries(sizes)) {
    const target = name === 'opfsync' ? `≤ 3 MB gzip: ${s.gzip <= 3e6 ? 'yes' : 'no'}` : '–';
    lines.push(`| ${name} (${s.files.join(', ')}) | ${mb(s.raw)} | ${mb(s.gzip)} | ${mb(s.brotli)} | ${target} |`);
  }
  return { summary, markdown: lines.join('\n') + '\n' };
}

const mb = (n) => `${(n / 1e6).toFixed(2)} MB`;

/** payloads measures what each engine's page downloads: raw, gzip -9 and brotli -11 bytes. */
export async function payloads(root, modules) {
  const sets = {
    opfsync: ['opfsync.wasm', 'wasm_exec.js', 'opfsync.js', 'opfsync-link.js', 'opfsync-worker.js', 'opfsync-io.js'].map((f) => path.join(root, 'web/dist', f)),
    'sqlite-wasm': ['sqlite3.wasm', 'index.mjs'].map((f) => path.join(modules, '@sqlite.org/sqlite-wasm/dist', f)),
    dexie: [path.join(modules, 'dexie/dist/dexie.min.js')],
  };
  const out = {};
  for (const [name, files] of Object.entries(sets)) {
    const s = { files: files.map((f) => path.basename(f)), raw: 0, gzip: 0, brotli: 0 };
    for (const f of files) {
      const buf = await readFile(f);
      s.raw += buf.length;
      s.gzip += gzipSync(buf, { level: 9 }).length;
      s.brotli += brotliCompressSync(buf, { params: { [constants.BROTLI_PARAM_QUALITY]: 11, [constants.BROTLI_PARAM_SIZE_HINT]: buf.length } }).length;
    }
    out[name] = s;
  }
  return out;
}
