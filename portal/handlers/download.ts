/**
 * Download (device): its feed items after `since`, at most LIMITS.maxItemsPerDownload. With
 * `wait`, an empty answer is held until an item arrives (long poll, at most LIMITS.maxLongPollMs).
 * An unchanged poll costs a token lookup and a comparison with the cached latest item number.
 * With `log=SIZE` (the size of the log head the device holds), an answer with items also proves
 * them logged (mesh/feedlog.ts): the head as a checkpoint, the consistency proof from SIZE, and
 * each item's inclusion proof.
 */
import { b64u } from '../../mesh/bytes.js';
import { logOrigin } from '../../mesh/checkpoint.js';
import { LIMITS, PATHS } from '../../mesh/protocol.js';
import { itemJson } from '../feed.js';
import { intParam, subject, type Call, type PortalContext, type Reply, type Route } from '../context.js';

async function items(ctx: PortalContext, device: string, since: number, latest: number, logFrom: number | undefined): Promise<Reply> {
  const list = await ctx.store.feedSince(device, since, LIMITS.maxItemsPerDownload);
  const last = list[list.length - 1];
  const n = Math.max(latest, last?.n ?? 0);
  if (logFrom === undefined || list.length === 0) return { raw: `{"n":${n},"items":[${list.map((i) => itemJson(i)).join(',')}]}` };
  // every item is logged in the transaction that stored it: the head reaches the last one once this process has read it
  const need = Math.max(...list.map((i) => i.index)) + 1;
  await ctx.tree.ensure(need);
  // with witnesses, the head the answer proves against is one they cosigned (items beyond it come without proof: late)
  const head = ctx.witnessing.enabled ? await ctx.witnessing.ensure(need) : undefined;
  const p = await ctx.tree.feedProofs(logOrigin(ctx.name), list.map((i) => i.index), logFrom, head);
  const log = JSON.stringify({ treeHead: p.note, from: p.from, consistency: p.consistency.map(b64u) });
  const body = list.map((i, k) => itemJson(i, p.paths[k]?.map(b64u))).join(',');
  return { raw: `{"n":${n},"items":[${body}],"log":${log}}` };
}

export const downloadRoutes: readonly Route[] = [
  {
    name: 'Download',
    path: PATHS.download,
    method: 'GET',
    auth: 'device',
    handle: (ctx, call) => {
      const device = subject(call);
      const since = intParam(call.query, 'since', 0);
      const waitMs = Math.min(intParam(call.query, 'wait', 0), LIMITS.maxLongPollMs);
      const logFrom = call.query.has('log') ? intParam(call.query, 'log') : undefined;
      // the common case, an unchanged poll answered from memory, without a promise
      const cached = ctx.feed.cachedLatestN(device);
      if (cached !== undefined && cached <= since && (waitMs === 0 || since > cached)) return { raw: `{"n":${cached},"items":[]}` };
      return changed(ctx, call, device, since, waitMs, logFrom);
    },
  },
];

async function changed(ctx: PortalContext, call: Call, device: string, since: number, waitMs: number, logFrom: number | undefined): Promise<Reply> {
  let latest = await ctx.feed.latestN(device);
  if (latest > since) return items(ctx, device, since, latest, logFrom);
  // nothing new; a cursor beyond the feed (since > latest) is answered at once, so the device learns n
  if (waitMs === 0 || since > latest) return { raw: `{"n":${latest},"items":[]}` };
  await ctx.feed.wait(device, since, waitMs, call.signal);
  latest = await ctx.feed.latestN(device);
  if (latest > since) return items(ctx, device, since, latest, logFrom);
  return { raw: `{"n":${latest},"items":[]}` };
}
