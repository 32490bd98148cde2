/**
 * The model-based test of the device's rules (issue 19): random sequences of events run against
 * the REAL pure core (agent/core.ts: applyItems, factoryReset, removeOwnerLocally, configDocument)
 * and against a small reference model of what the device must believe. Shared by
 * test/agent-model.test.ts (npm test) and scripts/model-long.ts (the long run).
 *
 * Events: claims by label (with and without the claim window, by strangers, with the epoch or
 * without), by invitation (valid, reused, after its deadline, for an invitation never delivered,
 * after the inviter left, for an earlier epoch), with an older master attached, with a stolen
 * revoked key; invitations by owners (co-owner; guest limited to thermostat:setpoint=16..24 or to
 * the whole thermostat, with or without an end) and by guests; configuration in and out of schema
 * and of a guest's scope, before and after a guest's end; removals (also of somebody else), local
 * removals, factory resets (a new epoch); master updates that revoke the previous key; the device
 * clock moving forward, back, or lost (1970); objects made for an earlier epoch; and the hostile
 * portal's moves: withholding (dropping) an object and delivering it later (reorder), replaying
 * any object made so far (duplicate; claims, invitations, invitation claims, removals, masters,
 * profiles), an older profile after a newer one, an older master attached to a claim, and
 * re-sending an already-read feed number.
 *
 * After every step the runner checks:
 *   - the device's outcome (obeyed, or refused with a code) is the model's;
 *   - the owners and guests (account, role, a guest's end, who invited, the master held) are the model's;
 *   - the pending invitations (nonce and deadline) are the model's;
 *   - the effective configuration (configDocument) is the model's;
 *   - every refusal is the last error recorded, with its code;
 * and, independently of the model:
 *   - no obeyed object is signed by a key revoked in any master the device has held;
 *   - no obeyed object names an epoch other than the current one, and no pending invitation is of
 *     an earlier epoch;
 *   - no claim, invitation claim, invitation or removal takes effect twice (nonces tracked here);
 *   - a re-sent feed number changes nothing.
 *
 * Speed: the owners' keys (four generations each) and the device are made once per process
 * (`new ModelWorld()`); every sequence starts from a fresh state. Signed objects are made on first
 * use and cached by what determines them (owner, key generation, epoch, the how-many-th of its
 * kind in the sequence, the content), so a later sequence reuses them (a fresh state has used no
 * nonce, so reusing an object across sequences is a fresh device seeing it). With the crypto memos
 * of harness/crypto-memo.ts installed, a step costs tens of microseconds.
 */
import fc from 'fast-check';
import { applyItems, configDocument, factoryReset, removeOwnerLocally, type AgentEvent, type CoreContext } from '../agent/core.js';
import { EMPTY_STATE, MAX_INVITES, type AgentState } from '../agent/state.js';
import { generateMasterKeys, signKeyId, type MasterKeys } from '../mesh/keys.js';
import * as c from '../mesh/crypto.js';
import { adminEntry, createApplicationProfile, createMasterProfile, type AdminKeys } from '../mesh/profiles.js';
import { createClaim, createRemove, parseClaimPayload, parseRemovePayload } from '../mesh/messages.js';
import { createInvite, deriveInviteSecrets, newInviteSecret, parseGuestSpec, parseInvitePayload, type Grant } from '../mesh/invite.js';
import type { ClaimSecrets } from '../mesh/claim.js';
import type { SignedEnvelope } from '../mesh/envelope.js';
import type { Json } from '../mesh/json.js';
import type { FeedItem, ItemKind } from '../mesh/protocol.js';
import { CoreDevice, FIXED_TIME } from './core-world.js';

export const WHO = ['alice', 'bob', 'carol', 'mallory'] as const;
export type Who = (typeof WHO)[number];
/** key generations per owner: a rotation moves to the next, revoking the previous key */
export const GENS = 4;

const T0 = Date.parse(FIXED_TIME);
const MIN = 60_000;
const HOUR = 3_600_000;

export type Cmd =
  | { readonly c: 'claim'; readonly lit: boolean; readonly who: Who; readonly epoch: boolean }
  | { readonly c: 'claim-old-master'; readonly lit: boolean; readonly who: Who; readonly back: number }
  | { readonly c: 'claim-stolen-key'; readonly lit: boolean; readonly who: Who; readonly back: number }
  | { readonly c: 'set'; readonly lit: boolean; readonly who: Who; readonly key: 'setpoint' | 'mode'; readonly v: number; readonly bad: boolean; readonly only: boolean }
  | { readonly c: 'set-late'; readonly lit: boolean; readonly who: Who; readonly v: number }
  | { readonly c: 'remove'; readonly lit: boolean; readonly who: Who; readonly epoch: boolean }
  | { readonly c: 'remove-other'; readonly lit: boolean; readonly who: Who; readonly target: Who }
  | { readonly c: 'local-remove'; readonly lit: boolean; readonly who: Who }
  | { readonly c: 'rotate'; readonly lit: boolean; readonly who: Who; readonly deliver: boolean }
  | { readonly c: 'reset' }
  | { readonly c: 'window'; readonly open: boolean }
  | { readonly c: 'tick'; readonly ms: number }
  | { readonly c: 'clock-lost' }
  | { readonly c: 'invite'; readonly lit: boolean; readonly by: Who; readonly grant: 0 | 1 | 2; readonly ttl: 60 | 900; readonly end: 0 | 1 | 2; readonly deliver: boolean }
  | { readonly c: 'accept'; readonly lit: boolean; readonly who: Who; readonly pick: number }
  | { readonly c: 'stale'; readonly lit: boolean; readonly who: Who; readonly kind: 'claim' | 'remove' | 'invite'; readonly back: number }
  | { readonly c: 'forge'; readonly lit: boolean; readonly who: Who; readonly kind: 'claim-wrong-master' | 'accept-bad-proof' | 'config-for-other'; readonly target: Who; readonly pick: number }
  | { readonly c: 'replay'; readonly pick: number }
  | { readonly c: 'resend'; readonly pick: number };

const who = fc.constantFrom(...WHO);
/** false (3 in 4): the runner resolves `who` to a current owner or guest (or, for claims, to someone who is not a full owner), so most events concern the device's real parties; true: literally `who` */
const lit = fc.constantFrom(false, false, false, true);
const TICKS = [30_000, 10 * MIN, HOUR, -HOUR];

/** The command generator (fast-check). */
export const cmdArb: fc.Arbitrary<Cmd> = fc.oneof(
  { weight: 7, arbitrary: fc.record({ c: fc.constant('claim' as const), lit, who, epoch: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ c: fc.constant('claim-old-master' as const), lit, who, back: fc.nat(3) }) },
  { weight: 1, arbitrary: fc.record({ c: fc.constant('claim-stolen-key' as const), lit, who, back: fc.nat(3) }) },
  { weight: 6, arbitrary: fc.record({ c: fc.constant('set' as const), lit, who, key: fc.constantFrom('setpoint' as const, 'mode' as const), v: fc.nat(3), bad: fc.boolean(), only: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ c: fc.constant('set-late' as const), lit, who, v: fc.nat(3) }) },
  { weight: 2, arbitrary: fc.record({ c: fc.constant('remove' as const), lit, who, epoch: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ c: fc.constant('remove-other' as const), lit, who, target: who }) },
  { weight: 1, arbitrary: fc.record({ c: fc.constant('local-remove' as const), lit, who }) },
  { weight: 2, arbitrary: fc.record({ c: fc.constant('rotate' as const), lit, who, deliver: fc.boolean() }) },
  { weight: 1, arbitrary: fc.constant({ c: 'reset' as const }) },
  { weight: 2, arbitrary: fc.record({ c: fc.constant('window' as const), open: fc.boolean() }) },
  { weight: 4, arbitrary: fc.record({ c: fc.constant('tick' as const), ms: fc.constantFrom(...TICKS) }) },
  { weight: 1, arbitrary: fc.constant({ c: 'clock-lost' as const }) },
  {
    weight: 4,
    arbitrary: fc
      .record({ c: fc.constant('invite' as const), lit, by: who, grant: fc.constantFrom(0 as const, 1 as const, 1 as const, 2 as const), ttl: fc.constantFrom(60 as const, 900 as const), end: fc.constantFrom(0 as const, 1 as const, 2 as const), deliver: fc.constantFrom(true, true, true, false) })
      .map((x) => (x.grant === 0 ? { ...x, end: 0 as const } : x)),
  },
  { weight: 5, arbitrary: fc.record({ c: fc.constant('accept' as const), lit, who, pick: fc.nat(2) }) },
  { weight: 1, arbitrary: fc.record({ c: fc.constant('stale' as const), lit, who, kind: fc.constantFrom('claim' as const, 'remove' as const, 'invite' as const), back: fc.nat(3) }) },
  { weight: 2, arbitrary: fc.record({ c: fc.constant('forge' as const), lit, who, kind: fc.constantFrom('claim-wrong-master' as const, 'accept-bad-proof' as const, 'config-for-other' as const), target: who, pick: fc.nat(2) }) },
  { weight: 4, arbitrary: fc.record({ c: fc.constant('replay' as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ c: fc.constant('resend' as const), pick: fc.nat() }) },
);

/** Sequences of 1 to 30 commands. */
export const sequenceArb = (maxLength = 30): fc.Arbitrary<Cmd[]> => fc.array(cmdArb, { minLength: 1, maxLength, size: 'max' });

const SETPOINTS = [12, 18, 21, 24];
const MODES = ['comfort', 'eco', 'off', 'comfort'];
const value = (key: 'setpoint' | 'mode', v: number, bad: boolean): number | string => (key === 'setpoint' ? (bad ? 99 : (SETPOINTS[v % 4] as number)) : bad ? 'turbo' : (MODES[v % 4] as string));
/** a guest's grants: 1 = thermostat:setpoint=16..24, 2 = the whole thermostat */
const GRANT_SPECS = ['', 'thermostat:setpoint=16..24', 'thermostat'];
const ENDS = [undefined, 20 * MIN, 2 * HOUR];

// ------------------------------------------------------------ the world: keys made once

interface Gen {
  readonly admin: AdminKeys;
  readonly kid: string;
  readonly master: SignedEnvelope;
}

interface ActorKeys {
  readonly who: Who;
  readonly account: string;
  readonly masterKeys: MasterKeys;
  readonly masterId: string;
  /** gens[g] for g = 1..GENS: the master profile of seq g (revoking gen g-1's key) and its admin key */
  readonly gens: readonly Gen[];
}

/** An object the test made: the signed object and what the model needs to know about it. */
interface Made {
  readonly kind: ItemKind;
  readonly object: SignedEnvelope;
  /** attached master profile (claims) */
  readonly master?: SignedEnvelope;
  readonly who: Who;
  /** the key generation that signed it (master items: the master's seq) */
  readonly gen: number;
  /** the attached master's generation (claims) */
  readonly masterGen?: number;
  /** whose master is attached, when the portal attaches somebody else's (claims) */
  readonly masterOwner?: Who;
  /** a claim naming an invitation with a proof made from the label's secret, not the invitation's */
  readonly forged?: boolean;
  /** the owner an application profile names, when not its signer */
  readonly named?: Who;
  readonly nonce?: string;
  /** the epoch it names (index of the device's epoch), if any */
  readonly epoch?: number;
  /** a claim: the invitation it accepts */
  readonly invite?: string;
  /** a removal: whom it removes */
  readonly target?: Who;
  /** an application profile */
  readonly seq?: number;
  readonly doc?: Readonly<Record<string, Json>>;
  /** an invitation */
  readonly inv?: { readonly grant: 0 | 1 | 2; readonly ttlMs: number; readonly grantMs?: number; readonly secrets: ClaimSecrets };
  /** a claim accepting an invitation: the invitation's secrets are another object's */
}

export const epochName = (e: number): string => `e${e}`;

export class ModelWorld {
  readonly dev = new CoreDevice();
  readonly actors: Record<Who, ActorKeys>;
  private readonly cache = new Map<string, Made>();
  private readonly target: { id: string; enc: Uint8Array };
  private readonly base: Omit<CoreContext, 'now' | 'claimWindowOpen'>;
  private readonly grants: (Grant | undefined)[][];
  cacheHits = 0;
  cacheMisses = 0;

  constructor() {
    this.target = this.dev.target();
    const ctx = this.dev.context();
    this.base = { device: ctx.device, schemas: ctx.schemas, masters: ctx.masters };
    this.actors = Object.fromEntries(WHO.map((w) => [w, makeActor(w)])) as Record<Who, ActorKeys>;
    this.grants = GRANT_SPECS.map((spec) => ENDS.map((end) => (spec === '' ? undefined : { scope: [parseGuestSpec(spec)], ...(end !== undefined ? { until: new Date(T0 + end).toISOString() } : {}) })));
  }

  context(nowMs: number, claimWindowOpen: boolean): CoreContext {
    return { ...this.base, now: new Date(nowMs).toISOString(), claimWindowOpen };
  }

  /**
   * The object for `base`, made on first use: the how-many-th object of that description in this
   * sequence (`fresh` counts them) is part of the key, so within a sequence each is a new object
   * (a new nonce) while the next sequence reuses them.
   */
  private cached(base: string, fresh: Map<string, number>, make: () => Made): Made {
    const idx = fresh.get(base) ?? 0;
    fresh.set(base, idx + 1);
    const key = `${base}|${idx}`;
    const hit = this.cache.get(key);
    if (hit !== undefined) {
      this.cacheHits++;
      return hit;
    }
    this.cacheMisses++;
    if (this.cache.size >= 400_000) this.cache.clear();
    const m = make();
    this.cache.set(key, m);
    return m;
  }

  claim(w: Who, gen: number, epoch: number | undefined, fresh: Map<string, number>): Made {
    return this.cached(`claim|${w}|${gen}|${epoch ?? '-'}`, fresh, () => {
      const a = this.actors[w];
      const object = createClaim((a.gens[gen] as Gen).admin.sign, this.dev.secrets, { device: this.dev.id, master: a.masterId, account: a.account, ...(epoch !== undefined ? { epoch: epochName(epoch) } : {}) });
      return { kind: 'claim', object, who: w, gen, nonce: parseClaimPayload(object).nonce, ...(epoch !== undefined ? { epoch } : {}) };
    });
  }

  accept(w: Who, gen: number, inv: Made, fresh: Map<string, number>): Made {
    return this.cached(`accept|${w}|${gen}|${inv.nonce}`, fresh, () => {
      const a = this.actors[w];
      const object = createClaim((a.gens[gen] as Gen).admin.sign, inv.inv?.secrets as ClaimSecrets, { device: this.dev.id, master: a.masterId, account: a.account, invite: inv.nonce as string, epoch: epochName(inv.epoch as number) });
      return { kind: 'claim', object, who: w, gen, nonce: parseClaimPayload(object).nonce, epoch: inv.epoch as number, invite: inv.nonce as string };
    });
  }

  /** A claim naming an invitation whose proof is made with the label's secrets (the portal knows the invitation's nonce, not its secret). */
  forgedAccept(w: Who, gen: number, inv: Made, fresh: Map<string, number>): Made {
    return this.cached(`forged|${w}|${gen}|${inv.nonce}`, fresh, () => {
      const a = this.actors[w];
      const object = createClaim((a.gens[gen] as Gen).admin.sign, this.dev.secrets, { device: this.dev.id, master: a.masterId, account: a.account, invite: inv.nonce as string, epoch: epochName(inv.epoch as number) });
      return { kind: 'claim', object, who: w, gen, nonce: parseClaimPayload(object).nonce, epoch: inv.epoch as number, invite: inv.nonce as string, forged: true };
    });
  }

  /** A thermostat profile signed by `w` that names `target` as its owner. */
  configFor(w: Who, gen: number, target: Who, seq: number, fresh: Map<string, number>): Made {
    return this.cached(`config-for|${w}|${gen}|${target}|${seq}`, fresh, () => {
      const a = this.actors[w];
      const object = createApplicationProfile((a.gens[gen] as Gen).admin, { master: this.actors[target].masterId, app: 'thermostat', seq, config: { setpoint: 21 }, devices: [this.target], created: FIXED_TIME });
      return { kind: 'application', object, who: w, gen, seq, doc: { setpoint: 21 }, named: target };
    });
  }

  remove(w: Who, gen: number, target: Who, epoch: number | undefined, fresh: Map<string, number>): Made {
    return this.cached(`remove|${w}|${gen}|${target}|${epoch ?? '-'}`, fresh, () => {
      const a = this.actors[w];
      const object = createRemove((a.gens[gen] as Gen).admin.sign, { device: this.dev.id, master: this.actors[target].masterId, ...(epoch !== undefined ? { epoch: epochName(epoch) } : {}) });
      return { kind: 'remove', object, who: w, gen, target, nonce: parseRemovePayload(object).nonce, ...(epoch !== undefined ? { epoch } : {}) };
    });
  }

  invite(w: Who, gen: number, epoch: number, grant: 0 | 1 | 2, ttl: number, end: 0 | 1 | 2, fresh: Map<string, number>): Made {
    return this.cached(`invite|${w}|${gen}|${epoch}|${grant}|${ttl}|${end}`, fresh, () => {
      const a = this.actors[w];
      const secrets = deriveInviteSecrets(newInviteSecret());
      const g = this.grants[grant]?.[end];
      const object = createInvite((a.gens[gen] as Gen).admin.sign, secrets, { device: this.target, epoch: epochName(epoch), master: a.masterId, account: a.account, ttlS: ttl, created: FIXED_TIME, ...(g !== undefined ? { grant: g } : {}) });
      const grantMs = grant === 0 ? undefined : ENDS[end];
      return { kind: 'invite', object, who: w, gen, epoch, nonce: parseInvitePayload(object).nonce, inv: { grant, ttlMs: ttl * 1000, ...(grantMs !== undefined ? { grantMs } : {}), secrets } };
    });
  }

  config(w: Who, gen: number, seq: number, doc: Record<string, Json>, fresh: Map<string, number>): Made {
    const keys = Object.keys(doc).sort();
    const sorted = Object.fromEntries(keys.map((k) => [k, doc[k] as Json]));
    return this.cached(`config|${w}|${gen}|${seq}|${JSON.stringify(sorted)}`, fresh, () => {
      const a = this.actors[w];
      const object = createApplicationProfile((a.gens[gen] as Gen).admin, { master: a.masterId, app: 'thermostat', seq, config: sorted, devices: [this.target], created: FIXED_TIME });
      return { kind: 'application', object, who: w, gen, seq, doc: sorted };
    });
  }

  masterItem(w: Who, gen: number): Made {
    return this.cached(`master|${w}|${gen}`, new Map(), () => ({ kind: 'master', object: (this.actors[w].gens[gen] as Gen).master, who: w, gen }));
  }

  kid(w: Who, gen: number): string {
    return (this.actors[w].gens[gen] as Gen).kid;
  }

  masterOf(w: Who, gen: number): SignedEnvelope {
    return (this.actors[w].gens[gen] as Gen).master;
  }
}

function makeActor(w: Who): ActorKeys {
  const masterKeys = generateMasterKeys();
  const gens: Gen[] = [];
  for (let g = 1; g <= GENS; g++) {
    const admin: AdminKeys = { name: `key${g}`, sign: c.ed25519KeyPair(), enc: c.x25519KeyPair() };
    const prev = gens[g - 1];
    const master = createMasterProfile(masterKeys, [adminEntry(admin, FIXED_TIME)], { seq: g, created: FIXED_TIME, ...(prev !== undefined ? { revoked: [prev.kid] } : {}) });
    gens[g] = { admin, kid: signKeyId(admin.sign.publicKey), master };
  }
  return { who: w, account: `${w}@p`, masterKeys, masterId: signKeyId(masterKeys.sign.publicKey), gens };
}

// ------------------------------------------------------------ the reference model

interface MOwner {
  /** the master generation held */
  gen: number;
  /** every generation revoked by a master held for this owner */
  revoked: Set<number>;
  role?: 'guest';
  grant?: 1 | 2;
  grantFrom?: number;
  grantEnd?: number;
  invitedBy?: Who;
  /** the last applied thermostat seq */
  apps: number;
  values: Map<string, { v: Json; n: number }>;
}
interface MFloor {
  gen: number;
  apps: number;
  revoked: Set<number>;
}
interface MInvite {
  by: Who;
  grant: 0 | 1 | 2;
  receivedMs: number;
  deadlineMs: number;
  grantMs?: number;
}
interface Model {
  owners: Map<Who, MOwner>;
  floors: Map<Who, MFloor>;
  /** nonces of claims, removals and invitations used (or refused as replays) */
  nonces: Set<string>;
  window: boolean;
  /** the index of the current epoch */
  epoch: number;
  nowMs: number;
  /** pending invitations, in arrival order */
  invites: Map<string, MInvite>;
  /** invitations that reached the device and died unused (their inviter left, or they were crowded out): never again */
  voided: Set<string>;
}

export type Outcome = string;

function newModel(): Model {
  return { owners: new Map(), floors: new Map(), nonces: new Set(), window: false, epoch: 0, nowMs: T0, invites: new Map(), voided: new Set() };
}

function dropOwnerM(m: Model, w: Who): void {
  const o = m.owners.get(w);
  if (o === undefined) return;
  const f = m.floors.get(w);
  m.floors.set(w, { gen: Math.max(f?.gen ?? 0, o.gen), apps: Math.max(f?.apps ?? 0, o.apps), revoked: new Set([...(f?.revoked ?? []), ...o.revoked]) });
  m.owners.delete(w);
  // the invitations a removed owner sent die with it
  for (const [nonce, inv] of m.invites) {
    if (inv.by === w) {
      m.invites.delete(nonce);
      m.voided.add(nonce);
    }
  }
}

/** Verification of an object signed by generation `signer` against the master of generation `held`. */
function verifyAs(held: number, signer: number): Outcome | undefined {
  if (signer === held) return undefined;
  if (signer === held - 1) return 'revoked-key'; // the held master revokes the previous key
  return 'unknown-signer';
}

const revokedOf = (o: MOwner | undefined, f: MFloor | undefined): Set<number> => new Set([...(o?.revoked ?? []), ...(f?.revoked ?? [])]);
const heldRevokes = (gen: number): number[] => (gen > 1 ? [gen - 1] : []);

/** What a guest's grant allows in a thermostat document. */
function inScope(grant: 1 | 2, doc: Readonly<Record<string, Json>>): boolean {
  if (grant === 2) return true;
  return Object.entries(doc).every(([k, v]) => k === 'setpoint' && typeof v === 'number' && v >= 16 && v <= 24);
}

function schemaOk(doc: Readonly<Record<string, Json>>): boolean {
  return Object.entries(doc).every(([k, v]) => (k === 'setpoint' ? typeof v === 'number' && v >= 5 && v <= 30 : k === 'mode' ? v === 'comfort' || v === 'eco' || v === 'off' : false));
}

/** The model's verdict on one delivered item (feed position n), applying it to the model. */
function modelApply(m: Model, it: Made, n: number): Outcome {
  const w = it.who;
  switch (it.kind) {
    case 'claim': {
      if (it.masterOwner !== undefined && it.masterOwner !== w) return 'wrong-master';
      const known = m.owners.get(w);
      const floor = m.floors.get(w);
      const att = it.masterGen as number;
      const held = known !== undefined && known.gen >= att ? known.gen : att;
      if (known === undefined && floor !== undefined && att < floor.gen) return 'rollback';
      const revoked = revokedOf(known, floor);
      if (revoked.has(it.gen)) return 'revoked-key';
      if (it.invite !== undefined) return modelInvitationClaim(m, it, known, held, revoked);
      const v = verifyAs(held, it.gen);
      if (v !== undefined) return v;
      if (it.epoch !== undefined && it.epoch !== m.epoch) return 'wrong-epoch';
      const nonce = it.nonce as string;
      if (m.nonces.has(nonce)) return 'replay';
      m.nonces.add(nonce);
      // the label makes a full owner only on a device without owners or with the claim window open;
      // a guest holding the label is no exception (it would escape its grant)
      if ((known === undefined || known.role === 'guest') && m.owners.size > 0 && !m.window) return 'not-invited';
      m.owners.set(w, { gen: held, revoked: new Set([...revoked, ...heldRevokes(held)]), apps: known?.apps ?? 0, values: known?.values ?? new Map() });
      return 'claimed';
    }
    case 'master': {
      const known = m.owners.get(w);
      if (known === undefined) return 'unknown-owner';
      if (it.gen <= known.gen) return 'rollback';
      known.gen = it.gen;
      for (const r of heldRevokes(it.gen)) known.revoked.add(r);
      return 'master';
    }
    case 'application': {
      // the device finds the owner by the signing key (current, or revoked by the master held), else by the name in the profile
      const named = it.named ?? w;
      const bySigner = m.owners.get(w);
      const ownerWho = bySigner !== undefined && (it.gen === bySigner.gen || it.gen === bySigner.gen - 1) ? w : named;
      const known = m.owners.get(ownerWho);
      if (known === undefined) return 'unknown-owner';
      const floor = m.floors.get(ownerWho);
      if (ownerWho === w && revokedOf(known, floor).has(it.gen)) return 'revoked-key';
      const v = ownerWho === w ? verifyAs(known.gen, it.gen) : 'unknown-signer';
      if (v !== undefined) return v;
      if (named !== ownerWho) return 'wrong-master';
      const seq = it.seq as number;
      if (seq <= Math.max(known.apps, floor?.apps ?? 0)) return 'rollback';
      const doc = it.doc as Readonly<Record<string, Json>>;
      if (known.role === 'guest') {
        if (known.grantEnd !== undefined && (m.nowMs > known.grantEnd || m.nowMs < (known.grantFrom ?? 0))) return 'grant-expired';
        if (!inScope(known.grant as 1 | 2, doc)) return 'out-of-scope';
      }
      if (!schemaOk(doc)) return 'schema';
      known.apps = seq;
      const next = new Map<string, { v: Json; n: number }>();
      for (const [k, x] of Object.entries(doc)) {
        const prev = known.values.get(k);
        next.set(k, prev !== undefined && prev.v === x ? prev : { v: x, n });
      }
      known.values = next;
      return 'applied';
    }
    case 'remove': {
      const target = it.target as Who;
      const owner = m.owners.get(target);
      if (owner === undefined) return 'unknown-owner';
      if (w === target && revokedOf(owner, m.floors.get(target)).has(it.gen)) return 'revoked-key';
      const v = w === target ? verifyAs(owner.gen, it.gen) : 'unknown-signer';
      if (v !== undefined) return v;
      if (it.epoch !== undefined && it.epoch !== m.epoch) return 'wrong-epoch';
      const nonce = it.nonce as string;
      if (m.nonces.has(nonce)) return 'replay';
      m.nonces.add(nonce);
      dropOwnerM(m, target);
      return 'removed';
    }
    case 'move':
      throw new Error('the model makes no move items (test/agent-core.test.ts covers them)');
    case 'invite': {
      const owner = m.owners.get(w);
      if (owner === undefined) return 'unknown-owner';
      if (revokedOf(owner, m.floors.get(w)).has(it.gen)) return 'revoked-key';
      const v = verifyAs(owner.gen, it.gen);
      if (v !== undefined) return v;
      if (owner.role === 'guest') return 'not-permitted';
      if (it.epoch !== m.epoch) return 'wrong-epoch';
      const nonce = it.nonce as string;
      if (m.nonces.has(nonce) || m.invites.has(nonce) || m.voided.has(nonce)) return 'replay';
      const inv = it.inv as NonNullable<Made['inv']>;
      m.invites.set(nonce, { by: w, grant: inv.grant, receivedMs: m.nowMs, deadlineMs: m.nowMs + inv.ttlMs, ...(inv.grantMs !== undefined ? { grantMs: inv.grantMs } : {}) });
      while (m.invites.size > MAX_INVITES) {
        const first = m.invites.keys().next().value as string;
        m.invites.delete(first);
        m.voided.add(first);
      }
      return 'invited';
    }
  }
}

function modelInvitationClaim(m: Model, it: Made, known: MOwner | undefined, held: number, revoked: Set<number>): Outcome {
  const invNonce = it.invite as string;
  const inv = m.invites.get(invNonce);
  if (inv === undefined) return m.nonces.has(invNonce) ? 'invitation-used' : 'not-invited';
  const v = verifyAs(held, it.gen);
  if (v !== undefined) return v;
  if (it.forged === true) return 'bad-claim-proof';
  if (it.epoch !== undefined && it.epoch !== m.epoch) return 'wrong-epoch';
  const nonce = it.nonce as string;
  if (m.nonces.has(nonce)) return 'replay';
  m.invites.delete(invNonce);
  m.nonces.add(invNonce);
  m.nonces.add(nonce);
  if (m.nowMs > inv.deadlineMs || m.nowMs < inv.receivedMs) return 'invitation-expired';
  if (!m.owners.has(inv.by)) return 'not-invited';
  const asGuest = inv.grant !== 0 && (known === undefined || known.role === 'guest');
  m.owners.set(it.who, {
    gen: held,
    revoked: new Set([...revoked, ...heldRevokes(held)]),
    apps: known?.apps ?? 0,
    values: known?.values ?? new Map(),
    invitedBy: known?.invitedBy ?? inv.by,
    ...(asGuest ? { role: 'guest' as const, grant: inv.grant as 1 | 2, grantFrom: inv.receivedMs, ...(inv.grantMs !== undefined ? { grantEnd: inv.receivedMs + inv.grantMs } : {}) } : {}),
  });
  return 'claimed';
}

function modelConfig(m: Model): string {
  const best = new Map<string, { v: Json; n: number }>();
  for (const o of m.owners.values()) for (const [k, x] of o.values) if ((best.get(k)?.n ?? -1) < x.n) best.set(k, x);
  return JSON.stringify(Object.fromEntries([...best.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, x]) => [k, x.v])));
}

function modelOwners(m: Model, world: ModelWorld): string {
  return [...m.owners.entries()]
    .map(([w, o]) => `${w}@p:${o.role ?? 'owner'}:${o.grantEnd ?? ''}:${o.invitedBy !== undefined ? `${o.invitedBy}@p` : ''}:${world.actors[w].masterId}:${o.gen}`)
    .sort()
    .join(',');
}

function deviceOwners(s: AgentState): string {
  return Object.values(s.owners)
    .map((o) => `${o.account}:${o.role ?? 'owner'}:${o.grantEndMs ?? ''}:${o.invitedBy ?? ''}:${o.master}:${o.masterSeq}`)
    .sort()
    .join(',');
}

// ------------------------------------------------------------ running both

const TO_OWNER = new Set<Cmd['c']>(['set', 'set-late', 'remove', 'remove-other', 'local-remove', 'rotate', 'invite', 'stale', 'forge']);
const TO_NEWCOMER = new Set<Cmd['c']>(['claim', 'accept']);

/** A command whose `who` (or `by`) is not literal, made to concern the parties the device has now. */
function resolve(cmd: Cmd, m: Model): Cmd {
  if (!('lit' in cmd) || cmd.lit) return cmd;
  let pool: Who[];
  if (TO_OWNER.has(cmd.c)) pool = WHO.filter((w) => m.owners.has(w));
  else if (TO_NEWCOMER.has(cmd.c)) pool = WHO.filter((w) => m.owners.get(w)?.role !== undefined || !m.owners.has(w));
  else return cmd;
  if (pool.length === 0) return cmd;
  if (cmd.c === 'invite') return { ...cmd, by: pool[WHO.indexOf(cmd.by) % pool.length] as Who };
  return { ...cmd, who: pool[WHO.indexOf(cmd.who) % pool.length] as Who };
}

export type Apply = typeof applyItems;

export class Violation extends Error {}

function outcomeOf(ev: readonly AgentEvent[], kind: ItemKind): Outcome {
  const e = ev.at(-1);
  if (e === undefined) return kind === 'master' ? 'master' : kind === 'invite' ? 'invited' : 'none';
  return e.type === 'refused' ? e.code : e.type;
}

const OBEYED = new Set(['claimed', 'applied', 'removed', 'master', 'invited']);

/** Per-sequence actor state (what the owner's CLI would hold). */
interface ActorRun {
  gen: number;
  seq: number;
  doc: Map<string, Json>;
  late?: Made;
}

/** Run one sequence of commands against the core and the model; throws a Violation at the first disagreement. Returns the number of steps. */
export function runSequence(world: ModelWorld, cmds: readonly Cmd[], opts: { apply?: Apply; outcomes?: Map<string, number> } = {}): number {
  const apply = opts.apply ?? applyItems;
  const outcomes = opts.outcomes;
  const m = newModel();
  let s: AgentState = { ...EMPTY_STATE, epoch: epochName(0) };
  const runs = Object.fromEntries(WHO.map((w) => [w, { gen: 1, seq: 0, doc: new Map() } satisfies ActorRun])) as Record<Who, ActorRun>;
  /** how many objects of each description this sequence has made (see ModelWorld.cached) */
  const fresh = new Map<string, number>();
  /** every object made so far (delivered or withheld), for the portal's replays */
  const made: Made[] = [];
  const invitations: Made[] = [];
  /** feed items delivered so far, for re-sends */
  const fed: FeedItem[] = [];
  // independent of the model
  const revokedEver = new Set<string>();
  const obeyedNonces = new Set<string>();
  const usedInvites = new Set<string>();
  let step = 0;
  const fail = (msg: string): never => {
    throw new Violation(`step ${step} (${JSON.stringify(cmds[step - 1])}): ${msg}`);
  };

  const deliver = (it: Made): void => {
    const n = s.n + 1;
    const item: FeedItem = it.master !== undefined ? { n, kind: it.kind, object: it.object, master: it.master, index: n } : { n, kind: it.kind, object: it.object, index: n };
    const expected = modelApply(m, it, n);
    const errorsBefore = s.errors;
    const r = apply(s, [item], world.context(m.nowMs, m.window));
    s = r.state;
    fed.push(item);
    const got = outcomeOf(r.events, it.kind);
    if (got !== expected) fail(`the device says ${got}, the model ${expected} (item ${it.kind} by ${it.who} gen ${it.gen})`);
    if (outcomes !== undefined) {
      const k = `${it.kind}${it.invite !== undefined ? ' (invitation)' : ''}: ${got}`;
      outcomes.set(k, (outcomes.get(k) ?? 0) + 1);
    }
    if (s.n !== n) fail(`the cursor is ${s.n}, not ${n}`);
    if (!OBEYED.has(got)) {
      if (s.errors.at(-1)?.code !== got || s.errors === errorsBefore) fail(`refusal ${got} not recorded`);
      return;
    }
    // obeyed: the independent invariants
    if (revokedEver.has(world.kid(it.who, it.gen)) && it.kind !== 'master') fail(`obeyed a ${it.kind} signed by a revoked key (${it.who} gen ${it.gen})`);
    if (it.epoch !== undefined && it.epoch !== m.epoch) fail(`obeyed a ${it.kind} of epoch ${it.epoch} in epoch ${m.epoch}`);
    if (it.kind === 'claim' || it.kind === 'remove' || it.kind === 'invite') {
      const nonce = it.nonce as string;
      if (obeyedNonces.has(nonce)) fail(`a replayed ${it.kind} took effect`);
      obeyedNonces.add(nonce);
    }
    if (it.invite !== undefined) {
      if (usedInvites.has(it.invite)) fail('an invitation took effect twice');
      usedInvites.add(it.invite);
    }
    if (it.kind === 'invite' && usedInvites.has(it.nonce as string)) fail('a used invitation became pending again');
  };

  const make = (x: Made): Made => {
    made.push(x);
    return x;
  };

  for (const cmd0 of cmds) {
    step++;
    const cmd = resolve(cmd0, m);
    switch (cmd.c) {
      case 'claim': {
        const a = runs[cmd.who];
        const x = world.claim(cmd.who, a.gen, cmd.epoch ? m.epoch : undefined, fresh);
        deliver(make({ ...x, master: world.masterOf(cmd.who, a.gen), masterGen: a.gen }));
        break;
      }
      case 'claim-old-master': {
        // a fresh claim signed by the current key, with an older master profile attached by the portal
        const a = runs[cmd.who];
        if (a.gen === 1) break;
        const old = Math.max(1, a.gen - 1 - (cmd.back % (a.gen - 1)));
        const x = world.claim(cmd.who, a.gen, undefined, fresh);
        deliver(make({ ...x, master: world.masterOf(cmd.who, old), masterGen: old }));
        break;
      }
      case 'claim-stolen-key': {
        // a thief holding an older (since revoked) key and the label claims with that key's master
        const a = runs[cmd.who];
        if (a.gen === 1) break;
        const old = Math.max(1, a.gen - 1 - (cmd.back % (a.gen - 1)));
        const x = world.claim(cmd.who, old, undefined, fresh);
        deliver(make({ ...x, master: world.masterOf(cmd.who, old), masterGen: old }));
        break;
      }
      case 'set': {
        const a = runs[cmd.who];
        const v = value(cmd.key, cmd.v, cmd.bad);
        const doc: Record<string, Json> = cmd.only ? { [cmd.key]: v } : { ...Object.fromEntries(a.doc), [cmd.key]: v };
        if (!cmd.bad) a.doc.set(cmd.key, v);
        deliver(make(world.config(cmd.who, a.gen, ++a.seq, doc, fresh)));
        break;
      }
      case 'set-late': {
        // two versions are made; the newer is delivered now, the older later (reordering)
        const a = runs[cmd.who];
        if (a.late !== undefined) {
          const late = a.late;
          delete a.late;
          deliver(late);
          break;
        }
        const older = world.config(cmd.who, a.gen, ++a.seq, { setpoint: SETPOINTS[cmd.v % 4] as number }, fresh);
        const sp = SETPOINTS[(cmd.v + 1) % 4] as number;
        a.doc.set('setpoint', sp);
        a.late = make(older);
        deliver(make(world.config(cmd.who, a.gen, ++a.seq, { ...Object.fromEntries(a.doc), setpoint: sp }, fresh)));
        break;
      }
      case 'remove': {
        const a = runs[cmd.who];
        deliver(make(world.remove(cmd.who, a.gen, cmd.who, cmd.epoch ? m.epoch : undefined, fresh)));
        break;
      }
      case 'remove-other': {
        // an owner (or guest) signs the removal of somebody else: only an owner removes itself
        if (cmd.who === cmd.target) break;
        const a = runs[cmd.who];
        deliver(make(world.remove(cmd.who, a.gen, cmd.target, m.epoch, fresh)));
        break;
      }
      case 'local-remove': {
        const present = m.owners.has(cmd.who);
        let threw = false;
        try {
          s = removeOwnerLocally(s, `${cmd.who}@p`, world.dev.secrets.deviceKey).state;
        } catch {
          threw = true;
        }
        if (threw === present) fail(`local removal of ${cmd.who}: the device ${threw ? 'refused' : 'did it'}, the model has ${present ? 'that owner' : 'no such owner'}`);
        dropOwnerM(m, cmd.who);
        break;
      }
      case 'rotate': {
        const a = runs[cmd.who];
        if (a.gen === GENS) break;
        a.gen++;
        const x = make(world.masterItem(cmd.who, a.gen));
        // withheld: the portal drops it (it may replay it later)
        if (cmd.deliver) deliver(x);
        break;
      }
      case 'reset': {
        m.epoch++;
        s = factoryReset(s, epochName(m.epoch), world.dev.secrets.deviceKey);
        for (const w of m.owners.keys()) dropOwnerM(m, w);
        for (const nonce of m.invites.keys()) m.voided.add(nonce);
        m.invites.clear();
        break;
      }
      case 'window':
        m.window = cmd.open;
        break;
      case 'tick':
        m.nowMs += cmd.ms;
        break;
      case 'clock-lost':
        // the board rebooted without the time: its clock says 1970
        m.nowMs = 10_000;
        break;
      case 'invite': {
        const a = runs[cmd.by];
        const x = make(world.invite(cmd.by, a.gen, m.epoch, cmd.grant, cmd.ttl, cmd.end, fresh));
        invitations.push(x);
        if (cmd.deliver) deliver(x);
        break;
      }
      case 'accept': {
        if (invitations.length === 0) break;
        const inv = invitations[invitations.length - 1 - (cmd.pick % invitations.length)] as Made; // mostly the latest
        const a = runs[cmd.who];
        const x = world.accept(cmd.who, a.gen, inv, fresh);
        deliver(make({ ...x, master: world.masterOf(cmd.who, a.gen), masterGen: a.gen }));
        break;
      }
      case 'stale': {
        // the owner's CLI read an old status: a fresh object for an earlier epoch
        if (m.epoch === 0) break;
        const e = m.epoch - 1 - (cmd.back % m.epoch);
        const a = runs[cmd.who];
        if (cmd.kind === 'claim') {
          const x = world.claim(cmd.who, a.gen, e, fresh);
          deliver(make({ ...x, master: world.masterOf(cmd.who, a.gen), masterGen: a.gen }));
        } else if (cmd.kind === 'remove') {
          deliver(make(world.remove(cmd.who, a.gen, cmd.who, e, fresh)));
        } else {
          const x = make(world.invite(cmd.who, a.gen, e, 0, 900, 0, fresh));
          invitations.push(x);
          deliver(x);
        }
        break;
      }
      case 'forge': {
        const a = runs[cmd.who];
        if (cmd.kind === 'claim-wrong-master') {
          // the portal attaches somebody else's master profile to a claim
          if (cmd.target === cmd.who) break;
          const x = world.claim(cmd.who, a.gen, undefined, fresh);
          deliver(make({ ...x, master: world.masterOf(cmd.target, runs[cmd.target].gen), masterGen: runs[cmd.target].gen, masterOwner: cmd.target }));
        } else if (cmd.kind === 'accept-bad-proof') {
          if (invitations.length === 0) break;
          const inv = invitations[invitations.length - 1 - (cmd.pick % invitations.length)] as Made;
          const x = world.forgedAccept(cmd.who, a.gen, inv, fresh);
          deliver(make({ ...x, master: world.masterOf(cmd.who, a.gen), masterGen: a.gen }));
        } else {
          if (cmd.target === cmd.who) break;
          deliver(make(world.configFor(cmd.who, a.gen, cmd.target, ++a.seq, fresh)));
        }
        break;
      }
      case 'replay': {
        if (made.length === 0) break;
        deliver(made[cmd.pick % made.length] as Made);
        break;
      }
      case 'resend': {
        // the portal sends an item with a number the device has read: skipped, nothing changes
        if (fed.length === 0) break;
        const old = fed[cmd.pick % fed.length] as FeedItem;
        const r = apply(s, [old], world.context(m.nowMs, m.window));
        if (r.state !== s || r.events.length > 0 || r.gap !== undefined) fail(`a re-sent feed item ${old.n} (cursor ${s.n}) changed something`);
        break;
      }
    }
    // the invariants, after every step
    for (const o of Object.values(s.owners)) for (const k of o.revoked ?? []) revokedEver.add(k);
    for (const f of Object.values(s.floors)) for (const k of f.revoked) revokedEver.add(k);
    const owners = deviceOwners(s);
    const want = modelOwners(m, world);
    if (owners !== want) fail(`owners ${owners}, model ${want}`);
    const invites = Object.entries(s.invites)
      .map(([nonce, i]) => `${nonce}:${i.deadlineMs}`)
      .sort()
      .join(',');
    const wantInvites = [...m.invites.entries()]
      .map(([nonce, i]) => `${nonce}:${i.deadlineMs}`)
      .sort()
      .join(',');
    if (invites !== wantInvites) fail(`pending invitations ${invites}, model ${wantInvites}`);
    if (s.epoch !== epochName(m.epoch)) fail(`epoch ${s.epoch}, model ${epochName(m.epoch)}`);
    for (const nonce of Object.keys(s.invites)) {
      const x = invitations.find((i) => i.nonce === nonce);
      if (x?.epoch !== m.epoch) fail(`a pending invitation of epoch ${x?.epoch} in epoch ${m.epoch}`);
    }
    const cfg = JSON.stringify((configDocument(s).thermostat ?? {}) as Record<string, unknown>);
    const wantCfg = modelConfig(m);
    if (cfg !== wantCfg) fail(`config ${cfg}, model ${wantCfg}`);
  }
  return step;
}
