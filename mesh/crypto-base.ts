/**
 * What both cryptographic engines share (mesh/crypto-node.ts on node:crypto, mesh/crypto-web.ts on
 * @noble for the browser): the sizes, the argument checks, the RFC 8410 key wrappers and the strict
 * Ed25519 public-key rule. Nothing here depends on the engine.
 */
import { ed25519 } from '@noble/curves/ed25519.js';
import { fail } from './errors.js';
import { concat, equalBytes } from './bytes.js';

export const ED25519_PUBLIC_LEN = 32;
export const ED25519_SEED_LEN = 32;
export const ED25519_SIG_LEN = 64;
export const X25519_LEN = 32;
export const AES_KEY_LEN = 32;
export const GCM_IV_LEN = 12;
export const GCM_TAG_LEN = 16;

export interface KeyPair {
  readonly publicKey: Uint8Array;
  /** the 32-byte private seed (Ed25519) or scalar (X25519) */
  readonly privateKey: Uint8Array;
}

export function abytes(v: unknown, len: number | undefined, field: string): asserts v is Uint8Array {
  if (!(v instanceof Uint8Array)) fail('malformed', `${field} must be bytes`);
  if (len !== undefined && v.length !== len) fail('malformed', `${field} must be ${len} bytes, got ${v.length}`);
}

/** The arguments of AES-256-GCM, checked alike by both engines (`data`: the plaintext or ciphertext || tag). */
export function gcmArgs(key: unknown, iv: unknown, data: unknown, aad: unknown, dataField: 'plaintext' | 'ciphertext'): void {
  abytes(key, AES_KEY_LEN, 'key');
  abytes(iv, GCM_IV_LEN, 'iv');
  abytes(data, undefined, dataField);
  abytes(aad, undefined, 'aad');
}

export function alength(n: unknown): asserts n is number {
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 1 || n > 255 * 64) fail('malformed', 'output length must be a whole number from 1 to 16320');
}

const fromHexConst = (h: string): Uint8Array => Uint8Array.from(h.match(/../g) as string[], (x) => parseInt(x, 16));
// ---------------------------------------------------------------- DER wrappers for raw keys
export const ED_PKCS8 = fromHexConst('302e020100300506032b657004220420');
export const ED_SPKI = fromHexConst('302a300506032b6570032100');
export const X_PKCS8 = fromHexConst('302e020100300506032b656e04220420');
export const X_SPKI = fromHexConst('302a300506032b656e032100');

/** The DER SubjectPublicKeyInfo of a raw Ed25519 public key (RFC 8410): what a key UDF hashes. */
export function ed25519Spki(pub: Uint8Array): Uint8Array {
  abytes(pub, ED25519_PUBLIC_LEN, 'publicKey');
  return concat(ED_SPKI, pub);
}
/** The DER SubjectPublicKeyInfo of a raw X25519 public key (RFC 8410). */
export function x25519Spki(pub: Uint8Array): Uint8Array {
  abytes(pub, X25519_LEN, 'publicKey');
  return concat(X_SPKI, pub);
}

/**
 * The strict public-key rule (what node:crypto lacks): the encoding must be canonical
 * (y < p, RFC 8032 §5.1.3) and the point must not be of small order. Throws `bad-key`.
 */
export function strictEd25519Point(pub: Uint8Array): void {
  let ok = false;
  try {
    const p = ed25519.Point.fromBytes(pub, false);
    ok = !p.isSmallOrder() && equalBytes(p.toBytes(), pub);
  } catch {
    ok = false;
  }
  if (!ok) fail('bad-key', 'Ed25519 public key is not canonical or is of small order');
}

/** An X25519 shared secret of all zeros (a peer key of small order) is refused: `bad-key` (RFC 7748 §6.1). */
export function nonZeroShared(shared: Uint8Array): Uint8Array {
  let acc = 0;
  for (const b of shared) acc |= b;
  if (acc === 0) fail('bad-key', 'X25519 peer key is of small order');
  return shared;
}
