/**
 * The four profiles (seed §6) and the one verification function.
 *
 *   device       self-signed by the device's signature key; sign/enc/auth public keys;
 *                optionally endorsed by its manufacturer (a separate envelope carrying its key)
 *   master       signed by the master signing key; admins, escrow keys, revoked keys, seq;
 *                its UDF (= the master signing key's UDF) is the user's lasting identity
 *   personal     signed by an administration key the master lists; master attached;
 *                connected devices and applications; seq
 *   application  signed by an administration key; configuration encrypted to the target
 *                devices' encryption keys; application name; seq; creation time. Made parted
 *                (mesh/envelope.ts): the signed payload holds the shared ciphertext and the
 *                manifest of the parts; each target's part travels beside it. Profiles made
 *                before (a `devices` list and a wrapped key per recipient in the signed
 *                payload) are still verified and opened.
 */
import { parseVkey, type NoteKey } from './cosignature.js';
import * as c from './crypto.js';
import { b64u, fromB64u, fromUtf8, utf8 } from './bytes.js';
import { fail, MeshError } from './errors.js';
import {
  type EncryptedEnvelope,
  type Manifest,
  type Sealed,
  type SignedEnvelope,
  type Signer,
  checkParts,
  decrypt,
  decryptPart,
  encryptParts,
  parseEncryptedEnvelope,
  parseManifest,
  parseSealed,
  parseSignedEnvelope,
  payloadBytes,
  signJson,
  verifyCarriedKey,
  verifySignedBy,
  verifyWithResolver,
  UDF_TEXT,
} from './envelope.js';
import { arr, checkJsonValue, int, obj, parseJson, str, time, type Json, type Obj } from './json.js';
import { encKeyId, signKeyId, type DeviceKeys, type MasterKeys } from './keys.js';

export const MAX_PROFILE_BYTES = 256 * 1024;
export const MAX_CONFIG_BYTES = 32 * 1024;
export const MAX_ADMINS = 16;
export const MAX_DEVICES = 1024;
export const MAX_APPS = 64;

const NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;
const LABEL = /^[\p{L}\p{N} ._'-]{1,64}$/u;
const ACCOUNT = /^[a-z0-9][a-z0-9._-]{0,63}@[a-z0-9.-]{1,253}(?::\d{1,5})?$/;
export { NAME as NAME_PATTERN, ACCOUNT as ACCOUNT_PATTERN };

const nowIso = (): string => new Date().toISOString();

// ---------------------------------------------------------------- payload types

export interface DevicePayload {
  readonly type: 'device';
  readonly sign: string;
  readonly enc: string;
  readonly auth: string;
  readonly model: string;
  readonly created: string;
  /**
   * the applications the device runs, each with the fingerprint of the JSON Schema it accepts
   * (mesh/schema.ts schemaFingerprint); absent in profiles made before devices declared them
   */
  readonly apps?: readonly DeviceApp[];
}

export interface DeviceApp {
  readonly name: string;
  /** the schema's content UDF */
  readonly schema: string;
}

export interface EndorsementPayload {
  readonly type: 'endorsement';
  readonly device: string;
  readonly manufacturer: string;
  readonly model: string;
  readonly serial: string;
  readonly created: string;
}

export interface AdminEntry {
  readonly name: string;
  readonly sign: string;
  readonly enc: string;
  readonly added: string;
}

export interface MasterPayload {
  readonly type: 'master';
  readonly seq: number;
  readonly created: string;
  readonly sign: string;
  readonly escrow: readonly string[];
  readonly admins: readonly AdminEntry[];
  readonly revoked: readonly string[];
  /** witnesses whose cosignatures this owner requires on the log's heads (C2SP verifier keys, type 0x04) */
  readonly witnesses?: readonly string[];
  /** how many of `witnesses` must have cosigned a head (absent: 0) */
  readonly quorum?: number;
}

/** at most this many witnesses in a master profile */
export const MAX_WITNESSES = 16;

export interface DeviceEntry {
  readonly id: string;
  readonly name: string;
  readonly model: string;
  readonly enc: string;
  /** the device is registered at another portal than the account's (the Intermesh): its URL, key UDF, key and name */
  readonly portal?: { readonly url: string; readonly id: string; readonly key: string; readonly name: string };
}

export interface PersonalPayload {
  readonly type: 'personal';
  readonly master: string;
  readonly account: string;
  readonly seq: number;
  readonly created: string;
  readonly devices: readonly DeviceEntry[];
  readonly apps: readonly string[];
  /**
   * the JSON Schemas of the applications the devices run, keyed by schema fingerprint (one copy
   * each, however many devices run it): what recovery and a new administration device take each
   * device's schemas from, kept only where they match the fingerprints the device's own signed
   * profile declares. Absent in profiles made before it (and when no device declares a schema).
   */
  readonly schemas?: Readonly<Record<string, Json>>;
}

/** at most this many schemas in a personal profile */
export const MAX_PERSONAL_SCHEMAS = 256;

export interface ApplicationPayload {
  readonly type: 'application';
  readonly master: string;
  readonly app: string;
  readonly seq: number;
  readonly created: string;
  /** the parted form (every profile made now): the shared ciphertext, the parts' manifest */
  readonly sealed?: Sealed;
  readonly parts?: Manifest;
  /** the form before parts: the targets named, and a wrapped key per recipient, in the signed payload */
  readonly devices?: readonly string[];
  readonly config?: EncryptedEnvelope;
  /**
   * The owner asks the device to confirm the change: it must reach the portal with it in effect
   * (and pass its health check) within this many seconds, or it goes back to the configuration
   * before it on its own (headless safety: a change that cuts the device off undoes itself).
   */
  readonly confirm?: number;
}

export const MAX_CONFIRM_S = 86_400;

// ---------------------------------------------------------------- parsers (the boundary)

function looseObject(bytes: Uint8Array, what: string): Obj {
  const v = parseJson(bytes, MAX_PROFILE_BYTES, what);
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail('malformed', `${what} must be a JSON object`);
  return v as Obj;
}

function expectType(o: Obj, t: string, what: string): void {
  if (o.type !== t) fail('wrong-type', `${what} must have type ${t}, got ${typeof o.type === 'string' ? o.type : 'something else'}`, { expected: t });
}

function pubStr(o: Obj, k: string, what: string): string {
  const s = str(o, k, what, 60);
  fromB64u(s, `${what}.${k}`, 32);
  return s;
}

export function parseDevicePayload(bytes: Uint8Array): DevicePayload {
  const w = 'device profile';
  const o = looseObject(bytes, w);
  expectType(o, 'device', w);
  obj(o, w, ['type', 'sign', 'enc', 'auth', 'model', 'created'], ['apps']);
  const apps =
    o.apps === undefined
      ? undefined
      : arr(o, 'apps', w, MAX_APPS).map((a, i): DeviceApp => {
          const aw = `${w}.apps[${i}]`;
          const ao = obj(a, aw, ['name', 'schema']);
          return { name: str(ao, 'name', aw, 64, NAME), schema: str(ao, 'schema', aw, 120, UDF_TEXT) };
        });
  if (apps !== undefined && new Set(apps.map((a) => a.name)).size !== apps.length) fail('malformed', `${w}.apps names an application twice`);
  return {
    type: 'device',
    sign: pubStr(o, 'sign', w),
    enc: pubStr(o, 'enc', w),
    auth: pubStr(o, 'auth', w),
    model: str(o, 'model', w, 64, NAME),
    created: time(o, 'created', w),
    ...(apps !== undefined ? { apps } : {}),
  };
}

export function parseEndorsementPayload(bytes: Uint8Array): EndorsementPayload {
  const w = 'endorsement';
  const o = looseObject(bytes, w);
  expectType(o, 'endorsement', w);
  obj(o, w, ['type', 'device', 'manufacturer', 'model', 'serial', 'created']);
  return {
    type: 'endorsement',
    device: str(o, 'device', w, 120, UDF_TEXT),
    manufacturer: str(o, 'manufacturer', w, 64, NAME),
    model: str(o, 'model', w, 64, NAME),
    serial: str(o, 'serial', w, 64, NAME),
    created: time(o, 'created', w),
  };
}

export function parseMasterPayload(bytes: Uint8Array): MasterPayload {
  const w = 'master profile';
  const o = looseObject(bytes, w);
  expectType(o, 'master', w);
  obj(o, w, ['type', 'seq', 'created', 'sign', 'escrow', 'admins', 'revoked'], ['witnesses', 'quorum']);
  const admins = arr(o, 'admins', w, MAX_ADMINS).map((a, i): AdminEntry => {
    const aw = `${w}.admins[${i}]`;
    const ao = obj(a, aw, ['name', 'sign', 'enc', 'added']);
    return { name: str(ao, 'name', aw, 64, LABEL), sign: pubStr(ao, 'sign', aw), enc: pubStr(ao, 'enc', aw), added: time(ao, 'added', aw) };
  });
  const escrow = arr(o, 'escrow', w, 4).map((e, i) => {
    if (typeof e !== 'string') return fail('malformed', `${w}.escrow[${i}] must be a string`);
    fromB64u(e, `${w}.escrow[${i}]`, 32);
    return e;
  });
  const revoked = arr(o, 'revoked', w, 256).map((k, i) => {
    if (typeof k !== 'string' || !UDF_TEXT.test(k)) return fail('malformed', `${w}.revoked[${i}] must be a key UDF`);
    return k;
  });
  const base: MasterPayload = { type: 'master', seq: int(o, 'seq', w, 1), created: time(o, 'created', w), sign: pubStr(o, 'sign', w), escrow, admins, revoked };
  if (o.witnesses === undefined && o.quorum === undefined) return base;
  const witnesses = o.witnesses === undefined ? [] : arr(o, 'witnesses', w, MAX_WITNESSES).map((v, i) => {
    if (typeof v !== 'string') return fail('malformed', `${w}.witnesses[${i}] must be a verifier key`);
    parseVkey(v);
    return v;
  });
  const quorum = o.quorum === undefined ? 0 : int(o, 'quorum', w, 0, witnesses.length);
  return { ...base, witnesses, quorum };
}

/** The witnesses a master profile requires on log heads, parsed, and its quorum (0: none required). */
export function witnessPolicy(p: MasterPayload): { witnesses: NoteKey[]; quorum: number } {
  return { witnesses: (p.witnesses ?? []).map((v) => parseVkey(v)), quorum: p.quorum ?? 0 };
}

/** What a new master profile carries over from the current one: its witnesses and quorum. */
export function witnessesOf(p: MasterPayload): { witnesses?: readonly string[]; quorum?: number } {
  return p.witnesses === undefined ? {} : { witnesses: p.witnesses, quorum: p.quorum ?? 0 };
}

export function parsePersonalPayload(bytes: Uint8Array): PersonalPayload {
  const w = 'personal profile';
  const o = looseObject(bytes, w);
  expectType(o, 'personal', w);
  obj(o, w, ['type', 'master', 'account', 'seq', 'created', 'devices', 'apps'], ['schemas']);
  let schemas: Record<string, Json> | undefined;
  if (o.schemas !== undefined) {
    const so = obj(o.schemas, `${w}.schemas`, [], Object.keys((o.schemas ?? {}) as Obj));
    const keys = Object.keys(so);
    if (keys.length > MAX_PERSONAL_SCHEMAS) fail('malformed', `${w}.schemas has more than ${MAX_PERSONAL_SCHEMAS} schemas`);
    schemas = Object.create(null) as Record<string, Json>;
    for (const k of keys) {
      if (k.length > 120 || !UDF_TEXT.test(k)) fail('malformed', `${w}.schemas has a key that is not a schema fingerprint`);
      const v = checkJsonValue(so[k], `${w}.schemas.${k}`);
      if (typeof v !== 'object' || v === null || Array.isArray(v)) fail('malformed', `${w}.schemas.${k} must be an object`);
      schemas[k] = v;
    }
  }
  const devices = arr(o, 'devices', w, MAX_DEVICES).map((d, i): DeviceEntry => {
    const dw = `${w}.devices[${i}]`;
    const dO = obj(d, dw, ['id', 'name', 'model', 'enc'], ['portal']);
    let portal: DeviceEntry['portal'];
    if (dO.portal !== undefined) {
      const pw = `${dw}.portal`;
      const po = obj(dO.portal, pw, ['url', 'id', 'key', 'name']);
      portal = { url: str(po, 'url', pw, 2000, /^https?:\/\/[^\s]+$/), id: str(po, 'id', pw, 120, UDF_TEXT), key: pubStr(po, 'key', pw), name: str(po, 'name', pw, 253) };
    }
    return { id: str(dO, 'id', dw, 120, UDF_TEXT), name: str(dO, 'name', dw, 64, LABEL), model: str(dO, 'model', dw, 64, NAME), enc: pubStr(dO, 'enc', dw), ...(portal !== undefined ? { portal } : {}) };
  });
  const apps = arr(o, 'apps', w, MAX_APPS).map((a, i) => {
    if (typeof a !== 'string' || !NAME.test(a)) return fail('malformed', `${w}.apps[${i}] must be an application name`);
    return a;
  });
  return {
    type: 'personal',
    master: str(o, 'master', w, 120, UDF_TEXT),
    account: str(o, 'account', w, 320, ACCOUNT),
    seq: int(o, 'seq', w, 1),
    created: time(o, 'created', w),
    devices,
    apps,
    ...(schemas !== undefined ? { schemas } : {}),
  };
}

export function parseApplicationPayload(bytes: Uint8Array): ApplicationPayload {
  const w = 'application profile';
  const o = looseObject(bytes, w);
  expectType(o, 'application', w);
  const parted = o.parts !== undefined;
  if (parted) obj(o, w, ['type', 'master', 'app', 'seq', 'created', 'sealed', 'parts'], ['confirm']);
  else obj(o, w, ['type', 'master', 'app', 'seq', 'created', 'devices', 'config'], ['confirm']);
  const head = {
    type: 'application' as const,
    master: str(o, 'master', w, 120, UDF_TEXT),
    app: str(o, 'app', w, 64, NAME),
    seq: int(o, 'seq', w, 1),
    created: time(o, 'created', w),
    ...(o.confirm !== undefined ? { confirm: int(o, 'confirm', w, 1, MAX_CONFIRM_S) } : {}),
  };
  if (parted) return { ...head, sealed: parseSealed(o.sealed, `${w}.sealed`), parts: parseManifest(o.parts, `${w}.parts`) };
  const devices = arr(o, 'devices', w, MAX_DEVICES).map((d, i) => {
    if (typeof d !== 'string' || !UDF_TEXT.test(d)) return fail('malformed', `${w}.devices[${i}] must be a device UDF`);
    return d;
  });
  return { ...head, devices, config: parseEncryptedEnvelope(o.config, `${w}.config`) };
}

// ---------------------------------------------------------------- device profile

export interface DeviceProfile {
  readonly id: string;
  readonly payload: DevicePayload;
  readonly envelope: SignedEnvelope;
}

/** `apps`: the applications the device runs and their schema fingerprints (omitted: a profile that declares none, as before). */
export function createDeviceProfile(keys: DeviceKeys, model: string, created = nowIso(), apps?: readonly DeviceApp[]): SignedEnvelope {
  const p: DevicePayload = {
    type: 'device',
    sign: b64u(keys.sign.publicKey),
    enc: b64u(keys.enc.publicKey),
    auth: b64u(keys.auth.publicKey),
    model,
    created,
    ...(apps !== undefined ? { apps: [...apps].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)) } : {}),
  };
  if (!NAME.test(model)) fail('malformed', 'model must be lowercase letters, digits, ".", "_" or "-"');
  for (const a of apps ?? []) if (!NAME.test(a.name)) fail('malformed', 'application names are lowercase letters, digits, ".", "_" or "-"');
  return signJson(p, [keys.sign]);
}

/** Verify a self-signed device profile. Its identity is the UDF of its signature key. */
export function verifyDeviceProfile(envIn: unknown, expectedId?: string): DeviceProfile {
  const env = parseSignedEnvelope(envIn, 'device profile');
  const payload = parseDevicePayload(payloadBytes(env));
  const signPub = fromB64u(payload.sign, 'sign', 32);
  c.checkEd25519PublicKey(fromB64u(payload.auth, 'auth', 32));
  c.checkX25519PublicKey(fromB64u(payload.enc, 'enc', 32));
  verifySignedBy(env, signPub);
  const id = signKeyId(signPub);
  if (expectedId !== undefined && id !== expectedId) fail('wrong-device', `expected device ${expectedId}, got ${id}`, { expected: expectedId, got: id });
  return { id, payload, envelope: env };
}

export function endorseDevice(
  manufacturer: Signer,
  device: { id: string; model: string },
  meta: { manufacturer: string; serial: string },
  created = nowIso(),
): SignedEnvelope {
  const p: EndorsementPayload = { type: 'endorsement', device: device.id, manufacturer: meta.manufacturer, model: device.model, serial: meta.serial, created };
  return signJson(p, [manufacturer], { includeKey: true });
}

export interface Endorsement {
  readonly manufacturerKeyId: string;
  readonly payload: EndorsementPayload;
}

/** Verify a manufacturer's endorsement of a device. Whether the manufacturer key is trusted is the caller's decision. */
export function verifyEndorsement(envIn: unknown, deviceId: string): Endorsement {
  try {
    const env = parseSignedEnvelope(envIn, 'endorsement');
    const { payload, kid } = verifyCarriedKey(env);
    const p = parseEndorsementPayload(payload);
    if (p.device !== deviceId) fail('endorsement-invalid', `the endorsement names device ${p.device}, not ${deviceId}`);
    return { manufacturerKeyId: kid, payload: p };
  } catch (e) {
    if (e instanceof MeshError && e.code !== 'endorsement-invalid') throw new MeshError('endorsement-invalid', `the manufacturer's endorsement is invalid: ${e.message}`, { cause: e.code });
    throw e;
  }
}

// ---------------------------------------------------------------- master profile

export interface AdminKeys {
  readonly name: string;
  readonly sign: c.KeyPair;
  readonly enc: c.KeyPair;
}

export interface MasterProfile {
  readonly id: string;
  readonly payload: MasterPayload;
  readonly envelope: SignedEnvelope;
}

export function adminEntry(a: AdminKeys, added = nowIso()): AdminEntry {
  return { name: a.name, sign: b64u(a.sign.publicKey), enc: b64u(a.enc.publicKey), added };
}

export function createMasterProfile(
  master: MasterKeys,
  admins: readonly AdminEntry[],
  opts: { seq?: number; revoked?: readonly string[]; created?: string; witnesses?: readonly string[]; quorum?: number } = {},
): SignedEnvelope {
  const p: MasterPayload = {
    type: 'master',
    seq: opts.seq ?? 1,
    created: opts.created ?? nowIso(),
    sign: b64u(master.sign.publicKey),
    escrow: [b64u(master.escrow.publicKey)],
    admins: [...admins],
    revoked: [...(opts.revoked ?? [])],
    ...(opts.witnesses !== undefined ? { witnesses: [...opts.witnesses], quorum: opts.quorum ?? 0 } : {}),
  };
  return signJson(p, [master.sign]);
}

/**
 * Verify a master profile against the user's lasting identity, its UDF.
 * `trusted` is the master UDF the verifier already holds (from a label, a claim, its own state).
 */
export function verifyMasterProfile(envIn: unknown, trusted: string): MasterProfile {
  const env = parseSignedEnvelope(envIn, 'master profile');
  const payload = parseMasterPayload(payloadBytes(env));
  const pub = fromB64u(payload.sign, 'sign', 32);
  const id = signKeyId(pub);
  if (id !== trusted) fail('wrong-master', `this master profile is ${id}, not the trusted ${trusted}`, { expected: trusted, got: id });
  verifySignedBy(env, pub);
  for (const a of payload.admins) {
    if (payload.revoked.includes(signKeyId(fromB64u(a.sign, 'sign', 32)))) fail('malformed', 'a revoked key is still listed as an administrator');
  }
  return { id, payload, envelope: env };
}

/** The administration key that signed `env`, if the master lists it and has not revoked it. */
function adminResolver(master: MasterProfile): (kid: string) => Uint8Array | undefined {
  return (kid) => {
    for (const a of master.payload.admins) {
      const pub = fromB64u(a.sign, 'sign', 32);
      if (signKeyId(pub) === kid) return pub;
    }
    return undefined;
  };
}

/** Verify `env` is signed by a current administration key of `master`. Returns the payload bytes and signer kid. */
export function verifyByAdmin(env: SignedEnvelope, master: MasterProfile): { payload: Uint8Array; kid: string } {
  const revoked = env.sigs.find((s) => master.payload.revoked.includes(s.kid));
  try {
    return verifyWithResolver(env, adminResolver(master));
  } catch (e) {
    if (e instanceof MeshError && e.code === 'unknown-signer' && revoked !== undefined) {
      fail('revoked-key', `signed by ${revoked.kid}, an administration key this owner has revoked`, { kid: revoked.kid });
    }
    throw e;
  }
}

// ---------------------------------------------------------------- personal profile

export interface PersonalProfile {
  readonly master: MasterProfile;
  readonly payload: PersonalPayload;
  readonly envelope: SignedEnvelope;
  readonly signer: string;
}

export function createPersonalProfile(admin: AdminKeys, p: Omit<PersonalPayload, 'type' | 'created'> & { created?: string }): SignedEnvelope {
  const payload: PersonalPayload = { type: 'personal', master: p.master, account: p.account, seq: p.seq, created: p.created ?? nowIso(), devices: p.devices, apps: p.apps, ...(p.schemas !== undefined && Object.keys(p.schemas).length > 0 ? { schemas: p.schemas } : {}) };
  if (!ACCOUNT.test(p.account)) fail('malformed', 'account must look like name@host');
  return signJson(payload, [admin.sign]);
}

export function verifyPersonalProfile(envIn: unknown, master: MasterProfile): PersonalProfile {
  const env = parseSignedEnvelope(envIn, 'personal profile');
  const { payload, kid } = verifyByAdmin(env, master);
  const p = parsePersonalPayload(payload);
  if (p.master !== master.id) fail('wrong-master', `this personal profile belongs to ${p.master}, not ${master.id}`);
  return { master, payload: p, envelope: env, signer: kid };
}

// ---------------------------------------------------------------- application profile

export interface TargetDevice {
  readonly id: string;
  readonly enc: Uint8Array;
}

export function createApplicationProfile(
  admin: AdminKeys,
  p: { master: string; app: string; seq: number; created?: string; config: Json; devices: readonly TargetDevice[]; alsoReadableBy?: readonly Uint8Array[]; confirmS?: number },
): SignedEnvelope {
  if (!NAME.test(p.app)) fail('malformed', 'application names are lowercase letters, digits, ".", "_" or "-"');
  const plaintext = utf8(JSON.stringify(checkJsonValue(p.config, 'config')));
  if (plaintext.length > MAX_CONFIG_BYTES) fail('too-large', `configuration is ${plaintext.length} bytes; the limit is ${MAX_CONFIG_BYTES}`);
  if (p.confirmS !== undefined && (!Number.isSafeInteger(p.confirmS) || p.confirmS < 1 || p.confirmS > MAX_CONFIRM_S)) fail('usage', `a confirmation window is 1 s to ${MAX_CONFIRM_S / 3600} h`);
  const recipients = [...p.devices.map((d) => ({ publicKey: d.enc, device: d.id })), ...(p.alsoReadableBy ?? []).map((k) => ({ publicKey: k }))];
  const { sealed, manifest, parts } = encryptParts(plaintext, recipients);
  const payload: ApplicationPayload = {
    type: 'application',
    master: p.master,
    app: p.app,
    seq: p.seq,
    created: p.created ?? nowIso(),
    sealed,
    parts: manifest,
    ...(p.confirmS !== undefined ? { confirm: p.confirmS } : {}),
  };
  return { ...signJson(payload, [admin.sign]), parts };
}

export interface ApplicationProfile {
  readonly master: MasterProfile;
  readonly payload: ApplicationPayload;
  readonly envelope: SignedEnvelope;
  readonly signer: string;
  /** every part the manifest lists came with it (always, for a profile made before parts) */
  readonly complete: boolean;
}

/**
 * Verify the signature chain of an application profile (what a portal can check: no decryption),
 * and the parts it carries against its signed manifest (`bad-part`): a device is served its own
 * part only; a publisher, and an owner reading back, carry all of them (then their root is checked).
 */
export function verifyApplicationProfile(envIn: unknown, master: MasterProfile): ApplicationProfile {
  const env = parseSignedEnvelope(envIn, 'application profile');
  const { payload, kid } = verifyByAdmin(env, master);
  const p = parseApplicationPayload(payload);
  if (p.master !== master.id) fail('wrong-master', `this application profile belongs to ${p.master}, not ${master.id}`);
  if (p.parts === undefined && env.parts !== undefined) fail('malformed', 'parts beside a profile that is not parted');
  const complete = p.parts === undefined || checkParts(env.parts ?? [], p.parts);
  return { master, payload: p, envelope: env, signer: kid, complete };
}

/**
 * The devices an application profile was sent to: named in the signed payload (older profiles),
 * or the parts' devices, which must all be present (the manifest root was checked).
 */
export function applicationTargets(ap: ApplicationProfile): string[] {
  if (ap.payload.parts === undefined) return [...(ap.payload.devices ?? [])];
  if (!ap.complete) fail('bad-part', `this ${ap.payload.app} profile came with ${ap.envelope.parts?.length ?? 0} of its ${ap.payload.parts.n} parts: its targets cannot be told`);
  return (ap.envelope.parts ?? []).flatMap((x) => (x.device === undefined ? [] : [x.device]));
}

function configDoc(plain: Uint8Array): { [k: string]: Json } {
  const doc = checkJsonValue(parseJson(plain, MAX_CONFIG_BYTES, 'configuration'), 'configuration');
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) fail('malformed', 'configuration must be a JSON object');
  return doc;
}

/** Decrypt an application profile's configuration as one of its target devices (with its own part). */
export function openApplicationProfile(ap: ApplicationProfile, device: { id: string; enc: c.KeyPair }): { [k: string]: Json } {
  const { sealed, config } = ap.payload;
  if (sealed !== undefined) {
    const part = ap.envelope.parts?.find((x) => x.device === device.id);
    if (part === undefined) fail('not-a-recipient', `this ${ap.payload.app} profile came without a part for device ${device.id}`);
    return configDoc(decryptPart(sealed, part, device.enc, device.id));
  }
  if (!(ap.payload.devices ?? []).includes(device.id)) fail('not-a-recipient', `this ${ap.payload.app} profile does not name device ${device.id}`);
  return configDoc(decrypt(config as EncryptedEnvelope, device.enc));
}

/** Decrypt an application profile's configuration with an owner's key (a reader's part, no device). */
export function openApplicationAsReader(ap: ApplicationProfile, key: c.KeyPair): { [k: string]: Json } {
  const { sealed, config } = ap.payload;
  if (sealed !== undefined) {
    const kid = encKeyId(key.publicKey);
    const part = ap.envelope.parts?.find((x) => x.device === undefined && x.kid === kid);
    if (part === undefined) fail('not-a-recipient', `this ${ap.payload.app} profile is not encrypted to ${kid}`, { kid });
    return configDoc(decryptPart(sealed, part, key));
  }
  return configDoc(decrypt(config as EncryptedEnvelope, key));
}

// ---------------------------------------------------------------- the one verification function

export type Verified =
  | { readonly kind: 'master'; readonly master: MasterProfile }
  | { readonly kind: 'personal'; readonly master: MasterProfile; readonly profile: PersonalProfile }
  | { readonly kind: 'application'; readonly master: MasterProfile; readonly profile: ApplicationProfile; readonly config?: { [k: string]: Json } };

/** A profile as it travels: the object and the master profile it chains to. */
export interface ProfileBundle {
  readonly master: SignedEnvelope;
  readonly object?: SignedEnvelope;
}

export function parseBundle(v: unknown, what = 'bundle'): ProfileBundle {
  const o = obj(v, what, ['master'], ['object']);
  const master = parseSignedEnvelope(o.master, `${what}.master`);
  return o.object === undefined ? { master } : { master, object: parseSignedEnvelope(o.object, `${what}.object`) };
}

/**
 * The one verification function: given the trusted master-profile UDF and an object (a bundle of
 * the object and its master profile), returns the verified content or throws a MeshError whose
 * `code` says why (`bad-signature`, `unknown-signer`, `revoked-key`, `wrong-master`,
 * `not-a-recipient`, `decrypt-failed`, `malformed`, `too-large`, `wrong-type`).
 * With `device`, an application profile is also decrypted.
 */
export function verify(trustedMaster: string, bundleIn: unknown, opts: { device?: { id: string; enc: c.KeyPair } } = {}): Verified {
  const bundle = parseBundle(bundleIn);
  const master = verifyMasterProfile(bundle.master, trustedMaster);
  if (bundle.object === undefined) return { kind: 'master', master };
  const t = looseObject(payloadBytes(bundle.object), 'object').type;
  switch (t) {
    case 'personal':
      return { kind: 'personal', master, profile: verifyPersonalProfile(bundle.object, master) };
    case 'application': {
      const profile = verifyApplicationProfile(bundle.object, master);
      if (opts.device === undefined) return { kind: 'application', master, profile };
      return { kind: 'application', master, profile, config: openApplicationProfile(profile, opts.device) };
    }
    default:
      return fail('wrong-type', `cannot verify an object of type ${typeof t === 'string' ? t : 'unknown'}`);
  }
}

/** Decode the payload of an envelope as UTF-8 JSON text (for display). */
export function payloadText(env: SignedEnvelope): string {
  return fromUtf8(payloadBytes(env));
}

export { encKeyId, signKeyId };
