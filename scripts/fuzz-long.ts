/**
 * The long fuzz run: every parser of external input in the fuzz table (harness/fuzz-targets.ts, the
 * same table as the short run in test/fuzz-core.test.ts) with FUZZ_LONG_RUNS inputs each (default
 * 1,000,000), spread over worker processes, then (FUZZ_LONG_HTTP, default 100,000) generated and
 * mutated request bodies and MQTT garbage against a REAL portal process (the same generators as
 * test/hostile/fuzz-portal.test.ts).
 *
 *   npx tsc -p . && node dist/scripts/fuzz-long.js [--out FILE.json]
 *
 *   FUZZ_LONG_RUNS=1000000   inputs per parser
 *   FUZZ_LONG_WORKERS=2      worker processes (one per core)
 *   FUZZ_LONG_TARGETS=all    all | a comma-separated list of target names (substring match)
 *   FUZZ_LONG_HTTP=100000    request bodies thrown at a real portal (0: skip)
 *   FUZZ_SEED=N              base seed (each chunk of each target derives its own)
 *
 * Progress goes to stderr; the summary table (inputs, outcomes by code, failures, crashes, time)
 * to stdout, and with --out as JSON. Exit status 1 if any input broke the property.
 */
import { fork } from 'node:child_process';
import * as os from 'node:os';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { buildExamples } from '../harness/protocol-examples.js';
import { check, fuzzTargets, inputFor, nastyValues, type FuzzTarget } from '../harness/fuzz-targets.js';
import type { HttpSummary } from '../harness/portal-fuzz.js';
import { writeJsonAtomic } from '../runtime/files.js';

const RUNS = Number(process.env.FUZZ_LONG_RUNS ?? 1_000_000);
const WORKERS = Math.max(1, Number(process.env.FUZZ_LONG_WORKERS ?? 2));
const HTTP = Number(process.env.FUZZ_LONG_HTTP ?? 100_000);
const BASE_SEED = process.env.FUZZ_SEED === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(process.env.FUZZ_SEED);
const CHUNK = 50_000;

export interface TargetResult {
  readonly target: string;
  readonly inputs: number;
  readonly outcomes: Record<string, number>;
  readonly failures: number;
  readonly crashes: number;
  /** the first few failures, with the seed and path that replay them */
  readonly examples: string[];
  readonly ms: number;
}

type ToWorker = { type: 'run'; target: string } | { type: 'exit' };
type FromWorker = { type: 'ready' } | { type: 'progress'; target: string; done: number; total: number; ms: number } | { type: 'done'; result: TargetResult };

// ---------------------------------------------------------------- worker

function seedFor(target: string, chunk: number): number {
  let h = BASE_SEED >>> 0;
  for (const ch of `${target}#${chunk}`) h = (Math.imul(h ^ ch.charCodeAt(0), 16777619) >>> 0);
  return h | 0;
}

function runTarget(t: FuzzTarget, x: ReturnType<typeof buildExamples>, progress: (done: number, ms: number) => void): TargetResult {
  const started = performance.now();
  const outcomes: Record<string, number> = {};
  let failures = 0;
  let crashes = 0;
  const examples: string[] = [];
  const count = (o: { outcome: string; failure?: string }, where: string): boolean => {
    outcomes[o.outcome] = (outcomes[o.outcome] ?? 0) + 1;
    if (o.failure === undefined) return true;
    failures++;
    if (o.outcome === 'crash') crashes++;
    if (examples.length < 5) examples.push(`${o.failure.split('\n')[0] ?? ''} (${where})`);
    return false;
  };
  let inputs = 0;
  for (const [i, v] of nastyValues().entries()) {
    count(check(t, v), `nasty value ${i}`);
    inputs++;
  }
  const arb = inputFor(t, x);
  for (let c = 0; inputs < RUNS; c++) {
    const n = Math.min(CHUNK, RUNS - inputs);
    const seed = seedFor(t.name, c);
    let at = 0;
    // endOnFailure: no shrinking (it can take minutes); the failing input is recorded and the chunk goes on
    fc.check(
      fc.property(arb, (v) => {
        at++;
        return count(check(t, v), `FUZZ_SEED base ${BASE_SEED}, chunk ${c}, seed ${seed}, run ${at}`) || true;
      }),
      { numRuns: n, seed, endOnFailure: true },
    );
    inputs += n;
    progress(inputs, performance.now() - started);
  }
  return { target: t.name, inputs, outcomes, failures, crashes, examples, ms: Math.round(performance.now() - started) };
}

async function worker(): Promise<void> {
  const x = buildExamples();
  const targets = new Map(fuzzTargets(x).map((t) => [t.name, t]));
  const send = (m: FromWorker): void => void process.send?.(m);
  process.on('message', (m: ToWorker) => {
    if (m.type === 'exit') process.exit(0);
    const t = targets.get(m.target);
    if (t === undefined) throw new Error(`no target ${m.target}`);
    const result = runTarget(t, x, (done, ms) => send({ type: 'progress', target: t.name, done, total: RUNS, ms }));
    send({ type: 'done', result });
  });
  send({ type: 'ready' });
}

// ---------------------------------------------------------------- main

function fmt(n: number): string {
  return n.toLocaleString('en-US');
}

function topCodes(o: Record<string, number>, k = 4): string {
  return Object.entries(o)
    .sort((a, b) => b[1] - a[1])
    .slice(0, k)
    .map(([c, n]) => `${c} ${fmt(n)}`)
    .join(', ');
}

async function main(): Promise<void> {
  const outIdx = process.argv.indexOf('--out');
  const out = outIdx > 0 ? process.argv[outIdx + 1] : undefined;
  const all = fuzzTargets(buildExamples()).map((t) => t.name);
  const sel = process.env.FUZZ_LONG_TARGETS ?? 'all';
  const names = sel === 'all' ? all : all.filter((n) => sel.split(',').some((s) => n.includes(s.trim())));
  const started = Date.now();
  process.stderr.write(`fuzz-long: ${names.length} parsers x ${fmt(RUNS)} inputs on ${WORKERS} workers; base seed ${BASE_SEED}; ${os.cpus().length} cores, ${os.cpus()[0]?.model ?? '?'}\n`);

  // the expensive targets first, so the workers finish together
  const queue = [...names].sort((a, b) => Number(b.startsWith('parseDeviceKeys')) - Number(a.startsWith('parseDeviceKeys')));
  const results: TargetResult[] = [];
  const self = fileURLToPath(import.meta.url);
  await Promise.all(
    Array.from({ length: Math.min(WORKERS, queue.length) }, () =>
      new Promise<void>((resolve, reject) => {
        const w = fork(self, ['--worker'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: ['--max-old-space-size=2048'] });
        const next = (): void => {
          const target = queue.shift();
          if (target === undefined) {
            w.send({ type: 'exit' } satisfies ToWorker);
            return;
          }
          w.send({ type: 'run', target } satisfies ToWorker);
        };
        w.on('message', (m: FromWorker) => {
          if (m.type === 'ready') next();
          else if (m.type === 'progress') {
            const el = Math.round((Date.now() - started) / 1000);
            process.stderr.write(`  [${String(el).padStart(5)} s] ${m.target}: ${fmt(m.done)}/${fmt(m.total)} (${Math.round((m.done / m.ms) * 1000)}/s)\n`);
          } else {
            results.push(m.result);
            const r = m.result;
            process.stderr.write(`done ${r.target}: ${fmt(r.inputs)} inputs in ${(r.ms / 1000).toFixed(1)} s; failures ${r.failures}; ${topCodes(r.outcomes)}; ${results.length}/${names.length} parsers\n`);
            next();
          }
        });
        w.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`a fuzz worker exited with ${String(code)}`))));
      }),
    ),
  );

  let http: HttpSummary | undefined;
  if (HTTP > 0) {
    const { fuzzPortalLong } = await import('../harness/portal-fuzz.js');
    http = await fuzzPortalLong(HTTP, BASE_SEED, (line) => process.stderr.write(line));
  }

  const order = new Map(all.map((n, i) => [n, i]));
  results.sort((a, b) => (order.get(a.target) ?? 0) - (order.get(b.target) ?? 0));
  const totalInputs = results.reduce((s, r) => s + r.inputs, 0);
  const totalFail = results.reduce((s, r) => s + r.failures, 0);
  const totalCrash = results.reduce((s, r) => s + r.crashes, 0);
  const secs = Math.round((Date.now() - started) / 1000);
  const lines = [
    `| parser | inputs | ok | refusals by code (top 4) | failures | crashes | time |`,
    `|---|---:|---:|---|---:|---:|---:|`,
    ...results.map((r) => `| ${r.target} | ${fmt(r.inputs)} | ${fmt(r.outcomes.ok ?? 0)} | ${topCodes(Object.fromEntries(Object.entries(r.outcomes).filter(([k]) => k !== 'ok')))} | ${r.failures} | ${r.crashes} | ${(r.ms / 1000).toFixed(0)} s |`),
    `| **total (${results.length} parsers)** | **${fmt(totalInputs)}** | | | **${totalFail}** | **${totalCrash}** | **${secs} s wall** |`,
  ];
  if (http !== undefined) {
    lines.push('', `portal over HTTP: ${fmt(http.requests)} requests in ${http.seconds} s; status classes ${JSON.stringify(http.statuses)}; codes ${topCodes(http.codes, 8)}; 5xx ${http.serverErrors}; bad answers ${http.badAnswers}; MQTT junk connections ${fmt(http.mqttJunk)}; portal alive at the end: ${http.alive}`);
  }
  for (const r of results) for (const e of r.examples) lines.push(`  FAILURE ${e}`);
  for (const e of http?.examples ?? []) lines.push(`  FAILURE ${e}`);
  process.stdout.write(lines.join('\n') + '\n');
  if (out !== undefined) writeJsonAtomic(out, { date: new Date().toISOString(), seed: BASE_SEED, runs: RUNS, workers: WORKERS, cores: os.cpus().length, cpu: os.cpus()[0]?.model, node: process.version, seconds: secs, results, http }, 0o644);
  if (totalFail > 0 || (http !== undefined && (http.serverErrors > 0 || http.badAnswers > 0 || !http.alive))) process.exitCode = 1;
}


if (process.argv.includes('--worker')) await worker();
else await main();
