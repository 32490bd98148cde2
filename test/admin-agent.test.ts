/**
 * The owner's CLI end to end with real processes: a portal (dist/portal/cli.js), a device agent
 * (dist/agent/cli.js run --data DIR) on a provisioned device directory, and `mesh` for Alice and
 * Bob, each with their own --home. One shared thermostat, two owners, configuration applied,
 * listed, refused, removed; a second administration device added and revoked; recovery.
 */
import { openClaimWindow } from '../harness/agent-process.js';
import test from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as c from '../mesh/crypto.js';
import { newDeviceIdentity, type DeviceIdentity } from '../mesh/device.js';
import { signKeyId } from '../mesh/keys.js';
import { writeDeviceDirectory } from '../runtime/device-files.js';
import { startPortalProcess, type PortalProcess } from '../harness/portal-process.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const CLI = path.resolve(here, '../admin/cli.js');
const AGENT = path.resolve(here, '../agent/cli.js');

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
  readonly json: any;
}

function mesh(home: string, args: string[], opts: { onStdout?: (all: string) => void; timeoutMs?: number } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const env = { ...process.env };
    delete env.MESH_HOME;
    const child = spawn(process.execPath, [CLI, '--home', home, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 100_000);
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
      opts.onStdout?.(stdout);
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      let json: unknown;
      try {
        json = JSON.parse(stdout.trim().split('\n').pop() ?? '');
      } catch {
        json = undefined;
      }
      resolve({ code: code ?? -1, stdout, stderr, json });
    });
  });
}

const errCode = (r: Run): string | undefined => (r.json as { error?: { code?: string } } | undefined)?.error?.code;
const tmp = (p: string): string => fs.mkdtempSync(path.join(os.tmpdir(), `mesh-e2e-${p}-`));
const shareArgs = (shares: readonly string[]): string[] => shares.flatMap((s) => ['--share', s]);

const SCHEMA = {
  type: 'object',
  properties: {
    target: { type: 'number', minimum: 5, maximum: 30 },
    mode: { enum: ['heat', 'cool', 'eco', 'off'] },
    note: { type: 'string', maxLength: 100 },
  },
  additionalProperties: false,
};

interface Agent {
  readonly proc: ChildProcess;
  readonly dir: string;
  output(): string;
  stop(): Promise<void>;
}

async function startAgent(dir: string): Promise<Agent> {
  if (!fs.existsSync(AGENT)) throw new Error(`the device agent is not built yet (${AGENT} is missing)`);
  const proc = spawn(process.execPath, [AGENT, 'run', '--data', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  proc.stderr!.setEncoding('utf8').on('data', (d: string) => {
    err += d;
    if (err.length > 1_000_000) err = err.slice(-500_000);
  });
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`the agent did not start:\n${out}\n${err}`)), 20_000);
    const check = setInterval(() => {
      if (/^mesh-agent ready /m.test(out)) {
        clearTimeout(t);
        clearInterval(check);
        resolve();
      }
    }, 50);
    proc.once('exit', (code) => {
      clearTimeout(t);
      clearInterval(check);
      reject(new Error(`the agent exited (${String(code)}):\n${out}\n${err}`));
    });
  });
  return {
    proc,
    dir,
    output: () => out + err,
    stop: () =>
      new Promise<void>((resolve) => {
        if (proc.exitCode !== null || proc.signalCode !== null) return resolve();
        const t = setTimeout(() => proc.kill('SIGKILL'), 10_000);
        proc.once('exit', () => {
          clearTimeout(t);
          resolve();
        });
        proc.kill('SIGTERM');
      }),
  };
}

interface World {
  portal: PortalProcess;
  agent: Agent;
  device: DeviceIdentity;
  maker: c.KeyPair;
  alice: string;
  aliceAccount: string;
  aliceShares: string[];
  bob: string;
  bobAccount: string;
}

let world: World | undefined;
const cleanup: (() => Promise<unknown>)[] = [];
test.after.always(async () => {
  for (const f of cleanup.reverse()) await f().catch(() => undefined);
});

async function getWorld(): Promise<World> {
  if (world !== undefined) return world;
  const portal = await startPortalProcess();
  cleanup.push(() => portal.stop());
  const maker = c.ed25519KeyPair();
  const device = newDeviceIdentity({ model: 'thermostat', manufacturer: 'acme', serial: 'sn-0001', portalAuthority: new URL(portal.http).host, manufacturerKey: maker });
  const dir = tmp('device');
  writeDeviceDirectory(dir, device, { portal: portal.http, pollIntervalMs: 200, push: true, hook: null, localMqtt: null, maxStaleMs: 86_400_000, health: null }, { thermostat: SCHEMA });
  const agent = await startAgent(dir);
  cleanup.push(() => agent.stop());
  const alice = tmp('alice');
  const bob = tmp('bob');
  const a = await mesh(alice, ['profile', 'create', '--portal', portal.http, '--account', 'alice', '--admin-name', 'laptop', '--json']);
  if (a.code !== 0) throw new Error(a.stdout + a.stderr);
  const b = await mesh(bob, ['profile', 'create', '--portal', portal.http, '--account', 'bob', '--keep-master-key', '--json']);
  if (b.code !== 0) throw new Error(b.stdout + b.stderr);
  world = { portal, agent, device, maker, alice, aliceAccount: a.json.account, aliceShares: a.json.shares, bob, bobAccount: b.json.account };
  return world;
}

function agentConfig(w: World): Record<string, unknown> {
  try {
    return JSON.parse(fs.readFileSync(path.join(w.agent.dir, 'config.json'), 'utf8')) as Record<string, unknown>;
  } catch {
    return {};
  }
}

test.serial('two owners claim the same thermostat from its label; the device confirms each', async (t) => {
  const w = await getWorld();
  const makerId = signKeyId(w.maker.publicKey);
  const a = await mesh(w.alice, ['device', 'claim', w.device.labelUri, '--name', 'hall', '--trust-manufacturer', makerId, '--wait-ms', '20000', '--json']);
  t.is(a.code, 0, a.stdout + a.stderr + w.agent.output().slice(-3000));
  t.is(a.json.accepted, true);
  t.is(a.json.endorsedBy.manufacturer, 'acme');
  t.true(a.json.endorsedBy.trusted);
  await openClaimWindow(w.agent.dir); // Alice presses the thermostat's button so Bob's label claim is let in
  const b = await mesh(w.bob, ['device', 'claim', `${w.device.claimCode} ${w.device.fingerprint}`, '--name', 'thermostat', '--wait-ms', '20000']);
  t.is(b.code, 0, b.stdout + b.stderr);
  t.regex(b.stdout, /the device accepted/);
  t.regex(b.stderr, /endorsed by acme/);
});

test.serial('each owner publishes; the device applies both; refusals come back signed', async (t) => {
  const w = await getWorld();
  const a = await mesh(w.alice, ['config', 'set', 'thermostat', 'target=21', '--wait-ms', '20000', '--json']);
  t.is(a.code, 0, a.stdout + a.stderr);
  t.is(a.json.results[0].result, 'applied');
  t.is(a.json.results[0].seq, a.json.seq);
  const b = await mesh(w.bob, ['config', 'set', 'thermostat', 'mode=heat', '--wait-ms', '20000', '--json']);
  t.is(b.json.results[0].result, 'applied', b.stdout + b.stderr);
  const cfg = agentConfig(w) as { thermostat?: { target?: number; mode?: string } };
  t.is(cfg.thermostat?.target, 21);
  t.is(cfg.thermostat?.mode, 'heat');

  const bad = await mesh(w.alice, ['config', 'set', 'thermostat', 'target=99', '--wait-ms', '20000', '--json']);
  t.is(bad.code, 4, bad.stdout); // refused by the device (it declares no schemas, so nothing was checked before publishing)
  t.is(bad.json.results[0].result, 'refused');
  t.is(bad.json.results[0].error.code, 'schema');
  const human = await mesh(w.alice, ['config', 'set', 'thermostat', 'target=20', '--wait-ms', '20000']);
  t.regex(human.stdout, /hall: applied #\d+/);
});

test.serial('device list shows the applied seq for this owner, last contact and the last error', async (t) => {
  const w = await getWorld();
  const r = await mesh(w.alice, ['device', 'list', '--json']);
  t.is(r.code, 0, r.stderr);
  const d = r.json.devices[0];
  t.is(d.id, w.device.id);
  t.is(d.state, 'ok');
  t.true(d.owner);
  t.false(d.stale);
  const th = d.apps.find((x: { app: string }) => x.app === 'thermostat');
  t.true(th.upToDate);
  t.is(th.seq, th.published);
  t.is(d.lastError?.code, 'schema');
  const stale = await mesh(w.alice, ['device', 'list', '--max-stale-ms', '0', '--json']);
  t.true(stale.json.devices[0].stale);
  const bob = await mesh(w.bob, ['device', 'list']);
  t.regex(bob.stdout, /thermostat: applied #1/);
});

test.serial('log verify agrees with what the device saw', async (t) => {
  const w = await getWorld();
  const r = await mesh(w.alice, ['log', 'verify', '--json']);
  t.is(r.code, 0, r.stdout + r.stderr);
  t.true(r.json.ok);
  t.is(r.json.devices[0].consistent, true);
});

test.serial('a second administration device (PIN) publishes; once revoked it cannot', async (t) => {
  const w = await getWorld();
  const phone = tmp('phone');
  let joined: Promise<Run> | undefined;
  const add = mesh(w.alice, ['admin', 'add', '--name', 'phone', '--wait-ms', '30000', '--json', ...shareArgs(w.aliceShares.slice(0, 3))], {
    onStdout: (all) => {
      if (joined !== undefined) return;
      const line = all.split('\n').find((l) => l.includes('"pin"') && l.endsWith('}'));
      if (line === undefined) return;
      const { pin } = JSON.parse(line) as { pin: string };
      joined = mesh(phone, ['admin', 'join', '--portal', w.portal.http, '--account', w.aliceAccount, '--pin', pin, '--name', 'phone', '--wait-ms', '30000', '--json']);
    },
  });
  const a = await add;
  t.is(a.code, 0, a.stdout + a.stderr);
  const j = await joined!;
  t.is(j.code, 0, j.stdout + j.stderr);
  const p = await mesh(phone, ['config', 'set', 'thermostat', 'target=22', '--wait-ms', '20000', '--json']);
  t.is(p.json.results[0]?.result, 'applied', p.stdout + p.stderr);
  t.is((agentConfig(w) as { thermostat?: { target?: number } }).thermostat?.target, 22);

  const rv = await mesh(w.alice, ['admin', 'revoke', 'phone', '--json', ...shareArgs(w.aliceShares.slice(1, 4))]);
  t.is(rv.code, 0, rv.stdout + rv.stderr);
  const denied = await mesh(phone, ['config', 'set', 'thermostat', 'target=25', '--json']);
  t.is(errCode(denied), 'revoked-key');
  // the laptop still works, and the device still obeys it after the new master profile
  const ok = await mesh(w.alice, ['config', 'set', 'thermostat', 'target=19', '--wait-ms', '20000', '--json']);
  t.is(ok.json.results[0]?.result, 'applied', ok.stdout + ok.stderr);
});

test.serial('bob removes himself; alice keeps the device', async (t) => {
  const w = await getWorld();
  const r = await mesh(w.bob, ['device', 'remove', 'thermostat', '--json']);
  t.is(r.code, 0, r.stdout + r.stderr);
  // wait for the device to report that bob is gone
  const deadline = Date.now() + 20_000;
  let owners: string[] = [];
  while (Date.now() < deadline) {
    const s = await new Promise<string>((resolve) => {
      const ch = spawn(process.execPath, [AGENT, 'status', '--data', w.agent.dir, '--json'], { stdio: ['ignore', 'pipe', 'ignore'] });
      let o = '';
      ch.stdout!.setEncoding('utf8').on('data', (d: string) => (o += d));
      ch.on('close', () => resolve(o));
    });
    try {
      owners = ((JSON.parse(s) as { owners: { account: string }[] }).owners ?? []).map((o) => o.account);
    } catch {
      owners = [];
    }
    if (owners.length > 0 && !owners.includes(w.bobAccount)) break;
    await new Promise((res) => setTimeout(res, 300));
  }
  t.deepEqual(owners, [w.aliceAccount]);
  const list = await mesh(w.alice, ['device', 'list', '--json']);
  t.true(list.json.devices[0].owner);
  const bobList = await mesh(w.bob, ['device', 'list', '--json']);
  t.is(bobList.json.devices.length, 0);
});

test.serial('alice loses her laptop: recover from 3 shares, publish, the device applies it untouched', async (t) => {
  const w = await getWorld();
  const lost = tmp('lost');
  for (const f of fs.readdirSync(w.alice)) fs.copyFileSync(path.join(w.alice, f), path.join(lost, f));
  fs.rmSync(w.alice, { recursive: true, force: true });
  const fresh = tmp('recovered');
  const wrong = await mesh(fresh, ['recover', ...w.aliceShares.slice(0, 2), '--portal', w.portal.http, '--account', w.aliceAccount, '--json']);
  t.is(errCode(wrong), 'not-enough-shares');
  const r = await mesh(fresh, ['recover', w.aliceShares[0]!, w.aliceShares[2]!, w.aliceShares[4]!, '--portal', w.portal.http, '--account', w.aliceAccount, '--admin-name', 'new laptop', '--json']);
  t.is(r.code, 0, r.stdout + r.stderr);
  t.true(r.json.apps.thermostat.readable);
  t.is((await mesh(fresh, ['config', 'show', 'thermostat', '--json'])).json.doc.target, 19);
  const p = await mesh(fresh, ['config', 'set', 'thermostat', 'target=23', '--wait-ms', '20000', '--json']);
  t.is(p.json.results[0]?.result, 'applied', p.stdout + p.stderr + w.agent.output().slice(-3000));
  t.is((agentConfig(w) as { thermostat?: { target?: number } }).thermostat?.target, 23);
  const old = await mesh(lost, ['config', 'set', 'thermostat', 'target=30', '--json']);
  t.is(errCode(old), 'revoked-key');
  const lv = await mesh(fresh, ['log', 'verify', '--json']);
  t.is(lv.code, 0, lv.stdout);
});
