/**
 * What every transaction handler works with, and the small helpers they share. Handlers turn
 * untrusted JSON into typed values only through the mesh/protocol.ts parsers and the mesh verifiers.
 */
import type { KeyPair } from '../mesh/crypto.js';
import { fail } from '../mesh/errors.js';
import { payloadBytes, type SignedEnvelope } from '../mesh/envelope.js';
import { leafHash } from '../mesh/merkle.js';
import type { Clock } from '../runtime/clock.js';
import type { FeedHub } from './feed.js';
import type { Logger } from './log.js';
import type { Metrics } from './metrics.js';
import type { RateLimiter } from './ratelimit.js';
import type { SharedBudget } from './limits.js';
import type { Session, SessionManager } from './sessions.js';
import type { Appended, LeafInput, Storage } from './storage/types.js';
import type { Witnessing } from './witnesses.js';
import type { LogTree } from './transparency.js';
import type { Trust } from './trust.js';
import type { Verifier } from './verify.js';

export interface PortalLimits {
  /** failed claim proofs per device per hour before every claim is refused */
  readonly claimAttempts: number;
  readonly claimWindowMs: number;
  /** long polls waiting at once (one per device) */
  readonly maxLongPolls: number;
  readonly maxJoinsPerAccount: number;
  readonly joinMaxAgeMs: number;
  /** devices registered and never claimed, at most (beyond it Register of a new device is 503) */
  readonly maxUnclaimed: number;
  /** an unclaimed device with no live session is deleted this long after it registered */
  readonly unclaimedTtlMs: number;
  /** live sessions kept per device or account (the newest) */
  readonly sessionsPerSubject: number;
}

/** Counts the portal keeps in memory between sweeps. */
export interface PortalCounters {
  /** unclaimed devices: counted by each sweep, plus the registrations since */
  unclaimed: number;
}

export interface PortalContext {
  /** account domain: accounts are name@<name> */
  readonly name: string;
  readonly key: KeyPair;
  /** UDF of the portal key */
  readonly portalId: string;
  /** the self-signed portal profile */
  readonly profile: SignedEnvelope;
  readonly store: Storage;
  readonly log: Logger;
  readonly tree: LogTree;
  /** the witnesses' cosignatures on the log's checkpoints (none configured: disabled) */
  readonly witnessing: Witnessing;
  readonly sessions: SessionManager;
  readonly feed: FeedHub;
  readonly trust: Trust;
  /** verifies published application profiles, on worker threads when there are cores for them */
  readonly verifier: Verifier;
  readonly metrics: Metrics;
  readonly limits: PortalLimits;
  readonly limiters: {
    readonly joinPerIp: RateLimiter;
    readonly joinPerAccount: RateLimiter;
    readonly claimLookupPerAccount: RateLimiter;
    /** new devices and accounts per client address (limits.ts takeNewRecord), held in the database */
    readonly newPerAddress: SharedBudget;
    /** new devices, accounts and joins from all addresses together, held in the database */
    readonly newGlobal: SharedBudget;
  };
  readonly counters: PortalCounters;
  /** the push URL devices should use, or null */
  readonly mqttUrl: string | null;
  /** a device's password for the push broker, when it checks portal-minted credentials (NATS operator mode) */
  readonly pushCredential?: (device: string, expiresMs: number) => string;
  /** the one clock: time, timers and randomness */
  readonly clock: Clock;
  /** clock.now() */
  now(): number;
}

/** A request as a handler sees it. */
export interface Call {
  /** the client's address as per-address limits count it (the forwarded one behind a trusted proxy; IPv6 by /64) */
  readonly ip: string;
  readonly query: URLSearchParams;
  /** parsed JSON body (POST), else undefined */
  readonly body: unknown;
  /** present on routes that require a session */
  readonly session: Session | undefined;
  /** aborted when the client goes away */
  readonly signal: AbortSignal;
}

/** A JSON answer: a value to serialize, or JSON text built from stored JSON. */
export type Reply = { readonly status?: number; readonly json: unknown } | { readonly status?: number; readonly raw: string };

export type Auth = 'none' | 'device' | 'account';

export interface Route {
  /** the transaction name (metrics label) */
  readonly name: string;
  readonly path: string;
  readonly method: 'GET' | 'POST';
  readonly auth: Auth;
  /** the largest request body it takes (default LIMITS.maxBodyBytes) */
  readonly maxBody?: number;
  /** may answer at once (no promise) when it needs nothing it has to wait for */
  handle(ctx: PortalContext, call: Call): Reply | Promise<Reply>;
}

export function subject(call: Call): string {
  return call.session?.subject ?? fail('unauthorized', 'this transaction needs a session');
}

/** A log leaf: the signed payload bytes of an accepted object. */
export function leafOf(kind: string, env: SignedEnvelope): LeafInput {
  const data = payloadBytes(env);
  return { kind, data, hash: leafHash(data) };
}

/** The LogReceipt for a logged change: its index and a signed tree head that includes it. */
export async function receipt(ctx: PortalContext, a: Appended, extra: Record<string, unknown> = {}): Promise<Reply> {
  await ctx.tree.ensure(a.index + 1);
  return { json: { index: a.index, treeHead: ctx.tree.treeHead(), ...extra, delivered: a.items.length } };
}

/** A non-negative integer query parameter. */
export function intParam(q: URLSearchParams, name: string, dflt?: number, max = Number.MAX_SAFE_INTEGER): number {
  const v = q.get(name);
  if (v === null || v === '') return dflt ?? fail('malformed', `the query parameter ${name} is required`);
  if (!/^\d{1,16}$/.test(v)) return fail('malformed', `the query parameter ${name} must be a non-negative integer`);
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n > max) return fail('malformed', `the query parameter ${name} is too large`);
  return n;
}

/** Refuse with Retry-After when a bucket is empty. */
export function limit(l: RateLimiter, key: string, what: string, nowMs: number): void {
  const t = l.take(key, nowMs);
  if (!t.ok) fail('rate-limited', `too many ${what}; try again in ${t.retryAfterS} s`, { retryAfterS: t.retryAfterS });
}

export const json = (v: unknown): string => JSON.stringify(v);
