/**
 * The owner signed in on this page: the state and keys from IndexedDB and a portal client that
 * opens its own sessions with this browser's administration key, exactly as the CLI's context
 * (client/owner.ts Ctx), except that the state is kept in IndexedDB.
 */
import type { AdminKeys } from '../mesh/profiles.js';
import { PortalClient } from '../client/portal-client.js';
import type { Ctx } from '../client/owner.js';
import type { State } from '../client/owner-state.js';
import * as store from './store.js';
import { status } from './ui.js';

export interface Session {
  readonly ctx: Ctx;
  /** the master seed, when the owner chose to keep it in this browser */
  seed: Uint8Array | undefined;
}

let current: Session | undefined;

export const note = (line: string): void => status(line.trim());

export function signIn(state: State, admin: AdminKeys, seed?: Uint8Array): Session {
  current?.ctx.client.close();
  const client = new PortalClient({ url: state.portal, identity: { subject: state.account, key: admin.sign } });
  current = { ctx: { state, admin, client, ahead: new Map(), store: store.saveState, note }, seed };
  return current;
}

export function session(): Session | undefined {
  return current;
}

export function signOut(): void {
  current?.ctx.client.close();
  current = undefined;
}

/** A context for one action: the ahead-numbers are per action, as per CLI command. */
export function actionCtx(s: Session): Ctx {
  s.ctx.ahead.clear();
  return s.ctx;
}
