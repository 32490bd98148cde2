/**
 * mesh account move / mesh device move: leaving a portal for another (client/owner-move.ts).
 */
import { MeshError } from '../mesh/errors.js';
import { withOwner, type Command } from './command.js';
import { moveAccount, moveDevice } from '../client/owner-move.js';
import { WAIT_OPTIONS, waitMsOpt } from './wait.js';

export const accountMoveCommand: Command = {
  name: 'account move',
  summary: 'move your account to another portal (your devices follow with mesh device move)',
  help: `usage: mesh account move --to URL [--json]

Binds your master profile at the portal at URL, under the same account name, with your
devices and applications in a new personal profile, and makes this computer talk to that
portal from now on (its key pinned). Your master fingerprint does not change, so your devices
keep trusting you wherever you are. Then move each device: mesh device move DEVICE.

  --to URL      the new portal's base URL
  --json        print the result as JSON`,
  options: { to: { type: 'string' } },
  async run(v, pos, env) {
    if (pos.length > 0) throw new MeshError('usage', `unexpected argument "${pos[0] as string}"`);
    const to = typeof v.to === 'string' ? v.to : undefined;
    if (to === undefined || !/^https?:\/\/\S+$/.test(to)) throw new MeshError('usage', '--to URL (the new portal, http:// or https://) is required');
    await withOwner(env, async (ctx) => {
      const r = await moveAccount(ctx, to.replace(/\/$/, ''));
      env.io.out(`Moved ${r.from} to ${r.account} (portal ${r.portalId}). Now move your devices: mesh device move DEVICE.`, { from: r.from, account: r.account, portal: r.portalId });
    });
  },
};

export const deviceMoveCommand: Command = {
  name: 'device move',
  summary: 'ask a device to move to the portal your account moved to',
  help: `usage: mesh device move DEVICE [--wait S] [--json]

After mesh account move: sends DEVICE, through the portal you left, a move signed by this
computer naming your new portal and its key. The device moves once every one of its owners has
asked for the same portal (co-owners run this too), keeping its owners, configuration,
rollback state and epoch, and registers at the new portal; the same record there links the
device to your account (waited for up to --wait). If the old portal cannot be reached the
record goes to the new portal only.

  --wait S      wait up to S seconds for the device at the new portal (default 30)
  --json        print the result as JSON`,
  options: { ...WAIT_OPTIONS },
  async run(v, pos, env) {
    if (pos.length !== 1) throw new MeshError('usage', 'name one device (its name or the start of its fingerprint)');
    const waitMs = v.wait === undefined && v['wait-ms'] === undefined ? 30_000 : waitMsOpt(v);
    await withOwner(env, async (ctx) => {
      const r = await moveDevice(ctx, pos[0] as string, waitMs);
      const line = r.linked
        ? `Moved ${r.device.name} (${r.device.fingerprint}): it is registered at your new portal and linked to your account there.`
        : `Asked ${r.device.name} (${r.device.fingerprint}) to move${r.asked ? '' : ' (the old portal could not be reached)'}; it has not registered at your new portal yet (it moves once every owner has asked): run this again later.`;
      env.io.out(line, { device: { id: r.device.id, name: r.device.name }, asked: r.asked, linked: r.linked });
      if (!r.linked) process.exitCode = 4;
    });
  },
};
