/**
 * The long run of the model-based test of the device's rules (issue 19): the same generator,
 * model and invariants as test/agent-model.test.ts (harness/core-model.ts), over many more random
 * sequences, spread over worker processes. Usually started by scripts/model-long.sh.
 *
 *   npx tsc -p . && node dist/scripts/model-long.js [--runs 1000000] [--workers 2] [--seed N] [--log model-long.log] [--chunk 10000]
 *
 * Each worker makes the owners' keys and the device once, installs the crypto memos
 * (harness/crypto-memo.ts) and runs chunks of `--chunk` sequences, each chunk with its own seed
 * (the base seed + the chunk's number), so any chunk can be replayed alone. After every chunk the
 * parent appends a line to the log: the time, sequences done, violations, steps, and the rate.
 * A violation is logged with its seed, the shrunk counterexample and the message, and the run goes
 * on with the other chunks. Exit status 1 if any sequence broke an invariant.
 *
 * Measured 2026-12-02 (2 vCPU shared with other work, load 4-13; docs/reliability.md section 8):
 * 1,000,000 sequences (14,956,547 steps) in 2,750 s on 2 workers, 364 seq/s, 0 violations.
 */
import { fork } from 'node:child_process';
import * as fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { ModelWorld, runSequence, sequenceArb } from '../harness/core-model.js';
import { installCryptoMemo } from '../harness/crypto-memo.js';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? (process.argv[i + 1] as string) : dflt;
}

const RUNS = Number(arg('runs', '1000000'));
const WORKERS = Math.max(1, Number(arg('workers', '2')));
const CHUNK = Math.max(1, Number(arg('chunk', '10000')));
const SEED = Number(arg('seed', String(Math.floor(Math.random() * 2 ** 31))));
const LOG = arg('log', 'model-long.log');

type ToWorker = { type: 'run'; chunk: number; runs: number; seed: number } | { type: 'exit' };
interface ChunkResult {
  readonly type: 'done';
  readonly chunk: number;
  readonly seed: number;
  readonly sequences: number;
  readonly steps: number;
  readonly ms: number;
  readonly violation?: { readonly message: string; readonly counterexample: string; readonly path: string };
}
type FromWorker = { type: 'ready' } | ChunkResult;

// ---------------------------------------------------------------- worker

function worker(): void {
  // a thrown MeshError is how the core refuses; the model run needs its code, not its stack
  Error.stackTraceLimit = 0;
  installCryptoMemo();
  const world = new ModelWorld();
  const send = (m: FromWorker): void => {
    process.send?.(m);
  };
  process.on('message', (m: ToWorker) => {
    if (m.type === 'exit') process.exit(0);
    const started = performance.now();
    let steps = 0;
    const r = fc.check(
      fc.property(sequenceArb(), (cmds) => {
        steps += runSequence(world, cmds);
      }),
      { numRuns: m.runs, seed: m.seed },
    );
    const ms = performance.now() - started;
    if (r.failed) {
      send({
        type: 'done',
        chunk: m.chunk,
        seed: m.seed,
        sequences: r.numRuns,
        steps,
        ms,
        violation: { message: (r.errorInstance as Error | undefined)?.message ?? String(r.errorInstance), counterexample: JSON.stringify(r.counterexample?.[0]), path: r.counterexamplePath ?? '' },
      });
    } else {
      send({ type: 'done', chunk: m.chunk, seed: m.seed, sequences: m.runs, steps, ms });
    }
  });
  send({ type: 'ready' });
}

// ---------------------------------------------------------------- parent

function parent(): void {
  const started = Date.now();
  const chunks = Math.ceil(RUNS / CHUNK);
  let next = 0;
  let sequences = 0;
  let steps = 0;
  let violations = 0;
  let running = 0;
  const log = (line: string): void => {
    fs.appendFileSync(LOG, `${line}\n`);
    process.stderr.write(`${line}\n`);
  };
  log(`${new Date().toISOString()} start: ${RUNS} sequences, ${WORKERS} workers, chunks of ${CHUNK}, base seed ${SEED}`);
  const file = fileURLToPath(import.meta.url);
  for (let w = 0; w < Math.min(WORKERS, chunks); w++) {
    const child = fork(file, ['--worker'], { execArgv: ['--max-semi-space-size=32'] });
    running++;
    const give = (): void => {
      if (next >= chunks) {
        child.send({ type: 'exit' } satisfies ToWorker);
        return;
      }
      const chunk = next++;
      child.send({ type: 'run', chunk, runs: Math.min(CHUNK, RUNS - chunk * CHUNK), seed: SEED + chunk } satisfies ToWorker);
    };
    child.on('message', (m: FromWorker) => {
      if (m.type === 'done') {
        sequences += m.sequences;
        steps += m.steps;
        const s = (Date.now() - started) / 1000;
        if (m.violation !== undefined) {
          violations++;
          log(`VIOLATION in chunk ${m.chunk} (seed ${m.seed}, path ${m.violation.path}): ${m.violation.message}\n  counterexample: ${m.violation.counterexample}`);
        }
        log(`${new Date().toISOString()} sequences ${sequences} violations ${violations} steps ${steps} elapsed ${s.toFixed(0)} s rate ${(sequences / s).toFixed(0)} seq/s (chunk ${m.chunk}: ${(m.sequences / (m.ms / 1000)).toFixed(0)} seq/s in its worker)`);
      }
      give();
    });
    child.on('exit', (code) => {
      running--;
      if (code !== 0) {
        violations++;
        log(`worker ${w} exited with ${code}`);
      }
      if (running === 0) {
        const s = (Date.now() - started) / 1000;
        log(`${new Date().toISOString()} done: ${sequences} sequences (${steps} steps) in ${s.toFixed(0)} s (${(sequences / s).toFixed(0)} seq/s), ${violations} violations, base seed ${SEED}`);
        process.exitCode = violations > 0 ? 1 : 0;
      }
    });
  }
}

if (process.argv.includes('--worker')) worker();
else parent();
