/**
 * Running a process on a disk that loses power: build the shim (harness/powercut/shim.c, compiled
 * with the system's C compiler the first time it is needed, keyed by the source's hash), the
 * environment that loads it, the cut itself, and "the disk after the cut" (model.ts).
 *
 * One boot:
 *   const boot = prepareBoot(dir, work)        // scans dir: the state the process starts from
 *   spawn the process with boot.env
 *   await boot.cut()                            // the power goes off (the process is killed by the shim)
 *   const after = boot.afterCut()               // dir is replaced by what the disk holds after the cut
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { compareLive, materialise, replay, scan, type Materialised, type Model, type Step } from './model.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const SHIM_SOURCE = path.join(REPO, 'harness', 'powercut', 'shim.c');

let built: string | undefined;

/** The shim's shared object, compiled from source if this version of it was not built yet. */
export function shimLibrary(): string {
  if (built !== undefined) return built;
  const src = fs.readFileSync(SHIM_SOURCE);
  const hash = createHash('sha256').update(src).digest('hex').slice(0, 16);
  const dir = path.join(REPO, 'dist', 'powercut');
  const lib = path.join(dir, `libpowercut-${hash}.so`);
  if (!fs.existsSync(lib)) {
    fs.mkdirSync(dir, { recursive: true });
    const tmp = `${lib}.${process.pid}.tmp`;
    const cc = process.env.CC ?? 'cc';
    try {
      execFileSync(cc, ['-O2', '-Wall', '-shared', '-fPIC', '-o', tmp, SHIM_SOURCE, '-ldl', '-lpthread'], { stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (e) {
      const err = e as { stderr?: Buffer; message: string };
      throw new Error(`powercut: cannot compile ${SHIM_SOURCE} with ${cc} (a C compiler is needed: apt-get install gcc): ${err.stderr?.toString() ?? err.message}`);
    }
    fs.renameSync(tmp, lib);
  }
  built = lib;
  return lib;
}

export interface BootOptions {
  /** fnmatch patterns (matched against the whole path at open) whose fsyncs are ignored: the mutation check */
  readonly dropFsync?: readonly string[];
  /** cut before this many recorded operations instead of on demand */
  readonly atOp?: number;
  /** record the process's stdout in the trace, in order with its file operations */
  readonly markStdout?: boolean;
}

export interface AfterCut {
  readonly model: Model;
  readonly disk: Materialised;
}

export interface Boot {
  /** add to the process's environment */
  readonly env: Record<string, string>;
  /** cut the power now; resolves once the process is gone (pass its exit promise) */
  cut(exited: Promise<unknown>): Promise<void>;
  /**
   * Replace the directory with what the disk holds after the cut; checks first that the shim saw
   * every change. `onStep` sees every earlier point where a cut would have left something else.
   */
  afterCut(onStep?: (step: Step, m: Model) => void): AfterCut;
}

let boots = 0;

/** Get ready to run a process on `dir` (absolute, real path); `work` holds the trace and the control socket. */
export function prepareBoot(dir: string, work: string, opts: BootOptions = {}): Boot {
  const lib = shimLibrary();
  const snap = scan(dir);
  const n = ++boots;
  const trace = path.join(work, `trace-${process.pid}-${n}`);
  const ctl = path.join(work, `ctl-${process.pid}-${n}.sock`);
  fs.rmSync(trace, { force: true });
  const env: Record<string, string> = {
    LD_PRELOAD: lib,
    POWERCUT_ROOT: dir,
    POWERCUT_TRACE: trace,
    POWERCUT_CTL: ctl,
    // libuv may submit file operations through io_uring, which no C library call sees
    UV_USE_IO_URING: '0',
  };
  if (opts.dropFsync !== undefined && opts.dropFsync.length > 0) env.POWERCUT_DROP_FSYNC = opts.dropFsync.join(':');
  if (opts.atOp !== undefined) env.POWERCUT_AT_OP = String(opts.atOp);
  if (opts.markStdout === true) env.POWERCUT_MARK_FD = '1';
  return {
    env,
    async cut(exited) {
      await new Promise<void>((resolve) => {
        const s = net.connect(ctl, () => s.end('x'));
        // the process may be gone already (it cut itself at atOp, or crashed): then there is nothing to cut
        s.on('error', () => resolve());
        s.on('close', () => resolve());
      });
      await exited;
      fs.rmSync(ctl, { force: true });
    },
    afterCut(onStep) {
      const model = replay(snap, fs.readFileSync(trace), onStep);
      const diffs = compareLive(model, dir);
      if (diffs.length > 0) throw new Error(`powercut: the trace does not account for the live files (an operation the shim did not see?):\n  ${diffs.slice(0, 20).join('\n  ')}`);
      const next = `${dir}.after-cut`;
      fs.rmSync(next, { recursive: true, force: true });
      const disk = materialise(model, next);
      fs.rmSync(dir, { recursive: true, force: true });
      fs.renameSync(next, dir);
      fs.rmSync(trace, { force: true });
      return { model, disk };
    },
  };
}
