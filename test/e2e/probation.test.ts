/**
 * Headless changes that cannot strand a device, with real processes: the device reaches the portal
 * only through a TCP link (harness/proxy.ts cuttableLink) that stops forwarding while the hook says
 * so; the device's hook cuts that link when a setting takes a "bad" value (as a
 * wrong network setting would). A change asking for confirmation that cuts the device off is
 * reverted within its window, the link comes back, and the owner reads `reverted` in the device's
 * signed report; a failing health command reverts with `unhealthy`; kill -9 of the agent in the
 * window always ends confirmed or reverted after the restart.
 */
import test, { type ExecutionContext } from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { startPortalProcess, type PortalProcess } from '../../harness/portal-process.js';
import { provisionDevice, startAgentProcess, THERMOSTAT_SCHEMA, type AgentProcess } from '../../harness/agent-process.js';
import { TestOwner } from '../../harness/owner.js';
import { cuttableLink } from '../../harness/proxy.js';
import { fromB64u } from '../../mesh/bytes.js';
import { verifyDeviceProfile } from '../../mesh/profiles.js';
import { openPrivateStatus, verifyStatus, type StatusError } from '../../mesh/messages.js';
import { mesh, tmpHome } from '../hostile/world.js';

interface World {
  portal: PortalProcess;
  proxy: Awaited<ReturnType<typeof cuttableLink>>;
  dir: string;
  cut: string;
  agent: AgentProcess;
  alice: TestOwner;
  devPub: Uint8Array;
  profile: import('../../mesh/envelope.js').SignedEnvelope;
  close(): Promise<void>;
}

/** The hook cuts the device's link while the setpoint is 29 (a "network" value that breaks it), and restores it otherwise. */
async function world(opts: { health?: string } = {}): Promise<World> {
  const portal = await startPortalProcess({ args: ['--no-mqtt'] });
  // the link: no connection passes while the hook says it is cut (an open one is closed at its next bytes)
  let cut = '';
  const proxy = await cuttableLink(Number(new URL(portal.http).port), () => cut !== '' && fs.existsSync(cut));
  const { dir, identity } = provisionDevice(proxy.url, { push: false, pollIntervalMs: 200 });
  cut = path.join(dir, 'link-cut');
  const settings = path.join(dir, 'agent.json');
  const hook = `if grep -Eq '"setpoint": ?29([^0-9]|$)' "$MESH_CONFIG"; then touch '${cut}'; else rm -f '${cut}'; fi`;
  fs.writeFileSync(settings, JSON.stringify({ ...(JSON.parse(fs.readFileSync(settings, 'utf8')) as object), hook, ...(opts.health !== undefined ? { health: { command: opts.health, timeoutMs: 5000 } } : {}) }));
  const agent = await startAgentProcess(dir);
  const alice = await TestOwner.create(portal.http, 'alice');
  await alice.claim(identity.labelUri);
  await agent.waitFor((e) => e.type === 'claimed', 20_000, 'claimed');
  await alice.publish('thermostat', { setpoint: 20 });
  await agent.waitFor((e) => e.type === 'applied' && e.seq === 1, 20_000, 'the first configuration');
  const w: World = {
    portal,
    proxy,
    dir,
    cut,
    agent,
    alice,
    devPub: fromB64u(verifyDeviceProfile(identity.profile).payload.sign, 'sign', 32),
    profile: identity.profile,
    async close() {
      alice.close();
      await w.agent.stop();
      await proxy.close();
      await portal.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  return w;
}

const setpoint = (w: World): unknown => (JSON.parse(fs.readFileSync(path.join(w.dir, 'config.json'), 'utf8')) as { thermostat?: { setpoint?: unknown } }).thermostat?.setpoint;

/** The owner's view of the device's refusals (the full text from the private part), once one with `code` for `seq` is there. */
async function reported(t: ExecutionContext, w: World, code: string, seq: number): Promise<StatusError> {
  for (let i = 0; i < 150; i++) {
    const e = (await w.alice.client.deviceStatus())[0]?.status;
    if (e != null) {
      const st = verifyStatus(e, w.devPub);
      const full = openPrivateStatus(st, w.alice.admin.enc)?.errors ?? st.errors;
      const hit = full.find((x) => x.code === code && x.seq === seq);
      if (hit !== undefined) return hit;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  t.fail(`no ${code} for #${seq} in the device's report`);
  throw new Error('unreachable');
}

test.serial('a change that cuts the device off is reverted within its window; the link comes back and the owner reads why', async (t) => {
  const w = await world();
  try {
    await w.alice.publish('thermostat', { setpoint: 29 }, { confirmS: 3 });
    await w.agent.waitFor((e) => e.type === 'applied' && e.seq === 2, 20_000, 'the bad change applied');
    const r = await w.agent.waitFor((e) => e.type === 'reverted' || e.type === 'confirmed', 30_000, 'the end of the probation');
    t.is(r.type, 'reverted');
    t.is(setpoint(w), 20, 'the configuration before it is back');
    for (let i = 0; i < 100 && fs.existsSync(w.cut); i++) await new Promise((res) => setTimeout(res, 100));
    t.false(fs.existsSync(w.cut), 'the hook ran again and restored the link');
    const err = await reported(t, w, 'reverted', 2);
    t.regex(err.message, /no portal contact within 3 s/);
    // the feed moves again, and the reverted change is not applied again when it comes by
    await w.alice.publish('thermostat', { setpoint: 21 });
    await w.agent.waitFor((e) => e.type === 'applied' && e.seq === 3, 20_000, 'the next change');
    t.is(setpoint(w), 21);
  } finally {
    await w.close();
  }
});

test.serial('a change that keeps the link is confirmed; a failing health check after any change reverts it with unhealthy and its output', async (t) => {
  const w = await world({ health: `if grep -Eq '"setpoint": ?25([^0-9]|$)' "$MESH_CONFIG"; then echo 'the sensor says no'; exit 3; fi` });
  try {
    await w.alice.publish('thermostat', { setpoint: 22 }, { confirmS: 20 });
    t.is((await w.agent.waitFor((e) => (e.type === 'reverted' || e.type === 'confirmed' || e.type === 'unhealthy') && e.seq === 2, 30_000, 'the first probation')).type, 'confirmed');
    t.is(setpoint(w), 22);
    // no confirmation asked for: the device's health check runs after the change all the same
    await w.alice.publish('thermostat', { setpoint: 25 });
    const r = await w.agent.waitFor((e) => (e.type === 'reverted' || e.type === 'confirmed' || e.type === 'unhealthy') && e.seq === 3, 30_000, 'the second probation');
    t.is(r.type, 'unhealthy');
    t.is(setpoint(w), 22);
    const err = await reported(t, w, 'unhealthy', 3);
    t.regex(err.message, /exited with 3: the sensor says no/);
  } finally {
    await w.close();
  }
});

test.serial('kill -9 of the agent inside the window: after the restart the change ends confirmed (link up) or reverted (link down), never in between', async (t) => {
  const w = await world();
  try {
    for (const [i, linkUp] of [[0, false], [1, true]] as const) {
      const seq = 2 + i * 2;
      // the window includes the reboot: long enough for it when the link comes back, short when it does not (the test waits it out)
      await w.alice.publish('thermostat', { setpoint: 29 }, { confirmS: linkUp ? 60 : 4 });
      await w.agent.waitFor((e) => e.type === 'applied' && e.seq === seq, 20_000, `#${seq} applied`);
      // the hook has cut the link (its shell outlives a killed agent: wait for it, so it cannot cut the link after the reboot)
      for (let j = 0; j < 200 && !fs.existsSync(w.cut); j++) await new Promise((res) => setTimeout(res, 50));
      t.true(fs.existsSync(w.cut), 'the hook cut the link');
      w.agent.proc.kill('SIGKILL');
      await w.agent.stop();
      const state = JSON.parse(fs.readFileSync(path.join(w.dir, 'state.json'), 'utf8')) as { pending: { seq: number } | null };
      t.is(state.pending?.seq, seq, 'the probation is on disk');
      // the board reboots with the setting in effect: its link is down (or, the second time, it was moved back in range)
      if (linkUp) fs.rmSync(w.cut, { force: true });
      w.agent = await startAgentProcess(w.dir);
      const end = await w.agent.waitFor((e) => e.type === 'reverted' || e.type === 'confirmed', 30_000, 'the end of the probation after the restart');
      t.is(end.type, linkUp ? 'confirmed' : 'reverted');
      t.is(setpoint(w), linkUp ? 29 : 20);
      const after = JSON.parse(fs.readFileSync(path.join(w.dir, 'state.json'), 'utf8')) as { pending: unknown };
      t.is(after.pending, null);
      // a change that was confirmed at 29 cuts the link for good in this test world: restore it for the next round
      fs.rmSync(w.cut, { force: true });
      await w.alice.publish('thermostat', { setpoint: 20 });
      await w.agent.waitFor((e) => e.type === 'applied' && e.seq === seq + 1, 20_000, 'back to 20');
    }
  } finally {
    await w.close();
  }
});

test.serial("the owner's CLI: mesh config set --confirm-within prints REVERTED (no portal contact) and exits 4; without trouble, applied", async (t) => {
  const w = await world();
  const home = tmpHome('alice-cli');
  try {
    t.is((await mesh(home, ['profile', 'create', '--portal', w.portal.http, '--account', 'carol', '--json'])).code, 0);
    const inv = await w.alice.invite({ ...[...w.alice.devices.values()][0]!, profile: w.profile }, { epoch: (JSON.parse(fs.readFileSync(path.join(w.dir, 'state.json'), 'utf8')) as { epoch: string }).epoch, schemas: { thermostat: THERMOSTAT_SCHEMA } });
    const claimed = await mesh(home, ['device', 'claim', inv.uri, '--name', 'hall', '--json']);
    t.is((claimed.json as { accepted: boolean }).accepted, true, claimed.stdout);
    const ok = await mesh(home, ['config', 'set', 'thermostat', 'setpoint=22', '--confirm-within', '20s', '--wait', '30']);
    t.is(ok.code, 0, ok.stdout + ok.stderr);
    t.regex(ok.stdout, /hall: applied/);
    const bad = await mesh(home, ['config', 'set', 'thermostat', 'setpoint=29', '--confirm-within', '3s', '--wait', '40']);
    t.is(bad.code, 4, bad.stdout + bad.stderr);
    t.regex(bad.stdout, /hall: REVERTED #\d+ \(no portal contact\)/);
  } finally {
    fs.rmSync(home, { recursive: true, force: true });
    await w.close();
  }
});

test.serial('a power cut in the middle of a revert (the configuration before it back on disk, the state not yet): after the reboot the change is checked again and reverted, never confirmed on the old file', async (t) => {
  const w = await world();
  const settings = path.join(w.dir, 'agent.json');
  const withHealth = (command: string): void => fs.writeFileSync(settings, JSON.stringify({ ...(JSON.parse(fs.readFileSync(settings, 'utf8')) as object), health: { command, timeoutMs: 60_000 } }));
  try {
    const before = fs.readFileSync(path.join(w.dir, 'config.json'), 'utf8');
    // a health check that takes its time: the change is on probation, on disk, while it runs
    withHealth(`if grep -Eq '"setpoint": ?25([^0-9]|$)' "$MESH_CONFIG"; then sleep 30; exit 3; fi`);
    await w.agent.stop();
    w.agent = await startAgentProcess(w.dir);
    await w.alice.publish('thermostat', { setpoint: 25 }, { confirmS: 60 });
    await w.agent.waitFor((e) => e.type === 'applied' && e.seq === 2, 20_000, '#2 applied');
    w.agent.proc.kill('SIGKILL');
    await w.agent.stop();
    t.is((JSON.parse(fs.readFileSync(path.join(w.dir, 'state.json'), 'utf8')) as { pending: { seq: number } | null }).pending?.seq, 2, 'the probation is on disk');
    // the revert had written the configuration before the change, and the power went before the state followed
    fs.writeFileSync(path.join(w.dir, 'config.json'), before);
    withHealth(`if grep -Eq '"setpoint": ?25([^0-9]|$)' "$MESH_CONFIG"; then echo 'the sensor says no'; exit 3; fi`);
    w.agent = await startAgentProcess(w.dir);
    const end = await w.agent.waitFor((e) => (e.type === 'reverted' || e.type === 'confirmed' || e.type === 'unhealthy') && e.seq === 2, 30_000, 'the end of the probation after the reboot');
    t.is(end.type, 'unhealthy', 'the change itself was checked again, not the file the revert had left');
    t.is(setpoint(w), 20);
    t.is((JSON.parse(fs.readFileSync(path.join(w.dir, 'state.json'), 'utf8')) as { pending: unknown }).pending, null);
  } finally {
    await w.close();
  }
});
