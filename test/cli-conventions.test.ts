/**
 * The conventions every command line follows (runtime/cli.ts), on the real commands: --version,
 * --help on every command, "did you mean" for a mistyped command or option, and the portal's
 * environment variables, default data directory, warning about a key elsewhere, and log lines.
 */
import test from 'ava';
import { execFile, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { REPO } from '../harness/agent-process.js';
import { newUserEnv } from './helpers/doc-runner.js';

const run = promisify(execFile);
const CLI = { mesh: 'admin', 'mesh-portal': 'portal', 'mesh-agent': 'agent', 'mesh-provision': 'provisioning', 'mesh-witness': 'witness' } as const;
type Bin = keyof typeof CLI;
const cli = (b: Bin): string => path.join(REPO, 'dist', CLI[b], 'cli.js');

async function exec(b: Bin, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ code: number; stdout: string; stderr: string }> {
  return run(process.execPath, [cli(b), ...args], { env }).then(
    (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
    (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
  );
}

const { version } = JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { version: string };

for (const b of Object.keys(CLI) as Bin[]) {
  test(`${b} --version, and with --json`, async (t) => {
    const r = await exec(b, ['--version']);
    t.is(r.code, 0);
    t.regex(r.stdout, new RegExp(`^${b} ${version.replace(/\./g, '\\.')} \\(Node\\.js v\\d+\\.\\d+\\.\\d+, [a-z0-9]+-[a-z0-9]+\\)\\n$`));
    const j = await exec(b, ['--version', '--json']);
    t.deepEqual(JSON.parse(j.stdout), { program: b, version, node: process.version });
  });
}

const TYPOS: [Bin, string[], RegExp][] = [
  ['mesh', ['devce', 'list'], /unknown command "mesh devce" \(did you mean "mesh device"\?\)/],
  ['mesh', ['device', 'lst'], /unknown command "mesh device lst" \(did you mean "mesh device list"\?\)/],
  ['mesh', ['udf', '--content-typ', 'x'], /unknown option --content-typ \(did you mean --content-type\?\)/],
  ['mesh-agent', ['rnu'], /unknown command "rnu" \(did you mean "run"\?\)/],
  ['mesh-agent', ['run', '--dta', 'x'], /unknown option --dta \(did you mean --data\?\)/],
  ['mesh-provision', ['bacth'], /unknown command "bacth" \(did you mean "batch"\?\)/],
  ['mesh-provision', ['batch', '--cuont', '3'], /unknown option --cuont \(did you mean --count\?\)/],
  ['mesh-portal', ['--http-prot', '1'], /unknown option --http-prot \(did you mean --http-port\?\)/],
  ['mesh-witness', ['--nmae', 'x'], /unknown option --nmae \(did you mean --name\?\)/],
];

for (const [b, args, want] of TYPOS) {
  test(`${b} ${args.join(' ')}: a usage error that suggests the closest`, async (t) => {
    const r = await exec(b, args);
    t.is(r.code, 64);
    t.regex(r.stderr, want);
  });
}

test('every command of mesh-agent and mesh-provision answers --help and help COMMAND', async (t) => {
  for (const [b, cmds] of [
    ['mesh-agent', ['run', 'status', 'reset']],
    ['mesh-provision', ['batch', 'label', 'keygen']],
  ] as const) {
    for (const c of cmds) {
      const h = await exec(b, [c, '--help']);
      t.is(h.code, 0, `${b} ${c} --help`);
      t.regex(h.stdout, new RegExp(`usage: ${b} ${c}`, 'i'));
      const h2 = await exec(b, ['help', c]);
      t.is(h2.stdout, h.stdout, `${b} help ${c}`);
    }
  }
  const m = await exec('mesh', ['help', 'device', 'claim']);
  t.is(m.code, 0);
  t.regex(m.stdout, /^usage: mesh device claim/);
  const w = await exec('mesh-witness', ['--help']);
  t.is(w.code, 0);
  t.regex(w.stdout, /Usage:\n  mesh-witness --data DIR --name NAME --log VKEY/);
  t.is((await exec('mesh-witness', ['--name', 'w'])).code, 64, 'mesh-witness without --data is a usage error');
});

/**
 * As root the portal's default is /var/lib/mesh-portal, which a test must not touch: there the
 * portal runs as `nobody` (setpriv), as a new unprivileged user would.
 */
/**
 * `nobody` keeps CAP_DAC_READ_SEARCH (read only) so it can load this checkout wherever it lies
 * (a clone under `mktemp -d` is mode 0700); its uid is what the portal's defaults look at.
 */
const AS_USER: string[] =
  process.getuid?.() === 0
    ? ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=+dac_read_search', '--ambient-caps=+dac_read_search', '--']
    : [];

function userRoot(): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'mesh-cli-'));
  fs.chmodSync(root, 0o777);
  return root;
}

/** Start the portal as a new user would: no --data; resolves with the ready line, the stderr so far, and a stop. */
async function portal(args: string[], env: NodeJS.ProcessEnv, cwd: string): Promise<{ ready: { http: string; name: string }; stderr: () => string; stop: () => Promise<number | null> }> {
  const [cmd, ...pre] = [...AS_USER, process.execPath];
  const p = spawn(cmd as string, [...pre, cli('mesh-portal'), ...args], { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  p.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = new Promise<number | null>((r) => p.once('exit', r));
  const ready = await new Promise<{ http: string; name: string }>((resolve, reject) => {
    let out = '';
    p.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      const m = /^mesh-portal ready (\{.*\})$/m.exec(out);
      if (m?.[1] !== undefined) resolve(JSON.parse(m[1]) as { http: string; name: string });
    });
    p.once('exit', (c) => reject(new Error(`exited ${String(c)}\n${stderr}`)));
  });
  return {
    ready,
    stderr: () => stderr,
    stop: async () => {
      p.kill('SIGTERM');
      return exited;
    },
  };
}

test('mesh-portal: settings from MESH_PORTAL_* (a flag wins), data in $XDG_DATA_HOME/mesh-portal, never the current directory', async (t) => {
  const root = userRoot();
  const xdg = path.join(root, 'xdg');
  const cwd = path.join(root, 'cwd');
  fs.mkdirSync(cwd, { mode: 0o777 });
  fs.chmodSync(cwd, 0o777);
  const env = { ...newUserEnv(path.join(root, 'home')), XDG_DATA_HOME: xdg, MESH_PORTAL_HTTP_PORT: '0', MESH_PORTAL_NO_MQTT: '1', MESH_PORTAL_HOST: '127.0.0.1', MESH_PORTAL_NAME: 'from-env.example', MESH_PORTAL_RATE_LIMIT: '0' };
  const p = await portal(['--name', 'from-flag.example'], env, cwd);
  try {
    t.is(p.ready.name, 'from-flag.example', 'the flag wins');
    t.regex(p.ready.http, /^http:\/\/127\.0\.0\.1:\d+$/);
    t.true(fs.existsSync(path.join(xdg, 'mesh-portal', 'portal-key.json')));
    t.deepEqual(fs.readdirSync(cwd), [], 'nothing in the current directory');
    // one log format: time, level, event first
    const first = JSON.parse(p.stderr().split('\n')[0] as string) as Record<string, unknown>;
    t.deepEqual(Object.keys(first).slice(0, 3), ['time', 'level', 'event']);
    const live = await fetch(`${p.ready.http}/livez`);
    t.is(live.status, 200);
    const ready = await fetch(`${p.ready.http}/readyz`);
    t.is(((await ready.json()) as { ok: boolean }).ok, true);
  } finally {
    t.is(await p.stop(), 0);
  }
  // a bad value from the environment names the variable
  const bad = await exec('mesh-portal', [], { ...env, MESH_PORTAL_HTTP_PORT: '80x' });
  t.is(bad.code, 64);
  t.regex(bad.stderr, /MESH_PORTAL_HTTP_PORT must be a whole number from 0 to 65535, not "80x"/);
  fs.rmSync(root, { recursive: true, force: true });
});

test('mesh-portal: about to make a new key while the old default ./.mesh-data/portal has one, it says so', async (t) => {
  const root = userRoot();
  const old = path.join(root, '.mesh-data', 'portal');
  fs.mkdirSync(old, { recursive: true });
  fs.writeFileSync(path.join(old, 'portal-key.json'), '{}');
  for (const d of [path.join(root, '.mesh-data'), old]) fs.chmodSync(d, 0o755);
  fs.chmodSync(path.join(old, 'portal-key.json'), 0o644);
  const env = { ...newUserEnv(path.join(root, 'home')), XDG_DATA_HOME: path.join(root, 'xdg') };
  const p = await portal(['--http-port', '0', '--no-mqtt', '--host', '127.0.0.1'], env, root);
  try {
    const warning = p
      .stderr()
      .split('\n')
      .filter((l) => l.includes('"portal key found elsewhere"'))
      .map((l) => JSON.parse(l) as { level: string; found: string; hint: string })
      .filter((w) => w.found === path.join(old, 'portal-key.json'));
    t.is(warning.length, 1, p.stderr());
    t.is(warning[0]?.level, 'warn');
    t.is(warning[0]?.found, path.join(old, 'portal-key.json'));
    t.regex(warning[0]?.hint ?? '', new RegExp(`--data ${old.replace(/[.]/g, '\\.')}`));
  } finally {
    await p.stop();
  }
  // once this portal has its key, it is that portal: no warning on the next start
  const again = await portal(['--http-port', '0', '--no-mqtt', '--host', '127.0.0.1'], env, root);
  await again.stop();
  t.false(again.stderr().includes('portal key found elsewhere'));
  fs.rmSync(root, { recursive: true, force: true });
});
