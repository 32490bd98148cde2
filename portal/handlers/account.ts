/**
 * Account (owner reads back its profiles and pending joins) and Join (a would-be administration
 * device asks to join an account; unauthenticated, so rate-limited per IP and per account).
 */
import { fail } from '../../mesh/errors.js';
import { parseJoin } from '../../mesh/messages.js';
import { PATHS, parseJoinRequest } from '../../mesh/protocol.js';
import { json, limit, subject, type Route } from '../context.js';
import { checkSize, RECORD_LIMITS, takeGlobal } from '../limits.js';
import { ownAccount } from './publish.js';
import { isVisitor } from './visitor.js';

export const accountRoutes: readonly Route[] = [
  {
    name: 'Account',
    path: PATHS.account,
    method: 'GET',
    auth: 'account',
    handle: async (ctx, call) => {
      const account = subject(call);
      const a = await ownAccount(ctx, account);
      const [apps, joins] = await Promise.all([ctx.store.applications(account), ctx.store.joins(account, ctx.now() - ctx.limits.joinMaxAgeMs)]);
      const applications = Object.entries(apps)
        .map(([k, v]) => `${json(k)}:${v}`)
        .join(',');
      const pending = joins.slice(-ctx.limits.maxJoinsPerAccount).join(',');
      return { raw: `{"account":${json(account)},"master":${a.master},"personal":${a.personal ?? 'null'},"applications":{${applications}},"joins":[${pending}]}` };
    },
  },
  {
    name: 'Join',
    path: PATHS.join,
    method: 'POST',
    auth: 'none',
    handle: async (ctx, call) => {
      const now = ctx.now();
      limit(ctx.limiters.joinPerIp, call.ip, 'join requests from this address', now);
      const req = parseJoinRequest(call.body);
      const text = json(req.object);
      checkSize(text, RECORD_LIMITS.joinBytes, 'the join request');
      const p = parseJoin(req.object);
      limit(ctx.limiters.joinPerAccount, p.account, `join requests for ${p.account}`, now);
      if (isVisitor(ctx, p.account) || (await ctx.store.getAccount(p.account)) === undefined) fail('not-found', `no account ${p.account} here`);
      await takeGlobal(ctx, 'join requests');
      await ctx.store.addJoin(p.account, { nonce: p.nonce, object: text }, now, ctx.limits.maxJoinsPerAccount, now - ctx.limits.joinMaxAgeMs);
      ctx.log.info('join request', { account: p.account, name: p.name });
      return { json: { ok: true } };
    },
  },
];
