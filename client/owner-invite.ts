/**
 * Inviting someone to a device (mesh device invite and the owner app): a current owner lets one
 * more person claim it, once, before the invitation expires, as a co-owner or as a guest limited
 * to some settings (mesh/invite.ts). The invitation's secret is only in the link it returns.
 */
import { MeshError } from '../mesh/errors.js';
import { b64u, fromB64u } from '../mesh/bytes.js';
import { sealClaimBlob } from '../mesh/claim.js';
import { createInvite, deriveInviteSecrets, invitationUri, newInviteSecret, parseInvitePayload, type Grant, type InviteBlob } from '../mesh/invite.js';
import { deviceStatuses, keepReceipt, ownerEntry, proveReceipt, save, sync, type Ctx } from './owner.js';
import { findDevice } from './owner-devices.js';
import type { DeviceRecord } from './owner-state.js';

export interface Invited {
  /** https://PORTAL/invite#code=...: what the invitee opens or scans */
  readonly uri: string;
  readonly device: DeviceRecord;
  readonly role: 'owner' | 'guest';
  readonly expires: string;
  readonly nonce: string;
}

/** Invite someone to device `which` (its name or the start of its fingerprint) for `ttlS` seconds; with a grant, as a guest. */
export async function inviteToDevice(ctx: Ctx, which: string, o: { ttlS: number; nowMs: number; grant?: Grant }): Promise<Invited> {
  const { ttlS, nowMs, grant } = o;
  const { state } = ctx;
  await sync(ctx);
  save(ctx);
  const d = findDevice(state.devices, which);
  if (d.guest === true) throw new MeshError('not-permitted', `you are a guest on ${d.name}: a guest cannot invite anyone`);
  const view = (await deviceStatuses(ctx)).get(d.id);
  const st = view?.status ?? null;
  if (view?.profile === null || view === undefined || st === null) {
    throw new MeshError('state', `${d.name} has not reported to the portal yet: an invitation names the device's current ownership, which its signed status tells. Try again once it is online`);
  }
  if (st.epoch === undefined) throw new MeshError('state', `${d.name} runs an agent that does not report its ownership epoch; update it first`);
  const me = ownerEntry(st, state.master);
  if (me === undefined) throw new MeshError('not-owner', `${d.name} does not list you as an owner (yet): only an owner can invite`);
  if (me.role === 'guest') throw new MeshError('not-permitted', `you are a guest on ${d.name}: a guest cannot invite anyone`);

  const secret = newInviteSecret();
  const secrets = deriveInviteSecrets(secret);
  const invite = createInvite(ctx.admin.sign, secrets, {
    device: { id: d.id, enc: fromB64u(d.enc, 'device.enc', 32) },
    epoch: st.epoch,
    master: state.master,
    account: state.account,
    ttlS,
    ...(grant !== undefined ? { grant } : {}),
  });
  const p = parseInvitePayload(invite);
  const expires = new Date(nowMs + ttlS * 1000).toISOString();
  const record: InviteBlob = { profile: view.profile.envelope, endorsement: null, epoch: st.epoch, invite: p.nonce, by: state.account, role: p.role, ...(grant !== undefined ? { grant } : {}), expires, ...(d.schemas !== undefined ? { schemas: d.schemas } : {}) };
  const receipt = await proveReceipt(ctx, 'invite', invite, await ctx.client.post(d.id, invite, { id: secrets.claimId, blob: sealClaimBlob(secrets, record), portalKey: b64u(secrets.portalKey), ttl: ttlS }));
  keepReceipt(state, receipt);
  save(ctx);

  const uri = invitationUri({ portal: new URL(state.portal).host, secret, fingerprint: d.id });
  return { uri, device: d, role: p.role, expires, nonce: p.nonce };
}
