/**
 * The node:crypto (OpenSSL) engine behind mesh/crypto.ts: ~15x faster than pure JS on this
 * machine (docs/architecture.md). mesh/crypto-web.ts has the same exports for the browser
 * (scripts/build-web.mjs puts it in this file's place). @noble/curves supplies what OpenSSL does
 * not: strict rejection of small-order and non-canonical Ed25519 public keys, checked once per key
 * and cached with its KeyObject.
 */
import * as nc from 'node:crypto';
import { fail } from './errors.js';
import {
  ED25519_PUBLIC_LEN,
  ED25519_SEED_LEN,
  ED25519_SIG_LEN,
  ED_PKCS8,
  GCM_TAG_LEN,
  X25519_LEN,
  X_PKCS8,
  abytes,
  alength,
  gcmArgs,
  nonZeroShared,
  strictEd25519Point,
  type KeyPair,
} from './crypto-base.js';

const u8 = (b: Buffer): Uint8Array => new Uint8Array(b.buffer, b.byteOffset, b.byteLength);

// ---------------------------------------------------------------- hashes

export function sha512(data: Uint8Array): Uint8Array {
  abytes(data, undefined, 'data');
  return u8(nc.createHash('sha512').update(data).digest());
}
export function sha3_512(data: Uint8Array): Uint8Array {
  abytes(data, undefined, 'data');
  return u8(nc.createHash('sha3-512').update(data).digest());
}
/** SHA-256: only for the RFC 9162 transparency log, whose hash is SHA-256. */
export function sha256(data: Uint8Array): Uint8Array {
  abytes(data, undefined, 'data');
  return u8(nc.createHash('sha256').update(data).digest());
}
export function hmacSha512(key: Uint8Array, data: Uint8Array): Uint8Array {
  abytes(key, undefined, 'key');
  abytes(data, undefined, 'data');
  return u8(nc.createHmac('sha512', key).update(data).digest());
}
/** RFC 5869 HKDF with SHA-512 (extract then expand). */
export function hkdfSha512(ikm: Uint8Array, salt: Uint8Array, info: Uint8Array | string, length: number): Uint8Array {
  abytes(ikm, undefined, 'ikm');
  abytes(salt, undefined, 'salt');
  alength(length);
  const i = typeof info === 'string' ? Buffer.from(info, 'utf8') : info;
  return new Uint8Array(nc.hkdfSync('sha512', ikm, salt, i, length));
}
export function randomBytes(n: number): Uint8Array {
  return u8(nc.randomBytes(n));
}

/** Constant-time equality of two byte strings (false when lengths differ). */
export function timingSafeEqual(a: Uint8Array, b: Uint8Array): boolean {
  abytes(a, undefined, 'a');
  abytes(b, undefined, 'b');
  return a.length === b.length && nc.timingSafeEqual(a, b);
}

function rawPublic(k: nc.KeyObject): Uint8Array {
  const der = k.export({ format: 'der', type: 'spki' });
  return u8(der.subarray(der.length - 32));
}

// ---------------------------------------------------------------- Ed25519

export function ed25519KeyPair(seed?: Uint8Array): KeyPair {
  const s = seed === undefined ? randomBytes(ED25519_SEED_LEN) : seed;
  abytes(s, ED25519_SEED_LEN, 'seed');
  const priv = nc.createPrivateKey({ key: Buffer.concat([ED_PKCS8, s]), format: 'der', type: 'pkcs8' });
  return { publicKey: rawPublic(nc.createPublicKey(priv)), privateKey: new Uint8Array(s) };
}

const privCache = new Map<string, nc.KeyObject>();
function edPrivateKeyObject(seed: Uint8Array): nc.KeyObject {
  abytes(seed, ED25519_SEED_LEN, 'privateKey');
  const id = Buffer.from(seed).toString('base64');
  let k = privCache.get(id);
  if (k === undefined) {
    k = nc.createPrivateKey({ key: Buffer.concat([ED_PKCS8, seed]), format: 'der', type: 'pkcs8' });
    if (privCache.size > 256) privCache.clear();
    privCache.set(id, k);
  }
  return k;
}

/** RFC 8032 §5.1.6 signing. */
export function ed25519Sign(privateKey: Uint8Array, message: Uint8Array): Uint8Array {
  abytes(message, undefined, 'message');
  return u8(nc.sign(null, message, edPrivateKeyObject(privateKey)));
}

// Public keys as KeyObjects, bounded, one cache per curve. An Ed25519 key is kept only once it
// passed the strict check; X25519 keys (owners' keys, used for every status a device seals) as they are.
const PUB_CACHE_MAX = 4096;
const pubCache = new Map<string, nc.KeyObject>();
const xPubCache = new Map<string, nc.KeyObject>();

/** The key's KeyObject from `cache`, or imported (from JWK: faster than SPKI DER) after `check` and kept. */
function cachedPublicKey(cache: Map<string, nc.KeyObject>, crv: 'Ed25519' | 'X25519', pub: Uint8Array, check?: (pub: Uint8Array) => void): nc.KeyObject {
  const id = Buffer.from(pub).toString('base64');
  const hit = cache.get(id);
  if (hit !== undefined) return hit;
  check?.(pub);
  const k = nc.createPublicKey({ key: { kty: 'OKP', crv, x: Buffer.from(pub).toString('base64url') }, format: 'jwk' });
  if (cache.size >= PUB_CACHE_MAX) {
    const first = cache.keys().next().value;
    if (first !== undefined) cache.delete(first);
  }
  cache.set(id, k);
  return k;
}

/** The strict public-key check (crypto-base.ts), cached with the key's KeyObject. Throws `bad-key`. */
export function checkEd25519PublicKey(pub: Uint8Array): void {
  edPublicKeyObject(pub);
}

function edPublicKeyObject(pub: Uint8Array): nc.KeyObject {
  abytes(pub, ED25519_PUBLIC_LEN, 'publicKey');
  return cachedPublicKey(pubCache, 'Ed25519', pub, strictEd25519Point);
}

/**
 * RFC 8032 §5.1.7 verification with strict keys. A bad key throws `bad-key`;
 * a signature that does not verify returns false.
 */
export function ed25519Verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  abytes(message, undefined, 'message');
  abytes(signature, ED25519_SIG_LEN, 'signature');
  const k = edPublicKeyObject(publicKey);
  return nc.verify(null, message, k, signature);
}

// ---------------------------------------------------------------- X25519

/**
 * X25519 private keys as node:crypto KeyObjects, by the array that holds the scalar: importing one
 * (createPrivateKey from DER) costs more than the Diffie-Hellman itself, and the arrays a caller
 * holds are used again (a device's own key for every profile, an ephemeral key for every
 * recipient). Checked against a copy of the scalar, so an array changed since is imported again.
 */
const xPrivByArray = new WeakMap<Uint8Array, { scalar: Uint8Array; key: nc.KeyObject }>();

function xPrivateKeyObject(privateKey: Uint8Array): nc.KeyObject {
  const hit = xPrivByArray.get(privateKey);
  if (hit !== undefined && nc.timingSafeEqual(hit.scalar, privateKey)) return hit.key;
  const key = nc.createPrivateKey({ key: Buffer.concat([X_PKCS8, privateKey]), format: 'der', type: 'pkcs8' });
  xPrivByArray.set(privateKey, { scalar: new Uint8Array(privateKey), key });
  return key;
}


export function x25519KeyPair(seed?: Uint8Array): KeyPair {
  // not generateKeyPairSync + a JWK export: on Node 20 that deadlocks when the export's allocation
  // runs a GC that destroys an earlier key-generation job (both take the key's mutex; seen in npm test)
  const s = seed === undefined ? randomBytes(X25519_LEN) : seed;
  abytes(s, X25519_LEN, 'seed');
  const privateKey = new Uint8Array(s);
  return { publicKey: rawPublic(nc.createPublicKey(xPrivateKeyObject(privateKey))), privateKey };
}

/** The X25519 public key of a private scalar. */
export function x25519PublicKey(privateKey: Uint8Array): Uint8Array {
  abytes(privateKey, X25519_LEN, 'privateKey');
  return x25519KeyPair(privateKey).publicKey;
}

/**
 * RFC 7748 §6.1 X25519. A peer key of small order gives the all-zero secret: refused (`bad-key`),
 * as §6.1 allows and as a protocol binding keys to identities must.
 */
export function x25519(privateKey: Uint8Array, peerPublicKey: Uint8Array): Uint8Array {
  abytes(privateKey, X25519_LEN, 'privateKey');
  abytes(peerPublicKey, X25519_LEN, 'peerPublicKey');
  const priv = xPrivateKeyObject(privateKey);
  const pub = cachedPublicKey(xPubCache, 'X25519', peerPublicKey);
  let shared: Uint8Array;
  try {
    shared = u8(nc.diffieHellman({ privateKey: priv, publicKey: pub }));
  } catch {
    return fail('bad-key', 'X25519 peer key is of small order');
  }
  return nonZeroShared(shared);
}

// ---------------------------------------------------------------- AES-256-GCM

/** AES-256-GCM encryption; returns ciphertext || 16-byte tag. */
export function aesGcmEncrypt(key: Uint8Array, iv: Uint8Array, plaintext: Uint8Array, aad: Uint8Array): Uint8Array {
  gcmArgs(key, iv, plaintext, aad, 'plaintext');
  const c = nc.createCipheriv('aes-256-gcm', key, iv);
  c.setAAD(aad);
  const ct = Buffer.concat([c.update(plaintext), c.final(), c.getAuthTag()]);
  return u8(ct);
}

/** AES-256-GCM decryption of ciphertext || tag; a wrong key or any change throws `decrypt-failed`. */
export function aesGcmDecrypt(key: Uint8Array, iv: Uint8Array, sealed: Uint8Array, aad: Uint8Array): Uint8Array {
  gcmArgs(key, iv, sealed, aad, 'ciphertext');
  if (sealed.length < GCM_TAG_LEN) fail('decrypt-failed', 'ciphertext shorter than its tag');
  const d = nc.createDecipheriv('aes-256-gcm', key, iv);
  d.setAAD(aad);
  d.setAuthTag(sealed.subarray(sealed.length - GCM_TAG_LEN));
  try {
    return u8(Buffer.concat([d.update(sealed.subarray(0, sealed.length - GCM_TAG_LEN)), d.final()]));
  } catch {
    return fail('decrypt-failed', 'decryption failed: wrong key or the data was changed');
  }
}
