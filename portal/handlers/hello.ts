/** Hello: who this portal is, its current tree head, where to hear pushes, and its limits. */
import { LIMITS, PATHS, PROTOCOL_VERSION } from '../../mesh/protocol.js';
import type { Route } from '../context.js';

export const helloRoutes: readonly Route[] = [
  {
    name: 'Hello',
    path: PATHS.hello,
    method: 'GET',
    auth: 'none',
    handle: async (ctx) => {
      if (!ctx.store.eventsReliable) await ctx.tree.sync();
      return { json: { version: PROTOCOL_VERSION, portal: ctx.profile, treeHead: ctx.tree.treeHead(), mqtt: ctx.mqttUrl, limits: LIMITS } };
    },
  },
];
