/**
 * Signed and encrypted envelopes.
 *
 * Signed: the exact payload bytes travel (base64url) with signatures over them; verifiers check
 * the bytes received and parse them afterwards, never re-serialized JSON.
 *   to-be-signed = "mmm-sig-v1" || 0x00 || payload
 *
 * Encrypted: a fresh 256-bit content key per envelope, the content sealed with AES-256-GCM and
 * the content key wrapped for each recipient: one ephemeral X25519 key per envelope,
 *   kek_i = HKDF-SHA-512(ikm = X25519(eph, R_i), salt = epk || R_i, info = "mmm-wrap-v1", 32)
 *   wk_i  = AES-256-GCM(kek_i, iv = 0^96, cek, aad = kid_i)     (kek_i is single-use)
 *   ct    = AES-256-GCM(cek, iv, plaintext, aad = "mmm-enc-v1" || epk)
 *
 * Parted (seed §6.5: one configuration to many devices): the same wrapping, but only the shared
 * part is signed (sealed: epk, iv, ct and a commitment to cek) with a manifest of the parts (their
 * count and RFC 9162 Merkle root); each recipient's part (its wrapped key) travels unsigned beside
 * the signed envelope, so the portal hands each device only its own:
 *   kc    = HKDF-SHA-512(ikm = cek, salt = epk, info = "mmm-kc-v1", 32)   (signed)
 *   wk_i  = AES-256-GCM(kek_i, iv = 0^96, cek, aad = "mmm-part-v1" || 0 || kid_i || 0 || device_i)
 *   ct    = AES-256-GCM(cek, iv, plaintext, aad = "mmm-parts-v1" || epk)
 *   leaf  = device_i || "\n" || kid_i || "\n" || wk_i              (manifest root over the parts in order)
 * A device checks its own part without the others: kek_i needs the ephemeral key's private half,
 * which only the signer held (epk is signed), so nobody else (the portal, another recipient) can
 * make a wrap that opens, and the key it yields must match the signed kc. The manifest lets the
 * portal, and an owner holding every part, check that the list is the one that was signed.
 */
import * as c from './crypto.js';
import { b64u, concat, fromB64u, utf8 } from './bytes.js';
import { fail } from './errors.js';
import { arr, int, obj, optStr, parseJson, str, type Obj } from './json.js';
import { encKeyId, signKeyId } from './keys.js';
import { leafHash, rootOfLeafHashes } from './merkle.js';

export const MAX_ENVELOPE_BYTES = 512 * 1024;
export const MAX_SIGNATURES = 8;
export const MAX_RECIPIENTS = 1100;
/** parts of one parted envelope (one configuration to this many devices and owner keys at most) */
export const MAX_PARTS = 16_384;
/** UDF text, dashed, at any precision */
export const UDF_TEXT = /^[A-Z2-7]{4}(?:-[A-Z2-7]{1,4})*$/;

const SIG_DOMAIN = utf8('mmm-sig-v1\u0000');
const WRAP_INFO = 'mmm-wrap-v1';
const ENC_DOMAIN = utf8('mmm-enc-v1');

export interface Signature {
  readonly kid: string;
  /** the signer's public key, carried only where the verifier cannot know it otherwise */
  readonly key?: string;
  readonly sig: string;
}

export interface SignedEnvelope {
  readonly payload: string;
  readonly sigs: readonly Signature[];
  /**
   * Unsigned: the recipients' parts of a parted payload (an application profile to many
   * devices). All of them as published; a device is served its own only.
   */
  readonly parts?: readonly Part[];
}

/** One recipient's part of a parted envelope: its wrapped content key. */
export interface Part {
  /** the device it is for; absent for an owner's own key (a reader) */
  readonly device?: string;
  readonly kid: string;
  readonly wk: string;
}

/** The signed, shared half of a parted envelope. */
export interface Sealed {
  readonly epk: string;
  readonly iv: string;
  readonly ct: string;
  /** the content key's commitment */
  readonly kc: string;
}

/** The signed list of parts: how many and their Merkle root (base64url). */
export interface Manifest {
  readonly n: number;
  readonly root: string;
}

export interface Recipient {
  readonly kid: string;
  readonly wk: string;
}

export interface EncryptedEnvelope {
  readonly epk: string;
  readonly recipients: readonly Recipient[];
  readonly iv: string;
  readonly ct: string;
}

export interface Signer {
  readonly publicKey: Uint8Array;
  readonly privateKey: Uint8Array;
}

function tbs(payload: Uint8Array): Uint8Array {
  return concat(SIG_DOMAIN, payload);
}

/** Sign exact payload bytes with one or more Ed25519 keys. */
export function sign(payload: Uint8Array, signers: readonly Signer[], opts: { includeKey?: boolean } = {}): SignedEnvelope {
  if (signers.length === 0) fail('malformed', 'at least one signer is needed');
  const m = tbs(payload);
  return {
    payload: b64u(payload),
    sigs: signers.map((s) => {
      const sig = b64u(c.ed25519Sign(s.privateKey, m));
      const kid = signKeyId(s.publicKey);
      return opts.includeKey === true ? { kid, key: b64u(s.publicKey), sig } : { kid, sig };
    }),
  };
}

/** Sign a JSON value (serialized once, here; the bytes are what is signed). */
export function signJson(value: unknown, signers: readonly Signer[], opts: { includeKey?: boolean } = {}): SignedEnvelope {
  return sign(utf8(JSON.stringify(value)), signers, opts);
}

export function parseSignedEnvelope(v: unknown, what = 'envelope'): SignedEnvelope {
  const o = obj(v, what, ['payload', 'sigs'], ['parts']);
  const payload = str(o, 'payload', what, Math.ceil((MAX_ENVELOPE_BYTES * 4) / 3) + 4);
  fromB64u(payload, `${what}.payload`);
  const sigs = arr(o, 'sigs', what, MAX_SIGNATURES).map((s, i): Signature => {
    const w = `${what}.sigs[${i}]`;
    const so = obj(s, w, ['kid', 'sig'], ['key']);
    const kid = str(so, 'kid', w, 120, UDF_TEXT);
    const sig = str(so, 'sig', w, 100);
    fromB64u(sig, `${w}.sig`, c.ED25519_SIG_LEN);
    const key = optStr(so, 'key', w, 60);
    if (key !== undefined) fromB64u(key, `${w}.key`, 32);
    return key === undefined ? { kid, sig } : { kid, key, sig };
  });
  if (sigs.length === 0) fail('malformed', `${what} has no signature`);
  if (o.parts === undefined) return { payload, sigs };
  const parts = arr(o, 'parts', what, MAX_PARTS).map((p, i) => parsePart(p, `${what}.parts[${i}]`));
  return { payload, sigs, parts };
}

export function parsePart(v: unknown, w = 'part'): Part {
  const o = obj(v, w, ['kid', 'wk'], ['device']);
  const kid = str(o, 'kid', w, 120, UDF_TEXT);
  const wk = str(o, 'wk', w, 80);
  fromB64u(wk, `${w}.wk`, c.AES_KEY_LEN + c.GCM_TAG_LEN);
  const device = optStr(o, 'device', w, 120, UDF_TEXT);
  return device === undefined ? { kid, wk } : { device, kid, wk };
}

/** Parse an envelope from wire text/bytes with the size limit. */
export function decodeSignedEnvelope(input: string | Uint8Array, what = 'envelope', maxBytes = MAX_ENVELOPE_BYTES): SignedEnvelope {
  return parseSignedEnvelope(parseJson(input, maxBytes, what), what);
}

export function payloadBytes(env: SignedEnvelope): Uint8Array {
  return fromB64u(env.payload, 'payload');
}

/**
 * Verify that `env` carries a valid signature by the key `pub`. Returns the payload bytes.
 * Throws `unknown-signer` when no signature names that key, `bad-signature` when it does not verify.
 */
export function verifySignedBy(env: SignedEnvelope, pub: Uint8Array): Uint8Array {
  const kid = signKeyId(pub);
  const s = env.sigs.find((x) => x.kid === kid);
  if (s === undefined) return fail('unknown-signer', `not signed by the expected key ${kid}`, { expected: kid });
  const payload = payloadBytes(env);
  if (!c.ed25519Verify(pub, tbs(payload), fromB64u(s.sig, 'sig', 64))) {
    return fail('bad-signature', `the signature by ${kid} does not verify`, { kid });
  }
  return payload;
}

/**
 * Verify the first signature whose kid the resolver knows. Returns the payload and the kid that signed.
 */
export function verifyWithResolver(
  env: SignedEnvelope,
  resolve: (kid: string) => Uint8Array | undefined,
): { payload: Uint8Array; kid: string } {
  for (const s of env.sigs) {
    const pub = resolve(s.kid);
    if (pub === undefined) continue;
    return { payload: verifySignedBy(env, pub), kid: s.kid };
  }
  return fail('unknown-signer', `signed by ${env.sigs.map((s) => s.kid).join(', ')}, none of which is trusted here`, {
    signers: env.sigs.map((s) => s.kid),
  });
}

/** Verify a signature that carries its own key (e.g. a manufacturer's endorsement). */
export function verifyCarriedKey(env: SignedEnvelope): { payload: Uint8Array; kid: string; key: Uint8Array } {
  const s = env.sigs.find((x) => x.key !== undefined);
  if (s === undefined || s.key === undefined) return fail('unknown-signer', 'no signature carries its key');
  const key = fromB64u(s.key, 'key', 32);
  if (signKeyId(key) !== s.kid) fail('bad-signature', 'the carried key does not match its identifier');
  return { payload: verifySignedBy(env, key), kid: s.kid, key };
}

// ---------------------------------------------------------------- encryption

export interface RecipientKey {
  /** X25519 public key */
  readonly publicKey: Uint8Array;
}

/** The content key wrapped for one recipient under the single-use key from the ephemeral key (see the top). */
function wrapKey(eph: c.KeyPair, recipient: Uint8Array, cek: Uint8Array, aad: Uint8Array): string {
  const kek = c.hkdfSha512(c.x25519(eph.privateKey, recipient), concat(eph.publicKey, recipient), WRAP_INFO, 32);
  return b64u(c.aesGcmEncrypt(kek, new Uint8Array(c.GCM_IV_LEN), cek, aad));
}

/** The content key from our wrap: `decrypt-failed` unless it was made for our key, with this aad, from the ephemeral key's private half. */
function unwrapKey(key: c.KeyPair, epk: Uint8Array, wk: string, aad: Uint8Array): Uint8Array {
  const kek = c.hkdfSha512(c.x25519(key.privateKey, epk), concat(epk, key.publicKey), WRAP_INFO, 32);
  return c.aesGcmDecrypt(kek, new Uint8Array(c.GCM_IV_LEN), fromB64u(wk, 'wk'), aad);
}

/** A fresh content key and ephemeral key for `count` recipients (at most `max`). */
function freshKeys(count: number, max: number): { cek: Uint8Array; eph: c.KeyPair } {
  if (count === 0) fail('malformed', 'an encrypted envelope needs at least one recipient');
  if (count > max) fail('too-large', `at most ${max} recipients`);
  return { cek: c.randomBytes(c.AES_KEY_LEN), eph: c.x25519KeyPair() };
}

export function encrypt(plaintext: Uint8Array, recipients: readonly RecipientKey[]): EncryptedEnvelope {
  const { cek, eph } = freshKeys(recipients.length, MAX_RECIPIENTS);
  const seen = new Set<string>();
  const wrapped: Recipient[] = [];
  for (const r of recipients) {
    const kid = encKeyId(r.publicKey);
    if (seen.has(kid)) continue;
    seen.add(kid);
    wrapped.push({ kid, wk: wrapKey(eph, r.publicKey, cek, utf8(kid)) });
  }
  const iv = c.randomBytes(c.GCM_IV_LEN);
  const ct = c.aesGcmEncrypt(cek, iv, plaintext, concat(ENC_DOMAIN, eph.publicKey));
  return { epk: b64u(eph.publicKey), recipients: wrapped, iv: b64u(iv), ct: b64u(ct) };
}

/** The fields both encrypted forms share: the ephemeral key, the iv and the ciphertext. */
function cipherFields(o: Obj, what: string): { epk: string; iv: string; ct: string } {
  const epk = str(o, 'epk', what, 60);
  fromB64u(epk, `${what}.epk`, 32);
  const iv = str(o, 'iv', what, 20);
  fromB64u(iv, `${what}.iv`, c.GCM_IV_LEN);
  const ct = str(o, 'ct', what, Math.ceil((MAX_ENVELOPE_BYTES * 4) / 3) + 4);
  if (fromB64u(ct, `${what}.ct`).length < c.GCM_TAG_LEN) fail('malformed', `${what}.ct is too short`);
  return { epk, iv, ct };
}

export function parseEncryptedEnvelope(v: unknown, what = 'encrypted envelope'): EncryptedEnvelope {
  const o: Obj = obj(v, what, ['epk', 'recipients', 'iv', 'ct']);
  const { epk, iv, ct } = cipherFields(o, what);
  const recipients = arr(o, 'recipients', what, MAX_RECIPIENTS).map((r, i): Recipient => {
    const w = `${what}.recipients[${i}]`;
    const ro = obj(r, w, ['kid', 'wk']);
    const kid = str(ro, 'kid', w, 120, UDF_TEXT);
    const wk = str(ro, 'wk', w, 80);
    fromB64u(wk, `${w}.wk`, c.AES_KEY_LEN + c.GCM_TAG_LEN);
    return { kid, wk };
  });
  if (recipients.length === 0) fail('malformed', `${what} has no recipient`);
  return { epk, recipients, iv, ct };
}

/** Decrypt with our X25519 key pair. `not-a-recipient` if our key is not listed; `decrypt-failed` if anything was changed. */
export function decrypt(env: EncryptedEnvelope, key: c.KeyPair): Uint8Array {
  const kid = encKeyId(key.publicKey);
  const r = env.recipients.find((x) => x.kid === kid);
  if (r === undefined) return fail('not-a-recipient', `this envelope is not encrypted to ${kid}`, { kid });
  const epk = fromB64u(env.epk, 'epk', 32);
  const cek = unwrapKey(key, epk, r.wk, utf8(kid));
  return c.aesGcmDecrypt(cek, fromB64u(env.iv, 'iv', c.GCM_IV_LEN), fromB64u(env.ct, 'ct'), concat(ENC_DOMAIN, epk));
}

// ---------------------------------------------------------------- parted encryption

const PART_AAD = utf8('mmm-part-v1');
const PARTS_DOMAIN = utf8('mmm-parts-v1');
const KC_INFO = 'mmm-kc-v1';
const NUL = new Uint8Array(1);

export interface PartRecipient extends RecipientKey {
  /** the device this key belongs to; absent for an owner's own key */
  readonly device?: string;
}

function partAad(kid: string, device: string | undefined): Uint8Array {
  return concat(PART_AAD, NUL, utf8(kid), NUL, utf8(device ?? ''));
}

function keyCommitment(cek: Uint8Array, epk: Uint8Array): string {
  return b64u(c.hkdfSha512(cek, epk, KC_INFO, 32));
}

/** The manifest leaf of a part (its hash is a leaf of the manifest's Merkle tree). */
export function partLeaf(p: Part): Uint8Array {
  return utf8(`${p.device ?? ''}\n${p.kid}\n${p.wk}`);
}

/** The manifest of a list of parts, in their order. */
export function manifestOf(parts: readonly Part[]): Manifest {
  return { n: parts.length, root: b64u(rootOfLeafHashes(parts.map((p) => leafHash(partLeaf(p))))) };
}

/**
 * Check the parts an envelope carries against its signed manifest: every part well-formed, no
 * device twice; when all `n` are present, their root must be the signed one. `bad-part` if not.
 * Returns whether the list is complete.
 */
export function checkParts(parts: readonly Part[], m: Manifest): boolean {
  if (parts.length > m.n) fail('bad-part', `${parts.length} parts where the owner signed ${m.n}`);
  const devices = new Set<string>();
  for (const p of parts) {
    if (p.device === undefined) continue;
    if (devices.has(p.device)) fail('bad-part', `two parts for device ${p.device}`, { device: p.device });
    devices.add(p.device);
  }
  if (parts.length < m.n) return false;
  if (manifestOf(parts).root !== m.root) fail('bad-part', 'the parts are not the ones the owner signed (manifest root differs)');
  return true;
}

/** Seal `plaintext` once for many recipients: the signed half, its manifest and each recipient's part. */
export function encryptParts(plaintext: Uint8Array, recipients: readonly PartRecipient[]): { sealed: Sealed; manifest: Manifest; parts: Part[] } {
  const { cek, eph } = freshKeys(recipients.length, MAX_PARTS);
  const seen = new Set<string>();
  const parts: Part[] = [];
  for (const r of recipients) {
    const kid = encKeyId(r.publicKey);
    const key = `${r.device ?? ''}/${kid}`;
    if (seen.has(key)) continue;
    if (r.device !== undefined && seen.has(r.device)) fail('malformed', `device ${r.device} is listed twice with different keys`);
    seen.add(key);
    if (r.device !== undefined) seen.add(r.device);
    const wk = wrapKey(eph, r.publicKey, cek, partAad(kid, r.device));
    parts.push(r.device === undefined ? { kid, wk } : { device: r.device, kid, wk });
  }
  const iv = c.randomBytes(c.GCM_IV_LEN);
  const ct = c.aesGcmEncrypt(cek, iv, plaintext, concat(PARTS_DOMAIN, eph.publicKey));
  return { sealed: { epk: b64u(eph.publicKey), iv: b64u(iv), ct: b64u(ct), kc: keyCommitment(cek, eph.publicKey) }, manifest: manifestOf(parts), parts };
}

export function parseSealed(v: unknown, what = 'sealed'): Sealed {
  const o: Obj = obj(v, what, ['epk', 'iv', 'ct', 'kc']);
  const { epk, iv, ct } = cipherFields(o, what);
  const kc = str(o, 'kc', what, 60);
  fromB64u(kc, `${what}.kc`, 32);
  return { epk, iv, ct, kc };
}

export function parseManifest(v: unknown, what = 'manifest'): Manifest {
  const o: Obj = obj(v, what, ['n', 'root']);
  const n = int(o, 'n', what, 1, MAX_PARTS);
  const root = str(o, 'root', what, 60);
  fromB64u(root, `${what}.root`, 32);
  return { n, root };
}

/**
 * Open a parted envelope with our part: `device` is the device we are (absent for an owner's key).
 * `not-a-recipient` if the part is for another key or device; `bad-part` if its key does not
 * match the signed commitment; `decrypt-failed` if anything was changed.
 */
export function decryptPart(sealed: Sealed, part: Part, key: c.KeyPair, device?: string): Uint8Array {
  const kid = encKeyId(key.publicKey);
  if (part.kid !== kid || part.device !== device) return fail('not-a-recipient', `this part is not for ${device ?? kid}`, { kid });
  const epk = fromB64u(sealed.epk, 'epk', 32);
  const cek = unwrapKey(key, epk, part.wk, partAad(kid, device));
  if (keyCommitment(cek, epk) !== sealed.kc) fail('bad-part', 'the key in this part is not the one the owner committed to');
  return c.aesGcmDecrypt(cek, fromB64u(sealed.iv, 'iv', c.GCM_IV_LEN), fromB64u(sealed.ct, 'ct'), concat(PARTS_DOMAIN, epk));
}
