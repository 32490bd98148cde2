/**
 * Administration devices: mesh admin add (on an existing one: shows a one-time PIN, waits for the
 * join request, signs a new master profile listing the new device), mesh admin join (on the new
 * one), mesh admin revoke (a new master profile without it; its key goes into `revoked`).
 *
 * Changing the master profile needs the master key: kept (--keep-master-key) or rebuilt from the
 * recovery shares given with --share, and always checked against the account's master UDF.
 */
import { b64u, fromB64u } from '../mesh/bytes.js';
import { MeshError } from '../mesh/errors.js';
import { signKeyId } from '../mesh/keys.js';
import { ACCOUNT_PATTERN, createMasterProfile, witnessesOf, type AdminEntry } from '../mesh/profiles.js';
import { normalizeUdf } from '../mesh/udf.js';
import { checkLabel, defaultAdminName, intOpt, listOpt, masterKeyFor, needStr, strOpt, withOwner, type Command } from './command.js';
import { currentMaster, publishPersonal, save, sync } from '../client/owner.js';
import { joinAccount, joinCommand, listAdmin, newPin, publishMaster, waitForJoin } from '../client/owner-admins.js';
import { newAdminKeys } from '../client/owner-state.js';
import { ensureHome, loadState, readAdminKeys, requireNoProfile, saveAdminKeys, saveState } from './state.js';

const SHARE_HELP = '  --share S     one of your recovery shares (repeat for as many as your quorum); not needed when the master key is kept';

// ---------------------------------------------------------------- add

export const adminAddCommand: Command = {
  name: 'admin add',
  summary: 'add another administration device (shows a one-time PIN)',
  help: `usage: mesh admin add --name NAME [--share S ...] [--wait-ms N]

Run this on an administration device you already have. It shows a one-time PIN and the
command to type on the new device (mesh admin join). When the new device's request arrives
with the right PIN, a new master profile listing it is signed and published.

  --name NAME   what to call the new administration device
${SHARE_HELP}
  --wait-ms N   how long to wait for the new device (default 120000)
  --json        print the PIN line and the result as JSON lines`,
  options: { name: { type: 'string' }, share: { type: 'string', multiple: true }, 'wait-ms': { type: 'string' } },
  async run(v, pos, env) {
    if (pos.length > 0) throw new MeshError('usage', `unexpected argument "${pos[0] as string}"`);
    const name = checkLabel(needStr(v, 'name', 'what to call the new administration device, e.g. --name phone'), 'the administration device name');
    const waitMs = intOpt(v, 'wait-ms', 120_000, 0, 3_600_000);
    await withOwner(env, async (ctx) => {
      const { state, io } = ctx;
      const mk = masterKeyFor(env, state, listOpt(v, 'share'));
      await sync(ctx);
      save(ctx);
      const master = currentMaster(state);
      if (master.payload.admins.some((a) => a.name === name)) throw new MeshError('conflict', `there is already an administration device called "${name}"; choose another name`);

      const pin = newPin();
      const cmd = joinCommand(state, pin, name);
      io.out(
        [`One-time PIN: ${pin}`, '', 'On the new administration device, run:', `  ${cmd}`, '', `Waiting up to ${Math.round(waitMs / 1000)} s for it...`].join('\n'),
        { pin, command: cmd, waitMs },
      );

      const found = await waitForJoin(ctx, pin, waitMs);
      if (found === undefined) throw new MeshError('timeout', `no join request with this PIN arrived within ${Math.round(waitMs / 1000)} s; nothing was changed. Run mesh admin add again for a new PIN`);
      // other commands may have run on this computer while we waited: start again from what is on disk
      Object.assign(state, loadState(env.home));
      await sync(ctx);
      save(ctx);

      const { key, masterSeq, reencrypted } = await listAdmin(ctx, mk, name, found);
      io.out(
        `Added "${name}" (${key}) as an administration device of ${state.account} (master profile #${masterSeq}).${reencrypted.length > 0 ? `\n  configurations re-sent so it can read them: ${reencrypted.join(', ')}` : ''}`,
        { added: { name, key }, masterSeq, reencrypted },
      );
    });
  },
};

// ---------------------------------------------------------------- join

export const adminJoinCommand: Command = {
  name: 'admin join',
  summary: 'make this computer an administration device of an existing account',
  help: `usage: mesh admin join --portal URL --account ACCOUNT --pin PIN --name NAME [--master UDF] [--wait-ms N]

Run this on the new administration device (with its own --home), with the PIN that
mesh admin add shows on an existing one. It makes this computer's keys, sends the
join request, and waits until the existing device has listed it.

  --portal URL    the portal
  --account ACC   the full account, e.g. alice@portal.example
  --pin PIN       the one-time PIN shown by mesh admin add
  --name NAME     what to call this computer
  --master UDF    the master profile UDF shown by mesh admin add (checked when given)
  --wait-ms N     how long to wait (default 120000)
  --json          print the result as JSON`,
  options: {
    portal: { type: 'string' },
    account: { type: 'string' },
    pin: { type: 'string' },
    name: { type: 'string' },
    master: { type: 'string' },
    'wait-ms': { type: 'string' },
  },
  async run(v, pos, env) {
    if (pos.length > 0) throw new MeshError('usage', `unexpected argument "${pos[0] as string}"`);
    const portalUrl = needStr(v, 'portal', 'the portal URL');
    const account = needStr(v, 'account', 'the full account, e.g. --account alice@portal.example');
    if (!ACCOUNT_PATTERN.test(account)) throw new MeshError('usage', `"${account}" is not a full account name like alice@portal.example`);
    const pin = needStr(v, 'pin', 'the one-time PIN shown by mesh admin add');
    normalizeUdf(pin);
    const name = checkLabel(strOpt(v, 'name') ?? defaultAdminName(), 'the administration device name');
    const expectMaster = strOpt(v, 'master');
    if (expectMaster !== undefined) normalizeUdf(expectMaster);
    const waitMs = intOpt(v, 'wait-ms', 120_000, 0, 3_600_000);
    requireNoProfile(env.home);
    ensureHome(env.home);

    // Reuse the keys of an unfinished join for the same account, so a retry does not leave a dead key listed.
    const prior = readAdminKeys(env.home);
    let admin = prior !== undefined && prior.pending && prior.account === account ? prior.keys : undefined;
    if (prior !== undefined && admin === undefined) throw new MeshError('conflict', `${env.home} already holds administration keys for another account; use another --home`);
    if (admin === undefined || admin.name !== name) {
      admin = admin === undefined ? newAdminKeys(name) : { ...admin, name };
      saveAdminKeys(env.home, admin, { account, pending: true });
    }
    const key = signKeyId(admin.sign.publicKey);

    const { state, masterId, restored } = await joinAccount({ portalUrl, account, pin, admin, name, ...(expectMaster !== undefined ? { expectMaster } : {}), waitMs, note: (l) => env.io.progress(l) });
    saveState(env.home, state);
    saveAdminKeys(env.home, admin);
    const lines = [
      `This computer ("${name}", key ${key}) is now an administration device of ${account}.`,
      `  master profile: ${masterId}${expectMaster === undefined ? '  <- check it matches what mesh profile show says on your other device' : ' (as expected)'}`,
      `  devices: ${restored.devices.length}${restored.devices.length > 0 ? ` (${restored.devices.map((d) => d.name).join(', ')})` : ''}`,
      `  applications: ${Object.keys(restored.apps).length === 0 ? 'none' : Object.entries(restored.apps).map(([a, r]) => `${a} #${r.seq}${r.doc === null ? ' (not readable here)' : ''}`).join(', ')}`,
    ];
    env.io.out(lines.join('\n'), { account, master: masterId, admin: { name, key }, devices: restored.devices.map((d) => ({ id: d.id, name: d.name })), apps: Object.fromEntries(Object.entries(restored.apps).map(([a, r]) => [a, { seq: r.seq, readable: r.doc !== null }])) });
  },
};

// ---------------------------------------------------------------- revoke

export function findAdmin(admins: readonly AdminEntry[], which: string): AdminEntry {
  const byName = admins.filter((a) => a.name === which);
  if (byName.length === 1) return byName[0] as AdminEntry;
  if (byName.length > 1) throw new MeshError('usage', `${byName.length} administration devices are called "${which}": give the start of its key UDF instead`);
  let norm: string | undefined;
  try {
    norm = normalizeUdf(which);
  } catch {
    norm = undefined;
  }
  const byKey = norm !== undefined && norm.length >= 4 ? admins.filter((a) => normalizeUdf(signKeyId(fromB64u(a.sign, 'sign', 32))).startsWith(norm as string)) : [];
  if (byKey.length === 1) return byKey[0] as AdminEntry;
  throw new MeshError('not-found', `no administration device is called "${which}"; see mesh profile show`);
}

export const adminRevokeCommand: Command = {
  name: 'admin revoke',
  summary: 'revoke an administration device (lost or stolen)',
  help: `usage: mesh admin revoke NAME [--share S ...]

Signs and publishes a new master profile without the administration device NAME (its name
or the start of its key UDF) and with its key listed as revoked. The portal passes the new
master profile to your devices, which from then on refuse anything signed by that key.

${SHARE_HELP}
  --json        print the result as JSON`,
  options: { share: { type: 'string', multiple: true } },
  async run(v, pos, env) {
    if (pos.length !== 1) throw new MeshError('usage', 'name the administration device to revoke');
    await withOwner(env, async (ctx) => {
      const { state } = ctx;
      const mk = masterKeyFor(env, state, listOpt(v, 'share'));
      await sync(ctx);
      save(ctx);
      const cur = currentMaster(state);
      const gone = findAdmin(cur.payload.admins, pos[0] as string);
      const kid = signKeyId(fromB64u(gone.sign, 'sign', 32));
      if (gone.sign === b64u(ctx.admin.sign.publicKey)) {
        throw new MeshError('usage', `"${gone.name}" is this computer: revoke it from another administration device, or use mesh recover on a new one`);
      }
      const next = createMasterProfile(mk, cur.payload.admins.filter((a) => a.sign !== gone.sign), {
        seq: cur.payload.seq + 1,
        revoked: [...cur.payload.revoked, kid],
        ...witnessesOf(cur.payload),
      });
      const m = await publishMaster(ctx, next);
      // re-sign the personal profile with a key that stays valid
      const personalSeq = await publishPersonal(ctx);
      save(ctx);
      env.io.out(
        `Revoked "${gone.name}" (${kid}): master profile #${m.payload.seq} no longer lists it. Your devices refuse anything it signs from the moment they receive this.`,
        { revoked: { name: gone.name, key: kid }, masterSeq: m.payload.seq, personalSeq },
      );
    });
  },
};
