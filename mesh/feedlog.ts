/**
 * What a device checks before it applies anything from its feed: that the portal logged it.
 *
 * A Download answer asked with `log=SIZE` (the size of the head the device holds) carries the
 * portal's newest head as a C2SP checkpoint signed with the portal's key, the consistency proof
 * from the device's head to it, and for each item the inclusion proof (`path`) of the object's
 * log leaf (SHA-256(0x00 || the object's signed payload bytes), RFC 9162) in that head.
 *
 * - The checkpoint must be signed by the pinned key under the log's origin (else its code:
 *   `unknown-signer`, `bad-signature`, `malformed`), and carry the cosignatures the device's
 *   owners require (each owner's witnesses and quorum, from its master profile: `not-witnessed`).
 * - A head smaller than the one held is not taken, and nothing is proven by it (`late`: a
 *   portal process behind the others). One of the same size must have the same root; a larger
 *   one must extend the held head (consistency proof from `from` = the held size). Otherwise the
 *   portal shows this device a history other than the one it showed before: `log-inconsistent`.
 * - Items are taken in feed order while each one's inclusion proof verifies. The first item
 *   whose leaf is beyond the head (or an answer with no log at all) stops there as `late` (the
 *   portal has not yet a head that holds it: retried); the first whose proof is missing or does
 *   not verify stops there as `not-logged` (the portal shows the device an object no auditor of
 *   its log will see).
 *
 * Pure: no I/O, no clock. The agent's side (what is held, retried and reported) is agent/logged.ts.
 */
import { b64u, fromB64u } from './bytes.js';
import { verifyCheckpoint, type Checkpoint } from './checkpoint.js';
import { requireCosignatures, type NoteKey } from './cosignature.js';
import { payloadBytes } from './envelope.js';
import { fail, isMeshError } from './errors.js';
import { leafHash, verifyConsistency, verifyInclusion } from './merkle.js';
import type { FeedItem, FeedLog } from './protocol.js';

/** The key a log's checkpoints are signed with, and the name they are signed under (the log's origin). */
export interface LogKey {
  readonly name: string;
  readonly publicKey: Uint8Array;
}

/** A tree head as a device holds it (the root base64url, as in its status). */
export interface HeldHead {
  readonly size: number;
  readonly root: string;
}

export interface FeedLogHold {
  /** the first item not proven: nothing from it on is applied */
  readonly n: number;
  readonly code: 'late' | 'not-logged';
  readonly message: string;
}

export interface FeedLogVerdict {
  /** the head to hold from now on (the held one if the answer's is not newer) */
  readonly head: HeldHead;
  /** the items proven logged, in feed order, up to the first that is not */
  readonly proven: readonly FeedItem[];
  readonly hold?: FeedLogHold;
}

/**
 * Check a Download answer's log against the head the device holds. Throws (`log-inconsistent`,
 * or the checkpoint's own code) when the answer's head cannot be believed; otherwise returns the
 * proven prefix of `items` (taken in feed order) and why the rest, if any, is held.
 */
export function checkFeedLog(items: readonly FeedItem[], log: FeedLog | undefined, held: HeldHead | null, key: LogKey, policy: readonly WitnessPolicy[] = []): FeedLogVerdict {
  const sorted = [...items].sort((a, b) => a.n - b.n);
  if (log === undefined) {
    const first = sorted[0];
    const base = { head: held ?? { size: 0, root: '' }, proven: [] };
    return first === undefined ? base : { ...base, hold: { n: first.n, code: 'late', message: `item ${first.n} came without a log head to prove it` } };
  }
  const cp = readHead(log.treeHead, key, policy);
  const heldRoot = held === null || held.size === 0 ? null : fromB64u(held.root, 'held root', 32);
  if (held !== null && heldRoot !== null && cp.size < held.size) {
    // an older head: it proves nothing the device may rely on (the held head is newer)
    const first = sorted[0];
    const base = { head: held, proven: [] };
    return first === undefined ? base : { ...base, hold: { n: first.n, code: 'late', message: `the portal's head (${cp.size}) is older than the one this device holds (${held.size})` } };
  }
  if (held !== null && heldRoot !== null) {
    if (log.from !== held.size) fail('log-inconsistent', `the portal proved its head from ${log.from} leaves, not from the ${held.size} of the head this device holds`);
    try {
      verifyConsistency(held.size, cp.size, heldRoot, cp.root, log.consistency.map((h, i) => fromB64u(h, `consistency[${i}]`, 32)));
    } catch (e) {
      if (isMeshError(e, 'bad-proof')) fail('log-inconsistent', `the portal's head of ${cp.size} leaves does not extend the head of ${held.size} leaves this device holds (split view or rewritten log): ${e.message}`);
      throw e;
    }
  }
  const head: HeldHead = { size: cp.size, root: b64u(cp.root) };
  const proven: FeedItem[] = [];
  for (const item of sorted) {
    if (item.index >= cp.size) {
      return { head, proven, hold: { n: item.n, code: 'late', message: `item ${item.n} (log entry ${item.index}) is not in the portal's head of ${cp.size} leaves yet` } };
    }
    try {
      if (item.path === undefined) fail('bad-proof', 'no inclusion proof given');
      verifyInclusion(leafHash(payloadBytes(item.object)), item.index, cp.size, item.path.map((h, i) => fromB64u(h, `path[${i}]`, 32)), cp.root);
    } catch (e) {
      if (!isMeshError(e)) throw e;
      return { head, proven, hold: { n: item.n, code: 'not-logged', message: `item ${item.n} (${item.kind}) is not in the portal's log: its proof for entry ${item.index} of ${cp.size} does not verify (${e.message})` } };
    }
    proven.push(item);
  }
  return { head, proven };
}

/**
 * What an owner requires of a head: cosignatures by at least `quorum` of `witnesses` (from the
 * owner's master profile: mesh/profiles.ts witnessPolicy).
 */
export interface WitnessPolicy {
  readonly witnesses: readonly NoteKey[];
  readonly quorum: number;
}

/**
 * The checkpoint, signed by `key` under its name, of the log of that name, and cosigned as every
 * policy requires (`not-witnessed` otherwise).
 */
export function readHead(note: string, key: LogKey, policy: readonly WitnessPolicy[] = []): Checkpoint {
  const cp = verifyCheckpoint(note, key);
  if (cp.origin !== key.name) fail('unknown-signer', `the checkpoint is of the log "${cp.origin.slice(0, 80)}", not "${key.name}"`);
  for (const p of policy) requireCosignatures(note, p.witnesses, p.quorum);
  return cp;
}
