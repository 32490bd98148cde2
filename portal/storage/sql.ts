/**
 * What the two SQL engines have in common, as far as the portal's store needs: parameterized
 * statements (`?` placeholders), transactions grouped into one commit, one writer of the log at a
 * time across processes, and a change feed (PostgreSQL NOTIFY; SQLite has one writer and needs none).
 *
 * Group commit: the transactions a driver receives close together run one after the other inside
 * ONE database transaction and commit together (one disk flush for all). A transaction may
 * `stage` what it appends to the log; once every transaction of the group has run, the driver
 * hands the staged values of those that succeeded to the flush function (set by the store),
 * which writes them all with a few multi-row statements, still before the commit.
 */
export type SqlValue = string | number | null | Uint8Array;

export interface SqlRunner {
  all<T extends object>(sql: string, params?: readonly SqlValue[]): Promise<T[]>;
  /** Returns the number of rows changed. */
  run(sql: string, params?: readonly SqlValue[]): Promise<number>;
}

export interface SqlTx extends SqlRunner {
  readonly dialect: 'sqlite' | 'postgres';
  /** Serialize with every other log append (all processes) until this transaction ends. */
  lockLog(): Promise<void>;
  /** Tell every other process, once this transaction commits. */
  notify(payloads: readonly string[]): Promise<void>;
  /**
   * Hand a value to the flush that runs before this transaction's group commits (only in an
   * `appends` transaction, only if this transaction succeeds). The flush writes the log.
   */
  stage(value: unknown): void;
}

export interface TxOptions {
  /**
   * The transaction appends to the log: it runs with the log's writer lock held (one writer at a
   * time across processes), and may `stage`. It must do every check (and throw any refusal)
   * before its first write: PostgreSQL groups have no savepoints, so a transaction that fails
   * after writing costs its group a rollback and a rerun of the others.
   */
  readonly appends?: boolean;
}

/** Writes what the group's transactions staged, before the group commits. */
export type FlushFn = (tx: SqlTx, staged: readonly unknown[]) => Promise<void>;

export interface SqlDriver extends SqlRunner {
  readonly dialect: 'sqlite' | 'postgres';
  /** True while notifications from other writers are known to arrive. */
  readonly eventsReliable: boolean;
  /** Run `fn` in one transaction: committed (durably) when the promise resolves, rolled back if it throws. */
  transaction<T>(fn: (tx: SqlTx) => Promise<T>, opts?: TxOptions): Promise<T>;
  /** The store's flush for staged values (see TxOptions.appends). */
  setFlush(flush: FlushFn): void;
  isUniqueViolation(e: unknown): boolean;
  /** Other processes' notifications, and a signal that some may have been missed. */
  listen(onNotify: (payload: string) => void, onResync: () => void): Promise<void>;
  close(): Promise<void>;
}

/** Byte and integer column types per dialect; everything else is portable SQL. */
export function schemaSql(dialect: 'sqlite' | 'postgres'): string[] {
  const BYTES = dialect === 'sqlite' ? 'BLOB' : 'BYTEA';
  return [
    `CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)`,
    `CREATE TABLE IF NOT EXISTS devices (
      id TEXT PRIMARY KEY,
      profile TEXT NOT NULL,
      endorsement TEXT,
      claim_id TEXT NOT NULL UNIQUE,
      claim_blob TEXT NOT NULL,
      portal_key TEXT NOT NULL,
      registered BIGINT NOT NULL,
      feed_n BIGINT NOT NULL DEFAULT 0)`,
    `CREATE TABLE IF NOT EXISTS accounts (
      account TEXT PRIMARY KEY,
      master_id TEXT NOT NULL,
      master TEXT NOT NULL,
      master_seq BIGINT NOT NULL,
      personal TEXT,
      personal_seq BIGINT NOT NULL DEFAULT 0,
      created BIGINT NOT NULL)`,
    `CREATE TABLE IF NOT EXISTS applications (
      account TEXT NOT NULL,
      app TEXT NOT NULL,
      seq BIGINT NOT NULL,
      object TEXT NOT NULL,
      PRIMARY KEY (account, app))`,
    `CREATE TABLE IF NOT EXISTS links (
      device TEXT NOT NULL,
      account TEXT NOT NULL,
      created BIGINT NOT NULL,
      PRIMARY KEY (device, account))`,
    `CREATE INDEX IF NOT EXISTS links_account ON links (account)`,
    `CREATE TABLE IF NOT EXISTS feed (
      device TEXT NOT NULL,
      n BIGINT NOT NULL,
      kind TEXT NOT NULL,
      object TEXT NOT NULL,
      master TEXT,
      log_index BIGINT NOT NULL,
      created BIGINT NOT NULL,
      part TEXT,
      PRIMARY KEY (device, n))`,
    // an object delivered to several devices (one application profile to a fleet), stored once:
    // their feed rows hold '@' + its id instead of the object itself
    `CREATE TABLE IF NOT EXISTS objects (id TEXT PRIMARY KEY, object TEXT NOT NULL)`,
    `CREATE TABLE IF NOT EXISTS log (
      idx BIGINT PRIMARY KEY,
      kind TEXT NOT NULL,
      data ${BYTES} NOT NULL,
      leaf_hash ${BYTES} NOT NULL,
      created BIGINT NOT NULL)`,
    // the Merkle tree (RFC 9162) over the log: the node of every complete aligned subtree above the
    // leaves (level >= 1; level 0 is log.leaf_hash), written with the leaves that complete it, and
    // the head (size, root) of everything committed. Any process proves any size from these.
    `CREATE TABLE IF NOT EXISTS log_nodes (
      level INTEGER NOT NULL,
      idx BIGINT NOT NULL,
      hash ${BYTES} NOT NULL,
      PRIMARY KEY (level, idx))`,
    `CREATE TABLE IF NOT EXISTS log_head (
      id INTEGER PRIMARY KEY,
      size BIGINT NOT NULL,
      root ${BYTES} NOT NULL)`,
    `CREATE TABLE IF NOT EXISTS sessions (
      token_hash TEXT PRIMARY KEY,
      kind TEXT NOT NULL,
      subject TEXT NOT NULL,
      kid TEXT NOT NULL,
      expires BIGINT NOT NULL)`,
    `CREATE INDEX IF NOT EXISTS sessions_subject ON sessions (subject)`,
    `CREATE TABLE IF NOT EXISTS nonces (nonce TEXT PRIMARY KEY, expires BIGINT NOT NULL)`,
    `CREATE TABLE IF NOT EXISTS statuses (
      device TEXT PRIMARY KEY,
      seq BIGINT NOT NULL,
      status TEXT NOT NULL,
      received BIGINT NOT NULL)`,
    `CREATE TABLE IF NOT EXISTS joins (
      account TEXT NOT NULL,
      nonce TEXT NOT NULL,
      object TEXT NOT NULL,
      created BIGINT NOT NULL,
      PRIMARY KEY (account, nonce))`,
    // each device's ownership epoch as its signed status last told it
    `CREATE TABLE IF NOT EXISTS epochs (device TEXT PRIMARY KEY, epoch TEXT NOT NULL)`,
    `CREATE TABLE IF NOT EXISTS invitations (
      id TEXT PRIMARY KEY,
      device TEXT NOT NULL,
      account TEXT NOT NULL,
      blob TEXT NOT NULL,
      portal_key TEXT NOT NULL,
      expires BIGINT NOT NULL,
      used BIGINT)`,
    `CREATE TABLE IF NOT EXISTS claim_failures (device TEXT NOT NULL, at BIGINT NOT NULL)`,
    `CREATE INDEX IF NOT EXISTS claim_failures_device ON claim_failures (device, at)`,
    // devices never claimed, by age: what the sweep expires and counts
    `CREATE INDEX IF NOT EXISTS devices_unclaimed ON devices (registered) WHERE feed_n = 0`,
    // budgets shared by every process on the database (new records per address and in all): how
    // many were taken from `key` in the window of the clock that starts at `win` (ms). Created at
    // open like every table, so an older database gains it without a schema version of its own.
    `CREATE TABLE IF NOT EXISTS budgets (
      key TEXT NOT NULL,
      win BIGINT NOT NULL,
      used BIGINT NOT NULL,
      PRIMARY KEY (key, win))`,
  ];
}

/**
 * 2: feed rows may refer to a shared object ('@' + objects.id); a version 1 database has no such rows.
 * 3: the log's tree nodes and head (log_nodes, log_head); built from the leaves when upgrading.
 * 4: feed rows may hold the device's part of a parted application profile (feed.part).
 */
export const SCHEMA_VERSION = '4';
export const UPGRADABLE_SCHEMAS: readonly string[] = ['1', '2', '3'];

/** `?, ?, ...` for n values. */
export function marks(n: number): string {
  return Array.from({ length: n }, () => '?').join(', ');
}

/** Rows per multi-row statement: bounded so that the placeholders stay well under both engines' limits. */
export const ROWS_PER_STATEMENT = 500;

/**
 * `INSERT INTO table (cols) VALUES (...), (...)` over `rows`, in statements of at most
 * ROWS_PER_STATEMENT rows, sent at once (pipelined on PostgreSQL).
 */
export async function insertRows(tx: SqlRunner, head: string, width: number, rows: readonly SqlValue[][]): Promise<void> {
  const row = `(${marks(width)})`;
  const sent: Promise<number>[] = [];
  for (let i = 0; i < rows.length; i += ROWS_PER_STATEMENT) {
    const part = rows.slice(i, i + ROWS_PER_STATEMENT);
    sent.push(tx.run(`${head} VALUES ${part.map(() => row).join(', ')}`, part.flat()));
  }
  await Promise.all(sent);
}

/** Integers come back as numbers from SQLite and (with our type parser) PostgreSQL; be strict anyway. */
export function num(v: unknown): number {
  const n = typeof v === 'string' ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isSafeInteger(n)) throw new Error(`database returned a non-integer: ${String(v)}`);
  return n;
}

export function bytes(v: unknown): Uint8Array {
  if (!(v instanceof Uint8Array)) throw new Error('database returned a non-binary value');
  return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
}
