/**
 * Run a device agent as a real process: provision a device directory (as the factory does),
 * start `node dist/agent/cli.js run`, parse its ready line and its event lines.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { newDeviceIdentity, type DeviceIdentity } from '../mesh/device.js';
import { writeDeviceDirectory, DEFAULT_SETTINGS } from '../runtime/device-files.js';

const dist = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const AGENT_CLI = path.join(dist, 'agent', 'cli.js');
export const REPO = path.resolve(dist, '..');

export const THERMOSTAT_SCHEMA = JSON.parse(fs.readFileSync(path.join(REPO, 'examples', 'thermostat.schema.json'), 'utf8')) as unknown;

export function provisionDevice(portal: string, opts: { pollIntervalMs?: number; push?: boolean; dir?: string } = {}): { dir: string; identity: DeviceIdentity } {
  const dir = opts.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'mesh-agent-test-'));
  const identity = newDeviceIdentity({ model: 'thermostat', manufacturer: 'acme', serial: 'test-1', portalAuthority: new URL(portal).host, schemas: { thermostat: THERMOSTAT_SCHEMA } });
  writeDeviceDirectory(dir, identity, { ...DEFAULT_SETTINGS, portal, pollIntervalMs: opts.pollIntervalMs ?? 1000, push: opts.push ?? true }, { thermostat: THERMOSTAT_SCHEMA });
  return { dir, identity };
}

export interface AgentEvent {
  readonly type: string;
  readonly [k: string]: unknown;
}

export interface AgentProcess {
  readonly proc: ChildProcess;
  readonly ready: Record<string, unknown>;
  readonly events: AgentEvent[];
  waitFor(pred: (e: AgentEvent) => boolean, timeoutMs?: number, what?: string): Promise<AgentEvent>;
  logs(): string;
  stop(): Promise<number | null>;
}

const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const p of running) p.kill('SIGKILL');
});

/** `env` may fake the agent's clock for the whole process (harness/faketime.ts fakeTimeEnv): the process is node itself. */
/** `nodeArgs`: options for node itself, before the script (the V8 options a unit or image sets). */
export async function startAgentProcess(dir: string, args: string[] = [], file = AGENT_CLI, env: Record<string, string> = {}, nodeArgs: readonly string[] = []): Promise<AgentProcess> {
  const proc = spawn(process.execPath, [...nodeArgs, file, 'run', '--data', dir, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  running.add(proc);
  const signal = (sig: NodeJS.Signals): void => void proc.kill(sig);
  const events: AgentEvent[] = [];
  const waiters: { pred: (e: AgentEvent) => boolean; resolve: (e: AgentEvent) => void }[] = [];
  let stderr = '';
  proc.stderr?.setEncoding('utf8');
  proc.stderr?.on('data', (d: string) => {
    stderr = (stderr + d).slice(-200_000);
  });
  const exited = new Promise<number | null>((resolve) =>
    proc.once('exit', (code) => {
      running.delete(proc);
      resolve(code);
    }),
  );
  const ready = await new Promise<Record<string, unknown>>((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error(`agent not ready in 20 s\n${stderr}`)), 20_000);
    proc.stdout?.setEncoding('utf8');
    proc.stdout?.on('data', (d: string) => {
      buf += d;
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (line.startsWith('mesh-agent ready ')) {
          clearTimeout(timer);
          resolve(JSON.parse(line.slice(17)) as Record<string, unknown>);
        } else if (line.startsWith('mesh-agent event ')) {
          const e = JSON.parse(line.slice(17)) as AgentEvent;
          events.push(e);
          for (const w of waiters.slice()) { // a copy: the loop splices
            if (w.pred(e)) {
              waiters.splice(waiters.indexOf(w), 1);
              w.resolve(e);
            }
          }
        }
      }
    });
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`agent exited ${String(code)}\n${stderr}`));
    });
  });
  return {
    proc,
    ready,
    events,
    logs: () => stderr,
    waitFor(pred, timeoutMs = 15_000, what = 'an agent event') {
      const seen = events.find(pred);
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const w = { pred, resolve: (e: AgentEvent) => (clearTimeout(t), resolve(e)) };
        const t = setTimeout(() => {
          waiters.splice(waiters.indexOf(w), 1);
          reject(new Error(`timed out waiting for ${what}; events: ${JSON.stringify(events)}\n${stderr.slice(-3000)}`));
        }, timeoutMs);
        waiters.push(w);
      });
    },
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) signal('SIGTERM');
      return exited;
    },
  };
}

export function readConfig(dir: string): Record<string, Record<string, unknown>> {
  try {
    return JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as Record<string, Record<string, unknown>>;
  } catch {
    return {};
  }
}

export function agentStatus(dir: string): Promise<{ owners: { account: string; master: string; apps: Record<string, { seq: number }> }[]; config: Record<string, Record<string, unknown>>; errors: { code: string; message: string; app?: string; seq?: number }[]; cursor: number; registered: boolean }> {
  return new Promise((resolve, reject) =>
    execFile(process.execPath, [AGENT_CLI, 'status', '--data', dir, '--json'], (err, stdout, stderr) => (err ? reject(new Error(stderr)) : resolve(JSON.parse(stdout) as never))),
  );
}

export async function until<T>(what: string, fn: () => Promise<T | undefined> | T | undefined, timeoutMs = 15_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Press the device's button: `mesh-agent open-claim-window`, so the label can claim a device that has owners. */
export function openClaimWindow(dir: string, minutes = 5): Promise<void> {
  return new Promise((resolve, reject) =>
    execFile(process.execPath, [AGENT_CLI, 'open-claim-window', '--data', dir, '--minutes', String(minutes)], (err, _stdout, stderr) => (err ? reject(new Error(stderr)) : resolve())),
  );
}
