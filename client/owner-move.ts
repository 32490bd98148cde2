/**
 * Moving to another portal (issue 18): the owner's account (`mesh account move`), then each
 * device (`mesh device move`).
 *
 * - The account: the same master profile is bound at the new portal under the same name, with
 *   a personal profile listing the same devices and applications; this computer then talks to the
 *   new portal (its key pinned) and remembers where it came from.
 * - A device: a move record signed by this owner's administration key (mesh/messages.ts
 *   createMove: the new portal's URL and key) is posted on the old portal, into the device's feed;
 *   the device moves once every owner has asked (agent/core.ts), keeping owners, configuration,
 *   rollback state and epoch, and registers at the new portal. The same record posted there links
 *   the device to this owner's account, once the device has registered (waited for).
 */
import { MeshError, isMeshError } from '../mesh/errors.js';
import { b64u, fromB64u } from '../mesh/bytes.js';
import { createMove, verifyStatus } from '../mesh/messages.js';
import { createPersonalProfile, verifyDeviceProfile } from '../mesh/profiles.js';
import { PortalClient } from './portal-client.js';
import type { DeviceStatusEntry } from '../mesh/protocol.js';
import { hello, pollUntil, save, type Ctx } from './owner.js';
import { findDevice } from './owner-devices.js';
import { deviceEntry, schemasByFingerprint, type DeviceRecord } from './owner-state.js';

/** Bind this owner's master at the portal at `url` and move this computer's profile there. */
export async function moveAccount(ctx: Ctx, url: string): Promise<{ from: string; account: string; portalId: string }> {
  const { state } = ctx;
  if (state.portal === url) throw new MeshError('usage', `your account is already at ${url}`);
  const anon = new PortalClient({ url });
  let portal;
  try {
    portal = (await hello(anon)).portal;
  } finally {
    anon.close();
  }
  if (portal.id === state.portalId) throw new MeshError('usage', `${url} is the portal your account is at (${portal.id})`);
  const name = state.account.slice(0, state.account.indexOf('@'));
  const account = `${name}@${portal.name}`;
  const personal = createPersonalProfile(ctx.admin, {
    master: state.master,
    account,
    seq: state.personalSeq + 1,
    devices: state.devices.map(deviceEntry),
    apps: Object.keys(state.apps).filter((a) => state.apps[a]?.removed !== true).sort(),
    schemas: schemasByFingerprint(state.devices),
  });
  const client = new PortalClient({ url, identity: { subject: account, key: ctx.admin.sign } });
  try {
    const bound = await client.bindAccount({ account: name, master: state.masterEnvelope, personal, request: await client.sessionRequest(ctx.admin.sign, account) });
    if (bound.master !== state.master) throw new MeshError('bad-answer', `the portal at ${url} bound ${bound.account} to ${bound.master}, not to your master ${state.master}`, { what: 'BindAccount' });
  } finally {
    client.close();
  }
  const from = state.account;
  state.movedFrom = { portal: state.portal, portalId: state.portalId, account: state.account };
  state.portal = url;
  state.portalKey = b64u(portal.sign);
  state.portalId = portal.id;
  state.portalName = portal.name;
  state.account = account;
  state.personalSeq += 1;
  // the new portal's log starts here; the old one's receipts stay proven where they are
  state.lastTreeHead = null;
  state.receipts = [];
  save(ctx);
  return { from, account, portalId: portal.id };
}

/**
 * Ask the device to move to the portal this account moved to: the move record on the old portal
 * (skipped if it cannot be reached: the device may have moved already), then on the new one once
 * the device has registered there (up to `waitMs`). Returns whether the new portal linked it.
 */
export async function moveDevice(ctx: Ctx, which: string, waitMs: number): Promise<{ device: DeviceRecord; asked: boolean; linked: boolean }> {
  const { state } = ctx;
  const from = state.movedFrom;
  if (from === undefined) throw new MeshError('state', 'move your account first (mesh account move --to URL): the device moves to the portal your account is at');
  const d = findDevice(state.devices, which);
  const old = new PortalClient({ url: from.portal, identity: { subject: from.account, key: ctx.admin.sign } });
  let asked = false;
  try {
    const epoch = epochAt(await old.deviceStatus().catch(() => []), d.id);
    const move = createMove(ctx.admin.sign, { device: d.id, master: state.master, portal: state.portal, portalId: state.portalId, ...(epoch !== undefined ? { epoch } : {}) });
    try {
      await old.post(d.id, move);
      asked = true;
    } catch (e) {
      if (!isMeshError(e, 'unavailable') && !isMeshError(e, 'timeout')) throw e;
    }
    // the new portal: linked once the device has registered there (it moves when every owner has asked)
    const linked = await pollUntil(waitMs, 250, async () => {
      try {
        await ctx.client.post(d.id, move);
        return true;
      } catch (e) {
        if (isMeshError(e, 'not-found')) return undefined;
        throw e;
      }
    });
    return { device: d, asked, linked: linked === true };
  } finally {
    old.close();
  }
}

/** The ownership epoch in the device's signed status, verified with the device's key (the device UDF names its profile); none if it does not verify. */
function epochAt(entries: readonly DeviceStatusEntry[], device: string): string | undefined {
  const e = entries.find((x) => x.device === device);
  if (e === undefined || e.status === null) return undefined;
  try {
    const profile = verifyDeviceProfile(e.profile, device);
    return verifyStatus(e.status, fromB64u(profile.payload.sign, 'sign', 32)).epoch;
  } catch {
    return undefined;
  }
}
