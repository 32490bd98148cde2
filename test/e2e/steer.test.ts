/**
 * Owners steer each device (issue 13), with real processes (mesh-portal, two mesh-agents, the
 * `mesh` CLI): values are checked against the schemas the devices declared before anything is
 * published (the portal's log does not grow), typos get a suggestion, --device sets one room
 * apart from the other, `config set` waits for each device and says which it did not reach (with
 * the documented exit status), and unset / remove / rename work.
 */
import test, { type ExecutionContext } from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { startPortalProcess, type PortalProcess } from '../../harness/portal-process.js';
import { AGENT_CLI, provisionDevice, startAgentProcess, type AgentProcess } from '../../harness/agent-process.js';
import { cliError, mesh, tmpHome, type CliRun } from '../hostile/world.js';

const run = promisify(execFile);

interface Room {
  readonly name: string;
  readonly dir: string;
  readonly label: string;
  agent: AgentProcess | undefined;
}

interface World {
  readonly portal: PortalProcess;
  readonly home: string;
  readonly rooms: Room[];
  readonly extraHomes: string[];
}

let w: World;

test.before(async () => {
  const portal = await startPortalProcess({ args: ['--no-mqtt'] });
  const rooms: Room[] = [];
  for (const name of ['living-room', 'bedroom']) {
    const { dir, identity } = provisionDevice(portal.http, { push: false, pollIntervalMs: 200 });
    rooms.push({ name, dir, label: identity.labelUri, agent: await startAgentProcess(dir) });
  }
  const home = tmpHome('alice');
  w = { portal, home, rooms, extraHomes: [] };
  const p = await mesh(home, ['profile', 'create', '--portal', portal.http, '--account', 'alice', '--json']);
  if (p.code !== 0) throw new Error(`profile create: ${p.stdout} ${p.stderr}`);
  for (const r of rooms) {
    const c = await mesh(home, ['device', 'claim', r.label, '--name', r.name, '--wait', '20', '--json']);
    if (c.code !== 0 || (c.json as { accepted?: boolean }).accepted !== true) throw new Error(`claim ${r.name}: ${c.stdout} ${c.stderr}`);
  }
});

test.after.always(async () => {
  if (w === undefined) return;
  for (const r of w.rooms) await r.agent?.stop();
  await w.portal.stop();
  for (const d of [w.home, ...w.extraHomes, ...w.rooms.map((r) => r.dir)]) fs.rmSync(d, { recursive: true, force: true });
});

function logSize(): number {
  const db = new Database(path.join(w.portal.dataDir, 'portal.db'), { readonly: true });
  try {
    return (db.prepare('SELECT COUNT(*) AS n FROM log').get() as { n: number }).n;
  } finally {
    db.close();
  }
}

async function deviceConfig(room: Room): Promise<Record<string, unknown>> {
  const { stdout } = await run(process.execPath, [AGENT_CLI, 'status', '--data', room.dir, '--json']);
  return ((JSON.parse(stdout) as { config: Record<string, Record<string, unknown>> }).config.thermostat ?? {}) as Record<string, unknown>;
}

function room(name: string): Room {
  return w.rooms.find((r) => r.name === name) as Room;
}

function show(r: CliRun): string {
  return `exit ${r.code}\n${r.stdout}\n${r.stderr}`;
}

async function refusedUnpublished(t: ExecutionContext, args: string[], code: string, message: RegExp): Promise<CliRun> {
  const before = logSize();
  const r = await mesh(w.home, args);
  t.is(r.code, 1, show(r));
  t.regex(r.stderr, new RegExp(`\\[${code}\\]`), show(r));
  t.regex(r.stderr, message, show(r));
  t.is(logSize(), before, 'nothing reached the portal log');
  return r;
}

test.serial('the claim shows what each device runs (its signed profile and the schema that came with its label record)', async (t) => {
  const r = await mesh(w.home, ['device', 'list', '--json']);
  t.is(r.code, 0, show(r));
  const st = JSON.parse(fs.readFileSync(path.join(w.home, 'profile.json'), 'utf8')) as { version: number; devices: { name: string; schemas?: Record<string, unknown> }[] };
  t.is(st.version, 2);
  for (const d of st.devices) t.deepEqual(Object.keys(d.schemas ?? {}), ['thermostat'], d.name);
});

test.serial('a value out of range is refused before anything is published, with the message the device would give', async (t) => {
  await refusedUnpublished(t, ['config', 'set', 'thermostat', 'setpoint=35'], 'schema', /setpoint is 35; the maximum is 30/);
  const json = await mesh(w.home, ['config', 'set', 'thermostat', 'setpoint=35', '--json']);
  t.is(cliError(json), 'schema');
});

test.serial('a typo in the application or the setting gets a suggestion, and publishes nothing', async (t) => {
  await refusedUnpublished(t, ['config', 'set', 'thermostt', 'setpoint=20'], 'schema', /did you mean "thermostat"\?/);
  await refusedUnpublished(t, ['config', 'set', 'thermostat', 'setpont=20'], 'schema', /did you mean "setpoint"\?/);
  await refusedUnpublished(t, ['config', 'set', 'thermostat', 'setpoint=20', '--device', 'bedrom'], 'not-found', /no device called "bedrom"/);
});

test.serial('--device sets 18 in one room and 21 in the other; a change for all keeps each room its own', async (t) => {
  const bed = await mesh(w.home, ['config', 'set', 'thermostat', 'setpoint=18', '--device', 'bedroom', '--json']);
  t.is(bed.code, 0, show(bed));
  t.deepEqual((bed.json as { results: { device: string; result: string }[] }).results.map((x) => [x.device, x.result]), [['bedroom', 'applied']]);
  const living = await mesh(w.home, ['config', 'set', 'thermostat', 'setpoint=21', '--device', 'living-room']);
  t.is(living.code, 0, show(living));
  t.regex(living.stdout, /living-room: applied #\d+/);
  t.notRegex(living.stdout, /bedroom/);
  t.is((await deviceConfig(room('bedroom'))).setpoint, 18);
  t.is((await deviceConfig(room('living-room'))).setpoint, 21);
  // bedroom was not sent living-room's later number: judged against what was published to it, it is not lagging
  await new Promise((res) => setTimeout(res, 50));
  const strict = await mesh(w.home, ['device', 'list', '--max-stale-ms', '1', '--json']);
  for (const d of (strict.json as { devices: { name: string; apps: { app: string; upToDate: boolean; lagging: boolean }[] }[] }).devices) {
    t.true(d.apps.every((a) => a.upToDate && !a.lagging), `${d.name}: ${JSON.stringify(d.apps)}`);
  }

  const all = await mesh(w.home, ['config', 'set', 'thermostat', 'mode=eco']);
  t.is(all.code, 0, show(all));
  t.regex(all.stdout, /living-room: applied/);
  t.regex(all.stdout, /bedroom: applied/);
  t.deepEqual(await deviceConfig(room('bedroom')), { setpoint: 18, mode: 'eco' });
  t.deepEqual(await deviceConfig(room('living-room')), { setpoint: 21, mode: 'eco' });

  const list = await mesh(w.home, ['device', 'list', '--json']);
  const devices = (list.json as { devices: { name: string; apps: { app: string; upToDate: boolean; lagging: boolean }[] }[] }).devices;
  for (const d of devices) t.true(d.apps.every((a) => a.upToDate && !a.lagging), `${d.name} is up to date with what was published to it`);
});

test.serial("an invitation carries the device's schemas: the invitee's values are checked before publishing too", async (t) => {
  const bob = tmpHome('bob');
  w.extraHomes.push(bob);
  const p = await mesh(bob, ['profile', 'create', '--portal', w.portal.http, '--account', 'bob', '--json']);
  t.is(p.code, 0, show(p));
  const inv = await mesh(w.home, ['device', 'invite', 'living-room', '--json']);
  t.is(inv.code, 0, show(inv));
  const c = await mesh(bob, ['device', 'claim', (inv.json as { invitation: string }).invitation, '--name', 'alices-living-room', '--wait', '20']);
  t.is(c.code, 0, show(c));
  t.regex(c.stdout, /runs: thermostat/);
  const before = logSize();
  const r = await mesh(bob, ['config', 'set', 'thermostat', 'setpoint=99']);
  t.is(r.code, 1, show(r));
  t.regex(r.stderr, /\[schema\]: alices-living-room would refuse it: .*setpoint is 99; the maximum is 30/);
  t.is(logSize(), before, 'nothing reached the portal log');
});

test.serial('config unset removes a key on one device', async (t) => {
  const r = await mesh(w.home, ['config', 'unset', 'thermostat', 'mode', '--device', 'bedroom']);
  t.is(r.code, 0, show(r));
  t.deepEqual(await deviceConfig(room('bedroom')), { setpoint: 18 });
  t.deepEqual(await deviceConfig(room('living-room')), { setpoint: 21, mode: 'eco' });
  await refusedUnpublished(t, ['config', 'unset', 'thermostat', 'mdoe'], 'schema', /did you mean "mode"\?/);
});

test.serial('config set with one device stopped: applied on one, not reached on the other, exit status 3', async (t) => {
  const bed = room('bedroom');
  await bed.agent?.stop();
  bed.agent = undefined;
  const r = await mesh(w.home, ['config', 'set', 'thermostat', 'mode=comfort', '--wait', '3']);
  t.is(r.code, 3, show(r));
  t.regex(r.stdout, /living-room: applied #\d+/);
  t.regex(r.stdout, /bedroom: not reached yet/);
  const fire = await mesh(w.home, ['config', 'set', 'thermostat', 'schedule=weekdays', '--wait', '0', '--json']);
  t.is(fire.code, 0, show(fire));
  t.deepEqual((fire.json as { results: unknown[] }).results, []);
  // back on: it catches up with what was published to it
  bed.agent = await startAgentProcess(bed.dir);
  const end = Date.now() + 20_000;
  while ((await deviceConfig(bed)).schedule !== 'weekdays' && Date.now() < end) await new Promise((res) => setTimeout(res, 300));
  t.deepEqual(await deviceConfig(bed), { setpoint: 18, mode: 'comfort', schedule: 'weekdays' });
});

test.serial('config remove withdraws the values from one device, then the application altogether; device rename', async (t) => {
  const one = await mesh(w.home, ['config', 'remove', 'thermostat', '--device', 'living-room']);
  t.is(one.code, 0, show(one));
  t.deepEqual(await deviceConfig(room('living-room')), {});
  t.is((await deviceConfig(room('bedroom'))).setpoint, 18);
  const all = await mesh(w.home, ['config', 'remove', 'thermostat']);
  t.is(all.code, 0, show(all));
  t.regex(all.stdout, /Removed thermostat from your personal profile/);
  t.deepEqual(await deviceConfig(room('bedroom')), {});
  const status = await mesh(w.home, ['status', '--json']);
  t.deepEqual((status.json as { apps: unknown[] }).apps, [], 'no longer an application of the profile');
  await refusedUnpublished(t, ['config', 'remove', 'thermostat'], 'not-found', /no configuration for "thermostat"/);

  const ren = await mesh(w.home, ['device', 'rename', 'bedroom', 'guest-room']);
  t.is(ren.code, 0, show(ren));
  const again = await mesh(w.home, ['config', 'set', 'thermostat', 'setpoint=19', '--device', 'guest-room']);
  t.is(again.code, 0, show(again));
  t.regex(again.stdout, /guest-room: applied/);
  t.deepEqual(await deviceConfig(room('bedroom')), { setpoint: 19 });
});
