// Builds the web page into web/dist: the library bundle (its size reported), the page's script, HTML and CSS, the two demo checkpoints (GPT-2, XLNet) and the Song-ci corpus.
//
//   node scripts/build-web.mjs [--out DIR]      (npm run web:build)
//
// The library bundle, webgpu-lm.js, is src/browser.ts and everything it imports as one minified ES module: the
// file a page imports. The page's own code (web/src) imports the library as that file instead of bundling a copy.

import { execFileSync } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import * as esbuild from 'esbuild';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
/** The demo checkpoints under web/, served under the same names: the GPT-2 the page loads at start and the XLNet of its button. */
const DEMOS = ['demo', 'demo-xlnet'];

/** esbuild settings of both bundles: one minified ES module for browsers, with a source map. */
const BROWSER = { bundle: true, format: 'esm', platform: 'browser', target: 'es2022', minify: true, sourcemap: true, legalComments: 'none', logLevel: 'silent' };

/** Bundles src/browser.ts for browsers; fails on any Node-only import (platform 'browser' resolves no node: modules). */
export async function bundleLibrary(outfile) {
  await esbuild.build({ ...BROWSER, entryPoints: [path.join(root, 'src/browser.ts')], outfile });
}

/** Raw and gzip size of a file in bytes. */
export function sizeOf(file) {
  const bytes = readFileSync(file);
  return { bytes: bytes.length, gzip: gzipSync(bytes, { level: 9 }).length };
}

/** Builds the whole page into `out`; returns the sizes of its two scripts. */
export async function buildWeb(out = path.join(root, 'web/dist')) {
  // Type-check the page against the library first: esbuild only strips types.
  execFileSync(process.execPath, [path.join(root, 'node_modules/typescript/bin/tsc'), '-p', path.join(root, 'web/tsconfig.json')], { stdio: 'inherit' });
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  await bundleLibrary(path.join(out, 'webgpu-lm.js'));
  await esbuild.build({
    ...BROWSER,
    entryPoints: [path.join(root, 'web/src/main.ts')],
    outfile: path.join(out, 'app.js'),
    plugins: [
      {
        name: 'library-as-file',
        setup(build) {
          build.onResolve({ filter: /\/src\/browser\.js$/ }, () => ({ path: './webgpu-lm.js', external: true }));
        },
      },
    ],
  });
  for (const file of ['index.html', 'style.css']) copyFileSync(path.join(root, 'web', file), path.join(out, file));
  for (const demo of DEMOS) cpSync(path.join(root, 'web', demo), path.join(out, demo), { recursive: true });
  copyFileSync(path.join(root, 'datasets/data/songci.json.gz'), path.join(out, 'songci.json.gz'));
  const sizes = { 'webgpu-lm.js': sizeOf(path.join(out, 'webgpu-lm.js')), 'app.js': sizeOf(path.join(out, 'app.js')) };
  writeFileSync(path.join(out, 'sizes.json'), `${JSON.stringify(sizes, null, 2)}\n`);
  return sizes;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const i = process.argv.indexOf('--out');
  const out = i > 0 ? path.resolve(process.argv[i + 1]) : path.join(root, 'web/dist');
  for (const demo of DEMOS) if (!existsSync(path.join(root, 'web', demo, 'config.json'))) throw new Error(`web/${demo}/ has no checkpoint (config.json)`);
  const sizes = await buildWeb(out);
  const kib = (n) => `${(n / 1024).toFixed(1)} KiB`;
  for (const [name, s] of Object.entries(sizes)) console.log(`${name.padEnd(13)} ${kib(s.bytes).padStart(10)} minified, ${kib(s.gzip).padStart(9)} gzipped`);
  console.log(`built ${path.relative(process.cwd(), out) || '.'}/ (serve it with: npm run web)`);
}
