/**
 * The crash scenarios, shared by the short tests in `npm test` (test/crash-agent.test.ts,
 * test/crash-portal.test.ts: a few kills each) and the long runs (scripts/crash-long.ts: hundreds).
 * Each scenario throws an Error naming the broken invariant, and otherwise returns what it saw.
 *
 *   agentKills   the REAL agent process, SIGKILL at random moments while it applies a stream of
 *                configurations; config.json is always exactly one published document's effective
 *                configuration, state.json parses and is never ahead of config.json; converges.
 *   cliKills     `mesh config set` SIGKILLed at random points; every file in --home parses, the
 *                CLI reads its state back, and the next command works.
 *   probationKills  the REAL agent process SIGKILLed at a random moment of a change's confirm
 *                window (a change that cuts its own link, or one that does not); after the restart
 *                the change always ends confirmed (config.json holds it) or reverted (config.json
 *                holds the one before), and nothing stays on probation.
 *   portalKills  the portal process SIGKILLed under publish load (SQLite or PostgreSQL); every
 *                acknowledged publish survives (Log/Entry, Account, Download) and the tree head
 *                after the restart is proven consistent with the last one a client received.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PortalClient } from '../client/portal-client.js';
import { b64u, fromB64u } from '../mesh/bytes.js';
import { deriveClaimSecrets, sealClaimBlob } from '../mesh/claim.js';
import { newDeviceIdentity } from '../mesh/device.js';
import { payloadBytes, type SignedEnvelope } from '../mesh/envelope.js';
import { isMeshError } from '../mesh/errors.js';
import { verifyConsistency } from '../mesh/merkle.js';
import { verifyPortalProfile, verifyTreeHead, type TreeHead } from '../mesh/messages.js';
import { startPortalProcess, type PortalProcess } from './portal-process.js';
import { provisionDevice, startAgentProcess, until, type AgentProcess } from './agent-process.js';
import { TestOwner } from './owner.js';
import { cuttableLink } from './proxy.js';

export const MESH_CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'admin', 'cli.js');

/** acknowledged publishes each portal kill waits for (crash-portal asserts KILLS * 4 in all) */
const MIN_ACKED_PER_KILL = 4;

export const rand = (lo: number, hi: number): number => lo + Math.floor(Math.random() * (hi - lo));
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The i'th document of the stream (the schedule names its version; the filler makes a torn write visible). */
export const doc = (i: number): { setpoint: number; mode: string; schedule: string } => ({ setpoint: 5 + (i % 25), mode: i % 2 === 0 ? 'eco' : 'comfort', schedule: `v${i}:${'x'.repeat(40)}` });

export function killHard(p: { proc: import('node:child_process').ChildProcess }): Promise<void> {
  return new Promise((resolve) => {
    if (p.proc.exitCode !== null || p.proc.signalCode !== null) return resolve();
    p.proc.once('exit', () => resolve());
    p.proc.kill('SIGKILL');
  });
}

// ---------------------------------------------------------------- the device

/** What a device directory holds after a crash: the published version config.json shows, and the seq state.json records. */
export function inspectDevice(dir: string, account: string, published: number): { version: number | null; stateSeq: number } {
  const cfgPath = path.join(dir, 'config.json');
  return inspectDeviceFiles(fs.existsSync(cfgPath) ? fs.readFileSync(cfgPath, 'utf8') : undefined, fs.readFileSync(path.join(dir, 'state.json'), 'utf8'), account, published);
}

/** inspectDevice on the texts of config.json (undefined: absent) and state.json. */
export function inspectDeviceFiles(configText: string | undefined, stateText: string, account: string, published: number): { version: number | null; stateSeq: number } {
  let version: number | null = null;
  if (configText !== undefined) {
    let cfg: { thermostat?: Record<string, unknown>; _sources?: { thermostat?: Record<string, { owner: string }> } };
    try {
      cfg = JSON.parse(configText) as typeof cfg;
    } catch {
      throw new Error(`config.json does not parse (${configText.length} bytes): ${configText.slice(0, 120)}`);
    }
    const m = /^v(\d+):/.exec(typeof cfg.thermostat?.schedule === 'string' ? cfg.thermostat.schedule : '');
    if (m === null) throw new Error(`config.json holds no published version: ${JSON.stringify(cfg).slice(0, 300)}`);
    version = Number(m[1]);
    if (!(version >= 1 && version <= published)) throw new Error(`config.json shows v${version}, but only ${published} were published`);
    const want = Object.fromEntries(Object.entries(doc(version)).sort(([a], [b]) => a.localeCompare(b)));
    if (JSON.stringify(cfg.thermostat) !== JSON.stringify(want)) throw new Error(`config.json is not exactly version ${version}: ${JSON.stringify(cfg.thermostat)}`);
    const sources = cfg._sources?.thermostat ?? {};
    for (const [k, s] of Object.entries(sources)) if (s.owner !== account) throw new Error(`${k} is attributed to ${s.owner}`);
    if (Object.keys(sources).sort().join() !== 'mode,schedule,setpoint') throw new Error(`_sources does not match the values: ${JSON.stringify(cfg._sources)}`);
  }
  let state: { v: number; n: number; owners: Record<string, { apps: Record<string, { seq: number }> }> };
  try {
    state = JSON.parse(stateText) as typeof state;
  } catch {
    throw new Error(`state.json does not parse (${stateText.length} bytes)`);
  }
  if (state.v !== 1 || !Number.isInteger(state.n)) throw new Error(`state.json has an unknown form: ${stateText.slice(0, 200)}`);
  const stateSeq = Math.max(0, ...Object.values(state.owners).map((o) => o.apps.thermostat?.seq ?? 0));
  if (stateSeq > (version ?? 0)) throw new Error(`state.json records seq ${stateSeq} but config.json shows v${version ?? 'none'}: the state got ahead of the configuration`);
  return { version, stateSeq };
}

export interface AgentKillReport {
  readonly kills: number;
  readonly published: number;
  /** how often config.json was one version ahead of state.json at a kill (the crash fell between the two writes) */
  readonly configAhead: number;
  readonly noConfigYet: number;
  readonly convergeMs: number;
  readonly lines: string[];
}

export async function agentKills(kills: number, opts: { onKill?: (line: string) => void; minMs?: number; maxMs?: number } = {}): Promise<AgentKillReport> {
  const portal = await startPortalProcess();
  const { dir, identity } = provisionDevice(portal.http, { pollIntervalMs: 300 });
  let agent: AgentProcess = await startAgentProcess(dir);
  const alice = await TestOwner.create(portal.http, 'alice');
  let published = 0;
  let publishing = true;
  let configAhead = 0;
  let noConfigYet = 0;
  const lines: string[] = [];
  try {
    await alice.claim(identity.labelUri);
    await agent.waitFor((e) => e.type === 'claimed');
    const publisher = (async () => {
      while (publishing) {
        await alice.publish('thermostat', doc(published + 1));
        published++;
        await sleep(rand(10, 60));
      }
    })();
    for (let k = 0; k < kills; k++) {
      await sleep(rand(opts.minMs ?? 150, opts.maxMs ?? 900));
      await killHard(agent);
      const r = inspectDevice(dir, alice.account, published);
      if (r.version === null) noConfigYet++;
      else if (r.version > r.stateSeq) configAhead++;
      const line = `kill ${k + 1}: config.json v${r.version ?? '-'}, state.json seq ${r.stateSeq}, ${published} published`;
      lines.push(line);
      opts.onKill?.(line);
      agent = await startAgentProcess(dir);
    }
    publishing = false;
    await publisher;
    const last = published;
    const t0 = Date.now();
    await until(`the agent converges to v${last}`, () => (inspectDevice(dir, alice.account, last).version === last && inspectDevice(dir, alice.account, last).stateSeq === last ? true : undefined), 60_000);
    return { kills, published: last, configAhead, noConfigYet, convergeMs: Date.now() - t0, lines };
  } finally {
    publishing = false;
    alice.close();
    await agent.stop();
    await portal.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------- a change on probation

export interface ProbationKillReport {
  readonly kills: number;
  readonly confirmed: number;
  readonly reverted: number;
  /** kills that landed before the agent had applied the change (it applied it after the restart) */
  readonly beforeApply: number;
  readonly lines: string[];
}

const BAD = 29;
const GOOD_WINDOW_S = 60;
const BAD_WINDOW_S = 3;

/**
 * The device reaches the portal only through a link the test can cut; its hook cuts the link while
 * the setpoint is 29 (a network setting gone wrong) and restores it otherwise. Each round publishes
 * either 29 with a short window (no contact possible: it must end reverted, unless the kill came
 * before the hook cut the link) or a harmless value with a long one (it must end confirmed), kills
 * the agent at a random moment of the window, restarts it, and checks that the change ended
 * confirmed or reverted, with config.json and state.json saying the same.
 */
export async function probationKills(kills: number, opts: { onKill?: (line: string) => void } = {}): Promise<ProbationKillReport> {
  const portal = await startPortalProcess({ args: ['--no-mqtt'] });
  const dir0 = fs.mkdtempSync(path.join(os.tmpdir(), 'mesh-probation-kill-'));
  const cut = path.join(dir0, 'link-cut');
  const link = await cuttableLink(Number(new URL(portal.http).port), () => fs.existsSync(cut));
  const { dir, identity } = provisionDevice(link.url, { push: false, pollIntervalMs: 200 });
  const settings = path.join(dir, 'agent.json');
  const hook = `if grep -Eq '"setpoint": ?${BAD}([^0-9]|$)' "$MESH_CONFIG"; then touch '${cut}'; else rm -f '${cut}'; fi`;
  fs.writeFileSync(settings, JSON.stringify({ ...(JSON.parse(fs.readFileSync(settings, 'utf8')) as object), hook }));
  let agent = await startAgentProcess(dir);
  const alice = await TestOwner.create(portal.http, 'alice');
  const lines: string[] = [];
  let confirmed = 0;
  let reverted = 0;
  let beforeApply = 0;
  const setpoint = (): unknown => (JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as { thermostat?: { setpoint?: unknown } }).thermostat?.setpoint;
  // the verdict as the device keeps it: the event may die with the process between the state write and the event line
  const verdictOnDisk = (seq: number): 'confirmed' | 'reverted' | undefined => {
    const st = JSON.parse(fs.readFileSync(path.join(dir, 'state.json'), 'utf8')) as { pending?: unknown; owners: Record<string, { apps: Record<string, { seq: number }>; reverted?: Record<string, number> }> };
    if (st.pending != null) return undefined;
    const o = Object.values(st.owners)[0];
    if ((o?.reverted?.thermostat ?? 0) >= seq) return 'reverted';
    return (o?.apps.thermostat?.seq ?? 0) >= seq ? 'confirmed' : undefined;
  };
  try {
    await alice.claim(identity.labelUri);
    await agent.waitFor((e) => e.type === 'claimed', 20_000, 'claimed');
    let seq = 1;
    let good = 20;
    await alice.publish('thermostat', { setpoint: good });
    await agent.waitFor((e) => e.type === 'applied' && e.seq === seq, 20_000, 'the first configuration');
    for (let k = 0; k < kills; k++) {
      const bad = Math.random() < 0.5;
      const value = bad ? BAD : 10 + (k % 15);
      seq++;
      const before = agent;
      const start = Date.now();
      await alice.publish('thermostat', { setpoint: value }, { confirmS: bad ? BAD_WINDOW_S : GOOD_WINDOW_S });
      // a random moment of the window: before the change arrived, while the hook runs, while it waits for contact, after
      await sleep(rand(0, bad ? BAD_WINDOW_S * 1000 : 1500));
      await killHard(before);
      const applied = before.events.some((e) => e.type === 'applied' && e.seq === seq);
      const isEnd = (e: { type: string; seq?: unknown }): boolean => (e.type === 'confirmed' || e.type === 'reverted' || e.type === 'unhealthy') && e.seq === seq;
      const endedBefore = before.events.find(isEnd);
      // a hook the kill orphaned may still be touching the link file: let it finish before the board comes back
      await sleep(300);
      agent = await startAgentProcess(dir);
      const ended = await until(`the end of #${seq}'s probation after the restart`, () => verdictOnDisk(seq), 60_000);
      // the new process writes the state, then prints the event: a moment for the line to follow
      const event = endedBefore ?? (await agent.waitFor(isEnd, 3000, 'the event').catch(() => undefined));
      const end = { type: ended, reason: event?.reason };
      if (event !== undefined && (event.type === 'unhealthy' ? 'reverted' : event.type) !== ended) throw new Error(`#${seq}: the agent said ${event.type}, its state says ${ended}`);
      const now = setpoint();
      if (end.type === 'confirmed') {
        if (now !== value) throw new Error(`#${seq} (setpoint ${value}) ended confirmed, but config.json holds setpoint ${String(now)}`);
        confirmed++;
        good = value === BAD ? good : value;
      } else if (end.type === 'reverted') {
        if (now !== good) throw new Error(`#${seq} (setpoint ${value}) ended reverted, but config.json holds setpoint ${String(now)}, not ${good}`);
        if (!bad) throw new Error(`#${seq}, a change that keeps the link, was reverted: ${String(end.reason)}`);
        reverted++;
      }
      if (!applied) beforeApply++;
      const line = `kill ${k + 1}: #${seq} setpoint ${value} (${bad ? 'cuts the link' : 'harmless'}) killed after ${Date.now() - start} ms${applied ? '' : ', before it was applied'}; ${end.type}${endedBefore !== undefined ? ' before the kill' : event === undefined ? ' (its event died with the process)' : ' after the restart'}`;
      lines.push(line);
      opts.onKill?.(line);
      if (end.type === 'confirmed' && value === BAD) {
        // the kill came before the hook cut the link, so the device confirmed it: put the link back for the next round
        fs.rmSync(cut, { force: true });
        seq++;
        await alice.publish('thermostat', { setpoint: good });
        await agent.waitFor((e) => e.type === 'applied' && e.seq === seq, 30_000, `back to ${good}`);
      }
      await until('the link is up again', () => (fs.existsSync(cut) ? undefined : true), 30_000);
    }
    return { kills, confirmed, reverted, beforeApply, lines };
  } finally {
    alice.close();
    await agent.stop();
    await link.close();
    await portal.stop();
    fs.rmSync(dir, { recursive: true, force: true });
    fs.rmSync(dir0, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------- the owner CLI

export function runCli(home: string, args: string[], killAfterMs?: number): Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const env = { ...process.env };
    delete env.MESH_HOME;
    const p = spawn(process.execPath, [MESH_CLI, '--home', home, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
    let stdout = '';
    let stderr = '';
    p.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    p.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = killAfterMs === undefined ? undefined : setTimeout(() => p.kill('SIGKILL'), killAfterMs);
    p.on('exit', (code, signal) => {
      if (timer !== undefined) clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** Every file the CLI keeps in --home parses as JSON, and the CLI itself reads its state back. Returns the leftover temp files. */
export async function checkHome(home: string): Promise<string[]> {
  const temps: string[] = [];
  for (const f of fs.readdirSync(home)) {
    const p = path.join(home, f);
    if (!fs.statSync(p).isFile()) continue;
    if (f.endsWith('.tmp')) temps.push(f);
    else if (f.endsWith('.json')) {
      try {
        JSON.parse(fs.readFileSync(p, 'utf8'));
      } catch (e) {
        throw new Error(`${f} in --home does not parse after the crash: ${(e as Error).message}`);
      }
    }
  }
  const show = await runCli(home, ['profile', 'show', '--json']);
  if (show.code !== 0) throw new Error(`mesh profile show fails after the crash: ${show.stdout}${show.stderr}`);
  return temps;
}

export interface CliKillReport {
  readonly kills: number;
  readonly attempts: number;
  /** temp files left in --home by interrupted writes at the end (nothing removes them) */
  readonly leftoverTemps: number;
  readonly finalApplied: boolean;
}

export async function cliKills(kills: number, opts: { onKill?: (line: string) => void } = {}): Promise<CliKillReport> {
  const portal = await startPortalProcess();
  const { dir, identity } = provisionDevice(portal.http, { pollIntervalMs: 300 });
  const agent = await startAgentProcess(dir);
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'mesh-crash-cli-'));
  try {
    const created = await runCli(home, ['profile', 'create', '--portal', portal.http, '--account', 'olga', '--admin-name', 'laptop', '--json']);
    if (created.code !== 0) throw new Error(`profile create: ${created.stdout}${created.stderr}`);
    const claimed = await runCli(home, ['device', 'claim', identity.labelUri, '--name', 'hall', '--wait-ms', '15000', '--json']);
    if (claimed.code !== 0) throw new Error(`device claim: ${claimed.stdout}${claimed.stderr}`);
    let killed = 0;
    let attempts = 0;
    let temps: string[] = [];
    // kill somewhere in the command's life: how long a whole run takes here is learnt from the runs that finish
    let wholeMs = 500;
    for (let k = 0; killed < kills && k < kills * 10; k++) {
      attempts++;
      const t0 = Date.now();
      const r = await runCli(home, ['config', 'set', 'thermostat', `setpoint=${5 + (k % 25)}`, `schedule=c${k}`, '--wait', '0', '--json'], rand(40, Math.max(120, wholeMs)));
      if (r.signal === 'SIGKILL') killed++;
      else if (r.code !== 0) throw new Error(`mesh config set failed after an earlier crash: ${r.stdout}${r.stderr}`);
      else wholeMs = Math.round((wholeMs + (Date.now() - t0)) / 2);
      temps = await checkHome(home);
      opts.onKill?.(`attempt ${attempts}: ${r.signal === 'SIGKILL' ? 'killed' : `exited ${String(r.code)}`}; --home parses${temps.length > 0 ? ` (${temps.length} temp files left)` : ''}`);
    }
    const fin = await runCli(home, ['config', 'set', 'thermostat', 'setpoint=29', 'schedule=final', '--wait-ms', '20000', '--json']);
    if (fin.code !== 0) throw new Error(`the command after the crashes failed: ${fin.stdout}${fin.stderr}`);
    const applied = (JSON.parse(fin.stdout.trim().split('\n').pop() ?? '{}') as { results?: { result?: string }[] }).results?.[0]?.result === 'applied';
    const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as { thermostat: Record<string, unknown> };
    if (cfg.thermostat.setpoint !== 29 || cfg.thermostat.schedule !== 'final') throw new Error(`the device did not get the final configuration: ${JSON.stringify(cfg.thermostat)}`);
    return { kills: killed, attempts, leftoverTemps: temps.length, finalApplied: applied };
  } finally {
    await agent.stop();
    await portal.stop();
    fs.rmSync(dir, { recursive: true, force: true });
    fs.rmSync(home, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------- the portal

export interface PortalKillReport {
  readonly kills: number;
  readonly acknowledged: number;
  readonly inFlightAtKill: number;
  readonly lastHeadSizes: number[];
  readonly lines: string[];
}

interface Acked {
  readonly owner: TestOwner;
  readonly seq: number;
  readonly index: number;
  readonly env: SignedEnvelope;
}

/**
 * Kill the portal `kills` times under publish load by `owners` owners; `start` starts it on the same
 * data each time; `kill` is SIGKILL unless given (harness/powercut/kit.ts cuts the power instead).
 */
export async function portalKills(
  kills: number,
  start: () => Promise<PortalProcess>,
  opts: { owners?: number; onKill?: (line: string) => void; kill?: (p: PortalProcess) => Promise<void> } = {},
): Promise<PortalKillReport> {
  let portal = await start();
  const owners: TestOwner[] = [];
  const device = newDeviceIdentity({ model: 'thermostat', manufacturer: 'acme', serial: 'crash', portalAuthority: new URL(portal.http).host });
  const lines: string[] = [];
  let inFlightAtKill = 0;
  const lastHeadSizes: number[] = [];
  try {
    const secrets = deriveClaimSecrets(device.claimSecret);
    const dc = new PortalClient({ url: portal.http });
    await dc.register({ device: device.profile, endorsement: null, claim: { id: secrets.claimId, blob: sealClaimBlob(secrets, { profile: device.profile, endorsement: null }), portalKey: b64u(secrets.portalKey) }, request: await dc.sessionRequest(device.keys.auth, device.id) });
    dc.close();
    for (let i = 0; i < (opts.owners ?? 4); i++) {
      const o = await TestOwner.create(portal.http, `owner${i}`);
      await o.claim(device.labelUri);
      owners.push(o);
    }
    const portalKey = verifyPortalProfile((await (owners[0] as TestOwner).client.hello()).portal).sign;
    const acked: Acked[] = [];
    let lastHead: TreeHead | undefined;

    for (let cycle = 0; cycle < kills; cycle++) {
      let running = true;
      let stopped = 0;
      const ackedBefore = acked.length;
      const loops = owners.map(async (o) => {
        while (running) {
          const env = o.applicationProfile('thermostat', { setpoint: 5 + (acked.length % 25), schedule: `${o.account} ${Date.now()}` });
          const seq = (JSON.parse(Buffer.from(env.payload, 'base64url').toString('utf8')) as { seq: number }).seq;
          try {
            const r = await o.client.publish(env);
            acked.push({ owner: o, seq, index: r.index, env });
            const th = verifyTreeHead(r.treeHead, portalKey);
            if (lastHead === undefined || th.size > lastHead.size) lastHead = th;
          } catch (e) {
            if (!isMeshError(e)) throw e;
            stopped++;
            return; // the portal is gone: this owner waits for the restart
          }
        }
      });
      await sleep(rand(400, 1500));
      // on a loaded machine the first publish can take longer than that: each kill lands under load
      // and every kill lands after a few acknowledged publishes, counted, not timed: the test's load does not hang on the machine's speed
      await until('publishes acknowledged before the kill', () => (acked.length >= ackedBefore + MIN_ACKED_PER_KILL || stopped > 0 ? true : undefined), 60_000);
      await (opts.kill ?? killHard)(portal);
      running = false;
      await Promise.all(loops);
      inFlightAtKill += stopped;
      const before = lastHead;
      lastHeadSizes.push(before?.size ?? 0);

      portal = await start();
      for (const o of owners) {
        o.client.close();
        o.client = new PortalClient({ url: portal.http, identity: { subject: o.account, key: o.admin.sign } });
      }
      const anon = new PortalClient({ url: portal.http });
      try {
        if (verifyPortalProfile((await anon.hello()).portal).sign.join() !== portalKey.join()) throw new Error('the portal key changed across the restart');
        for (const a of acked) {
          const e = await anon.entry(a.index);
          if (e.data !== b64u(payloadBytes(a.env))) throw new Error(`log entry ${a.index} does not hold ${a.owner.account}'s acknowledged #${a.seq}`);
        }
        for (const o of owners) {
          const mine = acked.filter((a) => a.owner === o);
          const top = mine[mine.length - 1];
          if (top === undefined) continue;
          const acct = await o.client.account();
          const got = JSON.parse(Buffer.from(acct.applications.thermostat?.payload ?? '', 'base64url').toString('utf8') || '{}') as { seq?: number };
          if ((got.seq ?? 0) < top.seq) throw new Error(`${o.account}: the account holds #${got.seq ?? 0} after the restart, but #${top.seq} was acknowledged`);
        }
        const dev = new PortalClient({ url: portal.http, identity: { subject: device.id, key: device.keys.auth } });
        const feed = new Set<string>();
        for (let since = 0; ; ) {
          const r = await dev.download(since);
          for (const i of r.items) feed.add(i.object.payload);
          const lastItem = r.items[r.items.length - 1];
          if (lastItem === undefined || lastItem.n >= r.n) break;
          since = lastItem.n;
        }
        dev.close();
        const missing = acked.filter((a) => !feed.has(a.env.payload));
        if (missing.length > 0) throw new Error(`${missing.length} acknowledged application profiles are missing from the device's feed (first: ${missing[0]?.owner.account} #${missing[0]?.seq})`);
        const after = verifyTreeHead(await anon.treeHead(), portalKey);
        if (before !== undefined) {
          if (after.size < before.size) throw new Error(`the log shrank across the crash: ${before.size} -> ${after.size}`);
          const proof = before.size === after.size ? [] : (await anon.consistency(before.size, after.size)).proof.map((p) => fromB64u(p, 'proof', 32));
          verifyConsistency(before.size, after.size, before.root, after.root, proof);
        }
        const line = `kill ${cycle + 1}: ${acked.length} acknowledged so far, all present; last head a client saw ${before?.size ?? 0} entries, after the restart ${after.size}, consistent; ${stopped} publishes in flight at the kill`;
        lines.push(line);
        opts.onKill?.(line);
      } finally {
        anon.close();
      }
    }
    // the restarted portal takes new work
    await (owners[0] as TestOwner).publish('thermostat', { setpoint: 21 });
    return { kills, acknowledged: acked.length, inFlightAtKill, lastHeadSizes, lines };
  } finally {
    for (const o of owners) o.close();
    await portal.stop();
  }
}
