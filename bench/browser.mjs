// Browser benchmark: builds the page, opens it in headless Chromium and measures generation and training tokens/s in the tab, plus the bundle sizes.
//
//   node bench/browser.mjs [--chromium PATH] [--tokens 64] [--steps 20]
//
// Generation: the bundled demo model, prefix [CLS]浣溪沙, seed 3, top-k 8; the rate excludes the first token (kernel
// compilation) and is taken from a second, warm run. Training: the tab's recipe on the Song-ci corpus with the
// demo's size (2 layers, 128 wide, context 64, batch 8); the rate is the page's last reported step.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { buildWeb } from '../scripts/build-web.mjs';
import { serve } from '../scripts/serve.mjs';

const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const tokens = Number(arg('tokens', 64));
const steps = Number(arg('steps', 20));
const tmp = mkdtempSync(path.join(tmpdir(), 'webgpu-lm-bench-'));
const sizes = await buildWeb(path.join(tmp, 'site'));
const server = await serve(path.join(tmp, 'site'), 0);
const browser = await chromium.launch({
  executablePath: arg('chromium', process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'),
  headless: true,
  args: ['--enable-unsafe-webgpu', '--enable-features=Vulkan', '--no-sandbox'],
});
try {
  const page = await browser.newPage();
  await page.goto(`http://127.0.0.1:${server.address().port}/`);
  await page.waitForSelector('body[data-ready=true]', { timeout: 600_000 });
  console.log(`${(await page.textContent('#adapter')).replace(/\s+/g, ' ')}`);
  console.log(`chromium ${browser.version()}`);
  for (const [name, s] of Object.entries(sizes)) console.log(`${name}: ${s.bytes} bytes minified, ${s.gzip} gzipped`);

  await page.fill('#length', String(tokens));
  for (const run of ['cold', 'warm']) {
    await page.click('#generate');
    await page.waitForSelector('#output[data-done=true]', { timeout: 600_000 });
    console.log(`generate (${run}): ${await page.textContent('#gen-stats')}`);
  }

  await page.fill('#train-steps', String(steps));
  await page.click('#train-start');
  await page.waitForSelector('#train-status:has-text("done")', { timeout: 3_600_000 });
  console.log(`train: ${await page.textContent('#train-status')}`);
} finally {
  await browser.close();
  server.close();
  rmSync(tmp, { recursive: true, force: true });
}
