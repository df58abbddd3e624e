// The opfsync demo: an offline-first notes app. It uses only the public API
// of ../dist/opfsync.js (see ../dist/opfsync.d.ts). Open the console and try
// `opfsyncDemo.store.query('SELECT * FROM notes')`.
import { deleteStore, openStore } from '../dist/opfsync.js';
import { Inspector } from './inspector.js';
import { hasLegacyData, migrations, seedLegacy } from './legacy.js';
import { EditView, ListView, schema } from './notes.js';
import { Notices, SyncIndicator } from './notices.js';
import { $, el } from './ui.js';

const SETTINGS_KEY = 'opfsync-demo:settings';
const notices = new Notices($('#notices'));

/** Settings: the sync server (default: this page's origin) and the token (default: make run's dev-token). */
function loadSettings() {
  const defaults = { url: location.origin, token: 'dev-token' };
  try {
    const saved = JSON.parse(localStorage.getItem(SETTINGS_KEY) || '{}');
    return { url: typeof saved.url === 'string' && saved.url ? saved.url : defaults.url, token: typeof saved.token === 'string' && saved.token ? saved.token : defaults.token };
  } catch {
    return defaults;
  }
}

/** storeName gives each server + token its own database: two users' notes never mix. */
function storeName({ url, token }) {
  let h = 0x811c9dc5; // FNV-1a
  for (const c of `${url}\n${token}`) h = Math.imul(h ^ c.codePointAt(0), 0x01000193) >>> 0;
  return `notes-${h.toString(16).padStart(8, '0')}`;
}

// --- the service worker: app shell + engine cached for offline use ---------

/**
 * The worker script is ../demo-sw.js (scope: the site root), because the
 * engine's worker (../dist/opfsync-worker.js) is outside /demo/ and a
 * dedicated worker is controlled by the service worker whose scope covers
 * its own URL. See sw.js.
 */
async function registerServiceWorker() {
  if (!('serviceWorker' in navigator)) return;
  navigator.serviceWorker.addEventListener('message', (e) => {
    if (e.data && e.data.type === 'opfsync-demo:update-ready') {
      notices.add({ kind: 'update', key: 'update', title: 'A new version of the app was downloaded.', actions: [{ label: 'Reload', onClick: () => location.reload() }] });
    }
  });
  // Coming back online: check for a new build at once.
  addEventListener('online', () => navigator.serviceWorker.controller?.postMessage({ type: 'opfsync-demo:check' }));
  try {
    await navigator.serviceWorker.register('../demo-sw.js', { scope: '../', updateViaCache: 'none' });
  } catch (err) {
    console.warn('opfsync demo: no service worker, so no offline reloads:', err);
  }
}

/** appCache asks the controlling service worker what it has cached (null if none). */
function appCache() {
  const sw = navigator.serviceWorker?.controller;
  if (!sw) return Promise.resolve(null);
  return new Promise((resolve) => {
    const channel = new MessageChannel();
    const timer = setTimeout(() => resolve(null), 2000);
    channel.port1.onmessage = (e) => {
      clearTimeout(timer);
      resolve(e.data);
    };
    sw.postMessage({ type: 'opfsync-demo:status' }, [channel.port2]);
  });
}

// --- settings dialog ---------------------------------------------------------

function setUpSettings(settings) {
  const dialog = /** @type {HTMLDialogElement} */ ($('#settings'));
  const url = /** @type {HTMLInputElement} */ ($('#settings-url'));
  const token = /** @type {HTMLInputElement} */ ($('#settings-token'));
  $('#settings-open').addEventListener('click', () => {
    url.value = settings.url;
    token.value = settings.token;
    dialog.showModal();
  });
  dialog.addEventListener('close', () => {
    if (dialog.returnValue !== 'save') return;
    localStorage.setItem(SETTINGS_KEY, JSON.stringify({ url: url.value.trim().replace(/\/+$/, ''), token: token.value.trim() }));
    location.reload();
  });
  $('#legacy-seed').addEventListener('click', () => {
    seedLegacy();
    location.reload();
  });
}

/**
 * setUpLocalDelete wires Settings' "Delete local data": close the store,
 * delete its database (deleteStore), reload — the synced notes come back
 * from the server. The dialog says first how many changes are not synced.
 */
function setUpLocalDelete(store, name) {
  const button = /** @type {HTMLButtonElement} */ ($('#local-delete'));
  $('#settings-open').addEventListener('click', () => {
    const n = store.status().pending;
    $('#local-delete-pending').textContent = n ? `${n} change${n === 1 ? '' : 's'} not synced yet will be lost.` : 'Every change is synced.';
  });
  button.addEventListener('click', async () => {
    button.disabled = true;
    try {
      await store.close();
      await deleteStore(name);
      location.reload();
    } catch (err) {
      /** @type {HTMLDialogElement} */ ($('#settings')).close();
      notices.add({
        kind: 'error', key: 'local-delete',
        title: err.code === 'LOCKED' ? 'The notes are open in another tab of this app: close it, then try again.' : `The local data could not be deleted: ${err.message}`,
        actions: [{ label: 'Reload', onClick: () => location.reload() }],
      });
    }
  });
}

// --- start -------------------------------------------------------------------

function fatal(err) {
  $('#boot').hidden = true;
  const why = err && err.code === 'INTERNAL' && /Worker|OPFS|sync access/i.test(err.message)
    ? 'This browser cannot run opfsync yet: it needs a Chromium-based browser (Chrome, Edge, Opera…) with OPFS.'
    : 'The local database could not be opened.';
  $('#main').append(el('div', { className: 'fatal', role: 'alert' }, el('h1', {}, why), el('p', {}, el('code', {}, err && err.code || 'ERROR'), ' ', String(err && err.message || err))));
}

async function main() {
  const settings = loadSettings();
  const name = storeName(settings);
  setUpSettings(settings);
  registerServiceWorker();

  const legacy = hasLegacyData();
  let store;
  try {
    store = await openStore({
      name,
      schema,
      sync: { url: settings.url, token: settings.token },
      migrateLocalStorage: migrations,
    });
  } catch (err) {
    fatal(err);
    return;
  }
  window.opfsyncDemo = { store, settings };
  setUpLocalDelete(store, name);

  const onError = (what, err) => notices.add({ kind: 'error', title: `Something went wrong ${what}`, body: [el('p', {}, el('code', {}, err.code || 'ERROR'), ' ', err.message)] });
  const titleOf = (id) => store.get('notes', id).then((n) => n && n.title, () => null);

  // Sync state, conflicts and refused changes.
  const indicator = new SyncIndicator();
  indicator.update(store.status());
  store.on('status', (s) => indicator.update(s));
  addEventListener('online', () => indicator.update(store.status()));
  addEventListener('offline', () => indicator.update(store.status()));
  store.on('conflict', async (e) => notices.conflict(e, await titleOf(e.id)));
  store.on('rejected', async (e) => notices.rejected(e, await titleOf(e.id)));
  const syncNow = /** @type {HTMLButtonElement} */ ($('#sync-now'));
  syncNow.addEventListener('click', async () => {
    syncNow.disabled = true;
    try {
      await store.sync();
    } catch (err) {
      notices.add({ kind: 'info', key: 'sync', title: err.code === 'NETWORK' ? 'The server cannot be reached. Your changes are kept and will sync later.' : `Sync failed: ${err.message}` });
    } finally {
      syncNow.disabled = false;
    }
  });

  const r = store.migrationReport;
  if (legacy || r.imported || r.skipped || r.errors.length) notices.migration(r);

  new Inspector(store, appCache);
  const list = new ListView(store, onError);
  const editor = new EditView(store, notices, onError);

  // Routes: #/ (the list), #/new, #/note/<id>.
  let editing = false;
  const route = async () => {
    const hash = location.hash || '#/';
    const m = /^#\/note\/(.+)$/.exec(hash);
    if (m || hash === '#/new') {
      editing = true;
      list.hide();
      await editor.open(m ? decodeURIComponent(m[1]) : null);
    } else {
      editor.hide();
      list.show();
      // Back from the editor: focus goes to the list's heading.
      if (editing) $('#list-title').focus();
      editing = false;
    }
  };
  addEventListener('hashchange', route);
  $('#boot').hidden = true;
  await route();
  document.documentElement.dataset.ready = 'true';
}

main();
