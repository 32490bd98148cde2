/**
 * mesh recover: on a new computer, rebuild the master key from K recovery shares, check it is
 * the account's master, revoke every previous administration key (the lost laptop), list a new
 * one, re-sign the personal profile, and read the configurations back with the escrow key.
 * Devices claimed before keep obeying: they trust the master UDF, which has not changed.
 */
import { MeshError, isMeshError } from '../mesh/errors.js';
import { fromB64u } from '../mesh/bytes.js';
import { masterKeysFromSeed, signKeyId, type MasterKeys } from '../mesh/keys.js';
import { ACCOUNT_PATTERN, adminEntry, createMasterProfile, createPersonalProfile, verifyMasterProfile, type MasterProfile } from '../mesh/profiles.js';
import { recoverSecret } from '../mesh/shamir.js';
import { PortalClient } from '../client/portal-client.js';
import type { AccountResponse } from '../mesh/protocol.js';
import { checkLabel, defaultAdminName, needStr, strOpt, type Command } from './command.js';
import { hello, keepReceipt, nextSeq, proveReceipt } from '../client/owner.js';
import { restoreFromAccountForRecovery } from '../client/owner-restore.js';
import { newState, newAdminKeys } from '../client/owner-state.js';
import { ensureHome, readAdminKeys, requireNoProfile, saveAdminKeys, saveMasterSeed, saveState, files } from './state.js';

function badShares(account: string, why: string): MeshError {
  return new MeshError('bad-share', `these shares do not rebuild ${account}'s master key (${why}): check each share for a typing mistake, and that they are for this account`);
}

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

    const seed = recoverSecret(pos);
    if (seed.length !== 32) throw badShares(account, `they give a ${seed.length}-byte secret, not a master seed`);
    const mk: MasterKeys = masterKeysFromSeed(seed);
    const masterId = signKeyId(mk.sign.publicKey);

    // The portal accepts a session signed by the account's master key itself.
    const client = new PortalClient({ url: portalUrl, identity: { subject: account, key: mk.sign } });
    let adminClient: PortalClient | undefined;
    try {
      const { portal } = await hello(client);
      let acct: AccountResponse;
      try {
        acct = await client.account();
      } catch (e) {
        if (isMeshError(e) && ['unauthorized', 'forbidden', 'unknown-signer', 'bad-signature', 'not-found'].includes(e.code)) {
          throw badShares(account, e.code === 'not-found' ? `the portal says: ${e.message.replace(/^portal: /, '')}` : 'the portal does not know the key they rebuild');
        }
        throw e;
      }
      let old: MasterProfile;
      try {
        old = verifyMasterProfile(acct.master, masterId);
      } catch (e) {
        if (isMeshError(e, 'wrong-master')) throw badShares(account, `they give master ${masterId}`);
        throw e;
      }
      const restored = restoreFromAccountForRecovery(acct, old, mk, (s) => env.io.progress(s));

      const admin = newAdminKeys(adminName);
      const oldKeys = old.payload.admins.map((a) => signKeyId(fromB64u(a.sign, 'sign', 32)));
      const revoked = [...new Set([...old.payload.revoked, ...oldKeys])];
      const next = createMasterProfile(mk, [adminEntry(admin)], { seq: old.payload.seq + 1, revoked });
      ensureHome(env.home);
      saveAdminKeys(env.home, admin);
      const state = newState({ portalUrl, portal, account, master: masterId, masterEnvelope: next, admin: adminName, personalSeq: restored.personalSeq, apps: restored.apps, devices: restored.devices });
      // kept only once the portal's receipt proves the new master profile is in its log (else a
      // forged "accepted" would leave this computer ahead of the portal for good)
      keepReceipt(state, await proveReceipt({ client, state }, 'master', next, await client.publish(next)));
      saveState(env.home, state);

      // From here on this computer's own administration key speaks for the account.
      adminClient = new PortalClient({ url: portalUrl, identity: { subject: account, key: admin.sign } });
      const personalSeq = nextSeq(restored.ahead, 'personal', state.personalSeq);
      const personal = createPersonalProfile(admin, {
        master: masterId,
        account,
        seq: personalSeq,
        devices: state.devices.map((d) => ({ id: d.id, name: d.name, model: d.model, enc: d.enc })),
        apps: Object.keys(state.apps).sort(),
      });
      const r2 = await proveReceipt({ client: adminClient, state }, 'personal', personal, await adminClient.publish(personal));
      state.personalSeq = personalSeq;
      keepReceipt(state, r2);
      saveState(env.home, state);
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
          `  master profile #${old.payload.seq + 1}, personal profile #${personalSeq}`,
          '  your recovery shares are unchanged: keep them where they were',
        ].join('\n'),
        {
          account,
          master: masterId,
          admin: { name: adminName, key: signKeyId(admin.sign.publicKey) },
          revoked: oldKeys,
          masterSeq: old.payload.seq + 1,
          personalSeq,
          devices: state.devices.map((d) => ({ id: d.id, name: d.name })),
          apps: Object.fromEntries(Object.entries(state.apps).map(([a, r]) => [a, { seq: r.seq, readable: r.doc !== null }])),
          masterKeyKept: keep,
        },
      );
    } finally {
      client.close();
      adminClient?.close();
    }
  },
};
