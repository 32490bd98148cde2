/**
 * The portal's timing rules and resource limits, in-process (startPortal) with a FakeClock: the
 * request-rate buckets, claim-attempt windows, sessions, long polls, new-record budgets, the
 * expiry and cap of unclaimed devices, size limits, sessions per subject, and client addresses
 * behind a trusted proxy. Time moves only when a test advances the clock, so no assertion here
 * depends on how fast the machine is. Requests are real HTTP from 127.0.0.x (several client
 * addresses on one machine); the database is real (SQLite, and PostgreSQL where it matters).
 */
import test, { type ExecutionContext } from 'ava';
import Database from 'better-sqlite3';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import * as c from '../mesh/crypto.js';
import { b64u } from '../mesh/bytes.js';
import { deriveClaimSecrets, newClaimSecret, sealClaimBlob } from '../mesh/claim.js';
import { newDeviceIdentity, type DeviceIdentity } from '../mesh/device.js';
import type { SignedEnvelope } from '../mesh/envelope.js';
import { createClaim, createSession, createStatus } from '../mesh/messages.js';
import { challengeKey, makeChallenge, CHALLENGE_TTL_MS } from '../mesh/challenge.js';
import { generateMasterKeys, signKeyId } from '../mesh/keys.js';
import { adminEntry, createMasterProfile, createPersonalProfile } from '../mesh/profiles.js';
import { PATHS, type RegisterRequest } from '../mesh/protocol.js';
import { FakeClock, isoNow } from '../runtime/clock.js';
import { addressKey, clientAddress, TrustedProxies } from '../portal/address.js';
import { RECORD_LIMITS, unclaimedDeviceBound } from '../portal/limits.js';
import { silentLogger } from '../portal/log.js';
import { startPortal, type PortalHandle, type PortalOptions } from '../portal/server.js';
import { PostgresDriver } from '../portal/storage/postgres.js';
import { TestOwner } from '../harness/owner.js';
import { rawHttp, type RawAnswer } from './helpers/raw-http.js';

const PG_URL = process.env.MESH_TEST_PG ?? 'postgres://root@127.0.0.1:5432/test';
const HOUR = 3_600_000;

// ---------------------------------------------------------------- fixtures

interface Started {
  readonly portal: PortalHandle;
  readonly clock: FakeClock;
  readonly dataDir: string;
  /** rows of a table, through a connection of the test's own */
  rows(sql: string): Promise<Record<string, unknown>[]>;
  stop(): Promise<void>;
}

async function start(t: ExecutionContext, opts: Partial<PortalOptions> & { postgres?: boolean } = {}): Promise<Started> {
  const clock = new FakeClock(Date.now());
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mesh-portal-limits-'));
  const schema = `mesh_lim_${randomBytes(5).toString('hex')}`;
  const { postgres, ...rest } = opts;
  const portal = await startPortal({
    dataDir,
    httpPort: 0,
    mqtt: { mode: 'off' },
    logger: silentLogger,
    verifyThreads: 0,
    clock,
    ...(postgres === true ? { databaseUrl: PG_URL, pgSchema: schema } : {}),
    ...rest,
  });
  let rows: Started['rows'];
  let closeRows: () => Promise<void>;
  if (postgres === true) {
    // BIGINT as a number, as the portal's own driver reads it
    const types = { getTypeParser: ((oid: number, format?: string) => (oid === 20 ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format as 'text'))) as typeof pg.types.getTypeParser };
    const client = new pg.Client({ connectionString: PG_URL, options: `-c search_path=${schema}`, types });
    await client.connect();
    rows = async (sql) => (await client.query(sql)).rows as Record<string, unknown>[];
    closeRows = () => client.end();
  } else {
    const db = new Database(path.join(dataDir, 'portal.db'), { readonly: true });
    rows = (sql) => Promise.resolve(db.prepare(sql).all() as Record<string, unknown>[]);
    closeRows = () => {
      db.close();
      return Promise.resolve();
    };
  }
  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopped ??= (async () => {
      await closeRows();
      await portal.close();
      if (postgres === true) await PostgresDriver.dropSchema(PG_URL, schema);
      fs.rmSync(dataDir, { recursive: true, force: true });
    })());
  t.teardown(stop);
  return { portal, clock, dataDir, rows, stop };
}

/** Move the clock and let the sweep that the last minute starts finish, at the new time. */
async function advanceAndSweep(s: Started, ms: number): Promise<void> {
  await s.clock.advance(ms);
  await s.portal.housekeeping();
  await s.clock.advance(60_000);
  await s.portal.housekeeping();
}

type Answer = RawAnswer;

/** One HTTP exchange from a chosen local address (127.0.0.x: another client on this machine). */
function call(base: string, method: 'GET' | 'POST', p: string, o: { body?: unknown; from?: string; headers?: Record<string, string> } = {}): Promise<Answer> {
  return rawHttp(base, method, p, { ...(o.body !== undefined ? { body: JSON.stringify(o.body) } : {}), localAddress: o.from ?? '127.0.0.1', ...(o.headers !== undefined ? { headers: o.headers } : {}) });
}

/** Wait (in real time, without a deadline of its own: ava's timeout is the backstop) until `cond` holds. */
async function until(cond: () => Promise<boolean>): Promise<void> {
  while (!(await cond())) await new Promise((r) => setTimeout(r, 10));
}

const codeOf = (a: Answer): unknown => (a.json as { error?: { code?: unknown } }).error?.code;

interface Dev {
  readonly id: DeviceIdentity;
  readonly register: RegisterRequest;
}

const maker = c.ed25519KeyPair();

function newDevice(clock: FakeClock): Dev {
  const id = newDeviceIdentity({ model: 'thermostat', manufacturer: 'acme', serial: `sn${randomBytes(4).toString('hex')}`, portalAuthority: 'localhost', manufacturerKey: maker });
  const secrets = deriveClaimSecrets(id.claimSecret);
  return {
    id,
    register: {
      device: id.profile,
      endorsement: id.endorsement,
      claim: { id: secrets.claimId, blob: sealClaimBlob(secrets, { profile: id.profile, endorsement: id.endorsement }), portalKey: b64u(secrets.portalKey) },
      request: createSession(id.keys.auth, id.id, isoNow(clock)),
    },
  };
}

/** Register (again, with a fresh session request dated by the portal's clock). */
function register(s: Started, d: Dev, from = '127.0.0.1', over: Partial<RegisterRequest> = {}): Promise<Answer> {
  const body = { ...d.register, request: createSession(d.id.keys.auth, d.id.id, isoNow(s.clock)), ...over };
  return call(s.portal.httpUrl, 'POST', PATHS.register, { body, from });
}

function tokenOf(a: Answer): string {
  const tk = (a.json as { token?: unknown }).token;
  if (typeof tk !== 'string') throw new Error(`no token in ${JSON.stringify(a.json)}`);
  return tk;
}

const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` });

/** Bytes of column data the stored rows hold (texts as UTF-8, binary as is, integers 8). */
function bytesOf(rows: readonly Record<string, unknown>[]): number {
  let n = 0;
  for (const r of rows) {
    for (const v of Object.values(r)) {
      if (typeof v === 'string') n += Buffer.byteLength(v, 'utf8');
      else if (v instanceof Uint8Array) n += v.byteLength;
      else if (typeof v === 'number' || typeof v === 'bigint') n += 8;
    }
  }
  return n;
}

/** What the unclaimed devices hold: their rows and those of their sessions, statuses and claim failures. */
async function unclaimedStorage(s: Started): Promise<{ devices: number; bytes: number }> {
  const devices = await s.rows(`SELECT * FROM devices WHERE feed_n = 0`);
  const ids = devices.map((d) => `'${String(d.id)}'`).join(', ') || `''`;
  const owned = [
    ...(await s.rows(`SELECT * FROM sessions WHERE subject IN (${ids})`)),
    ...(await s.rows(`SELECT * FROM statuses WHERE device IN (${ids})`)),
    ...(await s.rows(`SELECT * FROM claim_failures WHERE device IN (${ids})`)),
  ];
  return { devices: devices.length, bytes: bytesOf(devices) + bytesOf(owned) };
}

const BOUND_PER_DEVICE = unclaimedDeviceBound(16, 10);

// ---------------------------------------------------------------- request rate

test('rate limit: a frozen clock lets exactly the burst through, and each second of it refills the rate', async (t) => {
  const s = await start(t, { rateLimit: 2 });
  const url = s.portal.httpUrl;
  const first = [];
  for (let i = 0; i < 30; i++) first.push(await call(url, 'GET', i % 2 === 0 ? PATHS.hello : PATHS.treeHead));
  // burst max(10, 2 x 2) = 10
  t.is(first.filter((r) => r.status === 200).length, 10);
  const refused = first.filter((r) => r.status === 429);
  t.is(refused.length, 20);
  for (const r of refused) {
    t.is(codeOf(r), 'rate-limited');
    t.is(r.headers['retry-after'], '1');
  }
  t.deepEqual(first.slice(0, 10).map((r) => r.status), Array.from({ length: 10 }, () => 200));
  // another address has its own bucket
  t.is((await call(url, 'GET', PATHS.hello, { from: '127.0.0.2' })).status, 200);
  // one second: two tokens
  await s.clock.advance(1000);
  const after = [];
  for (let i = 0; i < 4; i++) after.push((await call(url, 'GET', PATHS.hello)).status);
  t.deepEqual(after, [200, 200, 429, 429]);
});

test('rate limit behind a trusted proxy: X-Forwarded-For names the client; from anyone else it is ignored', async (t) => {
  const proxied = await start(t, { rateLimit: 2, trustedProxies: ['127.0.0.1', '10.0.0.0/8'] });
  const hello = (s: Started, xff: string, from = '127.0.0.1'): Promise<number> => call(s.portal.httpUrl, 'GET', PATHS.hello, { from, headers: { 'x-forwarded-for': xff } }).then((r) => r.status);
  for (let i = 0; i < 10; i++) t.is(await hello(proxied, '203.0.113.5'), 200);
  t.is(await hello(proxied, '203.0.113.5'), 429);
  // a client-written entry on the left changes nothing; a trusted hop on the right is skipped
  t.is(await hello(proxied, '198.51.100.1, 203.0.113.5'), 429);
  t.is(await hello(proxied, '203.0.113.5, 10.1.2.3'), 429);
  t.is(await hello(proxied, '203.0.113.6'), 200);
  // 127.0.0.2 is not a trusted proxy: its X-Forwarded-For is not believed, its own address is counted
  for (let i = 0; i < 10; i++) t.is(await hello(proxied, `192.0.2.${i}`, '127.0.0.2'), 200);
  t.is(await hello(proxied, '192.0.2.200', '127.0.0.2'), 429);

  const direct = await start(t, { rateLimit: 2 });
  for (let i = 0; i < 10; i++) t.is(await hello(direct, `192.0.2.${i}`), 200);
  t.is(await hello(direct, '192.0.2.99'), 429);
});

test('client addresses: IPv6 by /64, IPv4-mapped as IPv4, the rightmost untrusted X-Forwarded-For hop', (t) => {
  t.is(addressKey('2001:db8:1:2:aaaa::1'), '2001:db8:1:2::/64');
  t.is(addressKey('2001:db8:1:2:ffff:ffff:ffff:ffff'), '2001:db8:1:2::/64');
  t.is(addressKey('2001:0db8:0001:0002::9'), '2001:db8:1:2::/64');
  t.is(addressKey('::1'), '0:0:0:0::/64');
  t.not(addressKey('2001:db8:1:3::1'), addressKey('2001:db8:1:2::1'));
  t.is(addressKey('::ffff:192.0.2.7'), '192.0.2.7');
  t.is(addressKey('192.0.2.7'), '192.0.2.7');
  const trusted = TrustedProxies.parse('10.0.0.0/8, 192.0.2.1,fd00::/8');
  t.true(trusted.has('10.200.0.1'));
  t.true(trusted.has('::ffff:10.0.0.1'));
  t.true(trusted.has('fd12::1'));
  t.false(trusted.has('192.0.2.2'));
  t.is(clientAddress('10.0.0.1', '203.0.113.9', trusted), '203.0.113.9');
  t.is(clientAddress('10.0.0.1', '1.1.1.1, 203.0.113.9, 10.9.9.9', trusted), '203.0.113.9');
  t.is(clientAddress('10.0.0.1', ['1.1.1.1', '203.0.113.9'], trusted), '203.0.113.9');
  t.is(clientAddress('10.0.0.1', 'garbage', trusted), '10.0.0.1');
  t.is(clientAddress('10.0.0.1', '10.0.0.2', trusted), '10.0.0.1');
  t.is(clientAddress('198.51.100.1', '203.0.113.9', trusted), '198.51.100.1');
  t.throws(() => TrustedProxies.parse('10.0.0.0/33'), { message: /prefix length/ });
  t.throws(() => TrustedProxies.parse('proxy.example'), { message: /not an IP address/ });
});

// ---------------------------------------------------------------- sessions, long polls, claim windows

test('sessions end after 24 h of the clock; a long poll is answered when its wait has passed on the clock', async (t) => {
  const s = await start(t, { rateLimit: 0 });
  const url = s.portal.httpUrl;
  const d = newDevice(s.clock);
  const token = tokenOf(await register(s, d));
  let answered: Answer | undefined;
  const poll = call(url, 'GET', `${PATHS.download}?since=0&wait=30000`, { headers: bearer(token) }).then((a) => (answered = a));
  await until(async () => /mesh_portal_long_polls 1/.test(String((await call(url, 'GET', '/metrics')).json)));
  await s.clock.advance(29_000);
  // the poll is still held: the clock has not reached its wait (real time plays no part)
  t.is(answered, undefined);
  await s.clock.advance(1_000);
  const a = await poll;
  t.is(a.status, 200);
  t.deepEqual(a.json, { n: 0, items: [] });

  t.is((await call(url, 'GET', `${PATHS.download}?since=0`, { headers: bearer(token) })).status, 200);
  await s.clock.advance(24 * HOUR - 31_000);
  t.is((await call(url, 'GET', `${PATHS.download}?since=0`, { headers: bearer(token) })).status, 200);
  await s.clock.advance(1_000);
  const late = await call(url, 'GET', `${PATHS.download}?since=0`, { headers: bearer(token) });
  t.is(late.status, 401);
  t.is(codeOf(late), 'unauthorized');
});

test('challenges: a client whose clock says 1970 opens sessions, registers and binds with a challenge; a forged, expired or used one is refused', async (t) => {
  const s = await start(t);
  const url = s.portal.httpUrl;
  const EPOCH = '1970-01-01T00:00:00.000Z';
  const challenge = async (): Promise<string> => {
    const a = await call(url, 'GET', PATHS.challenge);
    t.is(a.status, 200);
    return (a.json as { challenge: string }).challenge;
  };
  const d = newDevice(s.clock);
  // Register, Session and BindAccount, each signed "at 1970" over a fresh challenge
  t.is((await register(s, d, '127.0.0.1', { request: createSession(d.id.keys.auth, d.id.id, { created: EPOCH, challenge: await challenge() }) })).status, 200);
  const ok = await call(url, 'POST', PATHS.session, { body: { request: createSession(d.id.keys.auth, d.id.id, { created: EPOCH, challenge: await challenge() }) } });
  t.is(ok.status, 200);
  t.truthy(tokenOf(ok));
  const mk = generateMasterKeys();
  const admin = { name: 'laptop', sign: c.ed25519KeyPair(), enc: c.x25519KeyPair() };
  const account = `epoch@${s.portal.name}`;
  const bind = {
    account: 'epoch',
    master: createMasterProfile(mk, [adminEntry(admin, EPOCH)], { created: EPOCH }),
    personal: createPersonalProfile(admin, { master: signKeyId(mk.sign.publicKey), account, seq: 1, devices: [], apps: [], created: EPOCH }),
    request: createSession(admin.sign, account, { created: EPOCH, challenge: await challenge() }),
  };
  t.is((await call(url, 'POST', PATHS.bindAccount, { body: bind })).status, 200);
  // without a challenge, a request is still judged by its time: "1970" is refused
  t.is(codeOf(await call(url, 'POST', PATHS.session, { body: { request: createSession(d.id.keys.auth, d.id.id, EPOCH) } })), 'replay');
  // a challenge is used once: the same request again, or another request over it
  const once = await challenge();
  const first = createSession(d.id.keys.auth, d.id.id, { created: EPOCH, challenge: once });
  t.is((await call(url, 'POST', PATHS.session, { body: { request: first } })).status, 200);
  t.is(codeOf(await call(url, 'POST', PATHS.session, { body: { request: first } })), 'replay');
  t.is(codeOf(await call(url, 'POST', PATHS.session, { body: { request: createSession(d.id.keys.auth, d.id.id, { created: EPOCH, challenge: once }) } })), 'replay');
  // forged: a changed character, or made with another portal's key
  const real = await challenge();
  const changed = real.slice(0, 10) + (real[10] === 'A' ? 'B' : 'A') + real.slice(11);
  const other = makeChallenge(challengeKey(c.randomBytes(32)), s.clock.now());
  for (const bad of [changed, other, 'A'.repeat(75), 'short']) {
    const a = await call(url, 'POST', PATHS.session, { body: { request: createSession(d.id.keys.auth, d.id.id, { challenge: bad }) } });
    t.is(a.status, 422, bad);
    t.is(codeOf(a), 'bad-challenge', bad);
  }
  // expired, by the portal's clock only
  const late = await challenge();
  await s.clock.advance(CHALLENGE_TTL_MS + 1000);
  t.is(codeOf(await call(url, 'POST', PATHS.session, { body: { request: createSession(d.id.keys.auth, d.id.id, { created: isoNow(s.clock), challenge: late }) } })), 'replay');
  t.is((await call(url, 'POST', PATHS.session, { body: { request: createSession(d.id.keys.auth, d.id.id, { created: EPOCH, challenge: await challenge() }) } })).status, 200);
});

test('claim attempts: past the limit every claim of the device is refused until the hour has passed on the clock', async (t) => {
  const s = await start(t, { rateLimit: 0, claimAttempts: 3 });
  const owner = await TestOwner.create(s.portal.httpUrl, 'carol');
  const d = newDevice(s.clock);
  t.is((await register(s, d)).status, 200);
  const secrets = deriveClaimSecrets(d.id.claimSecret);
  const claim = (object: SignedEnvelope): Promise<Answer> =>
    call(s.portal.httpUrl, 'POST', PATHS.claim, { body: { id: secrets.claimId, object }, headers: bearer(owner.client.currentToken ?? '') });
  const bad = (): SignedEnvelope => createClaim(owner.admin.sign, { ...deriveClaimSecrets(newClaimSecret()), claimId: secrets.claimId }, { device: d.id.id, master: owner.masterId, account: owner.account });
  for (let i = 0; i < 3; i++) t.is(codeOf(await claim(bad())), 'bad-claim-proof');
  await s.clock.advance(10 * 60_000);
  const good = (): SignedEnvelope => createClaim(owner.admin.sign, secrets, { device: d.id.id, master: owner.masterId, account: owner.account });
  const locked = await claim(good());
  t.is(locked.status, 429);
  // the first failure was 10 min ago: 50 min to go
  t.is(locked.headers['retry-after'], String(50 * 60));
  // the window holds the failure until the hour is over, its last millisecond included
  await s.clock.advance(50 * 60_000);
  t.is((await claim(good())).status, 429);
  await s.clock.advance(1);
  const ok = await claim(good());
  t.is(ok.status, 200, JSON.stringify(ok.json));
});

// ---------------------------------------------------------------- storage bounds

for (const postgres of [false, true]) {
  const store = postgres ? 'PostgreSQL' : 'SQLite';
  test(`${store}: 100 new devices from one address: the address budget admits 30 an hour, storage stays within 30 x the per-device bound, and unclaimed ones expire`, async (t) => {
    const s = await start(t, { rateLimit: 1000, unclaimedTtlMs: 25 * HOUR, postgres });
    // the owner who will claim one device binds first (a new record from this address too), then an hour passes
    const owner = await TestOwner.create(s.portal.httpUrl, `own${randomBytes(3).toString('hex')}`);
    await s.clock.advance(HOUR);
    const answers: Answer[] = [];
    const devs: Dev[] = [];
    for (let i = 0; i < 100; i++) {
      const d = newDevice(s.clock);
      devs.push(d);
      answers.push(await register(s, d));
    }
    t.is(answers.filter((a) => a.status === 200).length, 30);
    const refused = answers.filter((a) => a.status !== 200);
    t.is(refused.length, 70);
    for (const a of refused) {
      t.is(codeOf(a), 'rate-limited');
      t.true(Number(a.headers['retry-after']) >= 1);
    }
    // a device already registered is not a new record: registering it again costs no budget
    t.is((await register(s, devs[0] as Dev)).status, 200);
    // another address has a budget of its own
    t.is((await register(s, newDevice(s.clock), '127.0.0.3')).status, 200);

    let u = await unclaimedStorage(s);
    t.is(u.devices, 31);
    t.true(u.bytes <= 31 * BOUND_PER_DEVICE, `${u.bytes} bytes for 31 devices; bound ${31 * BOUND_PER_DEVICE}`);
    t.log(`${store}: ${u.devices} unclaimed devices hold ${u.bytes} bytes of column data (${Math.round(u.bytes / u.devices)} each; the bound is ${BOUND_PER_DEVICE})`);

    // an hour later the address may register 30 more, no more
    await s.clock.advance(HOUR);
    let more = 0;
    for (let i = 0; i < 40; i++) if ((await register(s, newDevice(s.clock))).status === 200) more++;
    t.is(more, 30);
    // the budgets are counters in the database, per key and clock hour: 30 taken in this hour from the address
    const used = async (): Promise<number[]> => (await s.rows(`SELECT used FROM budgets WHERE key = 'new|127.0.0.1' ORDER BY win`)).map((r) => Number(r.used));
    t.is((await used()).at(-1), 30);

    // one device is claimed: it stays; the others expire once their TTL has passed and their sessions have ended
    const kept = devs[1] as Dev;
    const ks = deriveClaimSecrets(kept.id.claimSecret);
    await owner.client.claim(ks.claimId, createClaim(owner.admin.sign, ks, { device: kept.id.id, master: owner.masterId, account: owner.account }));
    u = await unclaimedStorage(s);
    t.is(u.devices, 60);
    // the first ones registered at 1 h, the others at 2 h; TTL 25 h (their sessions, 24 h, have ended by then)
    await advanceAndSweep(s, 23 * HOUR);
    u = await unclaimedStorage(s);
    t.is(u.devices, 60, 'none is past its TTL at 25 h');
    await advanceAndSweep(s, HOUR);
    u = await unclaimedStorage(s);
    t.is(u.devices, 30, "at 26 h the first 30 (and the other address's one) have expired, the second 30 not yet");
    await advanceAndSweep(s, HOUR);
    u = await unclaimedStorage(s);
    t.is(u.devices, 0);
    t.is(u.bytes, 0);
    t.is((await s.rows(`SELECT id FROM devices`)).length, 1, 'the claimed device is kept');
    t.deepEqual((await s.rows(`SELECT subject FROM sessions WHERE subject NOT LIKE '%@%'`)).length, 0);
    // the sweep has dropped the budget windows of past hours
    t.deepEqual(await s.rows(`SELECT key FROM budgets`), []);
    // an expired device registers again as a new one
    t.is((await register(s, devs[2] as Dev)).status, 200);
  });
}

test('unclaimed devices: at most --max-unclaimed; past it a new device is 503, a known one still registers', async (t) => {
  const s = await start(t, { rateLimit: 1000, maxUnclaimed: 5, newPerAddressPerHour: 1000 });
  const devs = Array.from({ length: 6 }, () => newDevice(s.clock));
  for (const d of devs.slice(0, 5)) t.is((await register(s, d)).status, 200);
  const full = await register(s, devs[5] as Dev);
  t.is(full.status, 503);
  t.is(codeOf(full), 'unavailable');
  t.truthy(full.headers['retry-after']);
  t.is((await register(s, devs[0] as Dev)).status, 200);
  t.is((await s.rows(`SELECT id FROM devices`)).length, 5);
  // one is claimed: the next sweep counts 4 unclaimed, so one more fits
  const owner = await TestOwner.create(s.portal.httpUrl, 'dave');
  const ks = deriveClaimSecrets((devs[0] as Dev).id.claimSecret);
  await owner.client.claim(ks.claimId, createClaim(owner.admin.sign, ks, { device: (devs[0] as Dev).id.id, master: owner.masterId, account: owner.account }));
  t.is((await register(s, devs[5] as Dev)).status, 503, 'not before the sweep has counted');
  await advanceAndSweep(s, 0);
  t.is((await register(s, devs[5] as Dev)).status, 200);
  t.is((await register(s, newDevice(s.clock))).status, 503);
});

test('new accounts count with new devices against the address budget; the global budget is 503 for everyone', async (t) => {
  const s = await start(t, { rateLimit: 1000, newPerAddressPerHour: 3, newGlobalPerHour: 5 });
  t.is((await register(s, newDevice(s.clock), '127.0.0.2')).status, 200);
  t.is((await register(s, newDevice(s.clock), '127.0.0.2')).status, 200);
  // an owner binds a new account from 127.0.0.1 (its first new record there), then two devices
  await TestOwner.create(s.portal.httpUrl, 'erin');
  t.is((await register(s, newDevice(s.clock), '127.0.0.1')).status, 200);
  t.is((await register(s, newDevice(s.clock), '127.0.0.1')).status, 200);
  const r = await register(s, newDevice(s.clock), '127.0.0.1');
  t.is(r.status, 429);
  t.is(codeOf(r), 'rate-limited', "the account and two devices spent 127.0.0.1's budget of 3");
  // five new records in all: the global budget is spent, whoever asks
  const g = await register(s, newDevice(s.clock), '127.0.0.4');
  t.is(g.status, 503);
  t.is(codeOf(g), 'unavailable');
  t.is((await s.rows(`SELECT id FROM devices`)).length, 4);
  t.is((await s.rows(`SELECT account FROM accounts`)).length, 1);
});

test('size limits: an oversized profile, endorsement, claim blob or status is 413 too-large and not stored', async (t) => {
  const s = await start(t, { rateLimit: 0 });
  const d = newDevice(s.clock);
  const junkSig = (env: SignedEnvelope, n: number): SignedEnvelope => ({
    payload: env.payload,
    sigs: [...env.sigs, ...Array.from({ length: n }, () => ({ ...(env.sigs[0] as SignedEnvelope['sigs'][number]), key: b64u(c.randomBytes(32)) }))],
  });
  const cases: [string, Partial<RegisterRequest>][] = [
    ['profile', { device: junkSig(d.id.profile, 7) }],
    ['endorsement', { endorsement: junkSig(d.id.endorsement as SignedEnvelope, 7) }],
    ['blob', { claim: { ...d.register.claim, blob: `${b64u(c.randomBytes(12))}.${'A'.repeat(RECORD_LIMITS.claimBlobChars)}` } }],
  ];
  for (const [what, over] of cases) {
    const r = await register(s, d, '127.0.0.1', over);
    t.is(r.status, 413, what);
    t.is(codeOf(r), 'too-large', what);
  }
  t.is((await s.rows(`SELECT id FROM devices`)).length, 0);
  const token = tokenOf(await register(s, d));
  const stored = (await s.rows(`SELECT * FROM devices`))[0] ?? {};
  t.true(bytesOf([stored]) < unclaimedDeviceBound(0, 0));

  // statuses: not kept while the device is unclaimed; once claimed, kept up to the size limit
  const status = (seq: number, message = 'ok'): Promise<Answer> =>
    call(s.portal.httpUrl, 'POST', PATHS.status, {
      body: { object: createStatus(d.id.keys.sign, { seq, created: isoNow(s.clock), lastContact: isoNow(s.clock), owners: [], errors: Array.from({ length: message === 'ok' ? 0 : 32 }, () => ({ code: 'internal', message, at: isoNow(s.clock) })) }) },
      headers: bearer(token),
    });
  t.is((await status(1)).status, 200);
  t.is((await s.rows(`SELECT device FROM statuses`)).length, 0);
  const owner = await TestOwner.create(s.portal.httpUrl, 'frank');
  const ks = deriveClaimSecrets(d.id.claimSecret);
  await owner.client.claim(ks.claimId, createClaim(owner.admin.sign, ks, { device: d.id.id, master: owner.masterId, account: owner.account }));
  t.is((await status(2)).status, 200);
  t.is((await s.rows(`SELECT device FROM statuses`)).length, 1);
  const big = await status(3, 'x'.repeat(1000));
  t.is(big.status, 413);
  t.is(codeOf(big), 'too-large');
  t.is(Number((await s.rows(`SELECT seq FROM statuses`))[0]?.seq), 2);
});

test('sessions: a device keeps at most 16 in the database, the newest', async (t) => {
  const s = await start(t, { rateLimit: 0 });
  const d = newDevice(s.clock);
  tokenOf(await register(s, d));
  const tokens: string[] = [];
  for (let i = 0; i < 20; i++) {
    await s.clock.advance(1_000);
    tokens.push(tokenOf(await call(s.portal.httpUrl, 'POST', PATHS.session, { body: { request: createSession(d.id.keys.auth, d.id.id, isoNow(s.clock)) } })));
  }
  const rows = await s.rows(`SELECT expires FROM sessions WHERE subject = '${d.id.id}' ORDER BY expires`);
  t.is(rows.length, 16);
  t.is(Number(rows[0]?.expires), s.clock.now() - 15_000 + 24 * HOUR);
  // the newest works
  t.is((await call(s.portal.httpUrl, 'GET', `${PATHS.download}?since=0`, { headers: bearer(tokens[19] as string) })).status, 200);
});
