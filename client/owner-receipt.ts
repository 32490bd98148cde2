/**
 * Proving what a portal answers before anything of it is kept: a receipt's signed tree head and
 * inclusion proof (the home portal's pinned key, or a visited portal's: client/owner-intermesh.ts),
 * and the `bad-answer` refusal. Apart from owner.ts so that owner-intermesh.ts can use it without
 * an import cycle.
 */
import { b64u, fromB64u } from '../mesh/bytes.js';
import { MeshError, fail, isMeshError } from '../mesh/errors.js';
import { payloadBytes, type SignedEnvelope } from '../mesh/envelope.js';
import { leafHash, verifyInclusion } from '../mesh/merkle.js';
import { verifyTreeHead } from '../mesh/messages.js';
import type { LogReceipt } from '../mesh/protocol.js';
import type { PortalClient } from './portal-client.js';
import type { DevicePortal, Receipt, State } from './owner-state.js';

/** The portal's answer cannot be believed: `bad-answer`, naming what and why (the verifier's code). */
export function badAnswer(what: string, e: MeshError, detail: Record<string, unknown> = {}): MeshError {
  return new MeshError(
    'bad-answer',
    `the portal's ${what} cannot be believed (${e.code}: ${e.message}); nothing of it was kept. Run the command again; if it keeps failing, run mesh log verify and do not trust this portal`,
    { what, cause: e.code, ...detail },
  );
}

export function portalKey(state: State): Uint8Array {
  return fromB64u(state.portalKey, 'portalKey', 32);
}

/**
 * The portal's receipt for `env`, proven before anything is kept: the tree head is signed by the
 * pinned portal key, the leaf is inside it, and an inclusion proof (one more request) shows that
 * leaf is exactly the payload we published. Otherwise `bad-answer`; a network failure on the way
 * stays `unavailable`/`timeout`. Either way the caller keeps nothing of this exchange.
 */
export async function proveReceipt(p: { client: PortalClient; state: State; portal?: DevicePortal }, kind: string, env: SignedEnvelope, r: LogReceipt): Promise<Receipt> {
  const leaf = leafHash(payloadBytes(env));
  try {
    const th = verifyTreeHead(r.treeHead, p.portal !== undefined ? fromB64u(p.portal.key, 'portal.key', 32) : portalKey(p.state));
    if (r.index >= th.size) fail('bad-proof', `leaf ${r.index} is not inside the signed log of ${th.size} entries`);
    const inc = await p.client.inclusion(r.index, th.size);
    if (inc.index !== r.index || inc.size !== th.size) fail('bad-proof', `an inclusion proof for leaf ${inc.index} of ${inc.size} came back for leaf ${r.index} of ${th.size}`);
    verifyInclusion(leaf, r.index, th.size, inc.proof.map((x, i) => fromB64u(x, `proof[${i}]`, 32)), th.root);
    return { index: r.index, kind, payloadHash: b64u(leaf), size: th.size, root: b64u(th.root) };
  } catch (e) {
    // a fault of ours (not a MeshError) or of the network is not blamed on the portal's answer
    if (!isMeshError(e) || e.code === 'unavailable' || e.code === 'timeout') throw e;
    throw badAnswer(`receipt for this ${kind}`, e, { index: r.index });
  }
}

