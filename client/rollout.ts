/**
 * A staged rollout's plan and record, with no I/O: which devices get a change in which wave (the
 * canaries first), how the devices' verdicts decide whether it goes on, and the record itself as
 * it is kept at the portal, encrypted to the owner's own keys only (an application profile of the
 * reserved application ROLLOUT_APP that names no device): any of the owner's administration
 * devices reads it to show, resume or abort the rollout.
 *
 * A wave is published to its devices only (the configuration is encrypted to them alone), so a
 * device of a later wave cannot read the change before its wave comes, and never does when the
 * rollout stops.
 */
import { MeshError } from '../mesh/errors.js';
import { checkJsonValue, int, obj, str, type Json, type Obj } from '../mesh/json.js';

/** the reserved application name the record is published under (application names of owners may not start with "mesh.") */
export const ROLLOUT_APP = 'mesh.rollout';
export const RESERVED_APP_PREFIX = 'mesh.';

export type Doc = { [k: string]: Json };

/** a device's verdict on its wave: `pending` until its signed status says, `not-reached` when a wait ended without it */
export type DeviceResult = 'pending' | 'applied' | 'refused' | 'reverted' | 'unhealthy' | 'not-reached';
/**
 * running: waves are being sent; paused: a wave's devices did not all answer in time (resume
 * checks again); stopped: the abort threshold was reached (resume goes on all the same, abort
 * ends it); aborted: ended by the owner; done: every wave applied.
 */
export type RolloutState = 'running' | 'paused' | 'stopped' | 'aborted' | 'done';

export interface DeviceEntry {
  readonly id: string;
  readonly name: string;
  /** index into `docs`: the document this device is to get */
  readonly doc: number;
  /** index into `docs`: what it had before (its next change starts from it when it refuses) */
  readonly from: number;
  /** the configuration number published to it, once its wave was sent */
  readonly seq?: number;
  readonly result: DeviceResult;
  /** the device's reason, for a refusal, revert or unhealthy result */
  readonly code?: string;
  readonly message?: string;
}

export interface RolloutRecord {
  readonly v: 1;
  readonly id: string;
  readonly app: string;
  /** what the change is, in the owner's words (e.g. "setpoint=23") */
  readonly summary: string;
  /** the administration device that started it, and the one that last changed it */
  readonly by: string;
  readonly lastBy: string;
  readonly created: string;
  readonly updated: string;
  readonly canary: number;
  readonly abortOn: number;
  readonly confirmS?: number;
  /** device ids per wave: the canaries first */
  readonly waves: readonly (readonly string[])[];
  /** the wave being sent or waited for */
  readonly wave: number;
  readonly devices: readonly DeviceEntry[];
  readonly docs: readonly Doc[];
  /** the document for all devices once every wave is applied (a rollout to every device that runs it) */
  readonly base?: Doc;
  /** failures before the last resume of a stopped rollout: the threshold counts those after it */
  readonly forgiven: number;
  readonly state: RolloutState;
  readonly reason?: string;
}

/**
 * The waves: the first `canary` devices, then the rest `wave` at a time (all the rest at once
 * when `wave` is 0). The order is the order the devices were given in.
 */
export function planWaves(ids: readonly string[], canary: number, wave: number): string[][] {
  if (!Number.isSafeInteger(canary) || canary < 1) throw new MeshError('usage', '--canary must be at least 1');
  if (!Number.isSafeInteger(wave) || wave < 0) throw new MeshError('usage', '--wave must be a number of devices (at least 1)');
  if (new Set(ids).size !== ids.length) throw new MeshError('usage', 'a device is named twice');
  if (ids.length <= canary) throw new MeshError('usage', `a rollout with ${canary} canar${canary === 1 ? 'y' : 'ies'} needs more than ${canary} devices (it targets ${ids.length}); without --canary the change goes to all of them at once`);
  const out: string[][] = [ids.slice(0, canary)];
  const rest = ids.slice(canary);
  const size = wave === 0 ? rest.length : wave;
  for (let i = 0; i < rest.length; i += size) out.push(rest.slice(i, i + size));
  return out;
}

export function isFailure(r: DeviceResult): boolean {
  return r === 'refused' || r === 'reverted' || r === 'unhealthy';
}

/** Refusals, reverts and unhealthy results since the last resume of a stopped rollout. */
export function failures(rec: RolloutRecord): number {
  return rec.devices.filter((d) => isFailure(d.result)).length - rec.forgiven;
}

export function waveDevices(rec: RolloutRecord, i: number): DeviceEntry[] {
  const ids = rec.waves[i] ?? [];
  return rec.devices.filter((d) => ids.includes(d.id));
}

/** Whether wave `i` has been sent (each of its devices has its number). */
export function waveSent(rec: RolloutRecord, i: number): boolean {
  const ds = waveDevices(rec, i);
  return ds.length > 0 && ds.every((d) => d.seq !== undefined);
}

/**
 * What follows the current wave's verdicts: `stop` once the failures reach the threshold (the
 * devices not yet sent it never get it), `wait` while some of its devices have not answered, `next`
 * when all have, `done` after the last wave.
 */
export function decide(rec: RolloutRecord): 'stop' | 'wait' | 'next' | 'done' {
  if (failures(rec) >= rec.abortOn) return 'stop';
  const ds = waveDevices(rec, rec.wave);
  if (ds.some((d) => d.result === 'pending' || d.result === 'not-reached')) return 'wait';
  return rec.wave + 1 >= rec.waves.length ? 'done' : 'next';
}

/** The record with some devices' entries replaced (by id). */
export function withDevices(rec: RolloutRecord, changed: readonly DeviceEntry[]): RolloutRecord {
  const by = new Map(changed.map((d) => [d.id, d]));
  return { ...rec, devices: rec.devices.map((d) => by.get(d.id) ?? d) };
}

/** Index documents: equal documents share one entry. */
export function docTable(): { add(d: Doc): number; docs: Doc[] } {
  const docs: Doc[] = [];
  const keys = new Map<string, number>();
  return {
    docs,
    add(d) {
      const k = JSON.stringify(d);
      const hit = keys.get(k);
      if (hit !== undefined) return hit;
      docs.push(d);
      keys.set(k, docs.length - 1);
      return docs.length - 1;
    },
  };
}

const STATES: readonly RolloutState[] = ['running', 'paused', 'stopped', 'aborted', 'done'];
const RESULTS: readonly DeviceResult[] = ['pending', 'applied', 'refused', 'reverted', 'unhealthy', 'not-reached'];

function asDoc(v: unknown, w: string): Doc {
  const d = checkJsonValue(v, w);
  if (typeof d !== 'object' || d === null || Array.isArray(d)) throw new MeshError('malformed', `${w} must be an object`);
  return d;
}

/**
 * Read a record back (after it was decrypted): every field checked, every index in range; what
 * does not fit is `malformed`. It is the owner's own record, signed by one of the owner's
 * administration keys, but it is read with the same care as anything else.
 */
export function parseRollout(v: unknown): RolloutRecord {
  const w = 'rollout record';
  const o = obj(v, w, ['v', 'id', 'app', 'summary', 'by', 'lastBy', 'created', 'updated', 'canary', 'abortOn', 'waves', 'wave', 'devices', 'docs', 'forgiven', 'state'], ['confirmS', 'base', 'reason']);
  if (o.v !== 1) throw new MeshError('malformed', `${w}: unknown version ${String(o.v)}`);
  if (!Array.isArray(o.docs) || o.docs.length > 10_000) throw new MeshError('malformed', `${w}.docs must be a list`);
  const docs = o.docs.map((d, i) => asDoc(d, `${w}.docs[${i}]`));
  const index = (x: Obj, k: string, dw: string): number => {
    const n = int(x, k, dw, 0);
    if (n >= docs.length) throw new MeshError('malformed', `${dw}.${k} names no document`);
    return n;
  };
  if (!Array.isArray(o.devices) || o.devices.length > 10_000) throw new MeshError('malformed', `${w}.devices must be a list`);
  const devices: DeviceEntry[] = o.devices.map((x, i) => {
    const dw = `${w}.devices[${i}]`;
    const d = obj(x, dw, ['id', 'name', 'doc', 'from', 'result'], ['seq', 'code', 'message']);
    const result = str(d, 'result', dw, 20) as DeviceResult;
    if (!RESULTS.includes(result)) throw new MeshError('malformed', `${dw}.result is not a result`);
    return {
      id: str(d, 'id', dw, 120),
      name: str(d, 'name', dw, 64),
      doc: index(d, 'doc', dw),
      from: index(d, 'from', dw),
      result,
      ...(d.seq !== undefined ? { seq: int(d, 'seq', dw, 1) } : {}),
      ...(d.code !== undefined ? { code: str(d, 'code', dw, 40) } : {}),
      ...(d.message !== undefined ? { message: str(d, 'message', dw, 2000) } : {}),
    };
  });
  const ids = new Set(devices.map((d) => d.id));
  if (ids.size !== devices.length) throw new MeshError('malformed', `${w}: a device is listed twice`);
  if (!Array.isArray(o.waves) || o.waves.length === 0) throw new MeshError('malformed', `${w}.waves must be a list`);
  const waves = o.waves.map((x, i) => {
    if (!Array.isArray(x) || x.length === 0) throw new MeshError('malformed', `${w}.waves[${i}] must be a list of devices`);
    return x.map((id, j) => {
      if (typeof id !== 'string' || !ids.has(id)) throw new MeshError('malformed', `${w}.waves[${i}][${j}] is not a device of the rollout`);
      return id;
    });
  });
  if (waves.flat().length !== devices.length || new Set(waves.flat()).size !== devices.length) throw new MeshError('malformed', `${w}: every device must be in exactly one wave`);
  const state = str(o, 'state', w, 20) as RolloutState;
  if (!STATES.includes(state)) throw new MeshError('malformed', `${w}.state is not a state`);
  const wave = int(o, 'wave', w, 0);
  if (wave >= waves.length) throw new MeshError('malformed', `${w}.wave is past the last wave`);
  return {
    v: 1,
    id: str(o, 'id', w, 40),
    app: str(o, 'app', w, 64),
    summary: str(o, 'summary', w, 2000),
    by: str(o, 'by', w, 64),
    lastBy: str(o, 'lastBy', w, 64),
    created: str(o, 'created', w, 30),
    updated: str(o, 'updated', w, 30),
    canary: int(o, 'canary', w, 1),
    abortOn: int(o, 'abortOn', w, 1),
    ...(o.confirmS !== undefined ? { confirmS: int(o, 'confirmS', w, 1) } : {}),
    waves,
    wave,
    devices,
    docs,
    ...(o.base !== undefined ? { base: asDoc(o.base, `${w}.base`) } : {}),
    forgiven: int(o, 'forgiven', w, 0),
    state,
    ...(o.reason !== undefined ? { reason: str(o, 'reason', w, 2000) } : {}),
  };
}
