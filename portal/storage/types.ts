/**
 * The portal's storage: one interface, two implementations (SQLite in the data directory,
 * PostgreSQL for several portal processes). Every method that changes state is one database
 * transaction and has committed (durably) when its promise resolves.
 *
 * Storage holds no keys and checks no signatures: callers pass leaf hashes in, and envelopes are
 * opaque JSON text. It keeps the log's Merkle tree (RFC 9162 node hashes, mesh/merkle.ts) next to
 * the leaves, written in the transaction that appends them, so every process sharing the database
 * proves any committed size from it.
 * Refusals are MeshErrors with stable codes: `conflict`, `rollback`, `forbidden`, `not-found`.
 */
import type { ItemKind } from '../../mesh/protocol.js';

/** A device as it registered itself. Envelopes are stored as their JSON text. */
export interface DeviceRecord {
  readonly id: string;
  readonly profile: string;
  readonly endorsement: string | null;
  readonly claimId: string;
  readonly claimBlob: string;
  /** base64url of the claim-proof key the portal checks claims with */
  readonly portalKey: string;
  readonly registeredMs: number;
}

/** What the portal keeps of an invitation: enough to check the invitee's proof, never the secret. */
export interface InvitationRecord {
  readonly id: string;
  readonly device: string;
  /** the inviting account */
  readonly account: string;
  /** the record sealed under the invitation secret (device profile, terms) */
  readonly blob: string;
  readonly portalKey: string;
  readonly expiresMs: number;
  /** when it was used; null while open */
  readonly usedMs: number | null;
}

export type RegisterOutcome = 'created' | 'unchanged' | 'updated';

export interface AccountRecord {
  /** full account name, name@portal */
  readonly account: string;
  readonly masterId: string;
  readonly master: string;
  readonly masterSeq: number;
  readonly personal: string | null;
  readonly personalSeq: number;
  readonly createdMs: number;
}

/** One leaf to append to the transparency log. */
export interface LeafInput {
  readonly kind: string;
  readonly data: Uint8Array;
  /** RFC 9162 leaf hash of data, computed by the caller */
  readonly hash: Uint8Array;
}

/** A feed item as stored: envelopes as JSON text. */
export interface StoredItem {
  readonly device: string;
  readonly n: number;
  readonly kind: ItemKind;
  readonly object: string;
  /** the device's own part of a parted application profile (JSON text), served inside the object */
  readonly part: string | null;
  readonly master: string | null;
  readonly index: number;
}

/** The log as committed: its size and RFC 9162 root. */
export interface LogHead {
  readonly size: number;
  readonly root: Uint8Array;
}

/** What a logged change produced: the log index of its (last) leaf and the feed items it added. */
export interface Appended {
  readonly index: number;
  /** indices of every leaf appended, in order */
  readonly indices: readonly number[];
  readonly items: readonly StoredItem[];
  /** the head committed with it (it may include later changes committed in the same group) */
  readonly size: number;
  readonly root: Uint8Array;
}

export interface SessionRecord {
  /** base64url SHA-256 of the bearer token; the token itself is never stored */
  readonly tokenHash: string;
  readonly kind: 'device' | 'account';
  readonly subject: string;
  /** the key that opened the session (so revoking the key can end it) */
  readonly kid: string;
  readonly expiresMs: number;
}

export interface StatusRecord {
  readonly device: string;
  readonly profile: string;
  readonly status: string | null;
  readonly receivedMs: number | null;
}

export interface LogEntryRecord {
  readonly index: number;
  readonly kind: string;
  readonly data: Uint8Array;
}

/** Something another writer (or this one) committed: feed items and log growth. */
export type StoreEvent =
  | { readonly type: 'feed'; readonly device: string; readonly n: number; readonly local: boolean; readonly item?: StoredItem }
  /** the log grew to `size`; `root` is its root at that size (absent only from a malformed notification) */
  | { readonly type: 'log'; readonly size: number; readonly root?: Uint8Array; readonly local: boolean }
  | { readonly type: 'sessions'; readonly account: string; readonly local: boolean }
  /** the change feed was interrupted: caches must be refreshed from the database */
  | { readonly type: 'resync' };

export interface StoreStats {
  readonly devices: number;
  readonly accounts: number;
  readonly feedItems: number;
  readonly logSize: number;
}

export interface Storage {
  readonly kind: 'sqlite' | 'postgres';
  /**
   * True when every other writer's commits reach onEvent (PostgreSQL LISTEN is connected, or
   * SQLite, which has one writer). While false, callers must read the database instead of caches.
   */
  readonly eventsReliable: boolean;
  onEvent(listener: (e: StoreEvent) => void): void;

  // ------------------------------------------------------------ devices
  /** Idempotent for the same device; `conflict` if another device holds the claim id. */
  registerDevice(d: DeviceRecord): Promise<RegisterOutcome>;
  getDevice(id: string): Promise<DeviceRecord | undefined>;
  getDeviceByClaimId(claimId: string): Promise<DeviceRecord | undefined>;
  /** Devices never claimed (no feed item ever). */
  unclaimedCount(): Promise<number>;
  /**
   * Delete devices never claimed that registered before `registeredBeforeMs` and hold no session
   * live at `nowMs`, with their status, sessions and claim failures. A device claimed meanwhile
   * is kept. Returns how many went.
   */
  expireUnclaimed(p: { registeredBeforeMs: number; nowMs: number }): Promise<number>;

  // ------------------------------------------------------------ accounts and profiles
  /**
   * Bind an unused account name to a master (appending master and personal to the log), or accept
   * the same master again (`created: false`, nothing appended). `conflict` for another master.
   */
  bindAccount(a: Omit<AccountRecord, 'createdMs'>, leaves: readonly LeafInput[], nowMs: number): Promise<{ created: boolean; appended: Appended | null }>;
  getAccount(account: string): Promise<AccountRecord | undefined>;
  /** A new master profile (seq strictly greater, else `rollback`); a 'master' item to every linked device. */
  publishMaster(account: string, p: { master: string; seq: number; revoked: readonly string[] }, leaf: LeafInput, nowMs: number): Promise<Appended>;
  /** A new personal profile (seq strictly greater, else `rollback`). */
  publishPersonal(account: string, p: { personal: string; seq: number }, leaf: LeafInput, nowMs: number): Promise<Appended>;
  /**
   * A new application profile: seq strictly greater than the account's last for the app (else
   * `rollback`); every target linked to the account (else `forbidden`); an item per target. The
   * object is stored once; `parts[i]` (if given) is the part `targets[i]` is served with it;
   * `latest` (default `object`) is what `applications` returns (with every part).
   */
  publishApplication(
    account: string,
    p: { app: string; seq: number; object: string; latest?: string; targets: readonly string[]; parts?: readonly string[] },
    leaf: LeafInput,
    nowMs: number,
  ): Promise<Appended>;
  /** Latest application profile per app name. */
  applications(account: string): Promise<Record<string, string>>;

  // ------------------------------------------------------------ claims and links
  /** Link device and account; a 'claim' item carrying the master. */
  claimDevice(p: { device: string; account: string; claim: string; master: string }, leaf: LeafInput, nowMs: number): Promise<Appended>;
  /** A 'remove' item, then unlink. `forbidden` if the device is not linked to the account. */
  removeDevice(p: { device: string; account: string; remove: string }, leaf: LeafInput, nowMs: number): Promise<Appended>;
  /** An owner's move of a device (logged, into its feed): on the old portal the device must be linked to the account; on the new one (`link`) it must be registered there, and is linked. */
  moveDevice(p: { device: string; account: string; move: string; link: boolean }, leaf: LeafInput, nowMs: number): Promise<Appended>;
  isLinked(device: string, account: string): Promise<boolean>;
  /**
   * An owner's invitation: an 'invite' item in the device's feed, and the record the invitee
   * claims with (`forbidden` if the device is not linked to the account; `conflict` if the id is taken).
   */
  inviteDevice(p: { device: string; account: string; invite: string; invitation: InvitationRecord }, leaf: LeafInput, nowMs: number): Promise<Appended>;
  getInvitation(id: string): Promise<InvitationRecord | undefined>;
  /**
   * The device's signed status names its ownership epoch. The first one is recorded; a new one
   * (a factory reset) drops the device's feed items up to `upTo` (all the device has read: they
   * belong to the epoch that ended) and its open invitations. Returns whether the epoch changed.
   */
  noteEpoch(device: string, epoch: string, upTo: number): Promise<boolean>;
  /**
   * A claim with an invitation: as claimDevice, and the invitation used up in the same
   * transaction (`invitation-used` if it was, `invitation-expired` past its time, `not-found`).
   */
  claimByInvitation(p: { id: string; device: string; account: string; claim: string; master: string }, leaf: LeafInput, nowMs: number): Promise<Appended>;
  /** Failed claim proofs for a device since `sinceMs`: how many and the oldest time. */
  claimFailures(device: string, sinceMs: number): Promise<{ count: number; oldestMs: number | null }>;
  recordClaimFailure(device: string, atMs: number): Promise<void>;

  // ------------------------------------------------------------ feed
  feedSince(device: string, since: number, limit: number): Promise<StoredItem[]>;
  feedItem(device: string, n: number): Promise<StoredItem | undefined>;
  latestN(device: string): Promise<number>;

  // ------------------------------------------------------------ sessions
  /** Store a session; with `keepPerSubject`, only that many of the subject's sessions are kept (those expiring last). */
  putSession(s: SessionRecord, keepPerSubject?: number): Promise<void>;
  getSession(tokenHash: string): Promise<SessionRecord | undefined>;
  /** Refuse (false) a nonce already seen; remember it until `expiresMs`. */
  useNonce(nonce: string, expiresMs: number): Promise<boolean>;
  /**
   * Drop expired sessions and nonces, claim failures before `failuresBeforeMs`, joins before
   * `joinsBeforeMs`, budget windows that start before `budgetsBeforeMs`.
   */
  prune(p: { nowMs: number; joinsBeforeMs: number; failuresBeforeMs: number; budgetsBeforeMs?: number }): Promise<void>;

  // ------------------------------------------------------------ budgets
  /**
   * Take one from the budget `key` in the window (of the caller's clock) that starts at
   * `windowMs`: granted (true) while fewer than `limit` have been taken from it in that window by
   * this or any other process sharing the database; refused (false, nothing taken) once it is
   * spent. Atomic: racing takers are never granted more than `limit` in all.
   */
  takeBudget(key: string, windowMs: number, limit: number): Promise<boolean>;

  // ------------------------------------------------------------ status
  /** Keep the newest by seq; false (ignored) when `seq` is not newer than the stored one. */
  putStatus(device: string, p: { seq: number; status: string }, receivedMs: number): Promise<boolean>;
  deviceStatuses(account: string): Promise<StatusRecord[]>;

  // ------------------------------------------------------------ joins
  /** Keep the newest `max` per account, none older than `notBeforeMs`. */
  addJoin(account: string, p: { nonce: string; object: string }, nowMs: number, max: number, notBeforeMs: number): Promise<void>;
  joins(account: string, notBeforeMs: number): Promise<string[]>;

  // ------------------------------------------------------------ log
  /** Leaf hashes from `from` on, in index order (a visible prefix has no gaps). */
  leafHashes(from: number): Promise<Uint8Array[]>;
  logEntry(index: number): Promise<LogEntryRecord | undefined>;
  /** The committed head: every node needed to prove any size up to it is committed with it. */
  logHead(): Promise<LogHead>;
  /** Tree nodes by [level, index] (see mesh/merkle.ts NodeAt), in the order asked; `state` if one is missing. */
  treeNodes(nodes: readonly (readonly [number, number])[]): Promise<Uint8Array[]>;

  // ------------------------------------------------------------ operations
  stats(): Promise<StoreStats>;
  /** Fails unless the database answers. */
  ping(): Promise<void>;
  close(): Promise<void>;
}
