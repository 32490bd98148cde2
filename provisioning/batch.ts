/**
 * Factory provisioning: make N device identities, each in its own directory ready to be copied
 * onto a board image (runtime/device-files.ts lays it out), with a systemd unit and a printable
 * label; and one manifest of public data for the manufacturer's records.
 *
 *   OUT/<serial>/            device.json, keys.json (0600), claim.json (0600), agent.json, schemas/,
 *                            mesh-agent.service, label.svg (0600), label.png (0600)
 *   OUT/manifest.json        public only: per device serial, id, fingerprint, model, endorsement
 *   OUT/manufacturer-key.json  (0600) only when no --manufacturer-key was given
 *
 * Crash safety: a device is appended to OUT/manifest.partial.jsonl only after all its files are
 * written and synced. manifest.json is written atomically at the end and the partial file removed,
 * so "manifest.json present" means the batch is complete. An interrupted batch is resumed with
 * `resume: true`: recorded devices are kept, a device directory that was never recorded (its
 * secrets never reached any manifest or printer) is deleted and made again.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { b64u, hex, utf8 } from '../mesh/bytes.js';
import { sha512 } from '../mesh/crypto.js';
import { MeshError } from '../mesh/errors.js';
import { NAME_PATTERN } from '../mesh/profiles.js';
import { checkSchema } from '../mesh/schema.js';
import { DEFAULT_SETTINGS, hasDeviceDirectory, type AgentSettings } from '../runtime/device-files.js';
import { cleanTempFiles, fsyncDir, writeFileAtomic, writeJsonAtomic } from '../runtime/files.js';
import { createManufacturerKey, readManufacturerKey, type ManufacturerKey } from './manufacturer-key.js';
import { LABEL_PNG, LABEL_SVG } from './label.js';
import { agentUnit, SYSUSERS_FILE, UNIT_FILE } from './systemd.js';
import { ioError, makeDevice, type DeviceJobContext, type ManifestDevice } from './device-job.js';
import type { WorkerReply } from './worker.js';

export type { ManifestDevice } from './device-job.js';

export const MANIFEST_FILE = 'manifest.json';
export const PARTIAL_FILE = 'manifest.partial.jsonl';
export const MANUFACTURER_KEY_FILE = 'manufacturer-key.json';
export const MANIFEST_FORMAT = 'mesh-provision-manifest-v1';
export const MAX_BATCH = 1_000_000;
export const DEFAULT_MANUFACTURER = 'acme';
/** batches this large use worker threads by default */
export const WORKERS_FROM = 64;
export const MAX_WORKERS = 16;

export interface BatchOptions {
  /** how many devices (1 .. 1,000,000) */
  readonly count: number;
  /** model name: lowercase letters, digits, ".", "_", "-" */
  readonly model: string;
  /** output directory: must not exist, or be empty, unless resuming */
  readonly out: string;
  /** the portal's base URL; its host[:port] is printed in each label URI */
  readonly portal: string;
  /** default "acme" */
  readonly manufacturer?: string;
  /** JSON {"sign": base64url seed}; without it a new key is made at OUT/manufacturer-key.json */
  readonly manufacturerKeyFile?: string;
  /** application name -> JSON Schema, copied to each device's schemas/ */
  readonly schemas?: Readonly<Record<string, unknown>>;
  /** serial = prefix + zero-padded number; default "<model>-" */
  readonly serialPrefix?: string;
  /** first serial number; default 1 */
  readonly serialStart?: number;
  /** the agent's poll interval (agent.json); default DEFAULT_SETTINGS.pollIntervalMs */
  readonly pollIntervalMs?: number;
  /** carry on an interrupted batch in `out` (same options) instead of refusing a non-empty `out` */
  readonly resume?: boolean;
  /** stop between devices; the batch can then be resumed */
  readonly signal?: AbortSignal;
  /**
   * worker threads making devices in parallel (file syncing dominates, so more than the cores
   * helps); default: 1 (in-process) below WORKERS_FROM devices, else min(4, 2 x cores)
   */
  readonly workers?: number;
}

export interface BatchProgress {
  /** devices complete, including those kept from an interrupted run */
  readonly done: number;
  readonly total: number;
  /** devices made by this run */
  readonly made: number;
  readonly elapsedMs: number;
  /** devices per second made by this run */
  readonly rate: number;
  /** estimated time left, ms (NaN until the rate is known) */
  readonly etaMs: number;
  readonly serial: string;
}

export interface Manifest {
  readonly format: typeof MANIFEST_FORMAT;
  readonly manufacturer: string;
  /** UDF of the manufacturer's public key: what owners and portals pin */
  readonly manufacturerKeyId: string;
  /** the manufacturer's Ed25519 public key, base64url */
  readonly manufacturerKey: string;
  readonly model: string;
  readonly portal: string;
  readonly count: number;
  readonly created: string;
  readonly devices: readonly ManifestDevice[];
}

export interface BatchResult {
  readonly dir: string;
  readonly manifest: string;
  /** devices in the batch */
  readonly count: number;
  /** devices made by this run */
  readonly made: number;
  /** devices kept from an interrupted run */
  readonly kept: number;
  readonly seconds: number;
  /** devices made by this run per second */
  readonly devicesPerSecond: number;
  readonly firstSerial: string;
  readonly lastSerial: string;
  readonly manufacturerKeyId: string;
  readonly manufacturerKeyFile: string;
  /** a new manufacturer key was made by this run */
  readonly manufacturerKeyGenerated: boolean;
  /** the manufacturer key file is readable by group or others */
  readonly manufacturerKeyLooseMode: boolean;
}

/** What must be the same to resume a batch: the first line of the partial manifest. */
interface BatchHeader {
  readonly format: typeof MANIFEST_FORMAT;
  readonly manufacturer: string;
  readonly model: string;
  readonly portal: string;
  readonly count: number;
  readonly serialPrefix: string;
  readonly serialStart: number;
  readonly width: number;
  readonly manufacturerKeyId: string;
  readonly pollIntervalMs: number;
  readonly schemas: readonly string[];
  /** SHA-512 of the schemas' JSON: a resume must ship the same schemas, not only the same names */
  readonly schemasDigest: string;
  readonly started: string;
}

interface Plan {
  readonly out: string;
  readonly count: number;
  readonly model: string;
  readonly manufacturer: string;
  readonly portal: string;
  readonly authority: string;
  readonly serialPrefix: string;
  readonly serialStart: number;
  readonly width: number;
  readonly pollIntervalMs: number;
  readonly schemas: Readonly<Record<string, unknown>>;
  readonly workers: number | undefined;
}

const usage = (message: string, detail?: Record<string, unknown>): never => {
  throw new MeshError('usage', message, detail);
};

const isInt = (n: unknown): n is number => typeof n === 'number' && Number.isSafeInteger(n);

/** host[:port] of a portal URL as printed in a label URI; `usage` if it is not an http(s) URL. */
export function portalAuthority(portal: string): string {
  let u: URL;
  try {
    u = new URL(portal);
  } catch {
    return usage(`--portal ${JSON.stringify(portal)} is not a URL; give the portal's base URL, e.g. https://portal.example.com`);
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:') usage(`--portal must be an http or https URL, not ${u.protocol}`);
  if (u.username !== '' || u.password !== '') usage('--portal must not carry a user name or password: it is printed on every label');
  if (u.search !== '' || u.hash !== '') usage('--portal must not have a query or fragment');
  if (!/^[A-Za-z0-9.:[\]-]{1,260}$/.test(u.host)) usage(`--portal host ${u.host} cannot be printed in a label URI`);
  return u.host;
}

export function serialOf(prefix: string, n: number, width: number): string {
  return prefix + String(n).padStart(width, '0');
}

function plan(o: BatchOptions): Plan {
  if (!isInt(o.count) || o.count < 1 || o.count > MAX_BATCH) usage(`--count must be a whole number from 1 to ${MAX_BATCH}`);
  if (typeof o.model !== 'string' || o.model === '') usage('--model is required');
  if (!NAME_PATTERN.test(o.model)) usage(`--model ${JSON.stringify(o.model)}: use 1-64 lowercase letters, digits, ".", "_" or "-", starting with a letter or digit`);
  const manufacturer = o.manufacturer ?? DEFAULT_MANUFACTURER;
  if (!NAME_PATTERN.test(manufacturer)) usage(`--manufacturer ${JSON.stringify(manufacturer)}: use 1-64 lowercase letters, digits, ".", "_" or "-", starting with a letter or digit`);
  if (typeof o.out !== 'string' || o.out === '') usage('--out is required');
  if (typeof o.portal !== 'string' || o.portal === '') usage('--portal is required');
  const authority = portalAuthority(o.portal);
  const serialStart = o.serialStart ?? 1;
  if (!isInt(serialStart) || serialStart < 0) usage('--serial-start must be a whole number, 0 or more');
  const last = serialStart + o.count - 1;
  const width = Math.max(6, String(last).length);
  const serialPrefix = o.serialPrefix ?? `${o.model}-`;
  for (const s of [serialOf(serialPrefix, serialStart, width), serialOf(serialPrefix, last, width)]) {
    if (!NAME_PATTERN.test(s)) usage(`serial ${JSON.stringify(s)}: serials are 1-64 lowercase letters, digits, ".", "_" or "-"; choose another --serial-prefix`);
  }
  const pollIntervalMs = o.pollIntervalMs ?? DEFAULT_SETTINGS.pollIntervalMs;
  if (!isInt(pollIntervalMs) || pollIntervalMs < 100 || pollIntervalMs > 86_400_000) usage('--poll-interval-ms must be a whole number from 100 to 86400000');
  const schemas: Record<string, unknown> = {};
  for (const [app, schema] of Object.entries(o.schemas ?? {})) {
    if (!NAME_PATTERN.test(app)) usage(`--schema ${JSON.stringify(app)}: application names are lowercase letters, digits, ".", "_" or "-"`);
    checkSchema(schema, `schema for ${app}`);
    if (Buffer.byteLength(JSON.stringify(schema)) > 60_000) throw new MeshError('too-large', `the schema for ${app} is too large for the agent (60 kB at most)`);
    schemas[app] = schema;
  }
  if (o.workers !== undefined && (!isInt(o.workers) || o.workers < 1 || o.workers > MAX_WORKERS)) usage(`workers must be a whole number from 1 to ${MAX_WORKERS}`);
  return { workers: o.workers, out: path.resolve(o.out), count: o.count, model: o.model, manufacturer, portal: o.portal, authority, serialPrefix, serialStart, width, pollIntervalMs, schemas };
}

/** Make sure `out` is a writable directory we may fill; report what is already there. */
function prepareOut(out: string, resume: boolean, mayContain: ReadonlySet<string>): { hasPartial: boolean } {
  let entries: string[];
  try {
    const st = fs.statSync(out, { throwIfNoEntry: false });
    if (st === undefined) {
      fs.mkdirSync(out, { recursive: true, mode: 0o700 });
    } else if (!st.isDirectory()) {
      throw new MeshError('conflict', `--out ${out} exists and is not a directory`, { dir: out });
    }
    fs.accessSync(out, fs.constants.W_OK | fs.constants.X_OK);
    entries = fs.readdirSync(out);
    // a probe: root passes access() even on a read-only file system
    const probe = path.join(out, `.mesh-provision-probe-${process.pid}`);
    fs.writeFileSync(probe, '');
    fs.rmSync(probe);
  } catch (e) {
    throw ioError(e, 'write to --out', out);
  }
  if (entries.includes(MANIFEST_FILE)) {
    throw new MeshError('conflict', `${out} already holds a finished batch (${MANIFEST_FILE}); choose a new --out`, { dir: out });
  }
  const hasPartial = entries.includes(PARTIAL_FILE);
  if (resume) {
    if (!hasPartial && entries.some((n) => !mayContain.has(n))) {
      throw new MeshError('conflict', `${out} is not empty and holds no interrupted batch (${PARTIAL_FILE}) to resume; choose an empty --out`, { dir: out });
    }
  } else if (entries.some((n) => !mayContain.has(n))) {
    throw new MeshError(
      'conflict',
      hasPartial
        ? `${out} holds an interrupted batch (${PARTIAL_FILE}): rerun the same command with --resume to finish it, or delete the directory to discard it`
        : `--out ${out} is not empty; choose a new or empty directory`,
      { dir: out, interrupted: hasPartial },
    );
  }
  return { hasPartial };
}

function headerOf(p: Plan, key: ManufacturerKey): BatchHeader {
  return {
    format: MANIFEST_FORMAT,
    manufacturer: p.manufacturer,
    model: p.model,
    portal: p.portal,
    count: p.count,
    serialPrefix: p.serialPrefix,
    serialStart: p.serialStart,
    width: p.width,
    manufacturerKeyId: key.id,
    pollIntervalMs: p.pollIntervalMs,
    schemas: Object.keys(p.schemas).sort(),
    schemasDigest: hex(sha512(utf8(JSON.stringify(Object.entries(p.schemas).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))))),
    started: new Date().toISOString(),
  };
}

const RESUME_MUST_MATCH = ['manufacturer', 'model', 'portal', 'count', 'serialPrefix', 'serialStart', 'manufacturerKeyId', 'pollIntervalMs', 'schemas', 'schemasDigest'] as const;

/** Read an interrupted batch: its header and the devices it completed (a torn last line is dropped). */
function readPartial(file: string): { header: BatchHeader; devices: ManifestDevice[] } {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw ioError(e, 'read', file);
  }
  const lines = text.split('\n');
  const parsed: unknown[] = [];
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i] as string;
    if (l === '') continue;
    try {
      parsed.push(JSON.parse(l));
    } catch {
      // only the last line can be torn by a crash; anything else means the file was damaged
      if (i === lines.length - 1) break;
      throw new MeshError('state', `${file} is damaged at line ${i + 1}; delete the directory and start the batch again`, { file, line: i + 1 });
    }
  }
  const first = parsed[0] as { batch?: BatchHeader } | undefined;
  const header = first?.batch;
  if (header === undefined || header.format !== MANIFEST_FORMAT) throw new MeshError('state', `${file} does not start with a batch header; delete the directory and start again`, { file });
  const devices: ManifestDevice[] = [];
  for (const r of parsed.slice(1)) {
    const d = (r as { device?: ManifestDevice }).device;
    if (d !== undefined && typeof d.serial === 'string' && typeof d.id === 'string') devices.push(d);
  }
  return { header, devices };
}

/** A recorded device is kept only if its directory is complete and holds the same device. */
function deviceIntact(dir: string, d: ManifestDevice): boolean {
  try {
    if (!hasDeviceDirectory(dir)) return false;
    for (const f of ['claim.json', 'agent.json', UNIT_FILE, SYSUSERS_FILE, LABEL_SVG, LABEL_PNG]) if (!fs.existsSync(path.join(dir, f))) return false;
    const dev = JSON.parse(fs.readFileSync(path.join(dir, 'device.json'), 'utf8')) as { id?: unknown };
    return dev.id === d.id;
  } catch {
    return false;
  }
}

/**
 * Provision a batch of devices. Throws MeshError: `usage` (bad options), `conflict` (non-empty or
 * finished `out`, or a resume with different options), `state` (unwritable `out`, interrupted),
 * `bad-key` (a manufacturer key file that is not one), `schema` (a schema the agent would refuse).
 */
export async function provisionBatch(opts: BatchOptions, onProgress?: (p: BatchProgress) => void): Promise<BatchResult> {
  const t0 = performance.now();
  const p = plan(opts);
  const resume = opts.resume === true;
  const givenKey = opts.manufacturerKeyFile === undefined ? undefined : readManufacturerKey(opts.manufacturerKeyFile);
  const mayContain = new Set<string>();
  // a run that stopped right after making its manufacturer key left only that behind
  if (resume && givenKey === undefined) mayContain.add(MANUFACTURER_KEY_FILE);
  if (givenKey !== undefined && path.dirname(path.resolve(givenKey.file)) === p.out) mayContain.add(path.basename(givenKey.file));
  const { hasPartial } = prepareOut(p.out, resume, mayContain);
  const partialFile = path.join(p.out, PARTIAL_FILE);
  const defaultKeyFile = path.join(p.out, MANUFACTURER_KEY_FILE);

  let key: ManufacturerKey;
  let header: BatchHeader;
  const kept = new Map<string, ManifestDevice>();
  if (resume) cleanTempFiles(p.out);
  if (resume && hasPartial) {
    const prev = readPartial(partialFile);
    if (givenKey !== undefined) key = givenKey;
    else if (fs.existsSync(defaultKeyFile)) key = readManufacturerKey(defaultKeyFile);
    else throw new MeshError('conflict', `the interrupted batch was endorsed by manufacturer key ${prev.header.manufacturerKeyId}: pass it with --manufacturer-key`);
    const now = headerOf(p, key);
    const differ = RESUME_MUST_MATCH.filter((k) => JSON.stringify(now[k]) !== JSON.stringify(prev.header[k]));
    if (differ.length > 0) {
      throw new MeshError('conflict', `--resume needs the options of the interrupted batch; these differ: ${differ.map((k) => `${k} (was ${JSON.stringify(prev.header[k])})`).join(', ')}`, { differ });
    }
    header = prev.header;
    for (const d of prev.devices) if (deviceIntact(path.join(p.out, d.serial), d)) kept.set(d.serial, d);
  } else {
    key = givenKey ?? (resume && fs.existsSync(defaultKeyFile) ? readManufacturerKey(defaultKeyFile) : createManufacturerKey(defaultKeyFile));
    header = headerOf(p, key);
  }
  // rewrite the partial manifest: the header and the devices kept (no torn line to append after)
  try {
    writeFileAtomic(partialFile, [JSON.stringify({ batch: header }), ...[...kept.values()].map((d) => JSON.stringify({ device: d }))].join('\n') + '\n', 0o644);
  } catch (e) {
    throw ioError(e, 'write', partialFile);
  }

  const serials: string[] = [];
  for (let i = 0; i < p.count; i++) serials.push(serialOf(p.serialPrefix, p.serialStart + i, p.width));
  const todo = serials.filter((s) => !kept.has(s));
  const devices = new Map<string, ManifestDevice>(kept);
  const ctx: DeviceJobContext = {
    out: p.out,
    model: p.model,
    manufacturer: p.manufacturer,
    authority: p.authority,
    settings: { ...DEFAULT_SETTINGS, portal: p.portal, pollIntervalMs: p.pollIntervalMs } satisfies AgentSettings,
    schemas: p.schemas,
    unit: agentUnit(),
    manufacturerKey: key.key,
  };
  let made = 0;
  const tMake = performance.now();

  let fd: number;
  try {
    fd = fs.openSync(partialFile, 'a', 0o644);
  } catch (e) {
    throw ioError(e, 'write', partialFile);
  }
  const record = (rec: ManifestDevice): void => {
    // appended only once all the device's files are synced; not synced itself: a lost line means
    // the device is made again on --resume, never that a half-written device is kept
    fs.writeSync(fd, JSON.stringify({ device: rec }) + '\n');
    devices.set(rec.serial, rec);
    made++;
    if (onProgress !== undefined) {
      const elapsedMs = performance.now() - tMake;
      const rate = elapsedMs > 0 ? (made * 1000) / elapsedMs : 0;
      onProgress({ done: devices.size, total: p.count, made, elapsedMs, rate, etaMs: rate > 0 ? ((todo.length - made) * 1000) / rate : Number.NaN, serial: rec.serial });
    }
  };
  try {
    const workers = p.workers ?? (todo.length >= WORKERS_FROM ? Math.min(4, 2 * os.availableParallelism()) : 1);
    if (workers <= 1) {
      for (const serial of todo) {
        if (opts.signal?.aborted === true) break;
        record(await makeDevice(ctx, serial));
      }
    } else {
      await runWorkers(ctx, todo, Math.min(workers, todo.length), record, opts.signal);
    }
    if (devices.size < p.count) {
      throw new MeshError('state', `interrupted after ${devices.size} of ${p.count} devices; rerun the same command with --resume to finish`, {
        interrupted: true,
        done: devices.size,
        total: p.count,
      });
    }
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }

  const manifest: Manifest = {
    format: MANIFEST_FORMAT,
    manufacturer: p.manufacturer,
    manufacturerKeyId: key.id,
    manufacturerKey: b64u(key.key.publicKey),
    model: p.model,
    portal: p.portal,
    count: p.count,
    created: new Date().toISOString(),
    devices: serials.map((s) => devices.get(s) as ManifestDevice),
  };
  const manifestFile = path.join(p.out, MANIFEST_FILE);
  try {
    writeJsonAtomic(manifestFile, manifest, 0o644);
    fs.rmSync(partialFile, { force: true });
    fsyncDir(p.out);
  } catch (e) {
    throw ioError(e, 'write', manifestFile);
  }
  const seconds = (performance.now() - t0) / 1000;
  const makeSeconds = (performance.now() - tMake) / 1000;
  return {
    dir: p.out,
    manifest: manifestFile,
    count: p.count,
    made,
    kept: kept.size,
    seconds,
    devicesPerSecond: made > 0 && makeSeconds > 0 ? made / makeSeconds : 0,
    firstSerial: serials[0] as string,
    lastSerial: serials[serials.length - 1] as string,
    manufacturerKeyId: key.id,
    manufacturerKeyFile: key.file,
    manufacturerKeyGenerated: key.generated,
    manufacturerKeyLooseMode: key.looseMode,
  };
}

/**
 * Make `serials` on `n` worker threads, two jobs in flight each. On a failure or an abort no new
 * job is sent; jobs in flight finish (and are recorded) before this returns or throws.
 */
async function runWorkers(ctx: DeviceJobContext, serials: readonly string[], n: number, record: (d: ManifestDevice) => void, signal: AbortSignal | undefined): Promise<void> {
  const url = new URL('./worker.js', import.meta.url);
  const pool: Worker[] = [];
  const inFlight = new Map<Worker, number>();
  let next = 0;
  let failure: MeshError | undefined;
  let closing = false;
  try {
    await new Promise<void>((resolve) => {
      let settled = false;
      const finishIfIdle = (): void => {
        let busy = 0;
        for (const k of inFlight.values()) busy += k;
        const more = failure === undefined && signal?.aborted !== true && next < serials.length;
        if (busy === 0 && !more && !settled) {
          settled = true;
          resolve();
        }
      };
      const feed = (w: Worker): void => {
        if (failure === undefined && signal?.aborted !== true && next < serials.length) {
          w.postMessage(serials[next++]);
          inFlight.set(w, (inFlight.get(w) ?? 0) + 1);
        }
      };
      const lost = (w: Worker, why: string): void => {
        if (closing || !inFlight.has(w)) return;
        inFlight.delete(w);
        failure ??= new MeshError('internal', `a provisioning worker stopped: ${why}`);
        finishIfIdle();
      };
      signal?.addEventListener('abort', finishIfIdle, { once: true });
      for (let i = 0; i < n; i++) {
        const w = new Worker(url, { workerData: ctx, execArgv: process.execArgv.filter((a) => !a.startsWith('--input-type')) });
        pool.push(w);
        inFlight.set(w, 0);
        w.on('message', (m: WorkerReply) => {
          inFlight.set(w, (inFlight.get(w) ?? 1) - 1);
          if (m.ok) {
            try {
              record(m.device);
            } catch (e) {
              failure ??= ioError(e, 'write to', path.join(ctx.out, PARTIAL_FILE));
            }
          } else {
            failure ??= new MeshError(m.error.code, m.error.message, m.error.detail);
          }
          feed(w);
          finishIfIdle();
        });
        w.on('error', (e) => lost(w, e.message));
        w.on('exit', (code) => lost(w, `exit code ${code}`));
        feed(w);
        feed(w);
      }
      finishIfIdle();
    });
  } finally {
    closing = true;
    await Promise.all(pool.map((w) => w.terminate()));
  }
  if (failure !== undefined) throw failure;
}
