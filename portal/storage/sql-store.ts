/**
 * The portal store, written once over SqlDriver: each state change is one transaction. Every
 * transaction that appends to the log takes the log lock first, so log indices and per-device
 * feed numbers are assigned in one global order, without gaps or duplicates, in any number of
 * processes sharing one PostgreSQL (and no lock-order deadlocks are possible).
 */
import { randomUUID } from 'node:crypto';
import { fail } from '../../mesh/errors.js';
import type { ItemKind } from '../../mesh/protocol.js';
import { bytes, num, schemaSql, SCHEMA_VERSION, UPGRADABLE_SCHEMAS, type SqlDriver, type SqlTx } from './sql.js';
import type {
  AccountRecord,
  Appended,
  DeviceRecord,
  LeafInput,
  LogEntryRecord,
  RegisterOutcome,
  SessionRecord,
  StatusRecord,
  Storage,
  StoreEvent,
  StoreStats,
  StoredItem,
} from './types.js';

interface DeviceRow {
  id: string;
  profile: string;
  endorsement: string | null;
  claim_id: string;
  claim_blob: string;
  portal_key: string;
  registered: number;
}
interface AccountRow {
  account: string;
  master_id: string;
  master: string;
  master_seq: number;
  personal: string | null;
  personal_seq: number;
  created: number;
}
interface FeedRow {
  device: string;
  n: number;
  kind: string;
  object: string;
  master: string | null;
  log_index: number;
}

const toDevice = (r: DeviceRow): DeviceRecord => ({
  id: r.id,
  profile: r.profile,
  endorsement: r.endorsement,
  claimId: r.claim_id,
  claimBlob: r.claim_blob,
  portalKey: r.portal_key,
  registeredMs: num(r.registered),
});

const toAccount = (r: AccountRow): AccountRecord => ({
  account: r.account,
  masterId: r.master_id,
  master: r.master,
  masterSeq: num(r.master_seq),
  personal: r.personal,
  personalSeq: num(r.personal_seq),
  createdMs: num(r.created),
});

const toItem = (r: FeedRow): StoredItem => ({
  device: r.device,
  n: num(r.n),
  kind: r.kind as ItemKind,
  object: r.object,
  master: r.master,
  index: num(r.log_index),
});

/** A feed row as a FeedRow, its object resolved when the row refers to a shared one. */
const FEED_COLUMNS = `f.device AS device, f.n AS n, f.kind AS kind,
  CASE WHEN f.object LIKE '@%' THEN (SELECT o.object FROM objects o WHERE o.id = substr(f.object, 2)) ELSE f.object END AS object,
  f.master AS master, f.log_index AS log_index`;

/** Unclaimed devices deleted per transaction, and transactions per sweep at most. */
const EXPIRE_BATCH = 500;
const EXPIRE_BATCHES = 40;

/** What a transaction produced, announced once it has committed. */
interface Pending {
  readonly events: StoreEvent[];
}

export class SqlStore implements Storage {
  readonly kind: 'sqlite' | 'postgres';
  private readonly listeners: ((e: StoreEvent) => void)[] = [];
  /** identifies this process's notifications, so it does not hear its own twice */
  private readonly source = randomUUID();

  private constructor(private readonly db: SqlDriver) {
    this.kind = db.dialect;
  }

  /** Create the tables if absent and start listening to other writers. */
  static async open(db: SqlDriver): Promise<SqlStore> {
    await db.transaction(async (tx) => {
      await tx.lockLog();
      for (const s of schemaSql(db.dialect)) await tx.run(s);
      const v = await tx.all<{ value: string }>(`SELECT value FROM meta WHERE key = 'schema'`);
      if (v.length === 0) await tx.run(`INSERT INTO meta (key, value) VALUES ('schema', ?)`, [SCHEMA_VERSION]);
      else if (UPGRADABLE_SCHEMAS.includes(v[0]?.value ?? '')) await tx.run(`UPDATE meta SET value = ? WHERE key = 'schema'`, [SCHEMA_VERSION]);
      else if (v[0]?.value !== SCHEMA_VERSION) fail('state', `the database has schema version ${v[0]?.value ?? '?'}; this portal needs ${SCHEMA_VERSION}`);
    });
    const store = new SqlStore(db);
    await db.listen(
      (payload) => store.fromOther(payload),
      () => store.emit({ type: 'resync' }),
    );
    return store;
  }

  get eventsReliable(): boolean {
    return this.db.eventsReliable;
  }

  onEvent(listener: (e: StoreEvent) => void): void {
    this.listeners.push(listener);
  }

  private emit(e: StoreEvent): void {
    for (const l of this.listeners) l(e);
  }

  /** Notification format: `kind|source|fields...` (fields never contain `|`). */
  private fromOther(payload: string): void {
    const [kind, source, a, b] = payload.split('|');
    if (source === this.source || a === undefined) return;
    if (kind === 'f' && b !== undefined) this.emit({ type: 'feed', device: a, n: Number(b), local: false });
    else if (kind === 'l') this.emit({ type: 'log', size: Number(a), local: false });
    else if (kind === 's') this.emit({ type: 'sessions', account: a, local: false });
  }

  /** Run a logged change: lock, work, notify inside; announce locally after commit. */
  private async logged<T>(fn: (tx: SqlTx, p: Pending) => Promise<T>): Promise<T> {
    const p: Pending = { events: [] };
    const out = await this.db.transaction(async (tx) => {
      await tx.lockLog();
      p.events.length = 0;
      const r = await fn(tx, p);
      for (const e of p.events) {
        if (e.type === 'feed') await tx.notify(`f|${this.source}|${e.device}|${e.n}`);
        else if (e.type === 'log') await tx.notify(`l|${this.source}|${e.size}`);
        else if (e.type === 'sessions') await tx.notify(`s|${this.source}|${e.account}`);
      }
      return r;
    });
    for (const e of p.events) this.emit(e);
    return out;
  }

  private async appendLeaf(tx: SqlTx, p: Pending, leaf: LeafInput, nowMs: number): Promise<number> {
    const r = await tx.all<{ next: number }>(`SELECT COALESCE(MAX(idx), -1) + 1 AS next FROM log`);
    const index = num(r[0]?.next ?? 0);
    await tx.run(`INSERT INTO log (idx, kind, data, leaf_hash, created) VALUES (?, ?, ?, ?, ?)`, [index, leaf.kind, leaf.data, leaf.hash, nowMs]);
    const last = p.events.findIndex((e) => e.type === 'log');
    if (last >= 0) p.events.splice(last, 1);
    p.events.push({ type: 'log', size: index + 1, local: true });
    return index;
  }

  /** An item to one device. `shared`: the object is stored once in `objects` under this id (several devices get it). */
  private async addItem(tx: SqlTx, p: Pending, device: string, kind: ItemKind, object: string, master: string | null, index: number, nowMs: number, shared?: string): Promise<StoredItem> {
    const r = await tx.all<{ feed_n: number }>(`UPDATE devices SET feed_n = feed_n + 1 WHERE id = ? RETURNING feed_n`, [device]);
    if (r[0] === undefined) return fail('not-found', `device ${device} is not registered here`);
    const n = num(r[0].feed_n);
    await tx.run(`INSERT INTO feed (device, n, kind, object, master, log_index, created) VALUES (?, ?, ?, ?, ?, ?, ?)`, [device, n, kind, shared === undefined ? object : `@${shared}`, master, index, nowMs]);
    const item: StoredItem = { device, n, kind, object, master, index };
    p.events.push({ type: 'feed', device, n, local: true, item });
    return item;
  }

  /** Store an object several feed items will carry, once; returns its id (the log index of the change that delivers it). */
  private async shareObject(tx: SqlTx, index: number, object: string): Promise<string> {
    const id = String(index);
    await tx.run(`INSERT INTO objects (id, object) VALUES (?, ?)`, [id, object]);
    return id;
  }

  // ------------------------------------------------------------ devices

  async registerDevice(d: DeviceRecord): Promise<RegisterOutcome> {
    try {
      return await this.db.transaction(async (tx) => {
        const byClaim = await tx.all<DeviceRow>(`SELECT * FROM devices WHERE claim_id = ?`, [d.claimId]);
        if (byClaim[0] !== undefined && byClaim[0].id !== d.id) fail('conflict', 'another device is registered under this claim id');
        const rows = await tx.all<DeviceRow>(`SELECT * FROM devices WHERE id = ?`, [d.id]);
        const old = rows[0];
        if (old === undefined) {
          await tx.run(
            `INSERT INTO devices (id, profile, endorsement, claim_id, claim_blob, portal_key, registered) VALUES (?, ?, ?, ?, ?, ?, ?)`,
            [d.id, d.profile, d.endorsement, d.claimId, d.claimBlob, d.portalKey, d.registeredMs],
          );
          return 'created';
        }
        if (old.profile === d.profile && old.endorsement === d.endorsement && old.claim_id === d.claimId && old.claim_blob === d.claimBlob && old.portal_key === d.portalKey) {
          return 'unchanged';
        }
        await tx.run(`UPDATE devices SET profile = ?, endorsement = ?, claim_id = ?, claim_blob = ?, portal_key = ? WHERE id = ?`, [
          d.profile,
          d.endorsement,
          d.claimId,
          d.claimBlob,
          d.portalKey,
          d.id,
        ]);
        return 'updated';
      });
    } catch (e) {
      // two registrations raced for one claim id or one device id
      if (this.db.isUniqueViolation(e)) {
        const now = await this.getDevice(d.id);
        if (now !== undefined && now.claimId === d.claimId) return 'unchanged';
        return fail('conflict', 'another device is registered under this claim id');
      }
      throw e;
    }
  }

  async getDevice(id: string): Promise<DeviceRecord | undefined> {
    const r = await this.db.all<DeviceRow>(`SELECT * FROM devices WHERE id = ?`, [id]);
    return r[0] === undefined ? undefined : toDevice(r[0]);
  }

  async getDeviceByClaimId(claimId: string): Promise<DeviceRecord | undefined> {
    const r = await this.db.all<DeviceRow>(`SELECT * FROM devices WHERE claim_id = ?`, [claimId]);
    return r[0] === undefined ? undefined : toDevice(r[0]);
  }

  async unclaimedCount(): Promise<number> {
    const r = await this.db.all<{ n: number }>(`SELECT COUNT(*) AS n FROM devices WHERE feed_n = 0`);
    return r[0] === undefined ? 0 : num(r[0].n);
  }

  async expireUnclaimed(p: { registeredBeforeMs: number; nowMs: number }): Promise<number> {
    let total = 0;
    for (let batch = 0; batch < EXPIRE_BATCHES; batch++) {
      const gone = await this.db.transaction(async (tx) => {
        // feed_n = 0 again in the DELETE: a device claimed since the SELECT is kept (PostgreSQL re-checks the row)
        const rows = await tx.all<{ id: string }>(
          `DELETE FROM devices WHERE feed_n = 0 AND id IN (
             SELECT d.id FROM devices d
              WHERE d.feed_n = 0 AND d.registered < ?
                AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.subject = d.id AND s.expires >= ?)
              ORDER BY d.registered LIMIT ${EXPIRE_BATCH})
           RETURNING id`,
          [p.registeredBeforeMs, p.nowMs],
        );
        const ids = rows.map((r) => r.id);
        if (ids.length > 0) {
          const marks = ids.map(() => '?').join(', ');
          await tx.run(`DELETE FROM statuses WHERE device IN (${marks})`, ids);
          await tx.run(`DELETE FROM sessions WHERE subject IN (${marks})`, ids);
          await tx.run(`DELETE FROM claim_failures WHERE device IN (${marks})`, ids);
        }
        return ids.length;
      });
      total += gone;
      if (gone < EXPIRE_BATCH) break;
    }
    return total;
  }

  // ------------------------------------------------------------ accounts and profiles

  bindAccount(a: Omit<AccountRecord, 'createdMs'>, leaves: readonly LeafInput[], nowMs: number): Promise<{ created: boolean; appended: Appended | null }> {
    return this.logged(async (tx, p) => {
      const rows = await tx.all<AccountRow>(`SELECT * FROM accounts WHERE account = ?`, [a.account]);
      const old = rows[0];
      if (old !== undefined) {
        if (old.master_id !== a.masterId) fail('conflict', `the account ${a.account} is bound to another master profile`);
        return { created: false, appended: null };
      }
      await tx.run(`INSERT INTO accounts (account, master_id, master, master_seq, personal, personal_seq, created) VALUES (?, ?, ?, ?, ?, ?, ?)`, [
        a.account,
        a.masterId,
        a.master,
        a.masterSeq,
        a.personal,
        a.personalSeq,
        nowMs,
      ]);
      const indices: number[] = [];
      for (const l of leaves) indices.push(await this.appendLeaf(tx, p, l, nowMs));
      return { created: true, appended: { index: indices[indices.length - 1] ?? -1, indices, items: [] } };
    });
  }

  async getAccount(account: string): Promise<AccountRecord | undefined> {
    const r = await this.db.all<AccountRow>(`SELECT * FROM accounts WHERE account = ?`, [account]);
    return r[0] === undefined ? undefined : toAccount(r[0]);
  }

  private async lockedAccount(tx: SqlTx, account: string): Promise<AccountRow> {
    const r = await tx.all<AccountRow>(`SELECT * FROM accounts WHERE account = ?`, [account]);
    return r[0] ?? fail('not-found', `no account ${account} here`);
  }

  /** lockedAccount when only its existence matters (no master text to read). */
  private async accountExists(tx: SqlTx, account: string): Promise<void> {
    const r = await tx.all<{ one: number }>(`SELECT 1 AS one FROM accounts WHERE account = ?`, [account]);
    if (r[0] === undefined) fail('not-found', `no account ${account} here`);
  }

  publishMaster(account: string, m: { master: string; seq: number; revoked: readonly string[] }, leaf: LeafInput, nowMs: number): Promise<Appended> {
    return this.logged(async (tx, p) => {
      const a = await this.lockedAccount(tx, account);
      if (m.seq <= num(a.master_seq)) fail('rollback', `the master profile has seq ${m.seq}; the portal holds seq ${num(a.master_seq)}`, { held: num(a.master_seq) });
      await tx.run(`UPDATE accounts SET master = ?, master_seq = ? WHERE account = ?`, [m.master, m.seq, account]);
      const index = await this.appendLeaf(tx, p, leaf, nowMs);
      const devices = await tx.all<{ device: string }>(`SELECT device FROM links WHERE account = ? ORDER BY device`, [account]);
      const shared = devices.length > 1 ? await this.shareObject(tx, index, m.master) : undefined;
      const items: StoredItem[] = [];
      for (const d of devices) items.push(await this.addItem(tx, p, d.device, 'master', m.master, null, index, nowMs, shared));
      if (m.revoked.length > 0) {
        const marks = m.revoked.map(() => '?').join(', ');
        const gone = await tx.run(`DELETE FROM sessions WHERE subject = ? AND kid IN (${marks})`, [account, ...m.revoked]);
        if (gone > 0) p.events.push({ type: 'sessions', account, local: true });
      }
      return { index, indices: [index], items };
    });
  }

  publishPersonal(account: string, v: { personal: string; seq: number }, leaf: LeafInput, nowMs: number): Promise<Appended> {
    return this.logged(async (tx, p) => {
      const a = await this.lockedAccount(tx, account);
      if (v.seq <= num(a.personal_seq)) fail('rollback', `the personal profile has seq ${v.seq}; the portal holds seq ${num(a.personal_seq)}`, { held: num(a.personal_seq) });
      await tx.run(`UPDATE accounts SET personal = ?, personal_seq = ? WHERE account = ?`, [v.personal, v.seq, account]);
      const index = await this.appendLeaf(tx, p, leaf, nowMs);
      return { index, indices: [index], items: [] };
    });
  }

  publishApplication(account: string, v: { app: string; seq: number; object: string; targets: readonly string[] }, leaf: LeafInput, nowMs: number): Promise<Appended> {
    return this.logged(async (tx, p) => {
      await this.accountExists(tx, account);
      const prev = await tx.all<{ seq: number }>(`SELECT seq FROM applications WHERE account = ? AND app = ?`, [account, v.app]);
      const held = prev[0] === undefined ? 0 : num(prev[0].seq);
      if (v.seq <= held) fail('rollback', `the ${v.app} profile has seq ${v.seq}; the portal holds seq ${held}`, { held });
      const targets = [...new Set(v.targets)];
      for (const d of targets) {
        const l = await tx.all<{ device: string }>(`SELECT device FROM links WHERE device = ? AND account = ?`, [d, account]);
        if (l.length === 0) fail('forbidden', `device ${d} is not claimed by ${account}`, { device: d });
      }
      await tx.run(
        `INSERT INTO applications (account, app, seq, object) VALUES (?, ?, ?, ?)
         ON CONFLICT (account, app) DO UPDATE SET seq = excluded.seq, object = excluded.object`,
        [account, v.app, v.seq, v.object],
      );
      const index = await this.appendLeaf(tx, p, leaf, nowMs);
      const shared = targets.length > 1 ? await this.shareObject(tx, index, v.object) : undefined;
      const items: StoredItem[] = [];
      for (const d of targets) items.push(await this.addItem(tx, p, d, 'application', v.object, null, index, nowMs, shared));
      return { index, indices: [index], items };
    });
  }

  async applications(account: string): Promise<Record<string, string>> {
    const rows = await this.db.all<{ app: string; object: string }>(`SELECT app, object FROM applications WHERE account = ? ORDER BY app`, [account]);
    const out: Record<string, string> = {};
    for (const r of rows) out[r.app] = r.object;
    return out;
  }

  // ------------------------------------------------------------ claims and links

  claimDevice(v: { device: string; account: string; claim: string; master: string }, leaf: LeafInput, nowMs: number): Promise<Appended> {
    return this.logged(async (tx, p) => {
      await this.accountExists(tx, v.account);
      await tx.run(`INSERT INTO links (device, account, created) VALUES (?, ?, ?) ON CONFLICT (device, account) DO NOTHING`, [v.device, v.account, nowMs]);
      const index = await this.appendLeaf(tx, p, leaf, nowMs);
      const item = await this.addItem(tx, p, v.device, 'claim', v.claim, v.master, index, nowMs);
      return { index, indices: [index], items: [item] };
    });
  }

  removeDevice(v: { device: string; account: string; remove: string }, leaf: LeafInput, nowMs: number): Promise<Appended> {
    return this.logged(async (tx, p) => {
      const l = await tx.all<{ device: string }>(`SELECT device FROM links WHERE device = ? AND account = ?`, [v.device, v.account]);
      if (l.length === 0) fail('forbidden', `device ${v.device} is not claimed by ${v.account}`, { device: v.device });
      const index = await this.appendLeaf(tx, p, leaf, nowMs);
      const item = await this.addItem(tx, p, v.device, 'remove', v.remove, null, index, nowMs);
      await tx.run(`DELETE FROM links WHERE device = ? AND account = ?`, [v.device, v.account]);
      return { index, indices: [index], items: [item] };
    });
  }

  async isLinked(device: string, account: string): Promise<boolean> {
    const r = await this.db.all<{ device: string }>(`SELECT device FROM links WHERE device = ? AND account = ?`, [device, account]);
    return r.length > 0;
  }

  async claimFailures(device: string, sinceMs: number): Promise<{ count: number; oldestMs: number | null }> {
    const r = await this.db.all<{ c: number; oldest: number | null }>(`SELECT COUNT(*) AS c, MIN(at) AS oldest FROM claim_failures WHERE device = ? AND at >= ?`, [device, sinceMs]);
    const row = r[0];
    return { count: row === undefined ? 0 : num(row.c), oldestMs: row?.oldest === null || row?.oldest === undefined ? null : num(row.oldest) };
  }

  async recordClaimFailure(device: string, atMs: number): Promise<void> {
    await this.db.transaction((tx) => tx.run(`INSERT INTO claim_failures (device, at) VALUES (?, ?)`, [device, atMs]));
  }

  // ------------------------------------------------------------ feed

  async feedSince(device: string, since: number, limit: number): Promise<StoredItem[]> {
    const rows = await this.db.all<FeedRow>(`SELECT ${FEED_COLUMNS} FROM feed f WHERE f.device = ? AND f.n > ? ORDER BY f.n LIMIT ?`, [device, since, limit]);
    return rows.map(toItem);
  }

  async feedItem(device: string, n: number): Promise<StoredItem | undefined> {
    const rows = await this.db.all<FeedRow>(`SELECT ${FEED_COLUMNS} FROM feed f WHERE f.device = ? AND f.n = ?`, [device, n]);
    return rows[0] === undefined ? undefined : toItem(rows[0]);
  }

  async latestN(device: string): Promise<number> {
    const r = await this.db.all<{ feed_n: number }>(`SELECT feed_n FROM devices WHERE id = ?`, [device]);
    return r[0] === undefined ? 0 : num(r[0].feed_n);
  }

  // ------------------------------------------------------------ sessions

  async putSession(s: SessionRecord, keepPerSubject?: number): Promise<void> {
    await this.db.transaction(async (tx) => {
      await tx.run(`INSERT INTO sessions (token_hash, kind, subject, kid, expires) VALUES (?, ?, ?, ?, ?)`, [s.tokenHash, s.kind, s.subject, s.kid, s.expiresMs]);
      if (keepPerSubject !== undefined) {
        await tx.run(
          `DELETE FROM sessions WHERE subject = ? AND token_hash NOT IN (SELECT token_hash FROM sessions WHERE subject = ? ORDER BY expires DESC, token_hash DESC LIMIT ?)`,
          [s.subject, s.subject, keepPerSubject],
        );
      }
    });
  }

  async getSession(tokenHash: string): Promise<SessionRecord | undefined> {
    const r = await this.db.all<{ token_hash: string; kind: string; subject: string; kid: string; expires: number }>(`SELECT * FROM sessions WHERE token_hash = ?`, [tokenHash]);
    const row = r[0];
    if (row === undefined) return undefined;
    return { tokenHash: row.token_hash, kind: row.kind === 'device' ? 'device' : 'account', subject: row.subject, kid: row.kid, expiresMs: num(row.expires) };
  }

  async useNonce(nonce: string, expiresMs: number): Promise<boolean> {
    const n = await this.db.transaction((tx) => tx.run(`INSERT INTO nonces (nonce, expires) VALUES (?, ?) ON CONFLICT (nonce) DO NOTHING`, [nonce, expiresMs]));
    return n === 1;
  }

  async prune(p: { nowMs: number; joinsBeforeMs: number; failuresBeforeMs: number }): Promise<void> {
    await this.db.transaction(async (tx) => {
      await tx.run(`DELETE FROM sessions WHERE expires < ?`, [p.nowMs]);
      await tx.run(`DELETE FROM nonces WHERE expires < ?`, [p.nowMs]);
      await tx.run(`DELETE FROM joins WHERE created < ?`, [p.joinsBeforeMs]);
      await tx.run(`DELETE FROM claim_failures WHERE at < ?`, [p.failuresBeforeMs]);
    });
  }

  // ------------------------------------------------------------ status

  async putStatus(device: string, v: { seq: number; status: string }, receivedMs: number): Promise<boolean> {
    const n = await this.db.transaction((tx) =>
      tx.run(
        `INSERT INTO statuses (device, seq, status, received) VALUES (?, ?, ?, ?)
         ON CONFLICT (device) DO UPDATE SET seq = excluded.seq, status = excluded.status, received = excluded.received
         WHERE excluded.seq > statuses.seq`,
        [device, v.seq, v.status, receivedMs],
      ),
    );
    return n > 0;
  }

  async deviceStatuses(account: string): Promise<StatusRecord[]> {
    const rows = await this.db.all<{ id: string; profile: string; status: string | null; received: number | null }>(
      `SELECT d.id AS id, d.profile AS profile, s.status AS status, s.received AS received
         FROM links l JOIN devices d ON d.id = l.device LEFT JOIN statuses s ON s.device = l.device
        WHERE l.account = ? ORDER BY l.created, d.id`,
      [account],
    );
    return rows.map((r) => ({ device: r.id, profile: r.profile, status: r.status, receivedMs: r.received === null ? null : num(r.received) }));
  }

  // ------------------------------------------------------------ joins

  async addJoin(account: string, v: { nonce: string; object: string }, nowMs: number, max: number, notBeforeMs: number): Promise<void> {
    await this.db.transaction(async (tx) => {
      await tx.run(`INSERT INTO joins (account, nonce, object, created) VALUES (?, ?, ?, ?) ON CONFLICT (account, nonce) DO NOTHING`, [account, v.nonce, v.object, nowMs]);
      await tx.run(`DELETE FROM joins WHERE account = ? AND created < ?`, [account, notBeforeMs]);
      await tx.run(
        `DELETE FROM joins WHERE account = ? AND nonce NOT IN (SELECT nonce FROM joins WHERE account = ? ORDER BY created DESC, nonce DESC LIMIT ?)`,
        [account, account, max],
      );
    });
  }

  async joins(account: string, notBeforeMs: number): Promise<string[]> {
    const rows = await this.db.all<{ object: string }>(`SELECT object FROM joins WHERE account = ? AND created >= ? ORDER BY created, nonce`, [account, notBeforeMs]);
    return rows.map((r) => r.object);
  }

  // ------------------------------------------------------------ log

  async leafHashes(from: number): Promise<Uint8Array[]> {
    const rows = await this.db.all<{ idx: number; leaf_hash: Uint8Array }>(`SELECT idx, leaf_hash FROM log WHERE idx >= ? ORDER BY idx`, [from]);
    const out: Uint8Array[] = [];
    for (const r of rows) {
      if (num(r.idx) !== from + out.length) break; // a gap cannot be committed; stop at one defensively
      out.push(bytes(r.leaf_hash));
    }
    return out;
  }

  async logEntry(index: number): Promise<LogEntryRecord | undefined> {
    const rows = await this.db.all<{ idx: number; kind: string; data: Uint8Array }>(`SELECT idx, kind, data FROM log WHERE idx = ?`, [index]);
    const r = rows[0];
    return r === undefined ? undefined : { index: num(r.idx), kind: r.kind, data: bytes(r.data) };
  }

  // ------------------------------------------------------------ operations

  async stats(): Promise<StoreStats> {
    const r = await this.db.all<{ devices: number; accounts: number; feed: number; log: number }>(
      `SELECT (SELECT COUNT(*) FROM devices) AS devices,
              (SELECT COUNT(*) FROM accounts) AS accounts,
              (SELECT CAST(COALESCE(SUM(feed_n), 0) AS BIGINT) FROM devices) AS feed,
              (SELECT COALESCE(MAX(idx), -1) + 1 FROM log) AS log`,
    );
    const row = r[0];
    return row === undefined
      ? { devices: 0, accounts: 0, feedItems: 0, logSize: 0 }
      : { devices: num(row.devices), accounts: num(row.accounts), feedItems: num(row.feed), logSize: num(row.log) };
  }

  async ping(): Promise<void> {
    await this.db.all(`SELECT 1 AS one`);
  }

  close(): Promise<void> {
    return this.db.close();
  }
}
