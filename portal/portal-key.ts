/**
 * The portal's signing key (portal profile, tree heads): a JSON file holding the Ed25519 seed,
 * created 0600 on first start. Creation never replaces an existing file (link(2) fails if it
 * exists), so two processes starting on one data directory end up with the same key.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as c from '../mesh/crypto.js';
import { b64u, fromB64u } from '../mesh/bytes.js';
import { MeshError } from '../mesh/errors.js';
import { obj, parseJson, str } from '../mesh/json.js';
import { signKeyId } from '../mesh/keys.js';
import { fsyncDir } from '../runtime/files.js';

export interface PortalKey {
  readonly key: c.KeyPair;
  /** the key's UDF: the portal's identity */
  readonly id: string;
  readonly created: boolean;
  /** e.g. the file is readable by others */
  readonly warnings: readonly string[];
}

const TYPE = 'mesh-portal-key';

export function loadOrCreatePortalKey(file: string): PortalKey {
  const existing = read(file);
  if (existing !== undefined) return existing;
  const dir = path.dirname(file);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const kp = c.ed25519KeyPair(c.randomBytes(c.ED25519_SEED_LEN));
  const text = JSON.stringify({ type: TYPE, sign: b64u(kp.privateKey) }, null, 2) + '\n';
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${b64u(c.randomBytes(6))}.tmp`);
  const fd = fs.openSync(tmp, 'wx', 0o600);
  try {
    fs.writeSync(fd, text);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  try {
    fs.linkSync(tmp, file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  } finally {
    fs.rmSync(tmp, { force: true });
  }
  fsyncDir(dir);
  const k = read(file);
  if (k === undefined) throw new MeshError('internal', `the portal key ${file} vanished while it was being created`);
  return k.key.privateKey.every((b, i) => b === kp.privateKey[i]) ? { ...k, created: true } : k;
}

function read(file: string): PortalKey | undefined {
  let text: string;
  let mode: number;
  try {
    text = fs.readFileSync(file, 'utf8');
    mode = fs.statSync(file).mode;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new MeshError('bad-key', `cannot read the portal key ${file}: ${(e as Error).message}`);
  }
  let seed: Uint8Array;
  try {
    const o = obj(parseJson(text, 4096, 'portal key file'), 'portal key file', ['type', 'sign']);
    if (o.type !== TYPE) throw new MeshError('bad-key', 'not a portal key file');
    seed = fromB64u(str(o, 'sign', 'portal key file', 60), 'portal key', c.ED25519_SEED_LEN);
  } catch (e) {
    throw new MeshError('bad-key', `the portal key ${file} is damaged (${(e as Error).message}); restore it from backup: a new key is a new portal identity`);
  }
  const key = c.ed25519KeyPair(seed);
  const warnings = (mode & 0o077) !== 0 ? [`the portal key ${file} is readable by other users (mode ${(mode & 0o777).toString(8)}); chmod 600 it`] : [];
  return { key, id: signKeyId(key.publicKey), created: false, warnings };
}
