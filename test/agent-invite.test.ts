/**
 * Invitations, guests and epochs on the pure core (agent/core.ts), with real signed objects:
 * an owner's invitation works once, within its time on the device's own clock, only in the
 * device's current epoch; a guest sets only what the grant allows, until it ends, and invites nobody.
 */
import test from 'ava';
import { applyItems, configDocument, factoryReset } from '../agent/core.js';
import { EMPTY_STATE, type AgentState } from '../agent/state.js';
import { checkGrant, parseGuestSpec, type Grant } from '../mesh/invite.js';
import { CoreDevice, CoreOwner, item, FIXED_TIME } from './helpers/core-world.js';
import { codeOf } from './helpers/code-of.js';
import { createRemove } from '../mesh/messages.js';
import type { FeedItem } from '../mesh/protocol.js';

const EPOCH = 'first-epoch';
const START = { ...EMPTY_STATE, epoch: EPOCH } satisfies AgentState;
const at = (ms: number): string => new Date(Date.parse(FIXED_TIME) + ms).toISOString();

/** Feed `items` one Download at a time, each at its own device time (ms after FIXED_TIME). */
function feed(dev: CoreDevice, s0: AgentState, steps: readonly (readonly [number, FeedItem])[]): AgentState {
  let s = s0;
  for (const [ms, it] of steps) s = applyItems(s, [it], dev.context(at(ms))).state;
  return s;
}

const lastCode = (s: AgentState): string | undefined => s.errors[s.errors.length - 1]?.code;

function world(): { dev: CoreDevice; alice: CoreOwner; bob: CoreOwner; carol: CoreOwner } {
  return { dev: new CoreDevice(), alice: new CoreOwner('alice@portal.test'), bob: new CoreOwner('bob@portal.test'), carol: new CoreOwner('carol@portal.test') };
}

test('an owner invites Bob: his claim with the invitation makes him a co-owner, invited by Alice', (t) => {
  const { dev, alice, bob } = world();
  const inv = alice.invite(dev, { epoch: EPOCH });
  const s = feed(dev, START, [
    [0, item(1, 'claim', alice.claim(dev, undefined), alice.masterEnvelope)],
    [1000, item(2, 'invite', inv.object)],
    [60_000, item(3, 'claim', bob.acceptInvite(dev, inv, EPOCH), bob.masterEnvelope)],
  ]);
  t.deepEqual(s.errors, []);
  const b = s.owners[bob.masterId];
  t.is(b?.account, 'bob@portal.test');
  t.is(b?.invitedBy, 'alice@portal.test');
  t.is(b?.role, undefined);
  t.deepEqual(s.invites, {}, 'the invitation is spent');
  t.true(s.nonces.includes(inv.nonce));
});

test('the same invitation used a second time is refused (invitation-used), also by another person', (t) => {
  const { dev, alice, bob, carol } = world();
  const inv = alice.invite(dev, { epoch: EPOCH });
  let s = feed(dev, START, [
    [0, item(1, 'claim', alice.claim(dev), alice.masterEnvelope)],
    [0, item(2, 'invite', inv.object)],
    [0, item(3, 'claim', bob.acceptInvite(dev, inv), bob.masterEnvelope)],
  ]);
  s = feed(dev, s, [[0, item(4, 'claim', carol.acceptInvite(dev, inv), carol.masterEnvelope)]]);
  t.is(lastCode(s), 'invitation-used');
  t.is(s.owners[carol.masterId], undefined);
  // the invitation itself delivered again: a replay
  s = feed(dev, s, [[0, item(5, 'invite', inv.object)]]);
  t.is(lastCode(s), 'replay');
  // and Bob's own claim delivered again
  s = feed(dev, s, [[0, item(6, 'claim', bob.acceptInvite(dev, inv), bob.masterEnvelope)]]);
  t.is(lastCode(s), 'invitation-used');
});

test('an invitation accepted after its time on the device clock is refused (invitation-expired) and spent', (t) => {
  const { dev, alice, bob } = world();
  const inv = alice.invite(dev, { epoch: EPOCH, ttlS: 60 });
  let s = feed(dev, START, [
    [0, item(1, 'claim', alice.claim(dev), alice.masterEnvelope)],
    [0, item(2, 'invite', inv.object)],
    [61_000, item(3, 'claim', bob.acceptInvite(dev, inv), bob.masterEnvelope)],
  ]);
  t.is(lastCode(s), 'invitation-expired');
  t.is(s.owners[bob.masterId], undefined);
  t.deepEqual(s.invites, {});
  // a second try with a fresh claim: the invitation is gone for good
  s = feed(dev, s, [[62_000, item(4, 'claim', bob.acceptInvite(dev, inv), bob.masterEnvelope)]]);
  t.is(lastCode(s), 'invitation-used');
});

test("expiry runs on the device's own clock: an inviter clock a year off and a device at 1970 change nothing", (t) => {
  const { dev, alice, bob } = world();
  // Alice's clock says next year; the device boots at 1970 and never learns the time
  const inv = alice.invite(dev, { epoch: EPOCH, ttlS: 120, created: '2027-06-01T00:00:00.000Z' });
  const d1970 = (ms: number): string => new Date(ms).toISOString();
  let s: AgentState = START;
  for (const [ms, it] of [
    [5_000, item(1, 'claim', alice.claim(dev), alice.masterEnvelope)],
    [6_000, item(2, 'invite', inv.object)],
    [100_000, item(3, 'claim', bob.acceptInvite(dev, inv), bob.masterEnvelope)],
  ] as const) {
    s = applyItems(s, [it], dev.context(d1970(ms))).state;
  }
  t.deepEqual(s.errors, []);
  t.truthy(s.owners[bob.masterId]);
});

test('a claim naming an invitation the device never received is refused (not-invited), and a wrong proof (bad-claim-proof)', (t) => {
  const { dev, alice, bob, carol } = world();
  const inv = alice.invite(dev, { epoch: EPOCH });
  let s = feed(dev, START, [
    [0, item(1, 'claim', alice.claim(dev), alice.masterEnvelope)],
    [0, item(2, 'claim', bob.acceptInvite(dev, inv), bob.masterEnvelope)],
  ]);
  t.is(lastCode(s), 'not-invited');
  // the portal read the invitation's nonce, but not its secret: the label's secrets prove nothing here
  s = feed(dev, s, [[0, item(3, 'invite', inv.object)]]);
  s = feed(dev, s, [[0, item(4, 'claim', carol.acceptInvite(dev, { secrets: dev.secrets, nonce: inv.nonce }), carol.masterEnvelope)]]);
  t.is(lastCode(s), 'bad-claim-proof');
  t.is(s.owners[carol.masterId], undefined);
  t.truthy(s.invites[inv.nonce], 'a forged claim does not use the invitation up');
});

test('an invitation for another epoch (before a factory reset) is refused (wrong-epoch); so are claims and removals of that epoch', (t) => {
  const { dev, alice, bob } = world();
  const old = alice.invite(dev, { epoch: 'an-older-epoch' });
  let s = feed(dev, START, [
    [0, item(1, 'claim', alice.claim(dev), alice.masterEnvelope)],
    [0, item(2, 'invite', old.object)],
  ]);
  t.is(lastCode(s), 'wrong-epoch');
  s = feed(dev, s, [[0, item(3, 'remove', alice.remove(dev, 'an-older-epoch'))]]);
  t.is(lastCode(s), 'wrong-epoch');
  t.truthy(s.owners[alice.masterId], 'an old-epoch removal removes nobody');
  // after a factory reset, an invitation made before it is void, even if it never arrived before
  const pending = alice.invite(dev, { epoch: EPOCH });
  s = factoryReset(s, 'second-epoch', dev.secrets.deviceKey);
  s = feed(dev, s, [
    [0, item(4, 'claim', bob.claim(dev), bob.masterEnvelope)],
    [0, item(5, 'invite', pending.object)],
  ]);
  t.is(lastCode(s), 'unknown-owner');
  const carol = new CoreOwner('carol@portal.test');
  s = feed(dev, s, [[0, item(6, 'claim', carol.acceptInvite(dev, pending, EPOCH), carol.masterEnvelope)]]);
  t.is(lastCode(s), 'not-invited');
  t.deepEqual(Object.keys(s.owners), [bob.masterId]);
});

test('an invitation from an owner who has since left is void (not-invited); so are its pending invitations', (t) => {
  const { dev, alice, bob } = world();
  const inv = alice.invite(dev, { epoch: EPOCH });
  const s = feed(dev, START, [
    [0, item(1, 'claim', alice.claim(dev), alice.masterEnvelope)],
    [0, item(2, 'invite', inv.object)],
    [0, item(3, 'remove', alice.remove(dev, EPOCH))],
    [0, item(4, 'claim', bob.acceptInvite(dev, inv), bob.masterEnvelope)],
  ]);
  t.is(lastCode(s), 'not-invited');
  t.deepEqual(s.owners, {});
});

const GRANT: Grant = { scope: [parseGuestSpec('thermostat:setpoint=16..24')], until: at(3_600_000) };

function withGuest(): { dev: CoreDevice; alice: CoreOwner; bob: CoreOwner; carol: CoreOwner; s: AgentState } {
  const w = world();
  const inv = w.alice.invite(w.dev, { epoch: EPOCH, grant: GRANT });
  const s = feed(w.dev, START, [
    [0, item(1, 'claim', w.alice.claim(w.dev), w.alice.masterEnvelope)],
    [0, item(2, 'application', w.alice.config(w.dev, 'thermostat', { setpoint: 20, mode: 'comfort' }))],
    [0, item(3, 'invite', inv.object)],
    [10_000, item(4, 'claim', w.carol.acceptInvite(w.dev, inv), w.carol.masterEnvelope)],
  ]);
  return { ...w, s };
}

test('a guest limited to thermostat:setpoint in 16..24: 22 applied, 28 refused (out-of-scope), mode refused, and after the end time grant-expired', (t) => {
  const { dev, carol, s: s0 } = withGuest();
  t.deepEqual(s0.errors, []);
  t.is(s0.owners[carol.masterId]?.role, 'guest');
  let s = feed(dev, s0, [[20_000, item(5, 'application', carol.config(dev, 'thermostat', { setpoint: 22 }))]]);
  t.deepEqual(s.errors, []);
  t.is((configDocument(s).thermostat as { setpoint: number }).setpoint, 22);
  s = feed(dev, s, [[30_000, item(6, 'application', carol.config(dev, 'thermostat', { setpoint: 28 }))]]);
  t.is(lastCode(s), 'out-of-scope');
  s = feed(dev, s, [[40_000, item(7, 'application', carol.config(dev, 'thermostat', { setpoint: 22, mode: 'off' }))]]);
  t.is(lastCode(s), 'out-of-scope');
  s = feed(dev, s, [[50_000, item(8, 'application', carol.config(dev, 'lights', { on: true }))]]);
  t.is(lastCode(s), 'out-of-scope');
  t.is((configDocument(s).thermostat as { setpoint: number }).setpoint, 22, 'nothing refused changed the running value');
  // the grant ends an hour after the invitation reached the device (device clock)
  s = feed(dev, s, [[3_600_000 + 10_001, item(9, 'application', carol.config(dev, 'thermostat', { setpoint: 18 }))]]);
  t.is(lastCode(s), 'grant-expired');
  t.is((configDocument(s).thermostat as { setpoint: number }).setpoint, 22);
});

test('a guest cannot invite (not-permitted), cannot remove an owner, and may leave', (t) => {
  const { dev, alice, carol, s: s0 } = withGuest();
  let s = feed(dev, s0, [[0, item(5, 'invite', carol.invite(dev, { epoch: EPOCH }).object)]]);
  t.is(lastCode(s), 'not-permitted');
  t.deepEqual(s.invites, {});
  s = feed(dev, s, [[0, item(6, 'remove', createRemove(carol.admin.sign, { device: dev.id, master: alice.masterId, epoch: EPOCH }))]]);
  t.is(lastCode(s), 'unknown-signer');
  t.truthy(s.owners[alice.masterId]);
  s = feed(dev, s, [[0, item(7, 'remove', carol.remove(dev, EPOCH))]]);
  t.is(s.owners[carol.masterId], undefined, 'a guest may leave');
  t.truthy(s.owners[alice.masterId]);
});

test('the grant check in isolation: keys, ranges, applications', (t) => {
  const g: Grant = { scope: [parseGuestSpec('thermostat:setpoint=16..24,fan'), parseGuestSpec('lights')] };
  t.is(codeOf(() => checkGrant(g, 'thermostat', { setpoint: 16, fan: 'auto' })), 'no error');
  t.is(codeOf(() => checkGrant(g, 'thermostat', { setpoint: 24.5 })), 'out-of-scope');
  t.is(codeOf(() => checkGrant(g, 'thermostat', { setpoint: '20' })), 'out-of-scope');
  t.is(codeOf(() => checkGrant(g, 'lights', { anything: 1 })), 'no error');
  t.is(codeOf(() => checkGrant(g, 'door', {})), 'out-of-scope');
  t.is(codeOf(() => parseGuestSpec('thermostat:setpoint=24..16')), 'usage');
  t.is(codeOf(() => parseGuestSpec('Bad App')), 'usage');
});

test("the device's own dial: a local change takes effect, yields to the owner's next change, is checked against the schema, and a reset forgets it", async (t) => {
  const { setLocally, LOCAL_SOURCE, effective } = await import('../agent/core.js');
  const { dev, alice } = world();
  let s = feed(dev, START, [
    [0, item(1, 'claim', alice.claim(dev), alice.masterEnvelope)],
    [0, item(2, 'application', alice.config(dev, 'thermostat', { setpoint: 20, mode: 'eco' }))],
  ]);
  const ctx = { schemas: dev.context().schemas, now: at(5_000) };
  s = setLocally(s, 'thermostat', { set: { setpoint: 23 }, remove: [] }, ctx);
  let e = effective(s).thermostat;
  t.is(e?.values.setpoint, 23);
  t.is(e?.sources.setpoint?.master, LOCAL_SOURCE);
  t.is(e?.values.mode, 'eco', 'the other keys stay the owner’s');
  t.is(codeOf(() => setLocally(s, 'thermostat', { set: { setpoint: 99 }, remove: [] }, ctx)), 'schema');
  t.is(codeOf(() => setLocally(s, 'lights', { set: { on: true }, remove: [] }, ctx)), 'schema');
  // the owner's next change wins (it comes later in the device's order)
  s = feed(dev, s, [[10_000, item(3, 'application', alice.config(dev, 'thermostat', { setpoint: 19, mode: 'eco' }))]]);
  e = effective(s).thermostat;
  t.is(e?.values.setpoint, 19);
  t.is(e?.sources.setpoint?.owner, alice.account);
  // turned again on the device: local wins over the change before it
  s = setLocally(s, 'thermostat', { set: { setpoint: 22 }, remove: [] }, ctx);
  t.is(effective(s).thermostat?.values.setpoint, 22);
  t.is((configDocument(s).thermostat as { setpoint: number }).setpoint, 22);
  s = factoryReset(s, 'next', dev.secrets.deviceKey);
  t.deepEqual(effective(s), {});
});

test('the signed status stays under the portal limit for a status, however large the configuration, the refusals and the guests', async (t) => {
  const { statusEnvelope } = await import('../agent/status.js');
  const { openPrivateStatus, verifyStatus } = await import('../mesh/messages.js');
  const { dev, alice, bob } = world();
  const guests = [0, 1, 2, 3, 4, 5].map((i) => new CoreOwner(`guest${i}@portal.test`));
  let s = feed(dev, START, [[0, item(1, 'claim', alice.claim(dev), alice.masterEnvelope)]]);
  let n = 2;
  const big = Object.fromEntries(Array.from({ length: 200 }, (_, i) => [`k${i}`, 'x'.repeat(100)]));
  const schemaless = { ...dev.context(), schemas: new Map([['thermostat', { type: 'object' } as never]]) };
  s = applyItems(s, [item(n++, 'application', alice.config(dev, 'thermostat', big))], schemaless).state;
  const inv = alice.invite(dev, { epoch: EPOCH });
  s = feed(dev, s, [[0, item(n++, 'invite', inv.object)], [0, item(n++, 'claim', bob.acceptInvite(dev, inv), bob.masterEnvelope)]]);
  for (const g of guests) {
    const gi = alice.invite(dev, { epoch: EPOCH, grant: { scope: [{ app: 'thermostat' }] } });
    s = feed(dev, s, [[0, item(n++, 'invite', gi.object)], [0, item(n++, 'claim', g.acceptInvite(dev, gi), g.masterEnvelope)]]);
  }
  for (let i = 0; i < 10; i++) s = { ...s, errors: [...s.errors, { code: 'schema', message: 'y'.repeat(1000), at: FIXED_TIME }].slice(-16) };
  const env = statusEnvelope({ keys: dev.identity.keys } as never, s, FIXED_TIME);
  const bytes = Buffer.byteLength(JSON.stringify(env));
  t.true(bytes < 32 * 1024, `${bytes} bytes`);
  const p = verifyStatus(env, dev.identity.keys.sign.publicKey);
  const mine = openPrivateStatus(p, alice.admin.enc);
  t.truthy(mine, 'the owners still read their part');
  t.true(mine?.truncated === true, 'the configuration was too large to carry, and it says so');
  t.is(openPrivateStatus(p, guests[5]!.admin.enc), undefined, 'beyond four guests, a guest gets no part');
  t.truthy(openPrivateStatus(p, guests[0]!.admin.enc));
});

test('an invitation crowded out by newer ones (more than 32 waiting) is void for good: delivered again, a replay; its claim not-invited', (t) => {
  const { dev, alice, bob } = world();
  const invs = Array.from({ length: 33 }, () => alice.invite(dev, { epoch: EPOCH }));
  let s = feed(dev, START, [[0, item(1, 'claim', alice.claim(dev), alice.masterEnvelope)], ...invs.map((inv, i) => [0, item(2 + i, 'invite', inv.object)] as const)]);
  const first = invs[0] as (typeof invs)[number];
  t.is(s.invites[first.nonce], undefined, 'the oldest was crowded out');
  t.is(Object.keys(s.invites).length, 32);
  s = feed(dev, s, [[0, item(35, 'invite', first.object)]]);
  t.is(lastCode(s), 'replay', 'the portal cannot revive it by delivering it again');
  s = feed(dev, s, [[0, item(36, 'claim', bob.acceptInvite(dev, first, EPOCH), bob.masterEnvelope)]]);
  t.is(lastCode(s), 'not-invited');
  t.is(s.owners[bob.masterId], undefined);
});
