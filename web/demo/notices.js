// The sync indicator in the top bar, and the dismissable notices under it
// (conflicts, refused changes, the migration report, app updates).
import { $, clip, clock, el, show, timeAgo } from './ui.js';

/** Notices renders dismissable notices into a container. */
export class Notices {
  #root;

  /** @param {HTMLElement} root */
  constructor(root) {
    this.#root = root;
  }

  /**
   * add shows a notice and returns a function that removes it.
   * @param {{kind: 'conflict'|'rejected'|'migration'|'update'|'info'|'error', title: string,
   *   body?: Array<Node|string>, actions?: Array<{label: string, onClick: () => void}>, key?: string}} n
   *   key: a notice with the same key replaces the previous one.
   */
  add({ kind, title, body = [], actions = [], key }) {
    if (key) this.#root.querySelector(`[data-key="${CSS.escape(key)}"]`)?.remove();
    const notice = el('div', { className: `notice notice-${kind}`, role: kind === 'error' || kind === 'rejected' ? 'alert' : 'status', 'data-kind': kind, 'data-key': key });
    const dismiss = () => notice.remove();
    notice.append(
      el('div', { className: 'notice-text' }, el('strong', { className: 'notice-title' }, title), ...body),
      el('div', { className: 'notice-actions' },
        ...actions.map((a) => el('button', { type: 'button', className: 'btn btn-small', onclick: () => { dismiss(); a.onClick(); } }, a.label)),
        el('button', { type: 'button', className: 'btn btn-ghost btn-small notice-dismiss', 'aria-label': `Dismiss: ${title}`, onclick: dismiss }, 'Dismiss')),
    );
    this.#root.append(notice);
    return dismiss;
  }

  /** conflict shows that the user's edit of one field lost to a newer one made elsewhere. */
  conflict(e, title) {
    this.add({
      kind: 'conflict',
      title: `Conflict in “${clip(title || e.id)}”`,
      body: [
        el('p', {}, `Your change to ${e.field} lost to a newer change made on another device. The newer value is kept.`),
        el('dl', { className: 'conflict-values' },
          el('dt', {}, 'Yours'), el('dd', { className: 'conflict-local' }, show(e.local)),
          el('dt', {}, 'Kept'), el('dd', { className: 'conflict-remote' }, show(e.remote))),
      ],
    });
  }

  /** rejected shows a change the server refused (it was rolled back). */
  rejected(e, title) {
    this.add({
      kind: 'rejected',
      title: `The server refused a change to “${clip(title || e.id)}”`,
      body: [
        el('p', {}, el('code', {}, e.code), ' ', e.message),
        el('p', { className: 'muted' }, 'The change was rolled back on this device.'),
      ],
    });
  }

  /** migration shows the report of the localStorage migration. */
  migration(report) {
    const errors = report.errors || [];
    const nothing = !report.imported && !report.skipped && !errors.length;
    this.add({
      kind: 'migration',
      key: 'migration',
      title: `Migrated from the old version: ${report.imported} imported, ${report.skipped} skipped`,
      body: [
        el('p', {}, nothing
          ? 'The old version\'s localStorage keys were found, but this database imported them before (its migration markers say so): nothing was imported twice, and the keys were removed.'
          : 'Data the previous version kept in localStorage is now in the store (and syncs). The legacy keys were removed after the import committed.'),
        errors.length ? el('ul', { className: 'migration-errors' },
          errors.map((x) => el('li', {}, el('code', {}, x.key), x.id ? ` ${x.id}: ` : ': ', x.reason))) : null,
      ],
    });
  }
}

/**
 * SyncIndicator shows the store's status: online/offline, syncing, pending,
 * last sync (the engine keeps lastSyncAt across reloads).
 */
export class SyncIndicator {
  #root = $('#sync');
  #state = $('#sync-state');
  #pending = $('#sync-pending');
  #last = $('#sync-last');
  #status = null;
  #lastSyncAt = 0;

  constructor() {
    // The relative time ("2 min ago") moves on without events.
    setInterval(() => this.#renderLast(), 10000);
  }

  /** @param {import('../dist/opfsync.js').Status} s */
  update(s) {
    this.#status = s;
    this.#lastSyncAt = Math.max(this.#lastSyncAt, s.lastSyncAt || 0);
    const online = s.online && navigator.onLine;
    let state;
    let text;
    if (!online) [state, text] = ['offline', 'Offline'];
    else if (s.syncing) [state, text] = ['syncing', 'Syncing…'];
    else if (s.error) [state, text] = ['error', 'Sync error'];
    else if (s.pending > 0) [state, text] = ['pending', 'Online'];
    else [state, text] = ['synced', 'Synced'];
    this.#root.dataset.state = state;
    this.#root.dataset.pending = String(s.pending);
    this.#root.title = s.error ? `Last sync error: ${s.error}` : '';
    this.#state.textContent = text;
    this.#pending.hidden = s.pending === 0;
    this.#pending.textContent = `${s.pending} pending`;
    this.#renderLast();
  }

  #renderLast() {
    const at = this.#lastSyncAt;
    this.#last.textContent = at ? `last sync ${timeAgo(at)}` : 'not synced yet';
    this.#last.title = at ? clock(at) : '';
  }
}
