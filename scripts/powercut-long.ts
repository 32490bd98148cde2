/**
 * The long power-cut run: the scenarios of test/powercut.test.ts (harness/powercut/kit.ts) with
 * hundreds of real power cuts instead of a few.
 *
 *   npx tsc -p . && node dist/scripts/powercut-long.js [--out FILE.json]
 *
 *   POWERCUT_LONG_AGENT=500    cuts of the real agent while it applies a stream of configurations
 *   POWERCUT_LONG_PORTAL=100   cuts of the real portal (SQLite) under publish load
 *   POWERCUT_DROP_FSYNC=a:b    the mutation check: fsyncs of files opened under a matching path
 *                              (fnmatch) are ignored, e.g. '*.tmp:*.tmp-*' (the temp files of the
 *                              agent's atomic writes); the run is then expected to FAIL
 *
 * A broken invariant stops its scenario with the message; the summary goes to stdout.
 */
import * as os from 'node:os';
import * as fs from 'node:fs';
import { agentCuts, portalCuts, type CutStats } from '../harness/powercut/kit.js';

const AGENT = Number(process.env.POWERCUT_LONG_AGENT ?? 500);
const PORTAL = Number(process.env.POWERCUT_LONG_PORTAL ?? 100);
const DROP = (process.env.POWERCUT_DROP_FSYNC ?? '').split(':').filter((p) => p !== '');

const log = (s: string): void => void process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${s}\n`);

interface Row {
  readonly scenario: string;
  readonly ok: boolean;
  readonly seconds: number;
  readonly stats: CutStats | null;
  readonly detail: string;
}

async function timed(scenario: string, f: () => Promise<{ stats: CutStats; detail: string }>): Promise<Row> {
  const t0 = Date.now();
  log(`${scenario}: starting`);
  try {
    const r = await f();
    const row = { scenario, ok: true, seconds: Math.round((Date.now() - t0) / 1000), stats: r.stats, detail: r.detail };
    log(`${scenario}: OK, ${r.stats.cuts} cuts in ${row.seconds} s; ${r.detail}`);
    return row;
  } catch (e) {
    const row = { scenario, ok: false, seconds: Math.round((Date.now() - t0) / 1000), stats: null, detail: `FAILED: ${(e as Error).message}` };
    log(`${scenario}: ${row.detail}`);
    return row;
  }
}

async function main(): Promise<void> {
  const outIdx = process.argv.indexOf('--out');
  const out = outIdx > 0 ? process.argv[outIdx + 1] : undefined;
  log(`powercut-long: agent ${AGENT}, portal ${PORTAL}${DROP.length > 0 ? `, fsyncs IGNORED for ${DROP.join(' ')}` : ''}; ${os.cpus().length} cores, node ${process.version}`);
  const every = (n: number): ((line: string) => void) => {
    let i = 0;
    return (line) => {
      if (++i % n === 0) log(line);
    };
  };
  const rows: Row[] = [];
  if (AGENT > 0) {
    rows.push(
      await timed('agent, power cut while applying', async () => {
        const r = await agentCuts(AGENT, { dropFsync: DROP, onCut: every(25) });
        return {
          stats: r.stats,
          detail: `${r.published} configurations published; ${r.stats.crashStates} trace points checked; config.json at the last reported version after ${r.atReport} cuts, at the one being applied (not yet reported) after ${r.aheadOfReport}; lost by cuts ${JSON.stringify(r.stats.lost)}; converged ${r.convergeMs} ms after the last publication`,
        };
      }),
    );
  }
  if (PORTAL > 0) {
    rows.push(
      await timed('portal (SQLite), power cut under publish load', async () => {
        const r = await portalCuts(PORTAL, { dropFsync: DROP, onCut: every(10) });
        return { stats: r.stats, detail: `${r.acknowledged} acknowledged publishes, every one present after every reboot; ${r.inFlightAtCut} in flight at the cuts; lost by cuts ${JSON.stringify(r.stats.lost)}` };
      }),
    );
  }
  const table = rows.map((r) => `| ${r.scenario} | ${r.stats?.cuts ?? '-'} | ${r.stats?.crashStates ?? '-'} | ${r.ok ? 'OK' : 'FAILED'} | ${r.seconds} s | ${r.detail} |`);
  process.stdout.write(['| scenario | cuts | trace points checked | result | time | detail |', '|---|---:|---:|---|---:|---|', ...table].join('\n') + '\n');
  if (out !== undefined) fs.writeFileSync(out, JSON.stringify({ date: new Date().toISOString(), node: process.version, cores: os.cpus().length, drop: DROP, rows }, null, 2));
  process.exitCode = rows.every((r) => r.ok) ? 0 : 1;
}

await main();
