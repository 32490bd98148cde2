/**
 * Staged rollouts, the owner's side (mesh config set ... --canary N and mesh rollout status |
 * resume | abort; the owner app can drive the same): the change goes to the canaries first,
 * encrypted to them alone; then, once their signed statuses are in, to the rest wave by wave. K
 * refusals, reverts or unhealthy results stop it: the devices not yet sent it never receive it (no
 * publication names them, and none is encrypted to them).
 *
 * The rollout's record (client/rollout.ts) is kept at the portal as an application profile of the
 * reserved application `mesh.rollout` that names no device and is encrypted to the owner's own
 * keys only (re-encrypted when an administration device is added; read with the escrow key and
 * written again at recovery), so any administration device
 * can show, resume or abort it. Each write of the record takes the next number; when two
 * administration devices write at once the portal keeps the first and the second gets `conflict`.
 * The state keeps the highest record number this computer has seen (State.rolloutSeq): a portal
 * that hands back an older record is `rollback`, so an aborted rollout cannot be made to look
 * resumable.
 */
import { MeshError, isMeshError } from '../mesh/errors.js';
import type { Json } from '../mesh/json.js';
import { payloadBytes } from '../mesh/envelope.js';
import { applicationTargets, createApplicationProfile, parseApplicationPayload, verifyApplicationProfile, type MasterProfile } from '../mesh/profiles.js';
import { canonicalJson } from '../mesh/schema.js';
import { randomBytes, type KeyPair } from '../mesh/crypto.js';
import { hex } from '../mesh/bytes.js';
import type { AccountResponse } from '../mesh/protocol.js';
import { ROLLOUT_APP, decide, docTable, failures, isFailure, parseRollout, planWaves, waveDevices, waveSent, withDevices, type DeviceEntry, type DeviceResult, type Doc, type RolloutRecord } from './rollout.js';
import { MAX_UNVERIFIED_STEP, badAnswer, claimedSeq, currentMaster, decryptDoc, deviceStatuses, keepReceipt, ownerReaders, proveReceipt, publishApp, publishPersonal, save, sync, type Ctx, type SyncResult } from './owner.js';
import { docFor, nowIso, type ConfigDoc, type DeviceRecord } from './owner-state.js';
import { configVerdict, confirmWindow, revertRefused, type Planned } from './owner-config.js';
import { waitForDevices, type Outcome } from './owner-wait.js';

export interface RolloutOptions {
  readonly canary: number;
  readonly abortOn: number;
  /** devices per wave after the canaries; 0: all the rest at once */
  readonly wave: number;
}

export interface Held {
  /** the record at the portal (null: none yet, or one this computer cannot use: see `unreadable`) */
  readonly rec: RolloutRecord | null;
  /** its number: the next write takes seq + 1 */
  readonly seq: number;
  /** why a record that is there cannot be used here (its code and the explanation) */
  readonly unreadable?: MeshError;
}

export type HeldRollout = Held & { readonly rec: RolloutRecord };

// ---------------------------------------------------------------- the record at the portal

/** The owner's rollout record in an Account answer (whose master profile `master` verified): checked, opened with this computer's key. */
export function readRollout(ctx: Ctx, acct: AccountResponse, master: MasterProfile): Held {
  const env = acct.applications[ROLLOUT_APP];
  const seen = ctx.state.rolloutSeq ?? 0;
  if (env === undefined) {
    if (seen > 0) throw new MeshError('rollback', `the portal shows no rollout record, but this computer has seen record #${seen}: it is hiding it. Run mesh log verify`);
    return { rec: null, seq: 0 };
  }
  const claimed = claimedSeq('rollout record', () => parseApplicationPayload(payloadBytes(env)));
  if (claimed < seen) throw new MeshError('rollback', `the portal returned rollout record #${claimed}, older than #${seen} this computer has seen: it is replaying old data. Run mesh log verify`);
  let rec: RolloutRecord;
  try {
    const ap = verifyApplicationProfile(env, master);
    if (ap.payload.app !== ROLLOUT_APP || applicationTargets(ap).length !== 0) throw new MeshError('wrong-type', 'it is not a rollout record');
    rec = parseRollout(decryptDoc(ap, ctx.admin.enc));
  } catch (e) {
    // written before this administration device joined (or was recovered), or by one revoked since: not usable here, but
    // its number still counts (the next record is numbered above it), as for a configuration (client/owner.ts verifiedOrAhead)
    if (isMeshError(e, 'not-a-recipient') && claimed - seen <= MAX_UNVERIFIED_STEP) {
      noteSeen(ctx, claimed);
      return { rec: null, seq: claimed, unreadable: new MeshError('not-a-recipient', `the rollout record #${claimed} was written before this administration device joined (or was recovered), and it cannot read it`) };
    }
    if (isMeshError(e, 'revoked-key') && claimed - seen <= MAX_UNVERIFIED_STEP) {
      noteSeen(ctx, claimed);
      return { rec: null, seq: claimed, unreadable: new MeshError('revoked-key', `the rollout record #${claimed} was written by an administration device revoked since, and is not believed`) };
    }
    if (!isMeshError(e)) throw e;
    throw badAnswer(`rollout record #${claimed}`, e);
  }
  noteSeen(ctx, claimed);
  return { rec, seq: claimed };
}

function noteSeen(ctx: Ctx, seq: number): void {
  if (seq > (ctx.state.rolloutSeq ?? 0)) {
    ctx.state.rolloutSeq = seq;
    save(ctx);
  }
}

function raced(rec: RolloutRecord): MeshError {
  return new MeshError('conflict', `another administration device changed rollout ${rec.id} of ${rec.app} at the same time; nothing more was sent from here. See mesh rollout status`);
}

/** Write the next version of the record; another administration device writing first is `conflict`. */
async function writeRollout(ctx: Ctx, held: Held, rec: RolloutRecord, extraReaders: readonly Uint8Array[] = []): Promise<HeldRollout> {
  const seq = held.seq + 1;
  const next: RolloutRecord = { ...rec, lastBy: ctx.state.admin, updated: nowIso() };
  const env = createApplicationProfile(ctx.admin, { master: ctx.state.master, app: ROLLOUT_APP, seq, config: next as unknown as Json, devices: [], alsoReadableBy: [...ownerReaders(currentMaster(ctx.state)), ...extraReaders] });
  let receipt;
  try {
    receipt = await proveReceipt(ctx, 'application', env, await ctx.client.publish(env));
  } catch (e) {
    if (isMeshError(e, 'rollback')) throw raced(rec);
    throw e;
  }
  keepReceipt(ctx.state, receipt);
  noteSeen(ctx, seq);
  save(ctx);
  return { rec: next, seq };
}

/**
 * When an administration device is added: the rollout record written again, readable by the new
 * one too (as the configurations are), so it can show, resume or abort the rollout. False when
 * there is none, or this computer cannot read it either.
 */
export async function reencryptRollout(ctx: Ctx, extraReaders: readonly Uint8Array[]): Promise<boolean> {
  const held = readRollout(ctx, await ctx.client.account(), currentMaster(ctx.state));
  if (held.rec === null) return false;
  await writeRollout(ctx, held, held.rec, extraReaders);
  return true;
}

/**
 * At recovery: the rollout record the lost administration device wrote, verified under the master
 * profile from before the recovery (`old`, which still lists that device) and opened with the
 * master's escrow key (every record is also encrypted to it), is written again by the recovered
 * device, so it can show, resume or abort the rollout. False when there is none, or it does not
 * verify or open (noted: it is then unreadable here, as before, and the next rollout replaces it).
 */
export async function recoverRollout(ctx: Ctx, acct: AccountResponse, old: MasterProfile, escrow: KeyPair): Promise<boolean> {
  const env = acct.applications[ROLLOUT_APP];
  if (env === undefined) return false;
  let held: HeldRollout;
  try {
    const ap = verifyApplicationProfile(env, old);
    if (ap.payload.app !== ROLLOUT_APP || applicationTargets(ap).length !== 0) throw new MeshError('wrong-type', 'it is not a rollout record');
    held = { rec: parseRollout(decryptDoc(ap, escrow)), seq: ap.payload.seq };
  } catch (e) {
    if (!isMeshError(e)) throw e;
    ctx.note(`note: your rollout record could not be read back (${e.code}: ${e.message}); the next rollout replaces it\n`);
    return false;
  }
  try {
    await writeRollout(ctx, held, held.rec);
  } catch (e) {
    if (!isMeshError(e)) throw e;
    ctx.note(`note: your rollout record could not be written again for this device (${e.code}: ${e.message}); the next rollout replaces it\n`);
    return false;
  }
  return true;
}

// ---------------------------------------------------------------- driving it

function resultOf(o: Pick<Outcome, 'result' | 'error'>): { result: DeviceResult; code?: string; message?: string } {
  if (o.result === 'applied') return { result: 'applied' };
  if (o.result === 'refused') {
    const code = o.error?.code ?? 'refused';
    const result: DeviceResult = code === 'reverted' ? 'reverted' : code === 'unhealthy' ? 'unhealthy' : 'refused';
    return { result, code, message: o.error?.message ?? '' };
  }
  return { result: 'not-reached' };
}

function deviceRecord(ctx: Ctx, e: DeviceEntry): DeviceRecord {
  const d = ctx.state.devices.find((x) => x.id === e.id);
  if (d === undefined) throw new MeshError('state', `${e.name}, a device of this rollout, is no longer one of your devices; end the rollout with mesh rollout abort`);
  return d;
}

/** Send the current wave (when it has not been sent), then wait for it; on to the next while nothing stops it. */
async function drive(ctx: Ctx, heldIn: HeldRollout, waitMs: number): Promise<HeldRollout> {
  let held = heldIn;
  let rec = held.rec;
  const app = rec.app;
  // the document for all devices before the last wave set it (taken back if a device of that wave refuses)
  let baseBefore: ConfigDoc | null | undefined;
  for (;;) {
    if (!waveSent(rec, rec.wave)) {
      const entries = waveDevices(rec, rec.wave);
      const last = rec.wave === rec.waves.length - 1;
      if (last && rec.base !== undefined) baseBefore = ctx.state.apps[app]?.removed === true ? {} : (ctx.state.apps[app]?.doc ?? {});
      const wasListed = ctx.state.apps[app] !== undefined && ctx.state.apps[app]?.removed !== true;
      const groups = new Map<number, DeviceEntry[]>();
      for (const e of entries) groups.set(e.doc, [...(groups.get(e.doc) ?? []), e]);
      const sent: DeviceEntry[] = [];
      for (const [doc, es] of groups) {
        const cur = rec;
        const r = await publishApp(ctx, app, cur.docs[doc] as ConfigDoc, {
          targets: es.map((e) => deviceRecord(ctx, e)),
          prev: new Map(es.map((e) => [e.id, cur.docs[e.from] as ConfigDoc])),
          ...(last && cur.base !== undefined ? { base: cur.base } : {}),
          ...(cur.confirmS !== undefined ? { confirmS: cur.confirmS } : {}),
        }).catch((e: unknown) => {
          throw isMeshError(e, 'rollback') ? raced(cur) : e;
        });
        save(ctx);
        for (const e of es) sent.push({ ...e, seq: r.seq, result: 'pending' });
        ctx.note(`${rec.wave === 0 ? 'canaries' : `wave ${rec.wave + 1} of ${rec.waves.length}`}: sent ${app} #${r.seq} to ${es.map((e) => e.name).join(', ')}\n`);
      }
      if (!wasListed) {
        await publishPersonal(ctx);
        save(ctx);
      }
      held = await writeRollout(ctx, held, withDevices({ ...rec, state: 'running' }, sent));
      rec = held.rec;
    }
    const open = waveDevices(rec, rec.wave).filter((e) => e.result === 'pending' || e.result === 'not-reached');
    if (open.length > 0) {
      const outcomes = await waitForDevices(ctx, open.map((e) => ({ device: deviceRecord(ctx, e), check: configVerdict(ctx.state.master, app, e.seq ?? 0) })), waitMs);
      rec = withDevices(rec, outcomes.map((o) => ({ ...(open.find((e) => e.id === o.device.id) as DeviceEntry), ...resultOf(o) })));
      // a device that refused keeps what it had: so does this computer's record of it (the next change starts from there)
      revertRefused(ctx, app, outcomes, new Map(open.map((e) => [e.id, e.seq ?? 0])), baseBefore);
    }
    const next = decide(rec);
    if (next === 'next') {
      // written with the next wave's numbers, in one publication
      rec = { ...rec, wave: rec.wave + 1 };
      continue;
    }
    if (next === 'stop') rec = { ...rec, state: 'stopped', reason: `${failures(rec)} device(s) refused, reverted or failed the health check (abort on ${rec.abortOn})` };
    else if (next === 'wait') rec = { ...rec, state: 'paused', reason: 'some devices of the current wave did not report within the wait' };
    else rec = { ...rec, state: 'done' };
    return writeRollout(ctx, held, rec);
  }
}

/**
 * Start a rollout of a planned change (client/owner-config.ts planChange): the record first (a
 * command killed while sending leaves a rollout that resume can take over), then the waves.
 */
export async function startRollout(
  ctx: Ctx,
  synced: SyncResult,
  p: { app: string; summary: string; planned: readonly Planned[]; opts: RolloutOptions; base?: Doc; confirmS?: number; waitMs: number },
): Promise<HeldRollout> {
  const held = readRollout(ctx, synced.account, synced.master);
  if (held.unreadable !== undefined) ctx.note(`note: ${held.unreadable.message}; this rollout replaces it\n`);
  if (held.rec !== null && (held.rec.state === 'running' || held.rec.state === 'paused' || held.rec.state === 'stopped')) {
    throw new MeshError('conflict', `rollout ${held.rec.id} of ${held.rec.app} is ${held.rec.state}: finish it first (mesh rollout resume or mesh rollout abort; mesh rollout status shows it). Nothing was published`);
  }
  const waves = planWaves(
    p.planned.map((x) => x.device.id),
    p.opts.canary,
    p.opts.wave,
  );
  const confirmS = confirmWindow(ctx, p.app, p.planned, p.confirmS);
  const table = docTable();
  const devices: DeviceEntry[] = p.planned.map((x) => ({ id: x.device.id, name: x.device.name, doc: table.add(x.doc), from: table.add(x.from), result: 'pending' }));
  const created = nowIso();
  const rec: RolloutRecord = {
    v: 1,
    id: `r-${hex(randomBytes(4))}`,
    app: p.app,
    summary: p.summary.slice(0, 2000),
    by: ctx.state.admin,
    lastBy: ctx.state.admin,
    created,
    updated: created,
    canary: p.opts.canary,
    abortOn: p.opts.abortOn,
    ...(confirmS !== undefined ? { confirmS } : {}),
    waves,
    wave: 0,
    devices,
    docs: table.docs,
    ...(p.base !== undefined ? { base: p.base } : {}),
    forgiven: 0,
    state: 'running',
  };
  ctx.note(`rollout ${rec.id}: ${waves.length} waves (${waves.map((w) => w.length).join(' + ')} devices), stops at ${rec.abortOn} failure(s)\n`);
  return drive(ctx, await writeRollout(ctx, held, rec), p.waitMs);
}

// ---------------------------------------------------------------- status, resume, abort

/** Bring the state up to date and read the rollout record (not-found when there is none). */
export async function currentRollout(ctx: Ctx): Promise<HeldRollout> {
  const synced = await sync(ctx);
  save(ctx);
  const held = readRollout(ctx, synced.account, synced.master);
  if (held.unreadable !== undefined) throw new MeshError(held.unreadable.code, `${held.unreadable.message}. Use the administration device that wrote it, or start a new rollout (mesh config set ... --canary N)`);
  if (held.rec === null) throw new MeshError('not-found', 'you have no rollout: start one with mesh config set APP KEY=VALUE --canary N');
  return held as HeldRollout;
}

/** The current wave's answers as the devices' signed statuses give them now (not written back). */
export async function refreshed(ctx: Ctx, rec: RolloutRecord): Promise<RolloutRecord> {
  const open = waveDevices(rec, rec.wave).filter((e) => e.seq !== undefined && (e.result === 'pending' || e.result === 'not-reached'));
  if (open.length === 0) return rec;
  const views = await deviceStatuses(ctx);
  const changed: DeviceEntry[] = [];
  for (const e of open) {
    const v = configVerdict(ctx.state.master, rec.app, e.seq ?? 0)(views.get(e.id)?.status ?? null, views.has(e.id));
    if (v !== undefined) changed.push({ ...e, ...resultOf(v) });
  }
  return withDevices(rec, changed);
}

/**
 * Go on with a paused rollout (its current wave waited for again) or a stopped one (the next wave
 * sent all the same, failures counted afresh). Refused when it is over, or when the configuration
 * of a device not yet sent the change was changed since it was planned (going on would undo that).
 */
export async function resumeRollout(ctx: Ctx, held: HeldRollout, waitMs: number): Promise<HeldRollout> {
  const rec = held.rec;
  if (rec.state === 'done' || rec.state === 'aborted') throw new MeshError('state', `rollout ${rec.id} of ${rec.app} is ${rec.state}; there is nothing to resume. Start a new one with mesh config set ... --canary N`);
  const r = ctx.state.apps[rec.app];
  const moved = rec.devices.filter((d) => {
    const t = d.seq === undefined && r !== undefined ? docFor(r, d.id) : undefined;
    return t !== undefined && t.doc !== null && canonicalJson(t.doc) !== canonicalJson(rec.docs[d.from]);
  });
  if (moved.length > 0) {
    throw new MeshError('stale', `${rec.app} has been changed on ${moved.map((d) => d.name).join(', ')} since this rollout was planned; resuming it would undo that change. Abort it (mesh rollout abort) and start a new one`);
  }
  if (rec.state === 'running') ctx.note(`note: rollout ${rec.id} says it is running (a command driving it may have been killed); taking it over\n`);
  const start: RolloutRecord = rec.state === 'stopped' ? { ...rec, state: 'running', forgiven: rec.devices.filter((d) => isFailure(d.result)).length } : { ...rec, state: 'running' };
  return drive(ctx, { rec: start, seq: held.seq }, waitMs);
}

/** End the rollout where it is: the devices of the waves not sent never receive the change. */
export async function abortRollout(ctx: Ctx, held: HeldRollout): Promise<HeldRollout> {
  const rec = await refreshed(ctx, held.rec);
  if (rec.state === 'done' || rec.state === 'aborted') throw new MeshError('state', `rollout ${rec.id} of ${rec.app} is ${rec.state} already`);
  return writeRollout(ctx, held, { ...rec, state: 'aborted', reason: `aborted by ${ctx.state.admin}` });
}
