/**
 * Reading an account back from the portal onto a new administration device (mesh admin join)
 * or a recovered one (mesh recover). Only what verifies under the master profile is believed;
 * of anything else only its number is kept (so the next version is numbered above it), never
 * its content.
 */
import { isMeshError } from '../mesh/errors.js';
import { payloadBytes } from '../mesh/envelope.js';
import type { KeyPair } from '../mesh/crypto.js';
import type { MasterKeys } from '../mesh/keys.js';
import { shortFingerprint } from '../mesh/claim.js';
import { parseApplicationPayload, parsePersonalPayload, verifyApplicationProfile, verifyPersonalProfile, type MasterProfile } from '../mesh/profiles.js';
import type { AccountResponse } from '../mesh/protocol.js';
import { openAsOwner } from './portal.js';
import type { AppRecord, ConfigDoc, DeviceRecord } from './state.js';

export interface Restored {
  readonly personalSeq: number;
  readonly devices: DeviceRecord[];
  readonly apps: Record<string, AppRecord>;
}

function seqOf(parse: () => { seq: number }): number {
  try {
    return parse().seq;
  } catch {
    return 0;
  }
}

export function restoreFromAccount(acct: AccountResponse, master: MasterProfile, readers: readonly KeyPair[], note: (s: string) => void): Restored {
  let personalSeq = 0;
  let devices: DeviceRecord[] = [];
  if (acct.personal !== null) {
    const env = acct.personal;
    try {
      const pp = verifyPersonalProfile(env, master);
      personalSeq = pp.payload.seq;
      devices = pp.payload.devices.map((d) => ({ id: d.id, name: d.name, model: d.model, enc: d.enc, fingerprint: shortFingerprint(d.id), claimedAt: null, endorsedBy: null }));
    } catch (e) {
      personalSeq = seqOf(() => parsePersonalPayload(payloadBytes(env)));
      note(`warning: the list of devices at the portal does not verify (${isMeshError(e) ? e.code : 'error'}); claim your devices again if they are missing\n`);
    }
  }
  const apps: Record<string, AppRecord> = {};
  for (const [app, env] of Object.entries(acct.applications)) {
    try {
      const ap = verifyApplicationProfile(env, master);
      let doc: ConfigDoc | null = null;
      for (const k of readers) {
        doc = openAsOwner(ap, k);
        if (doc !== null) break;
      }
      if (doc === null) note(`note: the ${app} configuration (#${ap.payload.seq}) is not readable here; only its number is kept\n`);
      apps[app] = { seq: ap.payload.seq, doc, publishedAt: ap.payload.created };
    } catch (e) {
      const seq = seqOf(() => parseApplicationPayload(payloadBytes(env)));
      note(`warning: the ${app} configuration at the portal does not verify (${isMeshError(e) ? `${e.code}: ${e.message}` : 'error'}); only its number is kept, publish it again\n`);
      apps[app] = { seq, doc: null, publishedAt: new Date().toISOString() };
    }
  }
  return { personalSeq, devices, apps };
}

/** Recovery reads the configurations with the master escrow key (every owner-published configuration is also encrypted to it). */
export function restoreFromAccountForRecovery(acct: AccountResponse, old: MasterProfile, mk: MasterKeys, note: (s: string) => void): Restored {
  return restoreFromAccount(acct, old, [mk.escrow], note);
}
