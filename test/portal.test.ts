/**
 * The portal as a real process (dist/portal/cli.js), driven over HTTP by the project's client and
 * over MQTT by a real mqtt client: every transaction, the refusals an attacker meets, the log's
 * proofs, push through the embedded broker and through Mosquitto, SIGTERM, and PostgreSQL mode.
 */
import test from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import mqtt from 'mqtt';
import { PortalClient } from '../client/portal-client.js';
import * as c from '../mesh/crypto.js';
import { b64u, fromB64u } from '../mesh/bytes.js';
import { deriveClaimSecrets, newClaimSecret, sealClaimBlob, type ClaimSecrets } from '../mesh/claim.js';
import { newDeviceIdentity, type DeviceIdentity } from '../mesh/device.js';
import { payloadBytes, type SignedEnvelope } from '../mesh/envelope.js';
import { MeshError, type MeshErrorCode } from '../mesh/errors.js';
import { generateMasterKeys, signKeyId, type MasterKeys } from '../mesh/keys.js';
import { leafHash, verifyConsistency, verifyInclusion } from '../mesh/merkle.js';
import { createClaim, createRemove, createSession, createStatus, createJoin, verifyPortalProfile, verifyTreeHead, type TreeHead } from '../mesh/messages.js';
import { adminEntry, createApplicationProfile, createMasterProfile, createPersonalProfile, endorseDevice, type AdminKeys } from '../mesh/profiles.js';
import { LIMITS, PATHS, deviceTopic, parseFeedItem, type FeedItem, type RegisterRequest } from '../mesh/protocol.js';
import { PostgresDriver } from '../portal/storage/postgres.js';
import { startPortalProcess, type PortalProcess } from '../harness/portal-process.js';
import { rawHttp, type RawAnswer } from './helpers/raw-http.js';

const PG_URL = process.env.MESH_TEST_PG ?? 'postgres://root@127.0.0.1:5432/test';
const MOSQUITTO = process.env.MESH_TEST_MQTT ?? 'mqtt://127.0.0.1:1883';

// ---------------------------------------------------------------- fixtures

interface Owner {
  readonly account: string;
  readonly masterKeys: MasterKeys;
  readonly masterId: string;
  readonly admin: AdminKeys;
  readonly master: SignedEnvelope;
  readonly personal: SignedEnvelope;
  readonly client: PortalClient;
}

function newAdmin(name = 'laptop'): AdminKeys {
  return { name, sign: c.ed25519KeyPair(), enc: c.x25519KeyPair() };
}

async function bindOwner(url: string, portalName: string, short = `u${b64u(c.randomBytes(6)).toLowerCase().replace(/[^a-z0-9]/g, 'x')}`): Promise<Owner> {
  const masterKeys = generateMasterKeys();
  const masterId = signKeyId(masterKeys.sign.publicKey);
  const admin = newAdmin();
  const account = `${short}@${portalName}`;
  const master = createMasterProfile(masterKeys, [adminEntry(admin)]);
  const personal = createPersonalProfile(admin, { master: masterId, account, seq: 1, devices: [], apps: [] });
  const client = new PortalClient({ url, identity: { subject: account, key: admin.sign } });
  const r = await client.bindAccount({ account: short, master, personal, request: createSession(admin.sign, account) });
  if (r.account !== account || r.master !== masterId) throw new Error('BindAccount answered for another account');
  return { account, masterKeys, masterId, admin, master, personal, client };
}

interface Device {
  readonly id: DeviceIdentity;
  readonly secrets: ClaimSecrets;
  readonly client: PortalClient;
  readonly register: RegisterRequest;
}

const maker = c.ed25519KeyPair();

function deviceRegistration(id: DeviceIdentity, secrets: ClaimSecrets): RegisterRequest {
  return {
    device: id.profile,
    endorsement: id.endorsement,
    claim: { id: secrets.claimId, blob: sealClaimBlob(secrets, { device: id.profile, endorsement: id.endorsement }), portalKey: b64u(secrets.portalKey) },
    request: createSession(id.keys.auth, id.id),
  };
}

async function registerDevice(url: string): Promise<Device> {
  const id = newDeviceIdentity({ model: 'thermostat', manufacturer: 'acme', serial: `sn${randomBytes(4).toString('hex')}`, portalAuthority: 'localhost', manufacturerKey: maker });
  const secrets = deriveClaimSecrets(id.claimSecret);
  const client = new PortalClient({ url, identity: { subject: id.id, key: id.keys.auth } });
  const register = deviceRegistration(id, secrets);
  await client.register(register);
  return { id, secrets, client, register };
}

async function claim(owner: Owner, d: Device): Promise<{ index: number; treeHead: SignedEnvelope }> {
  return owner.client.claim(d.secrets.claimId, createClaim(owner.admin.sign, d.secrets, { device: d.id.id, master: owner.masterId, account: owner.account }));
}

function appProfile(owner: Owner, devices: readonly Device[], seq: number, config: Record<string, unknown> = { setpoint: 21 }): SignedEnvelope {
  return createApplicationProfile(owner.admin, {
    master: owner.masterId,
    app: 'thermostat',
    seq,
    config: config as never,
    devices: devices.map((d) => ({ id: d.id.id, enc: d.id.keys.enc.publicKey })),
  });
}

/** The MeshError code a promise rejects with. */
async function codeOf(p: Promise<unknown>): Promise<MeshErrorCode | 'resolved'> {
  try {
    await p;
    return 'resolved';
  } catch (e) {
    if (e instanceof MeshError) return e.code;
    throw e;
  }
}

/** A raw HTTP exchange (for what the client would never send). */
function raw(url: string, method: string, path: string, body?: string | Buffer, headers: Record<string, string> = {}): Promise<RawAnswer> {
  return rawHttp(url, method, path, { ...(body !== undefined ? { body } : {}), headers });
}

/** Until the portal holds a long poll (its metrics say so). */
async function pollHeld(url: string): Promise<void> {
  while (!/mesh_portal_long_polls [1-9]/.test(String((await raw(url, 'GET', '/metrics')).json))) await new Promise((r) => setTimeout(r, 10));
}

const errCode = (j: unknown): unknown => (j as { error?: { code?: unknown } }).error?.code;

function flipBit(b64: string): string {
  const b = Buffer.from(fromB64u(b64, 'sig'));
  b[5] = (b[5] as number) ^ 0x01;
  return b64u(new Uint8Array(b));
}

function treeHeadOf(portalPub: Uint8Array, env: SignedEnvelope): TreeHead {
  return verifyTreeHead(env, portalPub);
}

/** Subscribe a device to its topic on a broker and collect feed items. */
async function listen(url: string, opts: mqtt.IClientOptions, topic: string): Promise<{ client: mqtt.MqttClient; next(ms?: number): Promise<FeedItem> }> {
  const client = await mqtt.connectAsync(url, { reconnectPeriod: 0, connectTimeout: 5000, ...opts });
  const queue: FeedItem[] = [];
  const waiting: ((i: FeedItem) => void)[] = [];
  client.on('message', (t, payload) => {
    if (t !== topic) return;
    const item = parseFeedItem(JSON.parse(payload.toString('utf8')) as unknown);
    const w = waiting.shift();
    if (w !== undefined) w(item);
    else queue.push(item);
  });
  const granted = await client.subscribeAsync(topic, { qos: 1 });
  if (granted[0]?.qos !== 1) throw new Error(`subscription refused: ${JSON.stringify(granted)}`);
  return {
    client,
    next: (ms = 5000) => {
      const q = queue.shift();
      if (q !== undefined) return Promise.resolve(q);
      return new Promise<FeedItem>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`no MQTT message on ${topic} within ${ms} ms`)), ms);
        waiting.push((i) => {
          clearTimeout(t);
          resolve(i);
        });
      });
    },
  };
}

// ---------------------------------------------------------------- the shared portal

let portal: PortalProcess;

test.before(async () => {
  portal = await startPortalProcess({ args: ['--rate-limit', '0'] });
});

test.after.always(async (t) => {
  const code = await portal.stop();
  t.is(code, 0, portal.logs());
});

test('Hello: a self-signed portal profile, a signed tree head, the broker and the limits', async (t) => {
  const h = await new PortalClient({ url: portal.http }).hello();
  const p = verifyPortalProfile(h.portal);
  t.is(p.id, portal.portal);
  t.is(p.name, 'localhost');
  const th = verifyTreeHead(h.treeHead, p.sign);
  t.true(th.size >= 0);
  t.is(h.mqtt, portal.mqtt);
  t.deepEqual(h.limits, { ...LIMITS });
});

test('Register and Session: a device gets a token; registering again is idempotent; a claim id is one device\'s', async (t) => {
  const d = await registerDevice(portal.http);
  t.truthy(d.client.currentToken);
  // idempotent, with a fresh session request
  await d.client.register({ ...d.register, request: createSession(d.id.keys.auth, d.id.id) });
  // Session with the authentication key
  const s = new PortalClient({ url: portal.http, identity: { subject: d.id.id, key: d.id.keys.auth } });
  const token = await s.openSession();
  t.regex(token, /^[A-Za-z0-9_-]{43}$/);
  t.deepEqual(await s.download(0), { n: 0, items: [] });
  // another device under the same claim id
  const other = newDeviceIdentity({ model: 'thermostat', manufacturer: 'acme', serial: 'x1', portalAuthority: 'localhost' });
  const stolen = { ...deviceRegistration(other, d.secrets) };
  t.is(await codeOf(new PortalClient({ url: portal.http }).register(stolen)), 'conflict');
  // a session request signed by the signature key instead of the authentication key
  const wrongKey = new PortalClient({ url: portal.http, identity: { subject: d.id.id, key: d.id.keys.sign } });
  t.is(await codeOf(wrongKey.openSession()), 'unknown-signer');
  // an endorsement for another device
  const e2 = endorseDevice(maker, { id: other.id, model: 'thermostat' }, { manufacturer: 'acme', serial: 'y1' });
  const badEndorsement = await raw(portal.http, 'POST', PATHS.register, JSON.stringify({ ...d.register, endorsement: e2, request: createSession(d.id.keys.auth, d.id.id) }));
  t.is(badEndorsement.status, 422);
  t.is(errCode(badEndorsement.json), 'endorsement-invalid');
});

test('BindAccount: bind, accept the same master again, refuse another master', async (t) => {
  const o = await bindOwner(portal.http, portal.name);
  const short = o.account.split('@')[0] as string;
  const again = await new PortalClient({ url: portal.http }).bindAccount({ account: short, master: o.master, personal: o.personal, request: createSession(o.admin.sign, o.account) });
  t.is(again.master, o.masterId);
  const intruder = newAdmin();
  const mk = generateMasterKeys();
  const m2 = createMasterProfile(mk, [adminEntry(intruder)]);
  const p2 = createPersonalProfile(intruder, { master: signKeyId(mk.sign.publicKey), account: o.account, seq: 1, devices: [], apps: [] });
  t.is(await codeOf(new PortalClient({ url: portal.http }).bindAccount({ account: short, master: m2, personal: p2, request: createSession(intruder.sign, o.account) })), 'conflict');
  // the session request must be signed by an administration key of the master being bound
  const o3 = `v${short}`;
  const p3 = createPersonalProfile(intruder, { master: signKeyId(mk.sign.publicKey), account: `${o3}@${portal.name}`, seq: 1, devices: [], apps: [] });
  t.is(await codeOf(new PortalClient({ url: portal.http }).bindAccount({ account: o3, master: m2, personal: p3, request: createSession(o.admin.sign, `${o3}@${portal.name}`) })), 'unknown-signer');
  // an owner session opened with the master key itself (recovery)
  const rec = new PortalClient({ url: portal.http, identity: { subject: o.account, key: o.masterKeys.sign } });
  t.is((await rec.account()).account, o.account);
});

test('Publish personal and application profiles; Account reads them back; rollback and forbidden targets refused', async (t) => {
  const o = await bindOwner(portal.http, portal.name);
  const d = await registerDevice(portal.http);
  await claim(o, d);
  const personal2 = createPersonalProfile(o.admin, {
    master: o.masterId,
    account: o.account,
    seq: 2,
    devices: [{ id: d.id.id, name: 'hall', model: 'thermostat', enc: b64u(d.id.keys.enc.publicKey) }],
    apps: ['thermostat'],
  });
  const r1 = await o.client.publish(personal2);
  t.true(r1.index > 0);
  const app1 = appProfile(o, [d], 1);
  const r2 = await o.client.publish(app1);
  t.true(r2.index > r1.index);
  const acct = await o.client.account();
  t.deepEqual(acct.personal, personal2);
  t.deepEqual(acct.applications.thermostat, app1);
  t.deepEqual(acct.master, o.master);
  // replays: the same seq again, an older personal profile
  t.is(await codeOf(o.client.publish(appProfile(o, [d], 1, { setpoint: 30 }))), 'rollback');
  t.is(await codeOf(o.client.publish(o.personal)), 'rollback');
  // a device this owner has not claimed
  const stranger = await registerDevice(portal.http);
  t.is(await codeOf(o.client.publish(appProfile(o, [d, stranger], 2))), 'forbidden');
  // another owner's profile
  const o2 = await bindOwner(portal.http, portal.name);
  t.is(await codeOf(o2.client.publish(appProfile(o, [d], 5))), 'unknown-signer');
  // a device cannot publish, an owner cannot download
  t.is(await codeOf(d.client.publish(app1)), 'forbidden');
  t.is(await codeOf(o.client.download(0)), 'forbidden');
});

test('Claim: a good proof links the device and feeds it the claim with the master; a bad proof is 403 bad-claim-proof', async (t) => {
  const o = await bindOwner(portal.http, portal.name);
  const d = await registerDevice(portal.http);
  t.is((await o.client.claimLookup(d.secrets.claimId)).blob, d.register.claim.blob);
  t.is(await codeOf(o.client.claimLookup(b64u(c.randomBytes(16)))), 'not-found');
  const wrong = deriveClaimSecrets(newClaimSecret());
  const bad = createClaim(o.admin.sign, { ...wrong, claimId: d.secrets.claimId }, { device: d.id.id, master: o.masterId, account: o.account });
  t.is(await codeOf(o.client.claim(d.secrets.claimId, bad)), 'bad-claim-proof');
  const r = await claim(o, d);
  const feed = await d.client.download(0);
  t.is(feed.n, 1);
  const item = feed.items[0] as FeedItem;
  t.is(item.kind, 'claim');
  t.is(item.n, 1);
  t.is(item.index, r.index);
  t.deepEqual(item.master, o.master);
  // the claim must name the caller's account
  const o2 = await bindOwner(portal.http, portal.name);
  const forOther = createClaim(o2.admin.sign, d.secrets, { device: d.id.id, master: o2.masterId, account: o.account });
  t.is(await codeOf(o2.client.claim(d.secrets.claimId, forOther)), 'forbidden');
  // DeviceStatus lists it; a status report shows up
  await d.client.status(createStatus(d.id.keys.sign, { seq: 2, lastContact: new Date().toISOString(), owners: [], errors: [] }));
  await d.client.status(createStatus(d.id.keys.sign, { seq: 1, lastContact: new Date().toISOString(), owners: [], errors: [] }));
  const ds = await o.client.deviceStatus();
  t.is(ds.length, 1);
  t.is(ds[0]?.device, d.id.id);
  t.deepEqual(ds[0]?.profile, d.id.profile);
  t.is(JSON.parse(Buffer.from(fromB64u(ds[0]?.status?.payload, 'p')).toString()).seq, 2);
  t.truthy(ds[0]?.received);
  // a status signed by another key
  t.is(await codeOf(d.client.status(createStatus(d.id.keys.auth, { seq: 3, lastContact: new Date().toISOString(), owners: [], errors: [] }))), 'unknown-signer');
});

test('Post remove: the device hears it, then is no longer the owner\'s', async (t) => {
  const o = await bindOwner(portal.http, portal.name);
  const d = await registerDevice(portal.http);
  await claim(o, d);
  const o2 = await bindOwner(portal.http, portal.name);
  t.is(await codeOf(o2.client.post(d.id.id, createRemove(o2.admin.sign, { device: d.id.id, master: o2.masterId }))), 'forbidden');
  t.is(await codeOf(o2.client.post(d.id.id, createRemove(o.admin.sign, { device: d.id.id, master: o.masterId }))), 'unknown-signer');
  const r = await o.client.post(d.id.id, createRemove(o.admin.sign, { device: d.id.id, master: o.masterId }));
  const feed = await d.client.download(1);
  t.is(feed.items[0]?.kind, 'remove');
  t.is(feed.items[0]?.index, r.index);
  t.deepEqual(await o.client.deviceStatus(), []);
  t.is(await codeOf(o.client.publish(appProfile(o, [d], 1))), 'forbidden');
});

test('Publish master: a new master goes to every claimed device; a revoked administration key is refused', async (t) => {
  const o = await bindOwner(portal.http, portal.name);
  const d = await registerDevice(portal.http);
  await claim(o, d);
  const second = newAdmin('phone');
  const m2 = createMasterProfile(o.masterKeys, [adminEntry(second)], { seq: 2, revoked: [signKeyId(o.admin.sign.publicKey)] });
  await o.client.publish(m2);
  const feed = await d.client.download(1);
  t.is(feed.items[0]?.kind, 'master');
  t.deepEqual(feed.items[0]?.object, m2);
  // the revoked key's session ended with it, and it cannot open another
  t.is(await codeOf(o.client.publish(createMasterProfile(o.masterKeys, [adminEntry(second)], { seq: 3 }))), 'revoked-key');
  const old = new PortalClient({ url: portal.http, identity: { subject: o.account, key: o.admin.sign } });
  t.is(await codeOf(old.openSession()), 'revoked-key');
  // nor by binding again with the older master profile that still listed it
  const short = o.account.split('@')[0] as string;
  t.is(await codeOf(new PortalClient({ url: portal.http }).bindAccount({ account: short, master: o.master, personal: o.personal, request: createSession(o.admin.sign, o.account) })), 'revoked-key');
  // the phone, listed in the master the portal holds, may bind again with it (a visitor's new administration device does)
  const p2 = createPersonalProfile(second, { master: o.masterId, account: o.account, seq: 1, devices: [], apps: [] });
  t.is((await new PortalClient({ url: portal.http }).bindAccount({ account: short, master: m2, personal: p2, request: createSession(second.sign, o.account) })).master, o.masterId);
  const phone = new PortalClient({ url: portal.http, identity: { subject: o.account, key: second.sign } });
  t.is(await codeOf(phone.publish(createMasterProfile(o.masterKeys, [adminEntry(second)], { seq: 2 }))), 'rollback');
  t.is(await codeOf(phone.publish(createMasterProfile(generateMasterKeys(), [adminEntry(second)], { seq: 3 }))), 'wrong-master');
  t.is(await codeOf(phone.publish(appProfile(o, [d], 1))), 'revoked-key');
});

test('Join: a pending join shows in Account; an unknown account is not found', async (t) => {
  const o = await bindOwner(portal.http, portal.name);
  const joiner = newAdmin('tablet');
  const j = createJoin(joiner, o.account, 'ABCD-EFGH');
  await new PortalClient({ url: portal.http }).join(j);
  t.deepEqual((await o.client.account()).joins, [j]);
  t.is(await codeOf(new PortalClient({ url: portal.http }).join(createJoin(joiner, `nobody@${portal.name}`, '1234'))), 'not-found');
});

test('Download long poll: answers as soon as an item arrives', async (t) => {
  // When a poll's wait runs out is a timing rule: portal-limits.test.ts drives it with a FakeClock.
  // Here: a held poll is woken by the publication, with the item.
  const o = await bindOwner(portal.http, portal.name);
  const d = await registerDevice(portal.http);
  await claim(o, d);
  t.is((await d.client.download(1)).items.length, 0);
  let answered = false;
  const poll = d.client.download(1, 60_000).finally(() => (answered = true));
  // held: the portal counts it (no other test of this file long-polls this portal)
  await pollHeld(portal.http);
  t.false(answered);
  await o.client.publish(appProfile(o, [d], 1));
  const r = await poll;
  t.is(r.n, 2);
  t.is(r.items[0]?.kind, 'application');
  // with nothing new, the wait runs out and the answer is empty
  t.deepEqual(await d.client.download(2, 400), { n: 2, items: [] });
});

test('MQTT push on the embedded broker: the device hears its items; it may not hear another device\'s', async (t) => {
  const url = portal.mqtt;
  if (url === null) return t.fail('no broker');
  const o = await bindOwner(portal.http, portal.name);
  const d = await registerDevice(portal.http);
  const topic = deviceTopic(d.id.id);
  const sub = await listen(url, { username: d.id.id, password: JSON.stringify(createSession(d.id.keys.auth, d.id.id)) }, topic);
  try {
    // a subscription to another device's topic is refused (SUBACK 0x80)
    const other = await registerDevice(portal.http);
    for (const forbidden of [deviceTopic(other.id.id), 'mmm/v1/device/#', '#']) {
      const e = await t.throwsAsync(sub.client.subscribeAsync(forbidden, { qos: 1 }));
      t.deepEqual((e as Error & { packet?: { granted?: unknown } }).packet?.granted, [128], forbidden);
    }
    const r = await claim(o, d);
    const item = await sub.next();
    t.is(item.kind, 'claim');
    t.is(item.n, 1);
    t.is(item.index, r.index);
    await o.client.publish(appProfile(o, [d], 1));
    const app = await sub.next();
    t.is(app.n, 2);
    t.deepEqual(app, (await d.client.download(1)).items[0]);
  } finally {
    await sub.client.endAsync();
  }
  // a replayed or forged password is refused
  const session = createSession(d.id.keys.auth, d.id.id);
  const ok = await mqtt.connectAsync(url, { username: d.id.id, password: JSON.stringify(session), reconnectPeriod: 0 });
  await ok.endAsync();
  await t.throwsAsync(mqtt.connectAsync(url, { username: d.id.id, password: JSON.stringify(session), reconnectPeriod: 0, connectTimeout: 3000 }));
  const forged = { ...session, sigs: session.sigs.map((s) => ({ ...s, sig: flipBit(s.sig) })) };
  await t.throwsAsync(mqtt.connectAsync(url, { username: d.id.id, password: JSON.stringify(forged), reconnectPeriod: 0, connectTimeout: 3000 }));
  await t.throwsAsync(mqtt.connectAsync(url, { reconnectPeriod: 0, connectTimeout: 3000 }));
  // a device cannot publish: the broker drops the connection
  const pub = await mqtt.connectAsync(url, { username: d.id.id, password: JSON.stringify(createSession(d.id.keys.auth, d.id.id)), reconnectPeriod: 0 });
  const closed = new Promise<void>((resolve) => pub.once('close', () => resolve()));
  pub.publish(topic, 'spoof', { qos: 1 });
  await closed;
  await pub.endAsync(true);
});

test('Refusals: forged, replayed, oversized and malformed requests', async (t) => {
  const o = await bindOwner(portal.http, portal.name);
  const anon = new PortalClient({ url: portal.http });
  // forged: one bit of the signature flipped
  const s = createSession(o.admin.sign, o.account);
  const forged = { ...s, sigs: s.sigs.map((x) => ({ ...x, sig: flipBit(x.sig) })) };
  const f = await raw(portal.http, 'POST', PATHS.session, JSON.stringify({ request: forged }));
  t.is(f.status, 422);
  t.is(errCode(f.json), 'bad-signature');
  // replayed: the same session request twice, and one signed 10 minutes ago
  const fresh = createSession(o.admin.sign, o.account);
  t.is((await raw(portal.http, 'POST', PATHS.session, JSON.stringify({ request: fresh }))).status, 200);
  const again = await raw(portal.http, 'POST', PATHS.session, JSON.stringify({ request: fresh }));
  t.is(again.status, 422);
  t.is(errCode(again.json), 'replay');
  const old = createSession(o.admin.sign, o.account, new Date(Date.now() - 10 * 60_000).toISOString());
  t.is(errCode((await raw(portal.http, 'POST', PATHS.session, JSON.stringify({ request: old }))).json), 'replay');
  // oversized
  const big = JSON.stringify({ request: { payload: 'A'.repeat(LIMITS.maxBodyBytes), sigs: [] } });
  const tooBig = await raw(portal.http, 'POST', PATHS.session, big);
  t.is(tooBig.status, 413);
  t.is(errCode(tooBig.json), 'too-large');
  // malformed: not JSON, unknown fields, bad query parameters, no token, bad token
  const notJson = await raw(portal.http, 'POST', PATHS.session, '{"request":');
  t.is(notJson.status, 400);
  t.is(errCode(notJson.json), 'malformed');
  t.is(errCode((await raw(portal.http, 'POST', PATHS.publish, '[]', { authorization: `Bearer ${o.client.currentToken ?? ''}` })).json), 'malformed');
  t.is((await raw(portal.http, 'GET', `${PATHS.inclusion}?index=x&size=1`)).status, 400);
  t.is((await raw(portal.http, 'GET', `${PATHS.consistency}?from=3&to=1`)).status, 400);
  const noToken = await raw(portal.http, 'GET', PATHS.account);
  t.is(noToken.status, 401);
  t.is(noToken.headers['www-authenticate'], 'Bearer');
  t.is((await raw(portal.http, 'GET', PATHS.account, undefined, { authorization: `Bearer ${b64u(c.randomBytes(32))}` })).status, 401);
  t.is((await raw(portal.http, 'GET', '/.well-known/mmm/Nothing')).status, 404);
  const wrongMethod = await raw(portal.http, 'GET', PATHS.publish);
  t.is(wrongMethod.status, 405);
  t.is(wrongMethod.headers.allow, 'POST');
  t.is(await codeOf(anon.join({ payload: 'eyJ0eXBlIjoiam9pbiJ9', sigs: [{ kid: 'MAAA-AAAA', sig: b64u(new Uint8Array(64)) }] })), 'malformed');
  // junk thrown at every POST transaction: a refusal each time, never a crash
  const junk = ['null', '1', '"x"', '{}', '{"object":null}', '{"object":{"payload":"!","sigs":[]}}', '{"request":{"payload":"","sigs":[{"kid":"x","sig":""}]}}', '\u0000', '{"a":'.repeat(2000)];
  for (const p of Object.values(PATHS)) {
    for (const j of junk) {
      const r = await raw(portal.http, 'POST', p, j, { authorization: `Bearer ${o.client.currentToken ?? ''}` });
      t.true(r.status >= 400 && r.status < 500, `${p} ${j.slice(0, 20)} -> ${r.status}`);
    }
  }
  t.is((await raw(portal.http, 'GET', '/healthz')).status, 200);
  // the page a label's QR code opens: the owner app (its own script only, under a strict CSP) or,
  // without it, a static page; the claim code is never asked for (it stays in the fragment)
  const page = await raw(portal.http, 'GET', '/claim');
  t.is(page.status, 200);
  t.regex(String(page.headers['content-type']), /^text\/html/);
  const html = String(page.json);
  t.true(html.includes('mesh device claim'));
  t.false(/<script(?! defer src="app\.js"><\/script>)|<form|<img|https?:\/\//i.test(html));
  if (html.includes('<script')) t.regex(String(page.headers['content-security-policy']), /default-src 'none'; script-src 'self';/);
  t.is((await raw(portal.http, 'POST', '/claim', '{}')).status, 405);
  // and the one an invitation's QR code opens
  const invite = await raw(portal.http, 'GET', '/invite');
  t.is(invite.status, 200);
  t.true(String(invite.json).includes('mesh device claim'));
  t.false(/<script(?! defer src="app\.js"><\/script>)|<form|<img|https?:\/\//i.test(String(invite.json)));
});

test('Log: inclusion proofs verify, and every earlier tree head is consistent with the current one', async (t) => {
  const hello = await new PortalClient({ url: portal.http }).hello();
  const portalPub = verifyPortalProfile(hello.portal, portal.portal).sign;
  const heads: TreeHead[] = [treeHeadOf(portalPub, hello.treeHead)];
  const o = await bindOwner(portal.http, portal.name);
  const d = await registerDevice(portal.http);
  const objects: { env: SignedEnvelope; index: number }[] = [];
  const r1 = await claim(o, d);
  heads.push(treeHeadOf(portalPub, r1.treeHead));
  objects.push({ env: (await d.client.download(0)).items[0]?.object as SignedEnvelope, index: r1.index });
  for (let seq = 1; seq <= 3; seq++) {
    const env = appProfile(o, [d], seq);
    const r = await o.client.publish(env);
    const th = treeHeadOf(portalPub, r.treeHead);
    t.true(th.size > r.index);
    heads.push(th);
    objects.push({ env, index: r.index });
  }
  const current = treeHeadOf(portalPub, await new PortalClient({ url: portal.http }).treeHead());
  for (const ob of objects) {
    const p = await new PortalClient({ url: portal.http }).inclusion(ob.index, current.size);
    verifyInclusion(leafHash(payloadBytes(ob.env)), ob.index, current.size, p.proof.map((x) => fromB64u(x, 'proof', 32)), current.root);
    const e = await new PortalClient({ url: portal.http }).entry(ob.index);
    t.deepEqual(fromB64u(e.data, 'data'), payloadBytes(ob.env));
  }
  for (const h of heads) {
    const p = await new PortalClient({ url: portal.http }).consistency(h.size, current.size);
    t.notThrows(() => verifyConsistency(h.size, current.size, h.root, current.root, p.proof.map((x) => fromB64u(x, 'proof', 32))));
  }
  // a size the log has not reached
  t.is(await codeOf(new PortalClient({ url: portal.http }).inclusion(0, current.size + 1000)), 'not-found');
  t.is(await codeOf(new PortalClient({ url: portal.http }).entry(current.size + 1000)), 'not-found');
  const m = await raw(portal.http, 'GET', '/metrics');
  t.regex(String(m.json), /mesh_portal_requests_total\{transaction="Publish",status="200"\} \d+/);
  t.regex(String(m.json), /mesh_portal_log_size \d+/);
});

test('Claim attempts: after N failed proofs every claim of that device is 429, even a good one, across a restart', async (t) => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mesh-portal-claims-'));
  const args = ['--claim-attempts', '3', '--no-mqtt', '--rate-limit', '0'];
  let p = await startPortalProcess({ args, dataDir });
  try {
    t.is(p.mqtt, null);
    const o = await bindOwner(p.http, p.name);
    const d = await registerDevice(p.http);
    for (let i = 0; i < 3; i++) {
      const wrong = deriveClaimSecrets(newClaimSecret());
      const bad = createClaim(o.admin.sign, { ...wrong, claimId: d.secrets.claimId }, { device: d.id.id, master: o.masterId, account: o.account });
      t.is(await codeOf(o.client.claim(d.secrets.claimId, bad)), 'bad-claim-proof');
    }
    const good = createClaim(o.admin.sign, d.secrets, { device: d.id.id, master: o.masterId, account: o.account });
    const r = await raw(p.http, 'POST', PATHS.claim, JSON.stringify({ id: d.secrets.claimId, object: good }), { authorization: `Bearer ${o.client.currentToken ?? ''}` });
    t.is(r.status, 429);
    t.is(errCode(r.json), 'rate-limited');
    t.true(Number(r.headers['retry-after']) > 3000);
    // another device is not affected
    const d2 = await registerDevice(p.http);
    await claim(o, d2);
    // the count is in the database: a restart does not reset it; the log tree is rebuilt the same
    const pub = verifyPortalProfile((await new PortalClient({ url: p.http }).hello()).portal).sign;
    const before = verifyTreeHead(await new PortalClient({ url: p.http }).treeHead(), pub);
    t.is(await p.stop(), 0);
    p = await startPortalProcess({ args, dataDir });
    const after = verifyTreeHead(await new PortalClient({ url: p.http }).treeHead(), pub);
    t.is(after.size, before.size);
    t.deepEqual(after.root, before.root);
    const again = new PortalClient({ url: p.http, identity: { subject: o.account, key: o.admin.sign } });
    t.is(await codeOf(again.claim(d.secrets.claimId, good)), 'rate-limited');
  } finally {
    t.is(await p.stop(), 0);
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
});

test('Rate limit: --rate-limit reaches the process; past the burst requests are 429 with Retry-After', async (t) => {
  // The exact counts (the burst, then the rate per second) are tested with a FakeClock in
  // portal-limits.test.ts. Here only the flag's way to the limiter: --rate-limit 1 (burst 10,
  // one token a second) and 50 requests at once;
  // they would have to take 40 s for none to be refused.
  const p = await startPortalProcess({ args: ['--rate-limit', '1', '--no-mqtt'] });
  try {
    const rs = await Promise.all(Array.from({ length: 50 }, (_, i) => raw(p.http, 'GET', i % 2 === 0 ? PATHS.hello : PATHS.treeHead)));
    t.true(rs.some((r) => r.status === 200));
    const limited = rs.filter((r) => r.status === 429);
    t.true(limited.length > 0);
    for (const r of limited) {
      t.is(errCode(r.json), 'rate-limited');
      t.true(Number(r.headers['retry-after']) >= 1);
    }
  } finally {
    t.is(await p.stop(), 0);
  }
});

test('MQTT push through Mosquitto with --mqtt-url', async (t) => {
  const p = await startPortalProcess({ args: ['--mqtt-url', MOSQUITTO, '--rate-limit', '0'] });
  try {
    t.is(p.mqtt, MOSQUITTO);
    const o = await bindOwner(p.http, p.name);
    const d = await registerDevice(p.http);
    const sub = await listen(MOSQUITTO, { clientId: `mesh-test-${randomBytes(6).toString('hex')}` }, deviceTopic(d.id.id));
    try {
      const r = await claim(o, d);
      const item = await sub.next();
      t.is(item.kind, 'claim');
      t.is(item.index, r.index);
      t.is(item.n, 1);
    } finally {
      await sub.client.endAsync();
    }
  } finally {
    t.is(await p.stop(), 0);
  }
});

test('SIGTERM during a long poll: the poll is answered and the process exits 0', async (t) => {
  const p = await startPortalProcess({ args: ['--no-mqtt'] });
  try {
    const d = await registerDevice(p.http);
    const poll = d.client.download(0, 30_000);
    await pollHeld(p.http);
    const code = await p.stop();
    t.is(code, 0);
    t.deepEqual(await poll, { n: 0, items: [] });
  } finally {
    await p.stop();
  }
});

test('PostgreSQL: two portal processes on one database share accounts, feeds and one log', async (t) => {
  const schema = `mesh_test_${randomBytes(5).toString('hex')}`;
  const env = { DATABASE_URL: `${PG_URL}?schema=${schema}` };
  const a = await startPortalProcess({ env, args: ['--no-mqtt', '--rate-limit', '0'] });
  // the second process shares the first one's key, so both sign the same log
  const b = await startPortalProcess({ env, args: ['--no-mqtt', '--rate-limit', '0', '--key', `${a.dataDir}/portal-key.json`] });
  try {
    t.is(a.portal, b.portal);
    const o = await bindOwner(a.http, a.name);
    const d = await registerDevice(b.http);
    // the owner works through A, the device through B
    await claim(o, d);
    const poll = d.client.download(1, 20_000);
    await new Promise((r) => setTimeout(r, 200));
    const ownerB = new PortalClient({ url: b.http, identity: { subject: o.account, key: o.admin.sign } });
    // concurrent publishes through both processes: feed numbers stay 1, 2, 3, ... without gaps
    const writes = await Promise.all([1, 2, 3, 4, 5, 6].map((seq) => (seq % 2 === 0 ? o.client : ownerB).publish(appProfile(o, [d], seq)).then(
      (r) => r.index,
      (e: unknown) => (e instanceof MeshError && e.code === 'rollback' ? -1 : Promise.reject(e)),
    )));
    t.true(writes.some((i) => i >= 0));
    const first = await poll;
    t.true(first.items.length >= 1);
    const all = await d.client.download(0);
    t.deepEqual(all.items.map((i) => i.n), Array.from({ length: all.n }, (_, i) => i + 1));
    t.is(all.items[0]?.kind, 'claim');
    // one log: both processes serve the same tree, and it is consistent
    const pub = verifyPortalProfile((await new PortalClient({ url: a.http }).hello()).portal).sign;
    const ha = verifyTreeHead(await new PortalClient({ url: a.http }).treeHead(), pub);
    const hb = verifyTreeHead(await new PortalClient({ url: b.http }).treeHead(), pub);
    t.is(ha.size, hb.size);
    t.deepEqual(ha.root, hb.root);
    const last = all.items[all.items.length - 1] as FeedItem;
    const proof = await new PortalClient({ url: b.http }).inclusion(last.index, hb.size);
    verifyInclusion(leafHash(payloadBytes(last.object)), last.index, hb.size, proof.proof.map((x) => fromB64u(x, 'proof', 32)), hb.root);
    const cons = await new PortalClient({ url: a.http }).consistency(2, ha.size);
    const h2 = await new PortalClient({ url: a.http }).inclusion(0, 2);
    t.is(h2.size, 2);
    t.truthy(cons);
    // the account and tokens work across processes
    t.is((await new PortalClient({ url: b.http, token: o.client.currentToken ?? '' }).account()).account, o.account);
  } finally {
    t.is(await a.stop(), 0);
    t.is(await b.stop(), 0);
    await PostgresDriver.dropSchema(PG_URL, schema);
  }
});
