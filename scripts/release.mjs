#!/usr/bin/env node
// npm run release -> dist/release/: what a release publishes, with checksums.
//   mesh-agent-<version>.mjs          the single-file agent for boards (scripts/build-agent.mjs)
//   mesh-agent-<version>.mjs.LEGAL.txt its licences
//   mathematical-mesh-<version>.tgz   the npm package (npm pack)
//   SHA256SUMS                        `sha256sum -c SHA256SUMS` checks them
// Run after `npm run build` (npm run release does both). Record the release in CHANGELOG.md first:
// the script refuses a version that has no section there.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const out = path.join(root, 'dist', 'release');
const { version } = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8'));

const changelog = readFileSync(path.join(root, 'CHANGELOG.md'), 'utf8');
if (!new RegExp(`^## \\[?${version.replace(/\./g, '\\.')}\\]?`, 'm').test(changelog)) {
  console.error(`release: CHANGELOG.md has no "## ${version}" section; write it first`);
  process.exit(1);
}

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
execFileSync(process.execPath, [path.join(root, 'scripts', 'build-agent.mjs')], { cwd: root, stdio: 'inherit' });
const agent = `mesh-agent-${version}.mjs`;
copyFileSync(path.join(root, 'dist', 'mesh-agent.mjs'), path.join(out, agent));
copyFileSync(path.join(root, 'dist', 'mesh-agent.mjs.LEGAL.txt'), path.join(out, `${agent}.LEGAL.txt`));
// the package is built already (npm run build); do not compile again inside npm pack
execFileSync('npm', ['pack', '--ignore-scripts', '--silent', '--pack-destination', out], { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] });

const files = readdirSync(out).filter((f) => f !== 'SHA256SUMS').sort();
const sums = files.map((f) => `${createHash('sha256').update(readFileSync(path.join(out, f))).digest('hex')}  ${f}`);
writeFileSync(path.join(out, 'SHA256SUMS'), sums.join('\n') + '\n');
for (const f of files) console.log(`${path.relative(root, path.join(out, f))}  ${(statSync(path.join(out, f)).size / 1024).toFixed(0)} KiB`);
console.log(`${path.relative(root, path.join(out, 'SHA256SUMS'))}: check with (cd dist/release && sha256sum -c SHA256SUMS)`);
