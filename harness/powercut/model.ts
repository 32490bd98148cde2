/**
 * What a power cut leaves on disk, computed from a trace of harness/powercut/shim.c.
 *
 * The model is the weakest file system POSIX allows (no journal ordering luck, as ALICE and
 * CrashMonkey assume, and stricter than Jepsen's LazyFS, which only loses file data):
 *   - a file's bytes and size are durable as of its last fsync/fdatasync (or O_SYNC/O_DSYNC write);
 *     a file created and never synced is empty;
 *   - a directory's entries (creations, renames, unlinks, links, mkdirs) are durable as of the
 *     directory's last fsync; a new directory's own entries as of its own fsync;
 *   - sync()/syncfs() makes everything durable;
 *   - modes are metadata we do not model: they are kept as last set.
 * A file with a shared writable mapping (SQLite's -shm) has untraced content: it is left out of
 * the durable state (SQLite rebuilds the WAL index when no other process holds it); any other
 * such file is an error.
 *
 * scan() records the directory before the process starts (all of it durable: the previous boot's
 * state); replay() applies the trace; materialise() writes the durable state into a fresh
 * directory (the disk after the cut); compareLive() checks the model's view of the live files
 * against the real directory at the cut, which proves the shim saw every change.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

const O_ACCMODE = 0o3;
const O_CREAT = 0o100;
const O_TRUNC = 0o1000;
const RENAME_NOREPLACE = 1;
const RENAME_EXCHANGE = 2;

const OP = {
  START: 1,
  OPEN: 2,
  WRITE: 3,
  TRUNC: 4,
  FSYNC: 5,
  RENAME: 6,
  UNLINK: 7,
  RMDIR: 8,
  MKDIR: 9,
  LINK: 10,
  SYNCALL: 11,
  MMAP: 12,
  CHMOD: 13,
  UNSUPPORTED: 14,
  CUT: 15,
  DROPPED: 16,
  MARK: 17,
} as const;

/** A file's bytes, growable. */
class Bytes {
  private buf: Buffer;
  size: number;
  constructor(init: Buffer = Buffer.alloc(0)) {
    this.buf = Buffer.from(init);
    this.size = init.length;
  }
  private reserve(n: number): void {
    if (n <= this.buf.length) return;
    const next = Buffer.alloc(Math.max(n, this.buf.length * 2, 4096));
    this.buf.copy(next, 0, 0, this.size);
    this.buf = next;
  }
  write(off: number, data: Buffer): void {
    this.reserve(off + data.length);
    if (off > this.size) this.buf.fill(0, this.size, off);
    data.copy(this.buf, off);
    this.size = Math.max(this.size, off + data.length);
  }
  truncate(n: number): void {
    if (n > this.size) {
      this.reserve(n);
      this.buf.fill(0, this.size, n);
    }
    this.size = n;
  }
  clone(): Bytes {
    return new Bytes(this.view());
  }
  view(): Buffer {
    return this.buf.subarray(0, this.size);
  }
}

type Change = { readonly off: number; readonly data: Buffer } | { readonly trunc: number };

interface FileNode {
  readonly kind: 'file';
  readonly ino: bigint;
  durable: Bytes;
  /** writes and truncations since the last sync, in order */
  pending: Change[];
  mode: number;
  mmapped: boolean;
}

interface DirNode {
  readonly kind: 'dir';
  readonly ino: bigint;
  current: Map<string, Node>;
  durable: Map<string, Node>;
  mode: number;
}

type Node = FileNode | DirNode;

export interface Snapshot {
  readonly root: DirNode;
}

export interface Model {
  readonly root: DirNode;
  /** the trace ended with the shim's CUT record (not a crash of the process, nor a normal exit) */
  readonly cut: boolean;
  readonly records: number;
  readonly fsyncs: number;
  /** fsyncs answered but not recorded (POWERCUT_DROP_FSYNC: the mutation check) */
  readonly dropped: number;
}

/** Record `dir` as it is now, all of it durable. */
export function scan(dir: string): Snapshot {
  const walk = (p: string): DirNode => {
    const st = fs.statSync(p, { bigint: true });
    const d: DirNode = { kind: 'dir', ino: st.ino, current: new Map(), durable: new Map(), mode: Number(st.mode & 0o7777n) };
    for (const name of fs.readdirSync(p)) {
      const q = path.join(p, name);
      const s = fs.lstatSync(q, { bigint: true });
      let n: Node;
      if (s.isDirectory()) n = walk(q);
      else if (s.isFile()) n = { kind: 'file', ino: s.ino, durable: new Bytes(fs.readFileSync(q)), pending: [], mode: Number(s.mode & 0o7777n), mmapped: false };
      else throw new Error(`powercut: ${q} is neither a file nor a directory`);
      d.current.set(name, n);
      d.durable.set(name, n);
    }
    return d;
  };
  return { root: walk(dir) };
}

class Reader {
  off = 0;
  constructor(private readonly b: Buffer) {}
  u8(): number {
    return this.b.readUInt8(this.off++);
  }
  u32(): number {
    const v = this.b.readUInt32LE(this.off);
    this.off += 4;
    return v;
  }
  u64(): bigint {
    const v = this.b.readBigUInt64LE(this.off);
    this.off += 8;
    return v;
  }
  bytes(): Buffer {
    const n = this.u32();
    const v = this.b.subarray(this.off, this.off + n);
    this.off += n;
    return v;
  }
  str(): string {
    return this.bytes().toString('utf8');
  }
}

function flush(f: FileNode): void {
  if (f.pending.length === 0) return;
  for (const c of f.pending) {
    if ('trunc' in c) f.durable.truncate(c.trunc);
    else f.durable.write(c.off, c.data);
  }
  f.pending = [];
}

function currentBytes(f: FileNode): Buffer {
  if (f.pending.length === 0) return f.durable.view();
  const b = f.durable.clone();
  for (const c of f.pending) {
    if ('trunc' in c) b.truncate(c.trunc);
    else b.write(c.off, c.data);
  }
  return b.view();
}

/**
 * A point of the trace where what a cut would leave changed (a sync) or what the process had told
 * the world did (a mark: its output): a cut there is one more crash state to check.
 */
export type Step = { readonly kind: 'sync' } | { readonly kind: 'mark'; readonly data: Buffer };

/**
 * Apply a trace to a snapshot (the snapshot is consumed). Throws if the trace contradicts the
 * model. `onStep` sees the model after every sync and every mark (durableFile reads it).
 */
export function replay(snap: Snapshot, trace: Buffer, onStep?: (step: Step, m: Model) => void): Model {
  const root = snap.root;
  let rootPath: string | undefined;
  const byIno = new Map<bigint, Node>();
  const all = new Set<Node>();
  const index = (d: DirNode): void => {
    byIno.set(d.ino, d);
    all.add(d);
    for (const n of d.current.values()) {
      if (n.kind === 'dir') index(n);
      else {
        byIno.set(n.ino, n);
        all.add(n);
      }
    }
  };
  index(root);

  const rel = (abs: string): string[] => {
    if (rootPath === undefined) throw new Error('powercut: trace without START');
    if (abs !== rootPath && !abs.startsWith(rootPath + '/')) throw new Error(`powercut: ${abs} is outside the root ${rootPath}`);
    return abs.slice(rootPath.length).split('/').filter((s) => s !== '');
  };
  const lookup = (parts: readonly string[], what: string): Node | undefined => {
    let n: Node = root;
    for (const p of parts) {
      if (n.kind !== 'dir') throw new Error(`powercut: ${what}: ${p}'s parent is not a directory`);
      const next: Node | undefined = n.current.get(p);
      if (next === undefined) return undefined;
      n = next;
    }
    return n;
  };
  const parentOf = (abs: string, what: string): { dir: DirNode; name: string } => {
    const parts = rel(abs);
    const name = parts.pop();
    if (name === undefined) throw new Error(`powercut: ${what} on the root itself`);
    const dir = lookup(parts, what);
    if (dir === undefined || dir.kind !== 'dir') throw new Error(`powercut: ${what} ${abs}: the parent directory is not in the model`);
    return { dir, name };
  };
  const node = (ino: bigint, what: string): Node => {
    const n = byIno.get(ino);
    if (n === undefined) throw new Error(`powercut: ${what} on inode ${ino}, which the model never saw opened`);
    return n;
  };

  const r = new Reader(trace);
  let records = 0;
  let fsyncs = 0;
  let dropped = 0;
  let cut = false;
  const view = (): Model => ({ root, cut, records, fsyncs, dropped });
  while (r.off + 4 <= trace.length) {
    const len = trace.readUInt32LE(r.off);
    if (r.off + 4 + len > trace.length) break; // a record cut short: cannot happen with the shim's lock, tolerated
    const end = r.off + 4 + len;
    r.off += 4;
    const op = r.u8();
    records++;
    if (cut) throw new Error('powercut: records after the CUT record');
    switch (op) {
      case OP.START: {
        r.u32();
        const p = r.str();
        if (rootPath !== undefined && rootPath !== p) throw new Error(`powercut: the trace has two roots, ${rootPath} and ${p}`);
        rootPath = p;
        break;
      }
      case OP.OPEN: {
        const ino = r.u64();
        const flags = r.u32();
        const mode = r.u32();
        const isDir = r.u8() === 1;
        const abs = r.str();
        const parts = rel(abs);
        let n = lookup(parts, 'open');
        if (n === undefined) {
          if ((flags & O_CREAT) === 0 || isDir) throw new Error(`powercut: open ${abs}: not in the model and not created`);
          const { dir, name } = parentOf(abs, 'create');
          n = { kind: 'file', ino, durable: new Bytes(), pending: [], mode: mode & ~0o022, mmapped: false };
          dir.current.set(name, n);
          all.add(n);
        } else if (n.ino !== ino) {
          throw new Error(`powercut: open ${abs}: the model has inode ${n.ino} there, the process opened ${ino}`);
        } else if (n.kind === 'file' && (flags & O_TRUNC) !== 0 && (flags & O_ACCMODE) !== 0) {
          n.pending.push({ trunc: 0 });
        }
        if ((n.kind === 'dir') !== isDir) throw new Error(`powercut: open ${abs}: file/directory mismatch`);
        byIno.set(ino, n);
        break;
      }
      case OP.WRITE: {
        const n = node(r.u64(), 'write');
        const off = Number(r.u64());
        const data = Buffer.from(r.bytes());
        if (n.kind !== 'file') throw new Error('powercut: write to a directory');
        n.pending.push({ off, data });
        break;
      }
      case OP.TRUNC: {
        const n = node(r.u64(), 'truncate');
        const size = Number(r.u64());
        if (n.kind !== 'file') throw new Error('powercut: truncate of a directory');
        n.pending.push({ trunc: size });
        break;
      }
      case OP.FSYNC: {
        const n = node(r.u64(), 'fsync');
        r.u8();
        fsyncs++;
        if (n.kind === 'file') flush(n);
        else n.durable = new Map(n.current);
        onStep?.({ kind: 'sync' }, view());
        break;
      }
      case OP.MARK: {
        const data = Buffer.from(r.bytes());
        onStep?.({ kind: 'mark', data }, view());
        break;
      }
      case OP.DROPPED: {
        r.u64();
        r.u8();
        dropped++;
        break;
      }
      case OP.RENAME: {
        const flags = r.u32();
        const from = r.str();
        const to = r.str();
        const a = parentOf(from, 'rename');
        const b = parentOf(to, 'rename');
        const moving = a.dir.current.get(a.name);
        if (moving === undefined) throw new Error(`powercut: rename ${from}: not in the model`);
        const over = b.dir.current.get(b.name);
        if ((flags & RENAME_EXCHANGE) !== 0) {
          if (over === undefined) throw new Error(`powercut: exchange ${to}: not in the model`);
          a.dir.current.set(a.name, over);
          b.dir.current.set(b.name, moving);
        } else {
          if ((flags & RENAME_NOREPLACE) !== 0 && over !== undefined) throw new Error(`powercut: rename over ${to} with NOREPLACE succeeded`);
          a.dir.current.delete(a.name);
          b.dir.current.set(b.name, moving);
        }
        break;
      }
      case OP.UNLINK:
      case OP.RMDIR: {
        const abs = r.str();
        const { dir, name } = parentOf(abs, 'unlink');
        const n = dir.current.get(name);
        if (n === undefined) throw new Error(`powercut: unlink ${abs}: not in the model`);
        if ((n.kind === 'dir') !== (op === OP.RMDIR)) throw new Error(`powercut: unlink ${abs}: file/directory mismatch`);
        dir.current.delete(name);
        break;
      }
      case OP.MKDIR: {
        const ino = r.u64();
        const mode = r.u32();
        const abs = r.str();
        const { dir, name } = parentOf(abs, 'mkdir');
        const d: DirNode = { kind: 'dir', ino, current: new Map(), durable: new Map(), mode: mode & ~0o022 };
        dir.current.set(name, d);
        byIno.set(ino, d);
        all.add(d);
        break;
      }
      case OP.LINK: {
        const from = r.str();
        const to = r.str();
        const n = lookup(rel(from), 'link');
        if (n === undefined) throw new Error(`powercut: link ${from}: not in the model`);
        const { dir, name } = parentOf(to, 'link');
        dir.current.set(name, n);
        break;
      }
      case OP.SYNCALL:
        fsyncs++;
        for (const n of all) {
          if (n.kind === 'file') flush(n);
          else n.durable = new Map(n.current);
        }
        onStep?.({ kind: 'sync' }, view());
        break;
      case OP.MMAP:
        {
          const n = node(r.u64(), 'mmap');
          if (n.kind === 'file') n.mmapped = true;
        }
        break;
      case OP.CHMOD: {
        const n = node(r.u64(), 'chmod');
        n.mode = r.u32() & 0o7777;
        break;
      }
      case OP.UNSUPPORTED:
        throw new Error(`powercut: the process did something the model does not cover: ${r.str()}`);
      case OP.CUT:
        r.u64();
        cut = true;
        break;
      default:
        throw new Error(`powercut: unknown trace record ${op}`);
    }
    if (r.off !== end) throw new Error(`powercut: trace record ${op} is ${len} bytes, read ${r.off - (end - len)}`);
    r.off = end;
  }
  return view();
}

/** The bytes a cut now would leave at `rel` (a path inside the root), or undefined if there is no such durable file. */
export function durableFile(m: Model, rel: string): Buffer | undefined {
  let n: Node | undefined = m.root;
  for (const p of rel.split('/').filter((s) => s !== '')) {
    if (n?.kind !== 'dir') return undefined;
    n = n.durable.get(p);
  }
  return n?.kind === 'file' && !n.mmapped ? n.durable.view() : undefined;
}

export interface Materialised {
  /** files written (the durable state) */
  readonly files: number;
  /** files left out because their content is not traced (SQLite's -shm) */
  readonly skipped: readonly string[];
  /** what the cut threw away: files whose durable bytes differ from what the process last wrote, and directory entries not yet durable */
  readonly lostFiles: readonly string[];
  readonly lostEntries: readonly string[];
}

/** Write the durable state of `m` into `out` (which must not exist). */
export function materialise(m: Model, out: string): Materialised {
  let files = 0;
  const skipped: string[] = [];
  const lostFiles: string[] = [];
  const lostEntries: string[] = [];
  const walk = (d: DirNode, p: string, rp: string): void => {
    fs.mkdirSync(p, { mode: d.mode & 0o777 });
    for (const [name, n] of d.current) {
      if (d.durable.get(name) !== n) lostEntries.push(`+${rp}${name}`);
    }
    for (const name of d.durable.keys()) if (!d.current.has(name)) lostEntries.push(`-${rp}${name}`);
    for (const [name, n] of d.durable) {
      const q = path.join(p, name);
      if (n.kind === 'dir') walk(n, q, `${rp}${name}/`);
      else if (n.mmapped) {
        if (!name.endsWith('-shm')) throw new Error(`powercut: ${rp}${name} is mapped shared and writable: its content is not traced`);
        skipped.push(`${rp}${name}`);
      } else {
        fs.writeFileSync(q, n.durable.view(), { mode: n.mode & 0o777 });
        files++;
        if (n.pending.length > 0 && !currentBytes(n).equals(n.durable.view())) lostFiles.push(`${rp}${name}`);
      }
    }
  };
  walk(m.root, out, '');
  return { files, skipped, lostFiles, lostEntries };
}

/** Differences between the model's live view and the real directory (empty: the shim saw everything). */
export function compareLive(m: Model, live: string): string[] {
  const diffs: string[] = [];
  const walk = (d: DirNode, p: string, rp: string): void => {
    const real = new Set(fs.readdirSync(p));
    for (const [name, n] of d.current) {
      const q = path.join(p, name);
      if (!real.delete(name)) {
        diffs.push(`${rp}${name}: in the model, not on disk`);
        continue;
      }
      const st = fs.lstatSync(q);
      if (n.kind === 'dir') {
        if (!st.isDirectory()) diffs.push(`${rp}${name}: a directory in the model`);
        else walk(n, q, `${rp}${name}/`);
      } else if (!st.isFile()) diffs.push(`${rp}${name}: a file in the model`);
      else if (!n.mmapped && !fs.readFileSync(q).equals(currentBytes(n))) diffs.push(`${rp}${name}: content differs (model ${currentBytes(n).length} bytes, disk ${st.size})`);
    }
    for (const name of real) diffs.push(`${rp}${name}: on disk, not in the model`);
  };
  walk(m.root, live, '');
  return diffs;
}
