// setup.mjs — what run.mjs and profile.mjs share: the real opfsync-server
// serving web/dist/ (as /dist/), the bench pages (/bench/) and, when asked,
// the peers' files (/vendor/), and headless system Chromium on a fresh
// persistent profile (the default incognito context keeps OPFS in memory).
import { cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { CHROMIUM, CHROMIUM_ARGS, ROOT, checkChromium, spawnServer, stopServer } from '../lib/server.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));

/**
 * startBench starts the server and (unless chromium is false) Chromium.
 * Options: vendor (copy the peers from tests/bench/node_modules), tokens
 * ({token: user}; default a development token), wasm (a file to serve as
 * dist/opfsync.wasm instead of the built one; missing is reported and
 * skipped). It resolves to {url, context, stop()}; stop ends both and
 * removes the temp folder.
 */
export async function startBench({ vendor = false, tokens = { profile: 'profile' }, wasm = '', chromium: withChromium = true } = {}) {
  if (withChromium) await checkChromium();
  const dir = await mkdtemp(path.join(os.tmpdir(), 'opfsync-bench-'));
  const stat = path.join(dir, 'static');
  await cp(path.join(ROOT, 'web/dist'), path.join(stat, 'dist'), { recursive: true });
  await cp(path.join(here, 'pages'), path.join(stat, 'bench'), { recursive: true });
  if (vendor) {
    const mods = path.join(here, 'node_modules');
    await cp(path.join(mods, '@sqlite.org/sqlite-wasm/dist'), path.join(stat, 'vendor/sqlite-wasm'), { recursive: true });
    await cp(path.join(mods, 'dexie/dist'), path.join(stat, 'vendor/dexie'), { recursive: true });
  }
  if (wasm) {
    await cp(wasm, path.join(stat, 'dist/opfsync.wasm')).catch(() => {
      console.error(`no ${wasm} (make bench-profile builds it): serving the built opfsync.wasm`);
    });
  }
  await writeFile(path.join(dir, 'tokens.json'), JSON.stringify(tokens));
  const server = await spawnServer('127.0.0.1:0', ['-db', path.join(dir, 'server.db'), '-tokens', path.join(dir, 'tokens.json'), '-static', stat]);
  const context = withChromium ? await chromium.launchPersistentContext(path.join(dir, 'profile'), { executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS }) : null;
  return {
    url: server.url,
    context,
    async stop() {
      await context?.close().catch(() => {});
      await stopServer(server.proc);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
