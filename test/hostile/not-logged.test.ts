/**
 * The device enforces the portal's log (mesh/feedlog.ts, agent/logged.ts). A REAL portal, the
 * proxy, a REAL agent process:
 *   - the portal serves the device an object its log does not hold (Alice's genuinely signed
 *     profile, never published, in place of the one she did publish, with that one's proof):
 *     refused `not-logged`, config.json untouched, the cursor held; once the object is logged
 *     the device obeys it;
 *   - proofs that are merely late (answers without them): nothing applied, nothing lost, no
 *     refusal; once the proofs come the items are applied;
 *   - an image that pins another portal key (agent.json portalKey): the agent refuses the portal
 *     (`bad-key`) and never registers.
 */
import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeJsonAtomic } from '../../runtime/files.js';
import { signKeyId } from '../../mesh/keys.js';
import { ed25519KeyPair } from '../../mesh/crypto.js';
import { spawn } from 'node:child_process';
import { AGENT_CLI, agentStatus, provisionDevice, startAgentProcess, until } from '../../harness/agent-process.js';
import { startPortalProcess } from '../../harness/portal-process.js';
import { DOWNLOAD, onDownload, swapNextItem } from './proxy.js';
import { assertRefused, hostileWorld, refusal } from './world.js';

test.serial('an object the portal never logged is refused not-logged; once it is logged the device obeys it', async (t) => {
  const w = await hostileWorld();
  try {
    const before = w.configBytes();
    const n0 = w.state().n;
    // signed by Alice, never published: no log holds it
    const unlogged = w.alice.applicationProfile('thermostat', { setpoint: 27 }, { seq: 3 });
    const { rule, served } = swapNextItem('unlogged', (it) => it.kind === 'application', (it) => ({ ...it, object: unlogged as never }));
    const off = w.proxy.use(rule);
    await w.alice.publish('thermostat', { setpoint: 22 }, { seq: 2 });
    const n = await served;
    t.is(n, n0 + 1);
    const r = await refusal(w, (e) => e.n === n, `item ${n} refused`);
    t.is(r.code, 'not-logged');
    await assertRefused(t, w, before, 'not-logged');
    t.is(w.state().n, n0, 'the cursor stays before the unlogged item: it is asked for again');
    // still refused when asked again (the proxy keeps serving it), and nothing applied meanwhile
    const asked = w.proxy.exchanges.filter((x) => x.url.startsWith(DOWNLOAD) && x.rules.includes('unlogged')).length;
    await until('the device to ask again', () => (w.proxy.exchanges.filter((x) => x.url.startsWith(DOWNLOAD) && x.rules.includes('unlogged')).length > asked + 1 ? true : undefined));
    t.is(w.configBytes(), before);
    t.is(w.state().n, n0);

    // the object is logged (published for real); the portal serves its feed honestly again
    off();
    await w.alice.client.publish(unlogged);
    await w.agent.waitFor((e) => e.type === 'applied' && e.seq === 3, 15_000, 'the logged object applied');
    t.is(JSON.parse(w.configBytes()).thermostat.setpoint, 27, 'the device obeys the object once it is logged');
    t.is(w.state().n, n0 + 2);
  } finally {
    await w.close();
  }
});

test.serial('proofs that are merely late hold the items back, and they are applied once the proofs come', async (t) => {
  const w = await hostileWorld();
  try {
    const before = w.configBytes();
    const n0 = w.state().n;
    let stripped = 0;
    const off = w.proxy.use(
      onDownload('late', (body) => {
        if (body.items.length === 0) return undefined;
        stripped++;
        const { log: _log, ...rest } = body as typeof body & { log?: unknown };
        return { ...rest, items: body.items.map(({ path: _p, ...it }: typeof body.items[number] & { path?: unknown }) => it) };
      }),
    );
    await w.alice.publish('thermostat', { setpoint: 23 });
    await until('the device to be sent the item without proof three times', () => (stripped >= 3 ? true : undefined));
    t.is(w.configBytes(), before, 'nothing applied without proof');
    t.is(w.state().n, n0, 'nothing skipped either: the cursor stays');
    const st = await agentStatus(w.dir);
    t.false(st.errors.some((e) => e.code === 'not-logged'), 'late is not refused (within the grace period)');
    off();
    await w.agent.waitFor((e) => e.type === 'applied' && e.seq === 2, 15_000, 'applied once proven');
    t.is(JSON.parse(w.configBytes()).thermostat.setpoint, 23);
    // the status reports the head the device now holds: at least as large as the item's log entry
    const s = await until('a signed status with a head', async () => {
      const x = await w.signedStatus();
      return x?.treeHead !== undefined && x.n === n0 + 1 ? x : undefined;
    });
    t.true((s.treeHead?.size ?? 0) > 0);
  } finally {
    await w.close();
  }
});

test.serial("an image that pins another portal key refuses the portal: bad-key, never registered", async (t) => {
  const portal = await startPortalProcess({ args: ['--no-mqtt'] });
  const { dir } = provisionDevice(portal.http, { push: false, pollIntervalMs: 200 });
  const other = signKeyId(ed25519KeyPair().publicKey);
  t.not(other, portal.portal);
  const f = path.join(dir, 'agent.json');
  writeJsonAtomic(f, { ...(JSON.parse(fs.readFileSync(f, 'utf8')) as object), portalKey: other }, 0o644);
  // the agent never becomes ready (it never registers): run it without waiting for that
  const proc = spawn(process.execPath, [AGENT_CLI, 'run', '--data', dir], { stdio: ['ignore', 'ignore', 'pipe'] });
  let logs = '';
  proc.stderr.setEncoding('utf8').on('data', (d: string) => (logs = (logs + d).slice(-100_000)));
  try {
    await until('a registration refused with bad-key', () => (/"event":"register-failed"[^\n]*"code":"bad-key"/.test(logs) ? true : undefined));
    t.false((await agentStatus(dir)).registered);
    t.is(proc.exitCode, null, 'the agent keeps running (and trying)');
    proc.kill('SIGTERM');
    await new Promise((r) => proc.once('exit', r));
    // control: the same image pinning the right key registers
    writeJsonAtomic(f, { ...(JSON.parse(fs.readFileSync(f, 'utf8')) as object), portalKey: portal.portal }, 0o644);
    const good = await startAgentProcess(dir);
    try {
      await until('registered', async () => ((await agentStatus(dir)).registered ? true : undefined));
      t.pass();
    } finally {
      await good.stop();
    }
  } finally {
    if (proc.exitCode === null) proc.kill('SIGKILL');
    await portal.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
