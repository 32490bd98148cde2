/**
 * The single-file agent (scripts/build-agent.mjs) carries no MQTT library: the device speaks MQTT
 * 3.1.1 through runtime/mqtt-lite.ts (mqtt.js stays with the portal and the tests). Checked on the
 * bundler's own list of inputs, built here from dist/agent/cli.js as the script builds it.
 */
import test from 'ava';
import * as path from 'node:path';
import { build } from 'esbuild';
import { REPO } from '../harness/agent-process.js';

test('the agent bundle holds runtime/mqtt-lite.js and no mqtt.js, mqtt-packet or ws', async (t) => {
  const r = await build({
    entryPoints: [path.join(REPO, 'dist', 'agent', 'cli.js')],
    write: false,
    bundle: true,
    platform: 'node',
    target: 'node18',
    format: 'esm',
    minify: true,
    metafile: true,
    define: { __MESH_VERSION__: '"0.0.0"' },
    logLevel: 'silent',
  });
  const inputs = Object.keys(r.metafile.inputs);
  const packages = [...new Set(inputs.map((f) => /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(f)?.[1]).filter((p): p is string => p !== undefined))].sort();
  t.log(`bundle ${(r.outputFiles[0]!.contents.length / 1024).toFixed(0)} KiB; packages: ${packages.join(', ')}`);
  t.true(inputs.some((f) => f.endsWith('runtime/mqtt-lite.js')), 'the small client is in');
  t.deepEqual(
    packages.filter((p) => /^(mqtt|mqtt-packet|ws|mqtt-jsonl?|commist|help-me|readable-stream|bl)$/.test(p)),
    [],
  );
});
