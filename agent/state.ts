/**
 * The agent's persistent state: its owners (one entry per claimant, keyed by master UDF), the
 * highest applied sequence per owner and application (rollback protection), the feed cursor and
 * the last errors. Written atomically after every change (runtime/files.ts), so a power cut
 * leaves exactly the old or the new state.
 */
import * as path from 'node:path';
import { MeshError } from '../mesh/errors.js';
import type { SignedEnvelope } from '../mesh/envelope.js';
import type { StatusError, TreeHeadRef } from '../mesh/messages.js';
import type { KeyValue } from './merge.js';
import type { Grant } from '../mesh/invite.js';
import { readTextIfExists, writeJsonAtomic, cleanTempFiles } from '../runtime/files.js';

export interface AppState {
  readonly seq: number;
  readonly created: string;
  readonly appliedAt: string;
  readonly values: Readonly<Record<string, KeyValue>>;
}

export interface Owner {
  readonly master: string;
  readonly account: string;
  readonly masterEnvelope: SignedEnvelope;
  readonly masterSeq: number;
  readonly claimedAt: string;
  readonly apps: Readonly<Record<string, AppState>>;
  /** every administration key any master profile of this owner that the device has seen revoked */
  readonly revoked?: readonly string[];
  /** per application, the sequence of a change this device reverted: it is not applied again (the owner publishes anew) */
  readonly reverted?: Readonly<Record<string, number>>;
  /** a guest: may set only what `grant` allows, and invite nobody */
  readonly role?: 'guest';
  readonly grant?: Grant;
  /** the guest's rights, on this device's clock (ms): from when the invitation arrived, to its end (absent: no end) */
  readonly grantFromMs?: number;
  readonly grantEndMs?: number;
  /** the account of the owner whose invitation this one accepted */
  readonly invitedBy?: string;
}

/** An invitation an owner sent, waiting for its invitee's claim. Times are this device's clock (ms). */
export interface PendingInvite {
  readonly by: string;
  readonly account: string;
  readonly role: 'owner' | 'guest';
  readonly grant?: Grant;
  /** the device-proof key the invitee's claim must be made with (base64url) */
  readonly key: string;
  readonly receivedMs: number;
  readonly deadlineMs: number;
  /** a guest's rights last this long from receivedMs (absent: no end) */
  readonly grantMs?: number;
}

/**
 * What must outlive an owner's removal and a factory reset so that owner's older objects stay
 * refused: the highest master and application sequences and the revoked keys. Keyed by a keyed
 * hash of the owner's master fingerprint (under a key only the device holds), so a reset device
 * does not keep a readable list of who owned it.
 */
export interface Floor {
  readonly masterSeq: number;
  readonly apps: Readonly<Record<string, number>>;
  readonly revoked: readonly string[];
}

export interface AgentState {
  readonly v: 1;
  /** the last feed item applied (Download cursor) */
  readonly n: number;
  readonly statusSeq: number;
  readonly registered: boolean;
  /** last time the portal answered */
  readonly lastContact: string | null;
  /** the portal key pinned on first contact */
  readonly portalKey: string | null;
  readonly treeHead: TreeHeadRef | null;
  readonly owners: Readonly<Record<string, Owner>>;
  readonly errors: readonly StatusError[];
  /** the ownership epoch: a factory reset starts a new one (random, made by the shell) */
  readonly epoch: string;
  /** how many factory resets this device has had */
  readonly resets: number;
  /** nonces of the claims, invitations and removals obeyed or refused as replays: each works once, across resets; and, marked `void:`, of invitations that died unused */
  readonly nonces: readonly string[];
  /** rollback floors of former and current owners, kept across removals and resets */
  readonly floors: Readonly<Record<string, Floor>>;
  /** until when (this device's clock, ms) the claim window opened on the device stays open */
  readonly claimWindowUntil: number;
  /** invitations received and not yet used, by nonce (at most MAX_INVITES; the oldest go first) */
  readonly invites: Readonly<Record<string, PendingInvite>>;
  /** changes made on the device itself (its dial: `mesh-agent set`), per application and key */
  readonly local: Readonly<Record<string, Readonly<Record<string, KeyValue>>>>;
  /** a change applied that must be confirmed (portal reached, health check passed) before its deadline, or reverted */
  readonly pending: PendingConfirm | null;
  /** moves to another portal asked, per owner (master): once every owner asked for the same, `move` */
  readonly moves?: Readonly<Record<string, { readonly portal: string; readonly portalId: string }>>;
  /** where every owner asked the device to move: the shell switches to it and clears this */
  readonly move?: { readonly portal: string; readonly portalId: string } | null;
  /** the portal the device talks to since a move (agent.json's until then) */
  readonly portalUrl?: string;
}

/** A change on probation: what to go back to, and until when (this device's clock, ms). */
export interface PendingConfirm {
  readonly master: string;
  readonly account: string;
  readonly app: string;
  readonly seq: number;
  /** the feed item that carried it */
  readonly n: number;
  /** the owner's application state before it (absent: the owner had none for the app) */
  readonly prev?: AppState;
  readonly sinceMs: number;
  readonly deadlineMs: number;
  /** false: only the device's health check must pass (no confirmation asked for); absent or true: the portal must be reached too, by the deadline */
  readonly contact?: boolean;
}

export const EMPTY_STATE: AgentState = { v: 1, n: 0, statusSeq: 0, registered: false, lastContact: null, portalKey: null, treeHead: null, owners: {}, errors: [], epoch: '', resets: 0, nonces: [], floors: {}, claimWindowUntil: 0, invites: {}, local: {}, pending: null };

/** invitations waiting at once */
export const MAX_INVITES = 32;

/** nonces remembered (the oldest are forgotten first); each ownership change uses one */
export const MAX_NONCES = 4096;

export const MAX_ERRORS = 16;

export function statePath(dir: string): string {
  return path.join(dir, 'state.json');
}

export function loadState(dir: string): AgentState {
  cleanTempFiles(dir);
  const t = readTextIfExists(statePath(dir));
  if (t === undefined) return EMPTY_STATE;
  let v: unknown;
  try {
    v = JSON.parse(t);
  } catch {
    throw new MeshError('state', `${statePath(dir)} is not valid JSON; it was not written by this agent (writes are atomic). Move it away to start from a factory reset.`);
  }
  const s = v as Partial<AgentState>;
  if (s.v !== 1 || typeof s.n !== 'number' || typeof s.owners !== 'object' || s.owners === null) {
    throw new MeshError('state', `${statePath(dir)} has an unknown format`);
  }
  return { ...EMPTY_STATE, ...s } as AgentState;
}

export function saveState(dir: string, s: AgentState): void {
  writeJsonAtomic(statePath(dir), s, 0o600);
}

export function withError(s: AgentState, e: StatusError): AgentState {
  return { ...s, errors: [...s.errors, e].slice(-MAX_ERRORS) };
}
