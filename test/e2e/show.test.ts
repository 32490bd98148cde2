/**
 * What owners see, with real processes: `mesh device show` gives the effective configuration and
 * who set each value (from the part of the device's signed report encrypted to its owners), and
 * the portal's stored report of a device that refused a value names no setting and no value.
 */
import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { startPortalProcess } from '../../harness/portal-process.js';
import { AGENT_CLI, provisionDevice, startAgentProcess } from '../../harness/agent-process.js';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { openPrivateStatus, verifyStatus } from '../../mesh/messages.js';
import { TestOwner } from '../../harness/owner.js';
import { verifyDeviceProfile } from '../../mesh/profiles.js';
import { fromB64u } from '../../mesh/bytes.js';
import { mesh, tmpHome } from '../hostile/world.js';

const run = promisify(execFile);

interface Shown {
  effective: Record<string, Record<string, { value: unknown; owner: string; n: number }>> | null;
  errors: { code: string; message: string }[];
  device: { owners: { account: string; role: string; new: boolean }[] };
}

test.serial("Bob's value shows in Alice's device show as set by Bob; a change on the device's dial shows as local to both and yields to the next owner change; the portal's copy of a refusal names no setting or value", async (t) => {
  const portal = await startPortalProcess({ args: ['--no-mqtt'] });
  const { dir, identity } = provisionDevice(portal.http, { push: false, pollIntervalMs: 200 });
  const agent = await startAgentProcess(dir);
  const home = tmpHome('alice');
  const bob = await TestOwner.create(portal.http, 'bob');
  try {
    const created = await mesh(home, ['profile', 'create', '--portal', portal.http, '--account', 'alice', '--json']);
    t.is(created.code, 0, created.stderr);
    const claimed = await mesh(home, ['device', 'claim', identity.labelUri, '--name', 'hall', '--json']);
    t.is((claimed.json as { accepted: boolean }).accepted, true, claimed.stdout);
    t.is((await mesh(home, ['config', 'set', 'thermostat', 'setpoint=21', 'mode=eco'])).code, 0);
    const inv = await mesh(home, ['device', 'invite', 'hall', '--json']);
    await bob.acceptInvite((inv.json as { invitation: string }).invitation);
    await agent.waitFor((e) => e.type === 'claimed' && e.account === bob.account, 20_000, 'bob');
    const enc = fromB64u(verifyDeviceProfile(identity.profile).payload.enc, 'enc', 32);
    bob.devices.set(identity.id, { id: identity.id, enc });
    await bob.publish('thermostat', { setpoint: 25 });
    await agent.waitFor((e) => e.type === 'applied' && e.account === bob.account, 20_000, "bob's 25");
    // a value out of range, published around any check a CLI would make: the device refuses it
    await bob.publish('thermostat', { setpoint: 87.25 });
    await agent.waitFor((e) => e.type === 'refused' && e.code === 'schema', 20_000, 'the refusal');

    let shown: Shown | undefined;
    for (let i = 0; i < 100; i++) {
      const r = await mesh(home, ['device', 'show', 'hall', '--json']);
      t.is(r.code, 0, r.stderr);
      shown = r.json as Shown;
      if (shown.effective?.thermostat?.setpoint?.value === 25 && shown.errors.some((e) => e.code === 'schema')) break;
      await new Promise((res) => setTimeout(res, 200));
    }
    const eff = shown?.effective?.thermostat;
    t.is(eff?.setpoint?.value, 25);
    t.is(eff?.setpoint?.owner, bob.account, 'the value is shown as set by Bob');
    t.is(eff?.mode?.value, 'eco');
    t.regex(eff?.mode?.owner ?? '', /^alice@/);
    const refusal = shown?.errors.find((e) => e.code === 'schema');
    t.regex(refusal?.message ?? '', /87\.25/, 'the owner reads the full refusal');
    t.true(shown?.device.owners.some((o) => o.account === bob.account && o.new));
    const text = (await mesh(home, ['device', 'show', 'hall'])).stdout;
    t.regex(text, /thermostat\.setpoint = 25 {3}set by bob@/);

    // the device's own dial: in effect at once, shown to both owners as local, replaced by the next owner change
    const dial = await run(process.execPath, [AGENT_CLI, 'set', '--data', dir, 'thermostat', 'setpoint=23', '--json']);
    t.regex(dial.stdout, /set on the device/);
    const localShown = async (): Promise<boolean> => {
      const r = (await mesh(home, ['device', 'show', 'hall', '--json'])).json as Shown;
      return r.effective?.thermostat?.setpoint?.value === 23 && r.effective.thermostat.setpoint.owner === 'local';
    };
    let seen = false;
    for (let i = 0; i < 100 && !(seen = await localShown()); i++) await new Promise((res) => setTimeout(res, 200));
    t.true(seen, "Alice's device show says the device itself set 23");
    const bobView = async (): Promise<unknown> => {
      const entry = (await bob.client.deviceStatus()).find((x) => x.device === identity.id);
      if (entry?.status == null) return undefined;
      const st = verifyStatus(entry.status, fromB64u(verifyDeviceProfile(identity.profile).payload.sign, 'sign', 32));
      return openPrivateStatus(st, bob.admin.enc)?.effective.thermostat?.setpoint?.owner;
    };
    t.is(await bobView(), 'local', "and so does Bob's");
    t.is((await mesh(home, ['config', 'set', 'thermostat', 'setpoint=18'])).code, 0);
    for (let i = 0; i < 100 && (await bobView()) === 'local'; i++) await new Promise((res) => setTimeout(res, 200));
    t.regex(String(await bobView()), /^alice@/, "the owner's next change replaces the dial's value");

    // what the portal stores: codes, numbers and times; no setting name, no value
    const db = new Database(path.join(portal.dataDir, 'portal.db'), { readonly: true });
    const row = db.prepare('SELECT status FROM statuses WHERE device = ?').get(identity.id) as { status: string };
    db.close();
    const payload = Buffer.from((JSON.parse(row.status) as { payload: string }).payload, 'base64url').toString('utf8');
    t.true(payload.includes('"schema"'), 'the code is there');
    for (const secret of ['setpoint', '87.25', 'eco', 'mode']) t.false(payload.includes(secret), `the stored status does not contain "${secret}"`);
  } finally {
    bob.close();
    await agent.stop();
    await portal.stop();
    for (const d of [dir, home]) fs.rmSync(d, { recursive: true, force: true });
  }
});
