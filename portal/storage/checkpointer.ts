/**
 * The SQLite WAL checkpointer, on a worker thread with its own connection, so copying the WAL
 * into the database (and the two fsyncs that takes) never blocks the portal's event loop.
 * Messages: a number n: checkpoint (PASSIVE: never waits for the writer or readers), answered
 * with {n, log, done} (frames in the WAL, frames copied); 'close'.
 */
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { sqliteOptions } from './sqlite-binding.js';

const port = parentPort;
if (port === null) throw new Error('checkpointer.js runs as a worker thread');
const db = new Database((workerData as { file: string }).file, sqliteOptions());
db.pragma('busy_timeout = 1000');
port.on('message', (m: number | string) => {
  if (typeof m === 'number') {
    let log = -1;
    let done = -1;
    try {
      const r = db.pragma('wal_checkpoint(PASSIVE)') as { busy: number; log: number; checkpointed: number }[];
      log = r[0]?.log ?? -1;
      done = r[0]?.checkpointed ?? -1;
    } catch {
      // busy or closing: the next request, or the writer's backstop, will do it
    }
    port.postMessage({ n: m, log, done });
  } else if (m === 'close') {
    db.close();
    port.close();
  }
});
