/**
 * Fan-out: one portal PROCESS, `workers` child processes running `devices / workers` in-process
 * Agent instances each (every agent with its own MQTT connection), all claimed by one owner, who
 * then publishes ONE application profile to all of them. Timed from the publish call to the last
 * 'applied' event in any worker (a clock shared by the processes: performance.timeOrigin + now).
 *
 * The agents' device directories are on tmpfs (/dev/shm) by default: on a real fleet each device
 * writes to its own flash, while here 1,000 agents would queue their fsyncs on one disk and the
 * figure would measure that disk. `--agents-on-disk` puts them in the temp directory instead.
 */
import { fork, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { TestOwner } from '../harness/owner.js';
import { isMeshError } from '../mesh/errors.js';
import { startBenchPortal, track, DIST, fmt, log, tempDir, wallMs, type Line, type Options } from './util.js';

interface WorkerMsg {
  readonly type: string;
  readonly labels?: string[];
  readonly ms?: number;
  readonly first?: number;
  readonly last?: number;
  readonly message?: string;
  readonly problems?: Record<string, number>;
}

class Worker {
  readonly proc: ChildProcess;
  private readonly waiting = new Map<string, (m: WorkerMsg) => void>();
  private readonly seen = new Map<string, WorkerMsg>();
  failed: Error | undefined;

  constructor(readonly index: number) {
    // MESH_BENCH_WORKER_FLAGS adds node flags to the workers (e.g. "--cpu-prof --cpu-prof-dir=/tmp/p")
    const execArgv = (process.env.MESH_BENCH_WORKER_FLAGS ?? '').split(' ').filter((f) => f !== '');
    this.proc = track(fork(path.join(DIST, 'bench', 'fanout-worker.js'), [], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'], execArgv }));
    this.proc.on('message', (m: WorkerMsg) => {
      if (m.type === 'error') this.failed = new Error(`worker ${index}: ${m.message ?? '?'}`);
      this.seen.set(m.type, m);
      this.waiting.get(m.type)?.(m);
    });
    this.proc.on('exit', (code) => {
      if (code !== 0 && this.failed === undefined) this.failed = new Error(`worker ${index} exited ${String(code)}`);
    });
  }

  wait(type: string, timeoutMs: number): Promise<WorkerMsg> {
    const hit = this.seen.get(type);
    if (hit !== undefined) return Promise.resolve(hit);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(this.failed ?? new Error(`worker ${this.index}: no "${type}" within ${timeoutMs} ms`)), timeoutMs);
      const check = setInterval(() => {
        if (this.failed !== undefined) {
          clearInterval(check);
          clearTimeout(t);
          reject(this.failed);
        }
      }, 100);
      this.waiting.set(type, (m) => {
        clearInterval(check);
        clearTimeout(t);
        resolve(m);
      });
    });
  }

  send(m: Record<string, unknown>): void {
    this.proc.send(m);
  }
}

export async function fanoutRow(o: Options & { agentsOnDisk?: boolean; devices?: number }): Promise<Line[]> {
  // --quick: a quarter of the fleet (the target is for 1,000, so that line is reported, not judged)
  const devices = o.devices ?? (o.quick ? 200 : 1000);
  const workers = 4;
  const per = Math.ceil(devices / workers);
  const shm = !o.agentsOnDisk && fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir();
  const base = tempDir('fanout', shm);
  const portal = await startBenchPortal({ args: ['--max-long-polls', '100000'] });
  const ws: Worker[] = [];
  let owner: TestOwner | undefined;
  try {
    const t0 = wallMs();
    for (let i = 0; i < workers; i++) ws.push(new Worker(i));
    for (const w of ws) w.send({ type: 'start', portal: portal.http, count: per, base, index: w.index });
    const online = await Promise.all(ws.map((w) => w.wait('online', 180_000)));
    const labels = online.flatMap((m) => m.labels ?? []);
    log(`fanout: ${labels.length} agents registered and connected by MQTT in ${((wallMs() - t0) / 1000).toFixed(1)} s`);

    owner = await TestOwner.create(portal.http, 'fleet');
    const tc = wallMs();
    let next = 0;
    const claimer = async (): Promise<void> => {
      while (next < labels.length) {
        const l = labels[next++] as string;
        await (owner as TestOwner).claim(l);
      }
    };
    await Promise.all(Array.from({ length: 4 }, claimer));
    await Promise.all(ws.map((w) => w.wait('claimed', 120_000)));
    log(`fanout: ${labels.length} devices claimed by one owner in ${((wallMs() - tc) / 1000).toFixed(1)} s`);

    const tb = wallMs();
    const env = owner.applicationProfile('thermostat', { setpoint: 22, mode: 'eco' });
    const built = wallMs() - tb;
    const bytes = Buffer.byteLength(JSON.stringify(env));
    let start = wallMs();
    let blocked: string | undefined;
    let profiles = 1;
    try {
      await owner.client.publish(env);
    } catch (e) {
      if (!isMeshError(e) || e.code !== 'too-large') throw e;
      // The portal refuses the one profile (see docs/benchmarks.md): measure the nearest thing that
      // goes through, the same change as a few profiles of at most 60 KB, published back to back.
      blocked = e.message;
      const all = [...owner.devices.values()];
      profiles = Math.ceil(bytes / 60_000);
      const per = Math.ceil(all.length / profiles);
      const envs = Array.from({ length: profiles }, (_, k) => (owner as TestOwner).applicationProfile('thermostat', { setpoint: 22, mode: 'eco' }, { devices: all.slice(k * per, (k + 1) * per) }));
      log(`fanout: the portal refused one ${bytes}-byte profile (${e.message}); publishing ${profiles} profiles of ${per} devices instead`);
      start = wallMs();
      for (const x of envs) await owner.client.publish(x);
    }
    const accepted = wallMs() - start;
    const applied = await Promise.all(ws.map((w) => w.wait('applied', 120_000)));
    const last = Math.max(...applied.map((m) => m.last ?? 0));
    const first = Math.min(...applied.map((m) => m.first ?? Infinity));
    const ms = last - start;
    for (const w of ws) w.send({ type: 'stop' });
    const stopped = await Promise.all(ws.map((w) => w.wait('stopped', 60_000).catch(() => ({ type: 'stopped', problems: {} }) as WorkerMsg)));
    const problems: Record<string, number> = {};
    for (const s of stopped) for (const [k, v] of Object.entries(s.problems ?? {})) problems[k] = (problems[k] ?? 0) + v;
    return [
      {
        figure: `fan-out of one change to ${fmt.int(labels.length)} connected agents, all applied`,
        value: blocked === undefined ? fmt.ms(ms) : `${fmt.ms(ms)} (as ${profiles} profiles: one is refused)`,
        baseline: '-',
        target: '<= 3 s',
        pass: labels.length >= 1000 ? ms <= 3000 : null,
        data: {
          devices: labels.length,
          workers,
          ms,
          publishAcceptedMs: accepted,
          firstAppliedMs: first - start,
          profileBytes: bytes,
          profileBuildMs: built,
          agentDirs: shm === '/dev/shm' ? 'tmpfs' : 'disk',
          profiles,
          ...(blocked !== undefined ? { blocked } : {}),
          problems,
        },
      },
    ];
  } finally {
    for (const w of ws) if (w.proc.exitCode === null) w.proc.kill('SIGKILL');
    owner?.close();
    await portal.stop();
    fs.rmSync(base, { recursive: true, force: true });
  }
}
