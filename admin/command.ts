/**
 * What every `mesh` command shares: its table entry (name, one-line summary, help text, options),
 * option helpers that turn a bad value into a `usage` error that says what is expected, and the
 * owner context (state, keys, a portal client that opens its own sessions).
 */
import type { ParseArgsConfig } from 'node:util';
import * as os from 'node:os';
import { MeshError, isMeshError } from '../mesh/errors.js';
import { recoverSecret } from '../mesh/shamir.js';
import type { MasterKeys } from '../mesh/keys.js';
import { NAME_PATTERN } from '../mesh/profiles.js';
import { RESERVED_APP_PREFIX, ROLLOUT_APP } from '../client/rollout.js';
import { intOr, type CommandIo } from '../runtime/cli.js';
export { LABEL_PATTERN, checkLabel } from '../client/owner-state.js';
import { adminKid, checkMasterKeys, type State } from '../client/owner-state.js';
import { loadAdminKeys, loadState, readMasterSeed } from './state.js';
import { ownerClient, type Ctx as OwnerCtx } from '../client/owner.js';
import { saveState } from './state.js';

export type Options = NonNullable<ParseArgsConfig['options']>;
export type Values = Record<string, string | boolean | string[] | boolean[] | undefined>;

export interface Env {
  readonly io: CommandIo;
  readonly home: string;
}

/** An owner's context in the CLI: the shared one (client/owner.ts) with the home directory and the terminal. */
export interface Ctx extends OwnerCtx {
  readonly home: string;
  readonly io: CommandIo;
}

export interface Command {
  /** e.g. "device claim" */
  readonly name: string;
  readonly summary: string;
  /** the full --help text (usage line first) */
  readonly help: string;
  readonly options: Options;
  run(values: Values, positionals: string[], env: Env): Promise<void>;
}

/** Options every command takes besides --help and --json. */
export const GLOBAL_OPTIONS: Options = { home: { type: 'string' } };

export function strOpt(v: Values, k: string): string | undefined {
  const x = v[k];
  return typeof x === 'string' ? x : undefined;
}

export function needStr(v: Values, k: string, what: string): string {
  const x = strOpt(v, k);
  if (x === undefined || x.length === 0) throw new MeshError('usage', `--${k} is required: ${what}`);
  return x;
}

export function listOpt(v: Values, k: string): string[] {
  const x = v[k];
  if (Array.isArray(x)) return x.filter((s): s is string => typeof s === 'string');
  return typeof x === 'string' ? [x] : [];
}

export function intOpt(v: Values, k: string, dflt: number, min: number, max: number): number {
  return intOr(strOpt(v, k), `--${k}`, dflt, { min, max });
}

export function checkAppName(app: string | undefined): string {
  if (app === undefined) throw new MeshError('usage', 'name the application, e.g. thermostat');
  if (!NAME_PATTERN.test(app)) throw new MeshError('usage', `"${app}" is not an application name: use lowercase letters, digits, ".", "_" or "-"`);
  if (app.startsWith(RESERVED_APP_PREFIX)) throw new MeshError('usage', `"${app}": application names starting with "${RESERVED_APP_PREFIX}" are reserved (the rollout record is kept under ${ROLLOUT_APP})`);
  return app;
}

/** The host name, cut to what a profile accepts as an administration device's name. */
export function defaultAdminName(): string {
  const h = os.hostname().replace(/[^\p{L}\p{N} ._'-]/gu, '-').slice(0, 64);
  return h.length > 0 ? h : 'admin';
}

/** Load the owner's state and keys and a portal client; always closes the client. */
export async function withOwner<T>(env: Env, fn: (ctx: Ctx) => Promise<T>): Promise<T> {
  const state: State = loadState(env.home);
  const admin = loadAdminKeys(env.home);
  const client = ownerClient(state, admin);
  try {
    return await fn({ home: env.home, io: env.io, state, admin, client, ahead: new Map(), store: (s) => saveState(env.home, s), note: (line) => env.io.progress(line) });
  } catch (e) {
    // the portal refuses this computer's key: say what it means for the owner
    if (isMeshError(e, 'revoked-key') && e.message.startsWith('portal:')) {
      throw new MeshError('revoked-key', `this administration device (${adminKid(admin)}) has been revoked from ${state.account}; it can no longer change anything. Use another administration device, or mesh recover with your recovery shares (${e.message})`);
    }
    if (isMeshError(e, 'unknown-signer') && e.message.startsWith('portal:')) {
      throw new MeshError('unknown-signer', `the portal does not accept this administration device (${adminKid(admin)}) for ${state.account}: it is not listed in the account's master profile (${e.message})`);
    }
    throw e;
  } finally {
    client.close();
  }
}

/**
 * The master key, needed only to change the set of administration devices: from the kept seed,
 * or rebuilt from at least K recovery shares, and checked against the account's master UDF.
 */
export function masterKeyFor(env: Env, state: State, shares: string[]): MasterKeys {
  if (shares.length > 0) {
    const seed = recoverSecret(shares);
    return checkMasterKeys(seed, state.master, state.account);
  }
  const kept = readMasterSeed(env.home);
  if (kept !== undefined) return checkMasterKeys(kept, state.master, state.account);
  throw new MeshError('not-enough-shares', 'this needs your master key, which is not kept on this computer: give your recovery shares, each with --share (as many as your quorum, e.g. 3)');
}
