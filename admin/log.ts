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
import { intOpt, listOpt, masterKeyFor, strOpt, withOwner, type Command } from './command.js';
import { parseVkey } from '../mesh/cosignature.js';
import { createMasterProfile, MAX_WITNESSES } from '../mesh/profiles.js';
import { currentMaster, save, sync } from '../client/owner.js';
import { publishMaster } from '../client/owner-admins.js';

const SHARE_HELP = '  --share S       one of your recovery shares (repeat for as many as your quorum); not needed when the master key is kept';
import { verifyLog } from '../client/owner-log.js';

const short = (root: Uint8Array | string): string => (typeof root === 'string' ? root : b64u(root)).slice(0, 12) + '...';

export const logVerifyCommand: Command = {
  name: 'log verify',
  summary: "audit the portal's log: nothing rewritten, your objects present, no split view",
  help: `usage: mesh log verify [--json]

Checks the portal's public log, with the portal key pinned when this profile was made:
  - the log only grew since you last checked (nothing removed or rewritten);
  - everything you published (claims, removals, profiles, configurations) is in it;
  - when your master profile lists witnesses (mesh log witnesses), the portal's checkpoint
    carries the cosignatures of as many of them as your quorum (else not-witnessed);
  - the history your devices report having seen is the same one you see. If the portal
    shows your devices a different history than you (a split view), this fails with
    log-inconsistent: stop trusting that portal.
On success the new log head is remembered for next time.`,
  options: {},
  async run(_v, pos, env) {
    if (pos.length > 0) throw new MeshError('usage', `unexpected argument "${pos[0] as string}"`);
    await withOwner(env, async (ctx) => {
      const { th, prev, total, fresh, unproven, deviceResults, devicesNote, witnessed } = await verifyLog(ctx);
      const seen = deviceResults.filter((d) => d.consistent === true);
      const lines = [
        `Log verified: the portal's log has ${th.size} entries (root ${short(th.root)}, signed ${th.created} by the pinned portal key).`,
        prev === null ? '  first check: this head is remembered for next time' : `  it extends the log you saw on ${prev.created} (${prev.size} entries): nothing was removed or rewritten`,
        total === 0 ? '  you have published nothing yet that the portal gave a receipt for' : `  all ${total} objects you published are in it (${fresh.length === total ? 'all checked now' : `${fresh.length} checked now, the rest on earlier checks`})`,
        seen.length > 0 ? `  ${seen.length} device${seen.length === 1 ? '' : 's'} saw the same history: ${seen.map((d) => `${d.name} (${d.size ?? 0} entries)`).join(', ')}` : '  no device has reported a log head yet',
        ...(witnessed !== null ? [`  the portal's checkpoint of ${witnessed.size} entries is cosigned by ${witnessed.cosigners.join(', ')} (your quorum is met)`] : []),
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
        witnessed,
      });
    });
  },
};

export const logWitnessesCommand: Command = {
  name: 'log witnesses',
  summary: 'list, add or remove the witnesses whose cosignatures you and your devices require',
  help: `usage: mesh log witnesses [--add VKEY]... [--remove NAME]... [--quorum K] [--share S]... [--json]

Without options: the witnesses your master profile lists and the quorum (how many of them must
have cosigned a log head). With options: a new master profile with the change, signed with your
master key, which reaches your devices through their feeds. From then on your devices, and
mesh log verify, accept a head of the portal's log only with the portal's signature and the
cosignatures of at least K of these witnesses (not-witnessed otherwise): a portal that shows
different histories to different people cannot get one of them cosigned.

  --add VKEY      a witness's verifier key, NAME+KEYID+BASE64 (mesh-witness --print-vkey)
  --remove NAME   stop listing the witness of that name
  --quorum K      how many must cosign (0 to the number listed; default: unchanged, and 1 when
                  the first witness is added)
${SHARE_HELP}
  --json          print the result as JSON`,
  options: { add: { type: 'string', multiple: true }, remove: { type: 'string', multiple: true }, quorum: { type: 'string' }, share: { type: 'string', multiple: true } },
  async run(v, pos, env) {
    if (pos.length > 0) throw new MeshError('usage', `unexpected argument "${pos[0] as string}"`);
    await withOwner(env, async (ctx) => {
      const { state } = ctx;
      await sync(ctx);
      save(ctx);
      const cur = currentMaster(state);
      const list = [...(cur.payload.witnesses ?? [])];
      const adds = listOpt(v, 'add');
      const removes = listOpt(v, 'remove');
      const quorumArg = strOpt(v, 'quorum') === undefined ? undefined : intOpt(v, 'quorum', 0, 0, MAX_WITNESSES);
      const show = (ws: readonly string[], q: number): { witnesses: { name: string; vkey: string }[]; quorum: number } => ({ witnesses: ws.map((k) => ({ name: parseVkey(k).name, vkey: k })), quorum: q });
      if (adds.length === 0 && removes.length === 0 && quorumArg === undefined) {
        const r = show(list, cur.payload.quorum ?? 0);
        env.io.out(r.witnesses.length === 0 ? 'No witnesses: a log head needs only the portal\'s signature (quorum 0).' : [`Quorum ${r.quorum} of ${r.witnesses.length}:`, ...r.witnesses.map((w) => `  ${w.name}  ${w.vkey}`)].join('\n'), r);
        return;
      }
      for (const k of adds) {
        const w = parseVkey(k);
        if (list.some((x) => parseVkey(x).name === w.name)) throw new MeshError('conflict', `a witness named ${w.name} is already listed`);
        list.push(k);
      }
      for (const n of removes) {
        const i = list.findIndex((x) => parseVkey(x).name === n);
        if (i < 0) throw new MeshError('not-found', `no witness named ${n} is listed`);
        list.splice(i, 1);
      }
      if (list.length > MAX_WITNESSES) throw new MeshError('too-large', `at most ${MAX_WITNESSES} witnesses`);
      const quorum = quorumArg ?? Math.min(list.length, Math.max(cur.payload.quorum ?? 0, adds.length > 0 ? 1 : 0));
      if (quorum > list.length) throw new MeshError('usage', `a quorum of ${quorum} needs at least as many witnesses; ${list.length} listed`);
      const mk = masterKeyFor(env, state, listOpt(v, 'share'));
      const next = createMasterProfile(mk, cur.payload.admins, { seq: cur.payload.seq + 1, revoked: cur.payload.revoked, witnesses: list, quorum });
      const m = await publishMaster(ctx, next);
      save(ctx);
      const r = show(list, quorum);
      env.io.out(`Master profile #${m.payload.seq}: quorum ${quorum} of ${list.length} witness${list.length === 1 ? '' : 'es'}${list.length > 0 ? ` (${r.witnesses.map((w) => w.name).join(', ')})` : ''}. Your devices require it from the moment they receive it.`, { ...r, masterSeq: m.payload.seq });
    });
  },
};
