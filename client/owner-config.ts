/**
 * Changing an application's configuration as an owner (mesh config set/unset/apply/remove and the
 * owner app's form): which devices a change goes to, what it starts from on each, the check of each
 * resulting document against the schema the device declared (the same check and message as on the
 * device; a problem refuses the whole change), the publication, the wait for each device's verdict,
 * and the rollback of what a refusing device did not take.
 */
import { MeshError } from '../mesh/errors.js';
import type { Json } from '../mesh/json.js';
import type { StatusPayload } from '../mesh/messages.js';
import { confirmNeeded, validate, type Schema } from '../mesh/schema.js';
import { didYouMean } from '../mesh/suggest.js';
import { deviceStatuses, ownerEntry, publishApp, publishPersonal, save, sync, type Ctx, type SyncResult } from './owner.js';
import { docFor, type ConfigDoc, type DeviceRecord } from './owner-state.js';
import { findDevice } from './owner-devices.js';
import { errorsFor, waitForDevices, type Awaited, type Outcome } from './owner-wait.js';

// ---------------------------------------------------------------- targets

/** Every application a device of this owner runs or this owner publishes: the candidates for "did you mean". */
export function knownApps(ctx: Ctx): string[] {
  const s = new Set<string>();
  for (const d of ctx.state.devices) for (const a of Object.keys(d.schemas ?? {})) s.add(a);
  for (const [a, r] of Object.entries(ctx.state.apps)) if (r.removed !== true) s.add(a);
  return [...s].sort();
}

/**
 * The devices a change of `app` goes to: those named with --device (each must run the
 * application), or every device that runs it (a device whose profile declares nothing is
 * included: it cannot be checked). An application none of the devices runs is refused, with the
 * closest one suggested.
 */
export function resolveTargets(ctx: Ctx, app: string, names: readonly string[]): DeviceRecord[] {
  const { devices } = ctx.state;
  const runs = (d: DeviceRecord): boolean => d.schemas === undefined || Object.hasOwn(d.schemas, app);
  const hint = (): string => didYouMean(app, knownApps(ctx).filter((a) => a !== app), (c) => `"${c}"`);
  if (names.length > 0) {
    const picked: DeviceRecord[] = [];
    for (const n of names) {
      const d = findDevice(devices, n);
      if (!picked.some((x) => x.id === d.id)) picked.push(d);
    }
    for (const d of picked) {
      if (!runs(d)) {
        const has = Object.keys(d.schemas ?? {});
        throw new MeshError('schema', `${d.name} does not run the application "${app}"${hint()}; it runs ${has.length > 0 ? has.join(', ') : 'no application'}. Nothing was published`);
      }
    }
    return picked;
  }
  const all = devices.filter(runs);
  if (all.length === 0 && devices.length > 0) {
    throw new MeshError('schema', `none of your devices runs the application "${app}"${hint()}; they run ${knownApps(ctx).join(', ') || 'no application'}. Nothing was published`);
  }
  return all;
}

/** Settings the schema does not have (when it allows no others), each with the closest one it has. */
function unknownKeys(app: string, schema: Schema, keys: readonly string[], device: string): string[] {
  const props = Object.keys((schema.properties ?? {}) as object);
  if (schema.additionalProperties !== false) return [];
  return keys
    .filter((k) => !props.includes(k))
    .map((k) => `"${k}" is not a setting of ${app} on ${device}${didYouMean(k, props, (c) => `"${c}"`)}; its settings are ${props.join(', ')}`);
}

/**
 * What a change to device `d` starts from: what was last published to it, or, when the device
 * refused that (its signed status says so, by application and number), the document before it.
 */
function startDoc(ctx: Ctx, app: string, d: DeviceRecord, status: StatusPayload | null): ConfigDoc | null {
  const r = ctx.state.apps[app];
  if (r === undefined || r.removed === true) return {};
  const t = docFor(r, d.id);
  // never sent to this device: it starts from what you set for all your devices
  if (t === undefined) return r.doc;
  if (t.prev !== undefined && errorsFor(status, ctx.state.master).some((e) => e.app === app && e.seq === t.seq)) return t.prev;
  return t.doc;
}

export interface Planned {
  readonly device: DeviceRecord;
  readonly from: ConfigDoc;
  readonly doc: ConfigDoc;
}

export type Change = { kind: 'assign'; set: Record<string, Json>; remove: readonly string[] } | { kind: 'replace'; doc: ConfigDoc };

export function applyChange(from: ConfigDoc, ch: Change): ConfigDoc {
  if (ch.kind === 'replace') return { ...ch.doc };
  const doc: ConfigDoc = { ...from };
  for (const k of ch.remove) delete doc[k];
  Object.assign(doc, ch.set);
  return doc;
}

/**
 * Plan a change for each target device and check every resulting document against the device's
 * schema, with the message the device would give. Any problem refuses the whole change: nothing
 * is published.
 */
export async function plan(ctx: Ctx, app: string, targets: readonly DeviceRecord[], ch: Change): Promise<Planned[]> {
  const views = targets.length > 0 ? await deviceStatuses(ctx) : new Map();
  const problems: string[] = [];
  const out: Planned[] = [];
  const named = ch.kind === 'assign' ? [...Object.keys(ch.set), ...ch.remove] : Object.keys(ch.doc);
  for (const d of targets) {
    const from = startDoc(ctx, app, d, views.get(d.id)?.status ?? null);
    if (from === null) {
      throw new MeshError('state', `this computer cannot read the current ${app} configuration of ${d.name} (it was published before this administration device joined, or by a key revoked since). Write the whole document with: mesh config apply ${app} FILE.json --device ${d.name}`);
    }
    const doc = applyChange(from, ch);
    const schema = d.schemas?.[app];
    if (schema !== undefined) {
      const unknown = unknownKeys(app, schema, named, d.name);
      if (unknown.length > 0) problems.push(...unknown);
      else {
        const p = validate(schema, doc);
        if (p.length > 0) problems.push(`${d.name} would refuse it: refused ${app} settings from ${ctx.state.account}: ${p.join('; ')}`);
      }
    }
    out.push({ device: d, from, doc });
  }
  if (problems.length > 0) throw new MeshError('schema', `${[...new Set(problems)].join('\n  ')}\n  Nothing was published.`);
  return out;
}

// ---------------------------------------------------------------- publish and wait

export interface Publication {
  readonly seq: number;
  readonly devices: DeviceRecord[];
}

export interface Published {
  readonly pubs: Publication[];
  /** per device id, the number published to it */
  readonly seqOf: Map<string, number>;
  /** set when the application was added to the personal profile */
  readonly personalSeq: number | undefined;
  /** per device, its verdict (all `not-reached` without waiting) */
  readonly outcomes: Outcome[];
}

/**
 * The verdict on configuration #seq of `app` in a device's signed status: applied (once it is no
 * longer on probation: confirmed), refused (reverted and unhealthy included, with the device's
 * reason), or undefined while the device has not said.
 */
export function configVerdict(master: string, app: string, seq: number): Awaited['check'] {
  return (st) => {
    const a = ownerEntry(st, master)?.apps.find((y) => y.app === app);
    const onProbation = st?.pending !== undefined && st.pending.master === master && st.pending.app === app && st.pending.seq === seq;
    if (a !== undefined && a.seq >= seq && !onProbation) return { result: 'applied' as const, seq: a.seq };
    const err = errorsFor(st, master).find((e) => e.app === app && e.seq === seq);
    return err === undefined ? undefined : { result: 'refused' as const, error: err };
  };
}

/**
 * The confirmation window (seconds) the target devices' schemas ask for this change
 * (`x-confirm-within` on a setting it changes; the largest over the devices), if any.
 */
export function schemaConfirm(app: string, planned: readonly Planned[]): number | undefined {
  let need: number | undefined;
  for (const x of planned) {
    const schema = x.device.schemas?.[app];
    const n = schema === undefined ? undefined : confirmNeeded(schema, x.from, x.doc);
    if (n !== undefined) need = Math.max(need ?? 0, n);
  }
  return need;
}

/**
 * The window to publish with: the one asked for, else the one the devices' schemas require
 * (said in a note: the devices would refuse the change without one, confirm-required).
 */
export function confirmWindow(ctx: Ctx, app: string, planned: readonly Planned[], asked: number | undefined): number | undefined {
  if (asked !== undefined) return asked;
  const need = schemaConfirm(app, planned);
  if (need !== undefined) ctx.note(`note: this ${app} change touches a setting the device takes only on probation (its schema's x-confirm-within): each device must confirm it within ${need} s or it reverts; give --confirm-within to choose the window\n`);
  return need;
}

/**
 * Publish the planned documents (devices with the same document share a publication), update the
 * document for all devices when `all`, wait for each device, and take back what a device refused.
 */
export async function publishPlanned(ctx: Ctx, app: string, planned: readonly Planned[], p: { all: boolean; base: (old: ConfigDoc) => ConfigDoc; waitMs: number; confirmS?: number }): Promise<Published> {
  const old = ctx.state.apps[app];
  const wasListed = old !== undefined && old.removed !== true;
  const base = p.all ? p.base(old === undefined || old.removed === true ? {} : (old.doc ?? {})) : undefined;
  const confirmS = confirmWindow(ctx, app, planned, p.confirmS);
  const groups = new Map<string, { doc: ConfigDoc; planned: Planned[] }>();
  for (const x of planned) {
    const k = JSON.stringify(x.doc);
    const g = groups.get(k) ?? { doc: x.doc, planned: [] };
    g.planned.push(x);
    groups.set(k, g);
  }
  const pubs: Publication[] = [];
  const seqOf = new Map<string, number>();
  if (groups.size === 0) {
    // no device yet: the document is kept (and published for the owner's own keys) for devices claimed later
    const r = await publishApp(ctx, app, base ?? {}, { targets: [], ...(base !== undefined ? { base } : {}) });
    save(ctx);
    pubs.push({ seq: r.seq, devices: [] });
  }
  for (const g of groups.values()) {
    const r = await publishApp(ctx, app, g.doc, { targets: g.planned.map((x) => x.device), prev: new Map(g.planned.map((x) => [x.device.id, x.from])), ...(base !== undefined ? { base } : {}), ...(confirmS !== undefined ? { confirmS } : {}) });
    save(ctx);
    pubs.push({ seq: r.seq, devices: r.devices });
    for (const d of r.devices) seqOf.set(d.id, r.seq);
  }
  let personalSeq: number | undefined;
  if (!wasListed) {
    personalSeq = await publishPersonal(ctx);
    save(ctx);
  }
  const outcomes = await waitForDevices(
    ctx,
    planned.map((x) => ({
      device: x.device,
      check: configVerdict(ctx.state.master, app, seqOf.get(x.device.id) ?? 0),
    })),
    p.waitMs,
  );
  revertRefused(ctx, app, outcomes, seqOf, base !== undefined ? (old?.removed === true ? {} : (old?.doc ?? {})) : undefined);
  return { pubs, seqOf, personalSeq, outcomes };
}

/**
 * A device refused its number: the next change for it starts from what it had before, and the
 * document for all devices (`baseBefore`: what it was before this command changed it) is not
 * left holding the refused values either.
 */
export function revertRefused(ctx: Ctx, app: string, outcomes: readonly Outcome[], seqOf: ReadonlyMap<string, number>, baseBefore: ConfigDoc | null | undefined): void {
  const r = ctx.state.apps[app];
  if (r?.targets === undefined) return;
  const targets = { ...r.targets };
  let changed = false;
  const refused = outcomes.some((o) => o.result === 'refused');
  for (const o of outcomes) {
    const t = targets[o.device.id];
    if (o.result !== 'refused' || t === undefined || t.seq !== seqOf.get(o.device.id) || t.prev === undefined) continue;
    targets[o.device.id] = { seq: t.seq, doc: t.prev, publishedAt: t.publishedAt };
    changed = true;
  }
  if (changed || (refused && baseBefore !== undefined)) {
    ctx.state.apps[app] = { ...r, targets, ...(refused && baseBefore !== undefined ? { doc: baseBefore } : {}) };
    save(ctx);
  }
}

export function requireReadable(ctx: Ctx, app: string): void {
  const cur = ctx.state.apps[app];
  const unverified = ctx.ahead.get(`app:${app}`);
  if (cur?.doc == null && unverified !== undefined) {
    throw new MeshError('state', `the current ${app} configuration at the portal (#${unverified}) is signed by an administration key revoked since, and this computer holds no earlier one to start from. Write the whole document with: mesh config apply ${app} FILE.json`);
  }
}

export interface ChangeOptions {
  /** device names (or fingerprint starts); none: every device that runs the application */
  readonly devices: readonly string[];
  readonly waitMs: number;
  readonly confirmS?: number;
  /** the document for all devices after the change, from the one before */
  readonly base: (old: ConfigDoc) => ConfigDoc;
}

/** Bring the state up to date, then plan the change for its devices and check it (nothing is published). */
export async function planChange(ctx: Ctx, app: string, ch: Change, devices: readonly string[]): Promise<{ synced: SyncResult; planned: Planned[] }> {
  const synced = await sync(ctx);
  save(ctx);
  if (ch.kind === 'assign') requireReadable(ctx, app);
  const targets = resolveTargets(ctx, app, devices);
  return { synced, planned: await plan(ctx, app, targets, ch) };
}

/** Bring the state up to date, plan the change for its devices, check it, publish it and wait. */
export async function changeConfig(ctx: Ctx, app: string, ch: Change, o: ChangeOptions): Promise<{ planned: Planned[] } & Published> {
  const { planned } = await planChange(ctx, app, ch, o.devices);
  const r = await publishPlanned(ctx, app, planned, { all: o.devices.length === 0, base: o.base, waitMs: o.waitMs, ...(o.confirmS !== undefined ? { confirmS: o.confirmS } : {}) });
  return { planned, ...r };
}
