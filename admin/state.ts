/**
 * The owner's state in the home directory (--home, $MESH_HOME, or $XDG_DATA_HOME/mesh: runtime/paths.ts). Every write goes
 * through runtime/files.ts (temp file, fsync, rename): after a power cut a file is exactly the
 * old or the new version.
 *
 *   profile.json      public-ish: account, master profile, devices, applications, log view (0600 anyway)
 *   admin-keys.json   private (0600): this administration device's signature and encryption keys
 *   master-seed.json  private (0600): only with --keep-master-key (seed §6.2: the master key is
 *                     normally used once and put away; the recovery shares are its backup)
 *
 * These files are our own, but they are read back through checks all the same (client/owner-state.ts,
 * shared with the owner app): a hand-edited or half-restored file fails with `state` and says which
 * file, never with a crash.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { b64u, fromB64u } from '../mesh/bytes.js';
import { MeshError } from '../mesh/errors.js';
import { parseJson, obj } from '../mesh/json.js';
import { MAX_STATE_BYTES, adminKeysJson, parseAdminKeysJson, parseState, trimReceipts, type State, type StoredAdminKeys } from '../client/owner-state.js';
import type { AdminKeys } from '../mesh/profiles.js';
import { readTextIfExists, writeJsonAtomic, cleanTempFiles } from '../runtime/files.js';
import { ownerHome } from '../runtime/paths.js';

// ---------------------------------------------------------------- home directory

export function homeDir(option: string | undefined): string {
  if (option !== undefined && option.length === 0) throw new MeshError('usage', '--home must not be empty');
  return ownerHome(option);
}

export const files = (home: string) => ({
  profile: path.join(home, 'profile.json'),
  adminKeys: path.join(home, 'admin-keys.json'),
  masterSeed: path.join(home, 'master-seed.json'),
});

export function ensureHome(home: string): void {
  fs.mkdirSync(home, { recursive: true, mode: 0o700 });
  cleanTempFiles(home);
}

export function hasProfile(home: string): boolean {
  return fs.existsSync(files(home).profile);
}

/** Refuse to overwrite an existing owner (`conflict`). */
export function requireNoProfile(home: string): void {
  if (hasProfile(home)) {
    throw new MeshError('conflict', `${home} already holds a Mesh profile (${files(home).profile}); use another --home, or move that directory away first`);
  }
}

// ---------------------------------------------------------------- profile.json

function stateError(file: string, e: unknown): never {
  const m = e instanceof Error ? e.message : String(e);
  throw new MeshError('state', `${file} is damaged (${m}); restore it from a backup, or start again with mesh recover in an empty --home`);
}

export function loadState(home: string): State {
  const f = files(home).profile;
  const t = readTextIfExists(f);
  if (t === undefined) {
    throw new MeshError('state', `no Mesh profile in ${home}: create one with "mesh profile create --portal URL --account NAME", join an existing account with "mesh admin join", or restore one with "mesh recover"`);
  }
  try {
    return parseState(parseJson(t, MAX_STATE_BYTES, 'profile.json'));
  } catch (e) {
    return stateError(f, e);
  }
}

export function saveState(home: string, s: State): void {
  trimReceipts(s);
  writeJsonAtomic(files(home).profile, s, 0o600);
}

// ---------------------------------------------------------------- admin-keys.json

export function saveAdminKeys(home: string, k: AdminKeys, extra: { account?: string; pending?: boolean } = {}): void {
  writeJsonAtomic(files(home).adminKeys, adminKeysJson(k, extra), 0o600);
}

export function readAdminKeys(home: string): StoredAdminKeys | undefined {
  const f = files(home).adminKeys;
  const t = readTextIfExists(f);
  if (t === undefined) return undefined;
  try {
    return parseAdminKeysJson(parseJson(t, 4096, 'admin-keys.json'));
  } catch (e) {
    return stateError(f, e);
  }
}

export function loadAdminKeys(home: string): AdminKeys {
  const k = readAdminKeys(home);
  if (k === undefined) {
    throw new MeshError('state', `${files(home).adminKeys} is missing: this administration device has lost its keys; add it again from another administration device (mesh admin add / join) or use mesh recover`);
  }
  return k.keys;
}

// ---------------------------------------------------------------- master-seed.json (only with --keep-master-key)

export function saveMasterSeed(home: string, seed: Uint8Array): void {
  writeJsonAtomic(files(home).masterSeed, { seed: b64u(seed) }, 0o600);
}

export function readMasterSeed(home: string): Uint8Array | undefined {
  const f = files(home).masterSeed;
  const t = readTextIfExists(f);
  if (t === undefined) return undefined;
  try {
    const o = obj(parseJson(t, 1024, 'master-seed.json'), 'master-seed.json', ['seed']);
    return fromB64u(o.seed, 'master-seed.json seed', 32);
  } catch (e) {
    return stateError(f, e);
  }
}

