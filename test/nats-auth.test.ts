/**
 * Per-device push authorization on NATS (operator mode, portal/push/nats-auth.ts): the nkey and
 * JWT formats, then a real nats-server (MQTT interface, JetStream, free ports) trusting an
 * authority from scripts/nats-auth.ts, and a real portal process holding the account seed.
 */
import test from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import mqtt from 'mqtt';
import { isMeshError } from '../mesh/errors.js';
import { deviceTopic, parseFeedItem } from '../mesh/protocol.js';
import { jwtClaims, newNatsAuthority, parseSeedNkey, publicNkey, pushCredentials, seedNkey } from '../portal/push/nats-auth.js';
import { writeNatsAuthority } from '../harness/nats-authority.js';
import { registerDevice } from '../harness/device.js';
import { startNats, startNatsCluster, type NatsServer } from './helpers/nats.js';
import { TestOwner } from '../harness/owner.js';
import { startPortalProcess } from '../harness/portal-process.js';

const codeOf = (f: () => unknown): string => {
  try {
    f();
    return 'no error';
  } catch (e) {
    return isMeshError(e) ? e.code : String(e);
  }
};

test('nkeys: seeds round-trip per role; a wrong checksum, a wrong prefix or junk is malformed', (t) => {
  const a = newNatsAuthority();
  for (const [role, key] of [['operator', a.operator], ['account', a.account]] as const) {
    const seed = seedNkey(role, key.privateKey);
    t.regex(seed, role === 'operator' ? /^SO[A-Z2-7]{56}$/ : /^SA[A-Z2-7]{56}$/);
    const back = parseSeedNkey(seed);
    t.is(back.role, role);
    t.deepEqual(back.key.publicKey, key.publicKey);
    t.regex(publicNkey(role, key.publicKey), role === 'operator' ? /^O[A-Z2-7]{55}$/ : /^A[A-Z2-7]{55}$/);
    // one character changed: the CRC-16 catches it
    const flipped = seed.slice(0, 10) + (seed[10] === 'A' ? 'B' : 'A') + seed.slice(11);
    t.is(codeOf(() => parseSeedNkey(flipped)), 'malformed');
  }
  t.regex(publicNkey('user', a.account.publicKey), /^U/);
  for (const junk of ['', 'SA', 'not a seed', `SX${'A'.repeat(56)}`, publicNkey('account', a.account.publicKey)]) t.is(codeOf(() => parseSeedNkey(junk)), 'malformed', junk);
});

test('a device credential is a bearer JWT for its own topic only, expiring with its session', (t) => {
  const a = newNatsAuthority();
  const creds = pushCredentials(a.account, 'mmm/v1/device');
  const exp = Date.now() + 3600_000;
  const c = jwtClaims(creds.device(deviceTopic('MDEV-1'), 'MDEV-1', exp));
  t.is(c.iss, publicNkey('account', a.account.publicKey));
  t.is(c.exp, Math.floor(exp / 1000));
  const nats = c.nats as { bearer_token: boolean; type: string; pub: unknown; sub: { allow: string[] } };
  t.true(nats.bearer_token);
  t.is(nats.type, 'user');
  t.deepEqual(nats.pub, { deny: ['>'] });
  t.true(nats.sub.allow.includes('mmm.v1.device.MDEV-1'));
  t.false(nats.sub.allow.some((s) => s.startsWith('mmm.') && s !== 'mmm.v1.device.MDEV-1'));
  const p = jwtClaims(creds.portal()).nats as { pub: { allow: string[] }; sub: unknown };
  t.deepEqual(p.pub.allow, ['mmm.v1.device.*']);
  t.deepEqual(p.sub, { deny: ['>'] });
});

type Conn = { client?: mqtt.MqttClient; refused?: string };

function connect(url: string, name: string, password?: string): Promise<Conn> {
  return new Promise((resolve) => {
    const client = mqtt.connect(url, { clientId: `${name}-${Math.random().toString(36).slice(2)}`, username: name, ...(password !== undefined ? { password } : {}), protocolVersion: 4, reconnectPeriod: 0, clean: true, connectTimeout: 10_000 });
    client.once('connect', () => resolve({ client }));
    client.once('error', (e) => {
      client.end(true);
      resolve({ refused: e.message });
    });
    client.once('close', () => resolve({ refused: 'closed' }));
  });
}

/** Subscribe; resolves with the granted QoS, 128 when refused (mqtt.js reports a SUBACK 0x80 as an error). */
function subscribe(c: mqtt.MqttClient, topic: string): Promise<number> {
  return new Promise((resolve) => c.subscribe(topic, { qos: 1 }, (e, granted) => resolve(e ? 128 : (granted?.[0]?.qos ?? 128))));
}

test('NATS operator mode: the portal pushes with its own JWT; each device hears only its own topic and publishes nothing', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mesh-nats-auth-'));
  const auth = writeNatsAuthority(dir);
  t.is(fs.statSync(auth.accountFile).mode & 0o777, 0o600);
  t.throws(() => writeNatsAuthority(dir), { message: /refusing to replace/ });
  const nats = await startNats({ extraConfig: fs.readFileSync(auth.configFile, 'utf8') });
  const conns: mqtt.MqttClient[] = [];
  try {
    // without the account seed the portal cannot even connect: nothing unauthenticated is accepted
    await t.throwsAsync(startPortalProcess({ args: ['--mqtt-url', nats.mqttUrl], timeoutMs: 20_000 }), { message: /cannot connect to the MQTT broker/ });
    const portal = await startPortalProcess({ args: ['--mqtt-url', nats.mqttUrl, '--mqtt-nats-account', auth.accountFile] });
    try {
      const a = await registerDevice(portal.http);
      const b = await registerDevice(portal.http);
      const pa = a.client.pushPassword;
      t.truthy(pa, 'Register carries the device push password');
      const ca = await connect(portal.mqtt as string, a.identity.id, pa);
      t.truthy(ca.client, `device A connects with its credential (${ca.refused ?? ''})`);
      const ma = ca.client as mqtt.MqttClient;
      conns.push(ma);
      t.is(await subscribe(ma, deviceTopic(a.identity.id)), 1, 'its own topic, QoS 1');
      t.is(await subscribe(ma, deviceTopic(b.identity.id)), 128, "another device's topic is refused");
      t.is(await subscribe(ma, 'mmm/v1/device/#'), 128, 'a wildcard over every device is refused');
      t.is(await subscribe(ma, '$MQTT/sub/#'), 128, "NATS's own QoS 1 delivery subjects are not reachable from MQTT");
      const cb = await connect(portal.mqtt as string, b.identity.id, b.client.pushPassword);
      const mb = cb.client as mqtt.MqttClient;
      conns.push(mb);
      t.is(await subscribe(mb, deviceTopic(b.identity.id)), 1);
      const heardA: string[] = [];
      const heardB: string[] = [];
      ma.on('message', (_t, p) => heardA.push(p.toString()));
      mb.on('message', (_t, p) => heardB.push(p.toString()));
      // A tries to push to B: NATS drops it (publish violation)
      await new Promise<void>((r) => ma.publish(deviceTopic(b.identity.id), '{"n":99}', { qos: 1 }, () => r()));
      // an owner claims A: the portal pushes the claim item to A only
      const owner = await TestOwner.create(portal.http, 'alice');
      await owner.claim(a.identity.labelUri);
      const deadline = Date.now() + 15_000;
      while (heardA.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      owner.close();
      t.is(heardA.length, 1, 'A heard its claim');
      t.is(parseFeedItem(JSON.parse(heardA[0] as string), 'pushed').kind, 'claim');
      t.deepEqual(heardB, [], 'B heard nothing: neither A nor the portal pushed to it');
      // refused at CONNECT: no password, a junk one, an expired one, one signed by another authority
      const expired = pushCredentials(parseSeed(auth.accountFile), 'mmm/v1/device').device(deviceTopic(a.identity.id), a.identity.id, Date.now() - 1000);
      const foreign = pushCredentials(newNatsAuthority().account, 'mmm/v1/device').device(deviceTopic(a.identity.id), a.identity.id, Date.now() + 60_000);
      for (const [what, pw] of [['none', undefined], ['junk', 'x.y.z'], ['expired', expired], ['foreign', foreign]] as const) {
        const c = await connect(portal.mqtt as string, a.identity.id, pw);
        if (c.client !== undefined) conns.push(c.client);
        t.truthy(c.refused, `${what}: refused`);
      }
      a.client.close();
      b.client.close();
    } finally {
      await portal.stop();
    }
  } finally {
    for (const c of conns) c.end(true);
    await nats.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

function parseSeed(file: string): ReturnType<typeof parseSeedNkey>['key'] {
  return parseSeedNkey(fs.readFileSync(file, 'utf8')).key;
}

test('a three-node NATS cluster (the docs/portal.md layout): pushed through one node, heard on another, still with one node down', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mesh-nats-cluster-'));
  const auth = writeNatsAuthority(dir);
  const cluster = await startNatsCluster(3, { extraConfig: fs.readFileSync(auth.configFile, 'utf8') });
  const [n1, n2, n3] = cluster.nodes as [NatsServer, NatsServer, NatsServer];
  const conns: mqtt.MqttClient[] = [];
  const portal = await startPortalProcess({ args: ['--mqtt-url', n1.mqttUrl, '--mqtt-nats-account', auth.accountFile] });
  try {
    const owner = await TestOwner.create(portal.http, 'alice');
    const heard: string[] = [];
    const devices = [await registerDevice(portal.http), await registerDevice(portal.http)];
    // the first device on node 3, the second on node 2 (stopped below)
    for (const [i, node] of [n3, n2].entries()) {
      const d = devices[i] as Awaited<ReturnType<typeof registerDevice>>;
      const c = await connect(node.mqttUrl, d.identity.id, d.client.pushPassword);
      t.truthy(c.client, `device ${i} connects to its node (${c.refused ?? ''})`);
      conns.push(c.client as mqtt.MqttClient);
      t.is(await subscribe(c.client as mqtt.MqttClient, deviceTopic(d.identity.id)), 1);
      (c.client as mqtt.MqttClient).on('message', (topic) => heard.push(topic));
    }
    const d0 = devices[0] as Awaited<ReturnType<typeof registerDevice>>;
    const waitFor = async (count: number): Promise<void> => {
      const deadline = Date.now() + 20_000;
      while (heard.filter((x) => x === deviceTopic(d0.identity.id)).length < count && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    };
    await owner.claim(d0.identity.labelUri);
    await waitFor(1);
    t.is(heard.filter((x) => x === deviceTopic(d0.identity.id)).length, 1, 'the claim crossed from node 1 to node 3');
    // one node of three down: the streams keep a quorum, push goes on
    await n2.stop();
    await owner.publish('thermostat', { setpoint: 21 }, { devices: [...owner.devices.values()] });
    await waitFor(2);
    t.is(heard.filter((x) => x === deviceTopic(d0.identity.id)).length, 2, 'and so did the next item, with node 2 down');
    owner.close();
    for (const d of devices) d.client.close();
  } finally {
    for (const c of conns) c.end(true);
    await portal.stop();
    await cluster.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
