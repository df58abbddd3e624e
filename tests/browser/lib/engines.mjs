// One thin driver per browser engine, all with the same small surface, so a
// scenario written once runs on every engine:
//
//   const browser = await launch(engine)     // 'chromium' | 'firefox' | 'webkit'
//   const page = await browser.newPage(url)  // waits for the test page's window.T (or newPage(url, ready): until ready() is true in the page)
//   await page.evaluate(fn, arg)             // fn runs in the page; its (awaited) result comes back as JSON
//   await page.waitForFunction(fn, arg)      // polls fn in the page until it is truthy
//   await page.reload()                      // same origin, same profile: storage stays
//   await page.close()
//   await browser.close()                    // removes the profile
//
// Pages of one browser share its profile (OPFS, IndexedDB, Web Locks,
// BroadcastChannel), like tabs. Chromium: playwright-core on /usr/bin/chromium
// (useBrowser in harness.mjs hands the suites Playwright's own pages there,
// for routing, offline emulation and CDP). Firefox:
// puppeteer-core over WebDriver BiDi on Debian's firefox-esr. WebKit: Debian's
// WebKitWebDriver (W3C WebDriver, classic) driving WebKitGTK's MiniBrowser
// under xvfb-run; each page is a tab, and since classic WebDriver talks to one
// tab at a time, every command switches to its page first (commands of one
// browser run one at a time). No browser is ever downloaded; a missing one
// fails with how to install it.
import { spawn } from 'node:child_process';
import { access, mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import puppeteer from 'puppeteer-core';
import { describe, test } from 'node:test';
import { launchProfile, waitFor } from './harness.mjs';

/** ENGINES lists the engines of the matrix, in order. */
export const ENGINES = ['chromium', 'firefox', 'webkit'];

/**
 * chromiumOnly registers, for every other engine of the suite, the suite's
 * scenarios as skipped tests whose reason says why they cannot run there and
 * what covers that engine instead (visible in the report, never silent). It
 * returns whether Chromium is in the suite.
 */
export function chromiumOnly(suite, scenarios, reason) {
  for (const engine of suiteEngines()) {
    if (engine !== 'chromium') describe(`${suite} [${engine}]`, () => test(scenarios, { skip: `${engine}: ${reason}` }, () => {}));
  }
  return suiteEngines().includes('chromium');
}

/**
 * DEFAULT_STORAGE is the storage a store opened with the default options
 * uses on each engine as tested here (engines.test.mjs probes the features
 * behind it): WebKitGTK 2.50 has no OPFS, so it falls back to IndexedDB.
 */
export const DEFAULT_STORAGE = { chromium: 'opfs', firefox: 'opfs', webkit: 'indexeddb' };

/**
 * suiteEngines returns the engines the suite runs on: ENGINES, or the
 * comma-separated subset in OPFSYNC_ENGINES.
 */
export function suiteEngines() {
  const only = process.env.OPFSYNC_ENGINES;
  if (!only) return ENGINES;
  const picked = only.split(',').map((e) => e.trim()).filter(Boolean);
  for (const e of picked) if (!ENGINES.includes(e)) throw new Error(`OPFSYNC_ENGINES: unknown engine ${e}; one of ${ENGINES.join(', ')}`);
  return picked;
}

const FIREFOX = process.env.FIREFOX || '/usr/bin/firefox-esr';
const WEBKIT_DRIVER = process.env.WEBKIT_DRIVER || '/usr/bin/WebKitWebDriver';
const MINIBROWSER = process.env.MINIBROWSER || '/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser';
const installHint = {
  firefox: `${FIREFOX} (apt-get install firefox-esr)`,
  webkit: `${WEBKIT_DRIVER} and ${MINIBROWSER} (apt-get install webkit2gtk-driver xvfb)`,
};

async function need(engine, ...files) {
  for (const f of files) {
    try {
      await access(f);
    } catch {
      throw new Error(`${engine}: missing ${f}; install ${installHint[engine]} (a browser is never downloaded)`);
    }
  }
}

/** testPageReady is true in the page once the test page's module has loaded (window.T). */
const testPageReady = () => !!(window.T && window.T.loaded);

/** waitReady polls ready in the page (testPageReady by default) until it is true. */
const waitReady = (evaluate, ready = testPageReady) => waitFor(() => evaluate(ready), 30000, 'the page to be ready');

/** launch starts engine on a fresh profile; it resolves to {engine, version, newPage(url), close()}. */
export async function launch(engine) {
  switch (engine) {
    case 'chromium': return launchChromium();
    case 'firefox': return launchFirefox();
    case 'webkit': return launchWebKit();
    default: throw new Error(`unknown engine ${engine}; one of ${ENGINES.join(', ')}`);
  }
}

/**
 * pageDriver wraps a loaded Playwright or Puppeteer page (the two APIs
 * agree on evaluate, reload and close).
 */
function pageDriver(page, ready = testPageReady) {
  const evaluate = (fn, arg) => page.evaluate(fn, arg);
  return {
    evaluate,
    waitForFunction: (fn, arg) => waitForFunction(evaluate, fn, arg),
    async reload() { await page.reload(); await waitReady(evaluate, ready); },
    close: () => page.close(),
  };
}

/** waitForFunction polls fn(arg) in the page (through evaluate) until it is truthy, for 30 s at most. */
function waitForFunction(evaluate, fn, arg) {
  return waitFor(() => evaluate(fn, arg), 30000, `page function ${String(fn).slice(0, 80)}`);
}

// Chromium: the harness's profile (launchProfile), as the rest of the suite uses.
async function launchChromium() {
  const profile = await launchProfile();
  return {
    engine: 'chromium',
    version: profile.context.browser()?.version() ?? 'unknown',
    profile,
    newPage: async (url) => pageDriver(await profile.newPage(url)),
    // (Chromium's suites that need another ready condition use Playwright directly.)
    close: () => profile.close(),
  };
}

async function launchFirefox() {
  await need('firefox', FIREFOX);
  const dir = await mkdtemp(path.join(tmpdir(), 'opfsync-firefox-'));
  const cleanup = () => rm(dir, { recursive: true, force: true });
  const browser = await puppeteer.launch({ browser: 'firefox', executablePath: FIREFOX, headless: true, userDataDir: dir }).catch(async (err) => {
    await cleanup();
    throw err;
  });
  const debug = !!process.env.OPFSYNC_TEST_DEBUG;
  return {
    engine: 'firefox',
    version: (await browser.version()).replace(/^firefox\//, ''),
    async newPage(url, ready = testPageReady) {
      const page = await browser.newPage();
      page.on('console', (m) => {
        if (debug || m.type() === 'error' || m.type() === 'warn') console.error(`[firefox ${m.type()}] ${m.text()}`);
      });
      await page.goto(url);
      const driver = pageDriver(page, ready);
      await waitReady(driver.evaluate, ready);
      return driver;
    },
    async close() {
      await browser.close().catch(() => {});
      await cleanup();
    },
  };
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

async function launchWebKit() {
  await need('webkit', WEBKIT_DRIVER, MINIBROWSER, '/usr/bin/xvfb-run');
  const dir = await mkdtemp(path.join(tmpdir(), 'opfsync-webkit-'));
  const cleanup = () => rm(dir, { recursive: true, force: true });
  const port = await freePort();
  // xvfb-run gives MiniBrowser a display; -a picks a free one. detached: the
  // whole group (xvfb-run, Xvfb, the driver, the browser) is killed at close.
  const proc = spawn('xvfb-run', ['-a', WEBKIT_DRIVER, `--port=${port}`], { stdio: 'ignore', detached: true, env: { ...process.env, XDG_DATA_HOME: dir, XDG_CACHE_HOME: dir } });
  const kill = async () => {
    try { process.kill(-proc.pid, 'SIGKILL'); } catch { /* gone */ }
    await cleanup();
  };
  const base = `http://127.0.0.1:${port}`;
  const wd = async (method, p, body) => {
    const res = await fetch(base + p, { method, headers: { 'content-type': 'application/json' }, body: body && JSON.stringify(body) });
    const j = await res.json();
    if (!res.ok) throw new Error(`WebDriver ${method} ${p}: ${j.value?.error}: ${j.value?.message}`);
    return j.value;
  };
  try {
    await waitFor(() => fetch(`${base}/status`), 20000, 'WebKitWebDriver to start');
    const session = await wd('POST', '/session', { capabilities: { alwaysMatch: {
      'webkitgtk:browserOptions': { binary: MINIBROWSER, args: ['--automation'] },
      timeouts: { script: 120000 },
    } } });
    const sid = session.sessionId;
    // Commands of the session run one at a time; each page's command first
    // switches to its tab (classic WebDriver has one current tab).
    let chain = Promise.resolve();
    let current = null;
    const onPage = (handle, fn) => {
      const run = chain.then(async () => {
        if (current !== handle) {
          await wd('POST', `/session/${sid}/window`, { handle });
          current = handle;
        }
        return fn();
      });
      chain = run.catch(() => {});
      return run;
    };
    // W3C Execute Script awaits a returned promise; the function and its
    // argument cross as source text and JSON, as with page.evaluate.
    const execute = (fn, arg) => wd('POST', `/session/${sid}/execute/sync`, { script: `return (${fn})(arguments[0])`, args: [arg ?? null] });
    let first = await wd('GET', `/session/${sid}/window`); // the session's own tab: the first page
    return {
      engine: 'webkit',
      version: session.capabilities.browserVersion,
      async newPage(url, ready = testPageReady) {
        let handle = first;
        if (handle) first = null;
        else handle = (await onPage(current, () => wd('POST', `/session/${sid}/window/new`, { type: 'tab' }))).handle;
        const evaluate = (fn, arg) => onPage(handle, () => execute(fn, arg));
        await onPage(handle, () => wd('POST', `/session/${sid}/url`, { url }));
        await waitReady(evaluate, ready);
        return {
          evaluate,
          waitForFunction: (fn, arg) => waitForFunction(evaluate, fn, arg),
          async reload() { await onPage(handle, () => wd('POST', `/session/${sid}/refresh`, {})); await waitReady(evaluate, ready); },
          // Closing the session's last tab would end the session, and
          // navigating away may keep the page alive in the back/forward
          // cache: so a blank tab is opened first (the next newPage uses
          // it), then this one is closed.
          close: () => onPage(handle, async () => {
            const open = await wd('GET', `/session/${sid}/window/handles`);
            if (open.length === 1) first = (await wd('POST', `/session/${sid}/window/new`, { type: 'tab' })).handle;
            await wd('DELETE', `/session/${sid}/window`);
            const left = await wd('GET', `/session/${sid}/window/handles`);
            await wd('POST', `/session/${sid}/window`, { handle: left[0] });
            current = left[0];
          }),
        };
      },
      async close() {
        await wd('DELETE', `/session/${sid}`).catch(() => {});
        await kill();
      },
    };
  } catch (err) {
    await kill();
    throw err;
  }
}
