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
 */
import * as c from './crypto.js';
import { b64u, concat, fromB64u, utf8 } from './bytes.js';
import { fail } from './errors.js';
import { arr, obj, optStr, parseJson, str, type Obj } from './json.js';
import { encKeyId, signKeyId } from './keys.js';

export const MAX_ENVELOPE_BYTES = 512 * 1024;
export const MAX_SIGNATURES = 8;
export const MAX_RECIPIENTS = 1100;
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
  const o = obj(v, what, ['payload', 'sigs']);
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
  return { payload, sigs };
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

export function encrypt(plaintext: Uint8Array, recipients: readonly RecipientKey[]): EncryptedEnvelope {
  if (recipients.length === 0) fail('malformed', 'an encrypted envelope needs at least one recipient');
  if (recipients.length > MAX_RECIPIENTS) fail('too-large', `at most ${MAX_RECIPIENTS} recipients`);
  const cek = c.randomBytes(c.AES_KEY_LEN);
  const eph = c.x25519KeyPair();
  const zeroIv = new Uint8Array(c.GCM_IV_LEN);
  const seen = new Set<string>();
  const wrapped: Recipient[] = [];
  for (const r of recipients) {
    const kid = encKeyId(r.publicKey);
    if (seen.has(kid)) continue;
    seen.add(kid);
    const shared = c.x25519(eph.privateKey, r.publicKey);
    const kek = c.hkdfSha512(shared, concat(eph.publicKey, r.publicKey), WRAP_INFO, 32);
    wrapped.push({ kid, wk: b64u(c.aesGcmEncrypt(kek, zeroIv, cek, utf8(kid))) });
  }
  const iv = c.randomBytes(c.GCM_IV_LEN);
  const ct = c.aesGcmEncrypt(cek, iv, plaintext, concat(ENC_DOMAIN, eph.publicKey));
  return { epk: b64u(eph.publicKey), recipients: wrapped, iv: b64u(iv), ct: b64u(ct) };
}

export function parseEncryptedEnvelope(v: unknown, what = 'encrypted envelope'): EncryptedEnvelope {
  const o: Obj = obj(v, what, ['epk', 'recipients', 'iv', 'ct']);
  const epk = str(o, 'epk', what, 60);
  fromB64u(epk, `${what}.epk`, 32);
  const iv = str(o, 'iv', what, 20);
  fromB64u(iv, `${what}.iv`, c.GCM_IV_LEN);
  const ct = str(o, 'ct', what, Math.ceil((MAX_ENVELOPE_BYTES * 4) / 3) + 4);
  if (fromB64u(ct, `${what}.ct`).length < c.GCM_TAG_LEN) fail('malformed', `${what}.ct is too short`);
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
  const shared = c.x25519(key.privateKey, epk);
  const kek = c.hkdfSha512(shared, concat(epk, key.publicKey), WRAP_INFO, 32);
  const cek = c.aesGcmDecrypt(kek, new Uint8Array(c.GCM_IV_LEN), fromB64u(r.wk, 'wk'), utf8(kid));
  return c.aesGcmDecrypt(cek, fromB64u(env.iv, 'iv', c.GCM_IV_LEN), fromB64u(env.ct, 'ct'), concat(ENC_DOMAIN, epk));
}
