// run.mjs — make bench: the browser benchmark. It starts the real
// opfsync-server (serving web/dist/, these pages and the peers' files),
// opens headless system Chromium on a fresh persistent profile, runs
// pages/bench.mjs's suite for every engine and repetition (engines
// interleaved, a fresh page each time, the HTTP cache cleared before each
// cold start), and prints a markdown table of medians with the ratio of
// opfsync to sqlite-wasm; the figures also go to bench-results/.
//
// Environment: BENCH_REPS (default 3), BENCH_ENGINES (comma list, default
// all), BENCH_DEBUG=1 (show the pages' console), CHROMIUM (default
// /usr/bin/chromium).
import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { CHROMIUM, ROOT } from '../lib/server.mjs';
import { startBench } from './setup.mjs';
import { payloads, report } from './report.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const REPS = Number(process.env.BENCH_REPS || 3);
const ENGINES = (process.env.BENCH_ENGINES || 'opfsync,opfsync-memory,sqlite-wasm,dexie').split(',');
const OUT = path.join(ROOT, 'bench-results');
const DEBUG = !!process.env.BENCH_DEBUG;

async function main() {
  const tokens = {};
  for (let r = 0; r < REPS; r++) for (const u of ['push', 'pull']) tokens[`bench-${u}-${r}`] = `bench-${u}-${r}`;
  const bench = await startBench({ vendor: true, tokens });
  const { context } = bench;
  const loadBefore = os.loadavg();
  const runs = Object.fromEntries(ENGINES.map((e) => [e, []]));
  try {
    for (let rep = 0; rep < REPS; rep++) {
      for (const engine of ENGINES) {
        const page = await context.newPage();
        page.on('pageerror', (err) => console.error(`[${engine} page error] ${err.message}`));
        const show = (where) => (m) => { if (DEBUG || m.type() === 'error') console.error(`[${where} ${m.type()}] ${m.text()}`); };
        page.on('console', show(engine));
        page.on('worker', (w) => w.on('console', show(`${engine} worker`)));
        await page.goto(`${bench.url}/bench/bench.html`);
        await page.waitForFunction(() => window.B && window.B.loaded);
        const cdp = await context.newCDPSession(page);
        await cdp.send('Network.clearBrowserCache');
        await cdp.detach();
        const options = { name: `bench-${engine}-${rep}` };
        if (engine === 'opfsync') options.sync = { url: bench.url, pushToken: `bench-push-${rep}`, pullToken: `bench-pull-${rep}` };
        const t0 = Date.now();
        const result = await withTimeout(page.evaluate(([e, o]) => window.B.suite(e, o), [engine, options]),
          SUITE_TIMEOUT_MS, `${engine} (repetition ${rep + 1})`);
        runs[engine].push(result);
        console.error(`rep ${rep + 1}/${REPS} ${engine}: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
        await page.close();
      }
    }
  } finally {
    await bench.stop();
  }
  const meta = {
    date: new Date().toISOString(),
    chromium: execFileSync(CHROMIUM, ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim(),
    commit: gitCommit(),
    cpus: `${os.cpus().length} × ${os.cpus()[0]?.model ?? 'unknown'}`,
    load: { before: loadBefore.map((x) => +x.toFixed(2)), after: os.loadavg().map((x) => +x.toFixed(2)) },
    reps: REPS,
  };
  const sizes = await payloads(ROOT, path.join(here, 'node_modules'));
  const { markdown, summary } = report(runs, sizes, meta);
  await mkdir(OUT, { recursive: true });
  await writeFile(path.join(OUT, 'browser-bench.json'), JSON.stringify({ meta, summary, sizes, runs }, null, 2));
  await writeFile(path.join(OUT, 'browser-bench.md'), markdown);
  console.log(markdown);
}

/** SUITE_TIMEOUT_MS bounds one engine's suite: a hang fails the run with its name instead of stalling. */
const SUITE_TIMEOUT_MS = 5 * 60 * 1000;

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`the benchmark of ${what} did not finish in ${ms / 1000} s (BENCH_DEBUG=1 shows its progress)`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function gitCommit() {
  try {
    return execFileSync('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
