/**
 * The push channel is another way in: Hello names the MQTT broker (unsigned), and with an
 * external broker (docs/portal.md) the broker is not the portal at all. Here the proxy points
 * the device at a hostile broker run by the test, which pushes whatever it likes on the device's
 * topic. The device's MQTT payload parser (parseFeedItem) and its push path must:
 *   - refuse junk with a typed code, record it, keep running and keep polling (first test);
 *   - never let an unauthenticated push move its place in the feed past items it has not got
 *     from the portal: a pushed item it REFUSES must not make it skip the real item with the same
 *     number (second test), and so must not let a push swallow an owner's revocation and then
 *     deliver a profile signed by the revoked key (third test).
 */
import test from 'ava';
import * as net from 'node:net';
import type { AddressInfo } from 'node:net';
import { Aedes, type AedesPublishPacket } from 'aedes';
import { createApplicationProfile } from '../../mesh/profiles.js';
import { deviceTopic } from '../../mesh/protocol.js';
import { PATHS } from '../../mesh/protocol.js';
import { agentStatus, until } from '../../harness/agent-process.js';
import type { Rule } from './proxy.js';
import { flipSignatureBit, hostileWorld, payloadOf, type World } from './world.js';

interface HostileBroker {
  readonly url: string;
  /** resolves once the device has subscribed to its topic */
  subscribed(): Promise<void>;
  push(payload: string | Buffer): Promise<void>;
  close(): Promise<void>;
}

async function hostileBroker(deviceId: string): Promise<HostileBroker> {
  const broker = await Aedes.createBroker();
  const server = net.createServer((s) => broker.handle(s));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  let onSub: () => void = () => undefined;
  const sub = new Promise<void>((r) => (onSub = r));
  broker.on('subscribe', (subs) => {
    if (subs.some((s) => s.topic === deviceTopic(deviceId))) onSub();
  });
  return {
    url: `mqtt://127.0.0.1:${(server.address() as AddressInfo).port}`,
    subscribed: () => sub,
    push: (payload) =>
      new Promise<void>((resolve, reject) =>
        broker.publish({ cmd: 'publish', topic: deviceTopic(deviceId), payload: Buffer.isBuffer(payload) ? payload : Buffer.from(payload), qos: 1, retain: false, dup: false } as unknown as AedesPublishPacket, (e) => (e ? reject(e) : resolve())),
      ),
    close: () =>
      new Promise<void>((resolve) => {
        broker.close(() => server.close(() => resolve()));
      }),
  };
}

/** Rewrite Hello so the device hears pushes from `url` (the field is not signed). */
function pointPushAt(url: string): Rule {
  return {
    name: 'hello-mqtt',
    response: (req, res) => {
      if (req.path !== PATHS.hello || res.status !== 200) return undefined;
      const h = JSON.parse(res.body.toString('utf8')) as Record<string, unknown>;
      return { ...res, body: Buffer.from(JSON.stringify({ ...h, mqtt: url })) };
    },
  };
}

async function worldWithBroker(): Promise<{ w: World; broker: HostileBroker }> {
  let broker: HostileBroker | undefined;
  const w = await hostileWorld({
    push: true,
    beforeAgent: async (proxy, deviceId) => {
      broker = await hostileBroker(deviceId);
      proxy.use(pointPushAt(broker.url));
    },
  });
  const b = broker as HostileBroker;
  w.cleanups.push(() => b.close());
  await b.subscribed();
  return { w, broker: b };
}

test.serial('junk pushed on the device topic: typed refusals recorded, no crash, config unchanged, the device keeps polling', async (t) => {
  const { w, broker } = await worldWithBroker();
  try {
    const before = w.configBytes();
    const n = w.state().n;
    await broker.push(Buffer.from([0xff, 0xfe, 0x00, 0x01]));
    await broker.push('{"n":');
    await broker.push(JSON.stringify({ hello: 'world' }));
    await broker.push(JSON.stringify({ n: n + 1, kind: 'firmware', object: { payload: 'AA', sigs: [] }, index: 0 }));
    await broker.push('x'.repeat(700_000));
    await broker.push(JSON.stringify({ n: n + 1000, kind: 'application', object: { payload: 'e30', sigs: [{ kid: 'MAAA-AAAA', sig: 'A'.repeat(86) }] }, index: 0 }));
    await until('the refusals recorded', async () => ((await agentStatus(w.dir)).errors.filter((e) => e.message.startsWith('a pushed message was refused')).length >= 4 ? true : undefined));
    const st = await agentStatus(w.dir);
    const codes = new Set(st.errors.map((e) => e.code));
    t.true(codes.has('malformed'), JSON.stringify([...codes]));
    t.true(codes.has('too-large'), JSON.stringify([...codes]));
    t.is(w.configBytes(), before, 'config.json is exactly as before');
    t.is(w.agent.proc.exitCode, null, 'the agent is alive');
    t.is(w.state().n, n, 'junk did not move the feed cursor');
    // the device still follows its owner (through polling: the hostile broker pushes nothing real)
    const env = await w.alice.publish('thermostat', { setpoint: 23 });
    await w.agent.waitFor((e) => e.type === 'applied' && e.seq === payloadOf(env).seq);
    t.is(JSON.parse(w.configBytes()).thermostat.setpoint, 23);
  } finally {
    await w.close();
  }
});

test.serial('a forged item pushed with the next feed number moves nothing: a push is only a hint, and the real item with that number still arrives', async (t) => {
  const { w, broker } = await worldWithBroker();
  try {
    const n = w.state().n;
    const before = w.configBytes();
    const forged = flipSignatureBit(w.alice.applicationProfile('thermostat', { setpoint: 30 }, { seq: 40 }));
    await broker.push(JSON.stringify({ n: n + 1, kind: 'application', object: forged, index: 0 }));
    // the push makes the device poll; the portal has nothing numbered n + 1 yet
    await new Promise((r) => setTimeout(r, 1500));
    t.is(w.state().n, n, 'an unsigned feed number from the broker does not move the cursor');
    t.is(w.configBytes(), before, 'nothing from the push was applied');
    t.false(w.agent.events.some((e) => e.type === 'applied' && e.seq === 40));
    // the owner publishes: the portal files it as item n + 1 of the device's feed
    const env = await w.alice.publish('thermostat', { setpoint: 26 }, { seq: 41 });
    const applied = await w.agent.waitFor((e) => e.type === 'applied' && e.seq === payloadOf(env).seq, 6000, 'the real item n+1').then(
      () => true,
      () => false,
    );
    t.true(applied, `the owner's real update (feed item ${n + 1}) must be applied; the device's cursor is ${w.state().n}`);
  } finally {
    await w.close();
  }
});

test.serial('a push cannot swallow a revocation: after the owner revokes a key, a profile signed by it and pushed is not applied', async (t) => {
  const { w, broker } = await worldWithBroker();
  try {
    const n = w.state().n;
    // the broker pushes junk numbered n + 1 just before the owner's revocation is filed as item n + 1
    await broker.push(JSON.stringify({ n: n + 1, kind: 'application', object: flipSignatureBit(w.alice.applicationProfile('thermostat', { setpoint: 30 }, { seq: 90 })), index: 0 }));
    await new Promise((r) => setTimeout(r, 500));
    t.is(w.state().n, n, 'the junk push moved nothing');
    const old = await w.alice.rotateAdmin();
    await until('master profile #2 on the device', () => (w.state().owners[w.alice.masterId]?.masterSeq === 2 ? true : undefined), 10_000);
    const before = w.configBytes();
    // whoever holds the revoked key (it was stolen: that is why it was revoked) pushes a profile signed by it
    const stolen = createApplicationProfile(old, { master: w.alice.masterId, app: 'thermostat', seq: 91, config: { setpoint: 5, mode: 'off' }, devices: [...w.alice.devices.values()] });
    await broker.push(JSON.stringify({ n: w.state().n + 1, kind: 'application', object: stolen, index: 0 }));
    await new Promise((r) => setTimeout(r, 1500));
    t.false(w.agent.events.some((e) => e.type === 'applied' && e.seq === 91), "the revoked key's profile was applied");
    t.is(w.configBytes(), before, 'the configuration is unchanged');
    // and were a hostile portal to deliver it in the feed, the device now refuses it by its revocation
    t.is(w.state().owners[w.alice.masterId]?.masterSeq, 2);
  } finally {
    await w.close();
  }
});
