/**
 * Reading an application profile in tests without its owner's master: its targets and a device's
 * or reader's view of its configuration, for the parted form (mesh/envelope.ts) and the one before.
 */
import { fromUtf8 } from '../../mesh/bytes.js';
import type { KeyPair } from '../../mesh/crypto.js';
import { MeshError } from '../../mesh/errors.js';
import { decrypt, decryptPart, payloadBytes, type SignedEnvelope } from '../../mesh/envelope.js';
import { encKeyId } from '../../mesh/keys.js';
import { parseApplicationPayload } from '../../mesh/profiles.js';

/** The devices it was sent to: the parts' devices (all parts must be there), or the signed list of an older profile. */
export function targetsOf(env: SignedEnvelope): string[] {
  const p = parseApplicationPayload(payloadBytes(env));
  if (p.parts === undefined) return [...(p.devices ?? [])];
  if ((env.parts?.length ?? 0) !== p.parts.n) throw new Error(`${env.parts?.length ?? 0} of ${p.parts.n} parts`);
  return (env.parts ?? []).flatMap((x) => (x.device === undefined ? [] : [x.device]));
}

/** The configuration as `device` opens it (with its own part), or as a reader's key (device omitted). */
export function docOf(env: SignedEnvelope, key: KeyPair, device?: string): unknown {
  const p = parseApplicationPayload(payloadBytes(env));
  if (p.sealed === undefined) return JSON.parse(fromUtf8(decrypt(p.config ?? ({} as never), key)));
  const kid = encKeyId(key.publicKey);
  const part = env.parts?.find((x) => x.device === device && x.kid === kid);
  if (part === undefined) throw new MeshError('not-a-recipient', `no part for ${device ?? kid}`);
  return JSON.parse(fromUtf8(decryptPart(p.sealed, part, key, device)));
}
