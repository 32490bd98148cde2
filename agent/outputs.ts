/**
 * What the device's own software sees: the effective configuration file (written through conf,
 * atomically, then the directory fsynced), the hook run after a change, and the configuration
 * published to a local MQTT topic.
 */
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { MeshError } from '../mesh/errors.js';
import { fsyncDir } from '../runtime/files.js';
import type { AgentSettings } from '../runtime/device-files.js';
import { systemClock, type Clock } from '../runtime/clock.js';
import { MqttLite } from '../runtime/mqtt-lite.js';

export const CONFIG_FILE = 'config.json';

/** A failure of an output, for the state's error list (the owners see it in the signed status). */
export type OutputFailure = (e: { code: 'unavailable' | 'internal'; message: string }) => void;

let ConfCtor: typeof import('conf').default | undefined;

export function confLoaded(): boolean {
  return ConfCtor !== undefined;
}

/** conf is loaded once, lazily: start-up does not pay for it on a device that is not yet configured. */
export async function loadConf(): Promise<void> {
  if (ConfCtor === undefined) ConfCtor = (await import('conf')).default;
}

/**
 * The effective configuration file, written through conf (which writes a temp file, fsyncs it and
 * renames it over config.json); the directory is then fsynced so the rename survives a power cut.
 * Synchronous: the caller commits the state that describes it right after, in the same step.
 */
export function writeConf(dir: string, doc: Record<string, unknown>): void {
  if (ConfCtor === undefined) throw new MeshError('internal', 'conf not loaded');
  const store = new ConfCtor<Record<string, unknown>>({ cwd: dir, configName: 'config', configFileMode: 0o644, clearInvalidConfig: true });
  store.store = doc;
  fsyncDir(dir);
}

/** Run the hook; the promise settles when it has exited (or failed to start). */
export function runHook(dir: string, settings: AgentSettings, failed: OutputFailure): Promise<void> {
  const hook = settings.hook;
  if (hook === null) return Promise.resolve();
  return new Promise((resolve) => {
    const child = spawn('/bin/sh', ['-c', hook], { env: { ...process.env, MESH_CONFIG: path.join(dir, CONFIG_FILE) }, stdio: 'ignore' });
    child.on('error', (e) => {
      failed({ code: 'internal', message: `the hook failed to start: ${e.message}` });
      resolve();
    });
    child.on('exit', (code) => {
      if (code !== 0) failed({ code: 'internal', message: `the hook exited with ${code}` });
      resolve();
    });
  });
}

/** Run the health check with its time limit: ok, or why not with the last lines it printed. */
export function runHealth(dir: string, settings: AgentSettings): Promise<{ ok: true } | { ok: false; reason: string }> {
  const h = settings.health;
  if (h === null) return Promise.resolve({ ok: true });
  return new Promise((resolve) => {
    let out = '';
    const child = spawn('/bin/sh', ['-c', h.command], { env: { ...process.env, MESH_CONFIG: path.join(dir, CONFIG_FILE) }, stdio: ['ignore', 'pipe', 'pipe'] });
    const keep = (d: Buffer): void => {
      out = (out + d.toString('utf8')).slice(-2000);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    const timer = setTimeout(() => child.kill('SIGKILL'), h.timeoutMs);
    const tail = (): string => out.trim().split('\n').slice(-3).join(' / ').slice(0, 300);
    child.on('error', (e) => {
      clearTimeout(timer);
      resolve({ ok: false, reason: `the health check did not start: ${e.message}` });
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve({ ok: true });
      else resolve({ ok: false, reason: `the health check ${signal !== null ? `was stopped after ${h.timeoutMs} ms` : `exited with ${code}`}${tail() !== '' ? `: ${tail()}` : ''}` });
    });
  });
}

export async function publishLocal(settings: AgentSettings, doc: unknown, failed: OutputFailure, clock: Clock = systemClock): Promise<void> {
  const lm = settings.localMqtt;
  if (lm === null) return;
  try {
    const c = await MqttLite.connect({ url: lm.url, clientId: `mesh-out-${process.pid}-${Math.floor(clock.random() * 1e9).toString(36)}`, connectTimeoutMs: 5000, keepaliveS: 0, clock });
    try {
      await c.publish(lm.topic, JSON.stringify(doc), { qos: 1, retain: true });
    } finally {
      await c.end();
    }
  } catch (e) {
    failed({ code: 'unavailable', message: `could not publish the configuration to ${lm.url}: ${(e as Error).message}` });
  }
}
