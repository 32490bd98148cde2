/**
 * The storage contract: the same cases against SQLite (a file in a temporary directory) and
 * PostgreSQL (a fresh schema per case at 127.0.0.1:5432/test, dropped after the run). No mocks.
 */
import test, { type ExecutionContext } from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { MeshError, type MeshErrorCode } from '../mesh/errors.js';
import { consistencyProofFrom, inclusionProofFrom, leafHash, MerkleTree, nodesRead, rootFrom, verifyConsistency, verifyInclusion, type NodeAt } from '../mesh/merkle.js';
import Database from 'better-sqlite3';
import pg from 'pg';
import { hex } from '../mesh/bytes.js';
import { LogTree } from '../portal/transparency.js';
import { ed25519KeyPair } from '../mesh/crypto.js';
import { systemClock } from '../runtime/clock.js';
import { PostgresDriver } from '../portal/storage/postgres.js';
import { SqliteDriver } from '../portal/storage/sqlite.js';
import { SqlStore } from '../portal/storage/sql-store.js';
import type { Appended, DeviceRecord, LeafInput, Storage, StoreEvent } from '../portal/storage/types.js';

const PG_URL = process.env.MESH_TEST_PG ?? 'postgres://root@127.0.0.1:5432/test';
const RUN = randomBytes(4).toString('hex');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mesh-storage-test-'));
const schemas: string[] = [];
let counter = 0;

interface Backend {
  readonly name: 'sqlite' | 'postgres';
  /**
   * A fresh, empty store, a way to open another handle on the same data (another process, for
   * PostgreSQL), and raw SQL on it (behind the store's back, to play an older schema or a corruption).
   */
  fresh(): Promise<{
    store: Storage;
    another: () => Promise<Storage>;
    reopen: () => Promise<Storage>;
    raw: (sql: string) => Promise<void>;
    query: <T>(sql: string) => Promise<T[]>;
  }>;
}

const backends: Backend[] = [
  {
    name: 'sqlite',
    fresh: async () => {
      const file = path.join(tmp, `s${++counter}`, 'portal.db');
      const store = await SqlStore.open(new SqliteDriver(file));
      // SQLite has one writer process: "another" handle is the same store
      const raw = (sql: string): Promise<void> => {
        const db = new Database(file);
        try {
          db.exec(sql);
        } finally {
          db.close();
        }
        return Promise.resolve();
      };
      const query = <T>(sql: string): Promise<T[]> => {
        const db = new Database(file, { readonly: true });
        try {
          return Promise.resolve(db.prepare(sql).all() as T[]);
        } finally {
          db.close();
        }
      };
      return { store, another: () => Promise.resolve(store), reopen: async () => SqlStore.open(new SqliteDriver(file)), raw, query };
    },
  },
  {
    name: 'postgres',
    fresh: async () => {
      const schema = `mesh_st_${RUN}_${++counter}`;
      schemas.push(schema);
      const open = async (): Promise<Storage> => SqlStore.open(await PostgresDriver.open({ url: PG_URL, schema }));
      const raw = async (sql: string): Promise<void> => {
        const c = new pg.Client({ connectionString: PG_URL, options: `-c search_path=${schema}` });
        await c.connect();
        try {
          await c.query(sql);
        } finally {
          await c.end();
        }
      };
      const query = async <T>(sql: string): Promise<T[]> => {
        const c = new pg.Client({ connectionString: PG_URL, options: `-c search_path=${schema}` });
        await c.connect();
        try {
          return (await c.query(sql)).rows as T[];
        } finally {
          await c.end();
        }
      };
      return { store: await open(), another: open, reopen: open, raw, query };
    },
  },
];

test.after.always(async () => {
  for (const s of schemas) await PostgresDriver.dropSchema(PG_URL, s);
  fs.rmSync(tmp, { recursive: true, force: true });
});

// ---------------------------------------------------------------- helpers

const id = (p: string): string => `${p}${randomBytes(6).toString('hex').toUpperCase().replace(/[0189]/g, 'A')}`;

function device(over: Partial<DeviceRecord> = {}): DeviceRecord {
  return { id: id('DEV'), profile: '{"payload":"p","sigs":[]}', endorsement: null, claimId: id('c'), claimBlob: 'iv.ct', portalKey: 'k', registeredMs: 1000, ...over };
}

function leaf(kind: string, text = `${kind}-${randomBytes(4).toString('hex')}`): LeafInput {
  const data = new TextEncoder().encode(text);
  return { kind, data, hash: leafHash(data) };
}

async function code(p: Promise<unknown>): Promise<MeshErrorCode | 'resolved'> {
  try {
    await p;
    return 'resolved';
  } catch (e) {
    if (e instanceof MeshError) return e.code;
    throw e;
  }
}

async function account(s: Storage, name = `${id('a').toLowerCase()}@portal`): Promise<string> {
  await s.bindAccount({ account: name, masterId: 'MASTER', master: '{"m":1}', masterSeq: 1, personal: '{"p":1}', personalSeq: 1 }, [leaf('master'), leaf('personal')], 1);
  return name;
}

type Case = (t: ExecutionContext, b: Backend) => Promise<void>;

function contract(title: string, fn: Case): void {
  for (const b of backends) test(`${b.name}: ${title}`, (t) => fn(t, b));
}

// ---------------------------------------------------------------- the cases

contract('invitations: only an owner invites; an invitation is used once, not after it expires; a new epoch drops what the device read and the open invitations', async (t, b) => {
  const { store } = await b.fresh();
  try {
    const a = await account(store);
    const c = await account(store);
    const d = device();
    await store.registerDevice(d);
    const inv = (id: string, expiresMs: number) => ({ id, device: d.id, account: a, blob: 'iv.ct', portalKey: 'k', expiresMs, usedMs: null });
    t.is(await code(store.inviteDevice({ device: d.id, account: a, invite: '{"i":0}', invitation: inv('i0', 100) }, leaf('invite'), 1)), 'forbidden');
    await store.claimDevice({ device: d.id, account: a, claim: '{}', master: '{}' }, leaf('claim'), 1);
    const i1 = await store.inviteDevice({ device: d.id, account: a, invite: '{"i":1}', invitation: inv('i1', 100) }, leaf('invite'), 2);
    t.deepEqual(i1.items.map((x) => [x.n, x.kind]), [[2, 'invite']]);
    t.is(await code(store.inviteDevice({ device: d.id, account: a, invite: '{"i":1}', invitation: inv('i1', 100) }, leaf('invite'), 2)), 'conflict');
    t.is((await store.getInvitation('i1'))?.usedMs, null);
    t.is(await code(store.claimByInvitation({ id: 'i1', device: d.id, account: c, claim: '{"c":1}', master: '{}' }, leaf('claim'), 101)), 'invitation-expired');
    const used = await store.claimByInvitation({ id: 'i1', device: d.id, account: c, claim: '{"c":1}', master: '{}' }, leaf('claim'), 50);
    t.deepEqual(used.items.map((x) => [x.n, x.kind]), [[3, 'claim']]);
    t.true(await store.isLinked(d.id, c));
    t.is((await store.getInvitation('i1'))?.usedMs, 50);
    t.is(await code(store.claimByInvitation({ id: 'i1', device: d.id, account: c, claim: '{"c":2}', master: '{}' }, leaf('claim'), 51)), 'invitation-used');
    t.is(await code(store.claimByInvitation({ id: 'nope', device: d.id, account: c, claim: '{}', master: '{}' }, leaf('claim'), 51)), 'not-found');
    await store.inviteDevice({ device: d.id, account: a, invite: '{"i":2}', invitation: inv('i2', 1000) }, leaf('invite'), 60);
    t.false(await store.noteEpoch(d.id, 'e1', 3), 'the first epoch is only recorded');
    t.false(await store.noteEpoch(d.id, 'e1', 4));
    t.true(await store.noteEpoch(d.id, 'e2', 3), 'a factory reset');
    t.deepEqual((await store.feedSince(d.id, 0, 100)).map((x) => x.n), [4], 'items the device read in the ended epoch are gone; the unread one stays');
    t.is(await store.getInvitation('i2'), undefined);
    t.is(await store.latestN(d.id), 4, 'numbering goes on');
  } finally {
    await store.close();
  }
});

contract('registerDevice is idempotent per device; a claim id belongs to one device', async (t, b) => {
  const { store } = await b.fresh();
  try {
    const d = device();
    t.is(await store.registerDevice(d), 'created');
    t.is(await store.registerDevice(d), 'unchanged');
    t.is(await store.registerDevice({ ...d, claimBlob: 'iv.ct2' }), 'updated');
    t.deepEqual(await store.getDevice(d.id), { ...d, claimBlob: 'iv.ct2' });
    t.is((await store.getDeviceByClaimId(d.claimId))?.id, d.id);
    t.is(await code(store.registerDevice(device({ claimId: d.claimId }))), 'conflict');
    t.is(await store.getDevice('NOPE'), undefined);
    t.is(await store.getDeviceByClaimId('nope'), undefined);
    // racing registrations of two devices for one claim id: exactly one wins
    const claimId = id('race');
    const results = await Promise.all([1, 2, 3, 4].map(() => code(store.registerDevice(device({ claimId })))));
    t.is(results.filter((r) => r === 'resolved').length, 1);
    t.is(results.filter((r) => r === 'conflict').length, 3);
  } finally {
    await store.close();
  }
});

contract('bindAccount binds once, accepts the same master, refuses another, and logs master and personal', async (t, b) => {
  const { store } = await b.fresh();
  try {
    const name = 'alice@portal';
    const r = await store.bindAccount({ account: name, masterId: 'M1', master: '{"m":1}', masterSeq: 1, personal: '{"p":1}', personalSeq: 1 }, [leaf('master'), leaf('personal')], 5);
    t.true(r.created);
    t.deepEqual(r.appended?.indices, [0, 1]);
    t.is(r.appended?.index, 1);
    const again = await store.bindAccount({ account: name, masterId: 'M1', master: '{"m":2}', masterSeq: 1, personal: null, personalSeq: 0 }, [leaf('master')], 6);
    t.deepEqual(again, { created: false, appended: null });
    t.is(await code(store.bindAccount({ account: name, masterId: 'M2', master: '{}', masterSeq: 1, personal: null, personalSeq: 0 }, [leaf('master')], 7)), 'conflict');
    t.deepEqual(await store.getAccount(name), { account: name, masterId: 'M1', master: '{"m":1}', masterSeq: 1, personal: '{"p":1}', personalSeq: 1, createdMs: 5 });
    t.is((await store.stats()).logSize, 2);
    t.is((await store.logEntry(1))?.kind, 'personal');
  } finally {
    await store.close();
  }
});

contract('claim, publish and remove: feeds number 1, 2, 3 per device; seqs only grow; targets must be linked', async (t, b) => {
  const { store } = await b.fresh();
  const events: StoreEvent[] = [];
  store.onEvent((e) => events.push(e));
  try {
    const a = await account(store);
    const d1 = device();
    const d2 = device();
    await store.registerDevice(d1);
    await store.registerDevice(d2);
    t.is(await code(store.publishApplication(a, { app: 'x', seq: 1, object: '{"app":1}', targets: [d1.id] }, leaf('application'), 1)), 'forbidden');
    const c1 = await store.claimDevice({ device: d1.id, account: a, claim: '{"claim":1}', master: '{"m":1}' }, leaf('claim'), 2);
    t.is(c1.index, 2);
    t.deepEqual(c1.items, [{ device: d1.id, n: 1, kind: 'claim', object: '{"claim":1}', part: null, master: '{"m":1}', index: 2 }]);
    t.true(await store.isLinked(d1.id, a));
    t.false(await store.isLinked(d2.id, a));
    const p1 = await store.publishApplication(a, { app: 'x', seq: 1, object: '{"app":1}', targets: [d1.id, d1.id] }, leaf('application'), 3);
    t.is(p1.items.length, 1);
    t.is(p1.items[0]?.n, 2);
    t.is(await code(store.publishApplication(a, { app: 'x', seq: 1, object: '{"app":1}', targets: [d1.id] }, leaf('application'), 4)), 'rollback');
    t.is(await code(store.publishApplication(a, { app: 'x', seq: 2, object: '{"app":2}', targets: [d1.id, d2.id] }, leaf('application'), 4)), 'forbidden');
    await store.publishApplication(a, { app: 'y', seq: 7, object: '{"app":"y"}', targets: [] }, leaf('application'), 4);
    t.deepEqual(await store.applications(a), { x: '{"app":1}', y: '{"app":"y"}' });
    t.is(await code(store.publishPersonal(a, { personal: '{"p":0}', seq: 1 }, leaf('personal'), 5)), 'rollback');
    await store.publishPersonal(a, { personal: '{"p":2}', seq: 2 }, leaf('personal'), 5);
    t.is((await store.getAccount(a))?.personal, '{"p":2}');
    t.is(await code(store.publishMaster(a, { master: '{"m":0}', seq: 1, revoked: [] }, leaf('master'), 6)), 'rollback');
    const m = await store.publishMaster(a, { master: '{"m":2}', seq: 2, revoked: [] }, leaf('master'), 6);
    t.deepEqual(m.items.map((i) => [i.device, i.n, i.kind]), [[d1.id, 3, 'master']]);
    t.is(await code(store.removeDevice({ device: d2.id, account: a, remove: '{}' }, leaf('remove'), 7)), 'forbidden');
    const rm = await store.removeDevice({ device: d1.id, account: a, remove: '{"rm":1}' }, leaf('remove'), 7);
    t.is(rm.items[0]?.n, 4);
    t.is(rm.items[0]?.kind, 'remove');
    t.false(await store.isLinked(d1.id, a));
    t.is(await store.latestN(d1.id), 4);
    t.is(await store.latestN(d2.id), 0);
    t.deepEqual((await store.feedSince(d1.id, 1, 2)).map((i) => i.n), [2, 3]);
    t.deepEqual((await store.feedSince(d1.id, 0, 100)).map((i) => i.kind), ['claim', 'application', 'master', 'remove']);
    t.deepEqual(await store.feedItem(d1.id, 4), rm.items[0]);
    t.is(await store.feedItem(d1.id, 5), undefined);
    // refused changes left nothing behind: the log has exactly the accepted objects
    t.is((await store.stats()).logSize, 8);
    t.deepEqual(await store.stats(), { devices: 2, accounts: 1, feedItems: 4, logSize: 8 });
    // every accepted change was announced after commit, in order
    const feed = events.filter((e) => e.type === 'feed');
    t.deepEqual(feed.map((e) => (e.type === 'feed' ? e.n : 0)), [1, 2, 3, 4]);
    t.true(feed.every((e) => e.type === 'feed' && e.local && e.item !== undefined));
    const logs = events.flatMap((e) => (e.type === 'log' ? [e.size] : []));
    t.deepEqual(logs, [2, 3, 4, 5, 6, 7, 8]);
  } finally {
    await store.close();
  }
});

contract('concurrent writers (on PostgreSQL through two handles, as two processes): log indices and feed numbers have no gaps or duplicates', async (t, b) => {
  const { store, another } = await b.fresh();
  const other = await another();
  try {
    const a = await account(store);
    const devices = [device(), device(), device()];
    for (const d of devices) await store.registerDevice(d);
    await Promise.all(devices.map((d, i) => (i % 2 === 0 ? store : other).claimDevice({ device: d.id, account: a, claim: '{}', master: '{}' }, leaf('claim'), 1)));
    const seqs = Array.from({ length: 30 }, (_, i) => i + 1);
    const results = await Promise.all(
      seqs.map((seq) =>
        (seq % 2 === 0 ? store : other)
          .publishApplication(a, { app: `app${seq % 3}`, seq, object: `{"seq":${seq}}`, targets: devices.map((d) => d.id) }, leaf('application'), seq)
          .then(
            (r) => r.index,
            (e: unknown) => (e instanceof MeshError && e.code === 'rollback' ? -1 : Promise.reject(e)),
          ),
      ),
    );
    const accepted = results.filter((i) => i >= 0);
    t.true(accepted.length > 0);
    t.is(new Set(accepted).size, accepted.length);
    const size = (await store.stats()).logSize;
    t.is(size, 2 + devices.length + accepted.length);
    const hashes = await other.leafHashes(0);
    t.is(hashes.length, size);
    for (const d of devices) {
      const items = await store.feedSince(d.id, 0, 1000);
      t.deepEqual(items.map((i) => i.n), Array.from({ length: items.length }, (_, k) => k + 1));
      t.is(items.length, 1 + accepted.length);
      t.is(await other.latestN(d.id), items.length);
      // log indices in feed order grow: items were numbered in commit order
      for (let k = 1; k < items.length; k++) t.true((items[k] as { index: number }).index > (items[k - 1] as { index: number }).index);
    }
  } finally {
    if (other !== store) await other.close();
    await store.close();
  }
});

contract('another writer\'s commits arrive as events (PostgreSQL LISTEN/NOTIFY)', async (t, b) => {
  const { store, another } = await b.fresh();
  const other = await another();
  try {
    t.true(store.eventsReliable);
    if (other === store) {
      t.pass('SQLite has one writer: there is no other process to hear');
      return;
    }
    const heard: StoreEvent[] = [];
    const got = new Promise<void>((resolve) =>
      store.onEvent((e) => {
        heard.push(e);
        if (e.type === 'feed') resolve();
      }),
    );
    const a = await account(other);
    const d = device();
    await other.registerDevice(d);
    await other.claimDevice({ device: d.id, account: a, claim: '{}', master: '{}' }, leaf('claim'), 1);
    await got;
    t.true(heard.some((e) => e.type === 'log' && !e.local && e.size === 3));
    t.true(heard.some((e) => e.type === 'feed' && !e.local && e.device === d.id && e.n === 1));
  } finally {
    if (other !== store) await other.close();
    await store.close();
  }
});

contract('sessions, nonces and pruning', async (t, b) => {
  const { store } = await b.fresh();
  try {
    await store.putSession({ tokenHash: 'h1', kind: 'device', subject: 'DEV', kid: 'K', expiresMs: 1000 });
    await store.putSession({ tokenHash: 'h2', kind: 'account', subject: 'a@p', kid: 'K2', expiresMs: 5000 });
    t.deepEqual(await store.getSession('h1'), { tokenHash: 'h1', kind: 'device', subject: 'DEV', kid: 'K', expiresMs: 1000 });
    t.is(await store.getSession('nope'), undefined);
    t.true(await store.useNonce('N1', 1000));
    t.false(await store.useNonce('N1', 1000));
    await store.recordClaimFailure('DEV', 100);
    await store.recordClaimFailure('DEV', 200);
    await store.recordClaimFailure('OTHER', 200);
    t.deepEqual(await store.claimFailures('DEV', 0), { count: 2, oldestMs: 100 });
    t.deepEqual(await store.claimFailures('DEV', 150), { count: 1, oldestMs: 200 });
    t.deepEqual(await store.claimFailures('NONE', 0), { count: 0, oldestMs: null });
    await store.prune({ nowMs: 2000, joinsBeforeMs: 0, failuresBeforeMs: 150 });
    t.is(await store.getSession('h1'), undefined);
    t.truthy(await store.getSession('h2'));
    t.true(await store.useNonce('N1', 3000));
    t.deepEqual(await store.claimFailures('DEV', 0), { count: 1, oldestMs: 200 });
  } finally {
    await store.close();
  }
});

contract('unclaimed devices: counted, and expired past their time unless claimed or holding a live session', async (t, b) => {
  const { store } = await b.fresh();
  try {
    const a = await account(store);
    const old = device({ registeredMs: 1_000 });
    const oldWithSession = device({ registeredMs: 1_000 });
    const oldClaimed = device({ registeredMs: 1_000 });
    const young = device({ registeredMs: 9_000 });
    for (const d of [old, oldWithSession, oldClaimed, young]) await store.registerDevice(d);
    t.is(await store.unclaimedCount(), 4);
    await store.claimDevice({ device: oldClaimed.id, account: a, claim: '{"c":1}', master: '{"m":1}' }, leaf('claim'), 2_000);
    t.is(await store.unclaimedCount(), 3);
    await store.putSession({ tokenHash: id('tk'), kind: 'device', subject: oldWithSession.id, kid: 'K', expiresMs: 20_000 });
    await store.putSession({ tokenHash: id('tk'), kind: 'device', subject: old.id, kid: 'K', expiresMs: 4_000 });
    await store.putStatus(old.id, { seq: 1, status: '{"s":1}' }, 1_500);
    await store.recordClaimFailure(old.id, 1_600);
    // at 10,000 with a TTL of 5,000: registered before 5,000, no session live at 10,000
    t.is(await store.expireUnclaimed({ registeredBeforeMs: 5_000, nowMs: 10_000 }), 1);
    t.is(await store.getDevice(old.id), undefined);
    t.is(await store.getDeviceByClaimId(old.claimId), undefined);
    t.deepEqual((await store.claimFailures(old.id, 0)).count, 0);
    t.truthy(await store.getDevice(oldWithSession.id));
    t.truthy(await store.getDevice(oldClaimed.id));
    t.truthy(await store.getDevice(young.id));
    t.is(await store.unclaimedCount(), 2);
    // its session over, the other old one goes too; the claimed one never
    t.is(await store.expireUnclaimed({ registeredBeforeMs: 5_000, nowMs: 30_000 }), 1);
    t.is(await store.expireUnclaimed({ registeredBeforeMs: 100_000, nowMs: 100_000 }), 1);
    t.truthy(await store.getDevice(oldClaimed.id));
    t.is(await store.unclaimedCount(), 0);
    // the claim id is free again
    t.is(await store.registerDevice(device({ claimId: old.claimId })), 'created');
  } finally {
    await store.close();
  }
});

contract('putSession with keepPerSubject keeps only the newest sessions of that subject', async (t, b) => {
  const { store } = await b.fresh();
  try {
    const dev = device();
    const other = device();
    await store.registerDevice(dev);
    await store.putSession({ tokenHash: 'other', kind: 'device', subject: other.id, kid: 'K', expiresMs: 1 });
    for (let i = 1; i <= 6; i++) await store.putSession({ tokenHash: `s${i}`, kind: 'device', subject: dev.id, kid: 'K', expiresMs: 1_000 + i }, 3);
    for (let i = 1; i <= 3; i++) t.is(await store.getSession(`s${i}`), undefined, `s${i}`);
    for (let i = 4; i <= 6; i++) t.truthy(await store.getSession(`s${i}`), `s${i}`);
    t.truthy(await store.getSession('other'), "another subject's session is not touched");
  } finally {
    await store.close();
  }
});

contract('a master that revokes a key ends the sessions that key opened', async (t, b) => {
  const { store } = await b.fresh();
  try {
    const a = await account(store);
    await store.putSession({ tokenHash: 't1', kind: 'account', subject: a, kid: 'OLD', expiresMs: Date.now() + 10_000 });
    await store.putSession({ tokenHash: 't2', kind: 'account', subject: a, kid: 'NEW', expiresMs: Date.now() + 10_000 });
    const events: StoreEvent[] = [];
    store.onEvent((e) => events.push(e));
    await store.publishMaster(a, { master: '{"m":2}', seq: 2, revoked: ['OLD'] }, leaf('master'), 1);
    t.is(await store.getSession('t1'), undefined);
    t.truthy(await store.getSession('t2'));
    t.true(events.some((e) => e.type === 'sessions' && e.account === a));
  } finally {
    await store.close();
  }
});

contract('status: the newest seq wins; DeviceStatus lists linked devices', async (t, b) => {
  const { store } = await b.fresh();
  try {
    const a = await account(store);
    const d1 = device();
    const d2 = device();
    await store.registerDevice(d1);
    await store.registerDevice(d2);
    await store.claimDevice({ device: d1.id, account: a, claim: '{}', master: '{}' }, leaf('claim'), 1);
    await store.claimDevice({ device: d2.id, account: a, claim: '{}', master: '{}' }, leaf('claim'), 2);
    t.true(await store.putStatus(d1.id, { seq: 5, status: '{"s":5}' }, 100));
    t.false(await store.putStatus(d1.id, { seq: 4, status: '{"s":4}' }, 200));
    t.false(await store.putStatus(d1.id, { seq: 5, status: '{"s":5b}' }, 200));
    t.true(await store.putStatus(d1.id, { seq: 6, status: '{"s":6}' }, 300));
    t.deepEqual(await store.deviceStatuses(a), [
      { device: d1.id, profile: d1.profile, status: '{"s":6}', receivedMs: 300 },
      { device: d2.id, profile: d2.profile, status: null, receivedMs: null },
    ]);
    t.deepEqual(await store.deviceStatuses('nobody@portal'), []);
  } finally {
    await store.close();
  }
});

contract('joins: newest 16 kept, old ones dropped, a nonce once', async (t, b) => {
  const { store } = await b.fresh();
  try {
    const a = await account(store);
    for (let i = 0; i < 20; i++) await store.addJoin(a, { nonce: `n${String(i).padStart(2, '0')}`, object: `{"j":${i}}` }, 1000 + i, 16, 0);
    await store.addJoin(a, { nonce: 'n19', object: '{"dup":true}' }, 2000, 16, 0);
    const j = await store.joins(a, 0);
    t.is(j.length, 16);
    t.is(j[0], '{"j":4}');
    t.is(j[15], '{"j":19}');
    t.deepEqual(await store.joins(a, 1018), ['{"j":18}', '{"j":19}']);
    await store.addJoin(a, { nonce: 'late', object: '{"late":1}' }, 5000, 16, 4000);
    t.deepEqual(await store.joins(a, 0), ['{"late":1}']);
  } finally {
    await store.close();
  }
});

contract('the log: leaf hashes from any index rebuild the same tree; entries keep their bytes; data survives reopening', async (t, b) => {
  const { store, reopen } = await b.fresh();
  const leaves: LeafInput[] = [];
  const d = device();
  try {
    const a = await account(store, 'bob@portal');
    await store.registerDevice(d);
    await store.claimDevice({ device: d.id, account: a, claim: '{}', master: '{}' }, leaf('claim'), 1);
    for (let seq = 1; seq <= 5; seq++) {
      const l = leaf('application', `app ${seq} \u00e9\u0000`);
      leaves.push(l);
      await store.publishApplication(a, { app: 'x', seq, object: `{"s":${seq}}`, targets: [d.id] }, l, seq);
    }
  } finally {
    await store.close();
  }
  const s2 = await reopen();
  try {
    const all = await s2.leafHashes(0);
    t.is(all.length, 8);
    const tail = await s2.leafHashes(5);
    t.is(tail.length, 3);
    t.deepEqual(tail, all.slice(5));
    t.deepEqual(await s2.leafHashes(8), []);
    const tree = new MerkleTree(all);
    t.is(tree.size, 8);
    const e = await s2.logEntry(7);
    t.deepEqual(e, { index: 7, kind: 'application', data: (leaves[4] as LeafInput).data });
    t.deepEqual(all[7], (leaves[4] as LeafInput).hash);
    t.is(await s2.logEntry(8), undefined);
    t.is((await s2.getAccount('bob@portal'))?.masterId, 'MASTER');
    t.is(await s2.latestN(d.id), 6);
    await s2.ping();
  } finally {
    await s2.close();
  }
});

// ---------------------------------------------------------------- the shared log

/** A NodeAt over the store's nodes: fetch what `compute` reads, as the portal does. */
async function storedNodes(s: Storage, compute: (node: NodeAt) => unknown): Promise<NodeAt> {
  const names = nodesRead(compute);
  const hashes = await s.treeNodes(names);
  const m = new Map(names.map(([k, i], j) => [`${k}/${i}`, hashes[j] as Uint8Array]));
  return (k, i) => m.get(`${k}/${i}`) as Uint8Array;
}

/**
 * Check the stored log as a whole: indices 0..size-1 without gaps, the head's root is the MTH of
 * the stored leaves, both handles see the same head, every acknowledged append is at its index
 * with its bytes and has an inclusion proof from the stored nodes, and every head handed to a
 * writer is consistent with the final one (proved from the stored nodes).
 */
async function checkSharedLog(t: ExecutionContext, a: Storage, b: Storage, acked: { leaf: LeafInput; appended: Appended }[], extraLeaves: number): Promise<void> {
  const head = await a.logHead();
  t.deepEqual(await b.logHead(), head, 'both handles read the same head');
  const hashes = await b.leafHashes(0);
  t.is(hashes.length, head.size, 'the stored leaves run 0..size-1 without a gap');
  t.is(head.size, acked.reduce((n, x) => n + x.appended.indices.length, 0) + extraLeaves, 'exactly the acknowledged appends are in the log');
  t.is(hex(head.root), hex(new MerkleTree(hashes).root()), 'the head is the MTH of the stored leaves');
  t.is((await a.stats()).logSize, head.size);
  const seen = new Set<number>();
  for (const { leaf, appended } of acked) {
    const index = appended.index;
    t.false(seen.has(index), `index ${index} was given once`);
    seen.add(index);
    t.deepEqual((await b.logEntry(index))?.data, leaf.data, `entry ${index} holds the acknowledged bytes`);
    const proof = inclusionProofFrom(index, head.size, await storedNodes(b, (n) => inclusionProofFrom(index, head.size, n)));
    verifyInclusion(leaf.hash, index, head.size, proof, head.root);
    // the head the writer was given includes its append and is a prefix of the final log
    t.true(appended.size > index);
    t.is(hex(rootFrom(appended.size, await storedNodes(a, (n) => rootFrom(appended.size, n)))), hex(appended.root), `the head of size ${appended.size} given to a writer is provable`);
    const cons = consistencyProofFrom(appended.size, head.size, await storedNodes(a, (n) => consistencyProofFrom(appended.size, head.size, n)));
    verifyConsistency(appended.size, head.size, appended.root, head.root, cons);
  }
}

contract('two writers racing (two handles, on PostgreSQL two pools as two processes): one consistent log, every acknowledged append in it, every head provable', async (t, b) => {
  const { store, another } = await b.fresh();
  const other = await another();
  try {
    const owners = [await account(store), await account(other)];
    const devices = Array.from({ length: 6 }, () => device());
    for (const d of devices) await (d === devices[0] ? other : store).registerDevice(d);
    const acked: { leaf: LeafInput; appended: Appended }[] = [];
    /** per owner and app: [log index, seq] of each accepted publish */
    const seqs = new Map<string, [number, number][]>();
    const refusals: string[] = [];
    const writers = [store, other];
    const linked = new Map<string, string[]>([[owners[0] as string, []], [owners[1] as string, []]]);
    // each device is claimed by one owner, through either handle, all at once
    await Promise.all(
      devices.map(async (d, i) => {
        const owner = owners[i % 2] as string;
        const l = leaf('claim');
        acked.push({ leaf: l, appended: await (writers[(i + 1) % 2] as Storage).claimDevice({ device: d.id, account: owner, claim: '{}', master: '{}' }, l, i) });
        linked.get(owner)?.push(d.id);
      }),
    );
    // then both writers race: publishes (some refused for their seq), masters, personals
    const ops: Promise<void>[] = [];
    for (let k = 0; k < 120; k++) {
      const w = writers[k % 2] as Storage;
      const owner = owners[(k >> 1) % 2] as string;
      const l = leaf(k % 10 === 0 ? 'master' : k % 10 === 5 ? 'personal' : 'application');
      const p =
        k % 10 === 0
          ? w.publishMaster(owner, { master: `{"m":${k}}`, seq: 2 + k, revoked: [] }, l, k)
          : k % 10 === 5
            ? w.publishPersonal(owner, { personal: `{"p":${k}}`, seq: 2 + k }, l, k)
            : w.publishApplication(owner, { app: `app${k % 3}`, seq: k, object: `{"k":${k}}`, targets: linked.get(owner) ?? [] }, l, k);
      ops.push(
        p.then(
          (appended) => {
            acked.push({ leaf: l, appended });
            const key = `${owner} ${k % 10 === 0 ? 'master' : k % 10 === 5 ? 'personal' : `app${k % 3}`}`;
            seqs.set(key, [...(seqs.get(key) ?? []), [appended.index, k]]);
          },
          (e: unknown) => {
            if (e instanceof MeshError && e.code === 'rollback') refusals.push(e.code);
            else throw e;
          },
        ),
      );
    }
    await Promise.all(ops);
    t.true(acked.length > devices.length + 60, `most changes were accepted (${acked.length})`);
    // in log order, every profile's seq only grows, whichever handle (and whichever group) took it
    for (const [key, list] of seqs) {
      const bySeq = [...list].sort((x, y) => x[0] - y[0]).map((x) => x[1]);
      t.deepEqual(bySeq, [...bySeq].sort((x, y) => x - y), `${key}: seqs grow with the log index`);
    }
    t.is(refusals.length + acked.length, 120 + devices.length);
    await checkSharedLog(t, store, other, acked, 4);
    // feeds: numbered 1..n per device, in log order, whichever handle wrote them
    for (const d of devices) {
      const items = await other.feedSince(d.id, 0, 10_000);
      t.deepEqual(items.map((i) => i.n), Array.from({ length: items.length }, (_, k) => k + 1));
      for (let k = 1; k < items.length; k++) t.true((items[k] as { index: number }).index > (items[k - 1] as { index: number }).index);
      t.is(await store.latestN(d.id), items.length);
    }
  } finally {
    if (other !== store) await other.close();
    await store.close();
  }
});

contract('a parted profile: the object once, each device its own part, the owner reads back every part', async (t, b) => {
  const { store, another, query } = await b.fresh();
  const other = await another();
  try {
    const a = await account(store);
    const ds = [device(), device(), device()];
    for (const d of ds) {
      await store.registerDevice(d);
      await store.claimDevice({ device: d.id, account: a, claim: '{"claim":1}', master: '{"m":1}' }, leaf('claim'), 2);
    }
    const parts = ds.map((d) => `{"device":"${d.id}","kid":"K","wk":"W"}`);
    const latest = `{"payload":"P","sigs":[],"parts":[${parts.join(',')}]}`;
    const r = await store.publishApplication(a, { app: 'x', seq: 1, object: '{"payload":"P","sigs":[]}', latest, targets: ds.map((d) => d.id), parts }, leaf('application'), 3);
    t.deepEqual(r.items.map((i) => i.part), parts);
    // read back by another handle (another process on PostgreSQL): each device's item has its own part only
    for (const [k, d] of ds.entries()) {
      const items = await other.feedSince(d.id, 1, 10);
      t.is(items.length, 1);
      t.is(items[0]?.object, '{"payload":"P","sigs":[]}');
      t.is(items[0]?.part, parts[k]);
      t.is((await other.feedItem(d.id, 2))?.part, parts[k]);
    }
    t.is((await other.applications(a)).x, latest);
    // stored once: the feed rows refer to one shared object; the parts are per row
    const rows = await query<{ n: unknown }>(`SELECT COUNT(*) AS n FROM objects`);
    t.is(Number(rows[0]?.n), 1);
    // claims and the profiles made before parts have no part
    t.is((await other.feedSince((ds[0] as { id: string }).id, 0, 1))[0]?.part, null);
  } finally {
    if (other !== store) await other.close();
    await store.close();
  }
});

contract('a feed table from before parts (schema 3) gets its part column on open; its rows keep their objects', async (t, b) => {
  const { store, reopen, raw } = await b.fresh();
  const d = device();
  let a = '';
  try {
    a = await account(store);
    await store.registerDevice(d);
    await store.claimDevice({ device: d.id, account: a, claim: '{"claim":1}', master: '{"m":1}' }, leaf('claim'), 2);
  } finally {
    await store.close();
  }
  await raw(`ALTER TABLE feed DROP COLUMN part; UPDATE meta SET value = '3' WHERE key = 'schema'`);
  const s2 = await reopen();
  try {
    const items = await s2.feedSince(d.id, 0, 10);
    t.deepEqual(items.map((i) => [i.object, i.part]), [['{"claim":1}', null]]);
    const r = await s2.publishApplication(a, { app: 'x', seq: 1, object: '{"o":1}', targets: [d.id], parts: ['{"p":1}'] }, leaf('application'), 3);
    t.is(r.items[0]?.part, '{"p":1}');
    t.is((await s2.feedItem(d.id, 2))?.part, '{"p":1}');
  } finally {
    await s2.close();
  }
});

contract('a log written before its tree was stored (schema 2) gets its nodes and head on open', async (t, b) => {
  const { store, reopen, raw } = await b.fresh();
  const leaves: LeafInput[] = [];
  try {
    const a = await account(store);
    for (let seq = 1; seq <= 11; seq++) {
      const l = leaf('application');
      leaves.push(l);
      await store.publishApplication(a, { app: 'x', seq, object: '{}', targets: [] }, l, seq);
    }
  } finally {
    await store.close();
  }
  await raw(`DELETE FROM log_nodes; DELETE FROM log_head; UPDATE meta SET value = '2' WHERE key = 'schema'`);
  const s2 = await reopen();
  try {
    const head = await s2.logHead();
    t.is(head.size, 13);
    t.is(hex(head.root), hex(new MerkleTree(await s2.leafHashes(0)).root()));
    // and appends go on from it
    const a2 = await account(s2);
    t.is((await s2.logHead()).size, 15);
    t.truthy(a2);
    const proof = inclusionProofFrom(12, 15, await storedNodes(s2, (n) => inclusionProofFrom(12, 15, n)));
    verifyInclusion((leaves[10] as LeafInput).hash, 12, 15, proof, (await s2.logHead()).root);
  } finally {
    await s2.close();
  }
});

contract('a head the stored nodes do not prove is neither served nor appended to', async (t, b) => {
  const { store, raw } = await b.fresh();
  try {
    const a = await account(store);
    const tree = new LogTree(store, ed25519KeyPair(), systemClock);
    await tree.sync();
    t.is(tree.size, 2);
    const served = tree.treeHead();
    // behind the portal's back, the head's root is replaced (a bad restore, a bug, an attacker with the database)
    await raw(`UPDATE log_head SET size = 2, root = ${b.name === 'sqlite' ? "x'" + '00'.repeat(32) + "'" : "'\\x" + '00'.repeat(32) + "'"} WHERE id = 1`);
    const err = await code(store.publishPersonal(a, { personal: '{}', seq: 9 }, leaf('personal'), 1));
    t.is(err, 'state', 'the writer refuses to extend a tree it cannot prove');
    t.is((await store.stats()).logSize, 2);
    // a reader told of a larger head it cannot prove keeps serving the last one it could
    await raw(`UPDATE log_head SET size = 3 WHERE id = 1; INSERT INTO log (idx, kind, data, leaf_hash, created) VALUES (2, 'x', ${b.name === 'sqlite' ? "x'00'" : "'\\x00'"}, ${b.name === 'sqlite' ? "x'" + '11'.repeat(32) + "'" : "'\\x" + '11'.repeat(32) + "'"}, 0)`);
    t.is(await code(tree.sync()), 'internal');
    t.is(tree.size, 2);
    t.deepEqual(tree.treeHead(), served);
  } finally {
    await store.close();
  }
});

contract('publishes committed together are checked in order: a lower or equal seq after a higher one is refused', async (t, b) => {
  const { store } = await b.fresh();
  try {
    const a = await account(store);
    const d = device();
    await store.registerDevice(d);
    await store.claimDevice({ device: d.id, account: a, claim: '{}', master: '{}' }, leaf('claim'), 1);
    // issued in one turn of the event loop: one group, one commit
    const results = await Promise.all(
      [5, 3, 5, 6, 4, 9].map((seq) =>
        store.publishApplication(a, { app: 'x', seq, object: `{"s":${seq}}`, targets: [d.id] }, leaf('application'), seq).then(
          (r) => r.items[0]?.n ?? -1,
          (e: unknown) => (e instanceof MeshError ? e.code : 'other'),
        ),
      ),
    );
    t.deepEqual(results, [2, 'rollback', 'rollback', 3, 'rollback', 4]);
    t.deepEqual(await store.applications(a), { x: '{"s":9}' });
    t.deepEqual((await store.feedSince(d.id, 1, 10)).map((i) => i.object), ['{"s":5}', '{"s":6}', '{"s":9}']);
    t.is((await store.logHead()).size, 2 + 1 + 3);
  } finally {
    await store.close();
  }
});

contract('shared budgets: two writers (two store instances on one database) racing for one budget are granted no more than it in all; each window has its own, and old windows are swept', async (t, b) => {
  const { store, reopen, query } = await b.fresh();
  // a second instance on the same database: on PostgreSQL another pool, as another process
  const other = await reopen();
  try {
    const HOUR = 3_600_000;
    const w1 = 10 * HOUR;
    // 2 x 40 takes at once from a budget of 25, half through each instance
    const race = async (key: string, win: number, limit: number, n: number): Promise<boolean[]> =>
      Promise.all(Array.from({ length: n }, (_, i) => (i % 2 === 0 ? store : other).takeBudget(key, win, limit)));
    const first = await race('new|192.0.2.1', w1, 25, 80);
    t.is(first.filter((g) => g).length, 25, 'exactly the budget is granted, no more');
    // spent for both instances in this window
    t.false(await store.takeBudget('new|192.0.2.1', w1, 25));
    t.false(await other.takeBudget('new|192.0.2.1', w1, 25));
    // another key has a budget of its own; a larger limit (a reconfigured portal) grants only the difference
    t.true(await other.takeBudget('new|192.0.2.2', w1, 25));
    t.true(await store.takeBudget('new|192.0.2.1', w1, 26));
    t.false(await other.takeBudget('new|192.0.2.1', w1, 26));
    t.false(await store.takeBudget('new|*', w1, 0), 'a budget of 0 grants nothing');
    // the next window starts afresh, raced again
    const second = await race('new|192.0.2.1', w1 + HOUR, 25, 60);
    t.is(second.filter((g) => g).length, 25);
    // the sweep drops windows that started before the given time, and only those
    const windows = async (): Promise<string[]> => (await query<{ key: string; win: number; used: number }>(`SELECT key, win, used FROM budgets ORDER BY win, key`)).map((r) => `${r.key} ${Number(r.win) / HOUR} ${Number(r.used)}`);
    t.deepEqual(await windows(), ['new|192.0.2.1 10 26', 'new|192.0.2.2 10 1', 'new|192.0.2.1 11 25']);
    await other.prune({ nowMs: w1 + HOUR, joinsBeforeMs: 0, failuresBeforeMs: 0, budgetsBeforeMs: w1 + HOUR });
    t.deepEqual(await windows(), ['new|192.0.2.1 11 25']);
    t.false(await store.takeBudget('new|192.0.2.1', w1 + HOUR, 25), 'the current window is kept by the sweep');
  } finally {
    await other.close();
    await store.close();
  }
});

