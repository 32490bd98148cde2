/**
 * Power cuts of the real processes, shared by test/powercut.test.ts (a few cuts) and
 * scripts/powercut-long.ts (hundreds). Each run of a process is a "boot" on a directory; the cut
 * kills it and replaces the directory with what the disk would hold (power.ts, model.ts); the
 * next boot starts on that. Each scenario throws an Error naming the broken invariant.
 *
 *   agentCuts   the REAL agent while an owner publishes a stream of configurations. After every
 *               cut: config.json is exactly one published version, never older than the last one
 *               the device had reported applied (it may be the one it was applying, not yet
 *               reported); state.json is never ahead of config.json; the rollback counters (the
 *               applied seq, the feed cursor, the status seq) never go back, and the status seq is
 *               at least the one the portal holds from the device; a reported claim is kept.
 *   portalCuts  the REAL portal on SQLite under publish load by four owners: every publish it
 *               acknowledged is there after the reboot (test/hostile/crash-kit.ts portalKills).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { AGENT_CLI, provisionDevice, startAgentProcess, until, type AgentProcess } from '../agent-process.js';
import { startPortalProcess, type PortalProcess } from '../portal-process.js';
import { TestOwner } from '../owner.js';
import { doc, inspectDeviceFiles, portalKills, rand, sleep } from '../crash-kit.js';
import { durableFile } from './model.js';
import { prepareBoot, type AfterCut, type Boot, type BootOptions } from './power.js';

interface DeviceState {
  readonly version: number;
  readonly stateSeq: number;
  readonly n: number;
  readonly statusSeq: number;
  readonly owners: number;
}

export interface CutStats {
  /** real cuts: the process killed, its directory replaced by the durable state, the next boot on it */
  cuts: number;
  /** the points of the traces where a cut would have left another state or the process had just reported something, each checked */
  crashStates: number;
  /** cuts after which some written data was not durable (the model threw it away) */
  cutsLosingData: number;
  /** cuts after which some directory change was not durable */
  cutsLosingEntries: number;
  records: number;
  fsyncs: number;
  /** fsyncs the mutation ignored */
  dropped: number;
  /** the files and directory entries some cut threw away, and how often */
  lost: Record<string, number>;
}

const newStats = (): CutStats => ({ cuts: 0, crashStates: 0, cutsLosingData: 0, cutsLosingEntries: 0, records: 0, fsyncs: 0, dropped: 0, lost: {} });

function count(s: CutStats, a: AfterCut): void {
  s.cuts++;
  if (a.disk.lostFiles.length > 0) s.cutsLosingData++;
  if (a.disk.lostEntries.length > 0) s.cutsLosingEntries++;
  s.records += a.model.records;
  s.fsyncs += a.model.fsyncs;
  s.dropped += a.model.dropped;
  // temp names vary: count them by their shape
  for (const f of [...a.disk.lostFiles, ...a.disk.lostEntries]) {
    const k = f.replace(/\.\d+\.[0-9a-f]+\.tmp$/, '.<pid>.<rand>.tmp').replace(/\.tmp-\w+$/, '.tmp-<rand>');
    s.lost[k] = (s.lost[k] ?? 0) + 1;
  }
  if (!a.model.cut) throw new Error('powercut: the process ended before the cut (it crashed or exited): the trace has no CUT record');
}

function deviceState(config: Buffer | undefined, state: Buffer | undefined, account: string, published: number): DeviceState | undefined {
  if (state === undefined) {
    if (config !== undefined) throw new Error('config.json survived without state.json');
    return undefined;
  }
  const text = state.toString('utf8');
  const r = inspectDeviceFiles(config?.toString('utf8'), text, account, published);
  const st = JSON.parse(text) as { n: number; statusSeq?: number; owners: Record<string, unknown> };
  return { version: r.version ?? 0, stateSeq: r.stateSeq, n: st.n, statusSeq: st.statusSeq ?? 0, owners: Object.keys(st.owners).length };
}

/** `f()`, with `where` in front of the message of what it throws */
function at<T>(where: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    throw new Error(`${where}: ${(e as Error).message}`);
  }
}

const readIf = (file: string): Buffer | undefined => (fs.existsSync(file) ? fs.readFileSync(file) : undefined);

/**
 * The device's invariants across power cuts: what it reported (its stdout events, in the trace in
 * order with its writes) is durable, and nothing durable ever goes back.
 */
class DeviceChecker {
  reported = 0;
  claimed = false;
  floor: DeviceState = { version: 0, stateSeq: 0, n: 0, statusSeq: 0, owners: 0 };
  private out = '';

  constructor(private readonly account: string) {}

  /** what the process wrote to stdout */
  output(data: Buffer): void {
    this.out += data.toString('utf8');
    let i: number;
    while ((i = this.out.indexOf('\n')) >= 0) {
      const line = this.out.slice(0, i);
      this.out = this.out.slice(i + 1);
      if (!line.startsWith('mesh-agent event ')) continue;
      const e = JSON.parse(line.slice(17)) as { type: string; account?: string; seq?: number };
      if (e.type === 'claimed') this.claimed = true;
      if (e.type === 'applied' && e.account === this.account) this.reported = Math.max(this.reported, Number(e.seq));
    }
  }

  /** the durable state at some point; throws if it breaks an invariant */
  check(s: DeviceState | undefined, where: string): void {
    if (s === undefined) {
      if (this.claimed || this.reported > 0 || this.floor.owners > 0) throw new Error(`${where}: state.json would be gone`);
      return;
    }
    if (s.version < this.reported) throw new Error(`${where}: config.json would be v${s.version}, but the device had reported v${this.reported} applied`);
    if (s.stateSeq < this.reported) throw new Error(`${where}: state.json would record seq ${s.stateSeq}, but the device had reported v${this.reported} applied`);
    if (this.claimed && s.owners === 0) throw new Error(`${where}: the device had reported its claim, but state.json would have no owner`);
    for (const key of ['version', 'stateSeq', 'n', 'statusSeq', 'owners'] as const) {
      if (s[key] < this.floor[key]) throw new Error(`${where}: ${key} would go back from ${this.floor[key]} to ${s[key]}`);
    }
    this.floor = s;
  }
}

export interface AgentCutReport {
  readonly stats: CutStats;
  readonly published: number;
  /** real cuts where config.json was the version being applied, not yet reported */
  readonly aheadOfReport: number;
  /** real cuts where config.json was exactly the last reported version */
  readonly atReport: number;
  readonly convergeMs: number;
  readonly lines: string[];
}

export async function agentCuts(cuts: number, opts: BootOptions & { onCut?: (line: string) => void; minMs?: number; maxMs?: number } = {}): Promise<AgentCutReport> {
  const portal = await startPortalProcess();
  const work = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'mesh-powercut-agent-')));
  const dir = path.join(work, 'device');
  provisionDevice(portal.http, { pollIntervalMs: 300, dir });
  const label = (JSON.parse(fs.readFileSync(path.join(dir, 'claim.json'), 'utf8')) as { uri: string }).uri;
  const deviceId = (JSON.parse(fs.readFileSync(path.join(dir, 'device.json'), 'utf8')) as { id: string }).id;
  const alice = await TestOwner.create(portal.http, 'alice');
  const stats = newStats();
  const lines: string[] = [];
  const checker = new DeviceChecker(alice.account);
  let published = 0;
  let publishing = false;
  let publisher: Promise<void> = Promise.resolve();
  let agent: AgentProcess | undefined;
  let aheadOfReport = 0;
  let atReport = 0;
  try {
    let opsPerBoot = 0;
    let timedBoots = 0;
    for (let k = 0; k < cuts; k++) {
      const where = `cut ${k + 1}`;
      // every other boot (after the first), the cut falls on a random operation of the boot, start-up included;
      // the others are cut at a random moment while the agent runs
      const atOp = k > 0 && k % 2 === 0 && timedBoots > 0 ? rand(1, Math.max(2, Math.round(opsPerBoot / timedBoots))) : undefined;
      const boot: Boot = prepareBoot(dir, work, { ...opts, markStdout: true, ...(atOp !== undefined ? { atOp } : {}) });
      let exited: Promise<void>;
      try {
        agent = await startAgentProcess(dir, [], AGENT_CLI, boot.env);
        const proc = agent.proc;
        exited = new Promise<void>((resolve) => (proc.exitCode !== null || proc.signalCode !== null ? resolve() : proc.once('exit', () => resolve())));
      } catch (e) {
        // the cut came before the agent was ready: the process is gone (afterCut checks that the shim cut it)
        if (atOp === undefined) throw e;
        agent = undefined;
        exited = Promise.resolve();
      }
      if (k === 0 && agent !== undefined) {
        await alice.claim(label);
        await agent.waitFor((e) => e.type === 'claimed');
        publishing = true;
        publisher = (async () => {
          while (publishing) {
            await alice.publish('thermostat', doc(published + 1));
            published++;
            await sleep(rand(10, 60));
          }
        })();
      }
      if (agent !== undefined) await sleep(rand(opts.minMs ?? 0, opts.maxMs ?? 900));
      await boot.cut(exited);
      // every point of this boot where a cut would have left another state, or after a report
      let step = 0;
      const after = boot.afterCut((st, m) => {
        step++;
        stats.crashStates++;
        if (st.kind === 'mark') checker.output(st.data);
        const point = `${where}, trace point ${step} (${st.kind})`;
        checker.check(at(point, () => deviceState(durableFile(m, 'config.json'), durableFile(m, 'state.json'), alice.account, published)), point);
      });
      count(stats, after);
      if (atOp === undefined) {
        opsPerBoot += after.model.records;
        timedBoots++;
      }
      // the disk after the cut, as the next boot will read it
      const s = at(`${where}, the disk after it`, () => deviceState(readIf(path.join(dir, 'config.json')), readIf(path.join(dir, 'state.json')), alice.account, published));
      checker.check(s, `${where}, the disk after it`);
      const held = await portalStatusSeq(alice, deviceId);
      if (s !== undefined && s.statusSeq < held) throw new Error(`${where}: state.json's status seq is ${s.statusSeq}, but the portal already holds the device's status #${held}: the device's next statuses would be ignored as old`);
      if (s !== undefined && s.version > checker.reported) aheadOfReport++;
      else atReport++;
      const line = `${where}${atOp !== undefined ? ` (at operation ${atOp})` : ''}: reported v${checker.reported}; after the cut config.json v${s?.version ?? '-'}, state seq ${s?.stateSeq ?? '-'}, cursor ${s?.n ?? '-'}, status #${s?.statusSeq ?? '-'} (portal holds #${held}); ${step} trace points checked; lost ${after.disk.lostFiles.length} unsynced files, ${after.disk.lostEntries.length} directory changes; ${published} published`;
      lines.push(line);
      opts.onCut?.(line);
    }
    publishing = false;
    await publisher;
    const last = published;
    const t0 = Date.now();
    agent = await startAgentProcess(dir);
    await until(`the agent converges to v${last} after the last cut`, () => {
      const s = deviceState(readIf(path.join(dir, 'config.json')), readIf(path.join(dir, 'state.json')), alice.account, last);
      return s !== undefined && s.version === last && s.stateSeq === last ? true : undefined;
    }, 60_000);
    return { stats, published: last, aheadOfReport, atReport, convergeMs: Date.now() - t0, lines };
  } finally {
    publishing = false;
    await publisher.catch(() => undefined);
    alice.close();
    await agent?.stop();
    await portal.stop();
    fs.rmSync(work, { recursive: true, force: true });
  }
}

async function portalStatusSeq(owner: TestOwner, device: string): Promise<number> {
  const e = (await owner.client.deviceStatus()).find((d) => d.device === device);
  if (e?.status == null) return 0;
  return (JSON.parse(Buffer.from(e.status.payload, 'base64url').toString('utf8')) as { seq: number }).seq;
}

export interface PortalCutReport {
  readonly stats: CutStats;
  readonly acknowledged: number;
  readonly inFlightAtCut: number;
  readonly lines: string[];
}

/** The portal on SQLite, its data directory cut `cuts` times under publish load. */
export async function portalCuts(cuts: number, opts: BootOptions & { onCut?: (line: string) => void } = {}): Promise<PortalCutReport> {
  const work = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'mesh-powercut-portal-')));
  const dataDir = path.join(work, 'portal');
  fs.mkdirSync(dataDir, { mode: 0o700 });
  const stats = newStats();
  let boot: Boot | undefined;
  const start = async (): Promise<PortalProcess> => {
    if (boot !== undefined) count(stats, boot.afterCut());
    boot = prepareBoot(dataDir, work, opts);
    return startPortalProcess({ dataDir, args: ['--no-mqtt'], env: boot.env });
  };
  const cut = async (p: PortalProcess): Promise<void> => {
    const closed = new Promise<void>((resolve) => (p.proc.exitCode !== null || p.proc.signalCode !== null ? resolve() : p.proc.once('exit', () => resolve())));
    await (boot as Boot).cut(closed);
  };
  try {
    const r = await portalKills(cuts, start, { kill: cut, onKill: opts.onCut });
    return { stats, acknowledged: r.acknowledged, inFlightAtCut: r.inFlightAtKill, lines: r.lines };
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}
