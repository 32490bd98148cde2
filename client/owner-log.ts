/**
 * Auditing the portal's transparency log (RFC 9162) from the owner's side, for mesh log verify and
 * the owner app's badge:
 *
 *   1. the current signed tree head, under the portal key pinned on first contact;
 *   2. it extends the last head this owner saw (consistency proof);
 *   3. it extends every head the portal gave with a receipt, and each object this owner published
 *      is in it (inclusion proof, and the leaf's data hashes to what was published);
 *   4. it is consistent with the heads this owner's devices report in their signed statuses:
 *      a portal that shows the devices one history and the owner another (a split view) is caught.
 *
 * A failure is `log-inconsistent` or `bad-proof` with every problem listed; on success the new
 * head is kept for next time.
 */
import { b64u, equalBytes, fromB64u } from '../mesh/bytes.js';
import { MeshError, isMeshError } from '../mesh/errors.js';
import { leafHash, verifyConsistency, verifyInclusion } from '../mesh/merkle.js';
import { verifyTreeHead, type TreeHead } from '../mesh/messages.js';
import { currentMaster, deviceStatuses, hello, portalKey, save, type Ctx, type DeviceView } from './owner.js';
import { logOrigin } from '../mesh/checkpoint.js';
import { cosigners } from '../mesh/cosignature.js';
import { readHead } from '../mesh/feedlog.js';
import { witnessPolicy } from '../mesh/profiles.js';
import type { Receipt, TreeHeadRecord } from './owner-state.js';

interface Problem {
  readonly code: 'log-inconsistent' | 'bad-proof';
  readonly message: string;
}

const short = (root: Uint8Array | string): string => (typeof root === 'string' ? root : b64u(root)).slice(0, 12) + '...';

/** null when the log of `newSize` with `newRoot` extends the log of `oldSize` with `oldRoot`; else why not. */
async function extendsLog(ctx: Ctx, oldSize: number, oldRoot: Uint8Array, newSize: number, newRoot: Uint8Array): Promise<string | null> {
  if (oldSize > newSize) return `the log shrank from ${oldSize} to ${newSize} entries`;
  try {
    let proof: Uint8Array[] = [];
    if (oldSize !== 0 && oldSize !== newSize) {
      const r = await ctx.client.consistency(oldSize, newSize);
      if (r.from !== oldSize || r.to !== newSize) return `the portal answered a consistency proof for ${r.from}..${r.to} when asked for ${oldSize}..${newSize}`;
      proof = r.proof.map((p, i) => fromB64u(p, `proof[${i}]`, 32));
    }
    verifyConsistency(oldSize, newSize, oldRoot, newRoot, proof);
    return null;
  } catch (e) {
    if (isMeshError(e) && (e.code === 'bad-proof' || e.code === 'malformed' || e.code === 'not-found')) return `${e.message}`;
    throw e;
  }
}

async function checkReceipt(ctx: Ctx, r: Receipt, size: number, root: Uint8Array): Promise<string | null> {
  if (r.index >= size) return `your ${r.kind} (leaf ${r.index}) is beyond the current log of ${size} entries`;
  try {
    const want = fromB64u(r.payloadHash, 'payloadHash', 32);
    const inc = await ctx.client.inclusion(r.index, size);
    if (inc.index !== r.index || inc.size !== size) return `the portal answered an inclusion proof for leaf ${inc.index} of ${inc.size} when asked for ${r.index} of ${size}`;
    verifyInclusion(want, r.index, size, inc.proof.map((p, i) => fromB64u(p, `proof[${i}]`, 32)), root);
    const entry = await ctx.client.entry(r.index);
    if (entry.index !== r.index || !equalBytes(leafHash(fromB64u(entry.data, 'entry data')), want)) {
      return `log entry ${r.index} does not hold your ${r.kind}: the portal replaced what you published`;
    }
    return null;
  } catch (e) {
    if (isMeshError(e) && (e.code === 'bad-proof' || e.code === 'malformed' || e.code === 'not-found')) return `your ${r.kind} (leaf ${r.index}) is not proven in the log: ${e.message}`;
    throw e;
  }
}

export interface LogVerified {
  readonly th: TreeHead;
  readonly prev: TreeHeadRecord | null;
  /** receipts this owner holds (without the unproven ones dropped) */
  readonly total: number;
  readonly fresh: number[];
  readonly unproven: number[];
  readonly deviceResults: { name: string; id: string; size: number | null; consistent: boolean | null }[];
  readonly devicesNote: string | null;
  /** the cosigned checkpoint's size and its cosigners, when the master profile requires witnesses */
  readonly witnessed: { size: number; cosigners: string[] } | null;
}

/** Run the checks; throws `log-inconsistent` / `bad-proof` (with every problem) when one fails. */
export async function verifyLog(ctx: Ctx): Promise<LogVerified> {
  const { state } = ctx;
  const { portal } = await hello(ctx.client, state.portalId);
  const key = portalKey(state);
  // the devices' views first: the head fetched afterwards must include everything they saw
  let views = new Map<string, DeviceView>();
  let devicesNote: string | null = null;
  try {
    views = await deviceStatuses(ctx);
  } catch (e) {
    devicesNote = `could not read the devices' reports (${isMeshError(e) ? e.message : String(e)})`;
  }
  let th;
  try {
    th = verifyTreeHead(await ctx.client.treeHead(), key);
  } catch (e) {
    if (isMeshError(e) && (e.code === 'bad-signature' || e.code === 'unknown-signer')) {
      throw new MeshError('bad-signature', `the portal's log head is not signed by its pinned key ${state.portalId}: do not trust this portal`);
    }
    throw e;
  }
  const problems: Problem[] = [];

  // the witnesses this owner's master profile requires: the portal's checkpoint must carry their
  // cosignatures (a quorum), and be part of the same log (not-witnessed otherwise)
  const policy = witnessPolicy(currentMaster(state).payload);
  let witnessed: { size: number; cosigners: string[] } | null = null;
  if (policy.quorum > 0) {
    const note = await ctx.client.checkpoint();
    const cp = readHead(note, { name: logOrigin(portal.name), publicKey: key }, [policy]);
    witnessed = { size: cp.size, cosigners: cosigners(note, policy.witnesses) };
    const why = cp.size <= th.size ? await extendsLog(ctx, cp.size, cp.root, th.size, th.root) : 'the cosigned head is larger than the signed tree head';
    if (why !== null) problems.push({ code: 'log-inconsistent', message: `the cosigned checkpoint (${cp.size} entries) is not part of the log the portal shows you: ${why}` });
  }

  const prev = state.lastTreeHead;
  if (prev !== null) {
    const why = await extendsLog(ctx, prev.size, fromB64u(prev.root, 'root', 32), th.size, th.root);
    if (why !== null) problems.push({ code: 'log-inconsistent', message: `the log does not extend the one you saw on ${prev.created} (${prev.size} entries): ${why}` });
  }

  const heads = new Map<string, { size: number; root: string }>();
  for (const r of state.receipts) if (!r.checked && r.size !== null && r.root !== null) heads.set(`${r.size}/${r.root}`, { size: r.size, root: r.root });
  for (const h of heads.values()) {
    const why = await extendsLog(ctx, h.size, fromB64u(h.root, 'root', 32), th.size, th.root);
    if (why !== null) problems.push({ code: 'log-inconsistent', message: `the log does not extend the head the portal signed when you published (${h.size} entries): ${why}` });
  }
  const fresh: number[] = [];
  const unproven: number[] = [];
  for (let i = 0; i < state.receipts.length; i++) {
    const r = state.receipts[i] as Receipt;
    if (r.checked === true) continue;
    const why = await checkReceipt(ctx, r, th.size, th.root);
    if (why === null) fresh.push(i);
    // kept unproven by an earlier version of mesh (it now proves a receipt before keeping it):
    // the portal never signed for it, so it is no evidence against the portal; it is dropped
    else if (r.size === null) unproven.push(i);
    else problems.push({ code: 'bad-proof', message: why });
  }

  const deviceResults: { name: string; id: string; size: number | null; consistent: boolean | null }[] = [];
  for (const d of state.devices) {
    const view = views.get(d.id);
    const h = view?.status?.treeHead;
    if (h === undefined) {
      deviceResults.push({ name: d.name, id: d.id, size: null, consistent: null });
      continue;
    }
    let why: string | null;
    let root: Uint8Array | undefined;
    try {
      root = fromB64u(h.root, 'root', 32);
    } catch {
      root = undefined;
    }
    if (root === undefined) why = 'its log root is malformed';
    else if (h.size > th.size) why = `it saw a log of ${h.size} entries, but the portal now shows only ${th.size}`;
    else why = await extendsLog(ctx, h.size, root, th.size, th.root);
    deviceResults.push({ name: d.name, id: d.id, size: h.size, consistent: why === null });
    if (why !== null) problems.push({ code: 'log-inconsistent', message: `SPLIT VIEW: device ${d.name} (${d.fingerprint}) saw a log (${h.size} entries, root ${short(h.root)}) that is not part of the log the portal shows you: ${why}` });
  }

  const total = state.receipts.length - unproven.length;
  if (problems.length > 0) {
    const code = problems.some((p) => p.code === 'log-inconsistent') ? 'log-inconsistent' : 'bad-proof';
    const lines = [
      `LOG CHECK FAILED for ${state.portal} (log of ${th.size} entries, root ${short(th.root)}):`,
      ...problems.map((p) => `  - ${p.message}`),
      code === 'log-inconsistent'
        ? 'The portal is showing different histories to different parties, or rewrote its log. Do not trust it: keep the evidence (this output), and tell its operator.'
        : 'Something you published is missing from the log or was replaced. Run this again later; if it persists, do not trust this portal.',
    ];
    throw new MeshError(code, lines.join('\n'), { problems: problems.map((p) => p.message), treeHead: { size: th.size, root: b64u(th.root) } });
  }

  for (const i of fresh) state.receipts[i] = { ...(state.receipts[i] as Receipt), checked: true };
  state.receipts = state.receipts.filter((_, i) => !unproven.includes(i));
  state.lastTreeHead = { size: th.size, root: b64u(th.root), created: th.created };
  save(ctx);
  return { th, prev, total, fresh, unproven, deviceResults, devicesNote, witnessed };
}
