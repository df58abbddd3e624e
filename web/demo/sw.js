// The demo's service worker: the app starts and finds its data with the
// network off and the server down. Loaded by ../demo-sw.js (importScripts),
// which is registered with the site root as its scope, because the engine's
// dedicated worker (../dist/opfsync-worker.js, and what it loads) lies
// outside /demo/, and a dedicated worker is controlled by the service worker
// whose scope covers the worker's own URL.
//
// Caching: "generations". A generation is one Cache holding every file the
// app needs (FILES), all from one consistent state of the server. Each page
// load (and the page's worker, pinned at its creation) is served from one
// generation, so an old opfsync.wasm is never paired with a new
// wasm_exec.js, nor an old app.js with a new opfsync.js.
//
// - Freshness: on every navigation to the demo (and on install, and when
//   the page comes back online) the worker asks the server for each file's
//   validator (HEAD: its ETag or Last-Modified; a SHA-256 of the body when
//   a server sends neither). All equal: nothing to do. One
//   differs (a rebuild, an edit): a new generation is built — unchanged files
//   are copied from the current one, changed ones downloaded — and the
//   validators are checked again afterwards; if anything moved during the
//   download (a deploy in progress) the new generation is thrown away and
//   the next check tries again. Only a complete generation becomes current
//   (one write of the meta entry).
// - A navigation waits for that check for up to NAV_WAIT_MS, so on a fast
//   network (e.g. make run on localhost) a reload shows a rebuild at once;
//   otherwise the cached app starts, the check goes on, and the page is
//   told (an "update ready" notice) when the new generation is current.
// - Offline or with the server down the check fails fast and the current
//   generation is served: the app and the engine start from the cache, the
//   data is in OPFS.
// - Old generations are deleted once no page or worker pinned to them is
//   left.
// - Only FILES and navigations to the demo are answered. Everything else
//   (/sync/*, /healthz, other pages of the origin) goes to the network
//   untouched.

/* global self, caches, clients */

// The demo folder's URL, set by ../demo-sw.js. (Registered directly, this
// script serves the demo's own files but cannot reach the engine's worker.)
const BASE = self.OPFSYNC_DEMO_BASE || new URL('./', self.location).href;
const SHELL = [
  './', 'app.js', 'notes.js', 'inspector.js', 'notices.js', 'legacy.js', 'ui.js', 'style.css',
  'manifest.webmanifest', 'icons/icon.svg', 'icons/icon-192.png', 'icons/icon-512.png', 'icons/maskable-512.png',
];
const ENGINE = ['opfsync.js', 'opfsync-link.js', 'opfsync-worker.js', 'opfsync-io.js', 'wasm_exec.js', 'opfsync.wasm'].map((f) => `../dist/${f}`);
const FILES = [...SHELL, ...ENGINE].map((f) => new URL(f, BASE).href);
const FILE_SET = new Set(FILES);
const INDEX = new URL('./', BASE).href;
const PREFIX = 'opfsync-demo:';
const META = `${PREFIX}meta`;
const META_KEY = new URL('opfsync-demo-current', BASE).href;
const NAV_WAIT_MS = 1500;

/** @type {{gen: string, validators: Record<string, string>, at: number} | null} */
let current = null;
/** Which generation each page and worker (by client id) is served from. */
const pins = new Map();

async function loadCurrent() {
  if (!current) {
    const hit = await (await caches.open(META)).match(META_KEY);
    current = hit ? await hit.json() : null;
  }
  return current;
}

// --- validators and generations ------------------------------------------------

async function sha256(buf) {
  const d = new Uint8Array(await crypto.subtle.digest('SHA-256', buf));
  return Array.from(d, (b) => b.toString(16).padStart(2, '0')).join('');
}

/**
 * validatorOf a response: its ETag, else its Last-Modified, else (a server
 * that sends neither) the body's SHA-256. Not the length: a compressing
 * proxy may give it to HEAD and not to GET.
 */
async function validatorOf(res) {
  const v = res.headers.get('ETag') || res.headers.get('Last-Modified');
  return v || `sha256:${await sha256(await res.clone().arrayBuffer())}`;
}

async function get(url, method = 'GET') {
  // no-cache: the HTTP cache may answer, but only after the server said
  // its copy is still the current one.
  const res = await fetch(url, { method, cache: 'no-cache', credentials: 'same-origin' });
  if (!res.ok) throw new Error(`${method} ${url}: HTTP ${res.status}`);
  return res;
}

/** serverValidators asks the server for the validators of every file (throws offline). */
async function serverValidators() {
  const out = {};
  await Promise.all(FILES.map(async (url) => {
    const head = await get(url, 'HEAD');
    out[url] = head.headers.get('ETag') || head.headers.get('Last-Modified') ? await validatorOf(head) : await validatorOf(await get(url));
  }));
  return out;
}

let refreshing = null;

/** refresh makes the current generation match the server; one run at a time. */
function refresh() {
  refreshing ??= build().finally(() => { refreshing = null; });
  return refreshing;
}

async function build() {
  const cur = await loadCurrent();
  const seen = await serverValidators();
  if (cur && FILES.every((u) => cur.validators[u] === seen[u])) return false;
  const gen = `${PREFIX}gen-${Date.now()}`;
  const cache = await caches.open(gen);
  try {
    const old = cur ? await caches.open(cur.gen) : null;
    await Promise.all(FILES.map(async (url) => {
      let res = old && cur.validators[url] === seen[url] ? await old.match(url) : undefined;
      if (!res) {
        res = await get(url);
        if (await validatorOf(res) !== seen[url]) throw new Error(`${url} changed during the update`);
      }
      await cache.put(url, res);
    }));
    // A deploy between the first check and the downloads would mix two
    // versions: everything must still be what was checked.
    const again = await serverValidators();
    const moved = FILES.find((u) => again[u] !== seen[u]);
    if (moved) throw new Error(`${moved} changed during the update; the next check tries again`);
  } catch (err) {
    await caches.delete(gen);
    throw err;
  }
  const previous = cur && cur.gen;
  current = { gen, validators: seen, at: Date.now() };
  await (await caches.open(META)).put(META_KEY, new Response(JSON.stringify(current), { headers: { 'Content-Type': 'application/json' } }));
  await prune();
  if (previous) {
    // Pages started from an older generation can reload into this one.
    for (const c of await clients.matchAll({ type: 'window' })) {
      if (pins.get(c.id) !== gen) c.postMessage({ type: 'opfsync-demo:update-ready' });
    }
  }
  return true;
}

/** prune deletes the generations that neither are current nor serve a live page or worker. */
async function prune() {
  const live = new Set((await clients.matchAll({ includeUncontrolled: true, type: 'all' })).map((c) => c.id));
  for (const id of pins.keys()) if (!live.has(id)) pins.delete(id);
  const keep = new Set([current && current.gen, ...pins.values()]);
  for (const name of await caches.keys()) {
    if (name.startsWith(`${PREFIX}gen-`) && !keep.has(name)) await caches.delete(name);
  }
}

// --- serving -------------------------------------------------------------------

function isDemoPage(url) {
  const u = new URL(url);
  const base = new URL(BASE);
  return u.origin === base.origin && (u.pathname === base.pathname || u.pathname === `${base.pathname}index.html`);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function fromGeneration(gen, url) {
  return gen ? (await caches.open(gen)).match(url) : undefined;
}

async function navigate(event) {
  const check = refresh().catch((err) => console.info('opfsync demo sw: no update check:', err.message));
  event.waitUntil(check);
  if (await loadCurrent()) await Promise.race([check, sleep(NAV_WAIT_MS)]);
  const gen = current && current.gen;
  const hit = await fromGeneration(gen, INDEX);
  if (!hit) return fetch(event.request); // not installed yet
  if (event.resultingClientId) pins.set(event.resultingClientId, gen);
  return hit;
}

/**
 * generationFor picks the generation a request is served from: its page's
 * or worker's pinned one. A demo page not pinned yet (it loaded before this
 * worker started) is pinned to the current one; a worker is pinned to the
 * generation of the page that creates it. Anything else: null (network).
 */
async function generationFor(event) {
  let gen = pins.get(event.clientId);
  if (!gen && event.clientId) {
    const client = await clients.get(event.clientId);
    if (client && client.type === 'window' && isDemoPage(client.url) && await loadCurrent()) {
      gen = current.gen;
      pins.set(client.id, gen);
    }
  }
  if (gen && event.request.destination === 'worker' && event.resultingClientId) pins.set(event.resultingClientId, gen);
  return gen || null;
}

async function subresource(event) {
  const hit = await fromGeneration(await generationFor(event), event.request.url);
  return hit || fetch(event.request);
}

self.addEventListener('fetch', (event) => {
  const req = event.request;
  if (req.method !== 'GET') return;
  const url = new URL(req.url);
  if (url.origin !== self.location.origin || url.pathname.startsWith('/sync/') || url.pathname === '/healthz') return;
  if (req.mode === 'navigate') {
    if (isDemoPage(req.url)) event.respondWith(navigate(event));
    return;
  }
  if (url.search === '' && FILE_SET.has(`${url.origin}${url.pathname}`)) event.respondWith(subresource(event));
});

// --- lifecycle and messages ------------------------------------------------------

self.addEventListener('install', (event) => {
  // The first generation is built before this worker counts as installed;
  // a later version of this script reuses it (same validators: nothing to do).
  event.waitUntil(refresh().then(() => self.skipWaiting()));
});

self.addEventListener('activate', (event) => {
  event.waitUntil(clients.claim());
});

self.addEventListener('message', (event) => {
  const type = event.data && event.data.type;
  if (type === 'opfsync-demo:check') {
    event.waitUntil(refresh().catch(() => {}));
  } else if (type === 'opfsync-demo:status' && event.ports[0]) {
    event.waitUntil(loadCurrent().then(async (cur) => {
      const cached = cur ? (await (await caches.open(cur.gen)).keys()).length : 0;
      event.ports[0].postMessage({ gen: cur && cur.gen, at: cur && cur.at, files: cached, expected: FILES.length, pinned: pins.get(event.source && event.source.id) || null });
    }));
  }
});
