/**
 * Signed messages other than profiles: claim, remove, status, session, tree head, portal profile.
 * Each has a create function (signs) and a verify function (the boundary: parse + check).
 */
import * as c from './crypto.js';
import { b64u, fromB64u } from './bytes.js';
import { fail } from './errors.js';
import { type EncryptedEnvelope, type SignedEnvelope, type Signer, decrypt, encrypt, parseEncryptedEnvelope, parseSignedEnvelope, payloadBytes, signJson, verifySignedBy, UDF_TEXT, MAX_ENVELOPE_BYTES } from './envelope.js';
import { arr, checkJsonValue, int, obj, parseJson, str, time, optStr, type Json, type Obj } from './json.js';
import { utf8 } from './bytes.js';
import { parseGrant, type Grant } from './invite.js';
import { signKeyId } from './keys.js';
import { type MasterProfile, verifyByAdmin, ACCOUNT_PATTERN, NAME_PATTERN } from './profiles.js';
import { type ClaimSecrets, checkProof, claimProofs } from './claim.js';
import { nonceUdf } from './udf.js';

const MAX_MESSAGE_BYTES = 64 * 1024;
const nowIso = (): string => new Date().toISOString();
const B64U = /^[A-Za-z0-9_-]+$/;

function payloadObject(env: SignedEnvelope, what: string, type: string): Obj {
  const v = parseJson(payloadBytes(env), MAX_MESSAGE_BYTES, what);
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return fail('malformed', `${what} must be a JSON object`);
  const o = v as Obj;
  if (o.type !== type) fail('wrong-type', `expected a ${type} message`, { expected: type });
  return o;
}

/** The type field of a signed message, without verifying it (for dispatch only). */
export function peekType(env: SignedEnvelope): string {
  // any signed object may be peeked, profiles included: the envelope's own limit applies
  const v = parseJson(payloadBytes(env), MAX_ENVELOPE_BYTES, 'message');
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return fail('malformed', 'message must be a JSON object');
  const t = (v as Obj).type;
  if (typeof t !== 'string') return fail('malformed', 'message has no type');
  return t;
}

// ---------------------------------------------------------------- claim

export interface ClaimPayload {
  readonly type: 'claim';
  readonly device: string;
  readonly master: string;
  readonly account: string;
  readonly nonce: string;
  readonly created: string;
  readonly portalProof: string;
  readonly deviceProof: string;
  /** the device's ownership epoch the claim is for (from the label record or the invitation) */
  readonly epoch?: string;
  /** the invitation accepted (its nonce); absent: a claim from the label */
  readonly invite?: string;
}

export function createClaim(admin: Signer, secrets: ClaimSecrets, p: { device: string; master: string; account: string; epoch?: string; invite?: string }): SignedEnvelope {
  const nonce = nonceUdf();
  const proofs = claimProofs(secrets, { device: p.device, master: p.master, account: p.account, nonce });
  const payload: ClaimPayload = {
    type: 'claim',
    device: p.device,
    master: p.master,
    account: p.account,
    nonce,
    created: nowIso(),
    ...proofs,
    ...(p.epoch !== undefined ? { epoch: p.epoch } : {}),
    ...(p.invite !== undefined ? { invite: p.invite } : {}),
  };
  return signJson(payload, [admin]);
}

export function parseClaimPayload(env: SignedEnvelope): ClaimPayload {
  const w = 'claim';
  const o = obj(payloadObject(env, w, 'claim'), w, ['type', 'device', 'master', 'account', 'nonce', 'created', 'portalProof', 'deviceProof'], ['epoch', 'invite']);
  const epoch = optStr(o, 'epoch', w, 64, B64U);
  const invite = optStr(o, 'invite', w, 120, UDF_TEXT);
  return {
    ...(epoch !== undefined ? { epoch } : {}),
    ...(invite !== undefined ? { invite } : {}),
    type: 'claim',
    device: str(o, 'device', w, 120, UDF_TEXT),
    master: str(o, 'master', w, 120, UDF_TEXT),
    account: str(o, 'account', w, 320, ACCOUNT_PATTERN),
    nonce: str(o, 'nonce', w, 120, UDF_TEXT),
    created: time(o, 'created', w),
    portalProof: str(o, 'portalProof', w, 100, B64U),
    deviceProof: str(o, 'deviceProof', w, 100, B64U),
  };
}

/** Verify a claim signed by an administration key of `master`, with the proof checked by `proofKey` (portal or device key). */
export function verifyClaim(envIn: unknown, master: MasterProfile, check: { key: Uint8Array; which: 'portal' | 'device' }): ClaimPayload {
  const env = parseSignedEnvelope(envIn, 'claim');
  verifyByAdmin(env, master);
  const p = parseClaimPayload(env);
  if (p.master !== master.id) fail('wrong-master', 'the claim names another master profile');
  const proof = check.which === 'portal' ? p.portalProof : p.deviceProof;
  if (!checkProof(check.key, p, proof)) fail('bad-claim-proof', 'the claimant did not prove it holds the label secret');
  return p;
}

// ---------------------------------------------------------------- remove

export interface RemovePayload {
  readonly type: 'remove';
  readonly device: string;
  readonly master: string;
  readonly nonce: string;
  readonly created: string;
  /** the device's ownership epoch the removal is for (from its status) */
  readonly epoch?: string;
}

export function createRemove(admin: Signer, p: { device: string; master: string; epoch?: string }): SignedEnvelope {
  const payload: RemovePayload = { type: 'remove', device: p.device, master: p.master, nonce: nonceUdf(), created: nowIso(), ...(p.epoch !== undefined ? { epoch: p.epoch } : {}) };
  return signJson(payload, [admin]);
}

/** The fields an owner's message to one device carries (a removal, a move): who, which device, once, in which epoch. */
function ownerMessageFields(o: ReturnType<typeof obj>, w: string): { device: string; master: string; nonce: string; created: string; epoch?: string } {
  const epoch = optStr(o, 'epoch', w, 64, B64U);
  return {
    device: str(o, 'device', w, 120, UDF_TEXT),
    master: str(o, 'master', w, 120, UDF_TEXT),
    nonce: str(o, 'nonce', w, 120, UDF_TEXT),
    created: time(o, 'created', w),
    ...(epoch !== undefined ? { epoch } : {}),
  };
}

export function parseRemovePayload(env: SignedEnvelope): RemovePayload {
  const w = 'remove';
  const o = obj(payloadObject(env, w, 'remove'), w, ['type', 'device', 'master', 'nonce', 'created'], ['epoch']);
  return { type: 'remove', ...ownerMessageFields(o, w) };
}

/** Verify that the owner `master` itself asks to leave: only an owner's own administration key can remove that owner. */
export function verifyRemove(envIn: unknown, master: MasterProfile): RemovePayload {
  return verifyOwn(envIn, master, 'remove', parseRemovePayload, 'a removal can only remove the owner who signed it');
}

/** An owner's own message: parsed, signed by an administration key of `master`, and naming that master (`not-owner`). */
function verifyOwn<T extends { readonly master: string }>(envIn: unknown, master: MasterProfile, what: string, parse: (env: SignedEnvelope) => T, notOwner: string): T {
  const env = parseSignedEnvelope(envIn, what);
  const p = parse(env);
  verifyByAdmin(env, master);
  if (p.master !== master.id) fail('not-owner', notOwner);
  return p;
}

// ---------------------------------------------------------------- move (an owner moves a device to another portal)

/**
 * An owner asks the device to move to another portal: its URL and its key (the portal's UDF, which
 * the device pins there). The device moves once every owner (not guests) has asked for the same
 * portal; it keeps its owners, configuration, rollback state and epoch. The new portal links the
 * device to the account that posts the same record there.
 */
export interface MovePayload {
  readonly type: 'move';
  readonly device: string;
  readonly master: string;
  readonly portal: string;
  readonly portalId: string;
  readonly nonce: string;
  readonly created: string;
  readonly epoch?: string;
}

export function createMove(admin: Signer, p: { device: string; master: string; portal: string; portalId: string; epoch?: string }): SignedEnvelope {
  const payload: MovePayload = { type: 'move', device: p.device, master: p.master, portal: p.portal, portalId: p.portalId, nonce: nonceUdf(), created: nowIso(), ...(p.epoch !== undefined ? { epoch: p.epoch } : {}) };
  return signJson(payload, [admin]);
}

export function parseMovePayload(env: SignedEnvelope): MovePayload {
  const w = 'move';
  const o = obj(payloadObject(env, w, 'move'), w, ['type', 'device', 'master', 'portal', 'portalId', 'nonce', 'created'], ['epoch']);
  const portal = str(o, 'portal', w, 300);
  if (!/^https?:\/\/[^\s]+$/.test(portal)) fail('malformed', 'move.portal must be an http(s) URL');
  return { type: 'move', ...ownerMessageFields(o, w), portal, portalId: str(o, 'portalId', w, 120, UDF_TEXT) };
}

/** Verify a move asked by the owner `master` itself (signed by one of its administration keys). */
export function verifyMove(envIn: unknown, master: MasterProfile): MovePayload {
  return verifyOwn(envIn, master, 'move', parseMovePayload, 'a move names the owner who signs it');
}

// ---------------------------------------------------------------- status (device -> owners)

export interface AppStatus {
  readonly app: string;
  readonly seq: number;
  readonly appliedAt: string;
}

export interface OwnerStatus {
  readonly master: string;
  readonly account: string;
  readonly apps: readonly AppStatus[];
  /** absent: an owner; `guest`: limited to its grant */
  readonly role?: 'guest';
  /** since when (the device's clock, display only) */
  readonly since?: string;
  /** the owner whose invitation this one accepted; absent: claimed from the label */
  readonly invitedBy?: string;
  /** a guest's grant, in words */
  readonly grant?: string;
}

export interface StatusError {
  readonly code: string;
  readonly message: string;
  readonly at: string;
  readonly master?: string;
  readonly app?: string;
  readonly seq?: number;
}

export interface TreeHeadRef {
  readonly size: number;
  readonly root: string;
}

export interface StatusPayload {
  readonly type: 'status';
  readonly device: string;
  readonly seq: number;
  readonly created: string;
  /** the newest data the device has heard from the portal; owners judge staleness from it */
  readonly lastContact: string;
  readonly owners: readonly OwnerStatus[];
  readonly errors: readonly StatusError[];
  readonly treeHead?: TreeHeadRef;
  /** the device's ownership epoch: claims, invitations and removals must name it */
  readonly epoch?: string;
  /** the last feed item the device applied */
  readonly n?: number;
  /**
   * What only the device's owners (and each guest, its own part) may read: the effective
   * configuration with its sources, the full text of refusals, the guests' grants. Encrypted
   * envelopes of a PrivateStatus; the plaintext above carries only codes, numbers and times.
   */
  readonly private?: readonly EncryptedEnvelope[];
  /** a change on probation (its owner asked for confirmation): not final until confirmed or reverted */
  readonly pending?: { readonly master: string; readonly app: string; readonly seq: number };
}

/** The owners' view of the device, encrypted to their administration keys. */
export interface PrivateStatus {
  /** per application and key: the effective value, who set it, in which feed item, and when they said it was */
  readonly effective: Readonly<Record<string, Readonly<Record<string, { readonly value: Json; readonly owner: string; readonly master: string; readonly n: number; readonly at: string }>>>>;
  /** a guest's grant, by master fingerprint */
  readonly grants: Readonly<Record<string, Grant>>;
  /** the refusals with their full text */
  readonly errors: readonly StatusError[];
  /** the effective configuration did not fit and was left out */
  readonly truncated?: boolean;
}

/**
 * The owners' private part of a status, in bytes of JSON before encryption; each guest's part is
 * at most a quarter of it, and at most MAX_GUEST_PARTS guests get one: with the plaintext, the
 * signed status stays under the portal's 32 KiB limit for a status.
 */
export const MAX_PRIVATE_STATUS_BYTES = 10 * 1024;
export const MAX_GUEST_PARTS = 4;

/** Seal the private part for its readers (X25519 public keys). */
export function sealPrivateStatus(p: PrivateStatus, readers: readonly Uint8Array[]): EncryptedEnvelope {
  return encrypt(utf8(JSON.stringify(p)), readers.map((publicKey) => ({ publicKey })));
}

/** The private part of a (verified) status this key can open, or undefined: none is for it, or what it holds does not parse. */
export function openPrivateStatus(status: StatusPayload, key: c.KeyPair): PrivateStatus | undefined {
  for (const env of status.private ?? []) {
    let bytes: Uint8Array;
    try {
      bytes = decrypt(env, key);
    } catch {
      continue;
    }
    return parsePrivateStatus(bytes);
  }
  return undefined;
}

export function parsePrivateStatus(bytes: Uint8Array): PrivateStatus {
  const w = 'private status';
  const o = obj(parseJson(bytes, MAX_PRIVATE_STATUS_BYTES * 2, w), w, ['effective', 'grants', 'errors'], ['truncated']);
  const effective: Record<string, Record<string, { value: Json; owner: string; master: string; n: number; at: string }>> = {};
  for (const [app, v] of Object.entries(obj(o.effective, `${w}.effective`, [], Object.keys((o.effective ?? {}) as Obj)))) {
    if (!NAME_PATTERN.test(app)) fail('malformed', `${w}.effective has a key that is not an application name`);
    const keys: Record<string, { value: Json; owner: string; master: string; n: number; at: string }> = {};
    for (const [k, e] of Object.entries(obj(v, `${w}.effective.${app}`, [], Object.keys((v ?? {}) as Obj)))) {
      const ew = `${w}.effective.${app}.${k}`;
      const eo = obj(e, ew, ['value', 'owner', 'master', 'n', 'at']);
      // n: the feed position of the change; a change made on the device sits between two (n + 0.5)
      if (typeof eo.n !== 'number' || !Number.isFinite(eo.n) || eo.n < 0) fail('malformed', `${ew}.n must be a number`);
      keys[k] = { value: checkJsonValue(eo.value, ew), owner: str(eo, 'owner', ew, 320), master: str(eo, 'master', ew, 120, /^(local|[A-Za-z2-7-]{1,120})$/), n: eo.n, at: time(eo, 'at', ew) };
    }
    effective[app] = keys;
  }
  const grants: Record<string, Grant> = {};
  for (const [m, g] of Object.entries(obj(o.grants, `${w}.grants`, [], Object.keys((o.grants ?? {}) as Obj)))) grants[m] = parseGrant(g, `${w}.grants`);
  const errors = arr(o, 'errors', w, 32).map((x, i) => parseStatusError(x, `${w}.errors[${i}]`));
  return { effective, grants, errors, ...(o.truncated === true ? { truncated: true } : {}) };
}

export function createStatus(device: Signer, p: Omit<StatusPayload, 'type' | 'created' | 'device'> & { created?: string }): SignedEnvelope {
  const payload: StatusPayload = {
    type: 'status',
    device: signKeyId(device.publicKey),
    seq: p.seq,
    created: p.created ?? nowIso(),
    lastContact: p.lastContact,
    owners: p.owners,
    errors: p.errors,
    ...(p.treeHead !== undefined ? { treeHead: p.treeHead } : {}),
    ...(p.epoch !== undefined ? { epoch: p.epoch } : {}),
    ...(p.n !== undefined ? { n: p.n } : {}),
    ...(p.private !== undefined && p.private.length > 0 ? { private: p.private } : {}),
    ...(p.pending !== undefined ? { pending: p.pending } : {}),
  };
  return signJson(payload, [device]);
}

export function parseStatusPayload(bytes: Uint8Array): StatusPayload {
  const w = 'status';
  const v = parseJson(bytes, MAX_MESSAGE_BYTES, w);
  const o = obj(v, w, ['type', 'device', 'seq', 'created', 'lastContact', 'owners', 'errors'], ['treeHead', 'epoch', 'n', 'private', 'pending']);
  if (o.type !== 'status') fail('wrong-type', 'expected a status message');
  const owners = arr(o, 'owners', w, 64).map((x, i): OwnerStatus => {
    const ow = `${w}.owners[${i}]`;
    const oo = obj(x, ow, ['master', 'account', 'apps'], ['role', 'since', 'invitedBy', 'grant']);
    const apps = arr(oo, 'apps', ow, 64).map((a, j): AppStatus => {
      const aw = `${ow}.apps[${j}]`;
      const ao = obj(a, aw, ['app', 'seq', 'appliedAt']);
      return { app: str(ao, 'app', aw, 64, NAME_PATTERN), seq: int(ao, 'seq', aw, 0), appliedAt: time(ao, 'appliedAt', aw) };
    });
    if (oo.role !== undefined && oo.role !== 'guest') fail('malformed', `${ow}.role must be guest when present`);
    const since = oo.since === undefined ? undefined : time(oo, 'since', ow);
    const invitedBy = optStr(oo, 'invitedBy', ow, 320);
    const grant = optStr(oo, 'grant', ow, 1024);
    return {
      master: str(oo, 'master', ow, 120, UDF_TEXT),
      account: str(oo, 'account', ow, 320),
      apps,
      ...(oo.role === 'guest' ? { role: 'guest' as const } : {}),
      ...(since !== undefined ? { since } : {}),
      ...(invitedBy !== undefined ? { invitedBy } : {}),
      ...(grant !== undefined ? { grant } : {}),
    };
  });
  const errors = arr(o, 'errors', w, 32).map((x, i) => parseStatusError(x, `${w}.errors[${i}]`));
  const priv = o.private === undefined ? undefined : arr(o, 'private', w, 16).map((x, i) => parseEncryptedEnvelope(x, `${w}.private[${i}]`));
  let treeHead: TreeHeadRef | undefined;
  if (o.treeHead !== undefined) {
    const to = obj(o.treeHead, `${w}.treeHead`, ['size', 'root']);
    treeHead = { size: int(to, 'size', `${w}.treeHead`, 0), root: str(to, 'root', `${w}.treeHead`, 60, B64U) };
  }
  return {
    type: 'status',
    device: str(o, 'device', w, 120, UDF_TEXT),
    seq: int(o, 'seq', w, 0),
    created: time(o, 'created', w),
    lastContact: time(o, 'lastContact', w),
    owners,
    errors,
    ...(treeHead !== undefined ? { treeHead } : {}),
    ...(o.epoch !== undefined ? { epoch: str(o, 'epoch', w, 64, B64U) } : {}),
    ...(o.n !== undefined ? { n: int(o, 'n', w, 0) } : {}),
    ...(priv !== undefined ? { private: priv } : {}),
    ...(o.pending !== undefined ? { pending: parsePending(o.pending, `${w}.pending`) } : {}),
  };
}

function parsePending(v: unknown, w: string): { master: string; app: string; seq: number } {
  const o = obj(v, w, ['master', 'app', 'seq']);
  return { master: str(o, 'master', w, 120, UDF_TEXT), app: str(o, 'app', w, 64, NAME_PATTERN), seq: int(o, 'seq', w, 1) };
}

function parseStatusError(x: unknown, ew: string): StatusError {
  const eo = obj(x, ew, ['code', 'message', 'at'], ['master', 'app', 'seq']);
  const master = optStr(eo, 'master', ew, 120, UDF_TEXT);
  const app = optStr(eo, 'app', ew, 64);
  return {
    code: str(eo, 'code', ew, 64),
    message: str(eo, 'message', ew, 1024),
    at: time(eo, 'at', ew),
    ...(master !== undefined ? { master } : {}),
    ...(app !== undefined ? { app } : {}),
    ...(eo.seq !== undefined ? { seq: int(eo, 'seq', ew, 0) } : {}),
  };
}

/** Verify a status report signed by the device whose signature key is `devicePub`. */
export function verifyStatus(envIn: unknown, devicePub: Uint8Array): StatusPayload {
  const env = parseSignedEnvelope(envIn, 'status');
  const p = parseStatusPayload(verifySignedBy(env, devicePub));
  if (p.device !== signKeyId(devicePub)) fail('wrong-device', 'the status names another device');
  return p;
}

// ---------------------------------------------------------------- session (authentication to the portal)

export const SESSION_SKEW_MS = 5 * 60 * 1000;

export interface SessionPayload {
  readonly type: 'session';
  /** a device UDF, or an account name@host */
  readonly subject: string;
  readonly nonce: string;
  /** the signer's clock, for display; with a challenge the portal ignores it */
  readonly created: string;
  /** a challenge the portal issued (mesh/challenge.ts): the request is fresh by the portal's clock, whatever `created` says */
  readonly challenge?: string;
}

/** A session request; `opts` may be the `created` time alone (requests without a challenge are judged by it). */
export function createSession(key: Signer, subject: string, opts: string | { readonly created?: string; readonly challenge?: string | undefined } = {}): SignedEnvelope {
  const o = typeof opts === 'string' ? { created: opts } : opts;
  const payload: SessionPayload = { type: 'session', subject, nonce: nonceUdf(), created: o.created ?? nowIso(), ...(o.challenge !== undefined ? { challenge: o.challenge } : {}) };
  return signJson(payload, [key]);
}

/** Parse (not verify) a session request; the caller verifies with the key it holds for the subject. */
export function parseSessionPayload(env: SignedEnvelope): SessionPayload {
  const w = 'session';
  const o = obj(payloadObject(env, w, 'session'), w, ['type', 'subject', 'nonce', 'created'], ['challenge']);
  const p: SessionPayload = { type: 'session', subject: str(o, 'subject', w, 320), nonce: str(o, 'nonce', w, 120, UDF_TEXT), created: time(o, 'created', w) };
  return o.challenge === undefined ? p : { ...p, challenge: str(o, 'challenge', w, 100, /^[A-Za-z0-9_-]+$/) };
}

/** Check the freshness of a session request WITHOUT a challenge against `nowMs`: `replay` if outside the skew window. */
export function checkSessionTime(p: SessionPayload, nowMs = Date.now()): void {
  const t = Date.parse(p.created);
  if (Math.abs(nowMs - t) > SESSION_SKEW_MS) fail('replay', 'the session request is too old or from the future; check the clock');
}

// ---------------------------------------------------------------- tree head (portal's signed log head)

export interface TreeHeadPayload {
  readonly type: 'treehead';
  readonly size: number;
  readonly root: string;
  readonly created: string;
}

export function createTreeHead(portal: Signer, size: number, root: Uint8Array, created = nowIso()): SignedEnvelope {
  const p: TreeHeadPayload = { type: 'treehead', size, root: b64u(root), created };
  return signJson(p, [portal]);
}

export interface TreeHead {
  readonly size: number;
  readonly root: Uint8Array;
  readonly created: string;
  readonly envelope: SignedEnvelope;
}

export function verifyTreeHead(envIn: unknown, portalPub: Uint8Array): TreeHead {
  const env = parseSignedEnvelope(envIn, 'tree head');
  const w = 'tree head';
  const o = obj(parseJson(verifySignedBy(env, portalPub), 4096, w), w, ['type', 'size', 'root', 'created']);
  if (o.type !== 'treehead') fail('wrong-type', 'expected a tree head');
  return { size: int(o, 'size', w, 0), root: fromB64u(o.root, `${w}.root`, 32), created: time(o, 'created', w), envelope: env };
}

// ---------------------------------------------------------------- portal profile

export interface PortalPayload {
  readonly type: 'portal';
  readonly name: string;
  readonly sign: string;
  readonly created: string;
}

export function createPortalProfile(key: c.KeyPair, name: string, created = nowIso()): SignedEnvelope {
  return signJson({ type: 'portal', name, sign: b64u(key.publicKey), created } satisfies PortalPayload, [key]);
}

export interface PortalProfile {
  readonly id: string;
  readonly name: string;
  readonly sign: Uint8Array;
  readonly envelope: SignedEnvelope;
}

export function verifyPortalProfile(envIn: unknown, expectedId?: string): PortalProfile {
  const env = parseSignedEnvelope(envIn, 'portal profile');
  const w = 'portal profile';
  const o = obj(parseJson(payloadBytes(env), 4096, w), w, ['type', 'name', 'sign', 'created']);
  if (o.type !== 'portal') fail('wrong-type', 'expected a portal profile');
  const sign = fromB64u(o.sign, `${w}.sign`, 32);
  verifySignedBy(env, sign);
  const id = signKeyId(sign);
  if (expectedId !== undefined && id !== expectedId) fail('wrong-master', `this portal is ${id}, expected ${expectedId}`);
  time(o, 'created', w);
  return { id, name: str(o, 'name', w, 253), sign, envelope: env };
}

// ---------------------------------------------------------------- join (a second administration device, by one-time PIN)

/**
 * A new administration device asks to join an account. It signs with its own new key and proves
 * knowledge of the one-time PIN the existing administration device showed:
 *   mac = HMAC-SHA-512(HKDF-SHA-512(PIN bytes, info "mmm-pin-v1"), account || 0 || sign || 0 || enc || 0 || nonce)
 */
export interface JoinPayload {
  readonly type: 'join';
  readonly account: string;
  readonly name: string;
  readonly sign: string;
  readonly enc: string;
  readonly nonce: string;
  readonly created: string;
  readonly mac: string;
}

function pinKey(pin: string): Uint8Array {
  const bytes = new TextEncoder().encode(pin.toUpperCase().replace(/[-\s]/g, ''));
  return c.hkdfSha512(bytes, new Uint8Array(0), 'mmm-pin-v1', 32);
}

function joinMacInput(p: { account: string; sign: string; enc: string; nonce: string }): Uint8Array {
  return new TextEncoder().encode(`${p.account}\u0000${p.sign}\u0000${p.enc}\u0000${p.nonce}`);
}

export function createJoin(admin: { name: string; sign: c.KeyPair; enc: c.KeyPair }, account: string, pin: string): SignedEnvelope {
  const base = { account, sign: b64u(admin.sign.publicKey), enc: b64u(admin.enc.publicKey), nonce: nonceUdf() };
  const mac = b64u(c.hmacSha512(pinKey(pin), joinMacInput(base)));
  const payload: JoinPayload = { type: 'join', account, name: admin.name, sign: base.sign, enc: base.enc, nonce: base.nonce, created: nowIso(), mac };
  return signJson(payload, [admin.sign]);
}

/** Parse and check the self-signature (anyone can do this; the portal does). */
export function parseJoin(envIn: unknown): JoinPayload {
  const env = parseSignedEnvelope(envIn, 'join');
  const w = 'join';
  const o = obj(payloadObject(env, w, 'join'), w, ['type', 'account', 'name', 'sign', 'enc', 'nonce', 'created', 'mac']);
  const p: JoinPayload = {
    type: 'join',
    account: str(o, 'account', w, 320, ACCOUNT_PATTERN),
    name: str(o, 'name', w, 64, /^[\p{L}\p{N} ._'-]{1,64}$/u),
    sign: str(o, 'sign', w, 60, B64U),
    enc: str(o, 'enc', w, 60, B64U),
    nonce: str(o, 'nonce', w, 120, UDF_TEXT),
    created: time(o, 'created', w),
    mac: str(o, 'mac', w, 100, B64U),
  };
  verifySignedBy(env, fromB64u(p.sign, 'join.sign', 32));
  fromB64u(p.enc, 'join.enc', 32);
  return p;
}

/** The existing administration device checks the PIN. `bad-claim-proof` if it does not match. */
export function verifyJoinPin(p: JoinPayload, pin: string): void {
  const want = c.hmacSha512(pinKey(pin), joinMacInput(p));
  if (!c.timingSafeEqual(want, fromB64u(p.mac, 'join.mac', 64))) fail('bad-claim-proof', 'the join request does not carry the PIN shown on this device');
}
