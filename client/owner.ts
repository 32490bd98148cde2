/**
 * Talking to the (untrusted) portal as the owner, for the CLI (admin/) and the owner app (web/): the pinned portal key, the session identity,
 * read-back of the account (Account), log receipts, device statuses, and publication of the
 * personal and application profiles. Nothing the portal returns is believed before it has been
 * verified against the master UDF this owner holds, and nothing is stored before that: a number
 * or object that does not verify fails the command with `bad-answer` (the portal's answer is
 * wrong) and leaves the state as it was, so the next command, with an honest answer, works.
 *
 * What the state takes from the portal, and the check before it is kept:
 *   master profile        signed by the master key the owner holds (its UDF), seq not older
 *   personal profile      signed by an administration key the current master lists
 *   application profiles  the same, filed under their own application name
 *   our own seq numbers   kept only after the portal's receipt is proven: the tree head is signed
 *                         by the pinned portal key and an inclusion proof shows the leaf is exactly
 *                         what we published (a forged "accepted" would otherwise leave us ahead of
 *                         the portal and every later read-back would look like a rollback)
 *   receipts              the same proof; an unproven receipt is never kept (mesh log verify would
 *                         fail on it for good)
 *   tree heads            signed by the pinned key and consistent with the last one (mesh log verify)
 */
import { b64u, fromB64u } from '../mesh/bytes.js';
import { MeshError, isMeshError } from '../mesh/errors.js';
import { payloadBytes, type SignedEnvelope } from '../mesh/envelope.js';
import { openPrivateStatus, verifyStatus, verifyPortalProfile, type PortalProfile, type PrivateStatus, type StatusPayload } from '../mesh/messages.js';
import { signKeyId } from '../mesh/keys.js';
import {
  applicationTargets,
  createApplicationProfile,
  openApplicationAsReader,
  createPersonalProfile,
  parseApplicationPayload,
  parsePersonalPayload,
  verifyApplicationProfile,
  verifyDeviceProfile,
  verifyMasterProfile,
  verifyPersonalProfile,
  type AdminKeys,
  type ApplicationProfile,
  type DeviceEntry,
  type DeviceProfile,
  type MasterProfile,
} from '../mesh/profiles.js';
import { PortalClient } from './portal-client.js';
import { ROLLOUT_APP } from './rollout.js';
import type { AccountResponse, HelloResponse } from '../mesh/protocol.js';
import { restoreSchemas } from './owner-schemas.js';
import { adminKid, deviceEntry, deviceFromEntry, nowIso, schemasByFingerprint, type AppRecord, type ConfigDoc, type DeviceDoc, type DeviceRecord, type DevicePortal, type Receipt, type State } from './owner-state.js';
import { visit } from './owner-intermesh.js';
import { badAnswer, portalKey, proveReceipt } from './owner-receipt.js';

export { badAnswer, portalKey, proveReceipt };

/**
 * What an owner's action needs, in the CLI (admin/command.ts: files, the terminal) and in the owner
 * app (web/: IndexedDB, the page) alike.
 */
export interface Ctx {
  readonly state: State;
  readonly admin: AdminKeys;
  readonly client: PortalClient;
  /** numbers the portal shows above what verifies, this command only (see Ahead) */
  readonly ahead: Ahead;
  /** keeps the state (the CLI writes profile.json, the page its IndexedDB store) */
  readonly store: (state: State) => void;
  /** a line of progress or warning for the person */
  readonly note: (line: string) => void;
}

/**
 * Sequence numbers the portal shows for objects signed by an administration key the owner has
 * since revoked: their content is not believed, but the next version must be numbered above them
 * (the portal and the devices refuse anything not newer). Kept in memory for the one command,
 * never stored, and believed only up to MAX_UNVERIFIED_STEP above what verifies, so a forged
 * number can neither stick nor push the account's numbers out of range.
 * Keys: 'personal', and 'app:NAME'.
 */
export type Ahead = Map<string, number>;
export const MAX_UNVERIFIED_STEP = 1000;

export function ownerClient(state: State, admin: AdminKeys): PortalClient {
  return new PortalClient({ url: state.portal, identity: { subject: state.account, key: admin.sign } });
}

export function save(ctx: Ctx): void {
  ctx.store(ctx.state);
}

// ---------------------------------------------------------------- the portal's key (pinned on first contact)

/**
 * Hello, and the portal profile in it. Without `pinnedId` this is the first contact: the key is
 * what we will pin. With it, a different key is `bad-key`: the portal was replaced, or someone
 * sits between us and it.
 */
export async function hello(client: PortalClient, pinnedId?: string): Promise<{ hello: HelloResponse; portal: PortalProfile }> {
  const h = await client.hello();
  let portal: PortalProfile;
  try {
    portal = verifyPortalProfile(h.portal);
  } catch (e) {
    throw new MeshError('bad-signature', `the portal at ${client.url.origin} sent a portal profile that does not verify (${isMeshError(e) ? e.message : String(e)}); do not use it`);
  }
  if (pinnedId !== undefined && portal.id !== pinnedId) {
    throw new MeshError('bad-key', `the portal at ${client.url.origin} now signs with key ${portal.id}, but this profile pinned ${pinnedId} on first contact: it is not the same portal (or someone is in between). Do not continue; ask the portal's operator whether its key really changed`);
  }
  return { hello: h, portal };
}

// ---------------------------------------------------------------- the master profile we hold

export function currentMaster(state: State): MasterProfile {
  return verifyMasterProfile(state.masterEnvelope, state.master);
}

/** Every key a configuration is also encrypted to: the escrow key (for recovery) and each administrator's. */
export function ownerReaders(master: MasterProfile): Uint8Array[] {
  return [...master.payload.escrow.map((e) => fromB64u(e, 'escrow', 32)), ...master.payload.admins.map((a) => fromB64u(a.enc, 'admin.enc', 32))];
}

function requireListed(master: MasterProfile, admin: AdminKeys, account: string): void {
  const kid = adminKid(admin);
  if (master.payload.admins.some((a) => a.sign === b64u(admin.sign.publicKey))) return;
  if (master.payload.revoked.includes(kid)) {
    throw new MeshError('revoked-key', `this administration device (${kid}) has been revoked from ${account}; it can no longer change anything. Use another administration device, or mesh recover with your shares`);
  }
  throw new MeshError('unknown-signer', `this administration device (${kid}) is not listed in ${account}'s master profile; add it with mesh admin add / mesh admin join`);
}

// ---------------------------------------------------------------- receipts

/** Keep a proven receipt so `mesh log verify` can later check the object is still in the log. */
export function keepReceipt(state: State, receipt: Receipt): void {
  state.receipts.push(receipt);
}

// ---------------------------------------------------------------- reading the account back

export interface SyncResult {
  readonly account: AccountResponse;
  readonly master: MasterProfile;
}

export function decryptDoc(ap: ApplicationProfile, key: { publicKey: Uint8Array; privateKey: Uint8Array }): ConfigDoc {
  return openApplicationAsReader(ap, key);
}

/** Open an application profile's configuration with an owner key (an administrator's or the escrow key). */
export function openAsOwner(ap: ApplicationProfile, key: { publicKey: Uint8Array; privateKey: Uint8Array }): ConfigDoc | null {
  try {
    return decryptDoc(ap, key);
  } catch (e) {
    if (isMeshError(e, 'not-a-recipient')) return null;
    throw e;
  }
}

/**
 * `verify()`, or, for an object signed by an administration key the owner revoked since, its number
 * noted in `ahead` (not its content), when it is at most MAX_UNVERIFIED_STEP above `known`.
 * Anything else is the portal's answer failing: `bad-answer`, and nothing is kept.
 */
export function verifiedOrAhead<T>(
  p: { ahead: Ahead; note: (s: string) => void },
  key: string,
  what: string,
  claimed: number,
  known: number,
  verify: () => T,
): T | undefined {
  try {
    return verify();
  } catch (e) {
    if (isMeshError(e, 'revoked-key') && claimed - known <= MAX_UNVERIFIED_STEP) {
      p.ahead.set(key, claimed);
      p.note(`note: the portal's ${what} #${claimed} is signed by an administration key revoked since; its content is not used, and the next version is numbered above it\n`);
      return undefined;
    }
    if (!isMeshError(e)) throw e;
    throw badAnswer(`${what} #${claimed}`, e, { seq: claimed });
  }
}

/** The number a verifier is asked to trust, read before the signature is checked (never kept as such). */
export function claimedSeq(what: string, read: () => { seq: number }): number {
  try {
    return read().seq;
  } catch (e) {
    if (!isMeshError(e)) throw e;
    throw badAnswer(what, e);
  }
}

/**
 * Read the account back (Account) and bring our state up to what other administration devices
 * published. Everything kept is verified against our master UDF first. A portal that returns an
 * older profile than we hold is `rollback`; one that returns what does not verify is `bad-answer`
 * (and nothing is kept). Our own key no longer listed is `revoked-key`.
 */
export async function sync(ctx: Ctx): Promise<SyncResult> {
  const { state } = ctx;
  const acct = await ctx.client.account();
  if (acct.account !== state.account) throw badAnswer('Account answer', new MeshError('wrong-master', `it is for ${acct.account}, not ${state.account}`));
  let master: MasterProfile;
  try {
    master = verifyMasterProfile(acct.master, state.master);
  } catch (e) {
    if (!isMeshError(e)) throw e;
    throw badAnswer('master profile', e);
  }
  const ours = currentMaster(state);
  if (master.payload.seq < ours.payload.seq) {
    throw new MeshError('rollback', `the portal returned master profile #${master.payload.seq}, older than #${ours.payload.seq} this device already holds: it is replaying old data. Run mesh log verify, and do not trust this portal until it is explained`);
  }
  requireListed(master, ctx.admin, state.account);
  if (master.payload.seq > ours.payload.seq) state.masterEnvelope = master.envelope;
  ctx.ahead.clear();
  const note = ctx.note;

  const personal = acct.personal;
  if (personal !== null) {
    const claimed = claimedSeq('personal profile', () => parsePersonalPayload(payloadBytes(personal)));
    if (claimed < state.personalSeq) {
      throw new MeshError('rollback', `the portal returned personal profile #${claimed}, older than #${state.personalSeq} this device published: it is replaying old data`);
    }
    if (claimed > state.personalSeq) {
      const pp = verifiedOrAhead({ ahead: ctx.ahead, note }, 'personal', 'personal profile', claimed, state.personalSeq, () => verifyPersonalProfile(personal, master));
      if (pp !== undefined) {
        if (pp.payload.account !== state.account) throw badAnswer(`personal profile #${claimed}`, new MeshError('wrong-master', `it is for ${pp.payload.account}`));
        const known = new Set(state.devices.map((d) => d.id));
        mergeDevices(state, pp.payload.devices);
        // a device another administration device claimed: its schemas from the personal profile, checked against its signed profile
        const added = state.devices.filter((d) => !known.has(d.id));
        if (added.length > 0 && pp.payload.schemas !== undefined) {
          const got = new Map((await restoreSchemas(ctx.client, added, pp.payload.schemas, note)).map((d) => [d.id, d]));
          state.devices = state.devices.map((d) => got.get(d.id) ?? d);
        }
        for (const app of pp.payload.apps) if (state.apps[app] === undefined) state.apps[app] = { seq: 0, doc: null, publishedAt: pp.payload.created };
        state.personalSeq = pp.payload.seq;
      }
    }
  }

  for (const [app, env] of Object.entries(acct.applications)) {
    // the owner's rollout record (client/owner-rollout.ts reads it): not a configuration of any device
    if (app === ROLLOUT_APP) continue;
    const claimed = claimedSeq(`${app} configuration`, () => parseApplicationPayload(payloadBytes(env)));
    const mine = state.apps[app];
    if (mine !== undefined && claimed < mine.seq) {
      throw new MeshError('rollback', `the portal returned ${app} configuration #${claimed}, older than #${mine.seq} this device published: it is replaying old data`);
    }
    if (mine === undefined || claimed > mine.seq) {
      const ap = verifiedOrAhead({ ahead: ctx.ahead, note }, `app:${app}`, `${app} configuration`, claimed, mine?.seq ?? 0, () => verifyApplicationProfile(env, master));
      if (ap === undefined) continue;
      if (ap.payload.app !== app) throw badAnswer(`${app} configuration #${claimed}`, new MeshError('wrong-type', `it is the configuration of ${ap.payload.app}`));
      let doc: ConfigDoc | null;
      try {
        doc = openAsOwner(ap, ctx.admin.enc);
      } catch {
        doc = null;
      }
      // another administration device published it, to some or all devices: each target now has it
      const targets = { ...materializeTargets(mine, state.devices) };
      const sentTo = applicationTargets(ap);
      for (const id of sentTo) targets[id] = { seq: ap.payload.seq, doc, publishedAt: ap.payload.created };
      // to every device that runs it (a device whose schemas leave the application out never gets it)
      const toAll = mine === undefined || state.devices.every((d) => sentTo.includes(d.id) || (d.schemas !== undefined && !Object.hasOwn(d.schemas, app)));
      state.apps[app] = { seq: ap.payload.seq, doc: toAll ? doc : mine.doc, publishedAt: ap.payload.created, targets };
    }
  }
  return { account: acct, master };
}

function mergeDevices(state: State, listed: readonly DeviceEntry[]): void {
  const old = new Map(state.devices.map((d) => [d.id, d]));
  state.devices = listed.map((d) => old.get(d.id) ?? deviceFromEntry(d));
}

// ---------------------------------------------------------------- publishing

/** The next number for `key` ('personal' or 'app:NAME'): above what we hold and what the portal showed this command. */
export function nextSeq(ahead: Ahead, key: string, held: number): number {
  return Math.max(held, ahead.get(key) ?? 0) + 1;
}

export async function publishPersonal(ctx: Ctx): Promise<number> {
  const { state } = ctx;
  const seq = nextSeq(ctx.ahead, 'personal', state.personalSeq);
  const env = createPersonalProfile(ctx.admin, {
    master: state.master,
    account: state.account,
    seq,
    devices: state.devices.map(deviceEntry),
    apps: Object.keys(state.apps)
      .filter((a) => state.apps[a]?.removed !== true)
      .sort(),
    schemas: schemasByFingerprint(state.devices),
  });
  const receipt = await proveReceipt(ctx, 'personal', env, await ctx.client.publish(env));
  state.personalSeq = seq;
  ctx.ahead.delete('personal');
  keepReceipt(state, receipt);
  return seq;
}

/** Per device, what was last published to it (a record without targets: every device had its seq and doc). */
export function materializeTargets(r: AppRecord | undefined, devices: readonly DeviceRecord[]): Record<string, DeviceDoc> {
  if (r === undefined) return {};
  if (r.targets !== undefined) return { ...r.targets };
  return Object.fromEntries(devices.map((d) => [d.id, { seq: r.seq, doc: r.doc, publishedAt: r.publishedAt }]));
}

export interface PublishOptions {
  /** the devices it is encrypted to and published for (default: every device) */
  readonly targets?: readonly DeviceRecord[];
  /** also readable by these keys (a new administration device) */
  readonly extraReaders?: readonly Uint8Array[];
  /** the document for all devices after this publication (default: `doc` when it goes to every device, else unchanged) */
  readonly base?: ConfigDoc;
  /** per device id, the document this change started from (default: what was last published to it) */
  readonly prev?: ReadonlyMap<string, ConfigDoc | null>;
  /** the devices must confirm the change within this many seconds (portal reached, health check passed) or revert it */
  readonly confirmS?: number;
}

/**
 * Publish `doc` as the next configuration of `app` (the next number for this owner and
 * application), encrypted to the target devices and to the owner's own keys.
 */
export async function publishApp(ctx: Ctx, app: string, doc: ConfigDoc, opts: PublishOptions = {}): Promise<{ seq: number; publishedAt: string; devices: DeviceRecord[] }> {
  const { state } = ctx;
  const master = currentMaster(state);
  const old = state.apps[app];
  const seq = nextSeq(ctx.ahead, `app:${app}`, old?.seq ?? 0);
  const publishedAt = nowIso();
  const devices = [...(opts.targets ?? state.devices)];
  const toAll = opts.targets === undefined || state.devices.every((d) => devices.some((x) => x.id === d.id));
  const extraReaders = opts.extraReaders ?? [];
  const envFor = (to: readonly DeviceRecord[]): SignedEnvelope =>
    createApplicationProfile(ctx.admin, {
      master: state.master,
      app,
      seq,
      created: publishedAt,
      config: doc,
      devices: to.map((d) => ({ id: d.id, enc: fromB64u(d.enc, 'device.enc', 32) })),
      alsoReadableBy: [...ownerReaders(master), ...extraReaders],
      ...(opts.confirmS !== undefined ? { confirmS: opts.confirmS } : {}),
    });
  // the home portal always gets it (for the devices there, perhaps none), first: it holds the account's latest
  // number, so if a portal below fails, the next sync takes this number and the next change goes above it
  const env = envFor(devices.filter((d) => d.portal === undefined));
  const receipt = await proveReceipt(ctx, 'application', env, await ctx.client.publish(env));
  // devices at other portals (the Intermesh) get the same number there, each portal for its own devices
  const away = new Map<string, { portal: DevicePortal; devices: DeviceRecord[] }>();
  for (const d of devices) {
    if (d.portal === undefined) continue;
    const g = away.get(d.portal.id) ?? { portal: d.portal, devices: [] };
    g.devices.push(d);
    away.set(d.portal.id, g);
  }
  for (const g of away.values()) {
    const e = envFor(g.devices);
    await visit(ctx, g.portal, async (client) => proveReceipt({ client, state, portal: g.portal }, 'application', e, await client.publish(e)));
  }
  const targets = materializeTargets(old, state.devices);
  for (const d of devices) {
    // what this device had before: nothing sent yet is an empty document; null only when it cannot be read here
    const had = targets[d.id];
    const before = opts.prev?.has(d.id) === true ? (opts.prev.get(d.id) ?? null) : had === undefined ? {} : had.doc;
    targets[d.id] = { seq, doc, publishedAt, prev: before };
  }
  const rec: AppRecord = { seq, doc: opts.base ?? (toAll ? doc : (old?.doc ?? {})), publishedAt, targets };
  state.apps[app] = rec;
  ctx.ahead.delete(`app:${app}`);
  keepReceipt(state, receipt);
  return { seq, publishedAt, devices };
}

// ---------------------------------------------------------------- device statuses

export interface DeviceView {
  readonly id: string;
  readonly profile: DeviceProfile | null;
  /** verified; its errors are the full ones from the private part when this computer can open it */
  readonly status: StatusPayload | null;
  /** the part of the status only the owners read: effective values with their sources, full refusals */
  readonly private: PrivateStatus | null;
  readonly received: string | null;
  /** why the portal's data for this device was not believed */
  readonly problem: string | null;
}

/** Each device's latest signed status, verified with the device's own key (bound to its UDF). */
export async function deviceStatuses(ctx: Ctx): Promise<Map<string, DeviceView>> {
  const out = new Map<string, DeviceView>();
  const entries = await ctx.client.deviceStatus();
  // devices at other portals: their status from there, only for the devices this owner has there
  const away = new Map<string, DevicePortal>();
  for (const d of ctx.state.devices) if (d.portal !== undefined) away.set(d.portal.id, d.portal);
  for (const portal of away.values()) {
    const mine = new Set(ctx.state.devices.filter((d) => d.portal?.id === portal.id).map((d) => d.id));
    try {
      const got = await visit(ctx, portal, (client) => client.deviceStatus());
      entries.push(...got.filter((e) => mine.has(e.device)));
    } catch (e) {
      if (!isMeshError(e) || !['unavailable', 'timeout'].includes(e.code)) throw e;
      ctx.note(`note: the portal ${portal.name} (${portal.url}) could not be reached for the status of your devices there\n`);
    }
  }
  for (const e of entries) {
    let profile: DeviceProfile | null = null;
    let status: StatusPayload | null = null;
    let priv: PrivateStatus | null = null;
    let problem: string | null = null;
    try {
      profile = verifyDeviceProfile(e.profile, e.device);
      if (e.status !== null) status = verifyStatus(e.status, fromB64u(profile.payload.sign, 'sign', 32));
    } catch (err) {
      problem = `the status the portal holds for this device does not verify (${isMeshError(err) ? `${err.code}: ${err.message}` : String(err)})`;
      status = null;
    }
    if (status !== null) {
      try {
        priv = openPrivateStatus(status, ctx.admin.enc) ?? null;
      } catch {
        priv = null; // signed by the device, but not something this computer can read: the plaintext stands
      }
      if (priv !== null) status = { ...status, errors: priv.errors };
    }
    out.set(e.device, { id: e.device, profile, status, private: priv, received: e.received, problem });
  }
  return out;
}

export function ownerEntry(status: StatusPayload | null, master: string) {
  return status?.owners.find((o) => o.master === master);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Poll `check` until it returns a value or `waitMs` passes (then undefined). */
export async function pollUntil<T>(waitMs: number, intervalMs: number, check: () => Promise<T | undefined>): Promise<T | undefined> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    const left = deadline - Date.now();
    if (left <= 0) return undefined;
    await sleep(Math.min(intervalMs, left));
  }
}

export { signKeyId };
