// One thin driver per browser engine, all with the same small surface, so a
// scenario written once runs on every engine (engines.test.mjs):
//
//   const browser = await launch(engine)   // 'chromium' | 'firefox' | 'webkit'
//   const page = await browser.open(url)   // waits for the test page's window.T
//   await page.evaluate(fn, arg)           // fn runs in the page; its (awaited) result comes back as JSON
//   await page.reload()                    // same origin, same profile: storage stays
//   await browser.close()                  // removes the profile
//
// Chromium: playwright-core on /usr/bin/chromium. Firefox: puppeteer-core over
// WebDriver BiDi on Debian's firefox-esr. WebKit: Debian's WebKitWebDriver
// (W3C WebDriver, classic) driving WebKitGTK's MiniBrowser under xvfb-run. No
// browser is ever downloaded; a missing one fails with how to install it.
import { spawn } from 'node:child_process';
import { access, mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import puppeteer from 'puppeteer-core';
import { launchProfile, waitFor } from './harness.mjs';

/** ENGINES lists the engines of the matrix, in order. */
export const ENGINES = ['chromium', 'firefox', 'webkit'];

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

/** waitReady polls the page until the test page's module has loaded. */
const waitReady = (evaluate) => waitFor(() => evaluate(() => !!(window.T && window.T.loaded)), 20000, 'the test page to load');

/** launch starts engine on a fresh profile; it resolves to {engine, version, open(url), close()}. */
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
function pageDriver(page) {
  const evaluate = (fn, arg) => page.evaluate(fn, arg);
  return { evaluate, async reload() { await page.reload(); await waitReady(evaluate); }, close: () => page.close() };
}

// Chromium: the harness's profile (launchProfile), as the rest of the suite uses.
async function launchChromium() {
  const profile = await launchProfile();
  return {
    engine: 'chromium',
    version: profile.context.browser()?.version() ?? 'unknown',
    open: async (url) => pageDriver(await profile.newPage(url)),
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
    async open(url) {
      const page = await browser.newPage();
      page.on('console', (m) => {
        if (debug || m.type() === 'error' || m.type() === 'warn') console.error(`[firefox ${m.type()}] ${m.text()}`);
      });
      await page.goto(url);
      const driver = pageDriver(page);
      await waitReady(driver.evaluate);
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
    // W3C Execute Script awaits a returned promise; the function and its
    // argument cross as source text and JSON, as with page.evaluate.
    const evaluate = (fn, arg) => wd('POST', `/session/${sid}/execute/sync`, { script: `return (${fn})(arguments[0])`, args: [arg ?? null] });
    let opened = false;
    return {
      engine: 'webkit',
      version: session.capabilities.browserVersion,
      async open(url) {
        // Classic WebDriver drives one window: the scenario uses one page per browser.
        if (opened) throw new Error('webkit driver: one page per browser');
        opened = true;
        await wd('POST', `/session/${sid}/url`, { url });
        await waitReady(evaluate);
        return {
          evaluate,
          async reload() { await wd('POST', `/session/${sid}/refresh`, {}); await waitReady(evaluate); },
          close: async () => {},
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
