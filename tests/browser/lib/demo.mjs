// Helpers for driving the demo (web/demo/) in a page: shared by
// demo.test.mjs and screenshots.mjs.

/** demoReady waits until the demo has opened its store and rendered its first view. */
export const demoReady = (page) => page.waitForSelector('html[data-ready="true"]', { timeout: 30000 });

/** noteCard is the list item of the note titled exactly title. */
export function noteCard(page, title) {
  const exact = new RegExp(`^${title.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`);
  return page.locator('#notes > li').filter({ has: page.locator('.note-title', { hasText: exact }) });
}

/** editNote opens a note's editor from the list, sets its fields ({title?, body?}) and saves. */
export async function editNote(page, title, fields) {
  await noteCard(page, title).locator('a').click();
  if (fields.title !== undefined) await page.getByLabel('Title', { exact: true }).fill(fields.title);
  if (fields.body !== undefined) await page.getByLabel('Note', { exact: true }).fill(fields.body);
  await page.getByRole('button', { name: 'Save', exact: true }).click();
  await noteCard(page, fields.title ?? title).waitFor();
}
