/**
 * Every command that docs/*.md quotes in a ```sh block is run here as written (test/helpers/doc-runner.ts),
 * or skipped by a rule that says why; a page whose commands have no rules fails the first test.
 * What is replaced (ports, directories, host names, values a page shows as placeholders, such as
 * recovery shares, that only an earlier command's output can give) is listed in the test's log.
 */
import test, { type ExecutionContext } from 'ava';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { REPO, provisionDevice, startAgentProcess } from '../harness/agent-process.js';
import { docWorkspace, dropSchema, eventually, extractCommands, freePort, newUserEnv, runDoc, type DocCommand, type DocRules, type Skip } from './helpers/doc-runner.js';
import { startPortalProcess } from '../harness/portal-process.js';

const DOCS = path.join(REPO, 'docs');
const PG = process.env.MESH_TEST_PG ?? 'postgres://127.0.0.1:5432/test';
const MQTT = process.env.MESH_TEST_MQTT ?? 'mqtt://127.0.0.1:1883';

const REBUILD: Skip = { match: /^npx tsc -p \.( |$)/, why: 'rebuilds dist/ under the tests that are running (npm test built it first)' };
const DOCKER: Skip = { match: /^docker /, why: 'no Docker engine runs here; test/images.test.ts checks the Dockerfiles and compose.yaml' };

/** The pages with commands, and the test that runs each. */
const COVERED = new Set(['admin.md', 'agent.md', 'benchmarks.md', 'operations.md', 'portal.md', 'protocol.md', 'provisioning.md']);

function commandsOf(page: string): DocCommand[] {
  return extractCommands(path.join(DOCS, page));
}

async function runPage(t: ExecutionContext, page: string, cwd: string, rules: DocRules): Promise<void> {
  const r = await runDoc(commandsOf(page), rules, cwd, (s) => t.log(s));
  for (const s of r.skipped) t.log(`skipped ${s.command}\n    because ${s.why}`);
  t.deepEqual(r.unused, [], 'every substitution is still needed');
  t.is(r.ran.length + r.skipped.length, commandsOf(page).length);
}

test('every page with commands has its runner here', (t) => {
  const withCommands = fs.readdirSync(DOCS).filter((f) => f.endsWith('.md') && commandsOf(f).length > 0);
  t.deepEqual(withCommands.sort(), [...COVERED].sort());
});

test('docs/benchmarks.md and docs/protocol.md: their commands are listed as skipped, with why', async (t) => {
  const cwd = docWorkspace('bench');
  try {
    for (const page of ['benchmarks.md', 'protocol.md']) {
      await runPage(t, page, cwd, {
        env: newUserEnv(cwd),
        substitutions: [],
        services: [],
        skips: [
          { match: /^npm run bench/, why: 'benchmarks take minutes and are never part of npm test (the page gives their figures)' },
          { match: /protocol-doc\.js > docs\/protocol\.md$/, why: 'rebuilds dist/ and rewrites the page itself' },
        ],
      });
    }
  } finally {
    fs.rmSync(cwd, { recursive: true, force: true });
  }
});

test('docs/portal.md: the embedded portal and the PostgreSQL one start as written and stop cleanly', async (t) => {
  t.timeout(300_000);
  const cwd = docWorkspace('portal');
  const schema = `mesh_docs_${process.pid}_${Date.now() % 100_000}`;
  const pgUrl = new URL(PG);
  pgUrl.searchParams.set('schema', schema);
  const [http, mqtt, http2] = [await freePort(), await freePort(), await freePort()];
  try {
    await runPage(t, 'portal.md', cwd, {
      env: newUserEnv(cwd),
      substitutions: [
        { from: '/var/lib/mesh-portal', to: () => path.join(cwd, 'portal-data'), why: 'a directory this test may write' },
        { from: '--http-port 8080', to: () => `--http-port ${http}`, why: 'a free port' },
        { from: '--mqtt-port 1883', to: () => `--mqtt-port ${mqtt}`, why: 'a free port (1883 is the local Mosquitto)' },
        { from: "'postgres://mesh@db.internal:5432/mesh?schema=mesh_portal'", to: () => `'${pgUrl.toString()}'`, why: "this machine's PostgreSQL, a fresh schema" },
        { from: 'mqtt://portal:SECRET@broker.internal:1883', to: () => MQTT, why: "this machine's Mosquitto (no password)" },
        { from: '--host 0.0.0.0', to: () => `--host 0.0.0.0 --http-port ${http2}`, when: /DATABASE_URL/, why: 'the default port 8080 may be taken here' },
      ],
      skips: [
        REBUILD,
        { match: /--mqtt-nats-account/, why: 'needs NATS in operator mode with the authority scripts/nats-auth.ts writes and a shared key; test/nats-auth.test.ts and test/e2e/scale.test.ts run the portal that way' },
      ],
      services: [
        { match: /DATABASE_URL=/, ready: /^mesh-portal ready .*"mqtt":"mqtts:\/\/push\.example\.com:8883"/m, stopped: /"event":"portal stopped"/, stopWhenReady: true },
        { match: /portal\/cli\.js/, ready: /^mesh-portal ready .*"mqtt":"mqtt:\/\/portal\.example\.com:1883"/m, stopped: /"event":"portal stopped"/ },
      ],
    });
  } finally {
    await dropSchema(PG, schema);
    fs.rmSync(cwd, { recursive: true, force: true });
  }
});

test("docs/agent.md: mesh-agent status on a device's directory", async (t) => {
  const cwd = docWorkspace('agent');
  try {
    const { dir, identity } = provisionDevice('http://127.0.0.1:9', { dir: path.join(cwd, 'device') });
    await runPage(t, 'agent.md', cwd, {
      env: newUserEnv(cwd),
      substitutions: [{ from: '/var/lib/mesh-agent', to: () => dir, why: 'a provisioned device directory this test made' }],
      skips: [DOCKER],
      services: [],
      after: [
        {
          match: /^mesh-agent status/,
          run: (r) => {
            t.regex(r.stdout, new RegExp(`^device {6}${identity.fingerprint} \\(thermostat, serial test-1\\)$`, 'm'));
            t.regex(r.stdout, /^owners {6}none: waiting to be claimed$/m);
          },
        },
      ],
    });
  } finally {
    fs.rmSync(cwd, { recursive: true, force: true });
  }
});

test('docs/provisioning.md: the manufacturer key, then a batch with it', async (t) => {
  t.timeout(300_000);
  const cwd = docWorkspace('provisioning');
  try {
    // what the page assumes exists: a place for the key and the application's schema
    fs.mkdirSync(path.join(cwd, 'secure'));
    fs.mkdirSync(path.join(cwd, 'schemas'));
    fs.copyFileSync(path.join(REPO, 'examples', 'thermostat.schema.json'), path.join(cwd, 'schemas', 'thermostat.json'));
    t.log('made secure/ and schemas/thermostat.json (a copy of examples/thermostat.schema.json), which the page assumes');
    let keyId = '';
    await runPage(t, 'provisioning.md', cwd, {
      env: newUserEnv(cwd),
      substitutions: [
        { from: '/secure/', to: () => path.join(cwd, 'secure') + '/', why: 'a directory this test may write' },
        { from: '/line/', to: () => path.join(cwd, 'line') + '/', why: 'a directory this test may write' },
        { from: '--count 5000', to: () => '--count 40', why: '5,000 devices take minutes here; the speed is in docs/benchmarks.md' },
      ],
      skips: [],
      services: [],
      after: [
        { match: /keygen/, run: (r) => void (keyId = /manufacturer key (\S+) in/.exec(r.stdout)?.[1] ?? '') },
        {
          match: /^mesh-provision batch/,
          run: () => {
            const m = JSON.parse(fs.readFileSync(path.join(cwd, 'line', 'batch-2024-17', 'manifest.json'), 'utf8')) as { manufacturerKeyId: string; devices: { serial: string }[] };
            t.is(m.devices.length, 40);
            t.is(m.manufacturerKeyId, keyId, 'the batch is endorsed by the key made first');
            t.is(m.devices[0]?.serial, 'th24w17-000001');
            t.true(fs.existsSync(path.join(cwd, 'line', 'batch-2024-17', 'th24w17-000001', 'mesh-agent.sysusers.conf')));
          },
        },
      ],
    });
  } finally {
    fs.rmSync(cwd, { recursive: true, force: true });
  }
});

test("docs/admin.md: the owner's whole story, command by command, against a portal and a running thermostat", async (t) => {
  t.timeout(600_000);
  const cwd = docWorkspace('admin');
  const portal = await startPortalProcess({ args: ['--name', 'portal.example'] });
  const { dir, identity } = provisionDevice(portal.http, { dir: path.join(cwd, 'thermostat') });
  const agent = await startAgentProcess(dir);
  const home = (n: string): string => path.join(cwd, n);
  let shares: string[] = [];
  let keyShares: string[] = [];
  let pin = '';
  let master = '';
  const share = (i: number, from: () => string[]) => () => from()[i] ?? 'MISSING-SHARE';
  try {
    fs.writeFileSync(path.join(cwd, 'thermostat.json'), JSON.stringify({ setpoint: 20, mode: 'eco' }));
    fs.writeFileSync(path.join(cwd, 'file.txt'), 'UDF Data Value');
    t.log('made thermostat.json and file.txt, which the page assumes');
    await runPage(t, 'admin.md', cwd, {
      env: newUserEnv(home('alice')),
      substitutions: [
        { from: 'SHARE1', to: share(0, () => keyShares), when: /^mesh key recover/, why: 'the shares that `mesh key share` printed' },
        { from: 'SHARE2', to: share(1, () => keyShares), when: /^mesh key recover/, why: 'the shares that `mesh key share` printed' },
        { from: 'SHARE3', to: share(2, () => keyShares), when: /^mesh key recover/, why: 'the shares that `mesh key share` printed' },
        { from: 'SHARE1', to: share(0, () => shares), why: 'the recovery shares that `mesh profile create` printed' },
        { from: 'SHARE2', to: share(1, () => shares), why: 'the recovery shares that `mesh profile create` printed' },
        { from: 'SHARE3', to: share(2, () => shares), why: 'the recovery shares that `mesh profile create` printed' },
        { from: "'https://portal.example/claim#code=EDE3-MTWF-XKA3-JX4B-5Q3X-EMW3-77FQ&fp=MCXQ-KMAY-GU6A-YSOF-ZDJN-4RTB-QH7E&m=acme'", to: () => `'${identity.labelUri}'`, why: "the thermostat's label" },
        { from: 'https://portal.example', to: () => portal.http, why: 'the portal on this machine (named portal.example), without TLS' },
        { from: '"EDE3-MTWF-XKA3-JX4B-5Q3X-EMW3-77FQ MCXQ-KMAY-GU6A-YSOF-ZDJN-4RTB-QH7E"', to: () => `"${identity.claimCode} ${identity.fingerprint}"`, why: "the code and fingerprint printed on the thermostat's label" },
        { from: 'EAKG-NG6Q-A2SM-B56U-J4', to: () => pin, why: 'the PIN that `mesh admin add` printed' },
        { from: 'MB3N-RI4V-L7UG-VBDM-ZHWN-AXJP-UK4O', to: () => master, why: "the owner's master fingerprint, as `mesh admin add` printed it" },
        { from: 'mesh admin join', to: () => `mesh --home ${home('phone')} admin join`, why: 'on the new device, which has its own home' },
        { from: 'mesh recover', to: () => `mesh --home ${home('new-computer')} recover`, why: 'on a new computer' },
        { from: 'mesh log verify', to: () => `mesh --home ${home('new-computer')} log verify`, why: "after the recovery, the new computer is the owner's" },
      ],
      skips: [],
      services: [{ match: /^mesh admin add/, ready: /^ {2}mesh admin join .*--pin /m, stopped: /phone/, exits: true }],
      expectErrors: [{ match: /^mesh device claim "/, code: 'conflict', why: 'the second form names the same label, already claimed with the first' }],
      after: [
        {
          match: /^mesh profile create/,
          run: (r) => {
            shares = [...r.stdout.matchAll(/^\s+\d+\.\s+([A-Z0-9]{4}(?:-[A-Z0-9]{1,4})+)\s*$/gm)].map((m) => m[1] as string);
            t.is(shares.length, 5, r.stdout);
          },
        },
        {
          match: /^mesh config set thermostat setpoint=21 mode=comfort$/,
          run: async () => {
            const config = path.join(dir, 'config.json');
            await eventually('the thermostat applies setpoint 21', () => fs.existsSync(config) && (JSON.parse(fs.readFileSync(config, 'utf8')) as { thermostat?: { setpoint?: number } }).thermostat?.setpoint === 21);
          },
        },
        { match: /^mesh device list$/, run: (r) => t.regex(r.stdout, /^hall /m) },
        {
          match: /^mesh admin add/,
          run: (r) => {
            pin = /--pin (\S+)/.exec(r.stdout)?.[1] ?? '';
            master = /--master (\S+)/.exec(r.stdout)?.[1] ?? '';
            t.truthy(pin);
            t.truthy(master);
          },
        },
        // admin add finishes once the new device has joined
        { match: /^mesh admin join/, run: (_r, ctx) => ctx.settle(/admin add/) },
        { match: /^mesh log verify$/, run: (r) => t.regex(r.stdout, /verdict: OK/) },
        { match: /^printf 'UDF Data Value' \| mesh udf --content-type text\/plain$/, run: (r) => t.is(r.stdout.trim(), 'MDDK-7N6A-727A-JZNO-STRX-XKS7-DJAF', 'the value the page shows') },
        {
          match: /^mesh key share/,
          run: (r) => {
            keyShares = r.stdout.split('\n').filter((l) => /^[A-Z0-9]{4}(-[A-Z0-9]{1,4})+$/.test(l.trim())).map((l) => l.trim());
            t.is(keyShares.length, 5, r.stdout);
          },
        },
        { match: /^mesh key recover/, run: (r) => t.regex(r.stdout, /00112233445566778899aabbccddeeff/) },
      ],
    });
  } finally {
    await agent.stop();
    await portal.stop();
    fs.rmSync(cwd, { recursive: true, force: true });
  }
});

test('docs/operations.md: the systemd-analyze score it quotes; installs and compose listed as skipped', async (t) => {
  const cwd = docWorkspace('operations');
  const analyze = spawnSync('sh', ['-c', 'command -v systemd-analyze'], { stdio: 'ignore' }).status === 0;
  try {
    await runPage(t, 'operations.md', cwd, {
      env: newUserEnv(cwd),
      substitutions: [],
      skips: [
        DOCKER,
        { match: /^npm install -g /, why: 'would install globally on the test machine; test/package.test.ts installs the packed tarball into an empty folder instead' },
        ...(analyze ? [] : [{ match: /^systemd-analyze /, why: 'systemd-analyze is not installed here' }]),
      ],
      services: [],
      after: [
        {
          match: /^systemd-analyze security/,
          run: (r) => {
            const quoted = /ends with `Overall exposure level for mesh-portal\.service: (\d\.\d) OK`/.exec(fs.readFileSync(path.join(DOCS, 'operations.md'), 'utf8'))?.[1];
            t.regex(r.stdout, new RegExp(`Overall exposure level for mesh-portal\\.service: ${(quoted ?? 'none').replace('.', '\\.')} OK`), 'the score the page quotes');
          },
        },
      ],
    });
  } finally {
    fs.rmSync(cwd, { recursive: true, force: true });
  }
});

/** Environment variables the code reads: process.env.X, env.X, env['X'], ${X:-...} in scripts, and the portal's per-flag variables. */
function variablesRead(): Set<string> {
  const names = new Set<string>();
  const walk = (dir: string): void => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (/\.(ts|mjs|sh)$/.test(e.name)) {
        const text = fs.readFileSync(p, 'utf8');
        for (const m of text.matchAll(/(?:process\.env|\benv)\.([A-Z][A-Z0-9_]{2,})\b|env\[['"]([A-Z][A-Z0-9_]+)['"]\]|\$\{([A-Z][A-Z0-9_]+):-/g)) names.add((m[1] ?? m[2] ?? m[3]) as string);
      }
    }
  };
  for (const d of ['mesh', 'client', 'runtime', 'portal', 'agent', 'provisioning', 'admin', 'scripts', 'bench', 'test']) walk(path.join(REPO, d));
  walk(path.join(REPO, '.ci'));
  const help = spawnSync(process.execPath, [path.join(REPO, 'dist', 'portal', 'cli.js'), '--help'], { encoding: 'utf8' }).stdout;
  for (const m of help.matchAll(/env (MESH_PORTAL_[A-Z_]+)/g)) names.add(m[1] as string);
  // the agent's, named through envName('MESH_AGENT', flag)
  const agentHelp = spawnSync(process.execPath, [path.join(REPO, 'dist', 'agent', 'cli.js'), 'run', '--help'], { encoding: 'utf8' }).stdout;
  for (const m of agentHelp.matchAll(/\b(MESH_AGENT_[A-Z_]+)\b/g)) names.add(m[1] as string);
  return names;
}

test('docs/operations.md lists every environment variable the code reads', (t) => {
  const page = fs.readFileSync(path.join(DOCS, 'operations.md'), 'utf8');
  const read = variablesRead();
  t.true(read.size > 30, `found ${read.size}`);
  t.true(read.has('MESH_PORTAL_HTTP_PORT') && read.has('MESH_AGENT_LOG_LEVEL') && read.has('NOTIFY_SOCKET'));
  t.deepEqual([...read].filter((v) => !page.includes('`' + v + '`') && !new RegExp(`\`[^\`]*\\b${v}\\b[^\`]*\``).test(page)).sort(), []);
});
