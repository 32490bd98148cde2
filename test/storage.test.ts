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
import { leafHash, MerkleTree } from '../mesh/merkle.js';
import { PostgresDriver } from '../portal/storage/postgres.js';
import { SqliteDriver } from '../portal/storage/sqlite.js';
import { SqlStore } from '../portal/storage/sql-store.js';
import type { DeviceRecord, LeafInput, Storage, StoreEvent } from '../portal/storage/types.js';

const PG_URL = process.env.MESH_TEST_PG ?? 'postgres://root@127.0.0.1:5432/test';
const RUN = randomBytes(4).toString('hex');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mesh-storage-test-'));
const schemas: string[] = [];
let counter = 0;

interface Backend {
  readonly name: 'sqlite' | 'postgres';
  /** a fresh, empty store, and a way to open another handle on the same data (another process, for PostgreSQL) */
  fresh(): Promise<{ store: Storage; another: () => Promise<Storage>; reopen: () => Promise<Storage> }>;
}

const backends: Backend[] = [
  {
    name: 'sqlite',
    fresh: async () => {
      const file = path.join(tmp, `s${++counter}`, 'portal.db');
      const store = await SqlStore.open(new SqliteDriver(file));
      // SQLite has one writer process: "another" handle is the same store
      return { store, another: () => Promise.resolve(store), reopen: async () => SqlStore.open(new SqliteDriver(file)) };
    },
  },
  {
    name: 'postgres',
    fresh: async () => {
      const schema = `mesh_st_${RUN}_${++counter}`;
      schemas.push(schema);
      const open = async (): Promise<Storage> => SqlStore.open(await PostgresDriver.open({ url: PG_URL, schema }));
      return { store: await open(), another: open, reopen: open };
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
    t.deepEqual(c1.items, [{ device: d1.id, n: 1, kind: 'claim', object: '{"claim":1}', master: '{"m":1}', index: 2 }]);
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
