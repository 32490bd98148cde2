/**
 * The only door to cryptography. One suite, no options (seed §3.2):
 * Ed25519 (RFC 8032) signatures, X25519 (RFC 7748) key agreement, HKDF-SHA-512 (RFC 5869),
 * AES-256-GCM, SHA-2-512 (and SHA-3-512 / HMAC-SHA-512 for UDFs, SHA-256 for the RFC 9162 log).
 *
 * Two engines with the same exports: mesh/crypto-node.ts (node:crypto, OpenSSL, ~15x faster than
 * pure JS on this machine, docs/architecture.md) for the portal, the agent and the CLI, and
 * mesh/crypto-web.ts (@noble, pure JS) that scripts/build-web.mjs puts in its place for the owner
 * app in the browser. What does not depend on the engine is in mesh/crypto-base.ts.
 *
 * Conventions (as noble): a caller's mistake (wrong type or length) throws MeshError;
 * a forged signature makes `verify` return false.
 */
import { concat, utf8 } from './bytes.js';
import { X25519_LEN, abytes, alength } from './crypto-base.js';
import { fail } from './errors.js';
import { hmacSha512, x25519 } from './crypto-node.js';

export { AES_KEY_LEN, ED25519_PUBLIC_LEN, ED25519_SEED_LEN, ED25519_SIG_LEN, GCM_IV_LEN, GCM_TAG_LEN, X25519_LEN, ed25519Spki, x25519Spki, type KeyPair } from './crypto-base.js';
export * from './crypto-node.js';

/** RFC 5869 §2.3 HKDF-Expand alone (UDF authenticators use a PRK made by HMAC). */
export function hkdfExpandSha512(prk: Uint8Array, info: Uint8Array | string, length: number): Uint8Array {
  abytes(prk, undefined, 'prk');
  alength(length);
  const i = typeof info === 'string' ? utf8(info) : info;
  if (length > 255 * 64) fail('malformed', 'HKDF output too long');
  const out = new Uint8Array(length);
  let prev = new Uint8Array(0);
  let o = 0;
  for (let n = 1; o < length; n++) {
    prev = hmacSha512(prk, concat(prev, i, Uint8Array.of(n))) as Uint8Array<ArrayBuffer>;
    out.set(prev.subarray(0, Math.min(prev.length, length - o)), o);
    o += prev.length;
  }
  return out;
}

/**
 * Refuse an X25519 public key of small order (its shared secret with anyone is all zeros),
 * so a profile cannot carry an encryption key nobody can really encrypt to. Throws `bad-key`.
 */
export function checkX25519PublicKey(pub: Uint8Array): void {
  abytes(pub, X25519_LEN, 'publicKey');
  x25519(PROBE_SCALAR, pub);
}
const PROBE_SCALAR = new Uint8Array(32).fill(0x5a);
