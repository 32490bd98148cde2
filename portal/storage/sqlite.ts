/**
 * SQLite driver (better-sqlite3) for a single portal process: WAL, and a change is on disk before
 * its transaction's promise resolves (the WAL is synced after every commit, as synchronous=FULL
 * would, but on the thread pool, so the event loop is not blocked on the disk). One connection
 * writes (its transactions are serialized here, and those of one event-loop turn share one
 * commit); a second one reads, and sees only committed, durable data.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import Database from 'better-sqlite3';
import type { FlushFn, SqlDriver, SqlTx, SqlValue } from './sql.js';
import { sqliteOptions } from './sqlite-binding.js';

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

/** A transaction waiting for the next group commit. */
interface Job {
  readonly fn: (tx: SqlTx) => Promise<unknown>;
  readonly resolve: (v: unknown) => void;
  readonly reject: (e: unknown) => void;
}

/** At most this many transactions share one commit. */
const MAX_GROUP = 256;
/** the checkpointer is asked at most this often */
const CHECKPOINT_EVERY_MS = 100;
/**
 * Past this many WAL frames (16 MiB), writes pause (the event loop does not) for one checkpoint
 * with no commit racing it, so it completes and the next write restarts the WAL from its start.
 */
const WAL_RESTART_FRAMES = 4_000;
/** the writer's own checkpoint, a backstop should the checkpointer not keep up: 16,000 pages (64 MiB) */
const WRITER_AUTOCHECKPOINT = 16_000;

export class SqliteDriver implements SqlDriver {
  readonly dialect = 'sqlite' as const;
  readonly eventsReliable = true;
  private readonly writer: Connection;
  private readonly reader: Connection;
  private readonly tx: SqlTx;
  /** WAL mode: commits are made durable by our own fdatasync of the WAL, off the event loop */
  private readonly walPath: string | undefined;
  private walFd: number | undefined;
  /** transactions waiting for the next group commit */
  private pending: Job[] = [];
  /** what the running transaction staged (moved to its group's list if it succeeds) */
  private staged: unknown[] = [];
  /** a group's transaction is running (its statements go in a savepoint), and whether that savepoint is open */
  private inJob = false;
  private savepoint = false;
  private flush: FlushFn | undefined;
  private running = false;
  private scheduled = false;
  private drained: (() => void)[] = [];
  private closed = false;
  /** a failed fdatasync: nothing can be acknowledged as durable any more */
  private failed: Error | undefined;
  /** WAL checkpoints on a worker thread (started at the first commit); null once it failed */
  private checkpointer: Worker | null | undefined;
  private lastCheckpointMs = 0;
  private checkpointN = 0;
  /** the checkpoint in flight, settled when the thread answers */
  private checkpointing: Promise<void> | undefined;
  private checkpointDone: (() => void) | undefined;
  /** WAL frames at the last checkpoint, and whether all were copied */
  private walFrames = 0;
  private walCopied = true;

  constructor(private readonly file: string) {
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    const w = new Database(file, sqliteOptions());
    const mode = String(w.pragma('journal_mode = WAL', { simple: true })).toLowerCase();
    // In WAL mode synchronous=NORMAL leaves the WAL unsynced at commit (checkpoints stay synced);
    // every group commit is then synced by us (fdatasync of the WAL on the thread pool) before any
    // of its transactions is acknowledged or visible to the reader: the durability of FULL.
    this.walPath = mode === 'wal' ? `${file}-wal` : undefined;
    w.pragma(this.walPath !== undefined ? 'synchronous = NORMAL' : 'synchronous = FULL');
    // checkpoints run on a worker thread (checkpointer.ts); the writer keeps a distant backstop
    if (this.walPath !== undefined) w.pragma(`wal_autocheckpoint = ${WRITER_AUTOCHECKPOINT}`);
    w.pragma('busy_timeout = 5000');
    this.writer = new Connection(w);
    const r = new Database(file, sqliteOptions());
    r.pragma('busy_timeout = 5000');
    this.reader = new Connection(r);
    try {
      fs.chmodSync(file, 0o600);
    } catch {
      // best effort: the directory is 0700 anyway
    }
    const wc = this.writer;
    // a transaction's savepoint is opened at its first statement: one that only stages (a publish,
    // checked by the flush) costs no savepoint
    const open = (): void => {
      if (this.inJob && !this.savepoint) {
        wc.run('SAVEPOINT g', []);
        this.savepoint = true;
      }
    };
    this.tx = {
      dialect: 'sqlite',
      all: <R extends object>(sql: string, params: readonly SqlValue[] = []) => {
        open();
        return Promise.resolve(wc.all<R>(sql, params));
      },
      run: (sql: string, params: readonly SqlValue[] = []) => {
        open();
        return Promise.resolve(wc.run(sql, params));
      },
      lockLog: () => Promise.resolve(),
      notify: () => Promise.resolve(),
      stage: (v: unknown) => {
        this.staged.push(v);
      },
    };
  }

  setFlush(flush: FlushFn): void {
    this.flush = flush;
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

  /**
   * Group commit: the transactions asked for during one turn of the event loop run one after the
   * other inside ONE database transaction, each in its own savepoint (a failing one is rolled
   * back alone), and are committed together. Each promise settles only once that commit is on
   * disk. While the WAL is being synced, the event loop goes on serving requests (their
   * transactions queue for the next group) and the reader keeps seeing the state before the
   * commit, so nothing not yet durable is ever read, pushed or acknowledged.
   */
  transaction<T>(fn: (tx: SqlTx) => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(new Error('the database is closed'));
    if (this.failed !== undefined) return Promise.reject(this.failed);
    return new Promise<T>((resolve, reject) => {
      this.pending.push({ fn, resolve: resolve as (v: unknown) => void, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.running || this.scheduled || this.pending.length === 0) return;
    this.scheduled = true;
    // after the poll phase: every request read in this turn has queued its transaction by then
    setImmediate(() => {
      this.scheduled = false;
      this.runGroup().catch((e: unknown) => {
        // not expected: runGroup settles every job itself
        this.failed ??= e instanceof Error ? e : new Error(String(e));
      });
    });
  }

  private async runGroup(): Promise<void> {
    this.running = true;
    if (this.walFrames > WAL_RESTART_FRAMES && this.checkpointer) {
      // a long WAL: let one checkpoint run with no commit racing it, so that it copies every
      // frame and this group's BEGIN restarts the WAL from its start
      if (this.checkpointing !== undefined) await this.checkpointing;
      this.requestCheckpoint(true);
      if (this.checkpointing !== undefined) await this.checkpointing;
      if (this.walCopied) this.walFrames = 0;
    }
    const jobs = this.pending.splice(0, MAX_GROUP);
    const db = this.writer.db;
    const done: { job: Job; ok: boolean; value: unknown }[] = [];
    const staged: unknown[] = [];
    let broken: unknown = this.failed;
    if (broken === undefined) {
      try {
        if (this.closed) throw new Error('the database is closed');
        db.exec('BEGIN IMMEDIATE');
      } catch (e) {
        broken = e;
      }
    }
    for (let i = 0; broken === undefined && i < jobs.length; i++) {
      const job = jobs[i] as Job;
      try {
        this.staged = [];
        this.inJob = true;
        this.savepoint = false;
        const value = await job.fn(this.tx);
        this.inJob = false;
        if (this.savepoint) this.writer.run('RELEASE g', []);
        staged.push(...this.staged);
        done.push({ job, ok: true, value });
      } catch (e) {
        this.inJob = false;
        done.push({ job, ok: false, value: e });
        if (!this.savepoint) continue;
        if (!db.inTransaction) {
          // SQLite rolled the whole transaction back (I/O error, full disk): nothing of this group stands
          broken = e;
          break;
        }
        try {
          this.writer.run('ROLLBACK TO g', []);
          this.writer.run('RELEASE g', []);
        } catch (e2) {
          broken = e2;
        }
      }
    }
    this.staged = [];
    if (broken === undefined && staged.length > 0 && this.flush !== undefined) {
      try {
        await this.flush(this.tx, staged);
      } catch (e) {
        broken = e;
      }
    }
    let snapshot = false;
    if (broken === undefined) {
      try {
        // the reader keeps its view of the state before this commit until the commit is durable
        if (this.walPath !== undefined && done.some((d) => d.ok)) snapshot = this.beginSnapshot();
        db.exec('COMMIT');
        if (snapshot) await this.syncWal();
      } catch (e) {
        broken = e;
        if (snapshot) this.failed ??= e instanceof Error ? e : new Error(String(e));
      } finally {
        if (snapshot) this.endSnapshot();
      }
    }
    if (broken !== undefined) {
      if (db.inTransaction) {
        try {
          db.exec('ROLLBACK');
        } catch {
          // the connection is unusable; the next BEGIN will say so
        }
      }
      const err = broken instanceof Error ? broken : new Error('the transaction failed with a thrown non-Error', { cause: broken });
      for (const d of done) d.job.reject(d.ok ? err : d.value);
      const rest = jobs.slice(done.length);
      // those not yet run get their own chance in the next group, unless the group could not even begin
      if (done.length > 0 && this.failed === undefined) this.pending.unshift(...rest);
      else for (const j of rest) j.reject(err);
    } else {
      if (snapshot) this.requestCheckpoint();
      for (const d of done) {
        if (d.ok) d.job.resolve(d.value);
        else d.job.reject(d.value);
      }
    }
    this.running = false;
    if (this.pending.length > 0) this.schedule();
    else for (const f of this.drained.splice(0)) f();
  }

  /** Ask the checkpointer thread to copy the WAL into the database (PASSIVE), at most every 100 ms. */
  private requestCheckpoint(now = false): void {
    const ms = Date.now();
    if (this.checkpointing !== undefined || this.checkpointer === null || this.closed) return;
    if (!now && ms - this.lastCheckpointMs < CHECKPOINT_EVERY_MS) return;
    this.lastCheckpointMs = ms;
    if (this.checkpointer === undefined) {
      try {
        const w = new Worker(new URL('./checkpointer.js', import.meta.url), { workerData: { file: this.file } });
        w.unref();
        w.on('error', () => this.noCheckpointer());
        w.on('exit', () => this.checkpointDone?.());
        w.on('message', (m: { n: number; log: number; done: number }) => {
          if (m.n !== this.checkpointN) return;
          if (m.log >= 0) {
            this.walFrames = m.log;
            this.walCopied = m.done >= m.log;
          }
          this.checkpointDone?.();
        });
        this.checkpointer = w;
      } catch {
        this.noCheckpointer();
        return;
      }
    }
    const n = ++this.checkpointN;
    this.checkpointing = new Promise<void>((resolve) => {
      this.checkpointDone = () => {
        if (this.checkpointN !== n) return;
        this.checkpointDone = undefined;
        this.checkpointing = undefined;
        resolve();
      };
    });
    this.checkpointer.postMessage(n);
  }

  /** Without the thread, the writer checkpoints itself as SQLite does by default. */
  private noCheckpointer(): void {
    this.checkpointer = null;
    this.checkpointDone?.();
    if (!this.closed) this.writer.db.pragma('wal_autocheckpoint = 1000');
  }

  /** Pin the reader to the current (durable) state. */
  private beginSnapshot(): boolean {
    const r = this.reader.db;
    if (r.inTransaction) return false;
    r.exec('BEGIN');
    this.reader.all(`SELECT count(*) AS n FROM sqlite_master`, []);
    return true;
  }

  private endSnapshot(): void {
    const r = this.reader.db;
    if (r.inTransaction) r.exec('COMMIT');
  }

  /** fdatasync the WAL on the thread pool. */
  private async syncWal(): Promise<void> {
    const p = this.walPath as string;
    if (this.walFd === undefined || fs.fstatSync(this.walFd).ino !== fs.statSync(p).ino) {
      if (this.walFd !== undefined) fs.closeSync(this.walFd);
      this.walFd = undefined;
      this.walFd = fs.openSync(p, 'r+');
    }
    const fd = this.walFd;
    await new Promise<void>((resolve, reject) => fs.fdatasync(fd, (e) => (e ? reject(e) : resolve())));
  }

  isUniqueViolation(e: unknown): boolean {
    const code = (e as { code?: unknown } | null)?.code;
    return code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY';
  }

  listen(): Promise<void> {
    return Promise.resolve();
  }

  async close(): Promise<void> {
    if (this.running || this.scheduled || this.pending.length > 0) await new Promise<void>((r) => this.drained.push(r));
    if (this.closed) return;
    this.closed = true;
    const cp = this.checkpointer;
    this.checkpointer = null;
    if (cp !== null && cp !== undefined) {
      const gone = new Promise<void>((r) => cp.once('exit', () => r()));
      cp.postMessage('close');
      const t = setTimeout(() => void cp.terminate(), 5_000);
      await gone;
      clearTimeout(t);
    }
    if (this.walFd !== undefined) fs.closeSync(this.walFd);
    this.walFd = undefined;
    this.reader.db.close();
    this.writer.db.close();
  }
}
