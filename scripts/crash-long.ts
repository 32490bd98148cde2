/**
 * The long crash run: the scenarios of test/crash-agent.test.ts and test/crash-portal.test.ts
 * (harness/crash-kit.ts) with hundreds of SIGKILLs instead of a few.
 *
 *   npx tsc -p . && node dist/scripts/crash-long.js [--out FILE.json]
 *
 *   CRASH_LONG_AGENT=300    kills of the real agent process while it applies a stream of configurations
 *   CRASH_LONG_CLI=100      kills of `mesh config set` at random points
 *   CRASH_LONG_PROBATION=60  kills of the agent at random moments of a change's confirm window
 *   CRASH_LONG_PORTAL=30    kills of the portal under publish load, on SQLite and again on PostgreSQL
 *   MESH_TEST_PG            PostgreSQL URL (default postgres://root@127.0.0.1:5432/test; "off" skips it)
 *
 * Every kill is checked at once (an invariant that breaks stops the run with its message);
 * the summary goes to stdout. scripts/powerloss-long.sh runs this after the writer fixture.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PostgresDriver } from '../portal/storage/postgres.js';
import { startPortalProcess } from '../harness/portal-process.js';
import { agentKills, cliKills, portalKills, probationKills } from '../harness/crash-kit.js';
import { writeJsonAtomic } from '../runtime/files.js';

const AGENT = Number(process.env.CRASH_LONG_AGENT ?? 300);
const CLI = Number(process.env.CRASH_LONG_CLI ?? 100);
const PORTAL = Number(process.env.CRASH_LONG_PORTAL ?? 30);
const PROBATION = Number(process.env.CRASH_LONG_PROBATION ?? 60);
const PG_URL = process.env.MESH_TEST_PG ?? 'postgres://root@127.0.0.1:5432/test';

const log = (s: string): void => void process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${s}\n`);

interface Row {
  readonly scenario: string;
  readonly kills: number;
  readonly ok: boolean;
  readonly seconds: number;
  readonly detail: string;
}

async function timed(scenario: string, f: () => Promise<{ kills: number; detail: string }>): Promise<Row> {
  const t0 = Date.now();
  log(`${scenario}: starting`);
  try {
    const r = await f();
    const row = { scenario, kills: r.kills, ok: true, seconds: Math.round((Date.now() - t0) / 1000), detail: r.detail };
    log(`${scenario}: OK, ${r.kills} kills in ${row.seconds} s; ${r.detail}`);
    return row;
  } catch (e) {
    const row = { scenario, kills: 0, ok: false, seconds: Math.round((Date.now() - t0) / 1000), detail: `FAILED: ${(e as Error).message}` };
    log(`${scenario}: ${row.detail}`);
    return row;
  }
}

async function main(): Promise<void> {
  const outIdx = process.argv.indexOf('--out');
  const out = outIdx > 0 ? process.argv[outIdx + 1] : undefined;
  log(`crash-long: agent ${AGENT}, probation ${PROBATION}, CLI ${CLI}, portal ${PORTAL} (+${PG_URL === 'off' ? 0 : PORTAL} on PostgreSQL); ${os.cpus().length} cores, node ${process.version}`);
  const rows: Row[] = [];
  if (AGENT > 0) {
    rows.push(
      await timed('agent process, kill -9 while applying', async () => {
        const r = await agentKills(AGENT, { onKill: (l) => (/kill (\d+):/.exec(l)?.[1] ?? '1').endsWith('0') && log(l) });
        return { kills: r.kills, detail: `${r.published} configurations published; config.json ahead of state.json at ${r.configAhead} kills (restart re-applies); no config yet at ${r.noConfigYet}; converged ${r.convergeMs} ms after the last` };
      }),
    );
  }
  if (PROBATION > 0) {
    rows.push(
      await timed('agent process, kill -9 inside a confirm window', async () => {
        const r = await probationKills(PROBATION, { onKill: log });
        return { kills: r.kills, detail: `${r.confirmed} confirmed, ${r.reverted} reverted, 0 left on probation; ${r.beforeApply} kills before the change was applied` };
      }),
    );
  }
  if (CLI > 0) {
    rows.push(
      await timed('mesh config set, kill -9 at random points', async () => {
        const r = await cliKills(CLI, { onKill: (l) => (/attempt (\d+):/.exec(l)?.[1] ?? '1').endsWith('0') && log(l) });
        return { kills: r.kills, detail: `${r.attempts} attempts; every --home file parsed after each; the next command applied: ${r.finalApplied}; temp files left by interrupted writes: ${r.leftoverTemps}` };
      }),
    );
  }
  if (PORTAL > 0) {
    rows.push(
      await timed('portal on SQLite, kill -9 under publish load', async () => {
        const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mesh-crash-long-'));
        try {
          const r = await portalKills(PORTAL, () => startPortalProcess({ dataDir, args: ['--no-mqtt'] }), { onKill: log });
          return { kills: r.kills, detail: `${r.acknowledged} acknowledged publishes, all present after every restart; ${r.inFlightAtKill} in flight at the kills; every post-restart head consistent with the last pre-crash head (up to ${Math.max(...r.lastHeadSizes)} entries)` };
        } finally {
          fs.rmSync(dataDir, { recursive: true, force: true });
        }
      }),
    );
    if (PG_URL !== 'off') {
      rows.push(
        await timed('portal on PostgreSQL, kill -9 under publish load', async () => {
          const schema = `mesh_crash_${randomBytes(5).toString('hex')}`;
          const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mesh-crash-long-pg-'));
          try {
            const r = await portalKills(PORTAL, () => startPortalProcess({ dataDir, env: { DATABASE_URL: PG_URL }, args: ['--no-mqtt', '--pg-schema', schema] }), { onKill: log });
            return { kills: r.kills, detail: `${r.acknowledged} acknowledged publishes, all present after every restart; ${r.inFlightAtKill} in flight at the kills; heads consistent (up to ${Math.max(...r.lastHeadSizes)} entries)` };
          } finally {
            await PostgresDriver.dropSchema(PG_URL, schema).catch(() => undefined);
            fs.rmSync(dataDir, { recursive: true, force: true });
          }
        }),
      );
    }
  }
  const lines = ['| scenario | kills | result | time | detail |', '|---|---:|---|---:|---|', ...rows.map((r) => `| ${r.scenario} | ${r.kills} | ${r.ok ? 'OK' : 'FAILED'} | ${r.seconds} s | ${r.detail} |`)];
  process.stdout.write(lines.join('\n') + '\n');
  if (out !== undefined) writeJsonAtomic(out, { date: new Date().toISOString(), cores: os.cpus().length, cpu: os.cpus()[0]?.model, node: process.version, rows }, 0o644);
  process.exitCode = rows.every((r) => r.ok) ? 0 : 1;
}

await main();
