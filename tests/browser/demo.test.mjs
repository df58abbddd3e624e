// The demo PWA (web/demo/), driven as a person would: set the token, add,
// edit and star notes; go offline with the server stopped, reload (the
// service worker serves the app and the engine, OPFS has the data), edit
// more while the sync indicator counts the pending changes, look at the
// outbox in the inspector; go online and watch it drain; a second browser
// profile sees the result; a changed file on the server reaches the app.
import assert from 'node:assert/strict';
import { appendFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, test } from 'node:test';
import { demoReady as ready, editNote, noteCard as card } from './lib/demo.mjs';
import { TOKEN, useBrowser, waitFor } from './lib/harness.mjs';
import { suiteEngines } from './lib/engines.mjs';

const env = useBrowser(2);

// On Firefox and WebKitGTK the demo is driven through the DOM (element ids,
// click(), input events) instead of Playwright's locators, on a shorter
// path through the same features: the token set in Settings, a note synced,
// the server stopped and the app reloaded from its service worker with the
// note there, a note written offline counted by the sync indicator, and
// synced once the server is back.
for (const engine of suiteEngines().filter((e) => e !== 'chromium')) {
  describe(`demo [${engine}]`, { timeout: 240000 }, () => {
    const envE = useBrowser(1, engine);
    test('the demo: token, a synced note, an offline reload from the service worker, an offline note synced later', { timeout: 200000 }, async () => {
      const demoReady = () => document.documentElement.dataset.ready === 'true' && !window.opfsyncTestOld;
      const page = await envE.profile.newPage(`${envE.server.url}/demo/`, demoReady);
      const syncIs = (state, pending) => page.waitForFunction(([state, pending]) => {
        const el = document.getElementById('sync');
        return el.dataset.state === state && el.dataset.pending === String(pending);
      }, [state, pending]);
      const titles = () => page.evaluate(() => [...document.querySelectorAll('#notes > li .note-title')].map((e) => e.textContent));
      const addNote = async (title, body) => {
        await page.evaluate(() => document.getElementById('new-note').click());
        await page.waitForFunction(() => document.getElementById('edit-title-input')?.offsetParent !== null);
        await page.evaluate(([title, body]) => {
          const set = (id, v) => { const el = document.getElementById(id); el.value = v; el.dispatchEvent(new Event('input', { bubbles: true })); };
          set('edit-title-input', title);
          set('edit-body', body);
          document.getElementById('save').click();
        }, [title, body]);
        await waitFor(async () => (await titles()).includes(title), 20000, `the note ${title} in the list`);
      };

      // Settings: the token (the app reloads).
      await page.evaluate((token) => {
        document.getElementById('settings-open').click();
        const input = document.getElementById('settings-token');
        input.value = token;
        input.dispatchEvent(new Event('input', { bubbles: true }));
        window.opfsyncTestOld = true; // gone once the app reloaded
        document.getElementById('settings-save').click();
      }, TOKEN);
      await waitFor(() => page.evaluate(demoReady).catch(() => false), 30000, 'the app to reload with the token');
      await syncIs('synced', 0);

      await addNote('Groceries', 'Milk, eggs, bread');
      await waitFor(async () => Object.values(await envE.server.pull(TOKEN)).some((r) => r.title === 'Groceries'), 15000, 'the note on the server');
      await waitFor(async () => {
        const c = await appCache(page);
        return c && c.gen && c.files === c.expected;
      }, 30000, 'the service worker to cache the app');

      // The server is gone: only the service worker can load the app.
      await envE.server.pause();
      try {
        await page.evaluate(() => { window.opfsyncTestOld = true; }); // ready again only once reloaded
        await page.reload();
        assert.equal(await page.evaluate(() => !!navigator.serviceWorker.controller), true, 'the offline reload is controlled by the service worker');
        await waitFor(async () => (await titles()).join() === 'Groceries', 20000, 'the note in the list after the offline reload');
        await addNote('Offline idea', 'Written on the train.');
        await waitFor(() => page.evaluate(() => {
          const el = document.getElementById('sync');
          if (el.dataset.pending === '1') return true;
          throw new Error(`the sync indicator shows ${JSON.stringify({ ...el.dataset })} ${el.title}`); // the timeout's message says what it showed
        }), 20000, 'one pending change');
      } finally {
        await envE.server.resume();
      }
      await page.evaluate(() => window.dispatchEvent(new Event('online'))); // the retry need not wait for its backoff
      await syncIs('synced', 0);
      const onServer = Object.values(await envE.server.pull(TOKEN)).map((r) => r.title).sort();
      assert.deepEqual(onServer, ['Groceries', 'Offline idea']);
      await page.close();
    });
  });
}

async function openDemo(profile) {
  const page = await profile.context.newPage();
  page.on('pageerror', (err) => console.error(`[demo page error] ${err.message}`));
  await page.goto(`${env.server.url}/demo/`);
  await ready(page);
  return page;
}

/** reload reloads the page and waits for the app; it returns the navigation's response. */
async function reload(page) {
  const res = await page.reload();
  await ready(page);
  return res;
}

/** useTestToken sets the test server's token in Settings (the app reloads). */
async function useTestToken(page) {
  await page.getByRole('button', { name: 'Settings' }).click();
  assert.equal(await page.getByLabel('Server URL').inputValue(), env.server.url, 'the server URL defaults to the page origin');
  assert.equal(await page.getByLabel('Token').inputValue(), 'dev-token', 'the token defaults to make run\'s dev-token');
  await page.getByLabel('Token').fill(TOKEN);
  await Promise.all([page.waitForEvent('load'), page.getByRole('button', { name: 'Save and reload' }).click()]);
  await ready(page);
}

async function addNote(page, title, body) {
  await page.getByRole('link', { name: 'New note' }).click();
  await page.getByLabel('Title', { exact: true }).fill(title);
  await page.getByLabel('Note', { exact: true }).fill(body);
  await page.getByRole('button', { name: 'Save', exact: true }).click();
  await card(page, title).waitFor();
}

async function deleteNote(page, title) {
  await card(page, title).locator('a').click();
  await page.getByRole('button', { name: 'Delete', exact: true }).click();
  await card(page, title).waitFor({ state: 'detached' });
}

/** expectSync waits until the sync indicator shows state and pending count, and checks its text. */
async function expectSync(page, state, pending) {
  const sync = page.locator(`#sync[data-state="${state}"][data-pending="${pending}"]`);
  await sync.waitFor({ timeout: 30000 });
  const text = (await sync.textContent()).replace(/\s+/g, ' ');
  if (pending > 0) assert.match(text, new RegExp(`\\b${pending} pending\\b`), text);
  else assert.doesNotMatch(await page.locator('#sync-pending').evaluate((el) => el.hidden ? '' : el.textContent), /pending/);
}

/** outbox reads the inspector's outbox: [count, [[op, origin], ...]]. */
async function outbox(page) {
  const section = page.locator('#insp-outbox');
  const count = Number(await section.getAttribute('data-pending-count'));
  const rows = await section.locator('tbody tr').evaluateAll((trs) => trs.map((tr) => [tr.dataset.op, tr.children[3].textContent]));
  return [count, rows];
}

/** appCache asks the page's service worker what it has cached. */
function appCache(page) {
  return page.evaluate(() => new Promise((resolve) => {
    const sw = navigator.serviceWorker.controller;
    if (!sw) return resolve(null);
    const channel = new MessageChannel();
    channel.port1.onmessage = (e) => resolve(e.data);
    sw.postMessage({ type: 'opfsync-demo:status' }, [channel.port2]);
  }));
}

test('the demo works offline from its service worker and syncs when back online', { timeout: 240000 }, async (t) => {
  const [profile, other] = env.profiles;
  const page = await openDemo(profile);
  await useTestToken(page);
  await expectSync(page, 'synced', 0);
  await page.getByText('No notes yet').waitFor();

  // Online: every change reaches the server at once.
  await addNote(page, 'Groceries', 'Milk, eggs, bread');
  await addNote(page, 'Call the plumber', 'The kitchen tap drips.');
  await editNote(page, 'Groceries', { body: 'Milk, eggs, bread, coffee' });
  await card(page, 'Call the plumber').getByRole('button', { name: 'Star “Call the plumber”' }).click();
  await card(page, 'Call the plumber').getByRole('button', { name: 'Star “Call the plumber”', pressed: true }).waitFor();
  await expectSync(page, 'synced', 0);
  await waitFor(async () => Object.values(await env.server.pull(TOKEN)).some((r) => r.title === 'Call the plumber' && r.starred), 10000, 'the star on the server');

  // The service worker has the app shell and the engine.
  const cache = await waitFor(async () => {
    const c = await appCache(page);
    return c && c.gen && c.files === c.expected && c;
  }, 30000, 'the service worker to cache the app');
  assert.ok(cache.files >= 19, `cached files: ${cache.files}`);

  // Offline, and the server is gone: only the service worker can load the app.
  await profile.context.setOffline(true);
  await env.server.pause();
  const offlineLoad = await reload(page);
  assert.ok(offlineLoad.fromServiceWorker(), 'the offline reload was answered by the service worker');
  await expectSync(page, 'offline', 0);
  assert.equal(await page.locator('#notes > li').count(), 2, 'both notes are there after the offline reload');
  assert.equal(await card(page, 'Call the plumber').locator('.star').getAttribute('aria-pressed'), 'true');

  // Offline edits: each is one pending mutation.
  await addNote(page, 'Offline idea', 'Written on the train.');
  await expectSync(page, 'offline', 1);
  await editNote(page, 'Groceries', { title: 'Groceries for Sunday' });
  await expectSync(page, 'offline', 2);
  await card(page, 'Groceries for Sunday').getByRole('button', { name: 'Star “Groceries for Sunday”' }).click();
  await expectSync(page, 'offline', 3);
  await deleteNote(page, 'Call the plumber');
  await expectSync(page, 'offline', 4);
  await page.getByRole('button', { name: 'Undo' }).waitFor(); // the delete offers an undo (not taken)

  // The outbox survives another offline reload, and the inspector shows it.
  assert.ok((await reload(page)).fromServiceWorker());
  await expectSync(page, 'offline', 4);
  await page.getByRole('button', { name: 'Inspector' }).click();
  await page.locator('#insp-outbox[data-pending-count="4"]').waitFor();
  assert.deepEqual(await outbox(page), [4, [['put', 'user'], ['patch', 'user'], ['patch', 'user'], ['delete', 'user']]]);
  assert.match(await page.locator('#inspector').textContent(), /leader \(runs the engine\)/);

  // Back online: the outbox drains.
  await env.server.resume();
  await profile.context.setOffline(false);
  await expectSync(page, 'synced', 0);
  await page.locator('#insp-outbox[data-pending-count="0"]').waitFor({ timeout: 30000 });
  assert.match(await page.locator('#insp-outbox').textContent(), /Empty/);
  const onServer = Object.values(await env.server.pull(TOKEN));
  assert.deepEqual(onServer.filter((r) => !r._deleted).map((r) => [r.title, r.starred]).sort(),
    [['Groceries for Sunday', true], ['Offline idea', false]]);
  assert.ok(onServer.some((r) => r.title === 'Call the plumber' && r._deleted), 'the delete reached the server');

  // A second browser profile on the same server and token sees the result.
  const second = await openDemo(other);
  await useTestToken(second);
  await card(second, 'Groceries for Sunday').waitFor({ timeout: 30000 });
  await card(second, 'Offline idea').waitFor();
  assert.equal(await second.locator('#notes > li').count(), 2);
  assert.equal(await card(second, 'Groceries for Sunday').locator('.star').getAttribute('aria-pressed'), 'true');
  assert.equal(await card(second, 'Groceries for Sunday').locator('.note-snippet').textContent(), 'Milk, eggs, bread, coffee');
  await expectSync(second, 'synced', 0);

  // An edit in the second profile shows up in the first without a reload.
  await editNote(second, 'Offline idea', { body: 'Written on the train, finished at home.' });
  await waitFor(async () => (await card(page, 'Offline idea').locator('.note-snippet').textContent()) === 'Written on the train, finished at home.', 20000, 'the second profile\'s edit in the first');

  // Settings → "Delete local data": the second profile's database is gone
  // (a new client id after the reload), and the synced notes come back.
  await expectSync(second, 'synced', 0);
  const clientBefore = await second.evaluate(() => opfsyncDemo.store.inspect().then((i) => i.clientId));
  await second.getByRole('button', { name: 'Settings' }).click();
  assert.match(await second.locator('#local-delete-pending').textContent(), /Every change is synced/);
  await Promise.all([second.waitForEvent('load'), second.getByRole('button', { name: 'Delete local data and reload' }).click()]);
  await ready(second);
  await card(second, 'Offline idea').waitFor({ timeout: 30000 });
  await card(second, 'Groceries for Sunday').waitFor();
  const clientAfter = await second.evaluate(() => opfsyncDemo.store.inspect().then((i) => i.clientId));
  assert.notEqual(clientAfter, clientBefore, 'the reloaded demo still has the old database');

  // A changed file on the server (a new build) is picked up, whole: at most
  // one load runs the old version.
  await appendFile(path.join(env.server.static, 'demo/app.js'), '\nwindow.demoBuild = "second";\n');
  let res = await reload(page);
  let loads = 1;
  if (await page.evaluate(() => window.demoBuild) !== 'second') {
    await page.getByText('A new version of the app was downloaded.').waitFor({ timeout: 30000 });
    res = await reload(page);
    loads++;
  }
  t.diagnostic(`the changed app.js ran after ${loads} reload(s)`);
  assert.equal(await page.evaluate(() => window.demoBuild), 'second');
  assert.ok(res.fromServiceWorker());
  await card(page, 'Groceries for Sunday').waitFor();
});
