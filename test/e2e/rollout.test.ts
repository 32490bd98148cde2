/**
 * Staged rollouts with real processes: a portal process, ten device agents (harness/fleet.ts, in
 * this process, each polling the portal over HTTP) and the `mesh` CLI. `mesh config set ...
 * --canary 2 --abort-on 1` whose second canary refuses (a device of an older batch, whose profile
 * declares no schema to check a change against before publishing, and whose firmware is stricter) stops after the canaries, and the other eight devices never receive the change: no
 * item of it is in their feeds at the portal, their keys cannot open it, nothing changed on them.
 * Then a second administration device reads the rollout, resumes it, and aborts another one
 * while the first, which had read it, aborts it too (conflict); the first sees what the second did.
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { startPortalProcess, type PortalProcess } from '../../harness/portal-process.js';
import { startFleet, type Fleet, type FleetDevice } from '../../harness/fleet.js';
import { THERMOSTAT_SCHEMA } from '../../harness/agent-process.js';
import { parseSignedEnvelope, payloadBytes, type SignedEnvelope } from '../../mesh/envelope.js';
import { docOf, targetsOf } from '../helpers/app-profile.js';
import { parseApplicationPayload } from '../../mesh/profiles.js';
import { isMeshError } from '../../mesh/errors.js';
import { MESH_CLI, cliError, mesh, tmpHome, type CliRun } from '../hostile/world.js';
import { withOwner } from '../../admin/command.js';
import { makeIo } from '../../runtime/cli.js';
import { abortRollout, currentRollout } from '../../client/owner-rollout.js';

interface World {
  readonly portal: PortalProcess;
  readonly fleet: Fleet;
  readonly laptop: string;
  readonly account: string;
  readonly shares: readonly string[];
  phone?: string;
  recovered?: string;
}

let w: World;
const names = Array.from({ length: 10 }, (_, i) => `dev-${i + 1}`);
/** dev-2 is of an older batch: its profile declares no schema (so the CLI cannot check a change for it), and its firmware takes no setpoint above 22 */
const STRICT = { ...(THERMOSTAT_SCHEMA as object), properties: { ...(THERMOSTAT_SCHEMA as { properties: object }).properties, setpoint: { type: 'number', minimum: 5, maximum: 22 } } };

/** dev-3's heater fails its self-test at 27 °C and above */
const HEALTH = `if grep -Eq '"setpoint": ?(2[7-9]|30)([^0-9]|$)' "$MESH_CONFIG"; then echo 'heater self-test failed'; exit 1; fi`;
const show = (r: CliRun): string => `exit ${r.code}\n${r.stdout}\n${r.stderr}`;
const dev = (name: string): FleetDevice => w.fleet.devices.find((d) => d.name === name) as FleetDevice;

test.before(async () => {
  const portal = await startPortalProcess({ args: ['--no-mqtt'] });
  const fleet = await startFleet(portal.http, { count: 10, name: (i) => names[i] as string, undeclared: (i) => (i === 1 ? STRICT : undefined), health: (i) => (i === 2 ? HEALTH : undefined) });
  const laptop = tmpHome('rollout-laptop');
  const p = await mesh(laptop, ['profile', 'create', '--portal', portal.http, '--account', 'alice', '--admin-name', 'laptop', '--keep-master-key', '--json']);
  if (p.code !== 0) throw new Error(`profile create: ${show(p)}`);
  w = { portal, fleet, laptop, account: (p.json as { account: string }).account, shares: (p.json as { shares: string[] }).shares };
  for (const d of fleet.devices) {
    const c = await mesh(laptop, ['device', 'claim', d.identity.labelUri, '--name', d.name, '--wait', '30', '--json']);
    if (c.code !== 0) throw new Error(`claim ${d.name}: ${show(c)}`);
  }
  const base = await mesh(laptop, ['config', 'set', 'thermostat', 'setpoint=20', '--wait', '60']);
  if (base.code !== 0) throw new Error(`the first configuration: ${show(base)}`);
});

test.after.always(async () => {
  if (w === undefined) return;
  await w.fleet.stop();
  await w.portal.stop();
  for (const h of [w.laptop, w.phone, w.recovered]) if (h !== undefined) fs.rmSync(h, { recursive: true, force: true });
});

/** Every application profile the portal queued for a device (its feed), decoded. */
function feedApplications(deviceId: string): { app: string; seq: number }[] {
  const db = new Database(path.join(w.portal.dataDir, 'portal.db'), { readonly: true });
  try {
    const rows = db.prepare(`SELECT f.object AS object, o.object AS shared FROM feed f LEFT JOIN objects o ON f.object = '@' || o.id WHERE f.device = ? AND f.kind = 'application'`).all(deviceId) as { object: string; shared: string | null }[];
    return rows.map((r) => parseApplicationPayload(payloadBytes(parseSignedEnvelope(JSON.parse(r.shared ?? r.object) as unknown, 'feed item'))));
  } finally {
    db.close();
  }
}

/** The latest thermostat profile the owner published, as the portal holds it. */
function latestThermostat(): ReturnType<typeof parseApplicationPayload> & { env: SignedEnvelope } {
  const db = new Database(path.join(w.portal.dataDir, 'portal.db'), { readonly: true });
  try {
    const row = db.prepare(`SELECT object FROM applications WHERE app = 'thermostat'`).get() as { object: string };
    const env = parseSignedEnvelope(JSON.parse(row.object) as unknown, 'application');
    return { ...parseApplicationPayload(payloadBytes(env)), env };
  } finally {
    db.close();
  }
}

test.serial('10 devices, --canary 2 --abort-on 1: the second canary refuses, the rollout stops, and the other 8 never receive the change nor can open it', async (t) => {
  const r = await mesh(w.laptop, ['config', 'set', 'thermostat', 'setpoint=23', '--devices', names.join(','), '--canary', '2', '--abort-on', '1', '--wave', '4', '--wait', '60', '--json']);
  t.is(r.code, 4, show(r));
  const out = r.json as { state: string; devices: { name: string; result: string; seq?: number; code?: string; wave: number }[] };
  t.is(out.state, 'stopped');
  const by = new Map(out.devices.map((d) => [d.name, d]));
  t.is(by.get('dev-1')?.result, 'applied');
  t.is(by.get('dev-2')?.result, 'refused');
  t.is(by.get('dev-2')?.code, 'schema');
  for (const n of names.slice(2)) t.is(by.get(n)?.result, 'not-sent', n);
  t.deepEqual(out.devices.map((d) => d.wave), [0, 0, 1, 1, 1, 1, 2, 2, 2, 2]);
  const seq = by.get('dev-1')?.seq as number;

  // the canaries: one has it, one refused it (and kept 20)
  t.is(dev('dev-1').config().setpoint, 23);
  t.is(dev('dev-2').config().setpoint, 20);
  t.true(dev('dev-2').events.some((e) => e.type === 'refused' && e.code === 'schema' && e.seq === seq));
  // the only publication of the change names the two canaries and is encrypted to them alone
  const pub = latestThermostat();
  t.is(pub.seq, seq);
  t.deepEqual(targetsOf(pub.env).sort(), [dev('dev-1').files.id, dev('dev-2').files.id].sort());
  t.deepEqual(docOf(pub.env, dev('dev-1').files.keys.enc, dev('dev-1').files.id), { setpoint: 23 });
  for (const n of names.slice(2)) {
    const d = dev(n);
    // what reached it: nothing of the change in its feed at the portal, nothing applied or refused
    const got = feedApplications(d.files.id);
    t.true(got.length > 0, `${n} has the first configuration`);
    t.false(got.some((a) => a.app === 'thermostat' && a.seq >= seq), `${n}'s feed holds no publication of the change`);
    t.false(d.events.some((e) => (e.seq ?? 0) >= seq), `${n} saw nothing of #${seq}`);
    t.is(d.config().setpoint, 20);
    // and its key cannot open the publication
    const err = t.throws(() => docOf(pub.env, d.files.keys.enc, d.files.id));
    t.true(isMeshError(err, 'not-a-recipient'), `${n}: ${String(err)}`);
  }
  // what the owner reads
  const human = await mesh(w.laptop, ['rollout', 'status']);
  t.is(human.code, 0, show(human));
  t.regex(human.stdout, /STOPPED at the canaries/);
  t.regex(human.stdout, /dev-2: REFUSED \[schema\]: .*setpoint/);
  t.regex(human.stdout, /wave 3 of 3 \(4\): not sent \(they never received it\): dev-7, dev-8, dev-9, dev-10/);
  t.log(human.stdout);
});

/** mesh admin add on the laptop, mesh admin join on the phone (the PIN passed along). */
async function addPhone(): Promise<string> {
  const phone = tmpHome('rollout-phone');
  w.phone = phone;
  let joined: Promise<CliRun> | undefined;
  const add = await new Promise<CliRun>((resolve) => {
    const child = spawn(process.execPath, [MESH_CLI, '--home', w.laptop, 'admin', 'add', '--name', 'phone', '--wait-ms', '60000', '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
      if (joined !== undefined) return;
      const line = stdout.split('\n').find((l) => l.includes('"pin"') && l.endsWith('}'));
      if (line === undefined) return;
      const { pin } = JSON.parse(line) as { pin: string };
      joined = mesh(phone, ['admin', 'join', '--portal', w.portal.http, '--account', w.account, '--pin', pin, '--name', 'phone', '--wait-ms', '60000', '--json']);
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr, json: undefined }));
  });
  if (add.code !== 0) throw new Error(`admin add: ${show(add)}`);
  const j = await (joined as Promise<CliRun>);
  if (j.code !== 0) throw new Error(`admin join: ${show(j)}`);
  return phone;
}

test.serial('from a second administration device: status shows the stopped rollout, resume finishes it; abort ends another (the laptop aborting at the same moment gets conflict); each sees what the other did', async (t) => {
  const phone = await addPhone();
  const st = await mesh(phone, ['rollout', 'status', '--json']);
  t.is(st.code, 0, show(st));
  t.is((st.json as { state: string }).state, 'stopped');
  t.is((st.json as { failures: number }).failures, 1);

  // the phone goes on all the same: the remaining two waves
  const res = await mesh(phone, ['rollout', 'resume', '--wait', '60', '--json']);
  t.is(res.code, 0, show(res));
  t.is((res.json as { state: string }).state, 'done');
  for (const n of names) t.is(dev(n).config().setpoint, n === 'dev-2' ? 20 : 23, n);
  const seen = await mesh(w.laptop, ['rollout', 'status']);
  t.regex(seen.stdout, /DONE/);
  t.is(cliError(await mesh(w.laptop, ['rollout', 'resume', '--json'])), 'state');

  // a second rollout from the laptop stops at its canaries; the phone aborts it
  const again = await mesh(w.laptop, ['config', 'set', 'thermostat', 'setpoint=25', '--devices', ['dev-2', ...names.filter((n) => n !== 'dev-2')].join(','), '--canary', '1', '--wait', '60', '--json']);
  t.is(again.code, 4, show(again));
  // while it is stopped, no other rollout starts
  t.is(cliError(await mesh(phone, ['config', 'set', 'thermostat', 'setpoint=21', '--all', '--canary', '2', '--json'])), 'conflict');
  // both at once: the laptop has read the rollout when the phone aborts it; the laptop's own abort, from what it read, is conflict
  let ab: CliRun | undefined;
  await withOwner({ io: makeIo(true), home: w.laptop }, async (ctx) => {
    const held = await currentRollout(ctx);
    t.is(held.rec.state, 'stopped');
    ab = await mesh(phone, ['rollout', 'abort', '--json']);
    const e = await t.throwsAsync(abortRollout(ctx, held));
    t.true(isMeshError(e, 'conflict'), String(e));
  });
  if (ab === undefined) return;
  t.is(ab.code, 0, show(ab));
  t.is((ab.json as { state: string }).state, 'aborted');
  const after = await mesh(w.laptop, ['rollout', 'status', '--json']);
  t.is((after.json as { state: string }).state, 'aborted');
  t.is((after.json as { devices: { result: string }[] }).devices.filter((d) => d.result === 'not-sent').length, 9);
  t.is(cliError(await mesh(w.laptop, ['rollout', 'resume', '--json'])), 'state');
  for (const n of names) t.is(dev(n).config().setpoint, n === 'dev-2' ? 20 : 23, `${n} kept what it had`);
});

test.serial('a canary that is switched off: the rollout pauses (exit 3), nothing goes further; once it is back, resume finishes the rollout', async (t) => {
  const off = dev('dev-10');
  await w.fleet.stopOne(off);
  const order = ['dev-10', ...names.filter((n) => n !== 'dev-10')];
  const r = await mesh(w.laptop, ['config', 'set', 'thermostat', 'setpoint=21', '--devices', order.join(','), '--canary', '1', '--wait', '3', '--json']);
  t.is(r.code, 3, show(r));
  const out = r.json as { state: string; devices: { name: string; result: string }[] };
  t.is(out.state, 'paused');
  t.is(out.devices.find((d) => d.name === 'dev-10')?.result, 'not-reached');
  t.is(out.devices.filter((d) => d.result === 'not-sent').length, 9, 'the other nine were not sent it');
  for (const n of names.filter((x) => x !== 'dev-10')) t.not(dev(n).config().setpoint, 21, n);

  await w.fleet.restart(off);
  const res = await mesh(w.laptop, ['rollout', 'resume', '--wait', '60', '--json']);
  t.is(res.code, 0, show(res));
  t.is((res.json as { state: string }).state, 'done');
  for (const n of names) t.is(dev(n).config().setpoint, 21, n);
});

test.serial('a rollout record written by an administration device revoked since is not believed, and does not block the next rollout', async (t) => {
  const phone = w.phone as string;
  const p = await mesh(phone, ['config', 'set', 'thermostat', 'setpoint=22', '--all', '--canary', '1', '--wait', '60', '--json']);
  t.is(p.code, 0, show(p));
  t.is((p.json as { state: string }).state, 'done');
  const rv = await mesh(w.laptop, ['admin', 'revoke', 'phone', '--json']);
  t.is(rv.code, 0, show(rv));
  t.is(cliError(await mesh(w.laptop, ['rollout', 'status', '--json'])), 'revoked-key');
  const next = await mesh(w.laptop, ['config', 'set', 'thermostat', 'setpoint=20', '--all', '--canary', '2', '--wave', '4', '--wait', '60', '--json']);
  t.is(next.code, 0, show(next));
  t.is((next.json as { state: string }).state, 'done');
  for (const n of names) t.is(dev(n).config().setpoint, 20, n);
  t.is(((await mesh(w.laptop, ['rollout', 'status', '--json'])).json as { state: string }).state, 'done');
});

test.serial('a canary that fails its health check stops the rollout too (unhealthy, reverted on the device), under --confirm-within', async (t) => {
  const order = ['dev-1', 'dev-3', ...names.filter((n) => n !== 'dev-1' && n !== 'dev-3')];
  const r = await mesh(w.laptop, ['config', 'set', 'thermostat', 'setpoint=28', '--devices', order.join(','), '--canary', '2', '--confirm-within', '30s', '--wait', '60', '--json']);
  t.is(r.code, 4, show(r));
  const out = r.json as { state: string; devices: { name: string; result: string; code?: string; message?: string }[] };
  t.is(out.state, 'stopped');
  const d3 = out.devices.find((d) => d.name === 'dev-3');
  t.is(d3?.result, 'unhealthy');
  t.regex(d3?.message ?? '', /heater self-test failed/);
  t.is(out.devices.find((d) => d.name === 'dev-1')?.result, 'applied');
  t.is(out.devices.filter((d) => d.result === 'not-sent').length, 8);
  t.is(dev('dev-3').config().setpoint, 20, 'dev-3 went back on its own');
  for (const n of order.slice(2)) t.is(dev(n).config().setpoint, 20, `${n} never got it`);
  t.is((await mesh(w.laptop, ['rollout', 'abort', '--json'])).code, 0);
});

test.serial('the laptop is lost during a rollout: after mesh recover the new computer reads the record (with the escrow key), shows it and can abort it', async (t) => {
  const order = ['dev-1', 'dev-2', ...names.filter((n) => n !== 'dev-1' && n !== 'dev-2')];
  const r = await mesh(w.laptop, ['config', 'set', 'thermostat', 'setpoint=23', '--devices', order.join(','), '--canary', '2', '--wait', '60', '--json']);
  t.is(r.code, 4, show(r));
  t.is((r.json as { state: string }).state, 'stopped');
  const fresh = tmpHome('rollout-recovered');
  w.recovered = fresh;
  const rec = await mesh(fresh, ['recover', ...w.shares.slice(0, 3), '--portal', w.portal.http, '--account', w.account, '--admin-name', 'new laptop', '--json']);
  t.is(rec.code, 0, show(rec));
  t.true((rec.json as { rollout: boolean }).rollout, 'the rollout record was read back');
  const st = await mesh(fresh, ['rollout', 'status', '--json']);
  t.is(st.code, 0, show(st));
  t.is((st.json as { state: string }).state, 'stopped');
  const human = await mesh(fresh, ['rollout', 'status']);
  t.regex(human.stdout, /dev-2: REFUSED \[schema\]: .*setpoint/);
  const ab = await mesh(fresh, ['rollout', 'abort', '--json']);
  t.is(ab.code, 0, show(ab));
  t.is(((await mesh(fresh, ['rollout', 'status', '--json'])).json as { state: string }).state, 'aborted');
});
