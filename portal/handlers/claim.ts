/**
 * ClaimLookup, Claim and Post (owner). A claim proves, with the portal-proof key the device
 * registered, that the claimant held the device's label secret; failed proofs are counted per
 * device (in the database) and past the limit every claim of that device is refused for the hour.
 */
import { fromB64u } from '../../mesh/bytes.js';
import { fail, isMeshError } from '../../mesh/errors.js';
import { peekType, verifyClaim, verifyMove, verifyRemove } from '../../mesh/messages.js';
import { verifyInvite } from '../../mesh/invite.js';
import { PATHS, parseClaimRequest, parsePostRequest, type PostRequest } from '../../mesh/protocol.js';
import { json, leafOf, limit, receipt, subject, type PortalContext, type Reply, type Route } from '../context.js';
import { checkSize, RECORD_LIMITS } from '../limits.js';
import { ownAccount } from './publish.js';
import { hostOnly } from './visitor.js';

const CLAIM_ID = /^[A-Za-z0-9_-]{1,40}$/;

export const claimRoutes: readonly Route[] = [
  {
    name: 'ClaimLookup',
    path: PATHS.claimLookup,
    method: 'GET',
    auth: 'account',
    handle: async (ctx, call) => {
      const account = subject(call);
      limit(ctx.limiters.claimLookupPerAccount, account, 'claim lookups', ctx.now());
      const id = call.query.get('id');
      if (id === null || !CLAIM_ID.test(id)) fail('malformed', 'the query parameter id must be a claim id (base64url)');
      const d = await ctx.store.getDeviceByClaimId(id);
      if (d !== undefined) {
        hostOnly(ctx, account, 'claim a device by its label');
        return { json: { blob: d.claimBlob } };
      }
      const inv = await ctx.store.getInvitation(id);
      if (inv === undefined) return fail('not-found', 'no device is registered under this claim id, and no invitation has it; is the device online?');
      if (inv.usedMs !== null) fail('invitation-used', 'this invitation has been accepted already: each works once; ask an owner for a new one');
      if (ctx.now() > inv.expiresMs) fail('invitation-expired', 'this invitation has expired; ask an owner for a new one');
      return { json: { blob: inv.blob } };
    },
  },
  {
    name: 'Claim',
    path: PATHS.claim,
    method: 'POST',
    auth: 'account',
    handle: async (ctx, call) => {
      const req = parseClaimRequest(call.body);
      const account = subject(call);
      const byLabel = await ctx.store.getDeviceByClaimId(req.id);
      const inv = byLabel === undefined ? await ctx.store.getInvitation(req.id) : undefined;
      const d = byLabel ?? (inv === undefined ? undefined : await ctx.store.getDevice(inv.device));
      if (d === undefined) return fail('not-found', 'no device is registered under this claim id, and no invitation has it');
      if (inv === undefined) hostOnly(ctx, account, 'claim a device by its label');
      const now = ctx.now();
      const { count, oldestMs } = await ctx.store.claimFailures(d.id, now - ctx.limits.claimWindowMs);
      if (count >= ctx.limits.claimAttempts) {
        const retryAfterS = Math.max(1, Math.ceil(((oldestMs ?? now) + ctx.limits.claimWindowMs - now) / 1000));
        return fail('rate-limited', `too many failed claims for this device; try again in ${retryAfterS} s`, { retryAfterS });
      }
      const a = await ownAccount(ctx, account);
      const master = ctx.trust.master(a);
      let claim;
      try {
        claim = verifyClaim(req.object, master, { key: fromB64u(inv?.portalKey ?? d.portalKey, 'portalKey', 32), which: 'portal' });
      } catch (e) {
        if (isMeshError(e, 'bad-claim-proof')) {
          await ctx.store.recordClaimFailure(d.id, now);
          ctx.log.warn('claim with a bad proof', { device: d.id, account, failures: count + 1 });
        }
        throw e;
      }
      if (claim.account !== account) fail('forbidden', `the claim is for ${claim.account}, not ${account}`);
      if (claim.device !== d.id) fail('wrong-device', `the claim names device ${claim.device}, not the device registered under this claim id`);
      if (inv !== undefined) {
        if (claim.invite === undefined) fail('malformed', 'a claim with an invitation must name the invitation');
        const r = await ctx.store.claimByInvitation({ id: inv.id, device: d.id, account, claim: json(req.object), master: a.master }, leafOf('claim', req.object), now);
        ctx.log.info('device claimed by invitation', { device: d.id, account, invitedBy: inv.account });
        return receipt(ctx, r, { device: d.id });
      }
      const r = await ctx.store.claimDevice({ device: d.id, account, claim: json(req.object), master: a.master }, leafOf('claim', req.object), now);
      ctx.log.info('device claimed', { device: d.id, account });
      return receipt(ctx, r, { device: d.id });
    },
  },
  {
    name: 'Post',
    path: PATHS.post,
    method: 'POST',
    auth: 'account',
    handle: async (ctx, call) => {
      const req = parsePostRequest(call.body);
      const account = subject(call);
      hostOnly(ctx, account, 'post removals, invitations or moves');
      const type = peekType(req.object);
      if (type === 'invite') return invite(ctx, account, req);
      if (type === 'move') return move(ctx, account, req);
      if (type !== 'remove') fail('wrong-type', `cannot post a ${type} message: only remove, invite or move`);
      if (req.invitation !== undefined) fail('malformed', 'only an invite comes with an invitation record');
      const a = await ownAccount(ctx, account);
      const p = verifyRemove(req.object, ctx.trust.master(a));
      if (p.device !== req.device) fail('wrong-device', `the removal names device ${p.device}, not ${req.device}`);
      const r = await ctx.store.removeDevice({ device: req.device, account, remove: json(req.object) }, leafOf('remove', req.object), ctx.now());
      ctx.log.info('device removed', { device: req.device, account });
      return receipt(ctx, r, { device: req.device });
    },
  },
];

/**
 * An owner moves a device to another portal (mesh device move): on this portal, the device's
 * (linked to the account); on the portal named (this one, `portalId`), the device registered here
 * since it moved is linked to the account. Logged and put in the device's feed either way.
 */
async function move(ctx: PortalContext, account: string, req: PostRequest): Promise<Reply> {
  if (req.invitation !== undefined) fail('malformed', 'only an invite comes with an invitation record');
  const a = await ownAccount(ctx, account);
  const p = verifyMove(req.object, ctx.trust.master(a));
  if (p.device !== req.device) fail('wrong-device', `the move names device ${p.device}, not ${req.device}`);
  const link = p.portalId === ctx.portalId;
  const r = await ctx.store.moveDevice({ device: req.device, account, move: json(req.object), link }, leafOf('move', req.object), ctx.now());
  ctx.log.info(link ? 'device moved here' : 'device move asked', { device: req.device, account, to: p.portal });
  return receipt(ctx, r, { device: req.device });
}

/** An owner's invitation: checked against the account's master, kept for the invitee, and put in the device's feed. */
async function invite(ctx: PortalContext, account: string, req: PostRequest): Promise<Reply> {
  if (req.invitation === undefined) return fail('malformed', 'an invite needs its invitation record (id, blob, portalKey, ttl)');
  const a = await ownAccount(ctx, account);
  const p = verifyInvite(req.object, ctx.trust.master(a));
  if (p.device !== req.device) fail('wrong-device', `the invitation names device ${p.device}, not ${req.device}`);
  checkSize(req.invitation.blob, RECORD_LIMITS.claimBlobChars, 'the invitation record');
  fromB64u(req.invitation.portalKey, 'invitation.portalKey', 32);
  const now = ctx.now();
  // the portal's own end, no later than what the inviter signed (its clock; the device keeps its own)
  const expiresMs = now + Math.min(req.invitation.ttl, p.ttl) * 1000;
  const r = await ctx.store.inviteDevice(
    { device: req.device, account, invite: json(req.object), invitation: { id: req.invitation.id, device: req.device, account, blob: req.invitation.blob, portalKey: req.invitation.portalKey, expiresMs, usedMs: null } },
    leafOf('invite', req.object),
    now,
  );
  ctx.log.info('invitation posted', { device: req.device, account, role: p.role });
  return receipt(ctx, r, { device: req.device });
}
