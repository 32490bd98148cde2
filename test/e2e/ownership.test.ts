/**
 * Shared ownership with real processes (mesh-portal, mesh-agent, the `mesh` CLI, each its own
 * OS process): invitations that work once and expire, a guest limited by its grant, a factory
 * reset that forgets everyone, and owners whose clocks are wrong. The device's word is read from
 * its own state file (`mesh-agent status`) and from the owners' CLI.
 */
import test, { type ExecutionContext } from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { startPortalProcess, type PortalProcess } from '../../harness/portal-process.js';
import { AGENT_CLI, provisionDevice, startAgentProcess, type AgentProcess } from '../../harness/agent-process.js';
import { fakeTimeEnv } from '../../harness/faketime.js';
import type { DeviceIdentity } from '../../mesh/device.js';
import { cliError, mesh, tmpHome, type CliRun } from '../hostile/world.js';

const run = promisify(execFile);

interface Home {
  readonly home: string;
  readonly account: string;
}

interface World {
  readonly portal: PortalProcess;
  readonly dir: string;
  readonly identity: DeviceIdentity;
  agent: AgentProcess;
  readonly homes: string[];
  close(): Promise<void>;
}

async function world(): Promise<World> {
  const portal = await startPortalProcess({ args: ['--no-mqtt'] });
  const { dir, identity } = provisionDevice(portal.http, { push: false, pollIntervalMs: 200 });
  const agent = await startAgentProcess(dir);
  const w: World = {
    portal,
    dir,
    identity,
    agent,
    homes: [],
    async close() {
      await w.agent.stop();
      await portal.stop();
      for (const h of [dir, ...w.homes]) fs.rmSync(h, { recursive: true, force: true });
    },
  };
  return w;
}

async function ok(t: ExecutionContext, r: Promise<CliRun>, what: string): Promise<CliRun> {
  const x = await r;
  if (x.code !== 0) t.fail(`${what}: exit ${x.code}: ${x.stdout.slice(-800)} ${x.stderr.slice(-800)}`);
  return x;
}

/** `mesh config set` waits for the device: exit status 4 when the device refused the change (docs/admin.md) */
async function refusedByDevice(t: ExecutionContext, r: Promise<CliRun>, what: string): Promise<CliRun> {
  const x = await r;
  if (x.code !== 4) t.fail(`${what}: exit ${x.code}, not 4 (refused by the device): ${x.stdout.slice(-800)} ${x.stderr.slice(-800)}`);
  return x;
}

async function person(t: ExecutionContext, w: World, name: string, env: Record<string, string> = {}): Promise<Home> {
  const home = tmpHome(name);
  w.homes.push(home);
  const r = await ok(t, mesh(home, ['profile', 'create', '--portal', w.portal.http, '--account', name, '--json'], 60_000, env), `${name} creates a profile`);
  return { home, account: (r.json as { account: string }).account };
}

interface DeviceView {
  owners: { account: string }[];
  config: Record<string, Record<string, unknown>>;
  errors: { code: string; message: string }[];
}

async function device(w: World): Promise<DeviceView> {
  const { stdout } = await run(process.execPath, [AGENT_CLI, 'status', '--data', w.dir, '--json']);
  return JSON.parse(stdout) as DeviceView;
}

async function waitDevice(w: World, what: string, pred: (d: DeviceView) => boolean, timeoutMs = 20_000): Promise<DeviceView> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const d = await device(w);
    if (pred(d)) return d;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}: ${JSON.stringify({ owners: d.owners, config: d.config, errors: d.errors.slice(-3) })}`);
    await new Promise((r) => setTimeout(r, 150));
  }
}

const setpoint = (d: DeviceView): unknown => d.config.thermostat?.setpoint;
const accounts = (d: DeviceView): string[] => d.owners.map((o) => o.account).sort();

async function invite(t: ExecutionContext, who: Home, args: string[] = []): Promise<string> {
  const r = await ok(t, mesh(who.home, ['device', 'invite', 'thermostat', '--json', ...args]), 'invite');
  return (r.json as { invitation: string }).invitation;
}

async function claimed(t: ExecutionContext, w: World, alice: Home): Promise<void> {
  const r = await ok(t, mesh(alice.home, ['device', 'claim', w.identity.labelUri, '--name', 'thermostat', '--json']), 'alice claims');
  t.is((r.json as { accepted: boolean }).accepted, true);
}

test.serial('an invitation works once and only before it expires; the label claims nothing once the device has an owner', async (t) => {
  const w = await world();
  try {
    const alice = await person(t, w, 'alice');
    const bob = await person(t, w, 'bob');
    const carol = await person(t, w, 'carol');
    const mallory = await person(t, w, 'mallory');
    await claimed(t, w, alice);

    const m = await mesh(mallory.home, ['device', 'claim', w.identity.labelUri, '--name', 'mine', '--json']);
    t.is((m.json as { error?: { code: string } }).error?.code, 'not-invited', 'the device refuses a label claim once it has an owner');

    const inv = await invite(t, alice);
    t.regex(inv, /^https:\/\/127\.0\.0\.1:\d+\/invite#code=E[A-Z2-7-]+&fp=[A-Z2-7]{28}$/);
    const b = await ok(t, mesh(bob.home, ['device', 'claim', inv, '--name', 'hall', '--json']), 'bob accepts');
    t.is((b.json as { accepted: boolean }).accepted, true);
    t.deepEqual(accounts(await waitDevice(w, 'bob', (d) => d.owners.length === 2)), [alice.account, bob.account].sort());

    const again = await mesh(carol.home, ['device', 'claim', inv, '--name', 'hall', '--json']);
    t.is(cliError(again), 'invitation-used');

    const short = await invite(t, alice, ['--expires', '1s']);
    await new Promise((r) => setTimeout(r, 1500));
    const late = await mesh(carol.home, ['device', 'claim', short, '--name', 'hall', '--json']);
    t.is(cliError(late), 'invitation-expired');
    t.deepEqual(accounts(await device(w)), [alice.account, bob.account].sort(), 'nobody else joined');

    // Alice's list marks Bob as new, once
    const l1 = await ok(t, mesh(alice.home, ['device', 'list', '--json']), 'list');
    const o1 = (l1.json as { devices: { owners: { account: string; new: boolean; invitedBy: string | null }[] }[] }).devices[0]?.owners ?? [];
    t.deepEqual(o1.map((o) => [o.account, o.new, o.invitedBy]), [[alice.account, false, null], [bob.account, true, alice.account]]);
    const l2 = await ok(t, mesh(alice.home, ['device', 'list', '--json']), 'list again');
    t.false((l2.json as { devices: { owners: { new: boolean }[] }[] }).devices[0]?.owners.some((o) => o.new));
  } finally {
    await w.close();
  }
});

test.serial('a guest limited to thermostat:setpoint in 16..24: 22 applied, 28 and mode refused (out-of-scope), a guest cannot invite, and after its end time (device clock) grant-expired', async (t) => {
  const w = await world();
  try {
    const alice = await person(t, w, 'alice');
    const gina = await person(t, w, 'gina');
    await claimed(t, w, alice);
    await ok(t, mesh(alice.home, ['config', 'set', 'thermostat', 'setpoint=20', 'mode=eco']), 'alice sets');
    await waitDevice(w, 'alice 20', (d) => setpoint(d) === 20);
    const inv = await invite(t, alice, ['--guest', 'thermostat:setpoint=16..24', '--until', '1h']);
    await ok(t, mesh(gina.home, ['device', 'claim', inv, '--name', 'flat', '--json']), 'gina accepts');
    await waitDevice(w, 'the guest', (d) => d.owners.length === 2);

    await ok(t, mesh(gina.home, ['config', 'set', 'thermostat', 'setpoint=22']), 'gina 22');
    await waitDevice(w, 'guest 22', (d) => setpoint(d) === 22);
    await refusedByDevice(t, mesh(gina.home, ['config', 'set', 'thermostat', 'setpoint=28']), 'gina 28');
    let d = await waitDevice(w, 'out-of-scope', (x) => x.errors.some((e) => e.code === 'out-of-scope'));
    t.is(setpoint(d), 22);
    // the refused 28 is not carried into gina's next document (neither the device's nor the one for all devices)
    const shown = await ok(t, mesh(gina.home, ['config', 'show', 'thermostat', '--json']), 'gina config show');
    t.deepEqual((shown.json as { doc: unknown; devices: unknown[] }).doc, { setpoint: 22 });
    t.deepEqual((shown.json as { doc: unknown; devices: unknown[] }).devices, []);
    await refusedByDevice(t, mesh(gina.home, ['config', 'set', 'thermostat', 'setpoint=23', 'mode=off']), 'gina mode');
    d = await waitDevice(w, 'mode refused', (x) => x.errors.filter((e) => e.code === 'out-of-scope').length >= 2);
    t.is(d.config.thermostat?.mode, 'eco');
    const gInvite = await mesh(gina.home, ['device', 'invite', 'flat', '--json']);
    t.is(cliError(gInvite), 'not-permitted', 'a guest cannot invite');
    // two hours later on the device's own clock: the grant has ended
    await w.agent.stop();
    w.agent = await startAgentProcess(w.dir, [], AGENT_CLI, fakeTimeEnv('+2h'));
    await refusedByDevice(t, mesh(gina.home, ['config', 'set', 'thermostat', 'setpoint=18']), 'gina after the end');
    d = await waitDevice(w, 'grant-expired', (x) => x.errors.some((e) => e.code === 'grant-expired'));
    t.is(setpoint(d), 22);

    // the owner is not limited
    await ok(t, mesh(alice.home, ['config', 'set', 'thermostat', 'setpoint=18']), 'alice 18');
    await waitDevice(w, 'alice 18', (x) => setpoint(x) === 18);
  } finally {
    await w.close();
  }
});

test.serial('precedence is the order the device applies changes: Bob signs with a clock a day ahead, then Alice; the device runs Alice', async (t) => {
  const w = await world();
  try {
    const ahead = fakeTimeEnv('+1d');
    const alice = await person(t, w, 'alice');
    const bob = await person(t, w, 'bob', ahead);
    await claimed(t, w, alice);
    const inv = await invite(t, alice);
    await ok(t, mesh(bob.home, ['device', 'claim', inv, '--name', 'hall', '--json'], 60_000, ahead), 'bob accepts (a day ahead)');
    await waitDevice(w, 'bob', (d) => d.owners.length === 2);
    await ok(t, mesh(bob.home, ['config', 'set', 'thermostat', 'setpoint=25'], 60_000, ahead), 'bob 25');
    await waitDevice(w, 'bob 25', (d) => setpoint(d) === 25);
    await ok(t, mesh(alice.home, ['config', 'set', 'thermostat', 'setpoint=18']), 'alice 18');
    const d = await waitDevice(w, 'alice 18', (x) => setpoint(x) === 18);
    t.is(setpoint(d), 18);
    t.true(d.errors.some((e) => e.code === 'clock-ahead'), "Bob's clock is flagged, not obeyed");
  } finally {
    await w.close();
  }
});

test.serial('a factory reset forgets every owner and setting; a former owner changes nothing until claimed again', async (t) => {
  const w = await world();
  try {
    const alice = await person(t, w, 'alice');
    const bob = await person(t, w, 'bob');
    await claimed(t, w, alice);
    const inv = await invite(t, alice);
    await ok(t, mesh(bob.home, ['device', 'claim', inv, '--name', 'hall', '--json']), 'bob accepts');
    await ok(t, mesh(alice.home, ['config', 'set', 'thermostat', 'setpoint=23']), 'alice 23');
    await ok(t, mesh(bob.home, ['config', 'set', 'thermostat', 'mode=eco']), 'bob eco');
    await waitDevice(w, 'both', (d) => setpoint(d) === 23 && d.config.thermostat?.mode === 'eco');

    await w.agent.stop();
    await run(process.execPath, [AGENT_CLI, 'reset', '--data', w.dir, '--yes']);
    w.agent = await startAgentProcess(w.dir);
    let d = await device(w);
    t.deepEqual(d.owners, [], 'no owner comes back');
    t.is(d.config.thermostat, undefined, 'no setting comes back');
    // the device's signed status names the new epoch: the portal drops what it read of the old one
    const feedRows = (): number => {
      const db = new Database(path.join(w.portal.dataDir, 'portal.db'), { readonly: true });
      try {
        return (db.prepare('SELECT COUNT(*) AS c FROM feed WHERE device = ?').get(w.identity.id) as { c: number }).c;
      } finally {
        db.close();
      }
    };
    for (let i = 0; i < 200 && feedRows() > 0; i++) await new Promise((r) => setTimeout(r, 100));
    t.is(feedRows(), 0, "the portal keeps none of the ended epoch's items");

    await refusedByDevice(t, mesh(bob.home, ['config', 'set', 'thermostat', 'setpoint=29']), 'bob after the reset');
    await w.agent.waitFor((e) => e.type === 'refused' && e.code === 'unknown-owner', 20_000, "the former owner's change refused");
    d = await device(w);
    t.deepEqual(d.owners, []);
    t.is(d.config.thermostat, undefined);

    // the label claims the device again (it has no owner), and only then do Alice's settings apply
    await claimed(t, w, alice);
    d = await waitDevice(w, 'alice back', (x) => setpoint(x) === 23);
    t.deepEqual(accounts(d), [alice.account]);
    t.is(d.config.thermostat?.mode, undefined, "Bob's setting stays gone");
  } finally {
    await w.close();
  }
});
