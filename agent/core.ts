/**
 * The device's rules as a pure reducer: `(state, item, context) -> { state, events }`.
 *
 * No I/O, no clock, no randomness: the time is in the context (it is only recorded, never used
 * to decide), and the verified-master memo is a cache of a pure function. Everything the device
 * decides about a feed item (claim, master update, application profile, removal) is decided here
 * and table-tested in-process (test/agent-core.test.ts); the shells around it (feed, connection,
 * status, outputs) only move bytes and commit what this returns.
 *
 * The feed cursor moves only over items an answer delivered, one at a time: the first item must
 * be the next number after the cursor and every item the next after that, so a forged feed number
 * cannot skip the device past items it never saw (`feed-gap`).
 */
import { MeshError } from '../mesh/errors.js';
import { fromB64u } from '../mesh/bytes.js';
import { payloadBytes } from '../mesh/envelope.js';
import { verifyClaim, verifyMove, verifyRemove, parseClaimPayload, parseMovePayload, parseRemovePayload, type StatusError } from '../mesh/messages.js';
import { parseMasterPayload, verifyApplicationProfile, verifyMasterProfile, openApplicationProfile, parseApplicationPayload, type MasterProfile } from '../mesh/profiles.js';
import { signKeyId } from '../mesh/keys.js';
import type { FeedItem } from '../mesh/protocol.js';
import type { Json } from '../mesh/json.js';
import { Lru } from '../mesh/lru.js';
import { confirmNeeded, validate, type Schema } from '../mesh/schema.js';
import { merge, nextValues, type Effective, type KeyValue, type OwnerDoc } from './merge.js';
import { hmacSha512 } from '../mesh/crypto.js';
import { b64u, utf8 } from '../mesh/bytes.js';
import { withError, MAX_INVITES, MAX_NONCES, type AgentState, type Floor, type Owner, type PendingInvite } from './state.js';
import { checkGrant, grantDurationMs, openInviteKey, parseInvitePayload, verifyInvite } from '../mesh/invite.js';

/** What the reducer needs to know about the device and the moment; all of it given, none of it fetched. */
export interface CoreContext {
  readonly device: {
    readonly id: string;
    /** the device's X25519 encryption key pair (opens application profiles) */
    readonly enc: { readonly publicKey: Uint8Array; readonly privateKey: Uint8Array };
    /** the key derived from the label secret that checks a claimant saw the label */
    readonly claimKey: Uint8Array;
  };
  readonly schemas: ReadonlyMap<string, Schema>;
  /** the time to record (ISO 8601); decides nothing (only flags a signer's clock far ahead of it) */
  readonly now: string;
  readonly masters: MasterMemo;
  /** someone with the device in hand opened the claim window (the button): the label may claim a device that has owners */
  readonly claimWindowOpen: boolean;
  /** the device has a health check: every change is on probation until it passes (and, when its owner asked, until the portal is reached) */
  readonly health?: boolean;
}

export type AgentEvent =
  | { readonly type: 'claimed'; readonly n: number; readonly account: string; readonly master: string }
  | { readonly type: 'applied'; readonly n: number; readonly account: string; readonly master: string; readonly app: string; readonly seq: number }
  | { readonly type: 'removed'; readonly n: number; readonly account: string; readonly master: string }
  | { readonly type: 'move-asked'; readonly n: number; readonly account: string; readonly master: string; readonly portal: string; readonly all: boolean }
  | { readonly type: 'refused'; readonly n: number; readonly kind: string; readonly code: string; readonly message: string; readonly master?: string; readonly app?: string; readonly seq?: number };

export interface StepResult {
  readonly state: AgentState;
  readonly events: readonly AgentEvent[];
  /** the effective configuration may differ from before: the outputs must be rewritten */
  readonly configChanged: boolean;
}

/** A feed item whose number does not follow the cursor: nothing from it on was applied. */
export interface FeedGap {
  readonly expected: number;
  readonly got: number;
}

/**
 * Verified master profiles, memoised by envelope signature: verifying one costs a signature
 * check, and every item from an owner needs its master. A cache of a pure function, so the
 * reducer stays pure. Bounded (the portal's LRU).
 */
export class MasterMemo {
  private readonly lru = new Lru<string, { master: MasterProfile; kids: ReadonlySet<string> }>(256);

  get(owner: Owner): { master: MasterProfile; kids: ReadonlySet<string> } {
    const hit = this.lru.get(MasterMemo.key(owner.master, owner.masterEnvelope));
    return hit ?? this.remember(verifyMasterProfile(owner.masterEnvelope, owner.master));
  }

  /** A master verified already (the one a claim came with): the next item of its owner need not verify it again. */
  remember(master: MasterProfile): { master: MasterProfile; kids: ReadonlySet<string> } {
    const kids = new Set<string>([...master.payload.admins.map((a) => signKeyId(fromB64u(a.sign, 'sign', 32))), ...master.payload.revoked]);
    const v = { master, kids };
    this.lru.set(MasterMemo.key(master.id, master.envelope), v);
    return v;
  }

  private static key(id: string, env: Owner['masterEnvelope']): string {
    return `${id}|${env.sigs.map((s) => s.sig).join(',')}`;
  }
}

/**
 * Apply the items of one Download answer in feed order. Items at or below the cursor are
 * duplicates and skipped; the first item past the cursor must be cursor + 1 and each next one
 * follow it: at a gap the reducer stops and reports it, and the cursor stays where the last
 * delivered item left it.
 */
export function applyItems(s0: AgentState, items: readonly FeedItem[], ctx: CoreContext): StepResult & { readonly gap?: FeedGap } {
  let s = s0;
  const events: AgentEvent[] = [];
  let configChanged = false;
  for (const item of [...items].sort((a, b) => a.n - b.n)) {
    // a change on probation holds everything after it until it is confirmed or reverted
    if (s.pending !== null && s.pending !== undefined) break;
    if (item.n <= s.n) continue;
    if (item.n !== s.n + 1) return { state: s, events, configChanged, gap: { expected: s.n + 1, got: item.n } };
    const r = applyItem(s, item, ctx);
    s = r.state;
    events.push(...r.events);
    configChanged = configChanged || r.configChanged;
  }
  return { state: s, events, configChanged };
}

/**
 * A refusal that still changes the state: a verified claim refused for want of consent uses up its
 * nonce, so the portal cannot hold it back and deliver it again while a claim window is open.
 */
class RefusedKeeping extends MeshError {
  constructor(
    code: 'not-invited' | 'invitation-expired',
    message: string,
    readonly keep: AgentState,
  ) {
    super(code, message);
  }
}

/** Apply one feed item: verified, then obeyed or refused (the refusal recorded with its code); the cursor moves to it either way. */
export function applyItem(s: AgentState, item: FeedItem, ctx: CoreContext): StepResult {
  try {
    const r = decide(s, item, ctx);
    return { ...r, state: { ...r.state, n: item.n } };
  } catch (e) {
    const err = e instanceof MeshError ? e : new MeshError('internal', (e as Error).message);
    const where = itemContext(item);
    const error: StatusError = { code: err.code, message: err.message, at: ctx.now, ...where };
    const base = e instanceof RefusedKeeping ? e.keep : s;
    return {
      state: { ...withError(base, error), n: item.n },
      events: [{ type: 'refused', n: item.n, kind: item.kind, code: err.code, message: err.message, ...where }],
      configChanged: false,
    };
  }
}

function decide(s: AgentState, item: FeedItem, ctx: CoreContext): StepResult {
  // each kind's parser checks the payload's type itself (`wrong-type`)
  switch (item.kind) {
    case 'claim':
      return claim(s, item, ctx);
    case 'master':
      return masterUpdate(s, item);
    case 'application':
      return application(s, item, ctx);
    case 'remove':
      return remove(s, item, ctx);
    case 'invite':
      return invite(s, item, ctx);
    case 'move':
      return move(s, item, ctx);
  }
}

function claim(s: AgentState, item: FeedItem, ctx: CoreContext): StepResult {
  if (item.master === undefined) throw new MeshError('malformed', 'a claim arrived without its master profile');
  const claimed = parseClaimPayload(item.object);
  const attached = verifyMasterProfile(item.master, claimed.master);
  const known = s.owners[attached.id];
  const floor = floorOf(s, attached.id, ctx);
  // whatever the portal attaches, the master held for an owner never goes back
  const master = known !== undefined && known.masterSeq >= attached.payload.seq ? ctx.masters.get(known).master : attached;
  if (known === undefined && floor !== undefined && attached.payload.seq < floor.masterSeq) {
    throw new MeshError('rollback', `the claim came with master profile ${attached.payload.seq}; this device has seen ${floor.masterSeq} for that owner`);
  }
  refuseRevoked(item.object, revokedOf(known, floor));
  if (claimed.invite !== undefined) return claimByInvitation(s, item, ctx, { known, master, floor, invite: claimed.invite });
  const c = verifyClaim(item.object, master, { key: ctx.device.claimKey, which: 'device' });
  if (c.device !== ctx.device.id) throw new MeshError('wrong-device', `the claim is for device ${c.device}`);
  checkEpoch(s, c.epoch, 'claim');
  if (s.nonces.includes(c.nonce)) throw new MeshError('replay', `claim ${c.nonce} by ${c.account} was already used on this device`);
  // a guest is no exception: holding the label does not lift its grant (only the claim window does)
  if ((known === undefined || known.role === 'guest') && Object.keys(s.owners).length > 0 && !ctx.claimWindowOpen) {
    const who = known === undefined ? 'this device has owners' : `${c.account} is a guest on this device`;
    throw new RefusedKeeping('not-invited', `${c.account} claimed with the label, but ${who}: a co-owner needs an invitation from one of them, or the claim window opened on the device`, useNonce(s, c.nonce));
  }
  // the label with the device's consent (no owner yet, or the claim window open) makes a full owner, also of a guest
  const { role: _role, grant: _grant, grantFromMs: _from, grantEndMs: _end, invitedBy: _by, ...kept } = known ?? ({} as Partial<Owner>);
  const owner: Owner = {
    ...kept,
    master: master.id,
    account: c.account,
    masterEnvelope: master.envelope,
    masterSeq: master.payload.seq,
    claimedAt: known?.claimedAt ?? ctx.now,
    apps: known?.apps ?? {},
    revoked: union(revokedOf(known, floor), master.payload.revoked),
  };
  ctx.masters.remember(master);
  return {
    state: { ...useNonce(s, c.nonce), owners: { ...s.owners, [master.id]: owner } },
    events: [{ type: 'claimed', n: item.n, account: c.account, master: master.id }],
    configChanged: false,
  };
}

/**
 * A claim that names an invitation: accepted only against an invitation this device received from
 * one of its owners (not a guest), unused, within its time on this device's clock, and with the
 * proof made from the invitation's secret. Used or refused, the invitation is gone for good.
 */
function claimByInvitation(s: AgentState, item: FeedItem, ctx: CoreContext, p: { known: Owner | undefined; master: MasterProfile; floor: Floor | undefined; invite: string }): StepResult {
  const inv = s.invites[p.invite];
  if (inv === undefined) {
    if (s.nonces.includes(p.invite)) throw new MeshError('invitation-used', `invitation ${p.invite} has been used already: each works once`);
    if (s.nonces.includes(voided(p.invite))) throw new MeshError('not-invited', `invitation ${p.invite} is void: the owner who sent it no longer owns this device (or newer invitations crowded it out)`);
    throw new MeshError('not-invited', `no invitation ${p.invite} reached this device from any of its owners`);
  }
  const c = verifyClaim(item.object, p.master, { key: fromB64u(inv.key, 'invite key', 32), which: 'device' });
  if (c.device !== ctx.device.id) throw new MeshError('wrong-device', `the claim is for device ${c.device}`);
  checkEpoch(s, c.epoch, 'claim');
  if (s.nonces.includes(c.nonce)) throw new MeshError('replay', `claim ${c.nonce} by ${c.account} was already used on this device`);
  // from here the invitation is spent, whatever the outcome
  const invites = { ...s.invites };
  delete invites[p.invite];
  const spent: AgentState = { ...useNonce(useNonce(s, p.invite), c.nonce), invites };
  const nowMs = Date.parse(ctx.now);
  if (nowMs > inv.deadlineMs || nowMs < inv.receivedMs) {
    throw new RefusedKeeping('invitation-expired', `${c.account} accepted ${inv.account}'s invitation after the time it allowed`, spent);
  }
  if (s.owners[inv.by] === undefined) throw new RefusedKeeping('not-invited', `${inv.account}, who invited ${c.account}, no longer owns this device`, spent);
  // a full owner stays one; a guest (or a newcomer) takes the invitation's role and grant
  const asGuest = inv.role === 'guest' && (p.known === undefined || p.known.role === 'guest');
  const { role: _role, grant: _grant, grantFromMs: _from, grantEndMs: _end, ...base } = p.known ?? ({} as Partial<Owner>);
  const owner: Owner = {
    ...base,
    master: p.master.id,
    account: c.account,
    masterEnvelope: p.master.envelope,
    masterSeq: p.master.payload.seq,
    claimedAt: p.known?.claimedAt ?? ctx.now,
    apps: p.known?.apps ?? {},
    revoked: union(revokedOf(p.known, p.floor), p.master.payload.revoked),
    invitedBy: p.known?.invitedBy ?? inv.account,
    ...(asGuest ? { role: 'guest' as const, grant: inv.grant, grantFromMs: inv.receivedMs, ...(inv.grantMs !== undefined ? { grantEndMs: inv.receivedMs + inv.grantMs } : {}) } : {}),
  };
  return {
    state: { ...spent, owners: { ...s.owners, [p.master.id]: owner } },
    events: [{ type: 'claimed', n: item.n, account: c.account, master: p.master.id }],
    configChanged: false,
  };
}

/** An owner's invitation, kept until its invitee claims (or it is crowded out). */
function invite(s: AgentState, item: FeedItem, ctx: CoreContext): StepResult {
  const p0 = parseInvitePayload(item.object);
  const owner = s.owners[p0.master];
  if (owner === undefined) throw new MeshError('unknown-owner', `an invitation from ${p0.master}, who does not own this device`);
  refuseRevoked(item.object, revokedOf(owner, floorOf(s, owner.master, ctx)));
  const p = verifyInvite(item.object, ctx.masters.get(owner).master);
  if (owner.role === 'guest') throw new MeshError('not-permitted', `${owner.account} is a guest on this device: a guest cannot invite anyone`);
  if (p.device !== ctx.device.id) throw new MeshError('wrong-device', `the invitation is for device ${p.device}`);
  checkEpoch(s, p.epoch, 'invitation');
  if (s.nonces.includes(p.nonce) || s.nonces.includes(voided(p.nonce)) || s.invites[p.nonce] !== undefined) throw new MeshError('replay', `invitation ${p.nonce} by ${owner.account} has reached this device before`);
  const key = openInviteKey(p, ctx.device.enc);
  const nowMs = Date.parse(ctx.now);
  const grantMs = grantDurationMs(p);
  const pending: PendingInvite = {
    by: owner.master,
    account: owner.account,
    role: p.role,
    ...(p.grant !== undefined ? { grant: p.grant } : {}),
    key: b64u(key),
    receivedMs: nowMs,
    deadlineMs: nowMs + p.ttl * 1000,
    ...(grantMs !== undefined ? { grantMs } : {}),
  };
  const all = [...Object.entries(s.invites), [p.nonce, pending] as const];
  // the oldest crowded out die for good: delivered again, they are replays
  const crowded = all.slice(0, Math.max(0, all.length - MAX_INVITES)).map(([nonce]) => nonce);
  return { state: { ...voidInvites(s, crowded), invites: Object.fromEntries(all.slice(-MAX_INVITES)) }, events: [], configChanged: false };
}

/** An ownership message for another epoch (before a factory reset) is never obeyed. */
function checkEpoch(s: AgentState, epoch: string | undefined, what: string): void {
  if (epoch !== undefined && epoch !== s.epoch) throw new MeshError('wrong-epoch', `the ${what} was made for an earlier ownership of this device (before a factory reset)`);
}

function masterUpdate(s: AgentState, item: FeedItem): StepResult {
  const p = parseMasterPayload(payloadBytes(item.object));
  const id = signKeyId(fromB64u(p.sign, 'sign', 32));
  const owner = s.owners[id];
  if (owner === undefined) throw new MeshError('unknown-owner', `a master profile for ${id}, who does not own this device`);
  const master = verifyMasterProfile(item.object, id);
  if (master.payload.seq <= owner.masterSeq) throw new MeshError('rollback', `master profile ${master.payload.seq} is not newer than ${owner.masterSeq}`);
  const revoked = union(owner.revoked ?? [], master.payload.revoked);
  return { state: { ...s, owners: { ...s.owners, [id]: { ...owner, masterEnvelope: master.envelope, masterSeq: master.payload.seq, revoked } } }, events: [], configChanged: false };
}

function application(s: AgentState, item: FeedItem, ctx: CoreContext): StepResult {
  // find the owner by the signing key first: the payload (which may be large) is then parsed once, when verified
  const owner = ownerBySigner(s, item.object, ctx) ?? ownerNamedIn(s, item.object);
  const { master } = ctx.masters.get(owner);
  const floor = floorOf(s, owner.master, ctx);
  refuseRevoked(item.object, revokedOf(owner, floor));
  const ap = verifyApplicationProfile(item.object, master);
  const { app, seq } = ap.payload;
  if (ap.payload.master !== owner.master) throw new MeshError('wrong-master', `a ${app} profile names ${ap.payload.master}, but is signed by ${owner.account}`);
  const prev = owner.apps[app];
  const held = Math.max(prev?.seq ?? 0, floor?.apps[app] ?? 0, owner.reverted?.[app] ?? 0);
  if (seq <= held) throw new MeshError('rollback', `${app} profile ${seq} from ${owner.account} is not newer than ${held}, already applied`);
  const doc = openApplicationProfile(ap, { id: ctx.device.id, enc: ctx.device.enc });
  if (owner.role === 'guest') {
    const nowMs = Date.parse(ctx.now);
    if (owner.grantEndMs !== undefined && (nowMs > owner.grantEndMs || nowMs < (owner.grantFromMs ?? 0))) {
      throw new MeshError('grant-expired', `${owner.account} is a guest whose time on this device has ended`);
    }
    if (owner.grant === undefined) throw new MeshError('out-of-scope', `${owner.account} is a guest with no grant`);
    checkGrant(owner.grant, app, doc);
  }
  const schema = ctx.schemas.get(app);
  if (schema === undefined) throw new MeshError('schema', `this device does not run the application "${app}"`);
  const problems = validate(schema, doc);
  if (problems.length > 0) throw new MeshError('schema', `refused ${app} settings from ${owner.account}: ${problems.join('; ')}`);
  const values = nextValues(prev?.values, doc, ap.payload.created, item.n);
  const merged = mergeWith(s, owner.master, app, values);
  const mergedProblems = validate(schema, merged.values as Json);
  if (mergedProblems.length > 0) throw new MeshError('schema', `the merged ${app} settings would be invalid: ${mergedProblems.join('; ')}`);
  const need = confirmNeeded(schema, merge(docsFor(s, app)).values, merged.values as Json);
  if (need !== undefined && ap.payload.confirm === undefined) {
    throw new MeshError('confirm-required', `${app} settings from ${owner.account} change a setting this device only takes on probation: send it with a confirmation window (mesh config set ... --confirm-within ${need}s)`);
  }
  const apps = { ...owner.apps, [app]: { seq, created: ap.payload.created, appliedAt: ctx.now, values } };
  let next: AgentState = { ...s, owners: { ...s.owners, [owner.master]: { ...owner, apps } } };
  if (ap.payload.confirm !== undefined || ctx.health === true) {
    const nowMs = Date.parse(ctx.now);
    const contact = ap.payload.confirm !== undefined;
    next = { ...next, pending: { master: owner.master, account: owner.account, app, seq, n: item.n, ...(prev !== undefined ? { prev } : {}), sinceMs: nowMs, deadlineMs: nowMs + (ap.payload.confirm ?? 0) * 1000, contact } };
  }
  if (clockAhead(ap.payload.created, ctx.now)) {
    // applied by order all the same; the owners are told the signer's clock is off
    next = withError(next, { code: 'clock-ahead', message: `applied in feed order; ${owner.account} signed it at ${ap.payload.created}, ahead of this device's clock (${ctx.now})`, at: ctx.now, master: owner.master, app, seq });
  }
  return {
    state: next,
    events: [{ type: 'applied', n: item.n, account: owner.account, master: owner.master, app, seq }],
    configChanged: true,
  };
}

function remove(s: AgentState, item: FeedItem, ctx: CoreContext): StepResult {
  const p = parseRemovePayload(item.object);
  const owner = s.owners[p.master];
  if (owner === undefined) throw new MeshError('unknown-owner', `a removal for ${p.master}, who does not own this device`);
  refuseRevoked(item.object, revokedOf(owner, floorOf(s, owner.master, ctx)));
  verifyRemove(item.object, ctx.masters.get(owner).master);
  if (p.device !== ctx.device.id) throw new MeshError('wrong-device', `the removal is for device ${p.device}`);
  checkEpoch(s, p.epoch, 'removal');
  if (s.nonces.includes(p.nonce)) throw new MeshError('replay', `removal ${p.nonce} was already used on this device`);
  return { state: dropOwner(useNonce(s, p.nonce), owner.master, ctx.device.claimKey), events: [{ type: 'removed', n: item.n, account: owner.account, master: owner.master }], configChanged: true };
}

/**
 * An owner asks the device to move to another portal. Recorded per owner; once every owner (not
 * guests) has asked for the same portal, `state.move` says where: the shell switches to it
 * (agent/agent.ts), keeping owners, configuration, rollback state and epoch.
 */
function move(s: AgentState, item: FeedItem, ctx: CoreContext): StepResult {
  const p = parseMovePayload(item.object);
  const owner = s.owners[p.master];
  if (owner === undefined) throw new MeshError('unknown-owner', `a move asked by ${p.master}, who does not own this device`);
  refuseRevoked(item.object, revokedOf(owner, floorOf(s, owner.master, ctx)));
  verifyMove(item.object, ctx.masters.get(owner).master);
  if (p.device !== ctx.device.id) throw new MeshError('wrong-device', `the move is for device ${p.device}`);
  checkEpoch(s, p.epoch, 'move');
  if (s.nonces.includes(p.nonce)) throw new MeshError('replay', `move ${p.nonce} was already used on this device`);
  // the portal the device is on already (the new portal delivering the moves that brought it there): nothing to do
  if (p.portalId === s.portalKey) return { state: useNonce(s, p.nonce), events: [], configChanged: false };
  const moves = { ...s.moves, [owner.master]: { portal: p.portal, portalId: p.portalId } };
  const owners = Object.values(s.owners).filter((o) => o.role !== 'guest');
  const all = owners.every((o) => moves[o.master]?.portalId === p.portalId && moves[o.master]?.portal === p.portal);
  const next: AgentState = { ...useNonce(s, p.nonce), moves, ...(all ? { move: { portal: p.portal, portalId: p.portalId } } : {}) };
  return { state: next, events: [{ type: 'move-asked', n: item.n, account: owner.account, master: owner.master, portal: p.portal, all }], configChanged: false };
}

/** The owner one of whose administration keys (current or revoked) signed `env`, if any. */
function ownerBySigner(s: AgentState, env: FeedItem['object'], ctx: CoreContext): Owner | undefined {
  for (const owner of Object.values(s.owners)) {
    const { kids } = ctx.masters.get(owner);
    if (env.sigs.some((x) => kids.has(x.kid))) return owner;
  }
  return undefined;
}

/** Slow path, for objects no owner's key signed: say whether the named owner is unknown or the key is. */
function ownerNamedIn(s: AgentState, env: FeedItem['object']): Owner {
  const p = parseApplicationPayload(payloadBytes(env));
  const owner = s.owners[p.master];
  if (owner === undefined) throw new MeshError('unknown-owner', `configuration from ${p.master}, who does not own this device`);
  return owner;
}

/** The source name of changes made on the device itself (its dial). */
export const LOCAL_SOURCE = 'local';

/** Every document that counts for `app`: each owner's, and the device's own local changes; `master`'s replaced by `values` when given. */
function docsFor(s: AgentState, app: string, replace?: { master: string; values: Record<string, KeyValue> }): OwnerDoc[] {
  const docs: OwnerDoc[] = Object.values(s.owners).flatMap((o) => {
    const v = replace !== undefined && o.master === replace.master ? replace.values : o.apps[app]?.values;
    return v === undefined ? [] : [{ master: o.master, account: o.account, values: v }];
  });
  const local = replace?.master === LOCAL_SOURCE ? replace.values : s.local?.[app];
  if (local !== undefined && Object.keys(local).length > 0) docs.push({ master: LOCAL_SOURCE, account: LOCAL_SOURCE, values: local });
  return docs;
}

function mergeWith(s: AgentState, master: string, app: string, values: Record<string, KeyValue>): Effective {
  return merge(docsFor(s, app, { master, values }));
}

/**
 * A change made on the device (`mesh-agent set`, the thermostat's dial): checked against the
 * application's schema like any owner's, it takes effect now and yields to the next owner change
 * the device applies (its place in the order is just after the last feed item applied).
 */
export function setLocally(s: AgentState, app: string, change: { readonly set: Readonly<Record<string, Json>>; readonly remove: readonly string[] }, ctx: { readonly schemas: ReadonlyMap<string, Schema>; readonly now: string }): AgentState {
  const schema = ctx.schemas.get(app);
  if (schema === undefined) throw new MeshError('schema', `this device does not run the application "${app}"`);
  const prev = s.local?.[app] ?? {};
  const next: Record<string, KeyValue> = {};
  for (const [k, v] of Object.entries(prev)) if (!change.remove.includes(k)) next[k] = v;
  for (const [k, v] of Object.entries(change.set)) next[k] = { value: v, changedAt: ctx.now, n: s.n + 0.5 };
  const merged = mergeWith(s, LOCAL_SOURCE, app, next);
  const problems = validate(schema, merged.values as Json);
  if (problems.length > 0) throw new MeshError('schema', `refused: ${problems.join('; ')}`);
  const local = { ...s.local, [app]: next };
  if (Object.keys(next).length === 0) delete local[app];
  return { ...s, local };
}

// ------------------------------------------------------------ ownership outside the feed

// ------------------------------------------------------------ changes on probation

/** The change on probation has proved itself (portal reached with it in effect, health check passed). */
export function confirmPending(s: AgentState): AgentState {
  return s.pending === null || s.pending === undefined ? s : { ...s, pending: null };
}

/**
 * The change on probation failed (no portal contact in its window, or the health check): its owner's
 * application goes back to what it was, the change is never applied again (its owner publishes
 * anew), and the owners are told why (`reverted`, `unhealthy`).
 */
export function revertPending(s: AgentState, why: { readonly code: 'reverted' | 'unhealthy'; readonly reason: string }, now: string): AgentState {
  const p = s.pending;
  if (p === null || p === undefined) return s;
  const owner = s.owners[p.master];
  let next: AgentState = { ...s, pending: null };
  if (owner !== undefined) {
    const apps = { ...owner.apps };
    if (p.prev !== undefined) apps[p.app] = p.prev;
    else delete apps[p.app];
    next = { ...next, owners: { ...s.owners, [p.master]: { ...owner, apps, reverted: { ...owner.reverted, [p.app]: Math.max(owner.reverted?.[p.app] ?? 0, p.seq) } } } };
  }
  return withError(next, { code: why.code, message: `${p.app} #${p.seq} from ${p.account} was reverted: ${why.reason}`.slice(0, 1000), at: now, master: p.master, app: p.app, seq: p.seq });
}

/** A factory reset: a new epoch; every owner forgotten, but not their rollback floors or the used nonces. */
export function factoryReset(s: AgentState, epoch: string, claimKey: Uint8Array): AgentState {
  let next: AgentState = s;
  for (const id of Object.keys(s.owners)) next = dropOwner(next, id, claimKey);
  return { ...next, owners: {}, errors: [], epoch, resets: s.resets + 1, invites: {}, local: {}, pending: null };
}

/** One owner removed by someone holding the device (`mesh-agent remove-owner`); refuses an unknown one. */
export function removeOwnerLocally(s: AgentState, who: string, claimKey: Uint8Array): { state: AgentState; removed: Owner } {
  const owner = Object.values(s.owners).find((o) => o.account === who || o.master === who);
  if (owner === undefined) throw new MeshError('unknown-owner', `${who} does not own this device; its owners are ${Object.values(s.owners).map((o) => o.account).join(', ') || 'none'}`);
  return { state: dropOwner(s, owner.master, claimKey), removed: owner };
}

/** Remove an owner, keeping what refuses its older objects later (its floor). */
function dropOwner(s: AgentState, master: string, claimKey: Uint8Array): AgentState {
  const owner = s.owners[master];
  if (owner === undefined) return s;
  const key = floorKey(master, claimKey);
  const old = s.floors[key];
  const apps: Record<string, number> = { ...old?.apps };
  for (const [app, a] of Object.entries(owner.apps)) apps[app] = Math.max(apps[app] ?? 0, a.seq);
  // a change this device reverted stays refused after the owner leaves and comes back, like an applied one
  for (const [app, seq] of Object.entries(owner.reverted ?? {})) apps[app] = Math.max(apps[app] ?? 0, seq);
  const floor: Floor = { masterSeq: Math.max(old?.masterSeq ?? 0, owner.masterSeq), apps, revoked: union(old?.revoked ?? [], owner.revoked ?? []) };
  const owners = { ...s.owners };
  delete owners[master];
  // the invitations a removed owner sent go with it, for good (delivered again, they are replays)
  const invites = Object.fromEntries(Object.entries(s.invites).filter(([, i]) => i.by !== master));
  const gone = Object.keys(s.invites).filter((nonce) => invites[nonce] === undefined);
  const pending = s.pending?.master === master ? null : (s.pending ?? null);
  return { ...voidInvites(s, gone), owners, invites, pending, floors: { ...s.floors, [key]: floor } };
}

/**
 * Invitations that reached the device and died unused (their inviter left, or newer ones crowded
 * them out) are remembered among the used nonces, marked, so that the portal cannot deliver one
 * again and revive it, while a claim naming one is still told `not-invited` (not `invitation-used`).
 */
const voided = (nonce: string): string => `void:${nonce}`;

function voidInvites(s: AgentState, nonces: readonly string[]): AgentState {
  return nonces.length === 0 ? s : { ...s, nonces: [...s.nonces, ...nonces.map(voided)].slice(-MAX_NONCES) };
}

function floorKey(master: string, claimKey: Uint8Array): string {
  return b64u(hmacSha512(claimKey, utf8(`mesh owner floor\0${master}`)).subarray(0, 16));
}

function floorOf(s: AgentState, master: string, ctx: CoreContext): Floor | undefined {
  return s.floors[floorKey(master, ctx.device.claimKey)];
}

function revokedOf(owner: Owner | undefined, floor: Floor | undefined): string[] {
  return union(owner?.revoked ?? [], floor?.revoked ?? []);
}

/** An object signed by a key that any master profile of its owner the device has seen revoked is refused. */
function refuseRevoked(env: FeedItem['object'], revoked: readonly string[]): void {
  const kid = env.sigs.find((x) => revoked.includes(x.kid))?.kid;
  if (kid !== undefined) throw new MeshError('revoked-key', `signed by ${kid}, an administration key its owner revoked`);
}

function useNonce(s: AgentState, nonce: string): AgentState {
  return { ...s, nonces: [...s.nonces, nonce].slice(-MAX_NONCES) };
}

function union(a: readonly string[], b: readonly string[]): string[] {
  return [...new Set([...a, ...b])].sort();
}

/** Is the signer's time more than ten minutes ahead of the device's, on a device whose clock has been set at all? */
function clockAhead(created: string, now: string): boolean {
  if (now < '2026-01-01') return false; // a board that booted without the time: its clock says nothing
  return Date.parse(created) - Date.parse(now) > 10 * 60_000;
}

/** The effective configuration of every application, with who set each value. */
export function effective(s: AgentState): Record<string, Effective> {
  const apps = new Set<string>(Object.keys(s.local ?? {}));
  for (const o of Object.values(s.owners)) for (const a of Object.keys(o.apps)) apps.add(a);
  const out: Record<string, Effective> = {};
  for (const app of [...apps].sort()) out[app] = merge(docsFor(s, app));
  return out;
}

/** The configuration file's document: each application's values, and `_sources` (who set what). */
export function configDocument(s: AgentState): Record<string, unknown> {
  const doc: Record<string, unknown> = {};
  const sources: Record<string, unknown> = {};
  for (const [app, e] of Object.entries(effective(s))) {
    doc[app] = e.values;
    sources[app] = e.sources;
  }
  doc._sources = sources;
  return doc;
}

/** What a refusal is about, read without trusting the payload (for the owners' view of the error). */
function itemContext(item: FeedItem): { master?: string; app?: string; seq?: number } {
  try {
    const v = JSON.parse(Buffer.from(item.object.payload, 'base64url').toString('utf8')) as Record<string, unknown>;
    const out: { master?: string; app?: string; seq?: number } = {};
    if (typeof v.master === 'string' && v.master.length <= 200) out.master = v.master;
    if (typeof v.app === 'string' && v.app.length <= 200) out.app = v.app;
    if (typeof v.seq === 'number' && Number.isSafeInteger(v.seq) && v.seq >= 0) out.seq = v.seq;
    return out;
  } catch {
    return {};
  }
}
