/**
 * SQLite serves one portal process: a second one on the same data directory would not hear the
 * first one's commits (its caches would go stale). `DIR/portal.pid` records the owner; a live
 * other process there refuses the start. A stale file (the process is gone) is taken over.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { MeshError } from '../mesh/errors.js';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Claim the data directory; returns a release function. */
export function claimDataDir(dir: string): () => void {
  const file = path.join(dir, 'portal.pid');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      fs.writeFileSync(file, `${process.pid}\n`, { flag: 'wx', mode: 0o600 });
      return () => {
        try {
          if (fs.readFileSync(file, 'utf8').trim() === String(process.pid)) fs.rmSync(file, { force: true });
        } catch {
          // already gone
        }
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const pid = Number(fs.readFileSync(file, 'utf8').trim());
      if (Number.isSafeInteger(pid) && pid > 0 && pid !== process.pid && alive(pid)) {
        throw new MeshError('state', `another portal (pid ${pid}) uses ${dir}; SQLite serves one process (use PostgreSQL for several), or remove ${file} if that process is not a portal`);
      }
      fs.rmSync(file, { force: true });
    }
  }
  throw new MeshError('state', `cannot claim ${file}`);
}
