#!/usr/bin/env node
// node scripts/build-web.mjs -> dist/web: the owner app (web/) as static files: index.html, app.css,
// app.js (one minified bundle) and sw.js (the service worker that keeps them for offline use). The core's code runs in the page as it is, with two files put
// in the place of their Node versions: the crypto engine (mesh/crypto-node.ts -> crypto-web.ts,
// @noble) and the HTTP transport (client/transport-node.ts -> transport-web.ts, fetch). Anything
// else that needs Node in the bundle is a build error. The sizes are printed (npm run bench
// measures the gzipped JS against its limit).
import { build } from 'esbuild';
import { copyFileSync, mkdirSync, readFileSync, renameSync } from 'node:fs';
import { writeChanged } from './write-changed.mjs';
import { gzipSync } from 'node:zlib';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const out = path.join(root, 'dist', 'web');
const { version } = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8'));

/** The browser's versions of the two Node-only files. */
const browserSwap = {
  name: 'browser-swap',
  setup(b) {
    b.onResolve({ filter: /(^|\/)crypto-node\.js$/ }, (a) => ({ path: path.join(path.dirname(a.importer), 'crypto-web.ts') }));
    b.onResolve({ filter: /(^|\/)transport-node\.js$/ }, (a) => ({ path: path.join(path.dirname(a.importer), 'transport-web.ts') }));
    b.onResolve({ filter: /^node:/ }, (a) => ({ errors: [{ text: `${a.path} imported by ${path.relative(root, a.importer)}: the owner app runs in a browser` }] }));
  },
};

const started = Date.now();
mkdirSync(out, { recursive: true });
const result = await build({
  entryPoints: { app: path.join(root, 'web', 'main.ts'), sw: path.join(root, 'web', 'sw.ts') },
  outdir: out,
  write: false,
  bundle: true,
  platform: 'browser',
  target: 'es2022',
  // classic scripts (not modules): they also run from a local file, where module scripts are refused
  format: 'iife',
  minify: true,
  legalComments: 'linked',
  define: { __MESH_VERSION__: JSON.stringify(version) },
  plugins: [browserSwap],
  logLevel: 'warning',
});
// written by rename, and only when changed: a portal serving dist/web never reads half a file
writeChanged(result.outputFiles);
for (const n of ['index.html', 'app.css']) {
  copyFileSync(path.join(root, 'web', n), path.join(out, `${n}.tmp`));
  renameSync(path.join(out, `${n}.tmp`), path.join(out, n));
}
const js = readFileSync(path.join(out, 'app.js'));
console.log(`dist/web/app.js ${(js.length / 1024).toFixed(0)} KiB, ${(gzipSync(js).length / 1024).toFixed(0)} KiB gzipped, in ${Date.now() - started} ms`);
