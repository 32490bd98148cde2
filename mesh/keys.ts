/**
 * Key pairs per purpose (seed §6.1): signature, encryption, authentication.
 * A key's identifier is the UDF of its public key: the SHA-2-512 content digest of its
 * DER SubjectPublicKeyInfo under the content type application/pkix-keyinfo (udf.md).
 */
import * as c from './crypto.js';
import { b64u, fromB64u } from './bytes.js';
import { contentUdf } from './udf.js';
import { fail } from './errors.js';
import { obj, parseJson } from './json.js';

export const KEYINFO_CONTENT_TYPE = 'application/pkix-keyinfo';

export type KeyPurpose = 'sign' | 'enc' | 'auth';

/** UDF of an Ed25519 public key (signature and authentication keys). */
export function signKeyId(pub: Uint8Array): string {
  return contentUdf(c.ed25519Spki(pub), KEYINFO_CONTENT_TYPE);
}

/** UDF of an X25519 public key (encryption keys). */
export function encKeyId(pub: Uint8Array): string {
  return contentUdf(c.x25519Spki(pub), KEYINFO_CONTENT_TYPE);
}

/** The three key pairs a device (or an administration device) holds. */
export interface DeviceKeys {
  readonly sign: c.KeyPair;
  readonly enc: c.KeyPair;
  readonly auth: c.KeyPair;
}

export function generateDeviceKeys(): DeviceKeys {
  return { sign: c.ed25519KeyPair(), enc: c.x25519KeyPair(), auth: c.ed25519KeyPair() };
}

/** Private key file: JSON of the three private seeds, base64url. Written 0600 by whoever stores it. */
export function serializeDeviceKeys(k: DeviceKeys): string {
  return JSON.stringify({ sign: b64u(k.sign.privateKey), enc: b64u(k.enc.privateKey), auth: b64u(k.auth.privateKey) }, null, 2) + '\n';
}

export function parseDeviceKeys(text: string | Uint8Array): DeviceKeys {
  const o = obj(parseJson(text, 4096, 'key file'), 'key file', ['sign', 'enc', 'auth']);
  return {
    sign: c.ed25519KeyPair(fromB64u(o.sign, 'keys.sign', 32)),
    enc: c.x25519KeyPair(fromB64u(o.enc, 'keys.enc', 32)),
    auth: c.ed25519KeyPair(fromB64u(o.auth, 'keys.auth', 32)),
  };
}

/** Master keys all derive from one 32-byte seed, so the seed alone is what escrow protects. */
export interface MasterKeys {
  readonly seed: Uint8Array;
  readonly sign: c.KeyPair;
  readonly escrow: c.KeyPair;
}

export function masterKeysFromSeed(seed: Uint8Array): MasterKeys {
  if (seed.length !== 32) fail('malformed', 'the master seed must be 32 bytes');
  const sign = c.ed25519KeyPair(c.hkdfSha512(seed, new Uint8Array(0), 'mmm-master-sign-v1', 32));
  const escrow = c.x25519KeyPair(c.hkdfSha512(seed, new Uint8Array(0), 'mmm-master-escrow-v1', 32));
  return { seed, sign, escrow };
}

export function generateMasterKeys(): MasterKeys {
  return masterKeysFromSeed(c.randomBytes(32));
}

/** Public key as carried in profiles. */
export function pubField(v: unknown, field: string): Uint8Array {
  return fromB64u(v, field, 32);
}
