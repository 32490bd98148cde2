/**
 * PostgreSQL driver (pg) for one or more portal processes sharing a database. Tables live in
 * one schema (default `mesh_portal`; `?schema=NAME` on the URL or the `schema` option), so
 * portals and test runs can share a server without meeting. Commits are announced with NOTIFY
 * and heard with LISTEN.
 *
 * Transactions that append to the log are grouped: those queued while a group runs form the
 * next one, which takes the log's advisory lock (pg_advisory_xact_lock: one writer of the log at
 * a time, across every process on the schema), runs them one after the other on one connection,
 * flushes what they staged (the log rows, tree nodes, feed items: a few multi-row statements)
 * and commits once. Every other transaction runs on its own pooled connection; PostgreSQL
 * shares WAL flushes between concurrent commits by itself.
 */
import * as os from 'node:os';
import pg from 'pg';
import { MeshError } from '../../mesh/errors.js';
import type { FlushFn, SqlDriver, SqlTx, SqlValue, TxOptions } from './sql.js';

export const DEFAULT_PG_SCHEMA = 'mesh_portal';
const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,50}$/;
/** first half of every advisory lock key this portal takes: "MESH" */
const LOCK_CLASS = 0x4d455348;
const RETRYABLE = new Set(['40001', '40P01']);
/** At most this many transactions share one commit. */
const MAX_GROUP = 256;
/** times a group is run again after a serialization failure or deadlock before its transactions fail */
const MAX_GROUP_RETRIES = 3;

const corked = new WeakSet<object>();

/**
 * Queries sent in one turn (a group's pipelined reads, its writes) leave in one socket write: the
 * client's socket is corked until the end of this turn. Without it each query was a write(2) of
 * its own, which on PostgreSQL publishes cost more of the portal's time than anything else.
 */
function coalesceWrites(c: pg.PoolClient): void {
  const stream = (c as unknown as { connection?: { stream?: { cork?: () => void; uncork?: () => void } } }).connection?.stream;
  if (stream?.cork === undefined || stream.uncork === undefined || corked.has(stream)) return;
  corked.add(stream);
  stream.cork();
  process.nextTick(() => {
    corked.delete(stream);
    stream.uncork?.();
  });
}

/** An appending transaction waiting for the next group. */
interface Job {
  readonly fn: (tx: SqlTx) => Promise<unknown>;
  readonly resolve: (v: unknown) => void;
  readonly reject: (e: unknown) => void;
  retries: number;
}

const READ_ONLY = /^\s*SELECT\b/i;

export interface PostgresOptions {
  readonly url: string;
  /** overrides `?schema=` in the URL */
  readonly schema?: string;
  readonly poolSize?: number;
  readonly onError?: (e: Error) => void;
}

/** Split `?schema=NAME` off a connection URL. */
export function parseDatabaseUrl(url: string, schema?: string): { connectionString: string; schema: string } {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new MeshError('usage', 'the database URL is not a URL (expected postgres://user@host:port/database)');
  }
  if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') throw new MeshError('usage', 'the database URL must start with postgres:// or postgresql://');
  const fromUrl = u.searchParams.get('schema');
  u.searchParams.delete('schema');
  const s = schema ?? fromUrl ?? DEFAULT_PG_SCHEMA;
  if (!SCHEMA_NAME.test(s)) throw new MeshError('usage', `the schema name "${s}" must be lowercase letters, digits and _`);
  // no user in the URL: as libpq, $PGUSER, else the operating-system user (pg itself reads only $USER,
  // which services, containers and cron jobs often do not have)
  if (u.username === '') u.username = encodeURIComponent(defaultPgUser());
  return { connectionString: u.toString(), schema: s };
}

function defaultPgUser(env: NodeJS.ProcessEnv = process.env): string {
  if (env.PGUSER !== undefined && env.PGUSER !== '') return env.PGUSER;
  try {
    return os.userInfo().username;
  } catch {
    throw new MeshError('usage', 'the database URL names no user and this process has no user name: write postgres://USER@host/database');
  }
}

/** `?` placeholders become `$1, $2, ...` (our SQL has no `?` inside literals). */
function numbered(sql: string): string {
  let i = 0;
  return sql.replace(/\?/g, () => `$${++i}`);
}

const types = {
  getTypeParser: ((oid: number, format?: string) => (oid === 20 ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format as 'text'))) as typeof pg.types.getTypeParser,
};

function params(p: readonly SqlValue[]): unknown[] {
  return p.map((v) => (v instanceof Uint8Array && !Buffer.isBuffer(v) ? Buffer.from(v.buffer, v.byteOffset, v.byteLength) : v));
}

export class PostgresDriver implements SqlDriver {
  readonly dialect = 'postgres' as const;
  readonly schema: string;
  private readonly pool: pg.Pool;
  private readonly clientConfig: pg.ClientConfig;
  private readonly channel: string;
  private readonly lockKey: number;
  private listener: pg.Client | undefined;
  private listening = false;
  private closed = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private readonly onError: (e: Error) => void;
  private flush: FlushFn | undefined;
  /** appending transactions waiting for the next group */
  private queue: Job[] = [];
  private running = false;
  private scheduled = false;
  private drained: (() => void)[] = [];

  private constructor(opts: PostgresOptions, conn: { connectionString: string; schema: string }) {
    this.schema = conn.schema;
    this.onError = opts.onError ?? (() => undefined);
    this.clientConfig = { connectionString: conn.connectionString, options: `-c search_path=${conn.schema}`, types, application_name: 'mesh-portal' };
    // pipelined: statements a transaction sends without waiting go out together (one round trip)
    this.pool = new pg.Pool({ ...this.clientConfig, max: opts.poolSize ?? 10, pipeline: true } as pg.PoolConfig);
    this.pool.on('error', (e) => this.onError(e));
    this.channel = `mesh_${conn.schema}`;
    this.lockKey = hash32(conn.schema);
  }

  /** Connect and create the schema if absent. */
  static async open(opts: PostgresOptions): Promise<PostgresDriver> {
    const conn = parseDatabaseUrl(opts.url, opts.schema);
    const d = new PostgresDriver(opts, conn);
    try {
      const c = await d.pool.connect();
      try {
        await c.query('BEGIN');
        await c.query('SELECT pg_advisory_xact_lock($1, 0)', [LOCK_CLASS]);
        await c.query(`CREATE SCHEMA IF NOT EXISTS ${conn.schema}`);
        await c.query('COMMIT');
      } catch (e) {
        await c.query('ROLLBACK').catch(() => undefined);
        throw e;
      } finally {
        c.release();
      }
    } catch (e) {
      await d.pool.end().catch(() => undefined);
      throw new MeshError('unavailable', `cannot open the PostgreSQL database: ${(e as Error).message}`);
    }
    return d;
  }

  get eventsReliable(): boolean {
    return this.listening;
  }

  async all<T extends object>(sql: string, p: readonly SqlValue[] = []): Promise<T[]> {
    const r = await this.pool.query(numbered(sql), params(p));
    return r.rows as T[];
  }

  async run(sql: string, p: readonly SqlValue[] = []): Promise<number> {
    const r = await this.pool.query(numbered(sql), params(p));
    return r.rowCount ?? 0;
  }

  setFlush(flush: FlushFn): void {
    this.flush = flush;
  }

  transaction<T>(fn: (tx: SqlTx) => Promise<T>, opts?: TxOptions): Promise<T> {
    if (this.closed) return Promise.reject(new MeshError('unavailable', 'the database is closed'));
    if (opts?.appends !== true) return this.single(fn);
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ fn, resolve: resolve as (v: unknown) => void, reject, retries: 0 });
      this.schedule();
    });
  }

  /** One transaction on its own pooled connection. */
  private async single<T>(fn: (tx: SqlTx) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const c = await this.pool.connect();
      const tx = this.txOn(c, { wrote: false, failed: false, staged: undefined });
      let broken = false;
      try {
        await c.query('BEGIN');
        const out = await fn(tx);
        await c.query('COMMIT');
        return out;
      } catch (e) {
        try {
          await c.query('ROLLBACK');
        } catch {
          broken = true;
        }
        if (attempt < 4 && retryable(e)) continue;
        throw e;
      } finally {
        c.release(broken);
      }
    }
  }

  /** A transaction's view of connection `c`; `st` records whether it wrote or failed and what it staged. */
  private txOn(c: pg.PoolClient, st: { wrote: boolean; failed: boolean; staged: unknown[] | undefined }): SqlTx {
    const q = async (sql: string, p: readonly SqlValue[]): Promise<pg.QueryResult> => {
      if (!READ_ONLY.test(sql)) st.wrote = true;
      try {
        coalesceWrites(c);
        return await c.query(numbered(sql), params(p));
      } catch (e) {
        st.failed = true;
        throw e;
      }
    };
    return {
      dialect: 'postgres',
      all: async <R extends object>(sql: string, p: readonly SqlValue[] = []) => (await q(sql, p)).rows as R[],
      run: async (sql: string, p: readonly SqlValue[] = []) => (await q(sql, p)).rowCount ?? 0,
      lockLog: async () => {
        await c.query('SELECT pg_advisory_xact_lock($1, $2)', [LOCK_CLASS, this.lockKey]);
      },
      notify: async (payloads: readonly string[]) => {
        if (payloads.length === 0) return;
        st.wrote = true;
        await c.query('SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p', [this.channel, payloads]);
      },
      stage: (v: unknown) => {
        if (st.staged === undefined) throw new Error('stage() outside an appending transaction');
        st.staged.push(v);
      },
    };
  }

  private schedule(): void {
    if (this.running || this.scheduled || this.queue.length === 0) return;
    this.scheduled = true;
    // after the poll phase: every request read in this turn has queued its transaction by then
    setImmediate(() => {
      this.scheduled = false;
      this.running = true;
      this.runGroup()
        .catch((e: unknown) => this.onError(e instanceof Error ? e : new Error(String(e))))
        .finally(() => {
          this.running = false;
          if (this.queue.length > 0) this.schedule();
          else for (const f of this.drained.splice(0)) f();
        });
    });
  }

  /**
   * One group: BEGIN, the log lock, each transaction in turn, the flush, COMMIT; every promise
   * settles after the commit. There are no savepoints (a round trip each): a transaction that
   * throws before writing is refused alone; one that fails after writing (or whose statement
   * failed, which aborts a PostgreSQL transaction) rolls the group back, is refused, and the
   * others run again in the next group.
   */
  private async runGroup(): Promise<void> {
    const jobs = this.queue.splice(0, MAX_GROUP);
    if (jobs.length === 0) return;
    let c: pg.PoolClient;
    try {
      c = await this.pool.connect();
    } catch (e) {
      for (const j of jobs) j.reject(unavailable(e));
      return;
    }
    const done: { job: Job; ok: boolean; value: unknown }[] = [];
    const staged: unknown[] = [];
    let broken = false;
    try {
      // pipelined with the transactions' first statements, which the server runs once the lock is held
      coalesceWrites(c);
      const locked = Promise.all([c.query('BEGIN'), c.query('SELECT pg_advisory_xact_lock($1, $2)', [LOCK_CLASS, this.lockKey])]);
      locked.catch(() => undefined);
      for (let i = 0; i < jobs.length; i++) {
        const job = jobs[i] as Job;
        const st = { wrote: false, failed: false, staged: [] as unknown[] };
        try {
          const value = await job.fn(this.txOn(c, st));
          done.push({ job, ok: true, value });
          staged.push(...st.staged);
        } catch (e) {
          if (!st.wrote && !st.failed) {
            done.push({ job, ok: false, value: e });
            continue;
          }
          // it changed (or aborted) the transaction: refuse it, run the others again
          await locked;
          await c.query('ROLLBACK');
          job.reject(e);
          this.queue.unshift(...jobs.filter((j) => j !== job));
          return;
        }
      }
      if (staged.length > 0) {
        const flush = this.flush ?? ((): never => { throw new Error('no flush is set for staged values'); });
        await flush(this.txOn(c, { wrote: true, failed: false, staged: undefined }), staged);
      }
      await locked;
      await c.query('COMMIT');
    } catch (e) {
      try {
        await c.query('ROLLBACK');
      } catch {
        broken = true;
      }
      const again = retryable(e) ? jobs.filter((j) => j.retries++ < MAX_GROUP_RETRIES) : [];
      for (const j of jobs) if (!again.includes(j)) j.reject(e);
      this.queue.unshift(...again);
      return;
    } finally {
      c.release(broken);
    }
    for (const d of done) {
      if (d.ok) d.job.resolve(d.value);
      else d.job.reject(d.value);
    }
  }

  isUniqueViolation(e: unknown): boolean {
    return (e as { code?: unknown } | null)?.code === '23505';
  }

  async listen(onNotify: (payload: string) => void, onResync: () => void): Promise<void> {
    await this.connectListener(onNotify, onResync, 0);
  }

  private async connectListener(onNotify: (payload: string) => void, onResync: () => void, failures: number): Promise<void> {
    if (this.closed) return;
    const c = new pg.Client(this.clientConfig);
    const lost = (e?: Error): void => {
      if (this.listener !== c) return;
      this.listener = undefined;
      this.listening = false;
      c.removeAllListeners('notification');
      c.end().catch(() => undefined);
      if (this.closed) return;
      if (e !== undefined) this.onError(e);
      onResync();
      this.scheduleListener(onNotify, onResync, failures + 1);
    };
    this.listener = c;
    c.on('error', (e) => lost(e));
    c.on('end', () => lost());
    c.on('notification', (m) => {
      if (m.channel === this.channel && m.payload !== undefined) onNotify(m.payload);
    });
    try {
      await c.connect();
      await c.query(`LISTEN ${this.channel}`);
      if (this.listener !== c) return;
      this.listening = true;
      if (failures > 0) onResync();
    } catch (e) {
      if (failures === 0) {
        this.listener = undefined;
        await c.end().catch(() => undefined);
        throw new MeshError('unavailable', `cannot LISTEN on PostgreSQL: ${(e as Error).message}`);
      }
      lost(e as Error);
    }
  }

  /** Reconnect with exponential backoff and full jitter (so processes do not reconnect in step). */
  private scheduleListener(onNotify: (payload: string) => void, onResync: () => void, failures: number): void {
    const capMs = Math.min(30_000, 200 * 2 ** Math.min(failures, 8));
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.connectListener(onNotify, onResync, failures).catch((e: unknown) => this.onError(e as Error));
    }, Math.random() * capMs);
    this.retryTimer.unref();
  }

  async close(): Promise<void> {
    if (this.running || this.scheduled || this.queue.length > 0) await new Promise<void>((r) => this.drained.push(r));
    if (this.closed) return;
    this.closed = true;
    this.listening = false;
    if (this.retryTimer !== undefined) clearTimeout(this.retryTimer);
    const l = this.listener;
    this.listener = undefined;
    if (l !== undefined) await l.end().catch(() => undefined);
    await this.pool.end();
  }

  /** Drop the schema and everything in it (tests). */
  static async dropSchema(url: string, schema: string): Promise<void> {
    const conn = parseDatabaseUrl(url, schema);
    const c = new pg.Client({ connectionString: conn.connectionString });
    await c.connect();
    try {
      await c.query(`DROP SCHEMA IF EXISTS ${conn.schema} CASCADE`);
    } finally {
      await c.end();
    }
  }
}

function retryable(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === 'string' && RETRYABLE.has(code);
}

function unavailable(e: unknown): MeshError {
  return new MeshError('unavailable', `the database is unavailable: ${(e as Error).message}`);
}

/** A stable 32-bit signed hash of a string (FNV-1a), for advisory lock keys. */
function hash32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h | 0;
}
