/** Every transaction of mesh/protocol.ts PATHS, one route each. */
import type { Route } from '../context.js';
import { accountRoutes } from './account.js';
import { claimRoutes } from './claim.js';
import { downloadRoutes } from './download.js';
import { helloRoutes } from './hello.js';
import { logRoutes } from './log.js';
import { publishRoutes } from './publish.js';
import { sessionRoutes } from './session.js';
import { statusRoutes } from './status.js';

export const ROUTES: readonly Route[] = [
  ...helloRoutes,
  ...sessionRoutes,
  ...publishRoutes,
  ...accountRoutes,
  ...downloadRoutes,
  ...claimRoutes,
  ...statusRoutes,
  ...logRoutes,
];
