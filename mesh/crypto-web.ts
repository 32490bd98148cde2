/**
 * The browser's engine behind mesh/crypto.ts, pure JavaScript: @noble/curves (Ed25519, X25519),
 * @noble/hashes (SHA-2, SHA-3, HMAC, HKDF) and @noble/ciphers (AES-256-GCM), with the same exports
 * and the same refusals as mesh/crypto-node.ts. scripts/build-web.mjs puts this file in the place of
 * crypto-node.ts, so the owner app runs the core's own code; test/crypto-engines.test.ts checks that
 * both engines give the same bytes.
 */
import { ed25519, x25519 as x } from '@noble/curves/ed25519.js';
import { sha256 as s256, sha512 as s512 } from '@noble/hashes/sha2.js';
import { sha3_512 as s3 } from '@noble/hashes/sha3.js';
import { hmac } from '@noble/hashes/hmac.js';
import { hkdf } from '@noble/hashes/hkdf.js';
import { gcm } from '@noble/ciphers/aes.js';
import { fail } from './errors.js';
import { utf8 } from './bytes.js';
import { ED25519_PUBLIC_LEN, ED25519_SEED_LEN, ED25519_SIG_LEN, GCM_TAG_LEN, X25519_LEN, abytes, alength, gcmArgs, nonZeroShared, strictEd25519Point, type KeyPair } from './crypto-base.js';

// ---------------------------------------------------------------- hashes

export function sha512(data: Uint8Array): Uint8Array {
  abytes(data, undefined, 'data');
  return s512(data);
}
export function sha3_512(data: Uint8Array): Uint8Array {
  abytes(data, undefined, 'data');
  return s3(data);
}
/** SHA-256: only for the RFC 9162 transparency log, whose hash is SHA-256. */
export function sha256(data: Uint8Array): Uint8Array {
  abytes(data, undefined, 'data');
  return s256(data);
}
export function hmacSha512(key: Uint8Array, data: Uint8Array): Uint8Array {
  abytes(key, undefined, 'key');
  abytes(data, undefined, 'data');
  return hmac(s512, key, data);
}
/** RFC 5869 HKDF with SHA-512 (extract then expand). */
export function hkdfSha512(ikm: Uint8Array, salt: Uint8Array, info: Uint8Array | string, length: number): Uint8Array {
  abytes(ikm, undefined, 'ikm');
  abytes(salt, undefined, 'salt');
  alength(length);
  return hkdf(s512, ikm, salt, typeof info === 'string' ? utf8(info) : info, length);
}
export function randomBytes(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let o = 0; o < n; o += 65536) crypto.getRandomValues(out.subarray(o, Math.min(n, o + 65536)));
  return out;
}

/** Constant-time equality of two byte strings (false when lengths differ). */
export function timingSafeEqual(a: Uint8Array, b: Uint8Array): boolean {
  abytes(a, undefined, 'a');
  abytes(b, undefined, 'b');
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= (a[i] as number) ^ (b[i] as number);
  return d === 0;
}

// ---------------------------------------------------------------- Ed25519

export function ed25519KeyPair(seed?: Uint8Array): KeyPair {
  const s = seed === undefined ? randomBytes(ED25519_SEED_LEN) : seed;
  abytes(s, ED25519_SEED_LEN, 'seed');
  return { publicKey: ed25519.getPublicKey(s), privateKey: new Uint8Array(s) };
}

/** RFC 8032 §5.1.6 signing. */
export function ed25519Sign(privateKey: Uint8Array, message: Uint8Array): Uint8Array {
  abytes(privateKey, ED25519_SEED_LEN, 'privateKey');
  abytes(message, undefined, 'message');
  return ed25519.sign(message, privateKey);
}

/** The strict public-key check (crypto-base.ts). Throws `bad-key`. */
export function checkEd25519PublicKey(pub: Uint8Array): void {
  abytes(pub, ED25519_PUBLIC_LEN, 'publicKey');
  strictEd25519Point(pub);
}

/**
 * RFC 8032 §5.1.7 verification with strict keys. A bad key throws `bad-key`;
 * a signature that does not verify returns false.
 */
export function ed25519Verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  abytes(message, undefined, 'message');
  abytes(signature, ED25519_SIG_LEN, 'signature');
  checkEd25519PublicKey(publicKey);
  try {
    // zip215 false: RFC 8032 rules, as OpenSSL
    return ed25519.verify(signature, message, publicKey, { zip215: false });
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------- X25519

export function x25519KeyPair(seed?: Uint8Array): KeyPair {
  const s = seed === undefined ? randomBytes(X25519_LEN) : seed;
  abytes(s, X25519_LEN, 'seed');
  return { publicKey: x.getPublicKey(s), privateKey: new Uint8Array(s) };
}

/** The X25519 public key of a private scalar. */
export function x25519PublicKey(privateKey: Uint8Array): Uint8Array {
  abytes(privateKey, X25519_LEN, 'privateKey');
  return x.getPublicKey(privateKey);
}

/** RFC 7748 §6.1 X25519; a peer key of small order (all-zero secret) is `bad-key`. */
export function x25519(privateKey: Uint8Array, peerPublicKey: Uint8Array): Uint8Array {
  abytes(privateKey, X25519_LEN, 'privateKey');
  abytes(peerPublicKey, X25519_LEN, 'peerPublicKey');
  let shared: Uint8Array;
  try {
    shared = x.getSharedSecret(privateKey, peerPublicKey);
  } catch {
    return fail('bad-key', 'X25519 peer key is of small order');
  }
  return nonZeroShared(shared);
}

// ---------------------------------------------------------------- AES-256-GCM

/** AES-256-GCM encryption; returns ciphertext || 16-byte tag. */
export function aesGcmEncrypt(key: Uint8Array, iv: Uint8Array, plaintext: Uint8Array, aad: Uint8Array): Uint8Array {
  gcmArgs(key, iv, plaintext, aad, 'plaintext');
  return gcm(key, iv, aad).encrypt(plaintext);
}

/** AES-256-GCM decryption of ciphertext || tag; a wrong key or any change throws `decrypt-failed`. */
export function aesGcmDecrypt(key: Uint8Array, iv: Uint8Array, sealed: Uint8Array, aad: Uint8Array): Uint8Array {
  gcmArgs(key, iv, sealed, aad, 'ciphertext');
  if (sealed.length < GCM_TAG_LEN) fail('decrypt-failed', 'ciphertext shorter than its tag');
  try {
    return gcm(key, iv, aad).decrypt(sealed);
  } catch {
    return fail('decrypt-failed', 'decryption failed: wrong key or the data was changed');
  }
}
