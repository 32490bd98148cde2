/**
 * Recovering an account on a new administration device (mesh recover and the owner app's "recover
 * from shares"): rebuild the master key from K recovery shares, check it is the account's master,
 * revoke every previous administration key (the lost laptop or phone), list a new one, re-sign the
 * personal profile, and read the configurations back with the escrow key. Devices claimed before
 * keep obeying: they trust the master UDF, which has not changed.
 */
import { MeshError, isMeshError } from '../mesh/errors.js';
import { fromB64u } from '../mesh/bytes.js';
import { masterKeysFromSeed, signKeyId, type MasterKeys } from '../mesh/keys.js';
import { ACCOUNT_PATTERN, adminEntry, createMasterProfile, createPersonalProfile, verifyMasterProfile, witnessesOf, type AdminKeys, type MasterProfile } from '../mesh/profiles.js';
import { recoverSecret } from '../mesh/shamir.js';
import type { AccountResponse } from '../mesh/protocol.js';
import { PortalClient } from './portal-client.js';
import { hello, keepReceipt, nextSeq, proveReceipt } from './owner.js';
import { restoreFromAccountForRecovery } from './owner-restore.js';
import { restoreSchemas } from './owner-schemas.js';
import { recoverRollout } from './owner-rollout.js';
import { deviceEntry, newState, newAdminKeys, schemasByFingerprint, type State } from './owner-state.js';

function badShares(account: string, why: string): MeshError {
  return new MeshError('bad-share', `these shares do not rebuild ${account}'s master key (${why}): check each share for a typing mistake, and that they are for this account`);
}

export interface Recovered {
  readonly state: State;
  readonly admin: AdminKeys;
  readonly masterId: string;
  /** the previous administration keys, now revoked */
  readonly oldKeys: string[];
  readonly masterSeq: number;
  readonly personalSeq: number;
  /** whether an in-flight rollout's record was read back (with the escrow key) and written again for this device */
  readonly rollout: boolean;
  /** the master seed: keep it only when asked to, then wipe it (fill(0)) */
  readonly seed: Uint8Array;
}

/**
 * Recover `account` from `shares`. `keep(state, admin)` is called as soon as there is something to
 * keep (the new master profile is proven in the portal's log) and again at the end.
 */
export async function recoverAccount(o: { portalUrl: string; account: string; shares: readonly string[]; adminName: string; note: (line: string) => void; keep: (state: State, admin: AdminKeys) => void }): Promise<Recovered> {
  const { portalUrl, account, adminName } = o;
  if (!ACCOUNT_PATTERN.test(account)) throw new MeshError('usage', `"${account}" is not a full account name like alice@portal.example`);
  if (o.shares.length === 0) throw new MeshError('usage', 'give your recovery shares');
  const seed = recoverSecret([...o.shares]);
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
    const restored = restoreFromAccountForRecovery(acct, old, mk, o.note);

    const admin = newAdminKeys(adminName);
    const oldKeys = old.payload.admins.map((a) => signKeyId(fromB64u(a.sign, 'sign', 32)));
    const revoked = [...new Set([...old.payload.revoked, ...oldKeys])];
    const next = createMasterProfile(mk, [adminEntry(admin)], { seq: old.payload.seq + 1, revoked, ...witnessesOf(old.payload) });
    const state = newState({ portalUrl, portal, account, master: masterId, masterEnvelope: next, admin: adminName, personalSeq: restored.personalSeq, apps: restored.apps, devices: restored.devices });
    // kept only once the portal's receipt proves the new master profile is in its log (else a
    // forged "accepted" would leave this device ahead of the portal for good)
    keepReceipt(state, await proveReceipt({ client, state }, 'master', next, await client.publish(next)));
    o.keep(state, admin);

    // From here on this device's own administration key speaks for the account.
    adminClient = new PortalClient({ url: portalUrl, identity: { subject: account, key: admin.sign } });
    // the devices' schemas, from the personal profile's copies checked against each device's signed profile
    state.devices = await restoreSchemas(adminClient, state.devices, restored.schemas, o.note);
    const personalSeq = nextSeq(restored.ahead, 'personal', state.personalSeq);
    const personal = createPersonalProfile(admin, {
      master: masterId,
      account,
      seq: personalSeq,
      devices: state.devices.map(deviceEntry),
      apps: Object.keys(state.apps).sort(),
      schemas: schemasByFingerprint(state.devices),
    });
    const r2 = await proveReceipt({ client: adminClient, state }, 'personal', personal, await adminClient.publish(personal));
    state.personalSeq = personalSeq;
    keepReceipt(state, r2);
    o.keep(state, admin);
    // an in-flight rollout: its record, encrypted to the lost keys and the escrow key, written again for this device
    const rollout = await recoverRollout({ state, admin, client: adminClient, ahead: restored.ahead, store: (s) => o.keep(s, admin), note: o.note }, acct, old, mk.escrow);
    return { state, admin, masterId, oldKeys, masterSeq: old.payload.seq + 1, personalSeq, rollout, seed };
  } finally {
    client.close();
    adminClient?.close();
  }
}
