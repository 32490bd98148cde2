/**
 * Reading an account back from the portal onto a new administration device (mesh admin join)
 * or a recovered one (mesh recover). Only what verifies under the master profile is kept. An
 * object signed by an administration key revoked since gives only its number, in memory, so the
 * next version is numbered above it (see Ahead in owner.ts); anything else that does not verify
 * fails with `bad-answer` and nothing is kept.
 */
import { ROLLOUT_APP } from './rollout.js';
import { MeshError } from '../mesh/errors.js';
import { payloadBytes } from '../mesh/envelope.js';
import type { KeyPair } from '../mesh/crypto.js';
import type { MasterKeys } from '../mesh/keys.js';
import { parseApplicationPayload, parsePersonalPayload, verifyApplicationProfile, verifyPersonalProfile, type MasterProfile } from '../mesh/profiles.js';
import type { AccountResponse } from '../mesh/protocol.js';
import type { Json } from '../mesh/json.js';
import { badAnswer, claimedSeq, openAsOwner, verifiedOrAhead, type Ahead } from './owner.js';
import { deviceFromEntry, type AppRecord, type ConfigDoc, type DeviceRecord } from './owner-state.js';

export interface Restored {
  readonly personalSeq: number;
  readonly devices: DeviceRecord[];
  readonly apps: Record<string, AppRecord>;
  /**
   * the schemas the personal profile carries, by fingerprint, NOT yet checked: restoreSchemas
   * keeps each only where a device's signed profile declares its fingerprint (undefined: the
   * profile was published before it carried them)
   */
  readonly schemas: Readonly<Record<string, Json>> | undefined;
  /** numbers of objects signed by since-revoked keys: for numbering the next versions, never stored */
  readonly ahead: Ahead;
}

export function restoreFromAccount(acct: AccountResponse, master: MasterProfile, readers: readonly KeyPair[], note: (s: string) => void): Restored {
  const ahead: Ahead = new Map();
  let personalSeq = 0;
  let devices: DeviceRecord[] = [];
  let schemas: Readonly<Record<string, Json>> | undefined;
  const personal = acct.personal;
  if (personal !== null) {
    const claimed = claimedSeq('personal profile', () => parsePersonalPayload(payloadBytes(personal)));
    const pp = verifiedOrAhead({ ahead, note }, 'personal', 'personal profile', claimed, 0, () => verifyPersonalProfile(personal, master));
    if (pp !== undefined) {
      personalSeq = pp.payload.seq;
      devices = pp.payload.devices.map(deviceFromEntry);
      schemas = pp.payload.schemas;
    } else {
      note('warning: so the list of devices at the portal is not used; claim your devices again if they are missing\n');
    }
  }
  const apps: Record<string, AppRecord> = {};
  for (const [app, env] of Object.entries(acct.applications)) {
    // the rollout record is not a configuration (client/owner-rollout.ts reads it at the portal)
    if (app === ROLLOUT_APP) continue;
    const claimed = claimedSeq(`${app} configuration`, () => parseApplicationPayload(payloadBytes(env)));
    const ap = verifiedOrAhead({ ahead, note }, `app:${app}`, `${app} configuration`, claimed, 0, () => verifyApplicationProfile(env, master));
    if (ap === undefined) continue;
    if (ap.payload.app !== app) throw badAnswer(`${app} configuration #${claimed}`, new MeshError('wrong-type', `it is the configuration of ${ap.payload.app}`));
    let doc: ConfigDoc | null = null;
    for (const k of readers) {
      doc = openAsOwner(ap, k);
      if (doc !== null) break;
    }
    if (doc === null) note(`note: the ${app} configuration (#${ap.payload.seq}) is not readable here; only its number is kept\n`);
    apps[app] = { seq: ap.payload.seq, doc, publishedAt: ap.payload.created };
  }
  return { personalSeq, devices, apps, schemas, ahead };
}

/** Recovery reads the configurations with the master escrow key (every owner-published configuration is also encrypted to it). */
export function restoreFromAccountForRecovery(acct: AccountResponse, old: MasterProfile, mk: MasterKeys, note: (s: string) => void): Restored {
  return restoreFromAccount(acct, old, [mk.escrow], note);
}
