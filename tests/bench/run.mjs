// run.mjs — make bench: the browser benchmark. It starts the real
// opfsync-server (serving web/dist/, these pages and the peers' files),
// runs pages/bench.mjs's suite for every engine and repetition in each
// browser — headless system Chromium on a fresh persistent profile, and
// Firefox ESR (puppeteer-core over WebDriver BiDi) — (engines interleaved, a
// fresh page each time, the HTTP cache cold before each cold start), and
// prints a markdown table per browser of medians with the ratio of opfsync
// to sqlite-wasm; the figures also go to bench-results/.
//
// Environment: BENCH_REPS (default 3), BENCH_ENGINES (comma list, default
// all), BENCH_BROWSERS (default chromium,firefox), BENCH_DEBUG=1 (show the
// pages' console), CHROMIUM (default /usr/bin/chromium), FIREFOX (default
// /usr/bin/firefox-esr).
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { CHROMIUM, ROOT } from '../lib/server.mjs';
import { startBench } from './setup.mjs';
import { payloads, report } from './report.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const REPS = Number(process.env.BENCH_REPS || 3);
const ENGINES = (process.env.BENCH_ENGINES || 'opfsync,opfsync-idb,opfsync-memory,sqlite-wasm,dexie').split(',');
const BROWSERS = (process.env.BENCH_BROWSERS || 'chromium,firefox').split(',');
const FIREFOX = process.env.FIREFOX || '/usr/bin/firefox-esr';
const OUT = path.join(ROOT, 'bench-results');
const DEBUG = !!process.env.BENCH_DEBUG;

const show = (where) => (m) => { if (DEBUG || m.type() === 'error') console.error(`[${where} ${m.type()}] ${m.text()}`); };

/**
 * A browser runner opens the bench page for one engine and repetition with
 * a cold HTTP cache: {name, version, page(rep, engine, url) → Playwright or
 * Puppeteer page, close()}.
 */
function chromiumRunner(bench) {
  const { context } = bench;
  return {
    name: 'chromium',
    version: execFileSync(CHROMIUM, ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim(),
    async page(rep, engine, url) {
      const page = await context.newPage();
      page.on('pageerror', (err) => console.error(`[${engine} page error] ${err.message}`));
      page.on('console', show(engine));
      page.on('worker', (w) => w.on('console', show(`${engine} worker`)));
      await page.goto(url);
      await page.waitForFunction(() => window.B && window.B.loaded);
      const cdp = await context.newCDPSession(page);
      await cdp.send('Network.clearBrowserCache');
      await cdp.detach();
      return page;
    },
    close: async () => {},
  };
}

/**
 * firefoxRunner: a fresh Firefox profile per engine and repetition (no
 * protocol to clear the HTTP cache over BiDi here), so every cold start is
 * cold and the re-open within the suite is warm, as on Chromium.
 */
async function firefoxRunner() {
  const { default: puppeteer } = await import('puppeteer-core');
  let browser = null;
  let dir = null;
  const stop = async () => {
    await browser?.close().catch(() => {});
    if (dir) await rm(dir, { recursive: true, force: true });
    browser = null;
    dir = null;
  };
  const start = async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'opfsync-bench-firefox-'));
    browser = await puppeteer.launch({ browser: 'firefox', executablePath: FIREFOX, headless: true, userDataDir: dir });
  };
  await start();
  const version = `Firefox ${(await browser.version()).replace(/^firefox\//, '')}`;
  let used = false; // the first page gets the browser started above
  return {
    name: 'firefox',
    version,
    async page(rep, engine, url) {
      if (used) {
        await stop();
        await start();
      }
      used = true;
      const page = await browser.newPage();
      page.on('console', show(`firefox ${engine}`));
      await page.goto(url);
      await page.waitForFunction(() => window.B && window.B.loaded);
      return page;
    },
    close: stop,
  };
}

async function main() {
  const tokens = {};
  for (const b of BROWSERS) for (let r = 0; r < REPS; r++) for (const u of ['push', 'pull']) tokens[`bench-${b}-${u}-${r}`] = `bench-${b}-${u}-${r}`;
  const bench = await startBench({ vendor: true, tokens, chromium: BROWSERS.includes('chromium') });
  const results = {};
  try {
    for (const b of BROWSERS) {
      const runner = b === 'chromium' ? chromiumRunner(bench) : b === 'firefox' ? await firefoxRunner() : null;
      if (!runner) throw new Error(`BENCH_BROWSERS: unknown browser ${b} (chromium, firefox)`);
      const loadBefore = os.loadavg();
      const runs = Object.fromEntries(ENGINES.map((e) => [e, []]));
      try {
        for (let rep = 0; rep < REPS; rep++) {
          for (const engine of ENGINES) {
            const page = await runner.page(rep, engine, `${bench.url}/bench/bench.html`);
            const options = { name: `bench-${engine}-${rep}` };
            if (engine === 'opfsync') options.sync = { url: bench.url, pushToken: `bench-${b}-push-${rep}`, pullToken: `bench-${b}-pull-${rep}` };
            const t0 = Date.now();
            const result = await withTimeout(page.evaluate(([e, o]) => window.B.suite(e, o), [engine, options]),
              SUITE_TIMEOUT_MS, `${engine} on ${b} (repetition ${rep + 1})`);
            runs[engine].push(result);
            console.error(`${b} rep ${rep + 1}/${REPS} ${engine}: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
            await page.close();
          }
        }
      } finally {
        await runner.close();
      }
      results[b] = { meta: meta(runner.version, loadBefore), runs };
    }
  } finally {
    await bench.stop();
  }
  const sizes = await payloads(ROOT, path.join(here, 'node_modules'));
  const parts = [];
  const out = { sizes, browsers: {} };
  BROWSERS.forEach((b, i) => {
    const { markdown, summary } = report(results[b].runs, i === BROWSERS.length - 1 ? sizes : null, results[b].meta);
    parts.push(`### ${results[b].meta.browser}\n\n${markdown}`);
    out.browsers[b] = { ...results[b], summary };
  });
  const markdown = parts.join('\n');
  await mkdir(OUT, { recursive: true });
  await writeFile(path.join(OUT, 'browser-bench.json'), JSON.stringify(out, null, 2));
  await writeFile(path.join(OUT, 'browser-bench.md'), markdown);
  console.log(markdown);
}

function meta(browser, loadBefore) {
  return {
    date: new Date().toISOString(),
    browser,
    commit: gitCommit(),
    cpus: `${os.cpus().length} × ${os.cpus()[0]?.model ?? 'unknown'}`,
    load: { before: loadBefore.map((x) => +x.toFixed(2)), after: os.loadavg().map((x) => +x.toFixed(2)) },
    reps: REPS,
  };
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
