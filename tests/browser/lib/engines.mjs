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
import { chromium } from 'playwright-core';
import puppeteer from 'puppeteer-core';
import { CHROMIUM, CHROMIUM_ARGS } from '../../lib/server.mjs';

/** ENGINES lists the engines of the matrix, in order. */
export const ENGINES = ['chromium', 'firefox', 'webkit'];

const FIREFOX = process.env.FIREFOX || '/usr/bin/firefox-esr';
const WEBKIT_DRIVER = process.env.WEBKIT_DRIVER || '/usr/bin/WebKitWebDriver';
const MINIBROWSER = process.env.MINIBROWSER || '/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser';
const installHint = {
  chromium: `${CHROMIUM} (apt-get install chromium)`,
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
async function waitReady(evaluate) {
  const deadline = Date.now() + 20000;
  while (!(await evaluate(() => !!(window.T && window.T.loaded)).catch(() => false))) {
    if (Date.now() > deadline) throw new Error('the test page did not load within 20 s');
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** launch starts engine on a fresh profile; it resolves to {engine, version, open(url), close()}. */
export async function launch(engine) {
  const dir = await mkdtemp(path.join(tmpdir(), `opfsync-${engine}-`));
  const cleanup = () => rm(dir, { recursive: true, force: true });
  try {
    switch (engine) {
      case 'chromium': return await launchChromium(dir, cleanup);
      case 'firefox': return await launchFirefox(dir, cleanup);
      case 'webkit': return await launchWebKit(dir, cleanup);
      default: throw new Error(`unknown engine ${engine}; one of ${ENGINES.join(', ')}`);
    }
  } catch (err) {
    await cleanup();
    throw err;
  }
}

function logConsole(engine) {
  const debug = !!process.env.OPFSYNC_TEST_DEBUG;
  return (type, text) => {
    if (debug || type === 'error' || type === 'warning' || type === 'warn') console.error(`[${engine} ${type}] ${text}`);
  };
}

async function launchChromium(dir, cleanup) {
  await need('chromium', CHROMIUM);
  const context = await chromium.launchPersistentContext(dir, { executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  const log = logConsole('chromium');
  return {
    engine: 'chromium',
    version: context.browser()?.version() ?? (await versionOf(CHROMIUM)),
    async open(url) {
      const page = await context.newPage();
      page.on('console', (m) => log(m.type(), m.text()));
      page.on('worker', (w) => w.on('console', (m) => log(m.type(), m.text())));
      await page.goto(url);
      const evaluate = (fn, arg) => page.evaluate(fn, arg);
      await waitReady(evaluate);
      return { evaluate, async reload() { await page.reload(); await waitReady(evaluate); }, close: () => page.close() };
    },
    async close() {
      await context.close().catch(() => {});
      await cleanup();
    },
  };
}

async function launchFirefox(dir, cleanup) {
  await need('firefox', FIREFOX);
  const browser = await puppeteer.launch({ browser: 'firefox', executablePath: FIREFOX, headless: true, userDataDir: dir });
  const log = logConsole('firefox');
  return {
    engine: 'firefox',
    version: (await browser.version()).replace(/^firefox\//, ''),
    async open(url) {
      const page = await browser.newPage();
      page.on('console', (m) => log(m.type(), m.text()));
      await page.goto(url);
      const evaluate = (fn, arg) => page.evaluate(fn, arg);
      await waitReady(evaluate);
      return { evaluate, async reload() { await page.reload(); await waitReady(evaluate); }, close: () => page.close() };
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

async function launchWebKit(dir, cleanup) {
  await need('webkit', WEBKIT_DRIVER, MINIBROWSER, '/usr/bin/xvfb-run');
  const port = await freePort();
  // xvfb-run gives MiniBrowser a display; -a picks a free one. detached: the
  // whole group (xvfb-run, Xvfb, the driver, the browser) is killed at close.
  const proc = spawn('xvfb-run', ['-a', WEBKIT_DRIVER, `--port=${port}`], { stdio: 'ignore', detached: true, env: { ...process.env, XDG_DATA_HOME: dir, XDG_CACHE_HOME: dir } });
  const kill = () => { try { process.kill(-proc.pid, 'SIGKILL'); } catch { /* gone */ } };
  const base = `http://127.0.0.1:${port}`;
  const wd = async (method, p, body) => {
    const res = await fetch(base + p, { method, headers: { 'content-type': 'application/json' }, body: body && JSON.stringify(body) });
    const j = await res.json();
    if (!res.ok) throw new Error(`WebDriver ${method} ${p}: ${j.value?.error}: ${j.value?.message}`);
    return j.value;
  };
  try {
    const deadline = Date.now() + 20000;
    for (;;) {
      try {
        await fetch(`${base}/status`);
        break;
      } catch {
        if (Date.now() > deadline) throw new Error('WebKitWebDriver did not start within 20 s');
        await new Promise((r) => setTimeout(r, 100));
      }
    }
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
        kill();
        await cleanup();
      },
    };
  } catch (err) {
    kill();
    throw err;
  }
}

async function versionOf(bin) {
  return new Promise((resolve) => {
    const p = spawn(bin, ['--version'], { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    p.stdout.on('data', (d) => { out += d; });
    p.on('close', () => resolve(out.trim()));
    p.on('error', () => resolve('unknown'));
  });
}
