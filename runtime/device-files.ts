/**
 * The directory that goes onto a board's image (written by factory provisioning, or by the agent
 * itself on first boot). Layout, all under the agent's data directory:
 *
 *   device.json   public: { profile, endorsement, id, fingerprint, model, manufacturer, serial }
 *   keys.json     private (0600): the three private keys
 *   claim.json    private (0600): { secret (base64url), code, uri }: what the label shows
 *   agent.json    the agent's settings: { portal, pollIntervalMs, push, hook, localMqtt, maxStaleMs, health, portalKey }
 *   schemas/      one JSON Schema per application the device accepts: <app>.json
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { b64u, fromB64u } from '../mesh/bytes.js';
import { MeshError } from '../mesh/errors.js';
import { parseJson, obj, str, optStr } from '../mesh/json.js';
import { parseSignedEnvelope, type SignedEnvelope } from '../mesh/envelope.js';
import { parseDeviceKeys, serializeDeviceKeys, type DeviceKeys } from '../mesh/keys.js';
import type { DeviceIdentity } from '../mesh/device.js';
import { writeFileAtomic, writeJsonAtomic, readTextIfExists } from './files.js';

export interface AgentSettings {
  /** the portal's base URL, e.g. http://127.0.0.1:8080 */
  readonly portal: string;
  readonly pollIntervalMs: number;
  /** hear pushes over MQTT (the portal's broker, from Hello) */
  readonly push: boolean;
  /** command run after the effective configuration changed (the config path is in MESH_CONFIG) */
  readonly hook: string | null;
  /**
   * publish the effective configuration to this MQTT URL/topic for the device's own software; with
   * `dial`, also take changes made on the device from `<topic>/set` (agent/dial.ts)
   */
  readonly localMqtt: { readonly url: string; readonly topic: string; readonly dial?: boolean } | null;
  /** data older than this is reported stale (the device still runs on it) */
  readonly maxStaleMs: number;
  /** run after each change (after the hook), with a time limit: a non-zero exit undoes a change on probation (`unhealthy`) */
  readonly health: { readonly command: string; readonly timeoutMs: number } | null;
  /** the portal's key (its UDF, as `mesh-portal` prints it) the device trusts; null: the key met on first contact is pinned */
  readonly portalKey?: string | null;
}

export const DEFAULT_SETTINGS: Omit<AgentSettings, 'portal'> = {
  pollIntervalMs: 30_000,
  push: true,
  hook: null,
  localMqtt: null,
  maxStaleMs: 24 * 3600 * 1000,
  health: null,
  portalKey: null,
};

export interface DeviceFiles {
  readonly id: string;
  readonly fingerprint: string;
  readonly model: string;
  readonly manufacturer: string;
  readonly serial: string;
  readonly profile: SignedEnvelope;
  readonly endorsement: SignedEnvelope | null;
  readonly keys: DeviceKeys;
  readonly claimSecret: Uint8Array;
  readonly claimUri: string;
  readonly claimCode: string;
}

export function writeDeviceDirectory(dir: string, d: DeviceIdentity, settings: AgentSettings, schemas: Record<string, unknown> = {}): void {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  writeJsonAtomic(
    path.join(dir, 'device.json'),
    { id: d.id, fingerprint: d.fingerprint, model: d.model, manufacturer: d.manufacturer, serial: d.serial, profile: d.profile, endorsement: d.endorsement },
    0o644,
  );
  writeFileAtomic(path.join(dir, 'keys.json'), serializeDeviceKeys(d.keys), 0o600);
  writeJsonAtomic(path.join(dir, 'claim.json'), { secret: b64u(d.claimSecret), code: d.claimCode, uri: d.labelUri }, 0o600);
  writeJsonAtomic(path.join(dir, 'agent.json'), settings, 0o644);
  if (Object.keys(schemas).length > 0) {
    fs.mkdirSync(path.join(dir, 'schemas'), { recursive: true });
    for (const [app, schema] of Object.entries(schemas)) writeJsonAtomic(path.join(dir, 'schemas', `${app}.json`), schema, 0o644);
  }
}

/**
 * Give a provisioned directory a new label URI and label fingerprint (a label made again in the
 * current form: `mesh-provision label`); every other field of device.json and claim.json is kept.
 */
export function rewriteLabel(dir: string, l: { readonly uri: string; readonly fingerprint: string }): void {
  const dev = parseJson(fs.readFileSync(path.join(dir, 'device.json'), 'utf8'), 200_000, 'device.json') as Record<string, unknown>;
  const claim = parseJson(fs.readFileSync(path.join(dir, 'claim.json'), 'utf8'), 4096, 'claim.json') as Record<string, unknown>;
  writeJsonAtomic(path.join(dir, 'claim.json'), { ...claim, uri: l.uri }, 0o600);
  writeJsonAtomic(path.join(dir, 'device.json'), { ...dev, fingerprint: l.fingerprint }, 0o644);
}

export function hasDeviceDirectory(dir: string): boolean {
  return fs.existsSync(path.join(dir, 'device.json')) && fs.existsSync(path.join(dir, 'keys.json'));
}

export function readDeviceDirectory(dir: string): DeviceFiles {
  const need = (name: string): string => {
    const t = readTextIfExists(path.join(dir, name));
    if (t === undefined) throw new MeshError('state', `${path.join(dir, name)} is missing: provision the device or start it with --first-boot`);
    return t;
  };
  const dev = obj(parseJson(need('device.json'), 200_000, 'device.json'), 'device.json', ['id', 'fingerprint', 'model', 'manufacturer', 'serial', 'profile', 'endorsement']);
  const claim = obj(parseJson(need('claim.json'), 4096, 'claim.json'), 'claim.json', ['secret', 'code', 'uri']);
  return {
    id: str(dev, 'id', 'device.json', 120),
    fingerprint: str(dev, 'fingerprint', 'device.json', 60),
    model: str(dev, 'model', 'device.json', 64),
    manufacturer: str(dev, 'manufacturer', 'device.json', 64),
    serial: str(dev, 'serial', 'device.json', 64),
    profile: parseSignedEnvelope(dev.profile, 'device.json profile'),
    endorsement: dev.endorsement === null ? null : parseSignedEnvelope(dev.endorsement, 'device.json endorsement'),
    keys: parseDeviceKeys(need('keys.json')),
    claimSecret: fromB64u(claim.secret, 'claim.json secret', 16),
    claimUri: str(claim, 'uri', 'claim.json', 400),
    claimCode: str(claim, 'code', 'claim.json', 80),
  };
}

export function readAgentSettings(dir: string, overrides: Partial<AgentSettings> = {}): AgentSettings {
  const t = readTextIfExists(path.join(dir, 'agent.json'));
  const o = t === undefined ? {} : obj(parseJson(t, 16_384, 'agent.json'), 'agent.json', [], ['portal', 'pollIntervalMs', 'push', 'hook', 'localMqtt', 'maxStaleMs', 'health', 'portalKey']);
  const portal = overrides.portal ?? optStr(o, 'portal', 'agent.json', 300);
  if (portal === undefined) throw new MeshError('usage', 'no portal URL: set "portal" in agent.json or pass --portal');
  const num = (k: string, d: number): number => (typeof o[k] === 'number' && Number.isFinite(o[k]) ? (o[k] as number) : d);
  return {
    portal,
    pollIntervalMs: overrides.pollIntervalMs ?? num('pollIntervalMs', DEFAULT_SETTINGS.pollIntervalMs),
    push: overrides.push ?? (typeof o.push === 'boolean' ? o.push : DEFAULT_SETTINGS.push),
    hook: overrides.hook ?? (typeof o.hook === 'string' ? o.hook : null),
    localMqtt: overrides.localMqtt ?? localMqttOf(o.localMqtt),
    maxStaleMs: overrides.maxStaleMs ?? num('maxStaleMs', DEFAULT_SETTINGS.maxStaleMs),
    health: overrides.health ?? healthOf(o.health),
    portalKey: overrides.portalKey ?? (o.portalKey === null ? null : (optStr(o, 'portalKey', 'agent.json', 120) ?? null)),
  };
}

/** agent.json "localMqtt": { "url": ..., "topic": ..., "dial": true|false }. */
function localMqttOf(v: unknown): AgentSettings['localMqtt'] {
  if (typeof v !== 'object' || v === null) return null;
  const o = v as { url?: unknown; topic?: unknown; dial?: unknown };
  if (typeof o.url !== 'string' || typeof o.topic !== 'string' || o.topic.length === 0) throw new MeshError('usage', 'agent.json "localMqtt" needs a "url" and a "topic"');
  // the device speaks MQTT 3.1.1 over TCP or TLS (runtime/mqtt-lite.ts), not over WebSockets
  if (!/^mqtts?:\/\/[^/]/.test(o.url)) throw new MeshError('usage', `agent.json "localMqtt" "url" must start with mqtt:// or mqtts:// (not ${JSON.stringify(o.url.slice(0, 80))})`);
  return { url: o.url, topic: o.topic, ...(o.dial === true ? { dial: true } : {}) };
}

/** agent.json "health": a command, or { "command": ..., "timeoutMs": N } (default 10 s). */
function healthOf(v: unknown): AgentSettings['health'] {
  if (typeof v === 'string' && v.length > 0) return { command: v, timeoutMs: 10_000 };
  if (typeof v !== 'object' || v === null) return null;
  const o = v as { command?: unknown; timeoutMs?: unknown };
  if (typeof o.command !== 'string' || o.command.length === 0) throw new MeshError('usage', 'agent.json "health" needs a command');
  const t = typeof o.timeoutMs === 'number' && Number.isFinite(o.timeoutMs) ? Math.min(Math.max(o.timeoutMs, 100), 600_000) : 10_000;
  return { command: o.command, timeoutMs: t };
}

export function readSchemas(dir: string): Record<string, unknown> {
  const sdir = path.join(dir, 'schemas');
  const out: Record<string, unknown> = {};
  let names: string[] = [];
  try {
    names = fs.readdirSync(sdir);
  } catch {
    return out;
  }
  for (const n of names) {
    if (!n.endsWith('.json')) continue;
    out[n.slice(0, -5)] = parseJson(fs.readFileSync(path.join(sdir, n)), 65_536, `schema ${n}`);
  }
  return out;
}
