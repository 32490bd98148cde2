/**
 * Session, Register (a device) and BindAccount (an owner): the three ways to get a bearer token;
 * Challenge: what a session request signs to be fresh by the portal's clock (portal/sessions.ts).
 */
import { fromB64u } from '../../mesh/bytes.js';
import { fail } from '../../mesh/errors.js';
import { payloadBytes, verifySignedBy } from '../../mesh/envelope.js';
import { parseSessionPayload } from '../../mesh/messages.js';
import {
  ACCOUNT_PATTERN,
  parseMasterPayload,
  signKeyId,
  verifyDeviceProfile,
  verifyEndorsement,
  verifyMasterProfile,
  verifyPersonalProfile,
} from '../../mesh/profiles.js';
import { PATHS, parseBindAccountRequest, parseRegisterRequest, parseSessionRequest } from '../../mesh/protocol.js';
import { json, leafOf, type PortalContext, type Route } from '../context.js';
import { checkSize, RECORD_LIMITS, takeNewRecord } from '../limits.js';
import { verifyOwnerSignature } from '../sessions.js';

/** A device's push broker password, valid as long as its session, when the broker needs one from the portal. */
function push(ctx: PortalContext, device: string, expires: string): { push?: { password: string } } {
  return ctx.pushCredential === undefined ? {} : { push: { password: ctx.pushCredential(device, Date.parse(expires)) } };
}

export const sessionRoutes: readonly Route[] = [
  {
    // a fresh challenge for the next session request: freshness by this portal's clock, not the client's
    name: 'Challenge',
    path: PATHS.challenge,
    method: 'GET',
    auth: 'none',
    handle: (ctx) => ({ json: { challenge: ctx.sessions.challenge() } }),
  },
  {
    name: 'Session',
    path: PATHS.session,
    method: 'POST',
    auth: 'none',
    handle: async (ctx, call) => {
      const req = parseSessionRequest(call.body);
      const who = await ctx.sessions.verifyRequest(req.request);
      const s = await ctx.sessions.issue(who);
      ctx.log.debug('session opened', { subject: who.subject, kid: who.kid });
      return { json: { token: s.token, expires: s.expires, ...(who.kind === 'device' ? { device: who.subject, ...push(ctx, who.subject, s.expires) } : { account: who.subject }) } };
    },
  },
  {
    name: 'Register',
    path: PATHS.register,
    method: 'POST',
    auth: 'none',
    handle: async (ctx, call) => {
      const req = parseRegisterRequest(call.body);
      const profile = json(req.device);
      const endorsement = req.endorsement === null ? null : json(req.endorsement);
      checkSize(profile, RECORD_LIMITS.deviceProfileBytes, 'the device profile');
      if (endorsement !== null) checkSize(endorsement, RECORD_LIMITS.endorsementBytes, 'the endorsement');
      checkSize(req.claim.blob, RECORD_LIMITS.claimBlobChars, 'the claim blob');
      const dev = verifyDeviceProfile(req.device);
      if (req.endorsement !== null) verifyEndorsement(req.endorsement, dev.id);
      fromB64u(req.claim.portalKey, 'claim.portalKey', 32);
      // the session request proves the registrant holds the device's authentication key
      const auth = fromB64u(dev.payload.auth, 'auth', 32);
      const sp = parseSessionPayload(req.request);
      if (sp.subject !== dev.id) fail('wrong-device', `the session request is for ${sp.subject}, not the device ${dev.id}`);
      ctx.sessions.checkFresh(sp);
      verifySignedBy(req.request, auth);
      // a new device is a new record: budgeted per address and in all, and unclaimed ones are capped
      const known = (await ctx.store.getDevice(dev.id)) !== undefined;
      if (!known) {
        // several processes share a PostgreSQL database: the count is the database's, not this process's since its last sweep
        if (ctx.store.kind === 'postgres') ctx.counters.unclaimed = await ctx.store.unclaimedCount();
        if (ctx.counters.unclaimed >= ctx.limits.maxUnclaimed) {
          fail('unavailable', `this portal holds ${ctx.counters.unclaimed} devices nobody has claimed yet, its limit; try again later`, { retryAfterS: 600 });
        }
        await takeNewRecord(ctx, call.ip, 'device registrations');
      }
      await ctx.sessions.useOnce(sp);
      const outcome = await ctx.store.registerDevice({
        id: dev.id,
        profile,
        endorsement,
        claimId: req.claim.id,
        claimBlob: req.claim.blob,
        portalKey: req.claim.portalKey,
        registeredMs: ctx.now(),
      });
      if (outcome === 'created') ctx.counters.unclaimed++;
      if (outcome !== 'unchanged') ctx.log.info('device registered', { device: dev.id, outcome, model: dev.payload.model });
      const s = await ctx.sessions.issue({ kind: 'device', subject: dev.id, kid: signKeyId(auth) });
      return { json: { token: s.token, expires: s.expires, device: dev.id, ...push(ctx, dev.id, s.expires) } };
    },
  },
  {
    name: 'BindAccount',
    path: PATHS.bindAccount,
    method: 'POST',
    auth: 'none',
    handle: async (ctx, call) => {
      const req = parseBindAccountRequest(call.body);
      if (req.home === ctx.name) fail('malformed', `home names this portal (${ctx.name}): bind the account here without it`);
      // a visitor (home set) is bound under its home portal's name, and may only use devices that invite it (visitor.ts)
      const account = `${req.account}@${req.home ?? ctx.name}`;
      if (!ACCOUNT_PATTERN.test(account)) fail('malformed', `${account} is not a valid account name`);
      const masterText = json(req.master);
      const personalText = json(req.personal);
      // the master profile must be consistent with its own signing key: that key's UDF is the owner's identity
      const masterId = signKeyId(fromB64u(parseMasterPayload(payloadBytes(req.master)).sign, 'master.sign', 32));
      const master = verifyMasterProfile(req.master, masterId);
      const personal = verifyPersonalProfile(req.personal, master);
      if (personal.payload.account !== account) fail('forbidden', `the personal profile is for ${personal.payload.account}, not ${account}`);
      const sp = parseSessionPayload(req.request);
      if (sp.subject !== account) fail('forbidden', `the session request is for ${sp.subject}, not ${account}`);
      ctx.sessions.checkFresh(sp);
      const kid = verifyOwnerSignature(req.request, master);
      // a new account is a new record, with permanent log entries: size-limited and budgeted
      const held = await ctx.store.getAccount(account);
      if (held === undefined) {
        checkSize(masterText, RECORD_LIMITS.bindProfileBytes, 'the master profile');
        checkSize(personalText, RECORD_LIMITS.bindProfileBytes, 'the personal profile');
        await takeNewRecord(ctx, call.ip, 'accounts');
      } else if (held.masterId === masterId && held.masterSeq > master.payload.seq) {
        // a repeat with an older master profile than the one held: the key must be good under the held one
        // (else a key revoked since would get a session by presenting the master that still listed it)
        verifyOwnerSignature(req.request, ctx.trust.master(held));
      }
      await ctx.sessions.useOnce(sp);
      const r = await ctx.store.bindAccount(
        {
          account,
          masterId,
          master: masterText,
          masterSeq: master.payload.seq,
          personal: personalText,
          personalSeq: personal.payload.seq,
        },
        [leafOf('master', req.master), leafOf('personal', req.personal)],
        ctx.now(),
      );
      if (r.appended !== null) await ctx.tree.ensure(r.appended.index + 1);
      if (r.created) ctx.log.info(req.home === undefined ? 'account bound' : 'visitor bound', { account, master: masterId });
      const s = await ctx.sessions.issue({ kind: 'account', subject: account, kid });
      const [mi, pi] = r.appended?.indices ?? [];
      if (mi === undefined || pi === undefined) return { json: { account, master: masterId, token: s.token, expires: s.expires } };
      const treeHead = ctx.tree.treeHead();
      return { json: { account, master: masterId, token: s.token, expires: s.expires, receipts: { master: { index: mi, treeHead }, personal: { index: pi, treeHead } } } };
    },
  },
];
