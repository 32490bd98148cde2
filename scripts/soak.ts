/**
 * Soak: SOAK_AGENTS (default 1000) in-process device agents, in SOAK_WORKERS (default 4) worker
 * processes, on ONE real portal process (SQLite, embedded MQTT push; polling every 30 s as the
 * fallback), claimed by SOAK_OWNERS (default 10) owners who publish steadily (one publication
 * every SOAK_PUBLISH_MS, default 1000, round-robin over the owners, each to all of its devices)
 * for SOAK_MINUTES (default 10). Checked:
 *   - no lost, duplicated or reordered application: each agent's applied seqs, per owner, are
 *     exactly 1, 2, ..., N (every 'applied' event must be the previous seq + 1; at the end N is
 *     the owner's last publication);
 *   - no refusal, no internal error;
 *   - memory: RSS of the portal and of each worker sampled every 30 s (first / last / max).
 *
 *   npx tsc -p . && node dist/scripts/soak.js [--out FILE.json]
 *
 * The portal runs with --rate-limit 0: a thousand devices behind one loopback address would
 * otherwise be one client to the per-address limit.
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeJsonAtomic } from '../runtime/files.js';

const AGENTS = Number(process.env.SOAK_AGENTS ?? 1000);
const WORKERS = Math.max(1, Number(process.env.SOAK_WORKERS ?? 4));
const OWNERS = Math.max(1, Number(process.env.SOAK_OWNERS ?? 10));
const MINUTES = Number(process.env.SOAK_MINUTES ?? 10);
const PUBLISH_MS = Number(process.env.SOAK_PUBLISH_MS ?? 1000);
const SAMPLE_MS = Number(process.env.SOAK_SAMPLE_MS ?? 30_000);
const POLL_MS = Number(process.env.SOAK_POLL_MS ?? 30_000);

const here = path.dirname(fileURLToPath(import.meta.url));
const dist = path.resolve(here, '..');
const REPO = path.resolve(dist, '..');

type ToWorker = { type: 'start'; portal: string; count: number; base: string; index: number } | { type: 'sample' } | { type: 'report' } | { type: 'stop' };
interface WorkerReport {
  readonly agents: number;
  readonly applied: number;
  /** per account: how many agents have reached each last seq */
  readonly last: Record<string, Record<number, number>>;
  readonly lost: number;
  readonly duplicated: number;
  readonly refused: number;
  readonly events: Record<string, number>;
  readonly examples: string[];
  readonly rss: number;
}
type FromWorker =
  | { type: 'online'; labels: string[]; ms: number }
  | { type: 'claimed' }
  | { type: 'sample'; rss: number; heap: number }
  | { type: 'report'; report: WorkerReport }
  | { type: 'stopped' };

// ---------------------------------------------------------------- worker: a share of the fleet

async function worker(): Promise<void> {
  const { Agent } = await import('../agent/agent.js');
  const { newDeviceIdentity } = await import('../mesh/device.js');
  const { DEFAULT_SETTINGS, readAgentSettings, readDeviceDirectory, readSchemas, writeDeviceDirectory } = await import('../runtime/device-files.js');
  const send = (m: FromWorker): void => void process.send?.(m);
  const agents: InstanceType<typeof Agent>[] = [];
  const lastSeq: Map<string, number>[] = [];
  let applied = 0;
  let lost = 0;
  let duplicated = 0;
  let refused = 0;
  const events: Record<string, number> = {};
  const examples: string[] = [];

  const report = (): WorkerReport => {
    const last: Record<string, Record<number, number>> = {};
    for (const m of lastSeq) for (const [acct, s] of m) (last[acct] ??= {})[s] = ((last[acct] ??= {})[s] ?? 0) + 1;
    return { agents: agents.length, applied, last, lost, duplicated, refused, events, examples, rss: process.memoryUsage().rss };
  };

  process.on('message', (m: ToWorker) => {
    void (async () => {
      switch (m.type) {
        case 'start': {
          const t0 = Date.now();
          const schema = JSON.parse(fs.readFileSync(path.join(REPO, 'examples', 'thermostat.schema.json'), 'utf8')) as unknown;
          const labels: string[] = [];
          let claimed = 0;
          const connected = new Set<number>();
          for (let i = 0; i < m.count; i++) {
            const dir = path.join(m.base, `w${m.index}-${i}`);
            const identity = newDeviceIdentity({ model: 'thermostat', manufacturer: 'acme', serial: `soak-${m.index}-${i}`, portalAuthority: new URL(m.portal).host });
            writeDeviceDirectory(dir, identity, { ...DEFAULT_SETTINGS, portal: m.portal, pollIntervalMs: POLL_MS, push: true }, { thermostat: schema });
            labels.push(identity.labelUri);
            const seqs = new Map<string, number>();
            lastSeq.push(seqs);
            const agent = new Agent({
              dir,
              device: readDeviceDirectory(dir),
              settings: readAgentSettings(dir),
              schemas: readSchemas(dir),
              log: (event, data) => {
                if (event === 'push-connected') connected.add(i);
                else if (event === 'push-disconnected') connected.delete(i);
                if (event !== 'accepted' && event !== 'connection' && event !== 'claimed' && event !== 'registered') {
                  const k = typeof data.code === 'string' ? `${event}:${data.code}` : event;
                  events[k] = (events[k] ?? 0) + 1;
                }
                if (event === 'internal-error' && examples.length < 10) examples.push(`agent ${i}: internal error ${String(data.message)}`);
              },
            });
            agent.on('claimed', () => {
              if (++claimed === m.count) send({ type: 'claimed' });
            });
            agent.on('applied', (d: { account: string; seq: number }) => {
              applied++;
              const prev = seqs.get(d.account) ?? 0;
              if (d.seq === prev + 1) seqs.set(d.account, d.seq);
              else if (d.seq <= prev) {
                duplicated++;
                if (examples.length < 10) examples.push(`agent ${i}: applied #${d.seq} of ${d.account} after #${prev}`);
              } else {
                lost += d.seq - prev - 1;
                seqs.set(d.account, d.seq);
                if (examples.length < 10) examples.push(`agent ${i}: applied #${d.seq} of ${d.account} right after #${prev}`);
              }
            });
            agent.on('refused', (d: { code: string; n: number }) => {
              refused++;
              if (examples.length < 10) examples.push(`agent ${i}: refused item ${d.n}: ${d.code}`);
            });
            agents.push(agent);
          }
          for (let i = 0; i < agents.length; i += 25) await Promise.all(agents.slice(i, i + 25).map((a) => a.start()));
          const end = Date.now() + 180_000;
          while (connected.size < m.count && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
          send({ type: 'online', labels, ms: Date.now() - t0 });
          break;
        }
        case 'sample': {
          const mu = process.memoryUsage();
          send({ type: 'sample', rss: mu.rss, heap: mu.heapUsed });
          break;
        }
        case 'report':
          send({ type: 'report', report: report() });
          break;
        case 'stop':
          for (let i = 0; i < agents.length; i += 50) await Promise.all(agents.slice(i, i + 50).map((a) => a.stop()));
          send({ type: 'stopped' });
          process.exit(0);
      }
    })().catch((e: unknown) => {
      process.stderr.write(`soak worker: ${String((e as Error).stack ?? e)}\n`);
      process.exit(1);
    });
  });
}

// ---------------------------------------------------------------- orchestrator

function rssOf(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m === null ? 0 : Number(m[1]) * 1024;
  } catch {
    return 0;
  }
}

const MiB = (b: number): string => `${(b / 1024 / 1024).toFixed(0)} MiB`;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface Series {
  readonly name: string;
  readonly samples: number[];
}

function stats(s: Series): { first: number; last: number; max: number; min: number } {
  return { first: s.samples[0] ?? 0, last: s.samples[s.samples.length - 1] ?? 0, max: Math.max(...s.samples), min: Math.min(...s.samples) };
}

async function startPortal(dataDir: string): Promise<{ proc: ChildProcess; http: string; mqtt: string; logs: () => string }> {
  const proc = spawn(process.execPath, [path.join(dist, 'portal', 'cli.js'), '--data', dataDir, '--http-port', '0', '--mqtt-port', '0', '--rate-limit', '0', '--log-level', 'warn'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  proc.stderr?.setEncoding('utf8').on('data', (d: string) => {
    err = (err + d).slice(-200_000);
  });
  const ready = await new Promise<{ http: string; mqtt: string }>((resolve, reject) => {
    let out = '';
    proc.stdout?.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      const m = /^mesh-portal ready (\{.*\})$/m.exec(out);
      if (m?.[1] !== undefined) resolve(JSON.parse(m[1]) as { http: string; mqtt: string });
    });
    proc.once('exit', (c) => reject(new Error(`the portal exited ${String(c)}: ${err}`)));
  });
  return { proc, ...ready, logs: () => err };
}

async function main(): Promise<void> {
  const outIdx = process.argv.indexOf('--out');
  const out = outIdx > 0 ? process.argv[outIdx + 1] : undefined;
  const { TestOwner } = await import('../harness/owner.js');
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'mesh-soak-'));
  const log = (s: string): void => void process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${s}\n`);
  log(`soak: ${AGENTS} agents in ${WORKERS} workers, ${OWNERS} owners, a publication every ${PUBLISH_MS} ms for ${MINUTES} min; ${os.cpus().length} cores (${os.cpus()[0]?.model ?? '?'}), ${MiB(os.totalmem())} RAM, node ${process.version}`);
  const portal = await startPortal(path.join(base, 'portal'));
  log(`portal ${portal.http} (pid ${portal.proc.pid ?? '?'}), push ${portal.mqtt}`);

  const workers: ChildProcess[] = [];
  const inbox = new Map<ChildProcess, FromWorker[]>();
  const waitFor = async <T extends FromWorker['type']>(w: ChildProcess, type: T, timeoutMs: number): Promise<Extract<FromWorker, { type: T }>> => {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const box = inbox.get(w) ?? [];
      const i = box.findIndex((m) => m.type === type);
      if (i >= 0) return box.splice(i, 1)[0] as Extract<FromWorker, { type: T }>;
      if (w.exitCode !== null) throw new Error(`a worker exited (${w.exitCode})`);
      if (Date.now() > end) throw new Error(`a worker did not send ${type} within ${timeoutMs} ms`);
      await sleep(50);
    }
  };
  const t0 = Date.now();
  for (let i = 0; i < WORKERS; i++) {
    const count = Math.floor(AGENTS / WORKERS) + (i < AGENTS % WORKERS ? 1 : 0);
    const w = fork(fileURLToPath(import.meta.url), ['--worker'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    inbox.set(w, []);
    w.on('message', (m: FromWorker) => inbox.get(w)?.push(m));
    workers.push(w);
    w.send({ type: 'start', portal: portal.http, count, base, index: i } satisfies ToWorker);
  }
  const labels: string[] = [];
  for (const w of workers) labels.push(...(await waitFor(w, 'online', 600_000)).labels);
  log(`${labels.length} agents registered and connected by MQTT in ${((Date.now() - t0) / 1000).toFixed(0)} s`);

  // owners claim their share of the fleet
  const owners = await Promise.all(Array.from({ length: OWNERS }, (_, i) => TestOwner.create(portal.http, `soak${i}`)));
  const shares = owners.map((_, k) => labels.filter((_, i) => i % OWNERS === k));
  const t1 = Date.now();
  await Promise.all(owners.map(async (o, k) => {
    for (const l of shares[k] ?? []) await o.claim(l);
  }));
  for (const w of workers) await waitFor(w, 'claimed', 300_000);
  log(`all ${labels.length} agents claimed in ${((Date.now() - t1) / 1000).toFixed(0)} s`);

  // memory sampling
  const series: Series[] = [{ name: 'portal', samples: [] }, ...workers.map((_, i) => ({ name: `worker ${i}`, samples: [] as number[] }))];
  const load: number[] = [];
  const sample = async (): Promise<void> => {
    load.push(Math.round((os.loadavg()[0] ?? 0) * 100) / 100);
    series[0]?.samples.push(rssOf(portal.proc.pid ?? 0));
    for (const [i, w] of workers.entries()) series[i + 1]?.samples.push(rssOf(w.pid ?? 0));
  };
  await sample();
  const sampler = setInterval(() => void sample(), SAMPLE_MS);

  // steady publishing
  const published = new Map<string, number>();
  let publications = 0;
  let publishErrors = 0;
  const latencies: number[] = [];
  const stopAt = Date.now() + MINUTES * 60_000;
  const t2 = Date.now();
  for (let k = 0; Date.now() < stopAt; k++) {
    const o = owners[k % OWNERS] as InstanceType<typeof TestOwner>;
    const next = (published.get(o.account) ?? 0) + 1;
    const started = Date.now();
    try {
      await o.publish('thermostat', { setpoint: 5 + (next % 25), schedule: `soak ${next}` }, { seq: next });
      published.set(o.account, next);
      publications++;
      latencies.push(Date.now() - started);
    } catch (e) {
      publishErrors++;
      log(`publish failed: ${String(e)}`);
    }
    if (k % Math.max(1, Math.round(60_000 / PUBLISH_MS)) === 0) {
      const reports = await Promise.all(workers.map(async (w) => (w.send({ type: 'report' } satisfies ToWorker), (await waitFor(w, 'report', 60_000)).report)));
      const applied = reports.reduce((s, r) => s + r.applied, 0);
      log(`${((Date.now() - t2) / 60_000).toFixed(1)} min: ${publications} publications, ${applied} applications, lost ${reports.reduce((s, r) => s + r.lost, 0)}, duplicated ${reports.reduce((s, r) => s + r.duplicated, 0)}, refused ${reports.reduce((s, r) => s + r.refused, 0)}; portal RSS ${MiB(rssOf(portal.proc.pid ?? 0))}, workers ${workers.map((w) => MiB(rssOf(w.pid ?? 0))).join(' / ')}`);
    }
    const wait = started + PUBLISH_MS - Date.now();
    if (wait > 0) await sleep(wait);
  }
  const publishSeconds = (Date.now() - t2) / 1000;
  log(`publishing done: ${publications} publications in ${publishSeconds.toFixed(0)} s; waiting for every agent to reach each owner's last`);

  // convergence: every agent at its owner's last seq
  const want = Object.fromEntries(published);
  const perOwner = Object.fromEntries(owners.map((o, k) => [o.account, shares[k]?.length ?? 0]));
  let reports: WorkerReport[] = [];
  const t3 = Date.now();
  for (;;) {
    reports = await Promise.all(workers.map(async (w) => (w.send({ type: 'report' } satisfies ToWorker), (await waitFor(w, 'report', 60_000)).report)));
    const atLast = Object.entries(want).reduce((s, [acct, n]) => s + reports.reduce((x, r) => x + (r.last[acct]?.[n] ?? 0), 0), 0);
    if (atLast === AGENTS || Date.now() - t3 > 180_000) {
      log(`${atLast}/${AGENTS} agents at their owner's last publication, ${((Date.now() - t3) / 1000).toFixed(1)} s after the last one`);
      break;
    }
    await sleep(1000);
  }
  clearInterval(sampler);
  await sample();

  for (const w of workers) w.send({ type: 'stop' } satisfies ToWorker);
  for (const w of workers) await waitFor(w, 'stopped', 120_000).catch(() => undefined);
  for (const o of owners) o.close();
  portal.proc.kill('SIGTERM');
  await new Promise((r) => portal.proc.once('exit', r));
  const portalErrors = (portal.logs().match(/"level":"error"/g) ?? []).length;
  fs.rmSync(base, { recursive: true, force: true });

  const applied = reports.reduce((s, r) => s + r.applied, 0);
  const expected = Object.entries(want).reduce((s, [acct, n]) => s + n * (perOwner[acct] ?? 0), 0);
  const lost = reports.reduce((s, r) => s + r.lost, 0);
  const duplicated = reports.reduce((s, r) => s + r.duplicated, 0);
  const refused = reports.reduce((s, r) => s + r.refused, 0);
  const atLast = Object.entries(want).reduce((s, [acct, n]) => s + reports.reduce((x, r) => x + (r.last[acct]?.[n] ?? 0), 0), 0);
  const events: Record<string, number> = {};
  for (const r of reports) for (const [k, v] of Object.entries(r.events)) events[k] = (events[k] ?? 0) + v;
  latencies.sort((a, b) => a - b);
  const pct = (p: number): number => latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))] ?? 0;
  const ok = lost === 0 && duplicated === 0 && refused === 0 && applied === expected && atLast === AGENTS && publishErrors === 0;
  const lines = [
    `soak ${ok ? 'PASSED' : 'FAILED'}: ${AGENTS} agents (${WORKERS} workers), ${OWNERS} owners, ${(publishSeconds / 60).toFixed(1)} min of publishing`,
    `  publications ${publications} (errors ${publishErrors}); publish latency p50 ${pct(50)} ms, p99 ${pct(99)} ms, max ${latencies[latencies.length - 1] ?? 0} ms`,
    `  applications ${applied} of ${expected} expected; lost ${lost}, duplicated/reordered ${duplicated}, refused ${refused}; agents at their owner's last: ${atLast}/${AGENTS}`,
    `  agent events: ${JSON.stringify(events)}; portal error log lines: ${portalErrors}`,
    `  RSS (first / last / max, sampled every ${SAMPLE_MS / 1000} s, ${series[0]?.samples.length ?? 0} samples):`,
    ...series.map((s) => {
      const x = stats(s);
      return `    ${s.name.padEnd(9)} ${MiB(x.first).padStart(8)} / ${MiB(x.last).padStart(8)} / ${MiB(x.max).padStart(8)}   [${s.samples.map((v) => Math.round(v / 1048576)).join(' ')}]`;
    }),
    `  1-min load average at each sample: [${load.join(' ')}] (other work on the machine shows here)`,
    ...reports.flatMap((r) => r.examples).slice(0, 10).map((e) => `  ! ${e}`),
  ];
  process.stdout.write(lines.join('\n') + '\n');
  if (out !== undefined) {
    writeJsonAtomic(out, { date: new Date().toISOString(), agents: AGENTS, workers: WORKERS, owners: OWNERS, minutes: publishSeconds / 60, publishMs: PUBLISH_MS, cores: os.cpus().length, cpu: os.cpus()[0]?.model, node: process.version, publications, publishErrors, applied, expected, lost, duplicated, refused, atLast, events, portalErrors, latencyMs: { p50: pct(50), p99: pct(99), max: latencies[latencies.length - 1] ?? 0 }, rss: series.map((s) => ({ name: s.name, ...stats(s), samples: s.samples })), load, ok }, 0o644);
  }
  process.exitCode = ok ? 0 : 1;
}

if (process.argv.includes('--worker')) await worker();
else await main();
