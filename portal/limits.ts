/**
 * What an unauthenticated client can make the portal store, and for how long. Anyone can make
 * device identities and accounts, so every record such a request creates has a size limit here,
 * new ones are budgeted per address and in all, unclaimed devices expire, and their number is
 * capped: storage grows only as fast as the budgets allow and never past the documented bound
 * (docs/portal.md, "Limits").
 */
import { fail } from '../mesh/errors.js';
import type { PortalContext } from './context.js';
import type { Take } from './ratelimit.js';
import type { Storage } from './storage/types.js';

/**
 * Sizes of the stored JSON text of each record an unauthenticated or self-registered client
 * creates. A real device's profile is ~520 bytes, its endorsement ~590 and its sealed claim blob
 * ~1,550 with 40-character names (the fields are capped at 64 characters by the profile parsers).
 */
export const RECORD_LIMITS = {
  /** a device's self-signed profile */
  deviceProfileBytes: 1024,
  /** the manufacturer's endorsement */
  endorsementBytes: 1024,
  /** the claim blob: the profile and endorsement sealed under the label secret (iv.ciphertext, base64url) */
  claimBlobChars: 3072,
  /** a device's signed status (one kept per device, once it has been claimed) */
  statusBytes: 32 * 1024,
  /** a join request (at most 16 kept per account, for 10 min) */
  joinBytes: 4 * 1024,
  /** the master and personal profiles that bind a new account (later ones come by authenticated Publish) */
  bindProfileBytes: 16 * 1024,
} as const;

/**
 * Bytes of column data one unclaimed device can hold at most: its row (id, profile, endorsement,
 * claim id, blob, claim-proof key, two integers), its sessions (token hash, kind, subject, key id,
 * expiry) and its claim failures (device, time). Its status is not kept until it is claimed.
 */
export function unclaimedDeviceBound(sessionsPerSubject: number, claimAttempts: number): number {
  const UDF = 120;
  const device = UDF + RECORD_LIMITS.deviceProfileBytes + RECORD_LIMITS.endorsementBytes + 40 + RECORD_LIMITS.claimBlobChars + 60 + 2 * 8;
  const session = 43 + 6 + UDF + UDF + 8;
  const failure = UDF + 8;
  return device + sessionsPerSubject * session + claimAttempts * failure;
}

/** Refuse a record larger than its limit (413 too-large), naming it. */
export function checkSize(text: string, max: number, what: string): void {
  const n = Buffer.byteLength(text, 'utf8');
  if (n > max) fail('too-large', `${what} is ${n} bytes; this portal stores at most ${max}`, { size: n, limit: max });
}

/**
 * A budget every portal process on the database shares (Storage.takeBudget): `perWindow` takes per
 * key in each fixed window of `windowMs` on the portal's clock (windows start at multiples of
 * `windowMs`). Over any span of one window at most 2 x `perWindow` are granted (the end of one
 * window and the start of the next), as with a token bucket of that burst refilled over the window.
 */
export class SharedBudget {
  constructor(
    readonly perWindow: number,
    readonly windowMs: number,
  ) {}

  get enabled(): boolean {
    return this.perWindow > 0;
  }

  async take(store: Storage, key: string, nowMs: number): Promise<Take> {
    if (!this.enabled) return { ok: true, retryAfterS: 0 };
    const start = Math.floor(nowMs / this.windowMs) * this.windowMs;
    if (await store.takeBudget(key, start, this.perWindow)) return { ok: true, retryAfterS: 0 };
    return { ok: false, retryAfterS: Math.max(1, Math.ceil((start + this.windowMs - nowMs) / 1000)) };
  }
}

/**
 * One new record (a device registration or an account; a join takes from the global budget only) from `ip`: take from the address's budget
 * (429 when it is spent: this client is asking too much) and from the global one (503 when spent:
 * the portal is busy, for everyone). Both are held in the database, shared by every portal process.
 */
export async function takeNewRecord(ctx: PortalContext, ip: string, what: string): Promise<void> {
  const mine = await ctx.limiters.newPerAddress.take(ctx.store, `new|${ip}`, ctx.clock.now());
  if (!mine.ok) fail('rate-limited', `too many new ${what} from this address; try again in ${mine.retryAfterS} s`, { retryAfterS: mine.retryAfterS });
  await takeGlobal(ctx, what);
}

/** One new record from the global budget (503 when it is spent). */
export async function takeGlobal(ctx: PortalContext, what: string): Promise<void> {
  const all = await ctx.limiters.newGlobal.take(ctx.store, 'new|*', ctx.clock.now());
  if (!all.ok) fail('unavailable', `this portal takes no more new ${what} for now; try again in ${all.retryAfterS} s`, { retryAfterS: all.retryAfterS });
}
