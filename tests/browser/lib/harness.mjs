// Shared set-up of the browser tests: the real opfsync-server on a free
// loopback port serving web/dist/ and the test pages, and headless system
// Chromium profiles (persistent contexts: the default incognito context keeps
// OPFS in memory) driven by playwright-core.
import { cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before } from 'node:test';
import { chromium } from 'playwright-core';
import { CHROMIUM, CHROMIUM_ARGS, ROOT, checkChromium, spawnServer, stopServer } from '../../lib/server.mjs';

export { ROOT, CHROMIUM };
const here = path.dirname(fileURLToPath(import.meta.url));
export const TOKEN = 'browser-test-token';
/** userToken(n) is the bearer token of test user n (1 to 30): each test can have its own data on the server. */
export const userToken = (n) => `browser-test-user-${n}`;

/**
 * startServer copies web/dist/, web/demo/ (with web/demo-sw.js) and
 * tests/browser/pages/ into a temp folder (served as /dist/, /demo/,
 * /demo-sw.js and /pages/, as make run serves web/) and starts
 * bin/opfsync-server on it with a temp database. It resolves to
 * {url, pull(), pause(), resume(), stop()}.
 */
export async function startServer() {
  const dir = await mkdtemp(path.join(tmpdir(), 'opfsync-browser-'));
  const stat = path.join(dir, 'static');
  await cp(path.join(ROOT, 'web/dist'), path.join(stat, 'dist'), { recursive: true });
  await cp(path.join(here, '../pages'), path.join(stat, 'pages'), { recursive: true });
  await cp(path.join(ROOT, 'web/demo'), path.join(stat, 'demo'), { recursive: true });
  await cp(path.join(ROOT, 'web/demo-sw.js'), path.join(stat, 'demo-sw.js'));
  // Another copy of web/dist/ deeper in the tree (the client must work from
  // any folder), and one without opfsync.wasm (a broken deployment).
  await cp(path.join(ROOT, 'web/dist'), path.join(stat, 'assets/v2'), { recursive: true });
  await cp(path.join(ROOT, 'web/dist'), path.join(stat, 'nowasm'), { recursive: true, filter: (src) => !src.endsWith('.wasm') });
  const tokens = {};
  for (let n = 1; n <= 30; n++) tokens[userToken(n)] = `user-${n}`;
  await writeFile(path.join(dir, 'tokens.json'), JSON.stringify(tokens));
  let server = null;
  const flags = ['-db', path.join(dir, 'server.db'), '-token', TOKEN, '-tokens', path.join(dir, 'tokens.json'), '-static', stat];
  const start = async (addr) => {
    server = await spawnServer(addr, flags);
    return server.url;
  };
  const kill = () => stopServer(server?.proc);
  const url = await start('127.0.0.1:0');
  return {
    url,
    dir,
    /** static is the folder served at /. */
    static: stat,
    log: () => server?.log() ?? '',
    /** pull returns the server's records of the user of token: {"collection/id": {field: value}} (tombstoned ones included, with _deleted). */
    async pull(token = TOKEN) {
      const out = {};
      let cursor = '';
      for (;;) {
        const res = await fetch(`${url}/sync/pull?cursor=${encodeURIComponent(cursor)}`, { headers: { Authorization: `Bearer ${token}` } });
        if (!res.ok) throw new Error(`pull: HTTP ${res.status}: ${await res.text()}`);
        const page = await res.json();
        for (const c of page.changes) {
          const rec = {};
          for (const [f, st] of Object.entries(c.fields)) rec[f] = st.value;
          out[`${c.collection}/${c.id}`] = rec;
        }
        cursor = page.cursor;
        if (!page.hasMore) return out;
      }
    },
    /** pause stops the server (nothing answers on its port); resume starts it again on the same port with the same database. */
    pause: kill,
    async resume() {
      await start(new URL(url).host);
    },
    async stop() {
      await kill();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/**
 * launchProfile starts headless Chromium on a fresh persistent profile;
 * options go to launchPersistentContext (e.g. viewport, colorScheme).
 * It resolves to {context, newPage(url), close()}; closing removes the
 * profile.
 */
export async function launchProfile(options = {}) {
  await checkChromium();
  const dir = await mkdtemp(path.join(tmpdir(), 'opfsync-profile-'));
  const context = await chromium.launchPersistentContext(dir, { ...options, executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  const debug = !!process.env.OPFSYNC_TEST_DEBUG;
  return {
    context,
    dir,
    /** newPage opens url and waits for the test page's module to be loaded. */
    async newPage(url) {
      const page = await context.newPage();
      // Errors and warnings of the page and its workers always go to
      // stderr (they explain a failure); everything with OPFSYNC_TEST_DEBUG.
      const show = (where) => (m) => {
        if (debug || m.type() === 'error' || m.type() === 'warning') console.error(`[${where} ${m.type()}] ${m.text()}`);
      };
      page.on('pageerror', (err) => console.error(`[page error] ${err.message}`));
      page.on('console', show('page'));
      page.on('worker', (w) => w.on('console', show('worker')));
      await page.goto(url);
      await page.waitForFunction(() => window.T && window.T.loaded);
      return page;
    },
    async close() {
      await context.close().catch(() => {});
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** waitFor polls fn (async) until it returns a truthy value, or throws after ms. */
export async function waitFor(fn, ms = 10000, what = 'condition') {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what} (last: ${last && last.stack || JSON.stringify(last)})`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * useBrowser registers before/after hooks in the calling suite: a server
 * (startServer) and `profiles` browser profiles, all closed after the suite.
 * On 'chromium' (the default) a profile is launchProfile's (Playwright, with
 * context for routing, offline and CDP); on 'firefox' and 'webkit' it is
 * lib/engines.mjs's driver (newPage, and pages with evaluate,
 * waitForFunction, reload, close). The object it returns is filled in by the
 * before hook: {server, url (of the test page), profile (the first),
 * profiles, engine}.
 */
export function useBrowser(profiles = 1, engine = 'chromium') {
  const env = { server: null, url: '', profiles: [], engine, get profile() { return this.profiles[0]; } };
  before(async () => {
    env.server = await startServer();
    env.url = `${env.server.url}/pages/store.html`;
    if (engine === 'chromium') {
      env.profiles = await Promise.all(Array.from({ length: profiles }, () => launchProfile()));
    } else {
      const { launch } = await import('./engines.mjs');
      env.profiles = await Promise.all(Array.from({ length: profiles }, () => launch(engine)));
    }
  });
  after(async () => {
    await Promise.all(env.profiles.map((p) => p.close()));
    await env.server?.stop();
  });
  return env;
}

// One CDP session per page for setQuota: an override lasts as long as the
// session that made it.
const cdpSessions = new WeakMap();

/**
 * setQuota overrides the storage quota of page's origin (CDP
 * Storage.overrideQuotaForOrigin), so that OPFS writes past it fail with
 * QuotaExceededError as on a full disk; null restores the real quota.
 */
export async function setQuota(page, bytes) {
  let cdp = cdpSessions.get(page);
  if (!cdp) {
    cdp = await page.context().newCDPSession(page);
    cdpSessions.set(page, cdp);
  }
  const params = { origin: new URL(page.url()).origin };
  if (bytes !== null && bytes !== undefined) params.quotaSize = bytes;
  await cdp.send('Storage.overrideQuotaForOrigin', params);
}

/**
 * crashPage crashes page's renderer process (CDP Page.crash) and waits for
 * the crash: the page and its workers stop at whatever instruction they
 * were running — mid-transaction, mid-write, mid-flush — and nothing of
 * them runs again, as when a tab crashes or the browser is killed. The
 * browser releases their OPFS handles; open a new page to go on.
 */
export async function crashPage(page) {
  const cdp = await page.context().newCDPSession(page);
  const crashed = new Promise((resolve) => page.once('crash', resolve));
  cdp.send('Page.crash').catch(() => {}); // answered never: the renderer is gone
  await crashed;
  await page.close().catch(() => {});
}

const ackChannels = new WeakMap();

/**
 * ackChannel exposes `window.faultsAck(...args)` to every page of context
 * and returns {on}: each call runs on(...args) in the test, so what a page
 * saw reaches the test as it happens, even if the page then crashes.
 */
export async function ackChannel(context) {
  let ch = ackChannels.get(context);
  if (!ch) {
    ch = { on: null };
    ackChannels.set(context, ch);
    await context.exposeBinding('faultsAck', (_, ...args) => ch.on?.(...args));
  }
  return ch;
}
