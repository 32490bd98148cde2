/**
 * Making an owner's profile (mesh profile create and the owner app's first screen): the master key
 * (the lasting identity), this administration device's keys, the master and personal profiles,
 * the account bound at the portal, and the recovery shares (any K of N rebuild the master key).
 * The caller keeps the state and the keys (files, or the page's IndexedDB) and shows the shares
 * once; it gets the master seed to keep when asked to, and wipes it.
 */
import * as c from '../mesh/crypto.js';
import { MeshError, isMeshError } from '../mesh/errors.js';
import { masterKeysFromSeed, signKeyId } from '../mesh/keys.js';
import { ACCOUNT_PATTERN, adminEntry, createMasterProfile, createPersonalProfile, type AdminKeys } from '../mesh/profiles.js';
import type { PortalProfile } from '../mesh/messages.js';
import { splitSecret } from '../mesh/shamir.js';
import { PortalClient } from './portal-client.js';
import { hello, keepReceipt, proveReceipt } from './owner.js';
import { newState, newAdminKeys, type State } from './owner-state.js';

/** An account name at a portal: lowercase letters, digits, ".", "_" or "-", starting with a letter or digit. */
export const ACCOUNT_NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;

export interface CreatedProfile {
  readonly state: State;
  readonly admin: AdminKeys;
  readonly portal: PortalProfile;
  readonly account: string;
  readonly masterId: string;
  /** the recovery shares, to be shown once */
  readonly shares: string[];
  /** the master seed: keep it only when asked to, then wipe it (fill(0)) */
  readonly seed: Uint8Array;
}

export function checkAccountName(name: string): string {
  if (!ACCOUNT_NAME.test(name)) throw new MeshError('usage', `"${name}" cannot be an account name: use lowercase letters, digits, ".", "_" or "-" (at most 64), starting with a letter or digit`);
  return name;
}

/** Make the keys and profiles, bind NAME@portal to them, and split the master seed into `shares` shares, `quorum` of which rebuild it. */
export async function createProfile(o: { portalUrl: string; name: string; quorum: number; shares: number; adminName: string; note: (line: string) => void }): Promise<CreatedProfile> {
  const { portalUrl, name, adminName } = o;
  checkAccountName(name);
  const client = new PortalClient({ url: portalUrl });
  try {
    const { portal } = await hello(client);
    const account = `${name}@${portal.name}`;
    if (!ACCOUNT_PATTERN.test(account)) throw new MeshError('malformed', `the portal calls itself "${portal.name}", which does not make a valid account name (${account})`);

    const seed = c.randomBytes(32);
    const mk = masterKeysFromSeed(seed);
    const masterId = signKeyId(mk.sign.publicKey);
    const admin = newAdminKeys(adminName);
    const masterEnv = createMasterProfile(mk, [adminEntry(admin)]);
    const personalEnv = createPersonalProfile(admin, { master: masterId, account, seq: 1, devices: [], apps: [] });
    const bound = await client.bindAccount({ account: name, master: masterEnv, personal: personalEnv, request: await client.sessionRequest(admin.sign, account) });
    if (bound.master !== masterId) throw new MeshError('wrong-master', `the portal bound ${bound.account} to ${bound.master}, not to the master profile ${masterId} just made`);
    if (bound.account !== account) throw new MeshError('malformed', `the portal bound "${bound.account}" but announced its name as "${portal.name}" (expected ${account}); the account is bound, but its profile names the wrong account: ask the portal's operator`);

    const shares = splitSecret(seed, o.quorum, o.shares);
    const state = newState({ portalUrl, portal, account, master: masterId, masterEnvelope: masterEnv, admin: adminName });
    // the account is bound: keep it whatever the receipts say, but keep only receipts that prove
    for (const [kind, obj, r] of bound.receipts === undefined ? [] : ([['master', masterEnv, bound.receipts.master], ['personal', personalEnv, bound.receipts.personal]] as const)) {
      try {
        keepReceipt(state, await proveReceipt({ client, state }, kind, obj, r));
      } catch (e) {
        o.note(`warning: ${isMeshError(e) ? e.message : String(e)}\n`);
      }
    }
    return { state, admin, portal, account, masterId, shares, seed };
  } finally {
    client.close();
  }
}
