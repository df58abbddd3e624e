// Screenshots of the demo (make screenshots): the real server and headless
// system Chromium, like the browser tests. Writes docs/screenshots/*.png:
// list.png, edit.png, inspector.png (offline, with pending changes),
// conflict.png, migration.png and mobile-dark.png.
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { demoReady as ready, editNote, noteCard as card } from './lib/demo.mjs';
import { ROOT, TOKEN, launchProfile, startServer, waitFor } from './lib/harness.mjs';

const OUT = path.join(ROOT, 'docs/screenshots');
const DESKTOP = { viewport: { width: 1200, height: 800 }, colorScheme: 'light' };
const NOTES = [
  { id: 'lisbon', title: 'Trip to Lisbon', body: 'Book the tram 28 tour early. Pastéis de Belém before 10 am. Ask Marta about restaurants in Alfama.', starred: true, age: 9 },
  { id: 'groceries', title: 'Groceries', body: 'Oat milk, eggs, sourdough, coffee beans, lemons, parmesan', starred: false, age: 1 },
  { id: 'q3', title: 'Q3 planning', body: 'Ship the offline demo. Measure cold start on a low-end phone. Write the migration guide.', starred: true, age: 14 },
  { id: 'books', title: 'Book club — March', body: 'Piranesi by Susanna Clarke. Bring questions about the House and the Other.', starred: false, age: 21 },
  { id: 'plants', title: 'Watering the plants', body: 'Fern: twice a week. Olive tree: when the top soil is dry. Orchid: ice cube on Sundays.', starred: false, age: 30 },
  { id: 'gifts', title: 'Birthday gift ideas', body: 'Pottery class, a good chef\'s knife, the new Ottolenghi book.', starred: false, age: 4 },
  { id: 'cabin', title: 'Wi-Fi at the cabin', body: 'Network cabin-5G. The router is behind the bookshelf; restart it when the lights blink orange.', starred: false, age: 45 },
];

const synced = (page) => page.waitForSelector('#sync[data-state="synced"][data-pending="0"]', { timeout: 30000 });

async function shot(page, name) {
  await page.waitForTimeout(300); // let the last render and the focus ring settle
  await page.screenshot({ path: path.join(OUT, name), animations: 'disabled' });
  console.log(`wrote docs/screenshots/${name}`);
}

/** openDemo opens the demo in a profile, with the server's test token. */
async function openDemo(server, profile) {
  const page = await profile.context.newPage();
  page.on('pageerror', (err) => console.error(`[page error] ${err.message}`));
  await page.goto(`${server.url}/demo/`);
  await ready(page);
  await page.evaluate((token) => localStorage.setItem('opfsync-demo:settings', JSON.stringify({ url: location.origin, token })), TOKEN);
  await page.reload();
  await ready(page);
  return page;
}

await mkdir(OUT, { recursive: true });
const server = await startServer();
const profiles = [];
const profile = async (opts) => {
  const p = await launchProfile(opts);
  profiles.push(p);
  return p;
};
try {
  // The list, synced.
  const a = await openDemo(server, await profile(DESKTOP));
  await a.evaluate(async (notes) => {
    const { store } = window.opfsyncDemo;
    for (const n of notes) {
      await store.put('notes', { id: n.id, title: n.title, body: n.body, starred: n.starred, created_at: Date.now() - n.age * 86400000 });
    }
  }, NOTES);
  await synced(a);
  await card(a, 'Trip to Lisbon').waitFor();
  await a.locator('#sort').selectOption('created');
  await a.waitForTimeout(300);
  await shot(a, 'list.png');

  // The editor.
  await card(a, 'Trip to Lisbon').locator('a').click();
  await a.getByLabel('Note', { exact: true }).click();
  await a.keyboard.press('End');
  await a.keyboard.type(' Day trip to Sintra on Thursday.');
  await shot(a, 'edit.png');
  await a.getByRole('button', { name: 'Save', exact: true }).click();
  await waitFor(async () => /Sintra/.test((await server.pull(TOKEN))['notes/lisbon'].body), 10000, 'the edit on the server');
  await synced(a);

  // Offline with pending changes, the inspector open.
  await a.context().setOffline(true);
  await a.locator('#sync[data-state="offline"]').waitFor();
  await card(a, 'Groceries').getByRole('button', { name: 'Star “Groceries”' }).click();
  await editNote(a, 'Watering the plants', { body: 'Fern: twice a week. Olive tree: when the top soil is dry. Orchid: ice cube on Sundays. Repot the basil.' });
  await editNote(a, 'Groceries', { title: 'Groceries for the weekend' }); // this edit will lose a conflict
  await a.locator('#sync[data-pending="3"]').waitFor();
  await a.getByRole('button', { name: 'Inspector' }).click();
  await a.locator('#insp-outbox[data-pending-count="3"]').waitFor();
  await shot(a, 'inspector.png');
  await a.getByRole('button', { name: 'Close the inspector' }).click();

  // A conflict: another device renames the same note later, then this one comes online.
  const b = await openDemo(server, await profile(DESKTOP));
  await card(b, 'Groceries').waitFor();
  await editNote(b, 'Groceries', { title: 'Groceries (Saturday market)' });
  await synced(b);
  await a.context().setOffline(false);
  await a.locator('.notice-conflict').waitFor({ timeout: 30000 });
  await synced(a);
  await shot(a, 'conflict.png');

  // The migration report: the old version's localStorage, migrated on the next load.
  await b.getByRole('button', { name: 'Settings' }).click();
  await Promise.all([b.waitForEvent('load'), b.getByRole('button', { name: 'Seed legacy data and reload' }).click()]);
  await ready(b);
  await b.locator('.notice-migration').waitFor();
  await b.locator('#sort').selectOption('created');
  await shot(b, 'migration.png');

  // A phone, dark mode.
  const c = await openDemo(server, await profile({ viewport: { width: 390, height: 844 }, colorScheme: 'dark' }));
  await waitFor(async () => (await c.locator('#notes > li').count()) >= 10, 30000, 'the notes on the phone');
  await synced(c);
  await shot(c, 'mobile-dark.png');
} finally {
  await Promise.all(profiles.map((p) => p.close()));
  await server.stop();
}
