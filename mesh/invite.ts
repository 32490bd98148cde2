/**
 * Invitations: how a current owner lets somebody else claim a device that already has owners,
 * once, before it expires, as a co-owner or as a guest with limited rights (seed §6.4's
 * application administration key, made concrete).
 *
 * Alice (an owner) makes a fresh 128-bit invitation secret and from it, exactly as a label's
 * secret (mesh/claim.ts), a claim id, a blob key, a portal-proof key and a device-proof key. She
 *   - signs an `invite` (device, the device's ownership epoch, a fresh nonce that names the
 *     invitation, how long it lasts, the role, a guest's grant, and the device-proof key
 *     encrypted to the device: the portal never sees it) and posts it to the device's feed;
 *   - hands the portal the claim id, the portal-proof key and a blob sealed under the blob key
 *     (the device profile, its endorsement, the epoch, the invitation's nonce and terms);
 *   - gives Bob the invitation URI: https://<portal>/invite#code=<secret>&fp=<device fingerprint>.
 * Bob opens the blob with the secret, checks the fingerprint, and claims exactly as from a label,
 * naming the invitation. The device accepts the claim only against an invitation it received
 * from one of its owners (not a guest), unused, within its time, and with the proof made from
 * the secret; then the invitation is used up for good.
 *
 * Times. The device decides expiry on its own clock only: it starts an invitation's time when the
 * invitation reaches it, and turns a guest's end time into a duration from that moment
 * (until - created, both on the inviter's clock), so neither the inviter's clock nor whether the
 * device's clock was ever set decides anything. The portal refuses use after `expires` on its own
 * clock as well (it is untrusted: that only ever refuses more).
 */
import * as c from './crypto.js';
import { fail } from './errors.js';
import { decrypt, encrypt, parseEncryptedEnvelope, parseSignedEnvelope, payloadBytes, signJson, type EncryptedEnvelope, type SignedEnvelope, type Signer, UDF_TEXT } from './envelope.js';
import { arr, int, obj, parseJson, str, time, type Json, type Obj } from './json.js';
import { NAME_PATTERN, verifyByAdmin, type MasterProfile } from './profiles.js';
import { deriveSecrets, type ClaimSecrets } from './claim.js';
import { keyUdf, nonceUdf, normalizeUdf, parseKeyUdf } from './udf.js';

export const INVITE_SECRET_LEN = 16;
/** device fingerprints in invitation URIs: at least 125 bits (seed §4.2.1); printed with 140 (28 characters, whole groups of 4) */
export const INVITE_FINGERPRINT_BITS = 125;
const INVITE_FINGERPRINT_PRINTED_BITS = 140;
/** the longest an invitation may stay open */
export const MAX_INVITE_TTL_S = 7 * 24 * 3600;
export const DEFAULT_INVITE_TTL_S = 15 * 60;
/** the most applications and keys one grant names */
export const MAX_GRANT_SCOPES = 16;
export const MAX_GRANT_KEYS = 64;

const B64U = /^[A-Za-z0-9_-]+$/;

export function newInviteSecret(): Uint8Array {
  return c.randomBytes(INVITE_SECRET_LEN);
}

/** The four keys an invitation secret gives, domain-separated from a label's. */
export function deriveInviteSecrets(secret: Uint8Array): ClaimSecrets {
  if (secret.length !== INVITE_SECRET_LEN) fail('malformed', `an invitation secret is ${INVITE_SECRET_LEN} bytes`);
  return deriveSecrets(secret, 'invite');
}

// ---------------------------------------------------------------- grants (what a guest may set)

/** One application a guest may set: all of it, or only `keys`; numeric keys optionally within `ranges`. */
export interface GrantScope {
  readonly app: string;
  readonly keys?: readonly string[];
  readonly ranges?: Readonly<Record<string, readonly [number, number]>>;
}

export interface Grant {
  readonly scope: readonly GrantScope[];
  /** the end of the guest's rights (the inviter's clock; the device turns it into a duration) */
  readonly until?: string;
}

const KEY = /^[A-Za-z0-9_.-]{1,64}$/;

/**
 * Parse a `--guest` argument: `APP`, `APP:KEY,KEY`, with ranges as `KEY=MIN..MAX`
 * (e.g. `thermostat:setpoint=16..24`).
 */
export function parseGuestSpec(spec: string): GrantScope {
  if (typeof spec !== 'string' || spec.length > 2000) return fail('usage', 'a guest grant is APP or APP:KEY[,KEY...], at most 2,000 characters');
  const m = /^([a-z0-9][a-z0-9._-]{0,63})(?::(.+))?$/.exec(spec.trim());
  if (m === null) return fail('usage', `"${spec}" is not APP or APP:KEY[,KEY...] (a key may be limited as KEY=MIN..MAX)`);
  const app = m[1] as string;
  if (m[2] === undefined) return { app };
  const keys: string[] = [];
  const ranges: Record<string, [number, number]> = {};
  for (const part of m[2].split(',')) {
    const km = /^([A-Za-z0-9_.-]{1,64})(?:=(-?\d+(?:\.\d+)?)\.\.(-?\d+(?:\.\d+)?))?$/.exec(part.trim());
    if (km === null) return fail('usage', `"${part}" in --guest ${spec} is not KEY or KEY=MIN..MAX`);
    const key = km[1] as string;
    keys.push(key);
    if (km[2] !== undefined) {
      const lo = Number(km[2]);
      const hi = Number(km[3]);
      if (!(lo <= hi)) return fail('usage', `the range of ${key} in --guest ${spec} is empty (${lo} > ${hi})`);
      ranges[key] = [lo, hi];
    }
  }
  return Object.keys(ranges).length > 0 ? { app, keys, ranges } : { app, keys };
}

/** A grant in words, for the people who make and accept it. */
export function describeGrant(g: Grant): string {
  const parts = g.scope.map((s) => {
    if (s.keys === undefined) return `${s.app} (all of it)`;
    return `${s.app}: ${s.keys.map((k) => (s.ranges?.[k] !== undefined ? `${k} in ${s.ranges[k][0]}..${s.ranges[k][1]}` : k)).join(', ')}`;
  });
  return `${parts.join('; ')}${g.until !== undefined ? `, until ${g.until}` : ''}`;
}

/** Refuse (`out-of-scope`) a guest's document for `app` that sets anything the grant does not allow. */
export function checkGrant(g: Grant, app: string, doc: Readonly<Record<string, Json>>): void {
  const s = g.scope.find((x) => x.app === app);
  if (s === undefined) fail('out-of-scope', `a guest may set ${g.scope.map((x) => x.app).join(', ')}, not ${app}`);
  if (s.keys === undefined) return;
  for (const [k, v] of Object.entries(doc)) {
    if (!s.keys.includes(k)) fail('out-of-scope', `a guest may set ${s.keys.join(', ')} of ${app}, not ${k}`);
    const r = s.ranges?.[k];
    if (r !== undefined && (typeof v !== 'number' || v < r[0] || v > r[1])) {
      fail('out-of-scope', `a guest may set ${app} ${k} within ${r[0]}..${r[1]}, not ${JSON.stringify(v)}`);
    }
  }
}

export function parseGrant(v: unknown, w: string): Grant {
  const o = obj(v, w, ['scope'], ['until']);
  const scope = arr(o, 'scope', w, MAX_GRANT_SCOPES).map((x, i): GrantScope => {
    const sw = `${w}.scope[${i}]`;
    const so = obj(x, sw, ['app'], ['keys', 'ranges']);
    const app = str(so, 'app', sw, 64, NAME_PATTERN);
    if (so.keys === undefined) {
      if (so.ranges !== undefined) fail('malformed', `${sw} has ranges but no keys`);
      return { app };
    }
    const keys = arr(so, 'keys', sw, MAX_GRANT_KEYS).map((k, j) => {
      if (typeof k !== 'string' || !KEY.test(k)) return fail('malformed', `${sw}.keys[${j}] is not a key name`);
      return k;
    });
    if (so.ranges === undefined) return { app, keys };
    const ro = obj(so.ranges, `${sw}.ranges`, [], keys);
    const ranges: Record<string, [number, number]> = {};
    for (const [k, r] of Object.entries(ro)) {
      if (!Array.isArray(r) || r.length !== 2 || typeof r[0] !== 'number' || typeof r[1] !== 'number' || !Number.isFinite(r[0]) || !Number.isFinite(r[1]) || r[0] > r[1]) {
        fail('malformed', `${sw}.ranges.${k} must be [min, max]`);
      }
      ranges[k] = [r[0] as number, r[1] as number];
    }
    return { app, keys, ranges };
  });
  if (scope.length === 0) fail('malformed', `${w}.scope is empty: a guest must be allowed something`);
  return o.until === undefined ? { scope } : { scope, until: time(o, 'until', w) };
}

// ---------------------------------------------------------------- the signed invitation

export interface InvitePayload {
  readonly type: 'invite';
  readonly device: string;
  /** the device's ownership epoch the invitation is for */
  readonly epoch: string;
  /** the inviting owner */
  readonly master: string;
  readonly account: string;
  /** names the invitation; used once */
  readonly nonce: string;
  readonly created: string;
  /** how long after the device receives it the invitation may be accepted (seconds) */
  readonly ttl: number;
  readonly role: 'owner' | 'guest';
  readonly grant?: Grant;
  /** the device-proof key, encrypted to the device */
  readonly key: EncryptedEnvelope;
}

export function createInvite(
  admin: Signer,
  secrets: ClaimSecrets,
  p: { device: { id: string; enc: Uint8Array }; epoch: string; master: string; account: string; ttlS: number; grant?: Grant; created?: string; nonce?: string },
): SignedEnvelope {
  if (!Number.isSafeInteger(p.ttlS) || p.ttlS < 1 || p.ttlS > MAX_INVITE_TTL_S) fail('usage', `an invitation lasts 1 s to ${MAX_INVITE_TTL_S / 86400} days`);
  const payload: InvitePayload = {
    type: 'invite',
    device: p.device.id,
    epoch: p.epoch,
    master: p.master,
    account: p.account,
    nonce: p.nonce ?? nonceUdf(),
    created: p.created ?? new Date().toISOString(),
    ttl: p.ttlS,
    role: p.grant === undefined ? 'owner' : 'guest',
    ...(p.grant !== undefined ? { grant: p.grant } : {}),
    key: encrypt(secrets.deviceKey, [{ publicKey: p.device.enc }]),
  };
  return signJson(payload, [admin]);
}

export function parseInvitePayload(env: SignedEnvelope): InvitePayload {
  const w = 'invite';
  const o: Obj = obj(parseJson(payloadBytes(env), 64 * 1024, w), w, ['type', 'device', 'epoch', 'master', 'account', 'nonce', 'created', 'ttl', 'role', 'key'], ['grant']);
  if (o.type !== 'invite') fail('wrong-type', 'expected an invite message', { expected: 'invite' });
  const role = str(o, 'role', w, 10);
  if (role !== 'owner' && role !== 'guest') fail('malformed', `${w}.role must be owner or guest`);
  if ((role === 'guest') !== (o.grant !== undefined)) fail('malformed', `${w}: a guest invitation has a grant, and only a guest invitation`);
  return {
    type: 'invite',
    device: str(o, 'device', w, 120, UDF_TEXT),
    epoch: str(o, 'epoch', w, 64, B64U),
    master: str(o, 'master', w, 120, UDF_TEXT),
    account: str(o, 'account', w, 320),
    nonce: str(o, 'nonce', w, 120, UDF_TEXT),
    created: time(o, 'created', w),
    ttl: int(o, 'ttl', w, 1, MAX_INVITE_TTL_S),
    role,
    ...(o.grant !== undefined ? { grant: parseGrant(o.grant, `${w}.grant`) } : {}),
    key: parseEncryptedEnvelope(o.key, `${w}.key`),
  };
}

/** Verify an invitation signed by an administration key of `master` (the inviting owner). */
export function verifyInvite(envIn: unknown, master: MasterProfile): InvitePayload {
  const env = parseSignedEnvelope(envIn, 'invite');
  verifyByAdmin(env, master);
  const p = parseInvitePayload(env);
  if (p.master !== master.id) fail('wrong-master', 'the invitation names another owner than its signer');
  return p;
}

/** The device opens the device-proof key. */
export function openInviteKey(p: InvitePayload, enc: c.KeyPair): Uint8Array {
  const k = decrypt(p.key, enc);
  if (k.length !== 32) fail('malformed', 'the invitation key is not 32 bytes');
  return k;
}

/** A guest's end time as a duration (ms) from when the device received the invitation; undefined: no end. */
export function grantDurationMs(p: InvitePayload): number | undefined {
  if (p.grant?.until === undefined) return undefined;
  return Math.max(0, Date.parse(p.grant.until) - Date.parse(p.created));
}

// ---------------------------------------------------------------- what Bob receives

/** The invitation URI: the portal's address, and in the fragment (never sent to any server) the secret and the device's fingerprint. */
export function invitationUri(p: { portal: string; secret: Uint8Array; fingerprint: string }): string {
  return `https://${p.portal}/invite#code=${keyUdf(p.secret)}&fp=${normalizeUdf(p.fingerprint).slice(0, INVITE_FINGERPRINT_PRINTED_BITS / 5)}`;
}

export interface Invitation {
  readonly portal: string;
  readonly secret: Uint8Array;
  readonly fingerprint: string;
}

const INVITE_URI = /^https:\/\/([A-Za-z0-9.:[\]-]{1,260})\/invite#code=([A-Za-z2-7-]{20,80})&fp=([A-Za-z2-7-]{20,120})$/;

/** Is this text an invitation URI (rather than a label)? */
export function isInvitation(input: string): boolean {
  return typeof input === 'string' && /^https:\/\/[^/]+\/invite#/.test(input.trim());
}

export function parseInvitation(input: string): Invitation {
  if (typeof input !== 'string') return fail('malformed', 'an invitation is a URI: https://PORTAL/invite#code=...&fp=...');
  const s = input.trim();
  if (s.length > 400) fail('too-large', 'an invitation is at most 400 characters');
  const m = INVITE_URI.exec(s);
  if (m === null) return fail('malformed', 'that is not a valid invitation: expected https://PORTAL/invite#code=CODE&fp=FINGERPRINT');
  const [, portal, code, fp] = m as unknown as [string, string, string, string];
  const secret = parseKeyUdf(code);
  if (secret.length !== INVITE_SECRET_LEN) fail('bad-udf', `the invitation code has ${secret.length} bytes; expected ${INVITE_SECRET_LEN}`);
  const n = normalizeUdf(fp);
  if (n.length * 5 < INVITE_FINGERPRINT_BITS) fail('udf-too-short', `the fingerprint needs at least ${Math.ceil(INVITE_FINGERPRINT_BITS / 5)} characters`);
  return { portal, secret, fingerprint: n.replace(/(.{4})(?=.)/g, '$1-') };
}

/** What the inviter seals for the invitee under the invitation's blob key (the portal cannot read or change it). */
export interface InviteBlob {
  readonly profile: SignedEnvelope;
  readonly endorsement: SignedEnvelope | null;
  readonly epoch: string;
  readonly invite: string;
  readonly by: string;
  readonly role: 'owner' | 'guest';
  readonly grant?: Grant;
  readonly expires: string;
  /** the schemas of the applications the device declares, as the inviter holds them (checked against the signed profile by the invitee) */
  readonly schemas?: Readonly<Record<string, unknown>>;
}

export function parseInviteBlob(v: unknown): InviteBlob {
  const w = 'invitation record';
  const o = obj(v, w, ['profile', 'endorsement', 'epoch', 'invite', 'by', 'role', 'expires'], ['grant', 'schemas']);
  const role = str(o, 'role', w, 10);
  if (role !== 'owner' && role !== 'guest') fail('malformed', `${w}.role must be owner or guest`);
  return {
    profile: parseSignedEnvelope(o.profile, `${w}.profile`),
    endorsement: o.endorsement === null ? null : parseSignedEnvelope(o.endorsement, `${w}.endorsement`),
    epoch: str(o, 'epoch', w, 64, B64U),
    invite: str(o, 'invite', w, 120, UDF_TEXT),
    by: str(o, 'by', w, 320),
    role,
    ...(o.grant !== undefined ? { grant: parseGrant(o.grant, `${w}.grant`) } : {}),
    expires: time(o, 'expires', w),
    ...(o.schemas !== undefined ? { schemas: obj(o.schemas, `${w}.schemas`, [], Object.keys((o.schemas ?? {}) as object)) } : {}),
  };
}
