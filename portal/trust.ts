/**
 * Verified views of stored objects, cached: the account's master profile (as MasterProfile) and a
 * device's public keys. Stored objects were verified when they were accepted; re-verifying a
 * master on a cache miss is cheap insurance against a tampered database row.
 */
import { fromB64u } from '../mesh/bytes.js';
import { parseSignedEnvelope, payloadBytes, type SignedEnvelope } from '../mesh/envelope.js';
import { parseDevicePayload, verifyMasterProfile, type MasterProfile } from '../mesh/profiles.js';
import { Lru } from '../mesh/lru.js';
import type { AccountRecord, DeviceRecord } from './storage/types.js';

export interface DeviceKeys {
  readonly profile: SignedEnvelope;
  /** signature key: verifies the device's status reports */
  readonly sign: Uint8Array;
  /** authentication key: verifies the device's session requests */
  readonly auth: Uint8Array;
}

export class Trust {
  private readonly masters = new Lru<string, { text: string; master: MasterProfile }>(10_000);
  private readonly devices = new Lru<string, { text: string; keys: DeviceKeys }>(50_000);

  master(a: AccountRecord): MasterProfile {
    const hit = this.masters.get(a.account);
    if (hit !== undefined && hit.text === a.master) return hit.master;
    const master = verifyMasterProfile(JSON.parse(a.master) as unknown, a.masterId);
    this.masters.set(a.account, { text: a.master, master });
    return master;
  }

  deviceKeys(d: DeviceRecord): DeviceKeys {
    const hit = this.devices.get(d.id);
    if (hit !== undefined && hit.text === d.profile) return hit.keys;
    const profile = parseSignedEnvelope(JSON.parse(d.profile) as unknown, 'stored device profile');
    const p = parseDevicePayload(payloadBytes(profile));
    const keys = { profile, sign: fromB64u(p.sign, 'sign', 32), auth: fromB64u(p.auth, 'auth', 32) };
    this.devices.set(d.id, { text: d.profile, keys });
    return keys;
  }
}
