/**
 * The owner's state, wherever it is kept: what an administration device knows of its account
 * (portal pinned on first contact, master profile, devices, applications, log view) and its own
 * keys. The CLI keeps it in files (admin/state.ts), the owner app in IndexedDB (web/); both read it
 * back through these checks, so a hand-edited or half-restored copy fails with `state`, never with
 * a crash.
 */
import * as c from '../mesh/crypto.js';
import { b64u, fromB64u } from '../mesh/bytes.js';
import { MeshError } from '../mesh/errors.js';
import { parseSignedEnvelope, payloadBytes, type SignedEnvelope } from '../mesh/envelope.js';
import { arr, checkJsonValue, int, obj, optStr, str, type Json, type Obj } from '../mesh/json.js';
import { masterKeysFromSeed, signKeyId, type MasterKeys } from '../mesh/keys.js';
import { MAX_PERSONAL_SCHEMAS, parseMasterPayload, type AdminKeys, type DeviceEntry, type MasterPayload } from '../mesh/profiles.js';
import { shortFingerprint } from '../mesh/claim.js';
import { checkSchema, schemaFingerprint, type Schema } from '../mesh/schema.js';

/** 2: per-device documents (AppRecord.targets); a version 1 file is read and upgraded (see parseState) */
export const STATE_VERSION = 2;
export const MAX_STATE_BYTES = 8 * 1024 * 1024;
/** receipts kept for `mesh log verify`; the oldest are dropped beyond this */
export const MAX_RECEIPTS = 2000;

export type ConfigDoc = { [k: string]: Json };

export interface Endorsed {
  readonly manufacturer: string;
  /** the manufacturer key's UDF */
  readonly key: string;
  /** whether it matched the key given with --trust-manufacturer */
  readonly trusted: boolean;
}

export interface DeviceRecord {
  readonly id: string;
  readonly name: string;
  readonly model: string;
  /** X25519 public key (base64url): configuration is encrypted to it */
  readonly enc: string;
  readonly fingerprint: string;
  readonly claimedAt: string | null;
  readonly endorsedBy: Endorsed | null;
  /** the co-owners and guests (master fingerprints) this owner has been shown: a new one is marked */
  readonly seenOwners?: readonly string[];
  /** claimed with a guest invitation: may set only what the grant allows */
  readonly guest?: boolean;
  /**
   * the applications the device runs and the JSON Schema of each, as its signed profile declares
   * them (checked against the profile's fingerprints at claim); absent for a device whose profile
   * declares none (made before devices declared them): its values cannot be checked before publishing
   */
  readonly schemas?: Readonly<Record<string, Schema>>;
  /** the device is registered at another portal than this owner's home (the Intermesh): its claim, configuration and status go there */
  readonly portal?: DevicePortal;
}

/** A device as the personal profile lists it (with its portal when it is not the account's). */
export function deviceEntry(d: DeviceRecord): DeviceEntry {
  return { id: d.id, name: d.name, model: d.model, enc: d.enc, ...(d.portal !== undefined ? { portal: d.portal } : {}) };
}

/** A device the personal profile lists, as a record this computer has not claimed itself. */
export function deviceFromEntry(d: DeviceEntry): DeviceRecord {
  return { id: d.id, name: d.name, model: d.model, enc: d.enc, fingerprint: shortFingerprint(d.id), claimedAt: null, endorsedBy: null, ...(d.portal !== undefined ? { portal: d.portal } : {}) };
}

/** Another portal, as an owner's CLI knows it for a device registered there: its URL and its key, pinned on first contact. */
export interface DevicePortal {
  readonly url: string;
  /** the portal key's UDF */
  readonly id: string;
  /** the portal key (base64url) */
  readonly key: string;
  readonly name: string;
}

/** What was last published to one device for one application. */
export interface DeviceDoc {
  /** the number of the last configuration published to this device */
  readonly seq: number;
  /** what the next change for this device starts from; null when this computer cannot read it */
  readonly doc: ConfigDoc | null;
  readonly publishedAt: string;
  /** the document before `seq`: the next change starts from it instead when the device refused `seq` */
  readonly prev?: ConfigDoc | null;
}

/**
 * One application. `seq` is the highest number published for it (every publication, whichever
 * devices it targets, takes the next one: the portal and the devices refuse anything not newer);
 * `doc` is the document for all devices (a device claimed later gets it); `targets` holds, per
 * device id, what was last published to that device, so devices may differ (config set --device).
 * Without `targets` (a version 1 file, or a record read back from the portal at recovery) every
 * device has `seq` and `doc`.
 */
export interface AppRecord {
  readonly seq: number;
  /** the document for all devices; null when this administration device cannot read it */
  readonly doc: ConfigDoc | null;
  readonly publishedAt: string;
  readonly targets?: Readonly<Record<string, DeviceDoc>>;
  /** removed with mesh config remove: kept for its number (the next version is numbered above it) */
  readonly removed?: boolean;
}

/** What was last published to device `id` for this application (undefined: never sent to it). */
export function docFor(r: AppRecord, id: string): DeviceDoc | undefined {
  if (r.targets === undefined) return { seq: r.seq, doc: r.doc, publishedAt: r.publishedAt };
  return Object.hasOwn(r.targets, id) ? r.targets[id] : undefined;
}

export interface Receipt {
  readonly index: number;
  readonly kind: string;
  /** the RFC 9162 leaf hash (base64url) of the published payload bytes */
  readonly payloadHash: string;
  /** the signed tree head the receipt came with (null when it did not verify) */
  readonly size: number | null;
  readonly root: string | null;
  /** included in a tree head this owner has verified (consistency keeps it included) */
  readonly checked?: boolean;
}

export interface TreeHeadRecord {
  readonly size: number;
  readonly root: string;
  readonly created: string;
}

export interface State {
  version: number;
  /** the portal's base URL */
  portal: string;
  /** the portal's signing key (base64url) and its UDF, pinned on first contact */
  portalKey: string;
  portalId: string;
  portalName: string;
  /** alice@portal */
  account: string;
  /** the master profile's UDF: the owner's lasting identity */
  master: string;
  masterEnvelope: SignedEnvelope;
  personalSeq: number;
  /** this administration device's name */
  admin: string;
  apps: Record<string, AppRecord>;
  devices: DeviceRecord[];
  lastTreeHead: TreeHeadRecord | null;
  receipts: Receipt[];
  /** the highest number of the rollout record (client/owner-rollout.ts) this computer has seen: an older one from the portal is a replay */
  rolloutSeq?: number;
  /** the portal and account this owner moved from (mesh account move): devices still there are moved with mesh device move */
  movedFrom?: { portal: string; portalId: string; account: string };
}

/** A fresh state for this administration device, pinned to the portal it first talked to. */
export function newState(p: {
  portalUrl: string;
  portal: { sign: Uint8Array; id: string; name: string };
  account: string;
  master: string;
  masterEnvelope: SignedEnvelope;
  admin: string;
  personalSeq?: number;
  apps?: Record<string, AppRecord>;
  devices?: DeviceRecord[];
}): State {
  return {
    version: STATE_VERSION,
    portal: p.portalUrl,
    portalKey: b64u(p.portal.sign),
    portalId: p.portal.id,
    portalName: p.portal.name,
    account: p.account,
    master: p.master,
    masterEnvelope: p.masterEnvelope,
    personalSeq: p.personalSeq ?? 1,
    admin: p.admin,
    apps: p.apps ?? {},
    devices: p.devices ?? [],
    lastTreeHead: null,
    receipts: [],
  };
}

function parseDevice(v: unknown, w: string): DeviceRecord {
  const o = obj(v, w, ['id', 'name', 'model', 'enc', 'fingerprint', 'claimedAt', 'endorsedBy'], ['seenOwners', 'guest', 'schemas', 'portal']);
  let endorsedBy: Endorsed | null = null;
  if (o.endorsedBy !== null) {
    const eo = obj(o.endorsedBy, `${w}.endorsedBy`, ['manufacturer', 'key', 'trusted']);
    endorsedBy = { manufacturer: str(eo, 'manufacturer', w), key: str(eo, 'key', w), trusted: eo.trusted === true };
  }
  return {
    id: str(o, 'id', w, 120),
    name: str(o, 'name', w, 64),
    model: str(o, 'model', w, 64),
    enc: str(o, 'enc', w, 60),
    fingerprint: str(o, 'fingerprint', w, 120),
    claimedAt: o.claimedAt === null ? null : str(o, 'claimedAt', w, 30),
    endorsedBy,
    ...(o.seenOwners !== undefined ? { seenOwners: arr(o, 'seenOwners', w, 256).map((x, i) => str({ x }, 'x', `${w}.seenOwners[${i}]`, 120)) } : {}),
    ...(o.guest === true ? { guest: true } : {}),
    ...(o.schemas !== undefined ? { schemas: parseSchemas(o.schemas, `${w}.schemas`) } : {}),
    ...(o.portal !== undefined ? { portal: parseDevicePortal(o.portal, `${w}.portal`) } : {}),
  };
}

function parseDevicePortal(v: unknown, w: string): DevicePortal {
  const o = obj(v, w, ['url', 'id', 'key', 'name']);
  return { url: str(o, 'url', w, 2000), id: str(o, 'id', w, 120), key: str(o, 'key', w, 60), name: str(o, 'name', w, 253) };
}

/**
 * The devices' schemas as the personal profile carries them: one copy per schema fingerprint
 * (recovery and a new administration device take them back from there, checked against each
 * device's signed profile: client/owner-schemas.ts restoreSchemas).
 */
export function schemasByFingerprint(devices: readonly DeviceRecord[]): Record<string, Json> {
  const all = new Map<string, Schema>();
  for (const d of devices) for (const s of Object.values(d.schemas ?? {})) all.set(schemaFingerprint(s), s);
  // within what a personal profile may hold (the count, and a share of its bytes): beyond that a
  // schema is left out, and a device that runs it comes back without it (noted at recovery)
  const out: Record<string, Json> = {};
  let bytes = 0;
  for (const [fp, s] of [...all].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const size = JSON.stringify(s).length;
    if (Object.keys(out).length >= MAX_PERSONAL_SCHEMAS || bytes + size > MAX_PERSONAL_SCHEMA_BYTES) continue;
    bytes += size;
    // a schema is JSON: it came parsed from the device's claim record or an invitation
    out[fp] = s as Json;
  }
  return out;
}

/** the share of a personal profile (MAX_PROFILE_BYTES, 256 KiB) its schemas may take */
export const MAX_PERSONAL_SCHEMA_BYTES = 48 * 1024;

function parseSchemas(v: unknown, w: string): Record<string, Schema> {
  const o = obj(v, w, [], Object.keys((v ?? {}) as Obj));
  const out: Record<string, Schema> = {};
  for (const [app, s] of Object.entries(o)) out[app] = checkSchema(s, `${w}.${app}`);
  return out;
}

function parseDoc(v: unknown, w: string): ConfigDoc | null {
  if (v === null) return null;
  const d = checkJsonValue(v, w);
  if (typeof d !== 'object' || d === null || Array.isArray(d)) throw new MeshError('malformed', `${w} must be an object`);
  return d;
}

function parseApp(v: unknown, w: string, devices: readonly DeviceRecord[], version: number): AppRecord {
  const o = obj(v, w, ['seq', 'doc', 'publishedAt'], ['targets', 'removed']);
  const rec: AppRecord = { seq: int(o, 'seq', w, 0), doc: parseDoc(o.doc, `${w}.doc`), publishedAt: str(o, 'publishedAt', w, 30), ...(o.removed === true ? { removed: true } : {}) };
  if (o.targets === undefined) {
    // version 1: every publication went to every device; say so per device from now on
    return version === 1 ? { ...rec, targets: Object.fromEntries(devices.map((d) => [d.id, { seq: rec.seq, doc: rec.doc, publishedAt: rec.publishedAt }])) } : rec;
  }
  const to = obj(o.targets, `${w}.targets`, [], Object.keys(o.targets as Obj));
  const targets: Record<string, DeviceDoc> = {};
  for (const [id, x] of Object.entries(to)) {
    const tw = `${w}.targets.${id}`;
    const t = obj(x, tw, ['seq', 'doc', 'publishedAt'], ['prev']);
    targets[id] = { seq: int(t, 'seq', tw, 0), doc: parseDoc(t.doc, `${tw}.doc`), publishedAt: str(t, 'publishedAt', tw, 30), ...(t.prev !== undefined ? { prev: parseDoc(t.prev, `${tw}.prev`) } : {}) };
  }
  return { ...rec, targets };
}

function parseMovedFrom(v: unknown, w: string): { portal: string; portalId: string; account: string } {
  const o = obj(v, w, ['portal', 'portalId', 'account']);
  return { portal: str(o, 'portal', w, 300), portalId: str(o, 'portalId', w, 120), account: str(o, 'account', w, 320) };
}

export function parseState(v: unknown): State {
  const w = 'profile.json';
  const o = obj(v, w, [
    'version', 'portal', 'portalKey', 'portalId', 'portalName', 'account', 'master', 'masterEnvelope',
    'personalSeq', 'admin', 'apps', 'devices', 'lastTreeHead', 'receipts',
  ], ['rolloutSeq', 'movedFrom']);
  if (o.version !== STATE_VERSION && o.version !== 1) throw new MeshError('malformed', `unknown version ${String(o.version)} (this mesh reads versions 1 and ${STATE_VERSION}; a newer mesh wrote it?)`);
  const devices = arr(o, 'devices', w, 1000).map((d, i) => parseDevice(d, `${w}.devices[${i}]`));
  const appsO = obj(o.apps, `${w}.apps`, [], Object.keys((o.apps ?? {}) as Obj));
  const apps: Record<string, AppRecord> = {};
  for (const [k, x] of Object.entries(appsO)) apps[k] = parseApp(x, `${w}.apps.${k}`, devices, o.version);
  let lastTreeHead: TreeHeadRecord | null = null;
  if (o.lastTreeHead !== null) {
    const t = obj(o.lastTreeHead, `${w}.lastTreeHead`, ['size', 'root', 'created']);
    lastTreeHead = { size: int(t, 'size', w), root: str(t, 'root', w, 60), created: str(t, 'created', w, 30) };
  }
  const portalKey = str(o, 'portalKey', w, 60);
  fromB64u(portalKey, `${w}.portalKey`, 32);
  return {
    version: STATE_VERSION,
    portal: str(o, 'portal', w, 300),
    portalKey,
    portalId: str(o, 'portalId', w, 120),
    portalName: str(o, 'portalName', w, 260),
    account: str(o, 'account', w, 320),
    master: str(o, 'master', w, 120),
    masterEnvelope: parseSignedEnvelope(o.masterEnvelope, `${w}.masterEnvelope`),
    personalSeq: int(o, 'personalSeq', w, 0),
    admin: str(o, 'admin', w, 64),
    apps,
    devices,
    lastTreeHead,
    ...(o.rolloutSeq !== undefined ? { rolloutSeq: int(o, 'rolloutSeq', w, 0) } : {}),
    ...(o.movedFrom !== undefined ? { movedFrom: parseMovedFrom(o.movedFrom, `${w}.movedFrom`) } : {}),
    receipts: arr(o, 'receipts', w, MAX_RECEIPTS + 100).map((r, i) => {
      const rw = `${w}.receipts[${i}]`;
      const ro = obj(r, rw, ['index', 'kind', 'payloadHash', 'size', 'root'], ['checked']);
      return {
        index: int(ro, 'index', rw),
        kind: str(ro, 'kind', rw, 20),
        payloadHash: str(ro, 'payloadHash', rw, 60),
        size: ro.size === null ? null : int(ro, 'size', rw),
        root: ro.root === null ? null : str(ro, 'root', rw, 60),
        ...(ro.checked === true ? { checked: true } : {}),
      };
    }),
  };
}

/** Drop the oldest receipts beyond MAX_RECEIPTS (before the state is kept). */
export function trimReceipts(s: State): void {
  if (s.receipts.length > MAX_RECEIPTS) s.receipts = s.receipts.slice(s.receipts.length - MAX_RECEIPTS);
}

/** The master profile payload as we last saw it (our own state: parsed, not re-verified). */
export function masterPayload(s: State): MasterPayload {
  return parseMasterPayload(payloadBytes(s.masterEnvelope));
}

// ---------------------------------------------------------------- the administration keys

export function newAdminKeys(name: string): AdminKeys {
  return { name, sign: c.ed25519KeyPair(), enc: c.x25519KeyPair() };
}

/** An administration device's private keys as JSON (what admin-keys.json and the page's store hold). */
export function adminKeysJson(k: AdminKeys, extra: { account?: string; pending?: boolean } = {}): Record<string, string | boolean> {
  return { name: k.name, sign: b64u(k.sign.privateKey), enc: b64u(k.enc.privateKey), ...(extra.account !== undefined ? { account: extra.account } : {}), ...(extra.pending === true ? { pending: true } : {}) };
}

export interface StoredAdminKeys {
  readonly keys: AdminKeys;
  readonly account: string | undefined;
  readonly pending: boolean;
}

/** adminKeysJson read back (throws MeshError on anything else). */
export function parseAdminKeysJson(v: unknown, w = 'admin-keys.json'): StoredAdminKeys {
  const o = obj(v, w, ['name', 'sign', 'enc'], ['account', 'pending']);
  return {
    keys: {
      name: str(o, 'name', w, 64),
      sign: c.ed25519KeyPair(fromB64u(o.sign, `${w} sign`, 32)),
      enc: c.x25519KeyPair(fromB64u(o.enc, `${w} enc`, 32)),
    },
    account: optStr(o, 'account', w, 320),
    pending: o.pending === true,
  };
}

/** The master keys, checked against the account's master UDF (a wrong seed is `bad-share`). */
export function checkMasterKeys(seed: Uint8Array, master: string, account: string): MasterKeys {
  let keys: MasterKeys;
  try {
    keys = masterKeysFromSeed(seed);
  } catch {
    throw new MeshError('bad-share', `these shares do not rebuild ${account}'s master key (they give a ${seed.length}-byte secret, not a 32-byte master seed); check each share for typing mistakes, or use shares from the right account`);
  }
  if (signKeyId(keys.sign.publicKey) !== master) {
    throw new MeshError('bad-share', `these shares do not rebuild ${account}'s master key: at least one share is mistyped or belongs to another account; check them and try again`);
  }
  return keys;
}

export function adminKid(k: AdminKeys): string {
  return signKeyId(k.sign.publicKey);
}

/** A device's or an administration device's name as a profile allows it: up to 64 letters, digits, spaces, ".", "_", "'" or "-". */
export const LABEL_PATTERN = /^[\p{L}\p{N} ._'-]{1,64}$/u;

export function checkLabel(name: string, what: string): string {
  if (!LABEL_PATTERN.test(name)) throw new MeshError('usage', `${what} "${name}" is not allowed: use up to 64 letters, digits, spaces, ".", "_", "'" or "-"`);
  return name;
}

export function nowIso(): string {
  return new Date().toISOString();
}
