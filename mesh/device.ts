/**
 * A device's identity as it leaves the factory (or as it makes it on first boot, seed §6.1):
 * its three key pairs, its self-signed profile, the manufacturer's endorsement, and the claim
 * secret printed on its label. Pure: writing it to disk is runtime/device-files.ts.
 */
import { type SignedEnvelope, type Signer } from './envelope.js';
import { generateDeviceKeys, type DeviceKeys, signKeyId } from './keys.js';
import { createDeviceProfile, endorseDevice } from './profiles.js';
import { schemaFingerprint } from './schema.js';
import { labelUri, newClaimSecret, shortFingerprint, claimCode } from './claim.js';

export interface DeviceIdentity {
  readonly id: string;
  readonly fingerprint: string;
  readonly keys: DeviceKeys;
  readonly profile: SignedEnvelope;
  readonly endorsement: SignedEnvelope | null;
  readonly claimSecret: Uint8Array;
  readonly claimCode: string;
  readonly labelUri: string;
  readonly model: string;
  readonly manufacturer: string;
  readonly serial: string;
}

export function newDeviceIdentity(p: {
  model: string;
  manufacturer: string;
  serial: string;
  /** host[:port] of the portal printed on the label */
  portalAuthority: string;
  manufacturerKey?: Signer;
  /**
   * application -> the JSON Schema the device accepts: each is declared, by fingerprint, in the
   * signed profile ({} declares that it runs none); without it the profile declares nothing, as
   * profiles made before devices declared their applications
   */
  schemas?: Readonly<Record<string, unknown>>;
}): DeviceIdentity {
  const keys = generateDeviceKeys();
  const apps = p.schemas === undefined ? undefined : Object.entries(p.schemas).map(([name, schema]) => ({ name, schema: schemaFingerprint(schema) }));
  const profile = createDeviceProfile(keys, p.model, undefined, apps);
  const id = signKeyId(keys.sign.publicKey);
  const endorsement = p.manufacturerKey === undefined ? null : endorseDevice(p.manufacturerKey, { id, model: p.model }, { manufacturer: p.manufacturer, serial: p.serial });
  const secret = newClaimSecret();
  const fingerprint = shortFingerprint(id);
  return {
    id,
    fingerprint,
    keys,
    profile,
    endorsement,
    claimSecret: secret,
    claimCode: claimCode(secret),
    labelUri: labelUri({ manufacturer: p.manufacturer, portal: p.portalAuthority, secret, fingerprint }),
    model: p.model,
    manufacturer: p.manufacturer,
    serial: p.serial,
  };
}
