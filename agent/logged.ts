/**
 * The device enforces the portal's log (mesh/feedlog.ts) around the pure core: a Download answer
 * is checked against the head the device holds, the head it proves is taken, and only the items
 * proven logged go through applyItems. Nothing from the first unproven item on is applied and the
 * cursor stays before it, so the item is asked for again:
 *
 * - `late`: the portal's head does not hold it yet (another portal process wrote it). Retried
 *   soon; after LATE_GRACE_MS on the same item it is reported as `not-logged`.
 * - `not-logged`: its inclusion proof does not verify. Refused (recorded once in the status,
 *   and a `refused` event) and asked for again at the next poll: once the portal has logged the
 *   object, it is applied.
 * - a head that does not extend the held one (`log-inconsistent`) or is not signed by the pinned
 *   key: the whole answer is refused, the head is not taken.
 *
 * Pure like the core: the time is given.
 */
import { isMeshError, MeshError } from '../mesh/errors.js';
import type { Checkpoint } from '../mesh/checkpoint.js';
import { payloadBytes } from '../mesh/envelope.js';
import { parseMasterPayload, witnessPolicy } from '../mesh/profiles.js';
import { checkFeedLog, type WitnessPolicy, type FeedLogHold, type HeldHead, type LogKey } from '../mesh/feedlog.js';
import { b64u, fromB64u } from '../mesh/bytes.js';
import { verifyConsistency } from '../mesh/merkle.js';
import type { DownloadResponse } from '../mesh/protocol.js';
import { applyItems, type AgentEvent, type CoreContext, type FeedGap, type StepResult } from './core.js';
import { withError, type AgentState } from './state.js';

/** how long an item may stay `late` before the device reports it as not logged */
export const LATE_GRACE_MS = 30_000;

export interface LoggedResult extends StepResult {
  readonly gap?: FeedGap;
  /** the first item not applied for want of proof */
  readonly hold?: FeedLogHold;
}

export interface LateItem {
  readonly n: number;
  readonly sinceMs: number;
}

/**
 * Check the answer's log, take its head, apply what it proves. `late` is the item held as late
 * before this answer (if any), `nowMs` the device's clock: an item late for LATE_GRACE_MS is
 * reported `not-logged`.
 */
export function applyLogged(s0: AgentState, r: DownloadResponse, ctx: CoreContext, key: LogKey, late: LateItem | undefined, nowMs: number): LoggedResult {
  const items = r.items.filter((i) => i.n > s0.n);
  if (items.length === 0) return { state: s0, events: [], configChanged: false };
  let v;
  try {
    v = checkFeedLog(items, r.log, heldOf(s0), key, witnessPolicies(s0));
  } catch (e) {
    const err = isMeshError(e) ? e : new MeshError('log-inconsistent', (e as Error).message);
    const first = Math.min(...items.map((i) => i.n));
    return refuse(s0, first, items.find((i) => i.n === first)?.kind ?? 'feed', err.code, `the portal's log head was refused: ${err.message}`, ctx.now);
  }
  const s1 = sameHead(s0.treeHead, v.head) || v.head.size === 0 ? s0 : { ...s0, treeHead: v.head };
  const applied = applyItems(s1, v.proven, ctx);
  if (v.hold === undefined || applied.gap !== undefined || applied.state.n + 1 !== v.hold.n) return applied;
  const hold = v.hold;
  const overdue = hold.code === 'late' && late !== undefined && late.n === hold.n && nowMs - late.sinceMs >= LATE_GRACE_MS;
  if (hold.code === 'late' && !overdue) return { ...applied, hold };
  const kind = items.find((i) => i.n === hold.n)?.kind ?? 'feed';
  const message = overdue ? `${hold.message}, for ${Math.round((nowMs - (late as LateItem).sinceMs) / 1000)} s: not applied until the portal proves it logged` : `${hold.message}: not applied`;
  const refused = refuse(applied.state, hold.n, kind, 'not-logged', message, ctx.now);
  return { ...refused, events: [...applied.events, ...refused.events], configChanged: applied.configChanged, hold };
}

/** A refusal of item `n` (not applied, the cursor stays before it): recorded once while it lasts. */
function refuse(s: AgentState, n: number, kind: string, code: string, message: string, now: string): StepResult {
  const last = s.errors.at(-1);
  const ev: AgentEvent = { type: 'refused', n, kind, code, message };
  if (last !== undefined && last.code === code && last.message === message) return { state: s, events: [], configChanged: false };
  return { state: withError(s, { code, message, at: now }), events: [ev], configChanged: false };
}

/**
 * What the device's owners require of a log head: each owner's witnesses and quorum, from the
 * master profile the device holds (a guest's requirements are not the device's). An owner whose
 * profile the device cannot read requires nothing more than the portal's signature.
 */
export function witnessPolicies(s: AgentState): WitnessPolicy[] {
  const out: WitnessPolicy[] = [];
  for (const o of Object.values(s.owners)) {
    if (o.role === 'guest') continue;
    try {
      const p = witnessPolicy(parseMasterPayload(payloadBytes(o.masterEnvelope)));
      if (p.quorum > 0) out.push(p);
    } catch {
      // a profile the core accepted parses; nothing to require otherwise
    }
  }
  return out;
}

function heldOf(s: AgentState): HeldHead | null {
  return s.treeHead === null ? null : s.treeHead;
}

function sameHead(a: HeldHead | null, b: HeldHead): boolean {
  return a !== null && a.size === b.size && a.root === b.root;
}

/**
 * A head heard outside the feed (the status's refresh): taken if it extends the held one
 * (`consistency` from the held size to it), kept out if older but consistent (a portal process
 * behind), refused (`log-inconsistent`) otherwise. `older` proves an older head a prefix of the
 * held one (`proof` is then the consistency proof from its size to the held size).
 */
export function nextHead(held: HeldHead | null, cp: Checkpoint, proof: readonly string[]): HeldHead {
  const head: HeldHead = { size: cp.size, root: b64u(cp.root) };
  if (held === null || held.size === 0) return head;
  const heldRoot = fromB64u(held.root, 'held root', 32);
  const [from, to, oldRoot, newRoot] = cp.size >= held.size ? [held.size, cp.size, heldRoot, cp.root] : [cp.size, held.size, cp.root, heldRoot];
  try {
    verifyConsistency(from, to, oldRoot, newRoot, proof.map((h, i) => fromB64u(h, `consistency[${i}]`, 32)));
  } catch (e) {
    if (isMeshError(e, 'bad-proof')) throw new MeshError('log-inconsistent', `the portal's head of ${cp.size} leaves and the head of ${held.size} leaves this device holds are not one history (split view or rewritten log): ${e.message}`);
    throw e;
  }
  return cp.size > held.size ? head : held;
}
