// The inspector: what a developer opens when something looks wrong. It shows
// store.inspect() (client id, collections, outbox, pull state, migration
// markers), store.status() and the service worker's cache, and refreshes on
// every change and status event while it is open.
import { $, clock, coalesce, el, timeAgo } from './ui.js';

const OUTBOX_ROWS = 20;

function short(id) {
  return id.length > 14 ? `${id.slice(0, 8)}…${id.slice(-4)}` : id;
}

function section(title, attrs, ...content) {
  return el('section', { className: 'insp-section', ...attrs }, el('h3', {}, title), ...content);
}

function facts(pairs) {
  return el('dl', { className: 'facts' }, pairs.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, v)]));
}

function table(head, rows, attrs = {}) {
  return el('table', { className: 'insp-table', ...attrs },
    el('thead', {}, el('tr', {}, head.map((h) => el('th', { scope: 'col' }, h)))),
    el('tbody', {}, rows));
}

export class Inspector {
  #store;
  #panel = $('#inspector');
  #body = $('#inspector-body');
  #toggle = $('#inspector-toggle');
  #unsubscribe = [];
  #report;
  #appCache;
  #refresh = coalesce(() => this.#render());

  /**
   * @param {import('../dist/opfsync.js').Store} store
   * @param {() => Promise<object|null>} appCache reports the service worker's cache
   */
  constructor(store, appCache) {
    this.#store = store;
    this.#report = store.migrationReport;
    this.#appCache = appCache;
    this.#toggle.addEventListener('click', () => this.#set(this.#panel.hidden));
    $('#inspector-close').addEventListener('click', () => {
      this.#set(false);
      this.#toggle.focus();
    });
    $('#integrity').addEventListener('click', async () => {
      const out = $('#integrity-result');
      out.textContent = 'checking…';
      try {
        out.textContent = `integrity_check: ${await store.integrityCheck()}`;
      } catch (err) {
        out.textContent = `${err.code}: ${err.message}`;
      }
    });
    $('#export').addEventListener('click', async () => {
      const dump = await store.export();
      const url = URL.createObjectURL(new Blob([JSON.stringify(dump, null, 2)], { type: 'application/json' }));
      el('a', { href: url, download: `opfsync-notes-${new Date().toISOString().slice(0, 19)}.json` }).click();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    });
    if (localStorage.getItem('opfsync-demo:inspector') === 'open') this.#set(true);
  }

  #set(open) {
    this.#panel.hidden = !open;
    this.#toggle.setAttribute('aria-expanded', String(open));
    document.body.classList.toggle('inspecting', open);
    localStorage.setItem('opfsync-demo:inspector', open ? 'open' : 'closed');
    for (const off of this.#unsubscribe) off();
    this.#unsubscribe = [];
    if (!open) return;
    // Live: every commit (writes, sync results, pulls) and every status change.
    this.#unsubscribe = [this.#store.on('change', this.#refresh), this.#store.on('status', this.#refresh)];
    this.#refresh();
  }

  async #render() {
    let info;
    let cache;
    try {
      [info, cache] = await Promise.all([this.#store.inspect({ limit: OUTBOX_ROWS }), this.#appCache()]);
    } catch (err) {
      this.#body.replaceChildren(el('p', { className: 'error' }, `inspect failed: ${err.code || ''} ${err.message}`));
      return;
    }
    const s = this.#store.status();
    const outbox = info.pending.map((m) => el('tr', { 'data-op': m.op, 'data-id': m.id },
      el('td', {}, String(m.seq)),
      el('td', {}, el('span', { className: `op op-${m.op}` }, m.op)),
      el('td', { title: `${m.collection}/${m.id}\nmutation ${m.mutationId}\nhlc ${m.hlc}` }, `${m.collection}/${short(m.id)}`),
      el('td', {}, m.origin),
      el('td', {}, String(m.attempts)),
      el('td', { title: m.lastError }, m.lastError ? el('span', { className: 'last-error' }, m.lastError) : '—')));
    const more = info.pendingCount - info.pending.length;
    const migrations = Object.entries(info.migrations).map(([key, raw]) => {
      let m = {};
      try { m = JSON.parse(raw); } catch { /* shown raw */ }
      return el('tr', {}, el('td', {}, el('code', {}, key)), el('td', {}, String(m.imported ?? '?')), el('td', {}, String(m.skipped ?? '?')), el('td', { title: clock(m.at) }, timeAgo(m.at)));
    });
    const r = this.#report;
    this.#body.replaceChildren(
      section('This client', {}, facts([
        ['client id', el('code', { className: 'client-id' }, info.clientId)],
        ['this tab', s.leader ? 'leader (runs the engine)' : 'follower (asks the leader tab)'],
        ['storage', `${s.storage}, journal ${info.journalMode}`],
        ['mutation version', String(info.version)],
        ['schema', `app v${info.schemaVersion}, engine v${info.engineSchema}`],
      ])),
      section('Sync', {}, facts([
        ['online', s.online ? 'yes' : 'no'],
        ['syncing', s.syncing ? 'yes' : 'no'],
        ['last sync', s.lastSyncAt ? `${timeAgo(s.lastSyncAt)} (${clock(s.lastSyncAt)})` : 'never'],
        ['last error', s.error || '—'],
      ])),
      section('Collections', {}, table(['collection', 'live records'],
        Object.entries(info.collections).map(([name, n]) => el('tr', {}, el('td', {}, name), el('td', { 'data-collection': name }, String(n)))))),
      section(`Outbox: ${info.pendingCount} pending`, { id: 'insp-outbox', 'data-pending-count': info.pendingCount },
        info.pendingCount === 0
          ? el('p', { className: 'muted' }, 'Empty: the server has every change made here.')
          : table(['seq', 'op', 'record', 'origin', 'tries', 'last error'], outbox),
        more > 0 ? el('p', { className: 'muted' }, `and ${more} more`) : null),
      section('Pull', { id: 'insp-pull', 'data-state': info.pull.state }, facts([
        ['state', info.pull.state],
        ['cursor', info.pull.cursor || '(start)'],
        ['epoch', String(info.pull.epoch)],
        ['hydrated', info.pull.hydrated ? 'yes (first full pull done)' : 'no'],
        ['error', info.pull.error || '—'],
      ])),
      section('localStorage migrations', {},
        migrations.length ? table(['key', 'imported', 'skipped', 'when'], migrations) : el('p', { className: 'muted' }, 'No legacy key imported in this database.'),
        r.imported || r.skipped || r.errors.length ? el('p', { className: 'muted' }, `This load: ${r.imported} imported, ${r.skipped} skipped.`) : null),
      section('App cache (service worker)', {}, cache
        ? facts([['version', cache.gen ? `${cache.gen.replace(/^.*gen-/, '')} (${timeAgo(cache.at)})` : 'none yet'], ['files', `${cache.files} cached for offline use`]])
        : el('p', { className: 'muted' }, 'No service worker controls this page (first load, or not supported): offline reloads need one.')),
    );
  }
}
