/**
 * The device agent as a real process against a real portal process: claims by two owners,
 * headless updates by push, schema refusal, rollback refusal, catch-up after a broker restart,
 * removal of one owner, revocation, factory reset, first boot.
 */
import test, { type ExecutionContext } from 'ava';
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { startPortalProcess } from '../harness/portal-process.js';
import { provisionDevice, startAgentProcess, readConfig, agentStatus, until, openClaimWindow, AGENT_CLI, type AgentProcess } from '../harness/agent-process.js';
import { TestOwner } from '../harness/owner.js';
import { openPrivateStatus, verifyStatus } from '../mesh/messages.js';
import { verifyDeviceProfile } from '../mesh/profiles.js';
import { fromB64u } from '../mesh/bytes.js';
import Database from 'better-sqlite3';

const MQTT_URL = process.env.MESH_TEST_MQTT ?? 'mqtt://127.0.0.1:1883';


interface World {
  readonly portal: Awaited<ReturnType<typeof startPortalProcess>>;
  readonly dir: string;
  readonly identity: ReturnType<typeof provisionDevice>['identity'];
  readonly alice: TestOwner;
  agent: AgentProcess;
  /** stop the agent, run `between` (the device is off), start it again */
  restartAgent(between?: () => void): Promise<AgentProcess>;
}

/** A portal process, a provisioned thermostat whose agent runs as a process, and Alice; all torn down after the test. */
async function world(t: ExecutionContext, opts: { portalArgs?: string[]; portalDataDir?: string; pollIntervalMs?: number; beforeAgent?: (dir: string) => void } = {}): Promise<World> {
  const portal = await startPortalProcess({ ...(opts.portalArgs === undefined ? {} : { args: opts.portalArgs }), ...(opts.portalDataDir === undefined ? {} : { dataDir: opts.portalDataDir }) });
  const { dir, identity } = provisionDevice(portal.http, opts.pollIntervalMs === undefined ? {} : { pollIntervalMs: opts.pollIntervalMs });
  opts.beforeAgent?.(dir);
  const alice = await TestOwner.create(portal.http, 'alice');
  const w: World = {
    portal,
    dir,
    identity,
    alice,
    agent: await startAgentProcess(dir),
    async restartAgent(between) {
      await w.agent.stop();
      between?.();
      w.agent = await startAgentProcess(dir);
      return w.agent;
    },
  };
  t.teardown(async () => {
    alice.close();
    await w.agent.stop();
    await portal.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return w;
}

test('two owners claim one thermostat; their settings merge; removing Bob leaves Alice intact', async (t) => {
  const { portal, dir, identity, agent, alice } = await world(t, { pollIntervalMs: 60_000 });
  const bob = await TestOwner.create(portal.http, 'bob');
  t.teardown(() => bob.close());
  t.is(agent.ready.device, identity.id);
  await alice.claim(identity.labelUri);
  await agent.waitFor((e) => e.type === 'claimed' && e.account === alice.account, 15_000, 'alice claimed');
  await openClaimWindow(dir); // Alice holds the thermostat's button: the label may add a co-owner
  await bob.claim(identity.labelUri);
  await agent.waitFor((e) => e.type === 'claimed' && e.account === bob.account, 15_000, 'bob claimed');

  await alice.publish('thermostat', { setpoint: 21 });
  await agent.waitFor((e) => e.type === 'applied' && e.account === alice.account && e.seq === 1);
  await bob.publish('thermostat', { setpoint: 19, mode: 'eco' });
  await agent.waitFor((e) => e.type === 'applied' && e.account === bob.account && e.seq === 1);
  const cfg = readConfig(dir);
  t.deepEqual(cfg.thermostat, { mode: 'eco', setpoint: 19 });
  const sources = cfg._sources as unknown as Record<string, Record<string, { owner: string }>>;
  t.is(sources.thermostat?.setpoint?.owner, bob.account);

  // the owner sees what was applied in the device's signed status
  const devPub = fromB64u(verifyDeviceProfile(identity.profile).payload.sign, 'sign', 32);
  const st = await until('a status listing both owners', async () => {
    const list = await alice.client.deviceStatus();
    const s = list[0]?.status;
    if (s == null) return undefined;
    const p = verifyStatus(s, devPub);
    return p.owners.length === 2 && p.owners.some((o) => o.apps.some((a) => a.seq === 1)) ? p : undefined;
  });
  t.is(st.device, identity.id);

  await bob.remove(identity.id);
  await agent.waitFor((e) => e.type === 'removed' && e.account === bob.account);
  t.deepEqual(readConfig(dir).thermostat, { setpoint: 21 }, "Bob's values are gone, Alice's stand");
  const s = await agentStatus(dir);
  t.deepEqual(s.owners.map((o) => o.account), [alice.account]);
});

test('an out-of-schema setpoint is refused and the last good configuration stays; the reason is reported', async (t) => {
  const { dir, identity, agent, alice } = await world(t);
  await alice.claim(identity.labelUri);
  await agent.waitFor((e) => e.type === 'claimed');
  await alice.publish('thermostat', { setpoint: 20 });
  await agent.waitFor((e) => e.type === 'applied' && e.seq === 1);
  await alice.publish('thermostat', { setpoint: 350 });
  const refused = await agent.waitFor((e) => e.type === 'refused' && e.seq === 2);
  t.is(refused.code, 'schema');
  t.deepEqual(readConfig(dir).thermostat, { setpoint: 20 });
  const devPub = fromB64u(verifyDeviceProfile(identity.profile).payload.sign, 'sign', 32);
  const errs = await until('the refusal in the signed status', async () => {
    const s = (await alice.client.deviceStatus())[0]?.status;
    if (s == null) return undefined;
    const p = verifyStatus(s, devPub);
    // the full reason is in the part only the owners read; the plaintext has the code
    const priv = openPrivateStatus(p, alice.admin.enc);
    return p.errors.some((e) => e.code === 'schema') && priv !== undefined ? { plain: p.errors, full: priv.errors } : undefined;
  });
  t.true(errs.full.some((e) => e.code === 'schema' && e.message.includes('maximum')));
  t.false(errs.plain.some((e) => e.message.includes('350')), 'the plaintext names no value');
  // an application the device does not run is refused too
  await alice.publish('lights', { on: true });
  t.is((await agent.waitFor((e) => e.type === 'refused' && e.app === 'lights')).code, 'schema');
});

test('a portal that re-serves old profiles is refused as rollback; state survives restarts', async (t) => {
  const w = await world(t);
  const { dir, identity, alice } = w;
  await alice.claim(identity.labelUri);
  await w.agent.waitFor((e) => e.type === 'claimed');
  await alice.publish('thermostat', { setpoint: 18 });
  await alice.publish('thermostat', { setpoint: 22 });
  await w.agent.waitFor((e) => e.type === 'applied' && e.seq === 2);
  // the device restarts having "forgotten" its feed cursor: the portal serves everything again
  const agent = await w.restartAgent(() => {
    const statePath = path.join(dir, 'state.json');
    const st = JSON.parse(fs.readFileSync(statePath, 'utf8')) as { n: number };
    fs.writeFileSync(statePath, JSON.stringify({ ...st, n: 0 }));
  });
  const r = await agent.waitFor((e) => e.type === 'refused' && e.seq === 1);
  t.is(r.code, 'rollback');
  await agent.waitFor((e) => e.type === 'refused' && e.seq === 2);
  t.deepEqual(readConfig(dir).thermostat, { setpoint: 22 });
  t.is((await agentStatus(dir)).owners.length, 1, 'the owner survived the restart');
});

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

function startMosquitto(port: number): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const conf = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'mesh-mosq-')), 'm.conf');
    fs.writeFileSync(conf, `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence false\n`);
    const p = spawn('mosquitto', ['-c', conf], { stdio: 'ignore' });
    p.once('error', reject);
    const deadline = Date.now() + 5000;
    const probe = (): void => {
      const s = net.connect(port, '127.0.0.1', () => {
        s.destroy();
        resolve(p);
      });
      s.on('error', () => (Date.now() > deadline ? reject(new Error('mosquitto did not start')) : setTimeout(probe, 50)));
    };
    probe();
  });
}

test('after a broker restart the agent catches up on everything it missed', async (t) => {
  const port = await freePort();
  let broker = await startMosquitto(port);
  t.teardown(() => broker.kill('SIGTERM'));
  // polling is slow (60 s): only the push path and the catch-up on reconnect can deliver in time
  const { dir, identity, agent, alice } = await world(t, { portalArgs: ['--mqtt-url', `mqtt://127.0.0.1:${port}`], pollIntervalMs: 60_000 });
  await alice.claim(identity.labelUri);
  await agent.waitFor((e) => e.type === 'claimed');
  await alice.publish('thermostat', { setpoint: 20 });
  await agent.waitFor((e) => e.type === 'applied' && e.seq === 1, 10_000, 'push before the restart');
  broker.kill('SIGKILL');
  await new Promise((r) => broker.once('exit', r));
  await alice.publish('thermostat', { setpoint: 23, mode: 'comfort' });
  await alice.publish('thermostat', { setpoint: 24, mode: 'comfort' });
  await new Promise((r) => setTimeout(r, 500));
  t.is(readConfig(dir).thermostat?.setpoint, 20, 'nothing can arrive while the broker is down');
  broker = await startMosquitto(port);
  await agent.waitFor((e) => e.type === 'applied' && e.seq === 3, 30_000, 'catch-up after the broker returned');
  t.deepEqual(readConfig(dir).thermostat, { mode: 'comfort', setpoint: 24 });
});

test('a revoked administration key: new master reaches the device, the new key is obeyed', async (t) => {
  const { dir, identity, agent, alice } = await world(t);
  await alice.claim(identity.labelUri);
  await agent.waitFor((e) => e.type === 'claimed');
  await alice.rotateAdmin();
  await alice.publish('thermostat', { setpoint: 17 });
  await agent.waitFor((e) => e.type === 'applied' && e.seq === 1);
  t.deepEqual(readConfig(dir).thermostat, { setpoint: 17 });
  const state = JSON.parse(fs.readFileSync(path.join(dir, 'state.json'), 'utf8')) as { owners: Record<string, { masterSeq: number }> };
  t.is(state.owners[alice.masterId]?.masterSeq, 2);
});

test('factory reset forgets every owner; first boot makes an identity and prints its claim code', async (t) => {
  const portal = await startPortalProcess();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mesh-firstboot-'));
  fs.rmSync(dir, { recursive: true });
  const schema = path.join(dir + '-schema.json');
  fs.writeFileSync(schema, JSON.stringify({ type: 'object', properties: { setpoint: { type: 'number' } } }));
  const agent = await startAgentProcess(dir, ['--first-boot', '--model', 'thermostat', '--portal', portal.http, '--schema', `thermostat=${schema}`]);
  const alice = await TestOwner.create(portal.http, 'alice');
  try {
    const claim = String(agent.ready.claim);
    t.regex(claim, /^https:\/\/127\.0\.0\.1:\d+\/claim#code=E[A-Z2-7-]+&fp=(?:[A-Z2-7]{4}-){6}[A-Z2-7]{4}&m=selfmade$/);
    t.is((fs.statSync(path.join(dir, 'keys.json')).mode & 0o777), 0o600);
    await alice.claim(claim);
    await agent.waitFor((e) => e.type === 'claimed');
    await alice.publish('thermostat', { setpoint: 19 });
    await agent.waitFor((e) => e.type === 'applied');
    await agent.stop();
    const out = await new Promise<string>((resolve, reject) =>
      execFile(process.execPath, [AGENT_CLI, 'reset', '--data', dir, '--yes'], (err, stdout) => (err ? reject(err) : resolve(stdout))),
    );
    t.regex(out, /factory reset/);
    const s = await agentStatus(dir);
    t.deepEqual(s.owners, []);
    t.deepEqual(Object.keys(s.config).filter((k) => k !== '_sources'), [], 'no application configuration is left');
    // after a restart no former owner or setting comes back, and the former owner is not obeyed
    const again = await startAgentProcess(dir);
    try {
      await alice.publish('thermostat', { setpoint: 25 });
      const refused = await again.waitFor((e) => e.type === 'refused' && e.kind === 'application', 15_000, 'the former owner refused');
      t.is(refused.code, 'unknown-owner');
      const after = await agentStatus(dir);
      t.deepEqual(after.owners, []);
      t.deepEqual(Object.keys(after.config).filter((k) => k !== '_sources'), []);
    } finally {
      await again.stop();
    }
  } finally {
    alice.close();
    await agent.stop();
    await portal.stop();
    fs.rmSync(dir, { recursive: true, force: true });
    fs.rmSync(schema, { force: true });
  }
});

test('after a change the hook runs with MESH_CONFIG, and the configuration is published to a local MQTT topic', async (t) => {
  let marker = '';
  const topic = `test/mesh/${Date.now()}-${Math.random().toString(36).slice(2)}/config`;
  const { connectAsync } = await import('mqtt');
  const sub = await connectAsync(MQTT_URL, { reconnectPeriod: 0 });
  t.teardown(() => sub.endAsync());
  const got = new Promise<string>((resolve) => sub.on('message', (_t, p) => resolve(p.toString())));
  await sub.subscribeAsync(topic, { qos: 1 });
  const { identity, agent, alice } = await world(t, {
    beforeAgent: (dir) => {
      marker = path.join(dir, 'hook-ran.json');
      const settingsPath = path.join(dir, 'agent.json');
      const settings = JSON.parse(fs.readFileSync(settingsPath, 'utf8')) as Record<string, unknown>;
      fs.writeFileSync(settingsPath, JSON.stringify({ ...settings, hook: `cp "$MESH_CONFIG" "${marker}.tmp" && mv "${marker}.tmp" "${marker}"`, localMqtt: { url: MQTT_URL, topic } }));
    },
  });
  await alice.claim(identity.labelUri);
  await agent.waitFor((e) => e.type === 'claimed');
  await alice.publish('thermostat', { setpoint: 16, mode: 'off' });
  await agent.waitFor((e) => e.type === 'applied');
  const hooked = await until('the hook to copy the config', () => (fs.existsSync(marker) ? fs.readFileSync(marker, 'utf8') : undefined));
  t.deepEqual((JSON.parse(hooked) as Record<string, unknown>).thermostat, { mode: 'off', setpoint: 16 });
  const published = JSON.parse(await got) as Record<string, unknown>;
  t.deepEqual(published.thermostat, { mode: 'off', setpoint: 16 });
});

test('a portal that lost the device\'s record: the agent registers again and applies the next change', async (t) => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mesh-portal-lost-'));
  t.teardown(() => fs.rmSync(dataDir, { recursive: true, force: true }));
  const { portal, dir, identity, agent, alice } = await world(t, { portalArgs: ['--no-mqtt'], portalDataDir: dataDir, pollIntervalMs: 200 });
  await alice.claim(identity.labelUri);
  await agent.waitFor((e) => e.type === 'claimed');
  await alice.publish('thermostat', { setpoint: 20 });
  await agent.waitFor((e) => e.type === 'applied' && e.seq === 1);
  // the portal loses the device: its record, its feed and its sessions (say, restored from an old backup)
  const port = new URL(portal.http).port;
  await portal.stop();
  const db = new Database(path.join(portal.dataDir, 'portal.db'));
  t.is(db.prepare('DELETE FROM devices WHERE id = ?').run(identity.id).changes, 1);
  t.true(db.prepare('DELETE FROM feed WHERE device = ?').run(identity.id).changes >= 2);
  db.prepare('DELETE FROM sessions WHERE subject = ?').run(identity.id);
  db.close();
  const again = await startPortalProcess({ dataDir: portal.dataDir, args: ['--no-mqtt', '--http-port', port] });
  t.teardown(() => again.stop());
  // the next change can be delivered once the device has registered again
  await until('the device registered again', async () => {
    try {
      await alice.publish('thermostat', { setpoint: 22 }, { seq: 2 });
      return true;
    } catch {
      return undefined;
    }
  }, 20_000);
  await agent.waitFor((e) => e.type === 'applied' && e.seq === 2, 20_000, 'the next change applied after registering again');
  t.deepEqual(readConfig(dir).thermostat, { setpoint: 22 });
  t.true((await agentStatus(dir)).registered);
});
