/** The device's rules for moving to another portal (agent/core.ts `move`), in process. */
import test from 'ava';
import * as c from '../mesh/crypto.js';
import { signKeyId } from '../mesh/keys.js';
import { createMove } from '../mesh/messages.js';
import { applyItems } from '../agent/core.js';
import { EMPTY_STATE, type AgentState } from '../agent/state.js';
import { CoreDevice, CoreOwner, item } from '../harness/core-world.js';

const B = { portal: 'https://b.example', portalId: signKeyId(c.ed25519KeyPair().publicKey) };

function twoOwners(): { dev: CoreDevice; alice: CoreOwner; bob: CoreOwner; s: AgentState } {
  const dev = new CoreDevice();
  const alice = new CoreOwner('alice@a.example');
  const bob = new CoreOwner('bob@a.example');
  const r = applyItems(EMPTY_STATE, [item(1, 'claim', alice.claim(dev), alice.masterEnvelope), item(2, 'claim', bob.claim(dev), bob.masterEnvelope), item(3, 'application', alice.config(dev, 'thermostat', { setpoint: 21 }))], dev.context(undefined, true));
  t0(r.state.n === 3 && Object.keys(r.state.owners).length === 2);
  return { dev, alice, bob, s: { ...r.state, portalKey: 'MAAA-PORTAL-A' } };
}
function t0(ok: boolean): void {
  if (!ok) throw new Error('setup failed');
}

test('the device moves only when every owner asked for the same portal, keeping owners and configuration', (t) => {
  const { dev, alice, bob, s } = twoOwners();
  const ctx = dev.context();
  const r1 = applyItems(s, [item(4, 'move', createMove(alice.admin.sign, { device: dev.id, master: alice.masterId, ...B }))], ctx);
  t.is(r1.state.n, 4);
  t.falsy(r1.state.move, 'one of two owners asked: not yet');
  t.deepEqual(r1.state.moves?.[alice.masterId], B);
  // Bob asks for another portal: still not
  const other = { portal: 'https://c.example', portalId: signKeyId(c.ed25519KeyPair().publicKey) };
  const r2 = applyItems(r1.state, [item(5, 'move', createMove(bob.admin.sign, { device: dev.id, master: bob.masterId, ...other }))], ctx);
  t.falsy(r2.state.move);
  const r3 = applyItems(r2.state, [item(6, 'move', createMove(bob.admin.sign, { device: dev.id, master: bob.masterId, ...B }))], ctx);
  t.deepEqual(r3.state.move, B);
  t.is(Object.keys(r3.state.owners).length, 2);
  t.is(r3.state.owners[alice.masterId]?.apps.thermostat?.seq, 1);
});

test('a move from someone who does not own the device, for another device, replayed, or naming the current portal', (t) => {
  const { dev, alice, s } = twoOwners();
  const ctx = dev.context();
  const mallory = new CoreOwner('mallory@a.example');
  const codeOf = (r: ReturnType<typeof applyItems>): string | undefined => r.state.errors.at(-1)?.code;
  t.is(codeOf(applyItems(s, [item(4, 'move', createMove(mallory.admin.sign, { device: dev.id, master: mallory.masterId, ...B }))], ctx)), 'unknown-owner');
  t.is(codeOf(applyItems(s, [item(4, 'move', createMove(alice.admin.sign, { device: new CoreDevice().id, master: alice.masterId, ...B }))], ctx)), 'wrong-device');
  // signed by Mallory's key but naming Alice: not hers
  t.is(codeOf(applyItems(s, [item(4, 'move', createMove(mallory.admin.sign, { device: dev.id, master: alice.masterId, ...B }))], ctx)), 'unknown-signer');
  const m = createMove(alice.admin.sign, { device: dev.id, master: alice.masterId, ...B });
  const once = applyItems(s, [item(4, 'move', m)], ctx);
  t.is(codeOf(applyItems(once.state, [item(5, 'move', m)], ctx)), 'replay');
  const here = applyItems(s, [item(4, 'move', createMove(alice.admin.sign, { device: dev.id, master: alice.masterId, portal: 'https://a.example', portalId: 'MAAA-PORTAL-A' }))], ctx);
  t.is(here.state.n, 4);
  t.deepEqual(here.state.moves ?? {}, {}, 'a move to the portal the device is on changes nothing');
});
