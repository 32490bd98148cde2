/**
 * A fleet of device agents in one process, on a real portal: each a real Agent (agent/agent.ts)
 * with its own device directory, as the factory writes it, polling the portal over HTTP. For the
 * tests that need many devices at once (a staged rollout over ten) without ten node processes on
 * a small machine. Each device's events are kept in order, for the test to check what it applied,
 * refused or reverted.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Agent } from '../agent/agent.js';
import { newDeviceIdentity, type DeviceIdentity } from '../mesh/device.js';
import { DEFAULT_SETTINGS, readAgentSettings, readDeviceDirectory, readSchemas, writeDeviceDirectory, type DeviceFiles } from '../runtime/device-files.js';
import { THERMOSTAT_SCHEMA } from './agent-process.js';

export interface FleetEvent {
  readonly type: string;
  readonly app?: string;
  readonly seq?: number;
  readonly code?: string;
  readonly reason?: string;
}

export interface FleetDevice {
  readonly index: number;
  readonly name: string;
  readonly dir: string;
  readonly identity: DeviceIdentity;
  readonly files: DeviceFiles;
  /** replaced by restart() */
  agent: Agent;
  readonly events: FleetEvent[];
  /** the thermostat configuration in effect on the device (config.json) */
  config(): Record<string, unknown>;
}

export interface Fleet {
  readonly devices: FleetDevice[];
  /** stop one device's agent (as a device that is switched off) */
  stopOne(d: FleetDevice): Promise<void>;
  /** start it again from its directory (a new Agent, the same events list) */
  restart(d: FleetDevice): Promise<void>;
  /** resolves once `pred` holds for one of the device's events (past or future) */
  waitFor(d: FleetDevice, pred: (e: FleetEvent) => boolean, timeoutMs: number, what: string): Promise<FleetEvent>;
  stop(): Promise<void>;
}

export interface FleetOptions {
  readonly count: number;
  /** names, "dev-1" ... by default */
  readonly name?: (i: number) => string;
  /**
   * a device of an older batch: its profile declares no schema (its owners cannot check a change
   * before publishing), and its firmware checks changes with this one
   */
  readonly undeclared?: (i: number) => unknown;
  readonly pollIntervalMs?: number;
  /** the device's health check (agent.json "health"), if it has one */
  readonly health?: (i: number) => string | undefined;
}

export async function startFleet(portal: string, opts: FleetOptions): Promise<Fleet> {
  const wire = (d: FleetDevice): void => {
    const agent = d.agent;
    agent.on('claimed', () => record(d, { type: 'claimed' }));
    agent.on('applied', (e) => record(d, { type: 'applied', app: e.app, seq: e.seq }));
    agent.on('refused', (e) => record(d, { type: 'refused', code: e.code, ...(e.app !== undefined ? { app: e.app } : {}), ...(e.seq !== undefined ? { seq: e.seq } : {}) }));
    for (const k of ['confirmed', 'reverted', 'unhealthy'] as const) agent.on(k, (e) => record(d, { type: k, app: e.app, seq: e.seq, ...(e.reason !== undefined ? { reason: e.reason } : {}) }));
  };
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'mesh-fleet-'));
  const devices: FleetDevice[] = [];
  const waiters: { d: FleetDevice; pred: (e: FleetEvent) => boolean; resolve: (e: FleetEvent) => void }[] = [];
  const record = (d: FleetDevice, e: FleetEvent): void => {
    d.events.push(e);
    for (const w of waiters.slice()) {
      if (w.d === d && w.pred(e)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(e);
      }
    }
  };
  for (let i = 0; i < opts.count; i++) {
    const name = opts.name?.(i) ?? `dev-${i + 1}`;
    const dir = path.join(base, name);
    const own = opts.undeclared?.(i);
    const identity = newDeviceIdentity({ model: 'thermostat', manufacturer: 'acme', serial: `fleet-${i + 1}`, portalAuthority: new URL(portal).host, ...(own === undefined ? { schemas: { thermostat: THERMOSTAT_SCHEMA } } : {}) });
    const health = opts.health?.(i);
    writeDeviceDirectory(dir, identity, { ...DEFAULT_SETTINGS, portal, pollIntervalMs: opts.pollIntervalMs ?? 200, push: false, ...(health !== undefined ? { health: { command: health, timeoutMs: 10_000 } } : {}) }, { thermostat: own ?? THERMOSTAT_SCHEMA });
    const files = readDeviceDirectory(dir);
    const agent = new Agent({ dir, device: files, settings: readAgentSettings(dir), schemas: readSchemas(dir) });
    const d: FleetDevice = {
      index: i,
      name,
      dir,
      identity,
      files,
      agent,
      events: [],
      config: () => {
        try {
          return (JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as { thermostat?: Record<string, unknown> }).thermostat ?? {};
        } catch {
          return {};
        }
      },
    };
    wire(d);
    devices.push(d);
  }
  await Promise.all(devices.map((d) => d.agent.start()));
  return {
    devices,
    stopOne: (d) => d.agent.stop(),
    async restart(d) {
      await d.agent.stop();
      d.agent = new Agent({ dir: d.dir, device: d.files, settings: readAgentSettings(d.dir), schemas: readSchemas(d.dir) });
      wire(d);
      await d.agent.start();
    },
    waitFor(d, pred, timeoutMs, what) {
      const seen = d.events.find(pred);
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const w = { d, pred, resolve: (e: FleetEvent) => (clearTimeout(t), resolve(e)) };
        const t = setTimeout(() => {
          waiters.splice(waiters.indexOf(w), 1);
          reject(new Error(`${d.name}: timed out waiting for ${what}; events: ${JSON.stringify(d.events)}`));
        }, timeoutMs);
        waiters.push(w);
      });
    },
    async stop() {
      await Promise.all(devices.map((d) => d.agent.stop()));
      fs.rmSync(base, { recursive: true, force: true });
    },
  };
}
