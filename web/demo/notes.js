// The two views of the notes app: the list (search, filter, sort, star) and
// the editor. Every read is a live query (store.watch), so a change made in
// another tab, on another device or by a sync shows up without a reload.
import { $, clip, clock, timeAgo } from './ui.js';

/** The app schema: one collection, with indexes for the filter and the sort orders. */
export const schema = {
  version: 1,
  collections: {
    notes: {
      fields: { title: 'text', body: 'text', starred: 'boolean', created_at: 'integer' },
      indexes: [['starred', 'created_at'], ['created_at']],
    },
  },
};

const COLUMNS = 'id, title, body, starred, created_at, _updated_at';
const ORDER = {
  updated: '_updated_at DESC', // the engine keeps _updated_at (newest field stamp) indexed
  created: 'created_at DESC',
  title: 'title COLLATE NOCASE, _updated_at DESC',
};
const LIMIT = 500;

/** listQuery turns the toolbar's state into SQL and its parameters. */
export function listQuery({ q, filter, sort }) {
  const where = [];
  const params = [];
  if (filter === 'starred') {
    where.push('starred = ?');
    params.push(true);
  }
  if (q) {
    const pattern = `%${q.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
    where.push(`(title LIKE ? ESCAPE '\\' OR body LIKE ? ESCAPE '\\')`);
    params.push(pattern, pattern);
  }
  const sql = `SELECT ${COLUMNS} FROM notes${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY ${ORDER[sort] || ORDER.updated} LIMIT ${LIMIT}`;
  return { sql, params };
}

function snippet(body) {
  const text = (body || '').trim().replace(/\s*\n\s*/g, ' · ').replace(/\s+/g, ' ');
  return text.length > 140 ? `${text.slice(0, 140)}…` : text;
}

/** A star toggle: one patch of the starred field. */
export function toggleStar(store, note) {
  return store.patch('notes', note.id, { starred: !note.starred });
}

export class ListView {
  #store;
  #onError;
  #state = { q: '', filter: 'all', sort: 'updated' };
  #stop = null;
  #root = $('#list-view');
  #list = $('#notes');
  #empty = $('#empty');
  #template = /** @type {HTMLTemplateElement} */ ($('#note-item'));
  #rows = [];
  #searchTimer = 0;

  /**
   * @param {import('../dist/opfsync.js').Store} store
   * @param {(what: string, err: Error) => void} onError
   */
  constructor(store, onError) {
    this.#store = store;
    this.#onError = onError;
    const search = /** @type {HTMLInputElement} */ ($('#search'));
    search.addEventListener('input', () => {
      clearTimeout(this.#searchTimer);
      this.#searchTimer = setTimeout(() => this.#set({ q: search.value.trim() }), 150);
    });
    $('#toolbar').addEventListener('submit', (e) => e.preventDefault());
    for (const radio of document.querySelectorAll('input[name="filter"]')) {
      radio.addEventListener('change', (e) => this.#set({ filter: /** @type {HTMLInputElement} */ (e.target).value }));
    }
    $('#sort').addEventListener('change', (e) => this.#set({ sort: /** @type {HTMLSelectElement} */ (e.target).value }));
    store.watch('SELECT count(*) AS total, coalesce(sum(starred = 1), 0) AS starred FROM notes', [], ([c]) => {
      $('#counts').textContent = `${c.total} ${c.total === 1 ? 'note' : 'notes'} · ${c.starred} starred`;
    }, (err) => onError('counting the notes', err));
    // The relative times ("3 min ago") move on without changes.
    setInterval(() => this.#renderTimes(), 30000);
  }

  #renderTimes() {
    for (const time of this.#list.querySelectorAll('.note-time')) time.textContent = `edited ${timeAgo(Number(time.dataset.at))}`;
  }

  show() {
    this.#root.hidden = false;
    if (!this.#stop) this.#subscribe();
  }

  hide() {
    this.#root.hidden = true;
  }

  #set(patch) {
    Object.assign(this.#state, patch);
    $('#list-title').textContent = this.#state.filter === 'starred' ? 'Starred notes' : 'All notes';
    this.#subscribe();
  }

  #subscribe() {
    this.#stop?.();
    const { sql, params } = listQuery(this.#state);
    $('#query-sql').textContent = `${sql}\n-- params: ${JSON.stringify(params)}`;
    this.#stop = this.#store.watch(sql, params, (rows) => {
      this.#rows = rows;
      this.#render();
    }, (err) => this.#onError('loading the notes', err));
    // Which index SQLite picks for this query (EXPLAIN is read-only SQL too).
    this.#store.query(`EXPLAIN QUERY PLAN ${sql}`, params).then((plan) => {
      $('#query-plan').textContent = plan.map((r) => r.detail).join('; ');
    }, () => { $('#query-plan').textContent = 'not available'; });
  }

  #render() {
    const items = this.#rows.map((note) => {
      const li = /** @type {HTMLLIElement} */ (this.#template.content.firstElementChild.cloneNode(true));
      li.dataset.id = note.id;
      const star = /** @type {HTMLButtonElement} */ ($('.star', li));
      const title = note.title || 'Untitled';
      star.setAttribute('aria-pressed', String(!!note.starred));
      star.setAttribute('aria-label', `Star “${clip(title)}”`);
      star.addEventListener('click', () => toggleStar(this.#store, note).catch((err) => this.#onError('starring the note', err)));
      const link = /** @type {HTMLAnchorElement} */ ($('.note-link', li));
      link.href = `#/note/${encodeURIComponent(note.id)}`;
      $('.note-title', li).textContent = title;
      $('.note-snippet', li).textContent = snippet(note.body);
      const time = $('.note-time', li);
      time.dataset.at = String(note._updated_at);
      time.title = clock(note._updated_at);
      return li;
    });
    // A re-render must not lose the keyboard focus (e.g. on a star just pressed).
    const focused = document.activeElement;
    const li = focused && this.#list.contains(focused) ? focused.closest('li') : null;
    const again = li ? `li[data-id="${CSS.escape(li.dataset.id)}"] ${focused.classList.contains('star') ? '.star' : '.note-link'}` : null;
    this.#list.replaceChildren(...items);
    this.#renderTimes();
    if (again) this.#list.querySelector(again)?.focus();
    const { q, filter } = this.#state;
    this.#empty.hidden = items.length > 0;
    this.#empty.textContent = q ? `No note matches “${q}”.` : filter === 'starred' ? 'No starred notes yet: star a note with ★.' : 'No notes yet. Write the first one with “New note”: it works offline too.';
  }
}

export class EditView {
  #store;
  #notices;
  #onError;
  #root = $('#edit-view');
  #form = /** @type {HTMLFormElement} */ ($('#editor'));
  #title = /** @type {HTMLInputElement} */ ($('#edit-title-input'));
  #body = /** @type {HTMLTextAreaElement} */ ($('#edit-body'));
  #star = $('#edit-star');
  #remote = $('#edit-remote');
  /** The note as last loaded (null: a new note). */
  #note = null;
  #latest = null;
  #deleted = false;
  #starred = false;
  #stop = null;

  /**
   * @param {import('../dist/opfsync.js').Store} store
   * @param {import('./notices.js').Notices} notices
   * @param {(what: string, err: Error) => void} onError
   */
  constructor(store, notices, onError) {
    this.#store = store;
    this.#notices = notices;
    this.#onError = onError;
    this.#form.addEventListener('submit', (e) => {
      e.preventDefault();
      this.#save();
    });
    this.#form.addEventListener('keydown', (e) => {
      if ((e.ctrlKey || e.metaKey) && (e.key === 's' || e.key === 'Enter')) {
        e.preventDefault();
        this.#save();
      } else if (e.key === 'Escape') {
        location.hash = '#/';
      }
    });
    this.#star.addEventListener('click', () => this.#toggleStar());
    $('#delete').addEventListener('click', () => this.#delete());
    $('#edit-reload').addEventListener('click', () => this.#fill(this.#latest));
  }

  /** open shows the editor for a note id, or for a new note (id null). */
  async open(id) {
    this.#stop?.();
    this.#stop = null;
    this.#remote.hidden = true;
    this.#deleted = false;
    this.#latest = null;
    if (id === null) {
      this.#note = null;
      this.#fill({ id: null, title: '', body: '', starred: false });
    } else {
      const note = await this.#store.get('notes', id);
      if (!note) {
        this.#notices.add({ kind: 'info', title: 'That note does not exist (any more).' });
        location.hash = '#/';
        return;
      }
      this.#fill(note);
      // Changes made elsewhere while the editor is open: taken as they come
      // while nothing was typed, offered otherwise.
      this.#stop = this.#store.watch(`SELECT ${COLUMNS} FROM notes WHERE id = ?`, [id], ([row]) => {
        this.#deleted = !row;
        if (!row) {
          this.#hint('This note was deleted elsewhere. Saving brings it back.', false);
          return;
        }
        this.#latest = row;
        if (this.#note && row.title === this.#note.title && row.body === this.#note.body) {
          this.#note = row;
          this.#setStar(!!row.starred);
          this.#meta();
        } else if (!this.#dirty()) {
          this.#fill(row);
        } else {
          this.#hint('This note was changed elsewhere while you were editing it.', true);
        }
      }, (err) => this.#onError('loading the note', err));
    }
    this.#root.hidden = false;
    this.#title.focus();
  }

  hide() {
    this.#stop?.();
    this.#stop = null;
    this.#root.hidden = true;
  }

  #fill(note) {
    this.#note = note.id === null ? null : note;
    this.#title.value = note.title || '';
    this.#body.value = note.body || '';
    this.#setStar(!!note.starred);
    this.#remote.hidden = true;
    $('#delete').hidden = this.#note === null;
    this.#meta();
  }

  #hint(text, offerReload) {
    $('#edit-remote-text').textContent = text;
    $('#edit-reload').hidden = !offerReload;
    this.#remote.hidden = false;
  }

  #meta() {
    const n = this.#note;
    $('#edit-meta').textContent = n ? `Created ${clock(n.created_at)} · last edited ${timeAgo(n._updated_at)}` : 'New note: not saved yet.';
  }

  #setStar(on) {
    this.#starred = on;
    this.#star.setAttribute('aria-pressed', String(on));
  }

  #dirty() {
    const n = this.#note || { title: '', body: '' };
    return this.#title.value !== (n.title || '') || this.#body.value !== (n.body || '');
  }

  async #toggleStar() {
    if (!this.#note) {
      this.#setStar(!this.#starred); // a new note: starred when saved
      return;
    }
    try {
      this.#setStar(!this.#starred);
      await this.#store.patch('notes', this.#note.id, { starred: this.#starred });
    } catch (err) {
      this.#onError('starring the note', err);
    }
  }

  async #save() {
    if (!this.#form.reportValidity()) return;
    const title = this.#title.value.trim();
    const body = this.#body.value;
    try {
      if (!this.#note) {
        await this.#store.put('notes', { id: crypto.randomUUID(), title, body, starred: this.#starred, created_at: Date.now() });
      } else if (this.#deleted) {
        // Deleted elsewhere: saving restores it (a put after a delete is a newer write).
        await this.#store.put('notes', { ...this.#note, title, body, starred: this.#starred });
      } else {
        const fields = {};
        if (title !== this.#note.title) fields.title = title;
        if (body !== (this.#note.body || '')) fields.body = body;
        if (Object.keys(fields).length) await this.#store.patch('notes', this.#note.id, fields);
      }
      location.hash = '#/';
    } catch (err) {
      this.#onError('saving the note', err);
    }
  }

  async #delete() {
    const note = this.#note;
    if (!note) return;
    try {
      await this.#store.delete('notes', note.id);
      location.hash = '#/';
      this.#notices.add({
        kind: 'info',
        key: 'deleted',
        title: `Deleted “${clip(note.title || 'Untitled')}”.`,
        // A put after a delete is a newer write of every field: it restores the note everywhere.
        actions: [{ label: 'Undo', onClick: () => this.#store.put('notes', { id: note.id, title: note.title, body: note.body, starred: note.starred, created_at: note.created_at }).catch((err) => this.#onError('restoring the note', err)) }],
      });
    } catch (err) {
      this.#onError('deleting the note', err);
    }
  }
}
