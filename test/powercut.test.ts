/**
 * Real power cuts (harness/powercut/): the processes run with an LD_PRELOAD shim that traces every
 * file operation under their data directory; at the cut the process dies and its directory is
 * replaced by what a disk keeps after a power failure: data as of its last fsync, directory
 * entries as of their directory's last fsync. SIGKILL alone (test/crash-*.test.ts) keeps
 * everything the process wrote, so it cannot tell a missing fsync; this can.
 * POWERCUT_CUTS (default 5, the agent), POWERCUT_PORTAL_CUTS (default 2); scripts/powercut-long.ts runs hundreds.
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { materialise, type Model, type Step } from '../harness/powercut/model.js';
import { prepareBoot, type BootOptions } from '../harness/powercut/power.js';
import { agentCuts, portalCuts } from '../harness/powercut/kit.js';

const STEPS = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'powercut-steps.js');
const AGENT_CUTS = Number(process.env.POWERCUT_CUTS ?? 5);
const PORTAL_CUTS = Number(process.env.POWERCUT_PORTAL_CUTS ?? 2);

/**
 * Run one scenario of the fixture under the shim, cut the power when it is done, return the
 * directory after the cut. `onStep` sees every earlier point of the trace (model.ts replay).
 */
async function afterScenario(scenario: string, onStep?: (st: Step, m: Model, work: string) => void, opts: BootOptions = {}): Promise<{ dir: string; files: Record<string, string>; work: string }> {
  const work = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'mesh-powercut-steps-')));
  const dir = path.join(work, 'd');
  fs.mkdirSync(dir);
  const boot = prepareBoot(dir, work, { ...opts, markStdout: true });
  const p = spawn(process.execPath, [STEPS, dir, scenario], { env: { ...process.env, ...boot.env }, stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<void>((resolve) => p.once('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    let out = '';
    p.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      if (out.includes('done\n')) resolve();
    });
    p.once('exit', (code) => reject(new Error(`the fixture exited with ${String(code)}`)));
  });
  await boot.cut(exited);
  boot.afterCut(onStep === undefined ? undefined : (st, m) => onStep(st, m, work));
  const files: Record<string, string> = {};
  for (const f of fs.readdirSync(dir)) files[f] = fs.readFileSync(path.join(dir, f), 'latin1');
  return { dir, files, work };
}

test('the model loses what was not synced: unsynced data, an unsynced new entry, an unsynced rename', async (t) => {
  const a = await afterScenario('unsynced-data');
  t.deepEqual(a.files, { 'a.txt': '' }, 'the entry was synced, the data was not: an empty file');
  const b = await afterScenario('unsynced-entry');
  t.deepEqual(b.files, {}, 'the data was synced, the new entry was not: no file');
  const c = await afterScenario('unsynced-rename');
  t.deepEqual(c.files, { 'c.txt': 'old' }, 'the rename was not synced: the old file');
  const d = await afterScenario('atomic');
  t.deepEqual(d.files, { 'd.txt': 'second' }, 'runtime/files.ts writeFileAtomic: the last version, whole');
  for (const w of [a, b, c, d]) fs.rmSync(w.work, { recursive: true, force: true });
});

test('SQLite in WAL mode with synchronous=FULL keeps every committed row across the cut (the -shm is rebuilt)', async (t) => {
  const r = await afterScenario('sqlite');
  try {
    t.false('x.db-shm' in r.files, 'the -shm (mapped memory, not traced) is left out');
    const { default: Database } = await import('better-sqlite3');
    const db = new Database(path.join(r.dir, 'x.db'));
    t.is((db.prepare('SELECT count(*) AS c FROM t').get() as { c: number }).c, 50);
    db.close();
  } finally {
    fs.rmSync(r.work, { recursive: true, force: true });
  }
});

/** Rows of table t in the SQLite database of the durable state at each "acked N" the driver fixture printed: [N, rows]. */
async function rowsAtAcks(opts: BootOptions = {}): Promise<[number, number][]> {
  const { default: Database } = await import('better-sqlite3');
  const seen: [number, number][] = [];
  let n = 0;
  const r = await afterScenario(
    'portal-store',
    (st, m, work) => {
      if (st.kind !== 'mark') return;
      const acked = /acked (\d+)/.exec(st.data.toString('utf8'));
      if (acked === null) return;
      // the disk if the power went off right after this acknowledgement
      const at = path.join(work, `at-${++n}`);
      materialise(m, at);
      try {
        const db = new Database(path.join(at, 'portal.db'));
        const table = (db.prepare("SELECT count(*) AS c FROM sqlite_master WHERE name = 't'").get() as { c: number }).c;
        seen.push([Number(acked[1]), table === 0 ? 0 : (db.prepare('SELECT count(*) AS c FROM t').get() as { c: number }).c]);
        db.close();
      } finally {
        fs.rmSync(at, { recursive: true, force: true });
      }
    },
    opts,
  );
  fs.rmSync(r.work, { recursive: true, force: true });
  return seen;
}

test("the portal's SQLite driver: at the moment each transaction is acknowledged, a cut keeps it; not without its fdatasync of the WAL", async (t) => {
  const seen = await rowsAtAcks();
  t.is(seen.length, 40, 'every acknowledgement was a cut point');
  t.deepEqual(seen.filter(([acked, rows]) => rows < acked), [], 'no acknowledged row lost');
  // the mutation: portal/storage/sqlite.ts syncWal's fdatasync (and SQLite's own syncs of the WAL) ignored
  const mutated = await rowsAtAcks({ dropFsync: ['*-wal'] });
  t.true(mutated.filter(([acked, rows]) => rows < acked).length > 0, 'without the WAL syncs, acknowledged rows are lost');
});

test(`the agent, power cut ${AGENT_CUTS} times while applying a stream of configurations: nothing reported is lost, counters never go back`, async (t) => {
  const r = await agentCuts(AGENT_CUTS, { onCut: (l) => t.log(l) });
  t.is(r.stats.cuts, AGENT_CUTS);
  t.true(r.published > AGENT_CUTS, `${r.published} configurations published during the cuts`);
  t.true(r.stats.crashStates > AGENT_CUTS * 4, `${r.stats.crashStates} points of the traces checked`);
  t.log(`${r.stats.crashStates} trace points checked; ${r.stats.cutsLosingData} cuts lost unsynced data, ${r.stats.cutsLosingEntries} unsynced directory changes (${JSON.stringify(r.stats.lost)}); config.json the reported version at ${r.atReport}, the one being applied at ${r.aheadOfReport}; converged ${r.convergeMs} ms after the last publication`);
});

test('the mutation check: with the fsyncs of the atomic writes ignored, the agent test fails', async (t) => {
  // the temp files of runtime/files.ts writeFileAtomic (.state.json.<pid>.<hex>.tmp) and of conf (config.json.tmp-<...>)
  const e = await t.throwsAsync(agentCuts(2, { dropFsync: ['*.tmp', '*.tmp-*'], minMs: 300, maxMs: 900 }));
  t.regex(e?.message ?? '', /^cut \d+, (trace point \d+|the disk after it).*(does not parse|would go back|reported v\d+ applied|would be gone)/);
  t.log(e?.message);
});

test(`the portal on SQLite, power cut ${PORTAL_CUTS} times under publish load: every acknowledged publish survives`, async (t) => {
  const r = await portalCuts(PORTAL_CUTS, { onCut: (l) => t.log(l) });
  t.is(r.stats.cuts, PORTAL_CUTS);
  t.true(r.acknowledged >= PORTAL_CUTS * 4, `${r.acknowledged} acknowledged publishes`);
  t.log(`${r.stats.cutsLosingData} cuts lost unsynced data, ${r.stats.cutsLosingEntries} unsynced directory changes (${JSON.stringify(r.stats.lost)}); ${r.inFlightAtCut} publishes in flight at the cuts`);
});
