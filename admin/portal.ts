/**
 * Talking to the (untrusted) portal as the owner: the pinned portal key, the session identity,
 * read-back of the account (Account), log receipts, device statuses, and publication of the
 * personal and application profiles. Nothing the portal returns is believed before it has been
 * verified against the master UDF this owner holds.
 */
import { b64u, fromB64u } from '../mesh/bytes.js';
import { MeshError, isMeshError } from '../mesh/errors.js';
import { decrypt, payloadBytes, type EncryptedEnvelope, type SignedEnvelope } from '../mesh/envelope.js';
import { checkJsonValue, parseJson } from '../mesh/json.js';
import { leafHash } from '../mesh/merkle.js';
import { verifyStatus, verifyTreeHead, verifyPortalProfile, type PortalProfile, type StatusPayload } from '../mesh/messages.js';
import { signKeyId } from '../mesh/keys.js';
import {
  MAX_CONFIG_BYTES,
  createApplicationProfile,
  createPersonalProfile,
  parseApplicationPayload,
  parsePersonalPayload,
  verifyApplicationProfile,
  verifyDeviceProfile,
  verifyMasterProfile,
  verifyPersonalProfile,
  type AdminKeys,
  type ApplicationProfile,
  type DeviceProfile,
  type MasterProfile,
} from '../mesh/profiles.js';
import { shortFingerprint } from '../mesh/claim.js';
import { PortalClient } from '../client/portal-client.js';
import type { AccountResponse, HelloResponse, LogReceipt } from '../mesh/protocol.js';
import type { CommandIo } from '../runtime/cli.js';
import { adminKid, nowIso, saveState, type AppRecord, type ConfigDoc, type DeviceRecord, type State } from './state.js';

export interface Ctx {
  readonly home: string;
  readonly io: CommandIo;
  readonly state: State;
  readonly admin: AdminKeys;
  readonly client: PortalClient;
}

export function ownerClient(state: State, admin: AdminKeys): PortalClient {
  return new PortalClient({ url: state.portal, identity: { subject: state.account, key: admin.sign } });
}

export function save(ctx: Ctx): void {
  saveState(ctx.home, ctx.state);
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

export function portalKey(state: State): Uint8Array {
  return fromB64u(state.portalKey, 'portalKey', 32);
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

/** Keep the portal's receipt so `mesh log verify` can later check the object is in the log. */
export function recordReceipt(ctx: { state: State; io: CommandIo }, kind: string, env: SignedEnvelope, r: LogReceipt): void {
  const hash = b64u(leafHash(payloadBytes(env)));
  try {
    const th = verifyTreeHead(r.treeHead, portalKey(ctx.state));
    if (r.index >= th.size) throw new MeshError('bad-proof', `leaf ${r.index} is not inside a tree of ${th.size}`);
    ctx.state.receipts.push({ index: r.index, kind, payloadHash: hash, size: th.size, root: b64u(th.root) });
  } catch (e) {
    ctx.state.receipts.push({ index: r.index, kind, payloadHash: hash, size: null, root: null });
    ctx.io.progress(`warning: the portal's log receipt for this ${kind} does not verify (${isMeshError(e) ? e.message : String(e)}); run "mesh log verify"\n`);
  }
}

// ---------------------------------------------------------------- reading the account back

export interface SyncResult {
  readonly account: AccountResponse;
  readonly master: MasterProfile;
}

export function decryptDoc(ap: { readonly payload: { readonly config: EncryptedEnvelope } }, key: { publicKey: Uint8Array; privateKey: Uint8Array }): ConfigDoc {
  const plain = decrypt(ap.payload.config, key);
  const doc = checkJsonValue(parseJson(plain, MAX_CONFIG_BYTES, 'configuration'), 'configuration');
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new MeshError('malformed', 'configuration must be a JSON object');
  return doc;
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
 * Read the account back (Account) and bring our state up to what other administration devices
 * published. Everything is verified against our master UDF. A portal that returns an older
 * profile than we published is `rollback`. Our own key no longer listed is `revoked-key`.
 */
export async function sync(ctx: Ctx): Promise<SyncResult> {
  const { state } = ctx;
  const acct = await ctx.client.account();
  if (acct.account !== state.account) throw new MeshError('wrong-master', `the portal answered for ${acct.account}, not ${state.account}`);
  const master = verifyMasterProfile(acct.master, state.master);
  const ours = currentMaster(state);
  if (master.payload.seq < ours.payload.seq) {
    throw new MeshError('rollback', `the portal returned master profile #${master.payload.seq}, older than #${ours.payload.seq} this device already holds: it is replaying old data. Run mesh log verify, and do not trust this portal until it is explained`);
  }
  if (master.payload.seq > ours.payload.seq) state.masterEnvelope = master.envelope;
  requireListed(master, ctx.admin, state.account);

  if (acct.personal !== null) {
    const claimed = parsePersonalPayload(payloadBytes(acct.personal));
    if (claimed.seq < state.personalSeq) {
      throw new MeshError('rollback', `the portal returned personal profile #${claimed.seq}, older than #${state.personalSeq} this device published: it is replaying old data`);
    }
    if (claimed.seq > state.personalSeq) {
      try {
        const pp = verifyPersonalProfile(acct.personal, master);
        mergeDevices(state, pp.payload.devices);
        for (const app of pp.payload.apps) if (state.apps[app] === undefined) state.apps[app] = { seq: 0, doc: null, publishedAt: pp.payload.created };
      } catch (e) {
        // signed by an administrator since revoked: its seq still counts, its content does not
        ctx.io.progress(`note: the latest personal profile at the portal does not verify under the current master profile (${isMeshError(e) ? e.code : 'error'}); it will be re-signed at the next change\n`);
      }
      state.personalSeq = claimed.seq;
    }
  }

  for (const [app, env] of Object.entries(acct.applications)) {
    const claimed = parseApplicationPayload(payloadBytes(env));
    const mine = state.apps[app];
    if (mine !== undefined && claimed.seq < mine.seq) {
      throw new MeshError('rollback', `the portal returned ${app} configuration #${claimed.seq}, older than #${mine.seq} this device published: it is replaying old data`);
    }
    if (mine === undefined || claimed.seq > mine.seq) {
      let doc: ConfigDoc | null = null;
      try {
        const ap = verifyApplicationProfile(env, master);
        doc = openAsOwner(ap, ctx.admin.enc);
      } catch {
        doc = null;
      }
      state.apps[app] = { seq: claimed.seq, doc, publishedAt: claimed.created };
    }
  }
  return { account: acct, master };
}

function mergeDevices(state: State, listed: readonly { id: string; name: string; model: string; enc: string }[]): void {
  const old = new Map(state.devices.map((d) => [d.id, d]));
  state.devices = listed.map((d) => old.get(d.id) ?? { id: d.id, name: d.name, model: d.model, enc: d.enc, fingerprint: shortFingerprint(d.id), claimedAt: null, endorsedBy: null });
}

// ---------------------------------------------------------------- publishing

export async function publishPersonal(ctx: Ctx): Promise<number> {
  const { state } = ctx;
  const seq = state.personalSeq + 1;
  const env = createPersonalProfile(ctx.admin, {
    master: state.master,
    account: state.account,
    seq,
    devices: state.devices.map((d) => ({ id: d.id, name: d.name, model: d.model, enc: d.enc })),
    apps: Object.keys(state.apps).sort(),
  });
  const r = await ctx.client.publish(env);
  state.personalSeq = seq;
  recordReceipt(ctx, 'personal', env, r);
  return seq;
}

/** Publish `doc` as the next configuration of `app`, encrypted to every connected device and to the owner's own keys. */
export async function publishApp(ctx: Ctx, app: string, doc: ConfigDoc, extraReaders: readonly Uint8Array[] = []): Promise<{ seq: number; publishedAt: string; devices: DeviceRecord[] }> {
  const { state } = ctx;
  const master = currentMaster(state);
  const seq = (state.apps[app]?.seq ?? 0) + 1;
  const publishedAt = nowIso();
  const devices = [...state.devices];
  const env = createApplicationProfile(ctx.admin, {
    master: state.master,
    app,
    seq,
    created: publishedAt,
    config: doc,
    devices: devices.map((d) => ({ id: d.id, enc: fromB64u(d.enc, 'device.enc', 32) })),
    alsoReadableBy: [...ownerReaders(master), ...extraReaders],
  });
  const r = await ctx.client.publish(env);
  const rec: AppRecord = { seq, doc, publishedAt };
  state.apps[app] = rec;
  recordReceipt(ctx, 'application', env, r);
  return { seq, publishedAt, devices };
}

// ---------------------------------------------------------------- device statuses

export interface DeviceView {
  readonly id: string;
  readonly profile: DeviceProfile | null;
  readonly status: StatusPayload | null;
  readonly received: string | null;
  /** why the portal's data for this device was not believed */
  readonly problem: string | null;
}

/** Each device's latest signed status, verified with the device's own key (bound to its UDF). */
export async function deviceStatuses(ctx: Ctx): Promise<Map<string, DeviceView>> {
  const out = new Map<string, DeviceView>();
  for (const e of await ctx.client.deviceStatus()) {
    let profile: DeviceProfile | null = null;
    let status: StatusPayload | null = null;
    let problem: string | null = null;
    try {
      profile = verifyDeviceProfile(e.profile, e.device);
      if (e.status !== null) status = verifyStatus(e.status, fromB64u(profile.payload.sign, 'sign', 32));
    } catch (err) {
      problem = `the status the portal holds for this device does not verify (${isMeshError(err) ? `${err.code}: ${err.message}` : String(err)})`;
      status = null;
    }
    out.set(e.device, { id: e.device, profile, status, received: e.received, problem });
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
