/**
 * Headless onboarding from a static label (shared/reference/mesh-onboarding.md, "Static QR").
 *
 * At manufacture a 128-bit secret is made per device and printed on its label, in the QR code as
 *   https://<portal host[:port]>/claim#code=<secret as key UDF>&fp=<device fingerprint>&m=<manufacturer>
 * The secret sits in the URI's fragment: a phone's camera opens the portal's page, and the browser
 * never sends a fragment in a request, so the portal never receives the secret. The fingerprint
 * carries 140 bits (28 characters: UDF cuts come in 20-bit steps, and 140 is the first at or above
 * the 125 bits the architecture asks for, seed §4.2.1). The older form
 *   mcu://<manufacturer>@<portal>/<secret as key UDF>?fp=<device fingerprint>
 * and the code and fingerprint typed by hand are accepted as well.
 * From the secret both sides derive (HKDF-SHA-512, distinct info strings):
 *   claimId      under which the device publishes its profile at the portal
 *   blobKey      the device profile is published encrypted under it: the portal can't read or swap it
 *   portalKey    given to the portal, so it can check claims and rate-limit guesses without the secret
 *   deviceKey    known only to device and claimant: the device's proof the claimant held the label
 */
import * as c from './crypto.js';
import { b64u, fromB64u, utf8 } from './bytes.js';
import { fail } from './errors.js';
import { keyUdf, parseKeyUdf, parseUdf, normalizeUdf } from './udf.js';
import { parseJson } from './json.js';

export const CLAIM_SECRET_LEN = 16;
/** Bits of the device fingerprint printed on a label and required in a claim URI (at least 125, seed §4.2.1). */
export const LABEL_FINGERPRINT_BITS = 140;
/** The path of the claim URI at the portal (the portal may serve a static page there). */
export const CLAIM_PATH = '/claim';

export interface ClaimSecrets {
  readonly claimId: string;
  readonly blobKey: Uint8Array;
  readonly portalKey: Uint8Array;
  readonly deviceKey: Uint8Array;
}

const EMPTY = new Uint8Array(0);

export function deriveClaimSecrets(secret: Uint8Array): ClaimSecrets {
  if (secret.length !== CLAIM_SECRET_LEN) fail('malformed', `a claim secret is ${CLAIM_SECRET_LEN} bytes`);
  return deriveSecrets(secret, 'claim');
}

/** The four keys of a 128-bit secret, under the info strings `mmm-<domain>-{id,blob,portal,device}-v1` (a label's: `claim`; an invitation's: `invite`). */
export function deriveSecrets(secret: Uint8Array, domain: 'claim' | 'invite'): ClaimSecrets {
  return {
    claimId: b64u(c.hkdfSha512(secret, EMPTY, `mmm-${domain}-id-v1`, 16)),
    blobKey: c.hkdfSha512(secret, EMPTY, `mmm-${domain}-blob-v1`, 32),
    portalKey: c.hkdfSha512(secret, EMPTY, `mmm-${domain}-portal-v1`, 32),
    deviceKey: c.hkdfSha512(secret, EMPTY, `mmm-${domain}-device-v1`, 32),
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

/** The URI in the label's QR code: the portal's claim page, with code, fingerprint and maker in the fragment. */
export function labelUri(l: ClaimLabel): string {
  const maker = l.manufacturer === '' ? '' : `&m=${l.manufacturer}`;
  return `https://${l.portal}${CLAIM_PATH}#code=${claimCode(l.secret)}&fp=${l.fingerprint}${maker}`;
}

export function shortFingerprint(deviceId: string): string {
  return cutUdf(deviceId, LABEL_FINGERPRINT_BITS);
}

/** Cut a dashed UDF presentation to `bits` bits. */
export function cutUdf(udf: string, bits: number): string {
  const n = normalizeUdf(udf).slice(0, Math.ceil(bits / 5));
  return n.replace(/(.{4})(?=.)/g, '$1-');
}

const MAKER = /^[a-z0-9][a-z0-9._-]{0,63}$/;
const MCU_URI = /^mcu:\/\/([a-z0-9][a-z0-9._-]{0,63})@([A-Za-z0-9.:[\]-]{1,260})\/([A-Za-z2-7-]{20,80})\?fp=([A-Za-z2-7-]{20,120})$/;
const HTTPS_FORM = 'https://portal/claim#code=CODE&fp=FINGERPRINT&m=MAKER';

/**
 * Parse what a person scanned or typed: the label's https:// URI, the older mcu:// URI, or
 * "CODE FINGERPRINT" typed by hand. A mistyped code or fingerprint fails with `bad-udf` /
 * `udf-too-short` / `malformed`.
 */
export function parseClaimLabel(input: string): ClaimLabel {
  if (typeof input !== 'string') return fail('malformed', 'a claim label must be text: the label URI, or the code and the fingerprint');
  const s = input.trim();
  if (s.length > 400) fail('too-large', 'a claim label is at most 400 characters');
  if (/^https?:/i.test(s)) return parseHttpsLabel(s);
  const m = MCU_URI.exec(s);
  if (m !== null) {
    const [, manufacturer, portal, code, fp] = m as unknown as [string, string, string, string, string];
    return { manufacturer, portal, secret: secretFromCode(code), fingerprint: checkFingerprint(fp) };
  }
  if (s.startsWith('mcu:')) fail('malformed', 'that is not a valid claim URI: expected mcu://maker@portal/CODE?fp=FINGERPRINT');
  const parts = s.split(/\s+/);
  if (parts.length === 2) {
    return { manufacturer: '', portal: '', secret: secretFromCode(parts[0] as string), fingerprint: checkFingerprint(parts[1] as string) };
  }
  return fail('malformed', `give the label URI (${HTTPS_FORM}) or the code and the fingerprint printed on the label`);
}

/** https://portal/claim#code=..&fp=..[&m=..] (http:// too, for a portal on a test network). */
function parseHttpsLabel(s: string): ClaimLabel {
  const bad = (why: string): never => fail('malformed', `that is not a valid claim URI (${why}): expected ${HTTPS_FORM}`);
  let u: URL;
  try {
    u = new URL(s);
  } catch {
    return bad('it does not parse as a URL');
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:') bad('not https');
  if (u.username !== '' || u.password !== '') bad('it carries a user name');
  if (u.pathname !== CLAIM_PATH || u.search !== '') bad(`the path must be ${CLAIM_PATH}, with no query`);
  if (!/^[A-Za-z0-9.:[\]-]{1,260}$/.test(u.host)) bad('the host');
  const f = new URLSearchParams(u.hash.replace(/^#/, ''));
  const names = [...f.keys()];
  for (const n of names) if (!['code', 'fp', 'm'].includes(n)) bad(`unknown part "${n.slice(0, 20)}"`);
  if (new Set(names).size !== names.length) bad('a part is repeated');
  const code = f.get('code') ?? bad('no code');
  const fp = f.get('fp') ?? bad('no fingerprint');
  const manufacturer = f.get('m') ?? '';
  if (manufacturer !== '' && !MAKER.test(manufacturer)) bad('the maker');
  return { manufacturer, portal: u.host, secret: secretFromCode(code), fingerprint: checkFingerprint(fp) };
}

function secretFromCode(code: string): Uint8Array {
  const k = parseKeyUdf(code);
  if (k.length !== CLAIM_SECRET_LEN) fail('bad-udf', `the claim code has ${k.length} bytes; expected ${CLAIM_SECRET_LEN} (check for a missing or extra character)`);
  return k;
}

/** A device fingerprint of at least LABEL_FINGERPRINT_BITS (`udf-too-short` below), as a digest UDF. */
function checkFingerprint(fp: string): string {
  const p = parseUdf(fp, LABEL_FINGERPRINT_BITS);
  if (p.type !== 'sha2' && p.type !== 'sha3') fail('bad-udf', `the fingerprint is a ${p.type} UDF, not a device fingerprint (check that code and fingerprint are not swapped)`);
  return p.text.replace(/(.{4})(?=.)/g, '$1-');
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
