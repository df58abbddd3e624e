// Renders the demo's PNG icons from web/demo/icons/icon.svg in headless
// system Chromium (make icons): icon-192.png and icon-512.png (transparent
// corners), and maskable-512.png (full-bleed background, the glyph inside
// the safe zone). The PNGs are committed; run this after editing the SVG.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { CHROMIUM, ROOT } from './lib/harness.mjs';

const dir = path.join(ROOT, 'web/demo/icons');
const svg = await readFile(path.join(dir, 'icon.svg'), 'utf8');
// Maskable: no rounded corners, and the glyph scaled into the central 80 %.
const maskable = svg
  .replace(/<rect id="bg"([^>]*) rx="\d+"/, '<rect id="bg"$1')
  .replace('<g id="glyph">', '<g id="glyph" transform="translate(256 256) scale(0.78) translate(-256 -256)">');
if (maskable === svg) throw new Error('icon.svg: no <rect id="bg" rx=…> or <g id="glyph"> to build the maskable icon from');

const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu'] });
try {
  const page = await browser.newPage();
  for (const [file, source, size] of [['icon-192.png', svg, 192], ['icon-512.png', svg, 512], ['maskable-512.png', maskable, 512]]) {
    await page.setViewportSize({ width: size, height: size });
    const sized = source.replace(/width="512" height="512"/, `width="${size}" height="${size}"`);
    await page.setContent(`<!doctype html><style>html,body{margin:0;background:transparent}svg{display:block}</style>${sized}`);
    await page.screenshot({ path: path.join(dir, file), omitBackground: true });
    console.log(`wrote web/demo/icons/${file}`);
  }
} finally {
  await browser.close();
}
