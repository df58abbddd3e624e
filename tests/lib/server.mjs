// The real opfsync-server and the system Chromium, as the browser tests and
// the browser benchmark start them. No npm dependency: tests/browser and
// tests/bench each bring their own playwright-core.
import { spawn } from 'node:child_process';
import { access } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** ROOT is the repository's root folder. */
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
/** CHROMIUM is the browser binary: $CHROMIUM, or the Debian package's. */
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
/** CHROMIUM_ARGS keep headless Chromium quiet, offline from Google and free of background work. */
export const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/** checkChromium rejects with an error saying how to install Chromium when CHROMIUM is missing. */
export async function checkChromium() {
  try {
    await access(CHROMIUM);
  } catch {
    throw new Error(`no Chromium at ${CHROMIUM}: install the Debian package chromium (apt-get install chromium) or set CHROMIUM to a Chromium binary; a browser is never downloaded`);
  }
}

/**
 * spawnServer starts bin/opfsync-server (built by make build) on addr
 * (e.g. '127.0.0.1:0') with the given flags (e.g. ['-db', file, '-token',
 * t, '-static', dir]). It resolves to {url, proc, log()} once the server
 * logged its URL, and rejects with the server's log when it exits or does
 * not start within 10 s.
 */
export function spawnServer(addr, flags) {
  return new Promise((resolve, reject) => {
    let log = '';
    const proc = spawn(path.join(ROOT, 'bin/opfsync-server'), ['-addr', addr, ...flags], { stdio: ['ignore', 'pipe', 'pipe'] });
    const timer = setTimeout(() => reject(new Error(`opfsync-server did not start in 10 s:\n${log}`)), 10000);
    const onData = (chunk) => {
      log += chunk;
      const m = /msg="opfsync-server listening".*url=(\S+)/.exec(log);
      if (m) {
        clearTimeout(timer);
        resolve({ url: m[1], proc, log: () => log });
      }
    };
    proc.stdout.on('data', onData);
    proc.stderr.on('data', onData);
    proc.on('error', (err) => reject(new Error(`opfsync-server: ${err.message} (run make build first)`)));
    proc.on('exit', (code) => reject(new Error(`opfsync-server exited (${code}):\n${log}`)));
  });
}

/** stopServer sends SIGTERM, waits up to 5 s for a graceful exit, then kills. */
export async function stopServer(proc) {
  if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise((r) => proc.on('exit', r));
  proc.kill('SIGTERM');
  await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
  if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
}
