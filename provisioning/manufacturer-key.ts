/**
 * The manufacturer's endorsement key: one Ed25519 key whose signature on each device profile lets an
 * owner see the device is genuine. File format (mode 0600): {"sign": "<base64url 32-byte seed>"}.
 */
import * as fs from 'node:fs';
import { ed25519KeyPair, randomBytes, ED25519_SEED_LEN, type KeyPair } from '../mesh/crypto.js';
import { b64u, fromB64u } from '../mesh/bytes.js';
import { MeshError } from '../mesh/errors.js';
import { obj, parseJson } from '../mesh/json.js';
import { signKeyId } from '../mesh/keys.js';
import { writeFileAtomic } from '../runtime/files.js';

export interface ManufacturerKey {
  readonly key: KeyPair;
  /** UDF of the public key (what owners pin) */
  readonly id: string;
  readonly file: string;
  /** made by this run */
  readonly generated: boolean;
  /** the file is readable by group or others (a warning, not a refusal) */
  readonly looseMode: boolean;
}

function fromSeed(seed: Uint8Array, file: string, generated: boolean, looseMode: boolean): ManufacturerKey {
  const key = ed25519KeyPair(seed);
  return { key, id: signKeyId(key.publicKey), file, generated, looseMode };
}

/** Read a manufacturer key file. Unreadable: `state`; anything wrong with its content: `bad-key`. */
export function readManufacturerKey(file: string): ManufacturerKey {
  let text: string;
  let mode: number;
  try {
    const st = fs.statSync(file);
    if (!st.isFile()) throw new MeshError('state', `manufacturer key ${file} is not a file`);
    mode = st.mode;
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if (e instanceof MeshError) throw e;
    const code = (e as NodeJS.ErrnoException).code ?? 'error';
    throw new MeshError('state', `cannot read the manufacturer key ${file} (${code})`, { file, errno: code });
  }
  let seed: Uint8Array;
  try {
    const o = obj(parseJson(text, 4096, 'manufacturer key file'), 'manufacturer key file', ['sign']);
    seed = fromB64u(o.sign, 'manufacturer key "sign"', ED25519_SEED_LEN);
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    throw new MeshError('bad-key', `${file} is not a manufacturer key: ${why}. Expected JSON {"sign": "<base64url of a 32-byte Ed25519 seed>"}`, { file });
  }
  return fromSeed(seed, file, false, (mode & 0o077) !== 0);
}

/** Make a new manufacturer key and write it to `file` (0600). Refuses to replace an existing file. */
export function createManufacturerKey(file: string): ManufacturerKey {
  if (fs.existsSync(file)) throw new MeshError('conflict', `${file} already exists; pass it with --manufacturer-key or move it away`, { file });
  const seed = randomBytes(ED25519_SEED_LEN);
  writeFileAtomic(file, JSON.stringify({ sign: b64u(seed) }) + '\n', 0o600);
  return fromSeed(seed, file, true, false);
}
