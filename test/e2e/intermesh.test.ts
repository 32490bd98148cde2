/**
 * The Intermesh (issue 18), REAL processes: portals A and B, a device provisioned for A, Alice
 * (the `mesh` CLI, home A) and Bob (home B). Alice invites Bob; Bob accepts with his CLI homed on
 * B: A binds him as a visitor on the strength of his master profile, and his claim, his setting
 * and his reading of the device's status go to A. The device applies Bob's setting; Alice sees it
 * as set by Bob. A stranger on B gets nothing at A: no invitation, no device.
 */
import test from 'ava';
import * as fs from 'node:fs';
import { startPortalProcess } from '../../harness/portal-process.js';
import { provisionDevice, readConfig, startAgentProcess, until } from '../../harness/agent-process.js';
import { MESH_CLI, mesh, tmpHome, type CliRun } from '../hostile/world.js';
import { spawn } from 'node:child_process';
import { loadAdminKeys, loadState } from '../../admin/state.js';
import { PortalClient } from '../../client/portal-client.js';
import { createApplicationProfile, createPersonalProfile, verifyMasterProfile } from '../../mesh/profiles.js';
import { createClaim, createRemove } from '../../mesh/messages.js';
import { deriveClaimSecrets, parseClaimLabel } from '../../mesh/claim.js';
import { fromB64u } from '../../mesh/bytes.js';
import { isMeshError } from '../../mesh/errors.js';
import { formatVkey } from '../../mesh/cosignature.js';
import * as c from '../../mesh/crypto.js';

const ok = (t: { is: (a: unknown, b: unknown, m?: string) => void }, r: CliRun, what: string): CliRun => {
  t.is(r.code, 0, `${what}: ${r.stdout}${r.stderr}`);
  return r;
};

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'accepted';
  } catch (e) {
    return isMeshError(e) ? e.code : String(e);
  }
}

test.serial('Bob on portal B co-owns a device on portal A by Alice’s invitation; a stranger on B gets nothing at A', async (t) => {
  const a = await startPortalProcess({ args: ['--no-mqtt', '--name', 'a.test'] });
  const b = await startPortalProcess({ args: ['--no-mqtt', '--name', 'b.test'] });
  const { dir, identity } = provisionDevice(a.http, { push: false, pollIntervalMs: 200 });
  const agent = await startAgentProcess(dir);
  const alice = tmpHome('alice');
  const bob = tmpHome('bob');
  const eve = tmpHome('eve');
  const homes: string[] = [];
  try {
    ok(t, await mesh(alice, ['profile', 'create', '--portal', a.http, '--account', 'alice', '--admin-name', 'laptop', '--json']), 'alice profile');
    ok(t, await mesh(bob, ['profile', 'create', '--portal', b.http, '--account', 'bob', '--admin-name', 'phone', '--keep-master-key', '--json']), 'bob profile (home B)');
    ok(t, await mesh(eve, ['profile', 'create', '--portal', b.http, '--account', 'eve', '--admin-name', 'pc', '--json']), 'eve profile (home B)');
    ok(t, await mesh(alice, ['device', 'claim', identity.labelUri, '--name', 'hall', '--wait-ms', '15000', '--json']), 'alice claims');
    ok(t, await mesh(alice, ['config', 'set', 'thermostat', 'setpoint=21', '--wait-ms', '15000', '--json']), 'alice sets 21');
    const inv = ok(t, await mesh(alice, ['device', 'invite', 'hall', '--json']), 'invite');
    const invitation = (inv.json as { invitation: string }).invitation;

    // Bob, home B, accepts at A (the invitation names A's host; --portal gives its http URL)
    const claimed = ok(t, await mesh(bob, ['device', 'claim', invitation, '--portal', a.http, '--name', 'hall', '--wait-ms', '15000', '--json']), 'bob accepts at A');
    t.is(claimed.json.accepted, true, claimed.stdout);
    const bobState = loadState(bob);
    t.is(bobState.account, 'bob@b.test', 'Bob stays at home B');
    t.is(bobState.portal, b.http);
    const rec = bobState.devices.find((d) => d.name === 'hall');
    t.is(rec?.portal?.url, a.http, "the device's record keeps its portal");
    t.is(rec?.portal?.id, a.portal, "A's key pinned");

    // Bob sets a value: it goes to A, the device applies it
    const set = ok(t, await mesh(bob, ['config', 'set', 'thermostat', 'mode=eco', '--wait-ms', '20000', '--json']), 'bob sets eco');
    t.is(set.json?.results?.[0]?.result, 'applied', set.stdout);
    await until('the device applies both', () => {
      const cfg = readConfig(dir).thermostat;
      return cfg?.setpoint === 21 && cfg.mode === 'eco' ? true : undefined;
    });
    // Bob reads the device's status from A
    const bobShow = ok(t, await mesh(bob, ['device', 'show', 'hall', '--json']), 'bob show');
    t.is(bobShow.json.effective?.thermostat?.mode?.owner, 'bob@b.test', bobShow.stdout);
    // Alice sees it as set by Bob
    let shown: { effective: Record<string, Record<string, { value: unknown; owner: string }>> | null } | undefined;
    await until('alice sees mode=eco set by bob', async () => {
      shown = (await mesh(alice, ['device', 'show', 'hall', '--json'])).json as typeof shown;
      return shown?.effective?.thermostat?.mode?.value === 'eco' ? true : undefined;
    });
    t.is(shown?.effective?.thermostat?.mode?.owner, 'bob@b.test');
    t.is(shown?.effective?.thermostat?.setpoint?.owner, 'alice@a.test');

    // Bob changes his master profile at home (lists a witness, quorum 0): his next visit to A sends it there first
    const wkey = formatVkey({ name: 'w.test', publicKey: c.ed25519KeyPair(c.randomBytes(32)).publicKey });
    ok(t, await mesh(bob, ['log', 'witnesses', '--add', wkey, '--quorum', '0', '--json']), 'bob master #2 at home');
    const set2 = ok(t, await mesh(bob, ['config', 'set', 'thermostat', 'mode=comfort', '--wait-ms', '20000', '--json']), 'bob sets comfort');
    t.is(set2.json?.results?.[0]?.result, 'applied', set2.stdout);
    const bs = loadState(bob);
    const bc = new PortalClient({ url: a.http, identity: { subject: bs.account, key: loadAdminKeys(bob).sign } });
    try {
      const atA = verifyMasterProfile((await bc.account()).master, bs.master);
      t.is(atA.payload.seq, 2, "A holds Bob's master profile #2");
      t.is(atA.payload.witnesses?.[0], wkey);
    } finally {
      bc.close();
    }

    // Bob adds a tablet at home: it learns from his personal profile that hall is at A, and is let in there
    // (A held a master that did not list it: it binds with the newer one, which then goes to A and to the device)
    const tablet = tmpHome('tablet');
    homes.push(tablet);
    let joined: Promise<CliRun> | undefined;
    const add = await new Promise<{ code: number; out: string }>((resolve) => {
      const child = spawn(process.execPath, [MESH_CLI, '--home', bob, 'admin', 'add', '--name', 'tablet', '--wait-ms', '60000', '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => {
        out += d;
        const line = out.split('\n').find((l) => l.includes('"pin"') && l.endsWith('}'));
        if (joined !== undefined || line === undefined) return;
        const { pin } = JSON.parse(line) as { pin: string };
        joined = mesh(tablet, ['admin', 'join', '--portal', b.http, '--account', 'bob@b.test', '--pin', pin, '--name', 'tablet', '--wait-ms', '60000', '--json']);
      });
      child.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
      child.on('close', (code) => resolve({ code: code ?? -1, out }));
    });
    t.is(add.code, 0, add.out);
    ok(t, await (joined as Promise<CliRun>), 'tablet joins');
    t.is(loadState(tablet).devices.find((d) => d.name === 'hall')?.portal?.id, a.portal, "the tablet knows hall's portal from the personal profile");
    const set3 = ok(t, await mesh(tablet, ['config', 'set', 'thermostat', 'mode=off', '--wait-ms', '20000', '--json']), 'the tablet sets off');
    t.is(set3.json?.results?.[0]?.result, 'applied', set3.stdout);
    t.is(readConfig(dir).thermostat?.mode, 'off');

    // Eve (home B, no invitation): the used invitation is refused, and bound at A as a visitor she can do nothing to the device
    const again = await mesh(eve, ['device', 'claim', invitation, '--portal', a.http, '--json']);
    t.not(again.code, 0);
    t.is(again.json?.error?.code, 'invitation-used', again.stdout + again.stderr);
    const es = loadState(eve);
    const ek = loadAdminKeys(eve);
    const pc = new PortalClient({ url: a.http, identity: { subject: es.account, key: ek.sign } });
    try {
      const personal = createPersonalProfile(ek, { master: es.master, account: es.account, seq: 1, devices: [], apps: [] });
      await pc.bindAccount({ account: 'eve', home: 'b.test', master: es.masterEnvelope, personal, request: await pc.sessionRequest(ek.sign, es.account) });
      t.deepEqual(await pc.deviceStatus(), [], 'no device status for her');
      const label = parseClaimLabel(identity.labelUri);
      const secrets = deriveClaimSecrets(label.secret);
      t.is(await code(pc.claimLookup(secrets.claimId)), 'forbidden', 'a visitor cannot claim by label');
      const claim = createClaim(ek.sign, secrets, { device: identity.id, master: es.master, account: es.account });
      t.is(await code(pc.claim(secrets.claimId, claim)), 'forbidden');
      const rm = createRemove(ek.sign, { device: identity.id, master: es.master });
      t.is(await code(pc.post(identity.id, rm)), 'forbidden', 'a visitor posts nothing but configurations');
      const app = createApplicationProfile(ek, { master: es.master, app: 'thermostat', seq: 1, config: { setpoint: 30 }, devices: [{ id: identity.id, enc: fromB64u(rec?.enc ?? '', 'enc', 32) }] });
      t.is(await code(pc.publish(app)), 'forbidden', "not a device she owns");
      t.is(await code(pc.publish(createPersonalProfile(ek, { master: es.master, account: es.account, seq: 2, devices: [], apps: [] }))), 'forbidden');
    } finally {
      pc.close();
    }
    t.is(readConfig(dir).thermostat?.setpoint, 21);
  } finally {
    await agent.stop();
    await a.stop();
    await b.stop();
    for (const d of [alice, bob, eve, dir, ...homes]) fs.rmSync(d, { recursive: true, force: true });
  }
});
