/**
 * Headless onboarding from a static label (shared/reference/mesh-onboarding.md, "Static QR").
 *
 * At manufacture a 128-bit secret is made per device and printed on its label as
 *   mcu://<manufacturer>@<portal>/<secret as key UDF>?fp=<device fingerprint, 100 bits>
 * From the secret both sides derive (HKDF-SHA-512, distinct info strings):
 *   claimId      under which the device publishes its profile at the portal
 *   blobKey      the device profile is published encrypted under it: the portal can't read or swap it
 *   portalKey    given to the portal, so it can check claims and rate-limit guesses without the secret
 *   deviceKey    known only to device and claimant: the device's proof the claimant held the label
 */
import * as c from './crypto.js';
import { b64u, fromB64u, utf8 } from './bytes.js';
import { fail } from './errors.js';
import { keyUdf, parseKeyUdf, normalizeUdf, UDF_MIN_BITS } from './udf.js';
import { parseJson } from './json.js';

export const CLAIM_SECRET_LEN = 16;
export const LABEL_FINGERPRINT_BITS = UDF_MIN_BITS;

export interface ClaimSecrets {
  readonly claimId: string;
  readonly blobKey: Uint8Array;
  readonly portalKey: Uint8Array;
  readonly deviceKey: Uint8Array;
}

const EMPTY = new Uint8Array(0);

export function deriveClaimSecrets(secret: Uint8Array): ClaimSecrets {
  if (secret.length !== CLAIM_SECRET_LEN) fail('malformed', `a claim secret is ${CLAIM_SECRET_LEN} bytes`);
  return {
    claimId: b64u(c.hkdfSha512(secret, EMPTY, 'mmm-claim-id-v1', 16)),
    blobKey: c.hkdfSha512(secret, EMPTY, 'mmm-claim-blob-v1', 32),
    portalKey: c.hkdfSha512(secret, EMPTY, 'mmm-claim-portal-v1', 32),
    deviceKey: c.hkdfSha512(secret, EMPTY, 'mmm-claim-device-v1', 32),
  };
}

export function newClaimSecret(): Uint8Array {
  return c.randomBytes(CLAIM_SECRET_LEN);
}

/** The label code a person can type: the secret as a key UDF (starts with E). */
export function claimCode(secret: Uint8Array): string {
  return keyUdf(secret);
}

export interface ClaimLabel {
  readonly manufacturer: string;
  readonly portal: string;
  readonly secret: Uint8Array;
  /** the device fingerprint printed on the label (a prefix of the device UDF) */
  readonly fingerprint: string;
}

export function labelUri(l: ClaimLabel): string {
  return `mcu://${l.manufacturer}@${l.portal}/${claimCode(l.secret)}?fp=${l.fingerprint}`;
}

export function shortFingerprint(deviceId: string): string {
  return cutUdf(deviceId, LABEL_FINGERPRINT_BITS);
}

/** Cut a dashed UDF presentation to `bits` bits. */
export function cutUdf(udf: string, bits: number): string {
  const n = normalizeUdf(udf).slice(0, Math.ceil(bits / 5));
  return n.replace(/(.{4})(?=.)/g, '$1-');
}

const URI = /^mcu:\/\/([a-z0-9][a-z0-9._-]{0,63})@([A-Za-z0-9.:[\]-]{1,260})\/([A-Za-z2-7-]{20,80})\?fp=([A-Za-z2-7-]{20,120})$/;

/**
 * Parse what a person scanned or typed: the label URI, or "CODE FINGERPRINT" typed by hand.
 * A mistyped code or fingerprint fails with `bad-udf` / `udf-too-short` / `malformed`.
 */
export function parseClaimLabel(input: string): ClaimLabel {
  if (typeof input !== 'string') return fail('malformed', 'a claim label must be text: the label URI, or the code and the fingerprint');
  const s = input.trim();
  if (s.length > 400) fail('too-large', 'a claim label is at most 400 characters');
  const m = URI.exec(s);
  if (m !== null) {
    const [, manufacturer, portal, code, fp] = m as unknown as [string, string, string, string, string];
    return { manufacturer, portal, secret: secretFromCode(code), fingerprint: checkFingerprint(fp) };
  }
  if (s.startsWith('mcu:')) fail('malformed', 'that is not a valid claim URI: expected mcu://maker@portal/CODE?fp=FINGERPRINT');
  const parts = s.split(/\s+/);
  if (parts.length === 2) {
    return { manufacturer: '', portal: '', secret: secretFromCode(parts[0] as string), fingerprint: checkFingerprint(parts[1] as string) };
  }
  return fail('malformed', 'give the label URI (mcu://...) or the code and the fingerprint printed on the label');
}

function secretFromCode(code: string): Uint8Array {
  const k = parseKeyUdf(code);
  if (k.length !== CLAIM_SECRET_LEN) fail('bad-udf', `the claim code has ${k.length} bytes; expected ${CLAIM_SECRET_LEN} (check for a missing or extra character)`);
  return k;
}

function checkFingerprint(fp: string): string {
  const n = normalizeUdf(fp);
  if (n.length * 5 < LABEL_FINGERPRINT_BITS) fail('udf-too-short', `the fingerprint needs at least ${Math.ceil(LABEL_FINGERPRINT_BITS / 5)} characters`);
  return n.replace(/(.{4})(?=.)/g, '$1-');
}

// ---------------------------------------------------------------- the encrypted device blob

const BLOB_AAD = utf8('mmm-claim-blob-v1');

/** Seal the device's published bundle (device profile + endorsement) under the label secret. */
export function sealClaimBlob(secrets: ClaimSecrets, bundle: unknown): string {
  const iv = c.randomBytes(c.GCM_IV_LEN);
  const ct = c.aesGcmEncrypt(secrets.blobKey, iv, utf8(JSON.stringify(bundle)), BLOB_AAD);
  return b64u(iv) + '.' + b64u(ct);
}

export function openClaimBlob(secrets: ClaimSecrets, blob: unknown): unknown {
  if (typeof blob !== 'string' || blob.length > 200_000) return fail('malformed', 'claim blob must be a string');
  const [ivS, ctS, extra] = blob.split('.');
  if (ivS === undefined || ctS === undefined || extra !== undefined) return fail('malformed', 'claim blob has the wrong form');
  const plain = c.aesGcmDecrypt(secrets.blobKey, fromB64u(ivS, 'iv', c.GCM_IV_LEN), fromB64u(ctS, 'ct'), BLOB_AAD);
  return parseJson(plain, 150_000, 'claim blob');
}

// ---------------------------------------------------------------- proofs

function proofInput(p: { master: string; device: string; account: string; nonce: string }): Uint8Array {
  return utf8(`mmm-claim-v1\u0000${p.master}\u0000${p.device}\u0000${p.account}\u0000${p.nonce}`);
}

export function claimProofs(secrets: ClaimSecrets, p: { master: string; device: string; account: string; nonce: string }): { portalProof: string; deviceProof: string } {
  const m = proofInput(p);
  return { portalProof: b64u(c.hmacSha512(secrets.portalKey, m)), deviceProof: b64u(c.hmacSha512(secrets.deviceKey, m)) };
}

export function checkProof(key: Uint8Array, p: { master: string; device: string; account: string; nonce: string }, proof: string): boolean {
  let got: Uint8Array;
  try {
    got = fromB64u(proof, 'proof', 64);
  } catch {
    return false;
  }
  return c.timingSafeEqual(c.hmacSha512(key, proofInput(p)), got);
}
