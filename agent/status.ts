/**
 * The device's signed word to its owners: which owner's changes it applied, its last contact, its
 * last refusals and the tree head it holds. The status sequence is taken in the same step as the
 * state it describes (StateStore.update), never from a snapshot taken before a request.
 */
import { b64u } from '../mesh/bytes.js';
import { createStatus, verifyTreeHead, type TreeHeadRef } from '../mesh/messages.js';
import { describeGrant } from '../mesh/invite.js';
import type { SignedEnvelope } from '../mesh/envelope.js';
import type { PortalClient } from '../client/portal-client.js';
import type { DeviceFiles } from '../runtime/device-files.js';
import { isoNow, type Clock } from '../runtime/clock.js';
import type { AgentState } from './state.js';
import type { StateStore } from './store.js';
import type { Log } from './connection.js';

/** The signed status for a state. */
export function statusEnvelope(device: DeviceFiles, s: AgentState, now: string): SignedEnvelope {
  const owners = Object.values(s.owners).map((o) => ({
    master: o.master,
    account: o.account,
    apps: Object.entries(o.apps).map(([app, a]) => ({ app, seq: a.seq, appliedAt: a.appliedAt })),
    ...(o.role === 'guest' ? { role: 'guest' as const } : {}),
    since: o.claimedAt,
    ...(o.invitedBy !== undefined ? { invitedBy: o.invitedBy } : {}),
    ...(o.role === 'guest' && o.grant !== undefined ? { grant: describeGrant(o.grant).slice(0, 1024) } : {}),
  }));
  return createStatus(device.keys.sign, {
    seq: s.statusSeq,
    lastContact: s.lastContact ?? now,
    owners,
    errors: s.errors.slice(-8),
    ...(s.treeHead !== null ? { treeHead: s.treeHead } : {}),
    ...(s.epoch !== '' ? { epoch: s.epoch } : {}),
    n: s.n,
  });
}

/** Fetch the portal's tree head (verified against its pinned key), take the next status number, sign and send. */
export async function sendStatus(p: { client: PortalClient; device: DeviceFiles; store: StateStore; clock: Clock; log: Log; portalSign: Uint8Array | undefined }): Promise<number> {
  let treeHead: TreeHeadRef | undefined;
  if (p.portalSign !== undefined) {
    try {
      const th = verifyTreeHead(await p.client.treeHead(), p.portalSign);
      treeHead = { size: th.size, root: b64u(th.root) };
    } catch (e) {
      p.log('treehead-failed', { message: (e as Error).message });
    }
  }
  const s = p.store.update((cur) => ({ ...cur, statusSeq: cur.statusSeq + 1, treeHead: treeHead ?? cur.treeHead }));
  await p.client.status(statusEnvelope(p.device, s, isoNow(p.clock)));
  return s.statusSeq;
}
