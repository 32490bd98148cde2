/**
 * The world of a hostile-portal test: a REAL portal process (SQLite, no MQTT: the device polls,
 * so every byte it receives passes through the proxy), the man-in-the-middle proxy in front of
 * it, a REAL device agent process provisioned to talk to the proxy, and Alice (a library owner
 * talking to the portal directly) who has claimed the device and configured it once.
 * `mesh(home, args)` runs the REAL owner CLI as a process.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ExecutionContext } from 'ava';
import type { DeviceIdentity } from '../../mesh/device.js';
import type { SignedEnvelope } from '../../mesh/envelope.js';
import { b64u, fromB64u } from '../../mesh/bytes.js';
import { verifyStatus, type StatusPayload } from '../../mesh/messages.js';
import { verifyDeviceProfile } from '../../mesh/profiles.js';
import { writeJsonAtomic } from '../../runtime/files.js';
import { startPortalProcess, type PortalProcess } from '../../harness/portal-process.js';
import { agentStatus, provisionDevice, startAgentProcess, until, type AgentEvent, type AgentProcess } from '../../harness/agent-process.js';
import { TestOwner } from '../../harness/owner.js';
import { startProxy, type Proxy } from './proxy.js';

const here = path.dirname(fileURLToPath(import.meta.url));
/** dist/test/hostile -> dist/admin/cli.js */
export const MESH_CLI = path.resolve(here, '..', '..', 'admin', 'cli.js');

export interface World {
  readonly portal: PortalProcess;
  readonly proxy: Proxy;
  readonly dir: string;
  readonly identity: DeviceIdentity;
  agent: AgentProcess;
  readonly alice: TestOwner;
  /** config.json exactly as on disk */
  configBytes(): string;
  /** the agent's persisted state */
  state(): { n: number; owners: Record<string, { account: string; masterSeq: number; apps: Record<string, { seq: number }> }> };
  /** the device's latest signed status as the owner reads it from the portal (verified with the device key) */
  signedStatus(owner?: TestOwner): Promise<StatusPayload | undefined>;
  /** every extra resource to close */
  readonly cleanups: (() => unknown)[];
  close(): Promise<void>;
}

export interface WorldOptions {
  /** extra mesh-portal arguments (it always runs with --no-mqtt: nothing reaches the device but through the proxy) */
  readonly portalArgs?: string[];
  /** Alice's first thermostat configuration, applied before the test starts (null: none) */
  readonly initial?: Record<string, unknown> | null;
  readonly pollIntervalMs?: number;
  /** the device's maxStaleMs setting (agent.json) */
  readonly maxStaleMs?: number;
  /** the device listens for pushes (at whatever broker Hello names: see beforeAgent) */
  readonly push?: boolean;
  /** runs after the proxy is up and before the agent starts (e.g. to rewrite Hello) */
  readonly beforeAgent?: (proxy: Proxy, deviceId: string) => Promise<void> | void;
}

export async function hostileWorld(opts: WorldOptions = {}): Promise<World> {
  const portal = await startPortalProcess({ args: ['--no-mqtt', ...(opts.portalArgs ?? [])] });
  const proxy = await startProxy(portal.http);
  const { dir, identity } = provisionDevice(proxy.url, { push: opts.push ?? false, pollIntervalMs: opts.pollIntervalMs ?? 200 });
  await opts.beforeAgent?.(proxy, identity.id);
  if (opts.maxStaleMs !== undefined) {
    const f = path.join(dir, 'agent.json');
    writeJsonAtomic(f, { ...(JSON.parse(fs.readFileSync(f, 'utf8')) as object), maxStaleMs: opts.maxStaleMs }, 0o644);
  }
  const agent = await startAgentProcess(dir);
  const alice = await TestOwner.create(portal.http, 'alice');
  const devPub = fromB64u(verifyDeviceProfile(identity.profile).payload.sign, 'sign', 32);
  const cleanups: (() => unknown)[] = [];
  const w: World = {
    portal,
    proxy,
    dir,
    identity,
    agent,
    alice,
    cleanups,
    configBytes: () => {
      try {
        return fs.readFileSync(path.join(dir, 'config.json'), 'utf8');
      } catch {
        return '';
      }
    },
    state: () => JSON.parse(fs.readFileSync(path.join(dir, 'state.json'), 'utf8')) as ReturnType<World['state']>,
    async signedStatus(owner = alice) {
      const s = (await owner.client.deviceStatus()).find((d) => d.device === identity.id)?.status;
      return s == null ? undefined : verifyStatus(s, devPub);
    },
    async close() {
      for (const c of cleanups.reverse()) await Promise.resolve(c()).catch(() => undefined);
      alice.close();
      await w.agent.stop();
      await proxy.close();
      await portal.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    await alice.claim(identity.labelUri);
    await agent.waitFor((e) => e.type === 'claimed' && e.account === alice.account, 15_000, 'alice claimed');
    if (opts.initial !== null) {
      await alice.publish('thermostat', (opts.initial ?? { setpoint: 20, mode: 'eco' }) as never);
      await agent.waitFor((e) => e.type === 'applied' && e.account === alice.account && e.seq === 1, 15_000, 'the first configuration applied');
    }
  } catch (e) {
    await w.close();
    throw e;
  }
  return w;
}

/** Wait for the device to refuse something, with the code expected. */
export function refusal(w: World, pred: (e: AgentEvent) => boolean, what: string, timeoutMs = 15_000): Promise<AgentEvent> {
  return w.agent.waitFor((e) => e.type === 'refused' && pred(e), timeoutMs, what);
}

/** The checks every attack ends with: config.json byte for byte as before; the code in the agent's status. */
export async function assertRefused(t: ExecutionContext, w: World, before: string, code: string): Promise<void> {
  t.is(w.configBytes(), before, 'config.json is exactly as before the attack');
  const st = await agentStatus(w.dir);
  t.true(st.errors.some((e) => e.code === code), `the agent's status lists ${code}: ${JSON.stringify(st.errors.map((e) => e.code))}`);
  t.is(st.owners.length >= 1, true);
  // and the owner can read the reason in the device's signed report (the device posts it after the refusal)
  const signed = await until(`a signed status carrying ${code}`, async () => {
    const s = await w.signedStatus();
    return s?.errors.some((e) => e.code === code) === true ? s : undefined;
  });
  t.true(signed.errors.some((e) => e.code === code));
}

/** After the attack stops the device still obeys its owner: publish the next version and see it applied. */
export async function assertRecovers(t: ExecutionContext, w: World, config: Record<string, unknown>, owner: TestOwner = w.alice): Promise<void> {
  const env = await owner.publish('thermostat', config as never);
  const seq = (JSON.parse(Buffer.from(env.payload, 'base64url').toString('utf8')) as { seq: number }).seq;
  await w.agent.waitFor((e) => e.type === 'applied' && e.account === owner.account && e.seq === seq, 15_000, `seq ${seq} applied after the attack`);
  const cfg = JSON.parse(w.configBytes()) as { thermostat: Record<string, unknown> };
  for (const [k, v] of Object.entries(config)) t.deepEqual(cfg.thermostat[k], v, `after the attack, ${k} follows the owner`);
  t.is(w.agent.proc.exitCode, null, 'the agent process is still running');
}

// ---------------------------------------------------------------- envelope surgery

export const payloadOf = (env: { payload: string }): Record<string, unknown> => JSON.parse(Buffer.from(env.payload, 'base64url').toString('utf8')) as Record<string, unknown>;

/** The same envelope with one bit of its first signature flipped. */
export function flipSignatureBit(env: SignedEnvelope, bit = 77): SignedEnvelope {
  const s = env.sigs[0];
  if (s === undefined) throw new Error('no signature');
  const b = fromB64u(s.sig, 'sig', 64);
  b[Math.floor(bit / 8) % 64] = (b[Math.floor(bit / 8) % 64] as number) ^ (1 << (bit % 8));
  return { ...env, sigs: [{ ...s, sig: b64u(b) }, ...env.sigs.slice(1)] };
}

// ---------------------------------------------------------------- the owner CLI as a process

export interface CliRun {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
  readonly json: any;
}

export function mesh(home: string, args: string[], timeoutMs = 60_000, extraEnv: Record<string, string> = {}): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const env = { ...process.env, ...extraEnv };
    delete env.MESH_HOME;
    const child = spawn(process.execPath, [MESH_CLI, '--home', home, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      let json: unknown;
      try {
        json = JSON.parse(stdout.trim().split('\n').pop() ?? '');
      } catch {
        json = undefined;
      }
      resolve({ code: code ?? -1, stdout, stderr, json });
    });
  });
}

export const cliError = (r: CliRun): string | undefined => (r.json as { error?: { code?: string } } | undefined)?.error?.code;

export function tmpHome(name: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `mesh-hostile-${name}-`));
}
