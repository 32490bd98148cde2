/**
 * Small helpers shared by the benchmark rows: statistics, process memory, timing, temp dirs.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

/** dist/bench -> the repository root */
export const DIST = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const REPO = path.resolve(DIST, '..');
export const BUNDLED_AGENT = path.join(DIST, 'mesh-agent.mjs');
export const PG_URL = process.env.MESH_BENCH_PG ?? process.env.MESH_TEST_PG ?? 'postgres://root@127.0.0.1:5432/test';

/** Every process the bench starts; killed if the bench itself exits first (a failed row leaves none behind). */
const children = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});
function track(p: ChildProcess): ChildProcess {
  children.add(p);
  p.once('exit', () => children.delete(p));
  return p;
}

export interface Options {
  readonly quick: boolean;
}

/** One printed line of the table. */
export interface Line {
  readonly figure: string;
  /** measured value, formatted */
  readonly value: string;
  /** baseline measured in the same run, formatted ('-' when the target is absolute) */
  readonly baseline: string;
  readonly target: string;
  /** null: report only */
  readonly pass: boolean | null;
  /** numbers behind the line, for --json */
  readonly data: Record<string, unknown>;
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

/** Nearest-rank percentile (p in 0..100). */
export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const rank = Math.min(s.length, Math.max(1, Math.ceil((p / 100) * s.length)));
  return s[rank - 1] as number;
}

/** Milliseconds on a clock shared by every process of this machine (sub-millisecond). */
export function wallMs(): number {
  return performance.timeOrigin + performance.now();
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export function log(msg: string): void {
  process.stderr.write(`[bench] ${msg}\n`);
}

/** Resident set size of a process, MiB, from /proc/PID/status (VmRSS). */
export function rssMiB(pid: number): number {
  const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(s);
  if (m?.[1] === undefined) throw new Error(`no VmRSS for ${pid}`);
  return Number(m[1]) / 1024;
}

/** RssAnon / RssFile split, MiB (0 when the kernel does not report them). */
export function rssParts(pid: number): { anon: number; file: number } {
  const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const get = (k: string): number => Number(new RegExp(`^${k}:\\s+(\\d+) kB$`, 'm').exec(s)?.[1] ?? 0) / 1024;
  return { anon: get('RssAnon'), file: get('RssFile') };
}

export { track };

export function tempDir(prefix: string, base = os.tmpdir()): string {
  return fs.mkdtempSync(path.join(base, `mesh-bench-${prefix}-`));
}

/** Kill a child we started and wait for it to go. */
export async function stopChild(p: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return;
  const gone = new Promise<void>((r) => p.once('exit', () => r()));
  p.kill(signal);
  const t = setTimeout(() => p.kill('SIGKILL'), 10_000);
  await gone;
  clearTimeout(t);
}

/** Spawn `node args` and resolve when a stdout line matches; returns the child and the match time. */
export function spawnUntil(args: readonly string[], match: RegExp, timeoutMs = 20_000, env?: NodeJS.ProcessEnv): Promise<{ proc: ChildProcess; line: string; ms: number; started: number }> {
  const started = performance.now();
  const proc = track(spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: env ?? process.env }));
  return new Promise((resolve, reject) => {
    let buf = '';
    let err = '';
    const t = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`no line matching ${match} in ${timeoutMs} ms\n${buf}\n${err.slice(-2000)}`));
    }, timeoutMs);
    proc.stderr?.setEncoding('utf8');
    proc.stderr?.on('data', (d: string) => {
      err = (err + d).slice(-20_000);
    });
    proc.stdout?.setEncoding('utf8');
    proc.stdout?.on('data', (d: string) => {
      buf += d;
      const m = match.exec(buf);
      if (m !== null) {
        const ms = performance.now() - started;
        clearTimeout(t);
        resolve({ proc, line: m[0], ms, started });
      }
    });
    proc.once('exit', (code) => {
      clearTimeout(t);
      reject(new Error(`exited ${String(code)} before a line matching ${match}\n${buf}\n${err.slice(-2000)}`));
    });
  });
}

/** Time from spawn to exit of `node args`. */
export function timeToExit(args: readonly string[]): Promise<number> {
  const started = performance.now();
  const proc = track(spawn(process.execPath, args, { stdio: 'ignore' }));
  return new Promise((resolve, reject) => {
    proc.once('error', reject);
    proc.once('exit', (code) => (code === 0 ? resolve(performance.now() - started) : reject(new Error(`exited ${String(code)}`))));
  });
}

export const fmt = {
  int: (n: number): string => Math.round(n).toLocaleString('en-US'),
  ms: (n: number): string => (n < 10 ? n.toFixed(2) : n < 100 ? n.toFixed(1) : Math.round(n).toLocaleString('en-US')) + ' ms',
  mib: (n: number): string => `${n.toFixed(1)} MiB`,
  x: (n: number): string => `${n.toFixed(2)}x`,
};

export interface BenchPortal {
  readonly http: string;
  readonly mqtt: string | null;
  readonly name: string;
  readonly portal: string;
  readonly dataDir: string;
  readonly proc: ChildProcess;
  logs(): string;
  stop(): Promise<void>;
}

/**
 * The portal as a process (node dist/portal/cli.js), free ports, rate limits off, a fresh data
 * directory. MESH_BENCH_PORTAL_FLAGS adds node flags (e.g. "--cpu-prof --cpu-prof-dir=/tmp/p").
 */
export async function startBenchPortal(opts: { args?: readonly string[] } = {}): Promise<BenchPortal> {
  const dataDir = tempDir('portal');
  const flags = (process.env.MESH_BENCH_PORTAL_FLAGS ?? '').split(' ').filter((s) => s !== '');
  const push = (opts.args ?? []).some((a) => a === '--no-mqtt' || a === '--mqtt-url') ? [] : ['--mqtt-port', '0'];
  const args = [...flags, path.join(DIST, 'portal', 'cli.js'), '--data', dataDir, '--http-port', '0', ...push, '--rate-limit', '0', ...(opts.args ?? [])];
  const env = { ...process.env };
  delete env.DATABASE_URL;
  let r: Awaited<ReturnType<typeof spawnUntil>>;
  try {
    r = await spawnUntil(args, /^mesh-portal ready (\{.*\})$/m, 30_000, env);
  } catch (e) {
    fs.rmSync(dataDir, { recursive: true, force: true });
    throw e;
  }
  const ready = JSON.parse(/\{.*\}/.exec(r.line)?.[0] ?? '{}') as { http: string; mqtt: string | null; name: string; portal: string };
  let err = '';
  r.proc.stderr?.on('data', (d: string) => {
    err = (err + d).slice(-200_000);
  });
  return {
    ...ready,
    dataDir,
    proc: r.proc,
    logs: () => err,
    stop: async () => {
      await stopChild(r.proc);
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** CPU time (user + system) a process has used so far, ms (10 ms resolution), its threads included. */
export function cpuMs(pid: number, mainThreadOnly = false): number {
  const f = fs.readFileSync(mainThreadOnly ? `/proc/${pid}/task/${pid}/stat` : `/proc/${pid}/stat`, 'utf8');
  const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
  // fields 14 and 15 (utime, stime) are at 11 and 12 after the state field
  return ((Number(rest[11]) + Number(rest[12])) * 1000) / 100;
}

/** [user, system] CPU ms of a process (or its main thread). */
export function cpuSplitMs(pid: number, mainThreadOnly = false): [number, number] {
  const f = fs.readFileSync(mainThreadOnly ? `/proc/${pid}/task/${pid}/stat` : `/proc/${pid}/stat`, 'utf8');
  const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return [Number(rest[11]) * 10, Number(rest[12]) * 10];
}
