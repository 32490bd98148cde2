/**
 * The Intermesh on the owner's side (issue 18): a device registered at another portal than the
 * owner's home. The owner's CLI talks to the device's portal for that device only (the claim, its
 * configuration, its status), as a visitor: the first time, it binds its master profile there
 * under its home account's name (BindAccount with `home`, portal/handlers/visitor.ts), with a
 * personal profile that lists no device, so the visited portal learns nothing of its other
 * devices. The visited portal's key is pinned at the first contact and kept in the device's record.
 */
import { b64u } from '../mesh/bytes.js';
import { MeshError, isMeshError } from '../mesh/errors.js';
import { verifyPortalProfile } from '../mesh/messages.js';
import { createPersonalProfile, verifyMasterProfile } from '../mesh/profiles.js';
import { badAnswer, proveReceipt } from './owner-receipt.js';
import { PortalClient } from './portal-client.js';
import type { Ctx } from './owner.js';
import type { DevicePortal } from './owner-state.js';

/** Is `host` (an invitation's or a label's portal) the owner's home portal? */
export function isHome(ctx: Ctx, host: string): boolean {
  return host === '' || host === new URL(ctx.state.portal).host || host === ctx.state.portalName;
}

/**
 * Run `fn` with a session at the portal `at` (a URL the first time, then the device's record): its
 * profile verified (and, when known, the key it pinned), this owner bound there as a visitor if it
 * was not yet. Refuses the owner's home portal (`usage`).
 */
export async function visit<T>(ctx: Ctx, at: string | DevicePortal, fn: (client: PortalClient, portal: DevicePortal) => Promise<T>): Promise<T> {
  const { state } = ctx;
  const url = typeof at === 'string' ? at : at.url;
  const client = new PortalClient({ url, identity: { subject: state.account, key: ctx.admin.sign } });
  try {
    const h = await client.hello();
    let profile;
    try {
      profile = verifyPortalProfile(h.portal, typeof at === 'string' ? undefined : at.id);
    } catch (e) {
      throw new MeshError(isMeshError(e, 'wrong-master') ? 'bad-key' : 'bad-signature', `the portal at ${client.url.origin} is not the one this device was claimed at, or its profile does not verify (${isMeshError(e) ? e.message : String(e)}); do not use it`);
    }
    if (profile.id === state.portalId) throw new MeshError('usage', `${url} is your home portal`);
    const portal: DevicePortal = { url, id: profile.id, key: b64u(profile.sign), name: profile.name };
    try {
      await client.openSession();
    } catch (e) {
      // not bound there yet, or bound with an older master that does not list this administration device (added at
      // home since): bind as a visitor with the master profile we hold and a personal profile that lists nothing
      if (!isMeshError(e, 'not-found') && !isMeshError(e, 'unknown-signer')) throw e;
      const at = state.account.indexOf('@');
      const personal = createPersonalProfile(ctx.admin, { master: state.master, account: state.account, seq: Math.max(1, state.personalSeq), devices: [], apps: [] });
      const bound = await client.bindAccount({ account: state.account.slice(0, at), home: state.account.slice(at + 1), master: state.masterEnvelope, personal, request: await client.sessionRequest(ctx.admin.sign, state.account) });
      if (bound.master !== state.master || bound.account !== state.account) {
        throw new MeshError('bad-answer', `the portal at ${url} bound ${bound.account} to ${bound.master}, not ${state.account} to your master ${state.master}`, { what: 'BindAccount' });
      }
      ctx.note(`bound your master profile at ${profile.name} as a visitor (${state.account})\n`);
    }
    await forwardMaster(ctx, client, portal);
    return await fn(client, portal);
  } finally {
    client.close();
  }
}

/**
 * The visited portal holds the master profile it was given when this owner was bound there, and
 * puts each newer one into the feeds of the devices that list the owner: so that a key added or
 * revoked at home counts there too, this owner's newer master profile is published there when
 * the portal shows an older one (verified first: one that does not verify is `bad-answer`).
 */
async function forwardMaster(ctx: Ctx, client: PortalClient, portal: DevicePortal): Promise<void> {
  const { state } = ctx;
  const ours = verifyMasterProfile(state.masterEnvelope, state.master);
  let theirs;
  try {
    theirs = verifyMasterProfile((await client.account()).master, state.master);
  } catch (e) {
    if (!isMeshError(e) || e.code === 'unavailable' || e.code === 'timeout') throw e;
    throw badAnswer(`master profile at ${portal.name}`, e);
  }
  if (theirs.payload.seq >= ours.payload.seq) return;
  await proveReceipt({ client, state, portal }, 'master', ours.envelope, await client.publish(ours.envelope));
  ctx.note(`sent your master profile #${ours.payload.seq} to ${portal.name} (it held #${theirs.payload.seq})\n`);
}

/** The URL of the portal an invitation names (https, or `via` when it is that portal under another scheme or path). */
export function portalUrl(host: string, via: string | undefined): string {
  if (via === undefined) return `https://${host}`;
  let u: URL;
  try {
    u = new URL(via);
  } catch {
    throw new MeshError('usage', `--portal ${via} is not a URL`);
  }
  if (u.host !== host) throw new MeshError('usage', `--portal ${via} is not the portal the invitation names (${host})`);
  return via;
}
