/**
 * mesh recover: on a new computer, rebuild the master key from K recovery shares and take the
 * account over (client/owner-recover.ts). Devices claimed before keep obeying.
 */
import { MeshError } from '../mesh/errors.js';
import { signKeyId } from '../mesh/keys.js';
import { ACCOUNT_PATTERN } from '../mesh/profiles.js';
import { checkLabel, defaultAdminName, needStr, strOpt, type Command } from './command.js';
import { recoverAccount } from '../client/owner-recover.js';
import { ensureHome, readAdminKeys, requireNoProfile, saveAdminKeys, saveMasterSeed, saveState, files } from './state.js';

export const recoverCommand: Command = {
  name: 'recover',
  summary: 'rebuild your profile on a new computer from your recovery shares',
  help: `usage: mesh recover SHARE SHARE ... --portal URL --account ACCOUNT [--admin-name NAME] [--keep-master-key]

Run this on a new computer (an empty --home) when you have lost your administration
device(s). From K of your recovery shares it rebuilds your master key and checks it is the
one behind ACCOUNT; then it revokes every previous administration key (a lost laptop can
no longer change anything), makes this computer the administration device, and reads your
configurations back. Your devices keep working; nothing needs doing on them. Your recovery
shares stay valid.

  --portal URL        the portal
  --account ACCOUNT   the full account, e.g. alice@portal.example
  --admin-name NAME   this computer's name (default: the host name)
  --keep-master-key   keep the master key on this computer (<home>/master-seed.json, 0600)
  --json              print the result as JSON`,
  options: { portal: { type: 'string' }, account: { type: 'string' }, 'admin-name': { type: 'string' }, 'keep-master-key': { type: 'boolean' } },
  async run(v, pos, env) {
    const portalUrl = needStr(v, 'portal', 'the portal URL');
    const account = needStr(v, 'account', 'the full account, e.g. --account alice@portal.example');
    if (!ACCOUNT_PATTERN.test(account)) throw new MeshError('usage', `"${account}" is not a full account name like alice@portal.example`);
    const adminName = checkLabel(strOpt(v, 'admin-name') ?? defaultAdminName(), 'the administration device name');
    if (pos.length === 0) throw new MeshError('usage', 'give your recovery shares, separated by spaces');
    requireNoProfile(env.home);
    if (readAdminKeys(env.home) !== undefined) throw new MeshError('conflict', `${files(env.home).adminKeys} already exists; recover into an empty --home`);

    const { state, admin, masterId, oldKeys, masterSeq, personalSeq, rollout, seed } = await recoverAccount({
      portalUrl,
      account,
      shares: pos,
      adminName,
      note: (l) => env.io.progress(l),
      keep: (st, keys) => {
        ensureHome(env.home);
        saveAdminKeys(env.home, keys);
        saveState(env.home, st);
      },
    });
    const keep = v['keep-master-key'] === true;
    if (keep) saveMasterSeed(env.home, seed);
    seed.fill(0);
    const appsLine = Object.entries(state.apps).map(([a, r]) => `${a} #${r.seq}${r.doc === null ? ' (could not be read back)' : ''}`);
    env.io.out(
      [
        `Recovered ${account} (master ${masterId}).`,
        `  this computer: "${adminName}", administration key ${signKeyId(admin.sign.publicKey)}`,
        `  revoked ${oldKeys.length} previous administration key${oldKeys.length === 1 ? '' : 's'}: a lost device can no longer change anything`,
        `  devices: ${state.devices.length}${state.devices.length > 0 ? ` (${state.devices.map((d) => d.name).join(', ')}); they keep working, nothing to do on them` : ''}`,
        `  configurations read back: ${appsLine.length === 0 ? 'none' : appsLine.join(', ')}`,
        ...(rollout ? ['  your rollout in progress was read back: see mesh rollout status'] : []),
        `  master profile #${masterSeq}, personal profile #${personalSeq}`,
        '  your recovery shares are unchanged: keep them where they were',
      ].join('\n'),
      {
        account,
        master: masterId,
        admin: { name: adminName, key: signKeyId(admin.sign.publicKey) },
        revoked: oldKeys,
        masterSeq,
        personalSeq,
        devices: state.devices.map((d) => ({ id: d.id, name: d.name })),
        apps: Object.fromEntries(Object.entries(state.apps).map(([a, r]) => [a, { seq: r.seq, readable: r.doc !== null }])),
        rollout,
        masterKeyKept: keep,
      },
    );
  },
};
