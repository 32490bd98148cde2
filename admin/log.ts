/**
 * mesh log verify: audit the portal's transparency log (RFC 9162) from the owner's side
 * (client/owner-log.ts runs the checks).
 *
 *   1. the current signed tree head, under the portal key pinned on first contact;
 *   2. it extends the last head this owner saw (consistency proof);
 *   3. it extends every head the portal gave with a receipt, and each object this owner published
 *      is in it (inclusion proof, and the leaf's data hashes to what was published);
 *   4. it is consistent with the heads this owner's devices report in their signed statuses:
 *      a portal that shows the devices one history and the owner another (a split view) is caught.
 */
import { b64u } from '../mesh/bytes.js';
import { MeshError } from '../mesh/errors.js';
import { withOwner, type Command } from './command.js';
import { verifyLog } from '../client/owner-log.js';

const short = (root: Uint8Array | string): string => (typeof root === 'string' ? root : b64u(root)).slice(0, 12) + '...';

export const logVerifyCommand: Command = {
  name: 'log verify',
  summary: "audit the portal's log: nothing rewritten, your objects present, no split view",
  help: `usage: mesh log verify [--json]

Checks the portal's public log, with the portal key pinned when this profile was made:
  - the log only grew since you last checked (nothing removed or rewritten);
  - everything you published (claims, removals, profiles, configurations) is in it;
  - the history your devices report having seen is the same one you see. If the portal
    shows your devices a different history than you (a split view), this fails with
    log-inconsistent: stop trusting that portal.
On success the new log head is remembered for next time.`,
  options: {},
  async run(_v, pos, env) {
    if (pos.length > 0) throw new MeshError('usage', `unexpected argument "${pos[0] as string}"`);
    await withOwner(env, async (ctx) => {
      const { th, prev, total, fresh, unproven, deviceResults, devicesNote } = await verifyLog(ctx);
      const seen = deviceResults.filter((d) => d.consistent === true);
      const lines = [
        `Log verified: the portal's log has ${th.size} entries (root ${short(th.root)}, signed ${th.created} by the pinned portal key).`,
        prev === null ? '  first check: this head is remembered for next time' : `  it extends the log you saw on ${prev.created} (${prev.size} entries): nothing was removed or rewritten`,
        total === 0 ? '  you have published nothing yet that the portal gave a receipt for' : `  all ${total} objects you published are in it (${fresh.length === total ? 'all checked now' : `${fresh.length} checked now, the rest on earlier checks`})`,
        seen.length > 0 ? `  ${seen.length} device${seen.length === 1 ? '' : 's'} saw the same history: ${seen.map((d) => `${d.name} (${d.size ?? 0} entries)`).join(', ')}` : '  no device has reported a log head yet',
        ...(devicesNote !== null ? [`  note: ${devicesNote}`] : []),
        ...(unproven.length > 0 ? [`  note: dropped ${unproven.length} receipt${unproven.length === 1 ? '' : 's'} an earlier version of mesh kept without proof (not signed for by the portal)`] : []),
        '  verdict: OK, no split view detected',
      ];
      env.io.out(lines.join('\n'), {
        ok: true,
        treeHead: { size: th.size, root: b64u(th.root), created: th.created },
        previous: prev,
        receipts: { total, checkedNow: fresh.length, droppedUnproven: unproven.length },
        devices: deviceResults,
      });
    });
  },
};
