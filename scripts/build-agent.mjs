#!/usr/bin/env node
// npm run build:agent -> dist/mesh-agent.mjs: the agent as one file to flash (no node_modules on the
// device). Built from the compiled dist/agent/cli.js. Dynamic imports (mqtt, conf) stay in the same
// file but are evaluated only when first used, so start-up does not pay for them.
import { build } from 'esbuild';
import { readFileSync, statSync } from 'node:fs';
import { writeChanged } from './write-changed.mjs';

const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));

const started = Date.now();
const outfile = 'dist/mesh-agent.mjs';
const result = await build({
  entryPoints: ['dist/agent/cli.js'],
  outfile,
  write: false,
  bundle: true,
  platform: 'node',
  target: 'node18',
  format: 'esm',
  minify: true,
  legalComments: 'linked',
  // runtime/version.ts: --version and mesh_build_info without a package.json beside the file
  define: { __MESH_VERSION__: JSON.stringify(version) },
  // mqtt.js (CommonJS) calls require() for Node built-ins; ESM output needs a real require.
  banner: { js: "import{createRequire as __cr}from'node:module';const require=__cr(import.meta.url);" },
  logLevel: 'warning',
});
const same = writeChanged(result.outputFiles);
const kb = (statSync(outfile).size / 1024).toFixed(0);
const note = same === result.outputFiles.length ? ' (unchanged)' : '';
console.log(`${outfile} ${kb} KiB in ${Date.now() - started} ms${note}`);
