/**
 * Sessions: a signed, fresh session request buys an opaque bearer token (32 random bytes,
 * base64url, 24 h). The database keeps only a hash of the token; memory keeps the tokens seen
 * lately, so an authenticated request costs a map lookup and no cryptography.
 *
 * A session request's subject is a device UDF (verified with the device's authentication key)
 * or an account name@portal (verified with an administration key the account's master lists,
 * or the master signing key itself, which recovery uses). Each nonce is accepted once.
 *
 * Freshness is decided by the portal's clock alone: a request carries a challenge this portal
 * issued (GET Challenge, mesh/challenge.ts) less than five minutes ago, used once, and its
 * `created` is ignored, so a device whose clock says 1970 opens sessions. A request without a
 * challenge (a client older than challenges) is still judged by `created` (within five minutes).
 */
import * as c from '../mesh/crypto.js';
import { b64u, utf8 } from '../mesh/bytes.js';
import { fail, isMeshError } from '../mesh/errors.js';
import { verifySignedBy, type SignedEnvelope } from '../mesh/envelope.js';
import { checkChallenge, challengeKey, makeChallenge } from '../mesh/challenge.js';
import { checkSessionTime, parseSessionPayload, SESSION_SKEW_MS, type SessionPayload } from '../mesh/messages.js';
import { signKeyId, verifyByAdmin, type MasterProfile } from '../mesh/profiles.js';
import { fromB64u } from '../mesh/bytes.js';
import { Lru } from '../mesh/lru.js';
import type { Clock } from '../runtime/clock.js';
import type { Trust } from './trust.js';
import type { Storage, SessionRecord } from './storage/types.js';

export const SESSION_TTL_MS = 24 * 60 * 60 * 1000;
const TOKEN = /^[A-Za-z0-9_-]{43}$/;

export interface Session {
  readonly kind: 'device' | 'account';
  readonly subject: string;
  readonly kid: string;
  readonly expiresMs: number;
}

export interface Issued {
  readonly token: string;
  readonly expires: string;
}

export class SessionManager {
  private readonly cache = new Lru<string, Session>(200_000);
  private readonly challengeKey: Uint8Array;

  constructor(
    private readonly store: Storage,
    private readonly trust: Trust,
    private readonly clock: Clock,
    /** live sessions kept per subject (the newest); an older one left in this process's cache still works until it expires */
    private readonly keepPerSubject?: number,
    /** the secret every portal process shares (the portal key's seed), from which challenges are MACed; random if absent (one process) */
    secret?: Uint8Array,
  ) {
    this.challengeKey = challengeKey(secret ?? c.randomBytes(32));
  }

  /** A fresh challenge for a session request (GET Challenge). */
  challenge(): string {
    return makeChallenge(this.challengeKey, this.now());
  }

  /**
   * Is this session request fresh? With a challenge: one this portal issued within the last five
   * minutes by its own clock (`bad-challenge`, `replay`); the request's `created` is ignored.
   * Without: `created` within five minutes of the portal's clock (`replay`). Using it once is `useOnce`.
   */
  checkFresh(p: SessionPayload): void {
    if (p.challenge !== undefined) checkChallenge(this.challengeKey, p.challenge, this.now());
    else checkSessionTime(p, this.now());
  }

  /** After its signature verified: the request's nonce, and its challenge, are used once (`replay`). */
  async useOnce(p: SessionPayload): Promise<void> {
    await this.useNonce(p.nonce);
    if (p.challenge !== undefined && !(await this.store.useNonce(`challenge:${p.challenge}`, this.now() + 2 * SESSION_SKEW_MS))) {
      fail('replay', 'this session challenge was used before; fetch a new one');
    }
  }

  private now(): number {
    return this.clock.now();
  }

  /**
   * Verify a session request (for HTTP Session and for MQTT CONNECT): signature by the subject's
   * key, freshness, a nonce never seen before. Returns who it is.
   */
  async verifyRequest(env: SignedEnvelope, expectSubject?: string): Promise<Omit<Session, 'expiresMs'>> {
    const p = parseSessionPayload(env);
    if (expectSubject !== undefined && p.subject !== expectSubject) fail('forbidden', `the session request is for ${p.subject}, not ${expectSubject}`);
    this.checkFresh(p);
    let out: Omit<Session, 'expiresMs'>;
    if (p.subject.includes('@')) {
      const a = await this.store.getAccount(p.subject);
      if (a === undefined) return fail('not-found', `no account ${p.subject} is bound here; BindAccount first`);
      out = { kind: 'account', subject: p.subject, kid: verifyOwnerSignature(env, this.trust.master(a)) };
    } else {
      const d = await this.store.getDevice(p.subject);
      if (d === undefined) return fail('not-found', `no device ${p.subject} is registered here; Register first`);
      const keys = this.trust.deviceKeys(d);
      verifySignedBy(env, keys.auth);
      out = { kind: 'device', subject: p.subject, kid: signKeyId(keys.auth) };
    }
    await this.useOnce(p);
    return out;
  }

  /** Refuse a nonce seen before (kept for twice the clock-skew window, longer than a request stays fresh). */
  async useNonce(nonce: string): Promise<void> {
    if (!(await this.store.useNonce(nonce, this.now() + 2 * SESSION_SKEW_MS))) fail('replay', 'this session request was used before; sign a new one');
  }

  async issue(s: Omit<Session, 'expiresMs'>): Promise<Issued> {
    const token = b64u(c.randomBytes(32));
    const expiresMs = this.now() + SESSION_TTL_MS;
    const rec: SessionRecord = { tokenHash: tokenHash(token), kind: s.kind, subject: s.subject, kid: s.kid, expiresMs };
    await this.store.putSession(rec, this.keepPerSubject);
    this.cache.set(token, { ...s, expiresMs });
    return { token, expires: new Date(expiresMs).toISOString() };
  }

  /**
   * The session a bearer token stands for, from memory alone: the session, undefined (expired),
   * or null when the store must be asked (not cached, or the change feed is not reliable).
   */
  cached(token: string): Session | undefined | null {
    const hit = this.cache.get(token);
    if (hit === undefined || !this.store.eventsReliable) return null;
    if (hit.expiresMs > this.now()) return hit;
    this.cache.delete(token);
    return undefined;
  }

  /** The session a bearer token stands for, or undefined. */
  async authenticate(token: string): Promise<Session | undefined> {
    const c = this.cached(token);
    if (c !== null) return c;
    const now = this.now();
    if (!TOKEN.test(token)) return undefined;
    const rec = await this.store.getSession(tokenHash(token));
    if (rec === undefined || rec.expiresMs <= now) {
      this.cache.delete(token);
      return undefined;
    }
    const s: Session = { kind: rec.kind, subject: rec.subject, kid: rec.kid, expiresMs: rec.expiresMs };
    this.cache.set(token, s);
    return s;
  }

  /** Sessions of this account may have been revoked (a new master revoked their key). */
  forgetAccount(account: string): void {
    for (const [t, s] of this.cache.entries()) if (s.subject === account) this.cache.delete(t);
  }

  forgetAll(): void {
    this.cache.clear();
  }
}

/**
 * An owner's signature: by an administration key the master lists (not revoked), or by the master
 * signing key itself (recovery). Returns the signing key's UDF.
 */
export function verifyOwnerSignature(env: SignedEnvelope, master: MasterProfile): string {
  try {
    return verifyByAdmin(env, master).kid;
  } catch (e) {
    if (!isMeshError(e, 'unknown-signer')) throw e;
    const masterKey = fromB64u(master.payload.sign, 'sign', 32);
    if (!env.sigs.some((s) => s.kid === master.id)) throw e;
    verifySignedBy(env, masterKey);
    return master.id;
  }
}

function tokenHash(token: string): string {
  return b64u(c.sha256(utf8(token)));
}
