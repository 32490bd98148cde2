/**
 * npm run bench [-- --quick] [-- --only NAME[,NAME]] [-- --json] [-- --agents-on-disk] [-- --devices N]
 *
 * Every figure is printed next to its baseline measured in the same run and its target, with
 * PASS/MISS ("report" rows have no target). Never part of npm test.
 */
import { execSync } from 'node:child_process';
import * as os from 'node:os';
import { parseArgs } from 'node:util';
import { coldStartRow, latencyRow, rssRow } from './agent-rows.js';
import { fanoutRow } from './fanout.js';
import { provisionRow, verifyRow } from './misc-rows.js';
import { webRow } from './web-row.js';
import { pollsRow, publishRow, wireRow } from './portal-rows.js';
import { scaleRow } from './scale-row.js';
import { logcheckRow } from './logcheck-row.js';
import { bytesRow } from './bytes-row.js';
import { log, type Line, type Options } from './util.js';

type RowFn = (o: Options & { agentsOnDisk?: boolean; devices?: number }) => Promise<Line[]>;

const ROWS: readonly { readonly name: string; readonly what: string; readonly run: RowFn }[] = [
  { name: 'rss', what: 'agent idle RSS (bundled agent, MQTT, two owners) vs node idling', run: rssRow },
  { name: 'cold-start', what: 'agent spawn -> "mesh-agent ready" (after the first successful poll) vs node -e 0', run: coldStartRow },
  { name: 'latency', what: 'publish -> applied, p50/p99, push over loopback', run: latencyRow },
  { name: 'fanout', what: 'one change to 1,000 connected agents (4 worker processes), all applied', run: fanoutRow },
  { name: 'wire', what: 'bytes of an unchanged poll, request + response (TCP proxy)', run: wireRow },
  { name: 'polls', what: 'unchanged polls/s vs a bare node:http server, same load tool', run: pollsRow },
  { name: 'publish', what: 'publishes/s accepted, SQLite and PostgreSQL', run: publishRow },
  { name: 'scale', what: 'publishes/s and polls/s, 1, 2 and 3 portal processes on PostgreSQL behind a round-robin proxy', run: scaleRow },
  { name: 'bytes', what: 'bytes one device downloads for one change, at 1, 100, 1,000 and 10,000 recipients; bytes the portal stores', run: bytesRow },
  { name: 'verify', what: 'Ed25519 verify/s: mesh/crypto vs node:crypto and @noble/curves', run: verifyRow },
  { name: 'provision', what: 'devices provisioned per second (provisionBatch)', run: provisionRow },
  { name: 'logcheck', what: "the device's log check (checkpoint, consistency and inclusion proofs) per applied item vs the core alone", run: logcheckRow },
  { name: 'web', what: 'owner app: JavaScript gzipped, and time to interactive in Chromium', run: webRow },
];

const HELP = `npm run bench [-- options]

  --quick            shorter runs and fewer repeats (under a minute)
  --only NAME[,..]   run only these rows: ${ROWS.map((r) => r.name).join(', ')}
  --json             print the results as JSON instead of the table
  --agents-on-disk   fan-out agents' directories in the temp dir instead of tmpfs
  --devices N        fan-out size (default 1000)
`;

function machine(): Record<string, string | undefined> {
  const sh = (c: string): string => {
    try {
      return execSync(c, { encoding: 'utf8' }).trim();
    } catch {
      return '?';
    }
  };
  return {
    date: sh('date'),
    nproc: String(os.availableParallelism()),
    cpu: os.cpus()[0]?.model ?? '?',
    memory: `${(os.totalmem() / 2 ** 30).toFixed(1)} GiB`,
    node: process.version,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    loadavg: os.loadavg().map((l) => l.toFixed(2)).join(' '),
  };
}

function table(lines: readonly (Line & { row: string })[]): string {
  const head = ['figure', 'measured', 'baseline in the same run', 'target', 'result'];
  const rows = lines.map((l) => [l.figure, l.value, l.baseline, l.target, l.pass === null ? 'report' : l.pass ? 'PASS' : 'MISS']);
  const out = [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`];
  for (const r of rows) out.push(`| ${r.join(' | ')} |`);
  return out.join('\n');
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      only: { type: 'string' },
      json: { type: 'boolean', default: false },
      'agents-on-disk': { type: 'boolean', default: false },
      devices: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help === true) {
    process.stdout.write(HELP);
    return;
  }
  const only = values.only === undefined ? undefined : values.only.split(',').map((s) => s.trim());
  for (const n of only ?? []) if (!ROWS.some((r) => r.name === n)) throw new Error(`no row "${n}"; rows: ${ROWS.map((r) => r.name).join(', ')}`);
  const opts = {
    quick: values.quick === true,
    agentsOnDisk: values['agents-on-disk'] === true,
    ...(values.devices !== undefined ? { devices: Number(values.devices) } : {}),
  };
  const m = machine();
  log(`${m.date}; ${m.nproc} CPUs (${m.cpu}); ${m.memory}; node ${m.node}; ${opts.quick ? 'quick' : 'full'} run`);
  const started = Date.now();
  const lines: (Line & { row: string })[] = [];
  const errors: { row: string; error: string }[] = [];
  for (const r of ROWS) {
    if (only !== undefined && !only.includes(r.name)) continue;
    const t = Date.now();
    log(`${r.name}: ${r.what}`);
    try {
      for (const l of await r.run(opts)) {
        lines.push({ ...l, row: r.name });
        log(`  ${l.figure}: ${l.value} | ${l.baseline} | ${l.target} | ${l.pass === null ? 'report' : l.pass ? 'PASS' : 'MISS'}`);
      }
    } catch (e) {
      errors.push({ row: r.name, error: (e as Error).message });
      log(`${r.name} FAILED: ${(e as Error).stack ?? String(e)}`);
    }
    log(`${r.name}: ${((Date.now() - t) / 1000).toFixed(1)} s`);
  }
  const seconds = (Date.now() - started) / 1000;
  // other work on the machine moves every figure: say how busy it was
  m.loadavgAfter = os.loadavg().map((l) => l.toFixed(2)).join(' ');
  if (values.json === true) {
    process.stdout.write(JSON.stringify({ machine: m, mode: opts.quick ? 'quick' : 'full', seconds, results: lines, errors }, null, 2) + '\n');
  } else {
    process.stdout.write(`\nmachine: ${m.nproc} CPUs (${m.cpu}), ${m.memory}, node ${m.node}, ${m.os}; ${m.date}\n`);
    process.stdout.write(`mode: ${opts.quick ? 'quick' : 'full'}; ${seconds.toFixed(1)} s; load average before ${m.loadavg}, after ${m.loadavgAfter}\n\n`);
    process.stdout.write(table(lines) + '\n');
    for (const e of errors) process.stdout.write(`\nFAILED ${e.row}: ${e.error}\n`);
  }
  if (errors.length > 0) process.exitCode = 1;
  // child processes and sockets are closed by each row; do not hang on a stray handle
  setTimeout(() => process.exit(), 1000).unref();
}

main().catch((e: unknown) => {
  process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
