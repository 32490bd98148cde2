/**
 * The device's signed word to its owners: which owner's changes it applied, its last contact, its
 * last refusals and the tree head it holds. The status sequence is taken in the same step as the
 * state it describes (StateStore.update), never from a snapshot taken before a request.
 */
import { createStatus, MAX_GUEST_PARTS, MAX_PRIVATE_STATUS_BYTES, sealPrivateStatus, type PrivateStatus, type StatusError, type TreeHeadRef } from '../mesh/messages.js';
import { readHead, type LogKey } from '../mesh/feedlog.js';
import { isMeshError } from '../mesh/errors.js';
import { nextHead, witnessPolicies } from './logged.js';
import { withError } from './state.js';
import type { Grant } from '../mesh/invite.js';
import { MESH_ERRORS } from '../mesh/errors.js';
import { fromB64u } from '../mesh/bytes.js';
import { payloadBytes, type EncryptedEnvelope } from '../mesh/envelope.js';
import { parseMasterPayload } from '../mesh/profiles.js';
import type { Json } from '../mesh/json.js';
import { effective } from './core.js';
import type { Owner } from './state.js';
import type { SignedEnvelope } from '../mesh/envelope.js';
import type { PortalClient } from '../client/portal-client.js';
import type { DeviceFiles } from '../runtime/device-files.js';
import { isoNow, type Clock } from '../runtime/clock.js';
import type { AgentState } from './state.js';
import type { StateStore } from './store.js';
import type { Log } from './connection.js';

/**
 * The signed status for a state. The plaintext carries who owns the device, sequence numbers,
 * codes and times; what the settings are (effective values and who set them, the text of
 * refusals, guests' grants) is in `private`, encrypted to the owners' administration keys, and
 * for each guest a part with only what its grant covers and its own refusals.
 */
export function statusEnvelope(device: DeviceFiles, s: AgentState, now: string): SignedEnvelope {
  const owners = Object.values(s.owners).map((o) => ({
    master: o.master,
    account: o.account,
    apps: Object.entries(o.apps).map(([app, a]) => ({ app, seq: a.seq, appliedAt: a.appliedAt })),
    ...(o.role === 'guest' ? { role: 'guest' as const } : {}),
    since: o.claimedAt,
    ...(o.invitedBy !== undefined ? { invitedBy: o.invitedBy } : {}),
  }));
  const errors = s.errors.slice(-8);
  return createStatus(device.keys.sign, {
    seq: s.statusSeq,
    lastContact: s.lastContact ?? now,
    owners,
    // the code, the numbers and the time; the message (which may name a setting or a value) is private
    errors: errors.map((e) => ({ ...e, message: meaningOf(e.code) })),
    ...(s.treeHead !== null ? { treeHead: s.treeHead } : {}),
    ...(s.epoch !== '' ? { epoch: s.epoch } : {}),
    n: s.n,
    private: privateParts(s, errors),
    ...(s.pending !== null && s.pending !== undefined ? { pending: { master: s.pending.master, app: s.pending.app, seq: s.pending.seq } } : {}),
  });
}

function meaningOf(code: string): string {
  return MESH_ERRORS.find((e) => e.code === code)?.meaning ?? code;
}

/** administration devices per owner that can read the private part (the newest), and readers in all: bounds the status's size */
const READERS_PER_OWNER = 4;
const MAX_READERS = 24;

/** The administration encryption keys of an owner's master profile as the device holds it (the newest READERS_PER_OWNER). */
function readersOf(o: Owner): Uint8Array[] {
  try {
    const admins = [...parseMasterPayload(payloadBytes(o.masterEnvelope)).admins].sort((a, b) => (a.added < b.added ? -1 : a.added > b.added ? 1 : 0));
    return admins.slice(-READERS_PER_OWNER).map((a) => fromB64u(a.enc, 'enc', 32));
  } catch {
    return [];
  }
}

/** Within `max` bytes: the effective values go first, then the refusals' texts are cut short. */
function fit(p: PrivateStatus, max: number): PrivateStatus {
  const size = (x: PrivateStatus): number => Buffer.byteLength(JSON.stringify(x));
  if (size(p) <= max) return p;
  const lean: PrivateStatus = { ...p, effective: {}, truncated: true };
  if (size(lean) <= max) return lean;
  return { ...lean, errors: lean.errors.slice(-4).map((e) => ({ ...e, message: e.message.slice(0, 160) })) };
}

function privateParts(s: AgentState, errors: readonly StatusError[]): EncryptedEnvelope[] {
  const all = Object.values(s.owners);
  const full = effective(s);
  const view = (keep: (app: string, key: string) => boolean): PrivateStatus['effective'] => {
    const out: Record<string, Record<string, { value: Json; owner: string; master: string; n: number; at: string }>> = {};
    for (const [app, e] of Object.entries(full)) {
      for (const [k, v] of Object.entries(e.values)) {
        if (!keep(app, k)) continue;
        const src = e.sources[k];
        (out[app] ??= {})[k] = { value: v, owner: src?.owner ?? '', master: src?.master ?? '', n: src?.n ?? 0, at: src?.at ?? '1970-01-01T00:00:00.000Z' };
      }
    }
    return out;
  };
  const grants: Record<string, Grant> = {};
  for (const o of all) if (o.role === 'guest' && o.grant !== undefined) grants[o.master] = o.grant;
  const parts: EncryptedEnvelope[] = [];
  const ownerKeys = all.filter((o) => o.role !== 'guest').flatMap(readersOf).slice(0, MAX_READERS);
  if (ownerKeys.length > 0) parts.push(sealPrivateStatus(fit({ effective: view(() => true), grants, errors }, MAX_PRIVATE_STATUS_BYTES), ownerKeys));
  for (const g of all.filter((o) => o.role === 'guest').slice(0, MAX_GUEST_PARTS)) {
    const keys = readersOf(g);
    if (keys.length === 0 || g.grant === undefined) continue;
    const grant = g.grant;
    const mine = view((app, key) => grant.scope.some((x) => x.app === app && (x.keys === undefined || x.keys.includes(key))));
    parts.push(sealPrivateStatus(fit({ effective: mine, grants: { [g.master]: grant }, errors: errors.filter((e) => e.master === g.master) }, MAX_PRIVATE_STATUS_BYTES / 4), keys));
  }
  return parts;
}

/**
 * Refresh the head the device holds from the portal's checkpoint (signed by the pinned key), taken
 * only with a consistency proof from the held one (agent/logged.ts nextHead); take the next status
 * number, sign and send. A head that is not one history with the held one is refused
 * (`log-inconsistent`, in the status) and the held one kept: the device catches a split view.
 */
export async function sendStatus(p: { client: PortalClient; device: DeviceFiles; store: StateStore; clock: Clock; log: Log; logKey: LogKey | undefined }): Promise<number> {
  let treeHead: TreeHeadRef | undefined;
  let refusal: StatusError | undefined;
  const held = p.store.state.treeHead;
  if (p.logKey !== undefined) {
    try {
      const cp = readHead(await p.client.checkpoint(), p.logKey, witnessPolicies(p.store.state));
      const proof = held !== null && held.size > 0 && cp.size !== held.size ? (await p.client.consistency(Math.min(cp.size, held.size), Math.max(cp.size, held.size))).proof : [];
      treeHead = nextHead(held, cp, proof);
    } catch (e) {
      p.log('treehead-failed', { message: (e as Error).message });
      if (isMeshError(e, 'log-inconsistent') || isMeshError(e, 'bad-signature') || isMeshError(e, 'unknown-signer') || isMeshError(e, 'not-witnessed')) refusal = { code: e.code, message: `the portal's checkpoint (GET /checkpoint) was refused: ${e.message}`.slice(0, 1000), at: isoNow(p.clock) };
    }
  }
  const s = p.store.update((cur) => {
    // the feed may have moved the head meanwhile: a refresh read against an older head is dropped
    const next = treeHead !== undefined && cur.treeHead === held ? treeHead : cur.treeHead;
    const last = cur.errors.at(-1);
    const base = refusal !== undefined && !(last?.code === refusal.code && last.message === refusal.message) ? withError(cur, refusal) : cur;
    return { ...base, statusSeq: cur.statusSeq + 1, treeHead: next };
  });
  await p.client.status(statusEnvelope(p.device, s, isoNow(p.clock)));
  return s.statusSeq;
}
