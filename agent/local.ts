/**
 * What someone holding the device does to it: open the claim window (the button on a real board;
 * the hook can call it from a GPIO), remove one owner, factory reset, change a setting (its dial). Physical possession decides
 * what the network cannot: these never come from the portal.
 *
 * While the agent runs it is the one writer of the state, so a local command is a file dropped
 * into DIR/inbox/ (atomically) that the agent applies through its store and answers with a
 * `.done.json` file; when no agent runs, the command applies the change to the state itself.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { MeshError, isMeshError } from '../mesh/errors.js';
import { b64u } from '../mesh/bytes.js';
import { readTextIfExists, writeJsonAtomic } from '../runtime/files.js';
import { factoryReset, removeOwnerLocally, setLocally } from './core.js';
import { checkJsonValue, type Json } from '../mesh/json.js';
import type { Schema } from '../mesh/schema.js';
import type { AgentState } from './state.js';

export type LocalCommand =
  | { readonly cmd: 'open-claim-window'; readonly minutes: number }
  | { readonly cmd: 'remove-owner'; readonly who: string }
  | { readonly cmd: 'reset' }
  | { readonly cmd: 'set'; readonly app: string; readonly set: Readonly<Record<string, Json>>; readonly remove: readonly string[] }
  | { readonly cmd: 'move'; readonly portal: string; readonly portalId: string };

export interface LocalResult {
  readonly ok: boolean;
  readonly code?: string;
  readonly message: string;
}

const INBOX = 'inbox';
const PID_FILE = 'agent.pid';
export const MAX_CLAIM_WINDOW_MINUTES = 60;

/** A fresh ownership epoch. */
export function newEpoch(): string {
  return b64u(randomBytes(16));
}

/** Apply a local command to the state (pure but for the new epoch it is given). */
export function applyLocal(
  s: AgentState,
  c: LocalCommand,
  ctx: { readonly claimKey: Uint8Array; readonly nowMs: number; readonly epoch: string; readonly schemas: ReadonlyMap<string, Schema> },
): { state: AgentState; message: string; configChanged: boolean } {
  switch (c.cmd) {
    case 'set': {
      const state = setLocally(s, c.app, c, { schemas: ctx.schemas, now: new Date(ctx.nowMs).toISOString() });
      const what = [...Object.entries(c.set).map(([k, v]) => `${k}=${JSON.stringify(v)}`), ...c.remove.map((k) => `${k} unset`)].join(', ');
      return { state, message: `set on the device: ${c.app} ${what}; it holds until an owner's next change`, configChanged: true };
    }
    case 'open-claim-window': {
      const minutes = Math.min(MAX_CLAIM_WINDOW_MINUTES, Math.max(1, Math.floor(c.minutes)));
      return { state: { ...s, claimWindowUntil: ctx.nowMs + minutes * 60_000 }, message: `the claim window is open for ${minutes} minutes: the label can claim this device now`, configChanged: false };
    }
    case 'remove-owner': {
      const r = removeOwnerLocally(s, c.who, ctx.claimKey);
      return { state: r.state, message: `${r.removed.account} no longer owns this device; the other owners are not affected`, configChanged: true };
    }
    case 'move':
      // someone holding the device moves it (its old portal is gone): as if every owner had asked
      return { state: { ...s, move: { portal: c.portal, portalId: c.portalId } }, message: `moving to ${c.portal} (portal ${c.portalId}): the device registers there, keeping its owners and configuration`, configChanged: false };
    case 'reset':
      return {
        state: { ...factoryReset(s, ctx.epoch, ctx.claimKey), claimWindowUntil: 0 },
        message: 'factory reset: every owner and all configuration are gone; the device keeps its identity and label, and nothing of its earlier owners will be obeyed again',
        configChanged: true,
      };
  }
}

export function parseLocalCommand(v: unknown): LocalCommand {
  const o = v as Record<string, unknown> | null;
  if (o === null || typeof o !== 'object') throw new MeshError('malformed', 'a local command is a JSON object');
  switch (o.cmd) {
    case 'open-claim-window':
      if (typeof o.minutes !== 'number' || !Number.isFinite(o.minutes)) throw new MeshError('malformed', 'open-claim-window needs minutes');
      return { cmd: 'open-claim-window', minutes: o.minutes };
    case 'remove-owner':
      if (typeof o.who !== 'string' || o.who.length === 0 || o.who.length > 300) throw new MeshError('malformed', 'remove-owner needs who');
      return { cmd: 'remove-owner', who: o.who };
    case 'reset':
      return { cmd: 'reset' };
    case 'move':
      if (typeof o.portal !== 'string' || !/^https?:\/\/\S{1,290}$/.test(o.portal)) throw new MeshError('malformed', 'move needs the portal URL');
      if (typeof o.portalId !== 'string' || !/^[A-Z2-7-]{10,120}$/.test(o.portalId)) throw new MeshError('malformed', "move needs the portal's key (its UDF)");
      return { cmd: 'move', portal: o.portal, portalId: o.portalId };
    case 'set': {
      if (typeof o.app !== 'string' || !/^[a-z0-9][a-z0-9._-]{0,63}$/.test(o.app)) throw new MeshError('malformed', 'set needs an application name');
      if (typeof o.set !== 'object' || o.set === null || Array.isArray(o.set) || !Array.isArray(o.remove) || !o.remove.every((k) => typeof k === 'string')) throw new MeshError('malformed', 'set needs set and remove');
      return { cmd: 'set', app: o.app, set: checkJsonValue(o.set, 'set') as Record<string, Json>, remove: o.remove as string[] };
    }
    default:
      throw new MeshError('malformed', `unknown local command ${JSON.stringify(o.cmd)}`);
  }
}

// ------------------------------------------------------------ the inbox

export function inboxDir(dir: string): string {
  return path.join(dir, INBOX);
}

/** Drop a command for the running agent; returns its id. */
export function enqueue(dir: string, c: LocalCommand): string {
  const id = `${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
  writeJsonAtomic(path.join(inboxDir(dir), `${id}.json`), c, 0o600);
  return id;
}

/** Commands waiting, oldest first. */
export function pendingCommands(dir: string): { id: string; command: LocalCommand | MeshError }[] {
  let names: string[];
  try {
    names = fs.readdirSync(inboxDir(dir));
  } catch {
    return [];
  }
  return names
    .filter((n) => n.endsWith('.json') && !n.endsWith('.done.json') && !n.startsWith('.'))
    .sort()
    .map((n) => {
      const id = n.slice(0, -'.json'.length);
      try {
        return { id, command: parseLocalCommand(JSON.parse(readTextIfExists(path.join(inboxDir(dir), n)) ?? 'null')) };
      } catch (e) {
        return { id, command: isMeshError(e) ? e : new MeshError('malformed', (e as Error).message) };
      }
    });
}

/** Answer a command and take it out of the inbox. */
export function answer(dir: string, id: string, r: LocalResult): void {
  writeJsonAtomic(path.join(inboxDir(dir), `${id}.done.json`), r, 0o600);
  fs.rmSync(path.join(inboxDir(dir), `${id}.json`), { force: true });
}

/** Wait for the running agent's answer (polling the file; the agent answers within a moment). */
export async function awaitAnswer(dir: string, id: string, timeoutMs: number): Promise<LocalResult | undefined> {
  const file = path.join(inboxDir(dir), `${id}.done.json`);
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    const t = readTextIfExists(file);
    if (t !== undefined) {
      fs.rmSync(file, { force: true });
      return JSON.parse(t) as LocalResult;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return undefined;
}

// ------------------------------------------------------------ is an agent running on this directory?

export function writePid(dir: string): void {
  writeJsonAtomic(path.join(dir, PID_FILE), { pid: process.pid }, 0o600);
}

export function removePid(dir: string): void {
  const t = readTextIfExists(path.join(dir, PID_FILE));
  if (t !== undefined && (JSON.parse(t) as { pid: number }).pid === process.pid) fs.rmSync(path.join(dir, PID_FILE), { force: true });
}

export function agentRunning(dir: string): boolean {
  const t = readTextIfExists(path.join(dir, PID_FILE));
  if (t === undefined) return false;
  try {
    process.kill((JSON.parse(t) as { pid: number }).pid, 0);
    return true;
  } catch {
    return false;
  }
}
