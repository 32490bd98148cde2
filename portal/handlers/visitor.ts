/**
 * Visitors (the Intermesh, issue 18): an owner whose account lives at another portal, bound here
 * with BindAccount's `home` (account@home, on the strength of its master profile and an
 * administration key it signs) so that it can co-own a device registered here. A visitor may claim
 * only with an invitation, publish configurations for (and read the status of) the devices that
 * list it, and publish its master profile (so revocations reach this portal); nothing else.
 */
import { fail } from '../../mesh/errors.js';
import type { PortalContext } from '../context.js';

/** Is `account` bound here as a visitor (its name is under another portal's)? */
export function isVisitor(ctx: PortalContext, account: string): boolean {
  return !account.endsWith(`@${ctx.name}`);
}

/** Refuse `what` to a visitor (`forbidden`). */
export function hostOnly(ctx: PortalContext, account: string, what: string): void {
  if (isVisitor(ctx, account)) fail('forbidden', `${account} is a visitor at ${ctx.name}: it cannot ${what} here, only at its home portal`);
}
