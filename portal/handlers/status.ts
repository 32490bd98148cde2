/**
 * Status (device reports its signed status; kept once the device has been claimed) and DeviceStatus
 * (owner reads its devices' reports).
 */
import { fail } from '../../mesh/errors.js';
import { verifyStatus } from '../../mesh/messages.js';
import { PATHS, parseStatusRequest } from '../../mesh/protocol.js';
import { json, subject, type Route } from '../context.js';
import { checkSize, RECORD_LIMITS } from '../limits.js';

export const statusRoutes: readonly Route[] = [
  {
    name: 'Status',
    path: PATHS.status,
    method: 'POST',
    auth: 'device',
    handle: async (ctx, call) => {
      const req = parseStatusRequest(call.body);
      const device = subject(call);
      const d = (await ctx.store.getDevice(device)) ?? fail('not-found', `device ${device} is not registered here`);
      const text = json(req.object);
      checkSize(text, RECORD_LIMITS.statusBytes, 'the status');
      const p = verifyStatus(req.object, ctx.trust.deviceKeys(d).sign);
      // nobody may read the status of a device never claimed (DeviceStatus lists claimed ones): it is not kept,
      // so a self-made device costs its registration and nothing more; once claimed, its next status is
      if ((await ctx.feed.latestN(device)) === 0) return { json: { ok: true } };
      const stored = await ctx.store.putStatus(device, { seq: p.seq, status: text }, ctx.now());
      if (!stored) ctx.log.debug('older status ignored', { device, seq: p.seq });
      else if (p.epoch !== undefined && (await ctx.store.noteEpoch(device, p.epoch, Math.min(p.n ?? 0, await ctx.feed.latestN(device))))) {
        // a factory reset: what the device read of the ended epoch is dropped, and the invitations it had
        ctx.log.info('device reset: new ownership epoch', { device, upTo: p.n ?? 0 });
      }
      return { json: { ok: true } };
    },
  },
  {
    name: 'DeviceStatus',
    path: PATHS.deviceStatus,
    method: 'GET',
    auth: 'account',
    handle: async (ctx, call) => {
      const rows = await ctx.store.deviceStatuses(subject(call));
      const devices = rows.map(
        (r) => `{"device":${json(r.device)},"profile":${r.profile},"status":${r.status ?? 'null'},"received":${r.receivedMs === null ? 'null' : json(new Date(r.receivedMs).toISOString())}}`,
      );
      return { raw: `{"devices":[${devices.join(',')}]}` };
    },
  },
];
