/**
 * Reading an account back from the portal onto a new administration device (mesh admin join)
 * or a recovered one (mesh recover). Only what verifies under the master profile is kept. An
 * object signed by an administration key revoked since gives only its number, in memory, so the
 * next version is numbered above it (see Ahead in owner.ts); anything else that does not verify
 * fails with `bad-answer` and nothing is kept.
 */
import { ROLLOUT_APP } from './rollout.js';
import { MeshError, isMeshError } from '../mesh/errors.js';
import { payloadBytes } from '../mesh/envelope.js';
import type { KeyPair } from '../mesh/crypto.js';
import type { MasterKeys } from '../mesh/keys.js';
import { shortFingerprint } from '../mesh/claim.js';
import { parseApplicationPayload, parsePersonalPayload, verifyApplicationProfile, verifyDeviceProfile, verifyPersonalProfile, type DeviceProfile, type MasterProfile } from '../mesh/profiles.js';
import type { AccountResponse } from '../mesh/protocol.js';
import type { Json } from '../mesh/json.js';
import { declaredSchemas } from '../mesh/schema.js';
import type { PortalClient } from './portal-client.js';
import { badAnswer, claimedSeq, openAsOwner, verifiedOrAhead, type Ahead } from './owner.js';
import type { AppRecord, ConfigDoc, DeviceRecord } from './owner-state.js';

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
      devices = pp.payload.devices.map((d) => ({ id: d.id, name: d.name, model: d.model, enc: d.enc, fingerprint: shortFingerprint(d.id), claimedAt: null, endorsedBy: null }));
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

/**
 * The devices read back with their schemas: each device's signed profile (the portal serves it
 * with the devices' status; it must verify under the device's own key, whose UDF is the id the
 * personal profile lists) declares its applications and their schema fingerprints, and only a
 * carried schema with that fingerprint is kept. Anything else is dropped with a note: values for
 * that application are then checked by the device alone. Never fails: without the portal's
 * answer the devices come back without schemas, as they did before profiles carried them.
 */
export async function restoreSchemas(client: PortalClient, devices: readonly DeviceRecord[], carried: Readonly<Record<string, Json>> | undefined, note: (s: string) => void): Promise<DeviceRecord[]> {
  if (devices.length === 0) return [...devices];
  if (carried === undefined) {
    note("note: the personal profile at the portal does not carry your devices' schemas (an older mesh published it): values are checked by the devices alone\n");
    return [...devices];
  }
  let profiles: Map<string, DeviceProfile | string>;
  try {
    profiles = new Map();
    for (const e of await client.deviceStatus()) {
      try {
        profiles.set(e.device, verifyDeviceProfile(e.profile, e.device));
      } catch (err) {
        profiles.set(e.device, isMeshError(err) ? `${err.code}: ${err.message}` : String(err));
      }
    }
  } catch (e) {
    note(`warning: the devices' profiles could not be read from the portal (${isMeshError(e) ? e.message : String(e)}): your devices come back without their schemas, and values are checked by the devices alone\n`);
    return [...devices];
  }
  return devices.map((d) => {
    const p = profiles.get(d.id);
    if (p === undefined || typeof p === 'string') {
      note(`warning: ${d.name}: ${p === undefined ? 'the portal returned no profile for it' : `its profile from the portal does not verify (${p})`}; its schemas are not kept, and values for it are checked by the device alone\n`);
      return d;
    }
    const apps = p.payload.apps;
    if (apps === undefined) return d; // an older device: its profile declares no schemas
    const given: Record<string, Json> = {};
    for (const a of apps) if (Object.hasOwn(carried, a.schema)) given[a.name] = carried[a.schema] as Json;
    const got = declaredSchemas(apps, given, 'the personal profile at the portal');
    for (const x of got.problems) note(`warning: ${d.name}: ${x}; it is dropped, and values for it are checked by the device alone\n`);
    return { ...d, schemas: got.schemas };
  });
}

/** Recovery reads the configurations with the master escrow key (every owner-published configuration is also encrypted to it). */
export function restoreFromAccountForRecovery(acct: AccountResponse, old: MasterProfile, mk: MasterKeys, note: (s: string) => void): Restored {
  return restoreFromAccount(acct, old, [mk.escrow], note);
}
