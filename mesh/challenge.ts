/**
 * Session challenges: freshness that does not depend on the client's clock.
 *
 * A device board without a real-time clock boots at 1970, so a session request cannot prove it
 * is fresh by the time it carries. Instead the client first asks the portal for a challenge
 * (GET Challenge) and signs it into its session request; the portal accepts a request whose
 * challenge it issued within CHALLENGE_TTL_MS by its own clock, and each challenge once.
 *
 * The challenge is stateless, so any portal process holding the same portal key can check what
 * another issued:
 *
 *   body      = issued (ms since the epoch by the portal's clock, 8 bytes big-endian) || 16 random bytes
 *   mac       = HMAC-SHA-512(K, "mmm-challenge-v1" || 0x00 || body), first 32 bytes
 *   challenge = base64url(body || mac)                                     (75 characters)
 *   K         = HKDF-SHA-512(portal signing key seed, salt empty, info "mmm-session-challenge-v1", 32)
 *
 * Clients treat it as opaque. Pure: the portal supplies the time and keeps "used once".
 */
import * as c from './crypto.js';
import { b64u, concat, utf8 } from './bytes.js';
import { fail } from './errors.js';

/** A challenge is accepted this long after the portal issued it (by the portal's clock). */
export const CHALLENGE_TTL_MS = 5 * 60 * 1000;
/** Issued "in the future" by this much is still accepted: another portal process whose clock is a little ahead. */
export const CHALLENGE_FUTURE_MS = 60 * 1000;
/** The text form: base64url of 8 + 16 + 32 bytes. */
export const CHALLENGE_TEXT = /^[A-Za-z0-9_-]{75}$/;

const BODY_LEN = 8 + 16;
const MAC_LEN = 32;
const DOMAIN = utf8('mmm-challenge-v1\u0000');

/** The MAC key, from a secret every portal process shares (the portal signing key's seed). */
export function challengeKey(secret: Uint8Array): Uint8Array {
  return c.hkdfSha512(secret, new Uint8Array(0), 'mmm-session-challenge-v1', 32);
}

function mac(key: Uint8Array, body: Uint8Array): Uint8Array {
  return c.hmacSha512(key, concat(DOMAIN, body)).slice(0, MAC_LEN);
}

/** A new challenge issued at `nowMs` (the portal's clock). */
export function makeChallenge(key: Uint8Array, nowMs: number, random: Uint8Array = c.randomBytes(16)): string {
  if (!Number.isSafeInteger(nowMs) || nowMs < 0) fail('internal', 'a challenge needs a time in ms since the epoch');
  if (random.length !== 16) fail('internal', 'a challenge carries 16 random bytes');
  const body = new Uint8Array(BODY_LEN);
  new DataView(body.buffer).setBigUint64(0, BigInt(nowMs));
  body.set(random, 8);
  return b64u(concat(body, mac(key, body)));
}

/**
 * Check a challenge against the portal's clock: `bad-challenge` if this key did not make it
 * (forged, changed, another portal's), `replay` if it was issued more than CHALLENGE_TTL_MS ago
 * (or implausibly far ahead). Returns when it was issued. Using it once is the caller's part.
 */
export function checkChallenge(key: Uint8Array, challenge: string, nowMs: number): { issuedMs: number } {
  if (typeof challenge !== 'string' || !CHALLENGE_TEXT.test(challenge)) return fail('bad-challenge', 'the session challenge is not one this portal issues: fetch a new one (GET Challenge)');
  const raw = Buffer.from(challenge, 'base64url');
  const body = new Uint8Array(raw.subarray(0, BODY_LEN));
  // canonical only: the text is what is used once, so two spellings of one challenge must not exist
  if (raw.length !== BODY_LEN + MAC_LEN || b64u(raw) !== challenge || !c.timingSafeEqual(mac(key, body), new Uint8Array(raw.subarray(BODY_LEN)))) {
    return fail('bad-challenge', 'the session challenge was not issued by this portal (forged, changed, or from another portal): fetch a new one (GET Challenge)');
  }
  const issuedMs = Number(new DataView(body.buffer, body.byteOffset).getBigUint64(0));
  if (nowMs - issuedMs > CHALLENGE_TTL_MS) fail('replay', `the session challenge was issued ${Math.round((nowMs - issuedMs) / 1000)} s ago, longer than ${CHALLENGE_TTL_MS / 1000} s: fetch a new one`);
  if (issuedMs - nowMs > CHALLENGE_FUTURE_MS) fail('replay', 'the session challenge was issued ahead of this portal\'s clock: fetch a new one');
  return { issuedMs };
}
