/**
 * Attack: the portal replays genuine ownership messages where they no longer belong, and forwards
 * a claim made from a photographed label. Through the hostile proxy (nothing reaches the device
 * but through it), each is refused with its own code, recorded in the device's signed status,
 * config.json stays byte for byte, nobody's ownership changes, and the device still obeys Alice:
 *   - Mallory's claim from the label, forwarded by the portal         -> not-invited
 *   - an invitation already used, delivered again                      -> replay
 *   - Bob's claim with that invitation, delivered again                -> invitation-used
 *   - Bob's removal of himself, delivered again after he rejoined      -> replay
 *   - Alice's own label claim, delivered again                         -> replay
 */
import test from 'ava';
import type { SignedEnvelope } from '../../mesh/envelope.js';
import { TestOwner, type TestDevice } from '../../harness/owner.js';
import { asLogged, swapNextItem, type WireItem } from './proxy.js';
import { assertRecovers, assertRefused, hostileWorld, refusal, type World } from './world.js';

function deviceOf(w: World): TestDevice & { profile: SignedEnvelope } {
  const d = w.alice.devices.get(w.identity.id);
  if (d === undefined) throw new Error('alice does not hold the device');
  return { ...d, profile: w.identity.profile };
}

const epochOf = (w: World): string => (w.state() as unknown as { epoch: string }).epoch;
const owners = (w: World): string[] => Object.values(w.state().owners).map((o) => o.account).sort();

/** Deliver `object` (kind `kind`) in place of Alice's next application profile; the device's refusal of it. */
async function deliverInstead(w: World, kind: string, object: SignedEnvelope, master: SignedEnvelope | undefined, setpoint: number): Promise<{ code: string }> {
  const { rule, served } = swapNextItem(`replay-${kind}`, (it) => it.kind === 'application', (it, body): Promise<WireItem> => {
    const { master: _m, ...rest } = it;
    // a genuine object of the portal's log, with its own index and proof: the log check passes
    return asLogged(w.portal.http, body, rest, object, { kind, ...(master !== undefined ? { master } : {}) });
  });
  const off = w.proxy.use(rule);
  try {
    await w.alice.publish('thermostat', { setpoint });
    const n = await served;
    return (await refusal(w, (e) => e.n === n, `item ${n} refused`)) as unknown as { code: string };
  } finally {
    off();
  }
}

test.serial('a label claim by Mallory, forwarded by the portal, is refused: not-invited', async (t) => {
  const w = await hostileWorld();
  const mallory = await TestOwner.create(w.portal.http, 'mallory');
  try {
    const before = w.configBytes();
    await mallory.claim(w.identity.labelUri); // the portal checks the label proof and forwards it: it is genuine
    const r = await refusal(w, (e) => e.type === 'refused' && e.kind === 'claim', 'the claim refused');
    t.is((r as unknown as { code: string }).code, 'not-invited');
    await assertRefused(t, w, before, 'not-invited');
    t.deepEqual(owners(w), [w.alice.account]);
    await assertRecovers(t, w, { setpoint: 21 });
  } finally {
    mallory.close();
    await w.close();
  }
});

test.serial('replayed invitations, invitation claims, removals and label claims are refused with their codes', async (t) => {
  const w = await hostileWorld();
  const bob = await TestOwner.create(w.portal.http, 'bob');
  try {
    const dev = deviceOf(w);
    const aliceClaim = w.alice.lastClaim;
    if (aliceClaim === undefined) throw new Error('no claim of alice');
    const inv1 = await w.alice.invite(dev, { epoch: epochOf(w) });
    await bob.acceptInvite(inv1.uri);
    await w.agent.waitFor((e) => e.type === 'claimed' && e.account === bob.account, 15_000, 'bob joined by invitation');
    const bobClaim1 = bob.lastClaim as SignedEnvelope;
    t.deepEqual(owners(w), [w.alice.account, bob.account].sort());

    let before = w.configBytes();
    t.is((await deliverInstead(w, 'invite', inv1.object, undefined, 22)).code, 'replay');
    await assertRefused(t, w, before, 'replay');

    before = w.configBytes();
    t.is((await deliverInstead(w, 'claim', bobClaim1, bob.masterEnvelope, 23)).code, 'invitation-used');
    await assertRefused(t, w, before, 'invitation-used');

    // Bob leaves, and comes back with a new invitation; then his old removal is delivered again
    const removal = await bob.remove(dev.id, epochOf(w));
    await w.agent.waitFor((e) => e.type === 'removed' && e.account === bob.account, 15_000, 'bob left');
    const inv2 = await w.alice.invite(dev, { epoch: epochOf(w) });
    await bob.acceptInvite(inv2.uri);
    await until(() => owners(w).length === 2);
    before = w.configBytes();
    t.is((await deliverInstead(w, 'remove', removal, undefined, 24)).code, 'replay');
    await assertRefused(t, w, before, 'replay');
    t.deepEqual(owners(w), [w.alice.account, bob.account].sort(), 'the old removal removed nobody');

    before = w.configBytes();
    t.is((await deliverInstead(w, 'claim', aliceClaim, w.alice.masterEnvelope, 25)).code, 'replay');
    await assertRefused(t, w, before, 'replay');
    await assertRecovers(t, w, { setpoint: 19 });
  } finally {
    bob.close();
    await w.close();
  }
});

async function until(ok: () => boolean): Promise<void> {
  for (let i = 0; i < 300 && !ok(); i++) await new Promise((r) => setTimeout(r, 50));
}
