/**
 * Several portal processes on one PostgreSQL, each request of a device or an owner on another
 * process: sessions, nonces, long polls, claim attempts, revocations and the log must not depend
 * on which process answers. Real processes, a real database, no mocks.
 */
import test from 'ava';
import { randomBytes } from 'node:crypto';
import { PortalClient } from '../client/portal-client.js';
import { fromB64u } from '../mesh/bytes.js';
import { deriveClaimSecrets, newClaimSecret, parseClaimLabel } from '../mesh/claim.js';
import { newDeviceIdentity, type DeviceIdentity } from '../mesh/device.js';
import { payloadBytes } from '../mesh/envelope.js';
import { createClaim, createSession, verifyPortalProfile, verifyTreeHead } from '../mesh/messages.js';
import { leafHash, verifyConsistency, verifyInclusion } from '../mesh/merkle.js';
import { PostgresDriver } from '../portal/storage/postgres.js';
import { isMeshError } from '../mesh/errors.js';
import { PATHS } from '../mesh/protocol.js';
import { registerDevice } from '../harness/device.js';
import { TestOwner } from '../harness/owner.js';
import { startPortalProcess, type PortalProcess } from '../harness/portal-process.js';

const PG_URL = process.env.MESH_TEST_PG ?? 'postgres://root@127.0.0.1:5432/test';

/** Two processes on one fresh schema, sharing one portal key. */
async function twoPortals(extra: string[] = []): Promise<{ a: PortalProcess; b: PortalProcess; done: () => Promise<void> }> {
  const schema = `mesh_scale_${randomBytes(5).toString('hex')}`;
  const env = { DATABASE_URL: `${PG_URL}?schema=${schema}` };
  const a = await startPortalProcess({ env, args: ['--no-mqtt', ...extra] });
  const b = await startPortalProcess({ env, args: ['--no-mqtt', '--key', `${a.dataDir}/portal-key.json`, ...extra] });
  return {
    a,
    b,
    done: async () => {
      await a.stop();
      await b.stop();
      await PostgresDriver.dropSchema(PG_URL, schema);
    },
  };
}

/** Register a device through `url`; returns its identity and token. */
async function register(url: string): Promise<{ d: DeviceIdentity; token: string }> {
  const { client, identity } = await registerDevice(url, newDeviceIdentity({ model: 'thermostat', manufacturer: 'acme', serial: randomBytes(3).toString('hex'), portalAuthority: new URL(url).host }));
  const token = client.currentToken as string;
  client.close();
  return { d: identity, token };
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'resolved';
  } catch (e) {
    return isMeshError(e) ? e.code : `not a MeshError: ${String(e)}`;
  }
}

/** A client of `url` holding `token` only (no key to open a new session with). */
const withToken = (url: string, token: string): PortalClient => new PortalClient({ url, token });

test('every request on another process: sessions, nonces, long polls, claim attempts, revocation, one log', async (t) => {
  const { a, b, done } = await twoPortals(['--claim-attempts', '3']);
  const clients: PortalClient[] = [];
  const keep = (c: PortalClient): PortalClient => {
    clients.push(c);
    return c;
  };
  try {
    t.is(a.portal, b.portal, 'both processes sign with one portal key');
    const pub = verifyPortalProfile((await keep(new PortalClient({ url: a.http })).hello()).portal).sign;
    const owner = await TestOwner.create(a.http, 'alice');
    clients.push(owner.client);
    const ownerB = keep(withToken(b.http, owner.client.currentToken as string));

    // a device registers on B; its token works on A (sessions are in the database)
    const { d, token } = await register(b.http);
    const devA = keep(withToken(a.http, token));
    const devB = keep(withToken(b.http, token));
    t.deepEqual((await devA.download(0)).items, []);

    // a session request is good once, on whichever process sees it first
    const request = createSession(d.keys.auth, d.id);
    await keep(new PortalClient({ url: a.http })).request('POST', PATHS.session, { request }, { auth: false });
    t.is(await codeOf(keep(new PortalClient({ url: b.http })).request('POST', PATHS.session, { request }, { auth: false })), 'replay');
    // a challenge issued by A is checked by B (one portal key, no shared state but the used-once record),
    // for a device whose clock says 1970; and once only, on whichever process sees it first
    const challenge = await keep(new PortalClient({ url: a.http })).challenge();
    const at1970 = createSession(d.keys.auth, d.id, { created: '1970-01-01T00:00:00.000Z', challenge });
    await keep(new PortalClient({ url: b.http })).request('POST', PATHS.session, { request: at1970 }, { auth: false });
    const again = createSession(d.keys.auth, d.id, { created: '1970-01-01T00:00:00.000Z', challenge });
    t.is(await codeOf(keep(new PortalClient({ url: a.http })).request('POST', PATHS.session, { request: again }, { auth: false })), 'replay');

    // the owner claims through A; the claim is on B's feed for the device
    await owner.claim(d.labelUri);
    t.is((await devB.download(0)).items[0]?.kind, 'claim');

    // a long poll held by A is answered by a publish through B
    const n = (await devA.download(0)).n;
    const poll = devA.download(n, 20_000);
    await new Promise((r) => setTimeout(r, 300));
    const receipt = await ownerB.publish(owner.applicationProfile('thermostat', { setpoint: 21 }));
    const woke = await poll;
    t.is(woke.items.length, 1, 'the poll was answered with the item, not by its timeout');
    t.is(woke.items[0]?.index, receipt.index);

    // failed claim proofs on A, B, A: the limit holds across processes, for a good proof on B too
    const { d: d2 } = await register(a.http);
    const s2 = deriveClaimSecrets(parseClaimLabel(d2.labelUri).secret);
    const ownerOn = [owner.client, ownerB, owner.client];
    for (const c of ownerOn) {
      const wrong = deriveClaimSecrets(newClaimSecret());
      const bad = createClaim(owner.admin.sign, { ...wrong, claimId: s2.claimId }, { device: d2.id, master: owner.masterId, account: owner.account });
      t.is(await codeOf(c.claim(s2.claimId, bad)), 'bad-claim-proof');
    }
    const good = createClaim(owner.admin.sign, s2, { device: d2.id, master: owner.masterId, account: owner.account });
    t.is(await codeOf(ownerB.claim(s2.claimId, good)), 'rate-limited');

    // one log: heads from either process verify, agree and are consistent with each other
    const h1 = verifyTreeHead(await keep(new PortalClient({ url: a.http })).treeHead(), pub);
    const more = await ownerB.publish(owner.applicationProfile('thermostat', { setpoint: 22 }));
    // A learns of B's append by PostgreSQL's notification: soon, not at once (on a loaded machine it may take a while)
    const aClient = keep(new PortalClient({ url: a.http }));
    let h2 = verifyTreeHead(await aClient.treeHead(), pub);
    for (let i = 0; i < 300 && h2.size <= more.index; i++) {
      await new Promise((r) => setTimeout(r, 100));
      h2 = verifyTreeHead(await aClient.treeHead(), pub);
    }
    t.true(h2.size > more.index, 'A serves a head that includes what B appended');
    const cons = await keep(new PortalClient({ url: b.http })).consistency(h1.size, h2.size);
    verifyConsistency(h1.size, h2.size, h1.root, h2.root, cons.proof.map((x) => fromB64u(x, 'proof', 32)));
    const item = (await devB.download(0)).items.at(-1);
    t.is(item?.index, more.index);
    const incl = await keep(new PortalClient({ url: a.http })).inclusion(more.index, h2.size);
    verifyInclusion(leafHash(payloadBytes(item?.object as never)), more.index, h2.size, incl.proof.map((x) => fromB64u(x, 'proof', 32)), h2.root);

    // a master revoking the owner's key (through A) ends its session on B as soon as B hears of it (PostgreSQL's
    // notification: at once on a quiet machine; under load it may take a moment, so it is polled for)
    const oldToken = owner.client.currentToken as string;
    await owner.rotateAdmin();
    clients.push(owner.client);
    let refused = await codeOf(withToken(b.http, oldToken).account());
    for (let i = 0; i < 100 && refused !== 'unauthorized'; i++) {
      await new Promise((r) => setTimeout(r, 100));
      refused = await codeOf(withToken(b.http, oldToken).account());
    }
    t.is(refused, 'unauthorized');
    t.is((await keep(new PortalClient({ url: b.http, identity: { subject: owner.account, key: owner.admin.sign } })).account()).account, owner.account);
  } finally {
    for (const c of clients) c.close();
    await done();
  }
});

test('the new-record budget of an address is one budget for all processes: registrations spread over two are refused once it is spent', async (t) => {
  // each process alone would grant 4 an hour; together they grant 4, not 8
  const { a, b, done } = await twoPortals(['--rate-limit', '1000', '--new-per-address', '4']);
  try {
    // the budget is per window of the (real) clock's hour: start well inside one, so all of it falls in one window
    while (Date.now() % 3_600_000 > 3_600_000 - 60_000) await new Promise((r) => setTimeout(r, 1000));
    const hour = Math.floor(Date.now() / 3_600_000);
    const outcomes: string[] = [];
    for (let i = 0; i < 10; i++) {
      const url = (i % 2 === 0 ? a : b).http;
      outcomes.push(await codeOf(register(url).then(({ token }) => token)));
    }
    t.is(Math.floor(Date.now() / 3_600_000), hour, 'the registrations fell in one hour window');
    t.deepEqual(outcomes, ['resolved', 'resolved', 'resolved', 'resolved', 'rate-limited', 'rate-limited', 'rate-limited', 'rate-limited', 'rate-limited', 'rate-limited']);
    // an owner binding an account from the same address takes from the same budget, on either process
    t.is(await codeOf(TestOwner.create(b.http, 'bob')), 'rate-limited');
  } finally {
    await done();
  }
});

test('the cap on unclaimed devices is one cap for all processes: registrations spread over two stop at it', async (t) => {
  // each process alone, counting since its last sweep, would take 3 more; together they hold 3 in all
  const { a, b, done } = await twoPortals(['--rate-limit', '1000', '--new-per-address', '1000', '--max-unclaimed', '3']);
  try {
    const outcomes: string[] = [];
    for (let i = 0; i < 6; i++) outcomes.push(await codeOf(register((i % 2 === 0 ? a : b).http).then(({ token }) => token)));
    t.deepEqual(outcomes, ['resolved', 'resolved', 'resolved', 'unavailable', 'unavailable', 'unavailable']);
  } finally {
    await done();
  }
});
