/**
 * SQLite driver (better-sqlite3) for a single portal process: WAL with synchronous=FULL, so a
 * change is on disk before its transaction's promise resolves. One connection writes (its
 * transactions are serialized here); a second one reads, and sees only committed data.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import type { SqlDriver, SqlTx, SqlValue } from './sql.js';

type Db = Database.Database;
type Stmt = Database.Statement<unknown[], unknown>;

function bind(params: readonly SqlValue[]): unknown[] {
  return params.map((p) => (p instanceof Uint8Array && !Buffer.isBuffer(p) ? Buffer.from(p.buffer, p.byteOffset, p.byteLength) : p));
}

class Connection {
  private readonly stmts = new Map<string, Stmt>();
  constructor(readonly db: Db) {}

  prepare(sql: string): Stmt {
    let s = this.stmts.get(sql);
    if (s === undefined) {
      s = this.db.prepare(sql);
      if (this.stmts.size > 500) this.stmts.clear();
      this.stmts.set(sql, s);
    }
    return s;
  }

  all<T>(sql: string, params: readonly SqlValue[]): T[] {
    return this.prepare(sql).all(...bind(params)) as T[];
  }

  run(sql: string, params: readonly SqlValue[]): number {
    const s = this.prepare(sql);
    if (s.reader) {
      s.all(...bind(params));
      return 0;
    }
    return s.run(...bind(params)).changes;
  }
}

export class SqliteDriver implements SqlDriver {
  readonly dialect = 'sqlite' as const;
  readonly eventsReliable = true;
  private readonly writer: Connection;
  private readonly reader: Connection;
  /** tail of the queue of write transactions */
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;

  constructor(file: string) {
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    const w = new Database(file);
    w.pragma('journal_mode = WAL');
    w.pragma('synchronous = FULL');
    w.pragma('busy_timeout = 5000');
    this.writer = new Connection(w);
    const r = new Database(file);
    r.pragma('busy_timeout = 5000');
    this.reader = new Connection(r);
    try {
      fs.chmodSync(file, 0o600);
    } catch {
      // best effort: the directory is 0700 anyway
    }
  }

  all<T extends object>(sql: string, params: readonly SqlValue[] = []): Promise<T[]> {
    try {
      return Promise.resolve(this.reader.all<T>(sql, params));
    } catch (e) {
      return Promise.reject(e instanceof Error ? e : new Error(String(e)));
    }
  }

  run(sql: string, params: readonly SqlValue[] = []): Promise<number> {
    return this.transaction((tx) => tx.run(sql, params));
  }

  transaction<T>(fn: (tx: SqlTx) => Promise<T>): Promise<T> {
    const run = async (): Promise<T> => {
      if (this.closed) throw new Error('the database is closed');
      const w = this.writer;
      const tx: SqlTx = {
        all: <R extends object>(sql: string, params: readonly SqlValue[] = []) => Promise.resolve(w.all<R>(sql, params)),
        run: (sql: string, params: readonly SqlValue[] = []) => Promise.resolve(w.run(sql, params)),
        lockLog: () => Promise.resolve(),
        notify: () => Promise.resolve(),
      };
      w.db.exec('BEGIN IMMEDIATE');
      try {
        const out = await fn(tx);
        w.db.exec('COMMIT');
        return out;
      } catch (e) {
        if (w.db.inTransaction) w.db.exec('ROLLBACK');
        throw e;
      }
    };
    const p = this.queue.then(run, run);
    this.queue = p.catch(() => undefined);
    return p;
  }

  isUniqueViolation(e: unknown): boolean {
    const code = (e as { code?: unknown } | null)?.code;
    return code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY';
  }

  listen(): Promise<void> {
    return Promise.resolve();
  }

  async close(): Promise<void> {
    await this.queue;
    if (this.closed) return;
    this.closed = true;
    this.reader.db.close();
    this.writer.db.close();
  }
}
