/** The transparency log: signed tree head, inclusion and consistency proofs (RFC 9162), entries. */
import { b64u } from '../../mesh/bytes.js';
import { fail } from '../../mesh/errors.js';
import { PATHS } from '../../mesh/protocol.js';
import { intParam, type PortalContext, type Route } from '../context.js';

/** The tree must reach `size`: read what other processes appended; refuse sizes the log has not reached. */
async function reach(ctx: PortalContext, size: number): Promise<void> {
  await ctx.tree.ensure(size);
  if (size > ctx.tree.size) fail('not-found', `the log has ${ctx.tree.size} entries, fewer than ${size}`, { size: ctx.tree.size });
}

export const logRoutes: readonly Route[] = [
  {
    name: 'TreeHead',
    path: PATHS.treeHead,
    method: 'GET',
    auth: 'none',
    handle: async (ctx) => {
      if (!ctx.store.eventsReliable) await ctx.tree.sync();
      return { json: { treeHead: ctx.tree.treeHead() } };
    },
  },
  {
    name: 'Inclusion',
    path: PATHS.inclusion,
    method: 'GET',
    auth: 'none',
    handle: async (ctx, call) => {
      const index = intParam(call.query, 'index');
      const size = intParam(call.query, 'size');
      if (index >= size) fail('malformed', 'index must be smaller than size');
      await reach(ctx, size);
      return { json: { index, size, proof: (await ctx.tree.inclusionProof(index, size)).map(b64u) } };
    },
  },
  {
    name: 'Consistency',
    path: PATHS.consistency,
    method: 'GET',
    auth: 'none',
    handle: async (ctx, call) => {
      const from = intParam(call.query, 'from');
      const to = intParam(call.query, 'to');
      if (from > to) fail('malformed', 'from must not exceed to');
      await reach(ctx, to);
      return { json: { from, to, proof: (await ctx.tree.consistencyProof(from, to)).map(b64u) } };
    },
  },
  {
    name: 'Entry',
    path: PATHS.entry,
    method: 'GET',
    auth: 'none',
    handle: async (ctx, call) => {
      const index = intParam(call.query, 'index');
      const e = await ctx.store.logEntry(index);
      if (e === undefined) fail('not-found', `the log has no entry ${index}`);
      return { json: { index: e.index, kind: e.kind, data: b64u(e.data) } };
    },
  },
];
