/**
 * The npm package as a user gets it: `npm pack` ships no tests, and the packed tarball, installed
 * into an empty folder without the optional (portal-only, native) dependencies, gives four working
 * commands and the exported modules; the portal, missing its SQLite driver, says what to install.
 *
 * The install is offline from npm's cache when the cache holds every package (fast, no network);
 * otherwise it may fill the cache from the registry (--prefer-offline), and says so.
 */
import test from 'ava';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { REPO } from '../harness/agent-process.js';

const run = promisify(execFile);
const BINS = ['mesh', 'mesh-agent', 'mesh-portal', 'mesh-provision', 'mesh-witness'] as const;

interface PackFile {
  readonly path: string;
  readonly size: number;
}

test('npm pack ships no tests, benchmarks, scripts or source maps, and every export and bin is in it', async (t) => {
  const { stdout } = await run('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: REPO, maxBuffer: 16 * 1024 * 1024 });
  const [info] = JSON.parse(stdout) as [{ files: PackFile[]; size: number; unpackedSize: number }];
  const files = info.files.map((f) => f.path);
  t.log(`${files.length} files, ${(info.size / 1024).toFixed(0)} KiB packed, ${(info.unpackedSize / 1024).toFixed(0)} KiB unpacked`);
  t.deepEqual(
    files.filter((f) => /(^|\/)(test|bench|scripts)\//.test(f) || f.endsWith('.map') || f.endsWith('.ts') && !f.endsWith('.d.ts')),
    [],
  );
  const pkg = JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { bin: Record<string, string>; exports: Record<string, string | { types: string; default: string }> };
  for (const bin of Object.values(pkg.bin)) t.true(files.includes(bin), bin);
  for (const [key, target] of Object.entries(pkg.exports)) {
    if (typeof target === 'string') continue;
    for (const f of [target.types, target.default]) {
      const rel = f.replace(/^\.\//, '');
      if (rel.includes('*')) {
        const re = new RegExp('^' + rel.replace(/[.]/g, '\\.').replace('*', '[^/]+') + '$');
        t.true(files.some((x) => re.test(x)), `${key}: ${rel}`);
      } else t.true(files.includes(rel), `${key}: ${rel}`);
    }
  }
  t.true(files.includes('CHANGELOG.md'));
  t.true(files.includes('deploy/systemd/mesh-portal.service'));
});

async function installTarball(t: import('ava').ExecutionContext, dir: string, tarball: string): Promise<string> {
  const args = ['install', '--omit=optional', '--no-audit', '--no-fund', '--loglevel=error', tarball];
  try {
    await run('npm', [...args, '--offline'], { cwd: dir, maxBuffer: 16 * 1024 * 1024 });
    return 'offline, from the npm cache';
  } catch (e) {
    if (!String((e as { stderr?: string }).stderr ?? e).includes('ENOTCACHED')) throw e;
    t.log('the npm cache lacks some packages: this install fetches them from the registry (later runs are offline)');
    await run('npm', [...args, '--prefer-offline'], { cwd: dir, maxBuffer: 16 * 1024 * 1024 });
    return 'from the registry, filling the cache';
  }
}

function duBytes(dir: string): number {
  let n = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) n += duBytes(p);
    else if (e.isFile()) n += fs.statSync(p).size;
  }
  return n;
}

test('the packed tarball installs without the optional dependencies; mesh, mesh-agent, mesh-portal, mesh-provision answer --version', async (t) => {
  t.timeout(600_000);
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'mesh-pack-'));
  try {
    await run('npm', ['pack', '--ignore-scripts', '--silent', '--pack-destination', work], { cwd: REPO });
    const tarball = fs.readdirSync(work).find((f) => f.endsWith('.tgz'));
    t.truthy(tarball);
    const app = path.join(work, 'app');
    fs.mkdirSync(app);
    fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
    const how = await installTarball(t, app, path.join(work, tarball as string));
    const nm = path.join(app, 'node_modules');
    t.false(fs.existsSync(path.join(nm, 'better-sqlite3')), 'no native SQLite module');
    t.false(fs.existsSync(path.join(nm, 'pg')));
    t.log(`agent-only install (${how}): ${(duBytes(nm) / 1024 / 1024).toFixed(1)} MiB in node_modules, ${fs.readdirSync(nm).length} top-level entries`);

    const { version } = JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { version: string };
    for (const bin of BINS) {
      const { stdout } = await run(path.join(nm, '.bin', bin), ['--version']);
      t.is(stdout.split(' ').slice(0, 2).join(' '), `${bin} ${version}`, stdout);
    }
    // the exports resolve, with their types beside them
    const probe = `import { contentUdf } from 'mathematical-mesh/mesh/udf'; import { startPortal } from 'mathematical-mesh/portal'; console.log(typeof contentUdf, typeof startPortal);`;
    const e = await run(process.execPath, ['--input-type=module', '-e', probe], { cwd: app });
    t.is(e.stdout.trim(), 'function function');
    t.true(fs.existsSync(path.join(nm, 'mathematical-mesh', 'dist', 'portal', 'server.d.ts')));

    // a portal without its SQLite driver says what to do, with a stable code
    const p = await run(path.join(nm, '.bin', 'mesh-portal'), ['--data', path.join(work, 'portal'), '--http-port', '0', '--no-mqtt', '--json']).then(
      () => ({ stdout: '', code: 0 }),
      (err: { stdout: string; code: number }) => err,
    );
    t.is(p.code, 1);
    const err = (JSON.parse(p.stdout.trim().split('\n').at(-1) as string) as { error: { code: string; message: string } }).error;
    t.is(err.code, 'state');
    t.regex(err.message, /npm install better-sqlite3/);
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
});
