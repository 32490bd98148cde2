/**
 * Attack 8: Bob, a co-owner of the shared thermostat, tries to remove Alice. He signs a removal
 * naming Alice's master profile with his own administration key.
 *   - The portal refuses it (not-owner, 403): a removal can only remove the owner who signs it.
 *   - A hostile portal delivers it anyway, injected into the device's feed: its log does not
 *     hold it (the portal refused it), so the device refuses it: not-logged. (Were it logged,
 *     the device would check it against ALICE's master profile, which does not list Bob's key:
 *     unknown-signer; test/agent-core.test.ts.)
 * Alice stays an owner and her settings stay in the effective configuration; Bob can still
 * remove himself.
 */
import { openClaimWindow } from '../../harness/agent-process.js';
import test from 'ava';
import { isMeshError } from '../../mesh/errors.js';
import { createRemove } from '../../mesh/messages.js';
import { agentStatus } from '../../harness/agent-process.js';
import { TestOwner } from '../../harness/owner.js';
import { swapNextItem } from './proxy.js';
import { assertRefused, hostileWorld, refusal } from './world.js';

test.serial("Bob's removal of Alice: the portal refuses it (not-owner) and the device refuses it when injected (not-logged)", async (t) => {
  const w = await hostileWorld({ initial: { setpoint: 20 } });
  const bob = await TestOwner.create(w.portal.http, 'bob');
  try {
    await openClaimWindow(w.dir);
    await bob.claim(w.identity.labelUri);
    await w.agent.waitFor((e) => e.type === 'claimed' && e.account === bob.account);
    await bob.publish('thermostat', { mode: 'comfort' });
    await w.agent.waitFor((e) => e.type === 'applied' && e.account === bob.account);
    const before = w.configBytes();
    t.deepEqual(JSON.parse(before).thermostat, { setpoint: 20, mode: 'comfort' });

    const evil = createRemove(bob.admin.sign, { device: w.identity.id, master: w.alice.masterId });
    const e = await bob.client.post(w.identity.id, evil).then(() => undefined, (x: unknown) => x);
    t.true(isMeshError(e, 'not-owner'), String(e));
    t.is((e as { detail?: { status?: number } }).detail?.status, 403);

    // the hostile portal delivers it anyway, in place of Bob's next update
    const { rule, served } = swapNextItem('inject-remove', (it) => it.kind === 'application', (it) => ({ n: it.n, kind: 'remove', object: evil as never, index: it.index }));
    const off = w.proxy.use(rule);
    await bob.publish('thermostat', { mode: 'eco' });
    const n = await served;
    off();
    const r = await refusal(w, (x) => x.n === n, 'the injected removal refused');
    // the portal refused it, so its log does not hold it: the device refuses it before reading it
    t.is(r.code, 'not-logged');
    t.is(r.kind, 'remove');
    await assertRefused(t, w, before, 'not-logged');
    const st = await agentStatus(w.dir);
    t.deepEqual(st.owners.map((o) => o.account).sort(), [w.alice.account, bob.account].sort(), 'Alice is still an owner');
    t.is((st.config.thermostat as { setpoint?: number }).setpoint, 20, "Alice's setting stands");

    // Bob can remove himself; Alice's configuration stays
    await bob.remove(w.identity.id);
    await w.agent.waitFor((x) => x.type === 'removed' && x.account === bob.account);
    t.deepEqual(JSON.parse(w.configBytes()).thermostat, { setpoint: 20 });
    t.deepEqual((await agentStatus(w.dir)).owners.map((o) => o.account), [w.alice.account]);
  } finally {
    bob.close();
    await w.close();
  }
});
