// The previous version of this app ("v0") kept its notes in localStorage:
// `notes-v0` is a JSON array of {id, title, text, created (ISO date)}, and the
// starred notes' ids were kept apart in `starred-v0` (a JSON array of ids).
// This module seeds that data (the "legacy" button in Settings) and tells
// openStore how to migrate it.

export const NOTES_KEY = 'notes-v0';
export const STARRED_KEY = 'starred-v0';

/** seedLegacy writes what the old version would have left in localStorage. */
export function seedLegacy() {
  const day = 24 * 3600 * 1000;
  const at = (daysAgo) => new Date(Date.now() - daysAgo * day).toISOString();
  const notes = [
    { id: 'v0-recipes', title: 'Recipes to try', text: 'Shakshuka with feta\nMiso-glazed aubergine\nLemon ricotta pancakes', created: at(41) },
    { id: 'v0-books', title: 'Books', text: 'The Dispossessed — Le Guin\nSeeing Like a State — Scott\nPiranesi — Clarke', created: at(33) },
    { id: 'v0-bike', title: 'Bike service', text: 'Chain is stretched, replace it with the cassette. Check the rear brake pads.', created: at(20) },
    { id: 'v0-gift', title: 'Gift ideas for Sam', text: 'A good chef\'s knife, a pottery class, the new Ottolenghi book.', created: at(12) },
    // The old version sometimes saved a note without an id: the migration
    // skips it and says so in its report, the rest is imported.
    { title: 'Half-saved draft', text: 'This one never got an id.', created: at(5) },
  ];
  localStorage.setItem(NOTES_KEY, JSON.stringify(notes));
  localStorage.setItem(STARRED_KEY, JSON.stringify(['v0-books', 'v0-gift']));
}

/** fromV0 maps an old note to a record of the notes collection. */
function fromV0(n) {
  const created = Date.parse(n && n.created);
  return {
    id: n && typeof n.id === 'string' ? n.id : null, // an item without an id is skipped and reported
    title: n && n.title,
    body: n && n.text,
    created_at: Number.isFinite(created) ? created : Date.now(),
  };
}

/**
 * migrations is openStore's migrateLocalStorage. Each key is imported once
 * (a marker is written in the same transaction as the records) and removed
 * from localStorage only after that commit; a page closed half way imports
 * nothing twice on the next load.
 *
 * The notes come first (inserted with just the fields they have); then
 * starred-v0 in mode 'patch': it only fills `starred` where nobody has set it
 * yet, so a star the user changed since (on this device or another) is never
 * overwritten, and ids of notes that no longer exist are skipped and counted.
 */
export const migrations = [
  { key: NOTES_KEY, collection: 'notes', map: (value) => JSON.parse(value).map(fromV0) },
  { key: STARRED_KEY, collection: 'notes', mode: 'patch', map: (value) => JSON.parse(value).map((id) => ({ id, starred: true })) },
];

/** hasLegacyData says whether the old version's keys are in localStorage (read before openStore migrates them). */
export function hasLegacyData() {
  return localStorage.getItem(NOTES_KEY) !== null || localStorage.getItem(STARRED_KEY) !== null;
}
