/**
 * PostgreSQL driver (pg) for one or more portal processes sharing a database. Tables live in
 * one schema (default `mesh_portal`; `?schema=NAME` on the URL or the `schema` option), so
 * portals and test runs can share a server without meeting. Log appends are serialized with
 * pg_advisory_xact_lock; commits are announced with NOTIFY and heard with LISTEN.
 */
import * as os from 'node:os';
import pg from 'pg';
import { MeshError } from '../../mesh/errors.js';
import type { SqlDriver, SqlTx, SqlValue } from './sql.js';

export const DEFAULT_PG_SCHEMA = 'mesh_portal';
const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,50}$/;
/** first half of every advisory lock key this portal takes: "MESH" */
const LOCK_CLASS = 0x4d455348;
const RETRYABLE = new Set(['40001', '40P01']);

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

  private constructor(opts: PostgresOptions, conn: { connectionString: string; schema: string }) {
    this.schema = conn.schema;
    this.onError = opts.onError ?? (() => undefined);
    this.clientConfig = { connectionString: conn.connectionString, options: `-c search_path=${conn.schema}`, types, application_name: 'mesh-portal' };
    this.pool = new pg.Pool({ ...this.clientConfig, max: opts.poolSize ?? 10 });
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

  async transaction<T>(fn: (tx: SqlTx) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const c = await this.pool.connect();
      const tx: SqlTx = {
        all: async <R extends object>(sql: string, p: readonly SqlValue[] = []) => (await c.query(numbered(sql), params(p))).rows as R[],
        run: async (sql: string, p: readonly SqlValue[] = []) => (await c.query(numbered(sql), params(p))).rowCount ?? 0,
        lockLog: async () => {
          await c.query('SELECT pg_advisory_xact_lock($1, $2)', [LOCK_CLASS, this.lockKey]);
        },
        notify: async (payload: string) => {
          await c.query('SELECT pg_notify($1, $2)', [this.channel, payload]);
        },
      };
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
        const code = (e as { code?: unknown }).code;
        if (attempt < 4 && typeof code === 'string' && RETRYABLE.has(code)) continue;
        throw e;
      } finally {
        c.release(broken);
      }
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

/** A stable 32-bit signed hash of a string (FNV-1a), for advisory lock keys. */
function hash32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h | 0;
}
