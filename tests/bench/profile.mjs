// profile.mjs — a CPU profile of the opfsync worker during one workload,
// for the README's "why" of a missed target. Run it with
// `make bench-profile [PROFILE_EXPR='…']`, which first builds a wasm that
// keeps its function names (bench-results/opfsync-names.wasm):
//
//   node tests/bench/profile.mjs '<expression run in the bench page>'
//
// The expression runs in pages/bench.html (window.X has the helpers) and
// awaits X.profileGate() where the measured part starts; the profile covers
// the worker (the engine), or the page with PROFILE_TARGET=page, and prints the functions with
// the most self time, and the total per top-level package.
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ROOT } from '../lib/server.mjs';
import { startBench } from './setup.mjs';

const TOP = Number(process.env.PROFILE_TOP || 40);

async function main(expr) {
  // make bench-profile builds a wasm that keeps its function names.
  const bench = await startBench({ wasm: path.join(ROOT, 'bench-results/opfsync-names.wasm') });
  const { context } = bench;
  try {
    const page = await context.newPage();
    page.on('console', (m) => { if (m.type() === 'error') console.error(`[page] ${m.text()}`); });
    await page.goto(`${bench.url}/bench/bench.html`);
    await page.waitForFunction(() => window.B && window.B.loaded);
    const cdp = await context.newCDPSession(page);
    // The worker is started by the expression (openStore); attach to it
    // when it appears and start profiling before the workload runs.
    // The expression awaits X.profileGate() where the measured part starts.
    await page.evaluate(() => {
      window.X.profileGate = () => new Promise((r) => { window.X.profileGo = r; });
    });
    const run = page.evaluate(expr);
    await page.waitForFunction(() => window.X.profileGo);
    let send = (method, params) => cdp.send(method, params);
    if (process.env.PROFILE_TARGET !== 'page') {
      const worker = await waitForWorker(cdp);
      const { sessionId } = await cdp.send('Target.attachToTarget', { targetId: worker.targetId, flatten: false });
      send = rawSession(cdp, sessionId);
    }
    await send('Profiler.enable');
    await send('Profiler.setSamplingInterval', { interval: 200 });
    await send('Profiler.start');
    await page.evaluate('window.X.profileGo()');
    const result = await run;
    const { profile } = await send('Profiler.stop');
    await writeFile(path.join(ROOT, `bench-results/${process.env.PROFILE_TARGET || 'worker'}.cpuprofile`), JSON.stringify(profile));
    console.log(JSON.stringify(result));
    summarize(profile);
  } finally {
    await bench.stop();
  }
}

async function waitForWorker(cdp) {
  for (let i = 0; i < 200; i++) {
    const { targetInfos } = await cdp.send('Target.getTargets');
    const w = targetInfos.find((t) => t.type === 'worker' && t.url.includes('opfsync-worker'));
    if (w) return w;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('no opfsync worker appeared');
}

/** rawSession sends commands to a non-flat child session through Target.sendMessageToTarget. */
function rawSession(cdp, sessionId) {
  let next = 1;
  const waiting = new Map();
  cdp.on('Target.receivedMessageFromTarget', (e) => {
    if (e.sessionId !== sessionId) return;
    const m = JSON.parse(e.message);
    const w = waiting.get(m.id);
    if (!w) return;
    waiting.delete(m.id);
    if (m.error) w.reject(new Error(m.error.message));
    else w.resolve(m.result);
  });
  return (method, params = {}) => new Promise((resolve, reject) => {
    const id = next++;
    waiting.set(id, { resolve, reject });
    cdp.send('Target.sendMessageToTarget', { sessionId, message: JSON.stringify({ id, method, params }) }).catch(reject);
  });
}

/** summarize prints the functions with the most self time and the self time per package. */
function summarize(profile) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map();
  const dt = profile.timeDeltas;
  let total = 0;
  profile.samples.forEach((id, i) => {
    const n = byId.get(id);
    const name = n.callFrame.functionName || `(anonymous ${n.callFrame.url.split('/').pop()})`;
    const d = dt[i] || 0;
    total += d;
    self.set(name, (self.get(name) || 0) + d);
  });
  // Go's wasm names are "<package path with / as _>.<func>" (methods:
  // "pkg.__Type_.Method"); the package ends at the first '.' after its
  // domain ("github.com_…").
  const pkgOf = (name) => {
    if (name.startsWith('(')) return name;
    const from = name.startsWith('github.com_') ? 'github.com_'.length : 0;
    const dot = name.indexOf('.', from);
    return dot < 0 ? name : name.slice(0, dot);
  };
  const pkgs = new Map();
  for (const [name, us] of self) pkgs.set(pkgOf(name), (pkgs.get(pkgOf(name)) || 0) + us);
  const pct = (us) => `${((100 * us) / total).toFixed(1).padStart(5)}%  ${(us / 1000).toFixed(1).padStart(8)} ms`;
  console.log(`\nself time by package (total ${(total / 1000).toFixed(0)} ms):`);
  for (const [p, us] of [...pkgs].sort((a, b) => b[1] - a[1]).slice(0, 25)) console.log(`${pct(us)}  ${p}`);
  console.log(`\ntop ${TOP} functions by self time:`);
  for (const [name, us] of [...self].sort((a, b) => b[1] - a[1]).slice(0, TOP)) console.log(`${pct(us)}  ${name}`);
}

main(process.argv[2]).catch((err) => {
  console.error(err);
  process.exit(1);
});
