/**
 * The portal store, written once over SqlDriver: each state change is one transaction. A change
 * that appends to the log runs as an `appends` transaction (the log's writer lock held, one
 * writer at a time in any number of processes sharing one PostgreSQL): it checks, writes its own
 * rows, and stages what it appends. The flush then gives the whole group's leaves their log
 * indices and feed items their per-device numbers, in one global order without gaps or
 * duplicates, extends the Merkle tree from its stored right edge, and writes it all in a few
 * multi-row statements before the group commits.
 */
import { randomUUID } from 'node:crypto';
import { b64u, equalBytes, fromB64u } from '../../mesh/bytes.js';
import { fail, MeshError } from '../../mesh/errors.js';
import { edgeNodes, TreeEdge } from '../../mesh/merkle.js';
import type { ItemKind } from '../../mesh/protocol.js';
import { bytes, insertRows, marks, num, ROWS_PER_STATEMENT, schemaSql, SCHEMA_VERSION, UPGRADABLE_SCHEMAS, type SqlDriver, type SqlRunner, type SqlTx, type SqlValue } from './sql.js';
import type {
  LogHead,
  AccountRecord,
  Appended,
  DeviceRecord,
  InvitationRecord,
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
  part: string | null;
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

interface InvitationRow {
  id: string;
  device: string;
  account: string;
  blob: string;
  portal_key: string;
  expires: number;
  used: number | null;
}

const toInvitation = (r: InvitationRow): InvitationRecord => ({
  id: r.id,
  device: r.device,
  account: r.account,
  blob: r.blob,
  portalKey: r.portal_key,
  expiresMs: num(r.expires),
  usedMs: r.used === null ? null : num(r.used),
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
  part: r.part ?? null,
  master: r.master,
  index: num(r.log_index),
});

/** A feed row as a FeedRow, its object resolved when the row refers to a shared one. */
const FEED_COLUMNS = `f.device AS device, f.n AS n, f.kind AS kind,
  CASE WHEN f.object LIKE '@%' THEN (SELECT o.object FROM objects o WHERE o.id = substr(f.object, 2)) ELSE f.object END AS object,
  f.master AS master, f.log_index AS log_index, f.part AS part`;

/** The feed table's columns (an older database lacks some). */
async function feedColumns(tx: SqlRunner, dialect: 'sqlite' | 'postgres'): Promise<string[]> {
  const rows =
    dialect === 'sqlite'
      ? await tx.all<{ name: string }>(`SELECT name FROM pragma_table_info('feed')`)
      : await tx.all<{ name: string }>(`SELECT column_name AS name FROM information_schema.columns WHERE table_name = 'feed' AND table_schema = current_schema()`);
  return rows.map((r) => r.name);
}

/** Unclaimed devices deleted per transaction, and transactions per sweep at most. */
const EXPIRE_BATCH = 500;
const EXPIRE_BATCHES = 40;

/** A feed item a change adds: `leaf` is the position, in the change's leaves, of the leaf it carries. */
interface NewItem {
  readonly device: string;
  readonly kind: ItemKind;
  readonly object: string;
  readonly master: string | null;
  readonly leaf: number;
  /** the object is stored once (in `objects`) for every item of the change that shares it */
  readonly shared: boolean;
  /** the device's own part of a parted application profile */
  readonly part?: string;
}

/** An application profile to publish: checked and written by the flush, for the whole group at once. */
interface Publish {
  readonly account: string;
  readonly app: string;
  readonly seq: number;
  readonly object: string;
  /** what `applications` keeps: the object with every part */
  readonly latest: string;
  /** without repeats */
  readonly targets: readonly string[];
  /** each target's part, when the profile is parted */
  readonly parts?: ReadonlyMap<string, string>;
  readonly leaf: LeafInput;
}

/** A logged change as its transaction stages it; the flush fills in where it landed. */
interface Change {
  readonly nowMs: number;
  /** set for a publish the flush checks (the transaction itself reads nothing) */
  readonly publish?: Publish;
  /** the flush's refusal of a publish */
  refusal?: MeshError;
  readonly leaves: LeafInput[];
  readonly items: NewItem[];
  /** accounts whose sessions the change ended */
  readonly sessions: string[];
  indices: number[];
  stored: StoredItem[];
  head: LogHead | undefined;
}

const newChange = (nowMs: number, publish?: Publish): Change => ({ nowMs, ...(publish !== undefined ? { publish } : {}), leaves: [], items: [], sessions: [], indices: [], stored: [], head: undefined });

/** Add a leaf to a change; returns its position in the change. */
function addLeaf(c: Change, leaf: LeafInput): number {
  c.leaves.push(leaf);
  return c.leaves.length - 1;
}

/** NOTIFY payloads stay under PostgreSQL's 8,000-byte limit. */
const MAX_NOTIFY = 7_000;

export class SqlStore implements Storage {
  readonly kind: 'sqlite' | 'postgres';
  private readonly listeners: ((e: StoreEvent) => void)[] = [];
  /** identifies this process's notifications, so it does not hear its own twice */
  private readonly source = randomUUID();
  /** the tree's right edge as this process last wrote it; checked against the stored head at every flush */
  private edge: { edge: TreeEdge; root: Uint8Array } | undefined;

  private constructor(private readonly db: SqlDriver) {
    this.kind = db.dialect;
    db.setFlush((tx, staged) => this.flush(tx, staged as Change[]));
  }

  /** Create the tables if absent (building the tree of an older log) and start listening to other writers. */
  static async open(db: SqlDriver): Promise<SqlStore> {
    await db.transaction(async (tx) => {
      await tx.lockLog();
      for (const s of schemaSql(db.dialect)) await tx.run(s);
      const v = await tx.all<{ value: string }>(`SELECT value FROM meta WHERE key = 'schema'`);
      if (v.length === 0) await tx.run(`INSERT INTO meta (key, value) VALUES ('schema', ?)`, [SCHEMA_VERSION]);
      else if (UPGRADABLE_SCHEMAS.includes(v[0]?.value ?? '')) {
        // before 4, feed rows had no part (every item carried its whole object)
        if (!(await feedColumns(tx, db.dialect)).includes('part')) await tx.run(`ALTER TABLE feed ADD COLUMN part TEXT`);
        await tx.run(`UPDATE meta SET value = ? WHERE key = 'schema'`, [SCHEMA_VERSION]);
      }
      else if (v[0]?.value !== SCHEMA_VERSION) fail('state', `the database has schema version ${v[0]?.value ?? '?'}; this portal needs ${SCHEMA_VERSION}`);
      const head = await tx.all<{ size: number }>(`SELECT size FROM log_head WHERE id = 1`);
      if (head.length === 0) await buildTree(tx);
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

  /**
   * Notification formats (fields never contain `|`, device ids never `:` or `;`):
   * `l|source|size|root` the log grew; `F|source|device:n;device:n...` feed items;
   * `s|source|account` sessions ended.
   */
  private fromOther(payload: string): void {
    const [kind, source, a, b] = payload.split('|');
    if (source === this.source || a === undefined) return;
    if (kind === 'F') {
      for (const pair of a.split(';')) {
        const at = pair.lastIndexOf(':');
        if (at > 0) this.emit({ type: 'feed', device: pair.slice(0, at), n: Number(pair.slice(at + 1)), local: false });
      }
    } else if (kind === 'l' && b !== undefined) {
      let root: Uint8Array | undefined;
      try {
        root = fromB64u(b, 'root', 32);
      } catch {
        root = undefined;
      }
      this.emit({ type: 'log', size: Number(a), local: false, ...(root !== undefined ? { root } : {}) });
    } else if (kind === 's') this.emit({ type: 'sessions', account: a, local: false });
  }

  /**
   * Run a logged change: `fn` checks (refusing before it writes anything), writes its own rows and
   * fills the change; once its group has committed, the change says where it landed and is announced.
   */
  private async logged<T>(nowMs: number, fn: (tx: SqlTx, c: Change) => Promise<T>, publish?: Publish): Promise<{ value: T; change: Change }> {
    let change: Change | undefined;
    const value = await this.db.transaction(
      async (tx) => {
        const c = newChange(nowMs, publish);
        const v = await fn(tx, c);
        if (publish !== undefined || c.leaves.length > 0 || c.sessions.length > 0) tx.stage(c);
        change = c;
        return v;
      },
      { appends: true },
    );
    const c = change as Change;
    if (c.refusal !== undefined) throw c.refusal;
    for (const e of eventsOf(c)) this.emit(e);
    return { value, change: c };
  }

  /**
   * Write what a group's changes staged: one read (pipelined on PostgreSQL: the head, the feed
   * counters of every device the group may feed, the state its publishes are checked against),
   * then one write (log rows and the tree nodes they complete, from the stored right edge; feed
   * items numbered per device; shared objects; counters; the new head; the notifications).
   * Runs with the log's writer lock held, before the commit. The group's order: the changes that
   * did their own checks first, in the order they ran, then the publishes checked here.
   */
  private async flush(tx: SqlTx, staged: readonly Change[]): Promise<void> {
    const direct = staged.filter((c) => c.publish === undefined);
    const publishes = staged.filter((c) => c.publish !== undefined);
    const devices = new Set<string>();
    for (const c of direct) for (const it of c.items) devices.add(it.device);
    for (const c of publishes) for (const d of (c.publish as Publish).targets) devices.add(d);
    const [head, counters, state] = await Promise.all([readHead(tx), readCounters(tx, [...devices]), publishes.length > 0 ? readPublishState(tx, publishes) : undefined]);
    const appRows = state === undefined ? [] : decidePublishes(publishes, state);
    const changes = [...direct, ...publishes.filter((c) => c.refusal === undefined)];
    const edge = await this.edgeAt(tx, head);
    this.edge = undefined; // until this group is written, the cached edge says nothing
    const logRows: SqlValue[][] = [];
    const nodeRows: SqlValue[][] = [];
    const feedRows: SqlValue[][] = [];
    const objectRows: SqlValue[][] = [];
    const moved = new Map<string, number>();
    for (const c of changes) {
      for (const l of c.leaves) {
        const index = edge.size;
        for (const [k, i, h] of edge.append(l.hash)) if (k > 0) nodeRows.push([k, i, h]);
        logRows.push([index, l.kind, l.data, l.hash, c.nowMs]);
        c.indices.push(index);
      }
      const sharedIds = new Map<number, string>();
      for (const it of c.items) {
        const n = (moved.get(it.device) ?? counters.get(it.device) ?? fail('not-found', `device ${it.device} is not registered here`)) + 1;
        moved.set(it.device, n);
        const index = c.indices[it.leaf] as number;
        let stored = it.object;
        if (it.shared) {
          let id = sharedIds.get(it.leaf);
          if (id === undefined) {
            id = String(index);
            sharedIds.set(it.leaf, id);
            objectRows.push([id, it.object]);
          }
          stored = `@${id}`;
        }
        feedRows.push([it.device, n, it.kind, stored, it.master, index, c.nowMs, it.part ?? null]);
        c.stored.push({ device: it.device, n, kind: it.kind, object: it.object, part: it.part ?? null, master: it.master, index });
      }
    }
    const root = edge.root();
    const grew: LogHead = { size: edge.size, root };
    for (const c of changes) c.head = grew;
    await Promise.all([
      ...valuesStatements(
        appRows,
        4,
        (v) => `INSERT INTO applications (account, app, seq, object) VALUES ${v} ON CONFLICT (account, app) DO UPDATE SET seq = excluded.seq, object = excluded.object`,
      ).map(([sql, p]) => tx.run(sql, p)),
      ...valuesStatements(
        [...moved].map(([d, n]) => [d, n]),
        2,
        (v) => `WITH v (id, n) AS (VALUES ${v}) UPDATE devices SET feed_n = (SELECT n FROM v WHERE v.id = devices.id) WHERE id IN (SELECT id FROM v)`,
        '(?, CAST(? AS BIGINT))',
      ).map(([sql, p]) => tx.run(sql, p)),
      insertRows(tx, `INSERT INTO log (idx, kind, data, leaf_hash, created)`, 5, logRows),
      insertRows(tx, `INSERT INTO log_nodes (level, idx, hash)`, 3, nodeRows),
      insertRows(tx, `INSERT INTO objects (id, object)`, 2, objectRows),
      insertRows(tx, `INSERT INTO feed (device, n, kind, object, master, log_index, created, part)`, 8, feedRows),
      logRows.length > 0 ? tx.run(`UPDATE log_head SET size = ?, root = ? WHERE id = 1`, [grew.size, root]) : undefined,
      tx.notify(this.notifications(changes, grew, logRows.length > 0)),
    ]);
    this.edge = { edge, root };
  }

  /** The stored tree's right edge at `head`, from this process's cache when no other writer moved the head since. */
  private async edgeAt(tx: SqlRunner, head: LogHead): Promise<TreeEdge> {
    const cached = this.edge;
    if (cached !== undefined && cached.edge.size === head.size && equalBytes(cached.root, head.root)) return cached.edge;
    const edge = new TreeEdge(head.size, await readNodes(tx, edgeNodes(head.size)));
    if (!equalBytes(edge.root(), head.root)) fail('state', `the stored log tree does not match its head at size ${head.size}; refusing to append`);
    return edge;
  }

  private notifications(changes: readonly Change[], head: LogHead, grew: boolean): string[] {
    if (this.kind !== 'postgres') return [];
    const out: string[] = [];
    if (grew) out.push(`l|${this.source}|${head.size}|${b64u(head.root)}`);
    let feed = '';
    for (const c of changes) {
      for (const i of c.stored) {
        const pair = `${i.device}:${i.n}`;
        if (feed !== '' && feed.length + pair.length + 1 > MAX_NOTIFY) {
          out.push(`F|${this.source}|${feed}`);
          feed = '';
        }
        feed = feed === '' ? pair : `${feed};${pair}`;
      }
      for (const a of c.sessions) out.push(`s|${this.source}|${a}`);
    }
    if (feed !== '') out.push(`F|${this.source}|${feed}`);
    return out;
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

  async bindAccount(a: Omit<AccountRecord, 'createdMs'>, leaves: readonly LeafInput[], nowMs: number): Promise<{ created: boolean; appended: Appended | null }> {
    const { value: created, change } = await this.logged(nowMs, async (tx, c) => {
      const rows = await tx.all<{ master_id: string }>(`SELECT master_id FROM accounts WHERE account = ?`, [a.account]);
      const old = rows[0];
      if (old !== undefined) {
        if (old.master_id !== a.masterId) fail('conflict', `the account ${a.account} is bound to another master profile`);
        return false;
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
      for (const l of leaves) addLeaf(c, l);
      return true;
    });
    return { created, appended: created ? appendedOf(change) : null };
  }

  async getAccount(account: string): Promise<AccountRecord | undefined> {
    const r = await this.db.all<AccountRow>(`SELECT * FROM accounts WHERE account = ?`, [account]);
    return r[0] === undefined ? undefined : toAccount(r[0]);
  }

  /** The account's profile sequence numbers, or `not-found`. */
  private async accountSeqs(tx: SqlTx, account: string): Promise<{ master: number; personal: number }> {
    const r = await tx.all<{ master_seq: number; personal_seq: number }>(`SELECT master_seq, personal_seq FROM accounts WHERE account = ?`, [account]);
    const row = r[0] ?? fail('not-found', `no account ${account} here`);
    return { master: num(row.master_seq), personal: num(row.personal_seq) };
  }

  async publishMaster(account: string, m: { master: string; seq: number; revoked: readonly string[] }, leaf: LeafInput, nowMs: number): Promise<Appended> {
    const { change } = await this.logged(nowMs, async (tx, c) => {
      const held = (await this.accountSeqs(tx, account)).master;
      if (m.seq <= held) fail('rollback', `the master profile has seq ${m.seq}; the portal holds seq ${held}`, { held });
      const devices = await tx.all<{ device: string }>(`SELECT device FROM links WHERE account = ? ORDER BY device`, [account]);
      await tx.run(`UPDATE accounts SET master = ?, master_seq = ? WHERE account = ?`, [m.master, m.seq, account]);
      const at = addLeaf(c, leaf);
      for (const d of devices) c.items.push({ device: d.device, kind: 'master', object: m.master, master: null, leaf: at, shared: devices.length > 1 });
      if (m.revoked.length > 0) {
        const gone = await tx.run(`DELETE FROM sessions WHERE subject = ? AND kid IN (${marks(m.revoked.length)})`, [account, ...m.revoked]);
        if (gone > 0) c.sessions.push(account);
      }
    });
    return appendedOf(change);
  }

  async publishPersonal(account: string, v: { personal: string; seq: number }, leaf: LeafInput, nowMs: number): Promise<Appended> {
    const { change } = await this.logged(nowMs, async (tx, c) => {
      const held = (await this.accountSeqs(tx, account)).personal;
      if (v.seq <= held) fail('rollback', `the personal profile has seq ${v.seq}; the portal holds seq ${held}`, { held });
      await tx.run(`UPDATE accounts SET personal = ?, personal_seq = ? WHERE account = ?`, [v.personal, v.seq, account]);
      addLeaf(c, leaf);
    });
    return appendedOf(change);
  }

  /**
   * The hot path (a fleet's owners publishing): the transaction only stages the publish; the flush
   * checks every publish of the group with a few queries, in order (a later one sees the seq an
   * earlier one set), and writes those it accepts together.
   */
  async publishApplication(
    account: string,
    v: { app: string; seq: number; object: string; latest?: string; targets: readonly string[]; parts?: readonly string[] },
    leaf: LeafInput,
    nowMs: number,
  ): Promise<Appended> {
    const parts = v.parts === undefined ? undefined : new Map(v.targets.map((d, i) => [d, v.parts?.[i] ?? fail('malformed', `no part for device ${d}`)]));
    const publish: Publish = { account, app: v.app, seq: v.seq, object: v.object, latest: v.latest ?? v.object, targets: [...new Set(v.targets)], ...(parts !== undefined ? { parts } : {}), leaf };
    const { change } = await this.logged(nowMs, () => Promise.resolve(), publish);
    return appendedOf(change);
  }

  async applications(account: string): Promise<Record<string, string>> {
    const rows = await this.db.all<{ app: string; object: string }>(`SELECT app, object FROM applications WHERE account = ? ORDER BY app`, [account]);
    const out: Record<string, string> = {};
    for (const r of rows) out[r.app] = r.object;
    return out;
  }

  // ------------------------------------------------------------ claims and links

  async claimDevice(v: { device: string; account: string; claim: string; master: string }, leaf: LeafInput, nowMs: number): Promise<Appended> {
    const { change } = await this.logged(nowMs, async (tx, c) => {
      const r = await tx.all<{ known: number; registered: number }>(
        `SELECT (SELECT COUNT(*) FROM accounts WHERE account = ?) AS known, (SELECT COUNT(*) FROM devices WHERE id = ?) AS registered`,
        [v.account, v.device],
      );
      if (num(r[0]?.known ?? 0) === 0) fail('not-found', `no account ${v.account} here`);
      if (num(r[0]?.registered ?? 0) === 0) fail('not-found', `device ${v.device} is not registered here`);
      await tx.run(`INSERT INTO links (device, account, created) VALUES (?, ?, ?) ON CONFLICT (device, account) DO NOTHING`, [v.device, v.account, nowMs]);
      const at = addLeaf(c, leaf);
      c.items.push({ device: v.device, kind: 'claim', object: v.claim, master: v.master, leaf: at, shared: false });
    });
    return appendedOf(change);
  }

  async removeDevice(v: { device: string; account: string; remove: string }, leaf: LeafInput, nowMs: number): Promise<Appended> {
    const { change } = await this.logged(nowMs, async (tx, c) => {
      const l = await tx.all<{ device: string }>(`SELECT device FROM links WHERE device = ? AND account = ?`, [v.device, v.account]);
      if (l.length === 0) fail('forbidden', `device ${v.device} is not claimed by ${v.account}`, { device: v.device });
      await tx.run(`DELETE FROM links WHERE device = ? AND account = ?`, [v.device, v.account]);
      const at = addLeaf(c, leaf);
      c.items.push({ device: v.device, kind: 'remove', object: v.remove, master: null, leaf: at, shared: false });
    });
    return appendedOf(change);
  }

  async moveDevice(v: { device: string; account: string; move: string; link: boolean }, leaf: LeafInput, nowMs: number): Promise<Appended> {
    const { change } = await this.logged(nowMs, async (tx, c) => {
      if (v.link) {
        // the portal the device moves to: the owner who asked links the device to its account here
        const r = await tx.all<{ registered: number }>(`SELECT COUNT(*) AS registered FROM devices WHERE id = ?`, [v.device]);
        if (num(r[0]?.registered ?? 0) === 0) fail('not-found', `device ${v.device} is not registered here (yet)`);
        await tx.run(`INSERT INTO links (device, account, created) VALUES (?, ?, ?) ON CONFLICT (device, account) DO NOTHING`, [v.device, v.account, nowMs]);
      } else {
        const l = await tx.all<{ device: string }>(`SELECT device FROM links WHERE device = ? AND account = ?`, [v.device, v.account]);
        if (l.length === 0) fail('forbidden', `device ${v.device} is not claimed by ${v.account}`, { device: v.device });
      }
      const at = addLeaf(c, leaf);
      c.items.push({ device: v.device, kind: 'move', object: v.move, master: null, leaf: at, shared: false });
    });
    return appendedOf(change);
  }

  async inviteDevice(v: { device: string; account: string; invite: string; invitation: InvitationRecord }, leaf: LeafInput, nowMs: number): Promise<Appended> {
    const { change } = await this.logged(nowMs, async (tx, c) => {
      const l = await tx.all<{ device: string }>(`SELECT device FROM links WHERE device = ? AND account = ?`, [v.device, v.account]);
      if (l.length === 0) fail('forbidden', `device ${v.device} is not claimed by ${v.account}`, { device: v.device });
      const taken = await tx.all<{ id: string }>(`SELECT id FROM invitations WHERE id = ?`, [v.invitation.id]);
      if (taken.length > 0) fail('conflict', 'an invitation with this id exists');
      const i = v.invitation;
      await tx.run(`INSERT INTO invitations (id, device, account, blob, portal_key, expires, used) VALUES (?, ?, ?, ?, ?, ?, NULL)`, [i.id, v.device, v.account, i.blob, i.portalKey, i.expiresMs]);
      const at = addLeaf(c, leaf);
      c.items.push({ device: v.device, kind: 'invite', object: v.invite, master: null, leaf: at, shared: false });
    });
    return appendedOf(change);
  }

  async getInvitation(id: string): Promise<InvitationRecord | undefined> {
    const r = await this.db.all<InvitationRow>(`SELECT * FROM invitations WHERE id = ?`, [id]);
    return r[0] === undefined ? undefined : toInvitation(r[0]);
  }

  async noteEpoch(device: string, epoch: string, upTo: number): Promise<boolean> {
    return this.db.transaction(async (tx) => {
      const r = await tx.all<{ epoch: string }>(`SELECT epoch FROM epochs WHERE device = ?`, [device]);
      const known = r[0]?.epoch;
      if (known === epoch) return false;
      if (known === undefined) {
        await tx.run(`INSERT INTO epochs (device, epoch) VALUES (?, ?) ON CONFLICT (device) DO UPDATE SET epoch = excluded.epoch`, [device, epoch]);
        return false;
      }
      await tx.run(`UPDATE epochs SET epoch = ? WHERE device = ?`, [epoch, device]);
      await tx.run(`DELETE FROM feed WHERE device = ? AND n <= ?`, [device, upTo]);
      await tx.run(`DELETE FROM invitations WHERE device = ?`, [device]);
      return true;
    });
  }

  async claimByInvitation(v: { id: string; device: string; account: string; claim: string; master: string }, leaf: LeafInput, nowMs: number): Promise<Appended> {
    const { change } = await this.logged(nowMs, async (tx, c) => {
      const r = await tx.all<InvitationRow>(`SELECT * FROM invitations WHERE id = ?`, [v.id]);
      const inv = r[0] === undefined ? undefined : toInvitation(r[0]);
      if (inv === undefined || inv.device !== v.device) fail('not-found', 'no such invitation for this device');
      if (inv.usedMs !== null) fail('invitation-used', 'this invitation has been accepted already: each works once; ask an owner for a new one');
      if (nowMs > inv.expiresMs) fail('invitation-expired', 'this invitation has expired; ask an owner for a new one');
      const known = await tx.all<{ c: number }>(`SELECT COUNT(*) AS c FROM accounts WHERE account = ?`, [v.account]);
      if (num(known[0]?.c ?? 0) === 0) fail('not-found', `no account ${v.account} here`);
      await tx.run(`UPDATE invitations SET used = ? WHERE id = ?`, [nowMs, v.id]);
      await tx.run(`INSERT INTO links (device, account, created) VALUES (?, ?, ?) ON CONFLICT (device, account) DO NOTHING`, [v.device, v.account, nowMs]);
      const at = addLeaf(c, leaf);
      c.items.push({ device: v.device, kind: 'claim', object: v.claim, master: v.master, leaf: at, shared: false });
    });
    return appendedOf(change);
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

  async takeBudget(key: string, windowMs: number, limit: number): Promise<boolean> {
    if (limit < 1) return false;
    // one statement: the row is locked while it is counted (PostgreSQL ON CONFLICT DO UPDATE, SQLite's
    // single writer), so two takers, in any processes, never both take the last one
    const r = await this.db.transaction((tx) =>
      tx.all<{ used: number }>(
        `INSERT INTO budgets (key, win, used) VALUES (?, ?, 1)
         ON CONFLICT (key, win) DO UPDATE SET used = budgets.used + 1 WHERE budgets.used < ?
         RETURNING used`,
        [key, windowMs, limit],
      ),
    );
    return r.length === 1;
  }

  async prune(p: { nowMs: number; joinsBeforeMs: number; failuresBeforeMs: number; budgetsBeforeMs?: number }): Promise<void> {
    await this.db.transaction(async (tx) => {
      if (p.budgetsBeforeMs !== undefined) await tx.run(`DELETE FROM budgets WHERE win < ?`, [p.budgetsBeforeMs]);
      await tx.run(`DELETE FROM sessions WHERE expires < ?`, [p.nowMs]);
      await tx.run(`DELETE FROM nonces WHERE expires < ?`, [p.nowMs]);
      await tx.run(`DELETE FROM joins WHERE created < ?`, [p.joinsBeforeMs]);
      await tx.run(`DELETE FROM claim_failures WHERE at < ?`, [p.failuresBeforeMs]);
      // an invitation is kept a day past its end, so a late attempt hears "expired" rather than "not found"
      await tx.run(`DELETE FROM invitations WHERE expires < ?`, [p.nowMs - 86_400_000]);
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

  async logHead(): Promise<LogHead> {
    const r = (await this.db.all<{ size: number; root: Uint8Array }>(`SELECT size, root FROM log_head WHERE id = 1`))[0] ?? fail('state', 'the log has no head row');
    return { size: num(r.size), root: bytes(r.root) };
  }

  treeNodes(nodes: readonly (readonly [number, number])[]): Promise<Uint8Array[]> {
    return readNodes(this.db, nodes);
  }

  // ------------------------------------------------------------ operations

  async stats(): Promise<StoreStats> {
    const r = await this.db.all<{ devices: number; accounts: number; feed: number; log: number }>(
      `SELECT (SELECT COUNT(*) FROM devices) AS devices,
              (SELECT COUNT(*) FROM accounts) AS accounts,
              (SELECT CAST(COALESCE(SUM(feed_n), 0) AS BIGINT) FROM devices) AS feed,
              (SELECT size FROM log_head WHERE id = 1) AS log`,
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

// ---------------------------------------------------------------- the log's tree

/** Where a change landed, once its group committed. */
function appendedOf(c: Change): Appended {
  const head = c.head ?? fail('internal', 'a logged change was not flushed');
  return { index: c.indices[c.indices.length - 1] ?? -1, indices: c.indices, items: c.stored, size: head.size, root: head.root };
}

/** What a committed change announces in this process. */
function eventsOf(c: Change): StoreEvent[] {
  const out: StoreEvent[] = c.stored.map((item) => ({ type: 'feed', device: item.device, n: item.n, local: true, item }));
  if (c.head !== undefined && c.leaves.length > 0) out.push({ type: 'log', size: c.head.size, root: c.head.root, local: true });
  for (const account of c.sessions) out.push({ type: 'sessions', account, local: true });
  return out;
}

/** Stored tree nodes by [level, index], in the order asked (level 0 from the log's leaf hashes). */
async function readNodes(db: SqlRunner, nodes: readonly (readonly [number, number])[]): Promise<Uint8Array[]> {
  const leaves = nodes.filter(([k]) => k === 0).map(([, i]) => i);
  const inner = nodes.filter(([k]) => k > 0);
  const parts: string[] = [];
  const params: SqlValue[] = [];
  if (leaves.length > 0) {
    parts.push(`SELECT 0 AS level, idx, leaf_hash AS hash FROM log WHERE idx IN (${marks(leaves.length)})`);
    params.push(...leaves);
  }
  if (inner.length > 0) {
    parts.push(`SELECT level, idx, hash FROM log_nodes WHERE ${inner.map(() => '(level = ? AND idx = ?)').join(' OR ')}`);
    params.push(...inner.flat());
  }
  if (parts.length === 0) return [];
  const rows = await db.all<{ level: number; idx: number; hash: Uint8Array }>(parts.join(' UNION ALL '), params);
  const got = new Map(rows.map((r) => [`${num(r.level)}/${num(r.idx)}`, bytes(r.hash)]));
  return nodes.map(([k, i]) => got.get(`${k}/${i}`) ?? fail('state', `the log tree has no node ${k}/${i}`));
}

/** Build the tree nodes and head of a log written before they were stored (schema 1 and 2), or of an empty one. */
async function buildTree(tx: SqlTx): Promise<void> {
  const rows = await tx.all<{ idx: number; leaf_hash: Uint8Array }>(`SELECT idx, leaf_hash FROM log ORDER BY idx`);
  const edge = new TreeEdge(0, []);
  const nodes: SqlValue[][] = [];
  for (const r of rows) {
    if (num(r.idx) !== edge.size) fail('state', `the log has a gap at index ${edge.size}`);
    for (const [k, i, h] of edge.append(bytes(r.leaf_hash))) if (k > 0) nodes.push([k, i, h]);
  }
  await tx.run(`DELETE FROM log_nodes`);
  await insertRows(tx, `INSERT INTO log_nodes (level, idx, hash)`, 3, nodes);
  await tx.run(`INSERT INTO log_head (id, size, root) VALUES (1, ?, ?)`, [edge.size, edge.root()]);
}

// ---------------------------------------------------------------- publishes, checked per group

/** `head` with `VALUES (?, ...), ...` over `rows`, as statements of at most ROWS_PER_STATEMENT rows. */
function valuesStatements(rows: readonly SqlValue[][], width: number, head: (values: string) => string, row = `(${marks(width)})`): [string, SqlValue[]][] {
  const out: [string, SqlValue[]][] = [];
  for (let i = 0; i < rows.length; i += ROWS_PER_STATEMENT) {
    const part = rows.slice(i, i + ROWS_PER_STATEMENT);
    out.push([head(part.map(() => row).join(', ')), part.flat()]);
  }
  return out;
}

/** Every statement at once (pipelined on PostgreSQL), rows in statement order. */
async function allRows<R extends object>(tx: SqlRunner, statements: readonly [string, SqlValue[]][]): Promise<R[]> {
  return (await Promise.all(statements.map(([sql, p]) => tx.all<R>(sql, p)))).flat();
}

async function readHead(tx: SqlRunner): Promise<LogHead> {
  const h = (await tx.all<{ size: number; root: Uint8Array }>(`SELECT size, root FROM log_head WHERE id = 1`))[0] ?? fail('state', 'the log has no head row');
  return { size: num(h.size), root: bytes(h.root) };
}

/** Feed counters of these devices (those not registered are absent). */
async function readCounters(tx: SqlRunner, devices: readonly string[]): Promise<Map<string, number>> {
  const statements: [string, SqlValue[]][] = [];
  for (let i = 0; i < devices.length; i += ROWS_PER_STATEMENT) {
    const part = devices.slice(i, i + ROWS_PER_STATEMENT);
    statements.push([`SELECT id, feed_n FROM devices WHERE id IN (${marks(part.length)})`, part]);
  }
  const rows = await allRows<{ id: string; feed_n: number }>(tx, statements);
  return new Map(rows.map((r) => [r.id, num(r.feed_n)]));
}

const pairKey = (a: string, b: string): string => `${a}\u0000${b}`;

interface PublishState {
  readonly known: ReadonlySet<string>;
  readonly held: Map<string, number>;
  readonly linked: ReadonlySet<string>;
}

/** What a group's publishes are checked against: accounts, each app's last seq, the links of their targets. */
async function readPublishState(tx: SqlRunner, changes: readonly Change[]): Promise<PublishState> {
  const apps = new Map<string, SqlValue[]>();
  const pairs = new Map<string, SqlValue[]>();
  for (const c of changes) {
    const p = c.publish as Publish;
    apps.set(pairKey(p.account, p.app), [p.account, p.app]);
    for (const d of p.targets) pairs.set(pairKey(p.account, d), [p.account, d]);
  }
  const [state, links] = await Promise.all([
    allRows<{ account: string; app: string; known: number; held: number | null }>(
      tx,
      valuesStatements(
        [...apps.values()],
        2,
        (v) => `WITH q (account, app) AS (VALUES ${v}) SELECT q.account AS account, q.app AS app,
          (SELECT COUNT(*) FROM accounts a WHERE a.account = q.account) AS known,
          (SELECT p.seq FROM applications p WHERE p.account = q.account AND p.app = q.app) AS held FROM q`,
      ),
    ),
    allRows<{ account: string; device: string }>(
      tx,
      valuesStatements(
        [...pairs.values()],
        2,
        (v) => `WITH q (account, device) AS (VALUES ${v}) SELECT q.account AS account, q.device AS device FROM q JOIN links l ON l.account = q.account AND l.device = q.device`,
      ),
    ),
  ]);
  return {
    known: new Set(state.filter((r) => num(r.known) > 0).map((r) => r.account)),
    held: new Map(state.map((r) => [pairKey(r.account, r.app), r.held === null ? 0 : num(r.held)])),
    linked: new Set(links.map((r) => pairKey(r.account, r.device))),
  };
}

/**
 * Check a group's publishes in order, as publishApplication would one by one: the account exists,
 * the seq is above the app's last (including one accepted earlier in the group), every target is
 * linked to the account. Refusals go on the change; accepted ones get their leaf and items.
 * Returns the applications rows to write (the newest per account and app).
 */
function decidePublishes(changes: readonly Change[], st: PublishState): SqlValue[][] {
  const rows = new Map<string, SqlValue[]>();
  for (const c of changes) {
    const p = c.publish as Publish;
    const k = pairKey(p.account, p.app);
    const h = st.held.get(k) ?? 0;
    const missing = p.targets.find((d) => !st.linked.has(pairKey(p.account, d)));
    if (!st.known.has(p.account)) c.refusal = new MeshError('not-found', `no account ${p.account} here`);
    else if (p.seq <= h) c.refusal = new MeshError('rollback', `the ${p.app} profile has seq ${p.seq}; the portal holds seq ${h}`, { held: h });
    else if (missing !== undefined) c.refusal = new MeshError('forbidden', `device ${missing} is not claimed by ${p.account}`, { device: missing });
    else {
      st.held.set(k, p.seq);
      rows.set(k, [p.account, p.app, p.seq, p.latest]);
      const at = addLeaf(c, p.leaf);
      for (const d of p.targets) {
        const part = p.parts?.get(d);
        c.items.push({ device: d, kind: 'application', object: p.object, master: null, leaf: at, shared: p.targets.length > 1, ...(part !== undefined ? { part } : {}) });
      }
    }
  }
  return [...rows.values()];
}
