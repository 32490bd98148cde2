/**
 * Publish (owner): a new master profile (same master key, higher seq: how administration keys are
 * added and revoked), a personal profile, or an application profile. Each is verified against the
 * account's master before it is stored and logged; masters and application profiles go to feeds.
 */
import { fail } from '../../mesh/errors.js';
import { peekType } from '../../mesh/messages.js';
import { verifyMasterProfile, verifyPersonalProfile } from '../../mesh/profiles.js';
import { MAX_PUBLISH_BYTES, PATHS, parsePublishRequest } from '../../mesh/protocol.js';
import { json, leafOf, receipt, subject, type PortalContext, type Route } from '../context.js';
import type { AccountRecord } from '../storage/types.js';
import { hostOnly } from './visitor.js';

export async function ownAccount(ctx: PortalContext, account: string): Promise<AccountRecord> {
  return (await ctx.store.getAccount(account)) ?? fail('not-found', `no account ${account} here`);
}

export const publishRoutes: readonly Route[] = [
  {
    name: 'Publish',
    path: PATHS.publish,
    method: 'POST',
    auth: 'account',
    maxBody: MAX_PUBLISH_BYTES,
    handle: async (ctx, call) => {
      const req = parsePublishRequest(call.body);
      const account = subject(call);
      const a = await ownAccount(ctx, account);
      const now = ctx.now();
      const type = peekType(req.object);
      switch (type) {
        case 'master': {
          const m = verifyMasterProfile(req.object, a.masterId);
          const r = await ctx.store.publishMaster(account, { master: json(req.object), seq: m.payload.seq, revoked: m.payload.revoked }, leafOf('master', req.object), now);
          ctx.log.info('master profile published', { account, seq: m.payload.seq, devices: r.items.length, revoked: m.payload.revoked.length });
          return receipt(ctx, r);
        }
        case 'personal': {
          hostOnly(ctx, account, 'publish a personal profile');
          const p = verifyPersonalProfile(req.object, ctx.trust.master(a));
          if (p.payload.account !== account) fail('forbidden', `the personal profile is for ${p.payload.account}, not ${account}`);
          const r = await ctx.store.publishPersonal(account, { personal: json(req.object), seq: p.payload.seq }, leafOf('personal', req.object), now);
          ctx.log.debug('personal profile published', { account, seq: p.payload.seq });
          return receipt(ctx, r);
        }
        case 'application': {
          // verified (signature chain to the account's master) off the event loop when it can be
          const p = await ctx.verifier.application(req.object, a);
          const r = await ctx.store.publishApplication(account, { app: p.app, seq: p.seq, object: p.text, latest: p.latest, targets: p.devices, ...(p.parts !== undefined ? { parts: p.parts } : {}) }, p.leaf, now);
          ctx.log.debug('application profile published', { account, app: p.app, seq: p.seq, devices: r.items.length });
          return receipt(ctx, r);
        }
        default:
          return fail('wrong-type', `cannot publish a ${type} object: publish a master, personal or application profile`);
      }
    },
  },
];
