/**
 * Power-loss-safe files (the Node platform service shared by the actors that keep state).
 * write to a temp file in the same directory, fsync it, rename over the target, fsync the directory:
 * after a crash the file is exactly the old or the new version, never empty or torn.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';

export function writeFileAtomic(file: string, data: string | Uint8Array, mode = 0o600): void {
  const dir = path.dirname(file);
  const tmp = writeTemp(file, data, mode);
  try {
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  fsyncDir(dir);
}

/**
 * Create `file` with `data` unless it exists: the same temp file and fsync, then link(2) instead of
 * rename, so a file another process made first is never overwritten. Returns whether this call made it.
 */
export function createFileOnce(file: string, data: string | Uint8Array, mode = 0o600): boolean {
  const tmp = writeTemp(file, data, mode);
  let made = true;
  try {
    fs.linkSync(tmp, file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    made = false;
  } finally {
    fs.rmSync(tmp, { force: true });
  }
  fsyncDir(path.dirname(file));
  return made;
}

/** A flushed temp file beside `file` (cleanTempFiles removes one a crash left behind). */
function writeTemp(file: string, data: string | Uint8Array, mode: number): string {
  const dir = path.dirname(file);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  const fd = fs.openSync(tmp, 'wx', mode);
  try {
    // writeSync may write less than asked (a full disk, a signal): loop until all is written
    for (let off = 0; off < bytes.length; ) off += fs.writeSync(fd, bytes, off, bytes.length - off);
    fs.fsyncSync(fd);
  } catch (e) {
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  fs.closeSync(fd);
  return tmp;
}

export function fsyncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, 'r');
    fs.fsyncSync(fd);
  } catch {
    // some file systems refuse fsync on directories; the rename is still atomic
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

export function writeJsonAtomic(file: string, value: unknown, mode = 0o600): void {
  writeFileAtomic(file, JSON.stringify(value, null, 2) + '\n', mode);
}

export function readTextIfExists(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

/** Remove temp files left by a write that a power cut interrupted. */
export function cleanTempFiles(dir: string): void {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return;
  }
  for (const n of names) if (n.startsWith('.') && n.endsWith('.tmp')) fs.rmSync(path.join(dir, n), { force: true });
}
