/**
 * Attack 2: claiming a device without its label's secret.
 *   - Mallory (an owner at the same portal who somehow learnt the claim id) sends claims with
 *     proofs made without the secret straight to the portal: 403 bad-claim-proof; after the
 *     portal's limit (--claim-attempts) every claim of that device is 429 rate-limited for the
 *     window, even a right one;
 *   - the hostile portal itself, which knows the portal-side proof key but not the label,
 *     slips Mallory's claim into the device's feed: it is in no log, and the device refuses it
 *     (`not-logged`; the device's own check of the claim proof, `bad-claim-proof`, is behind it:
 *     test/agent-core.test.ts).
 * The device keeps its configuration and its one owner.
 */
import test from 'ava';
import * as c from '../../mesh/crypto.js';
import { deriveClaimSecrets, type ClaimSecrets } from '../../mesh/claim.js';
import { isMeshError, type MeshError } from '../../mesh/errors.js';
import { createClaim } from '../../mesh/messages.js';
import { agentStatus } from '../../harness/agent-process.js';
import { TestOwner } from '../../harness/owner.js';
import { swapNextItem } from './proxy.js';
import { assertRecovers, assertRefused, hostileWorld, refusal } from './world.js';

const LIMIT = 5;

async function refusedWith(p: Promise<unknown>): Promise<MeshError> {
  try {
    await p;
  } catch (e) {
    if (isMeshError(e)) return e;
    throw e;
  }
  throw new Error('the portal accepted the claim');
}

test.serial('claims without the label secret: 403 bad-claim-proof, then 429 for every claim of the device, even a right one', async (t) => {
  const w = await hostileWorld({ portalArgs: ['--claim-attempts', String(LIMIT)] });
  const mallory = await TestOwner.create(w.portal.http, 'mallory');
  const bob = await TestOwner.create(w.portal.http, 'bob');
  try {
    const before = w.configBytes();
    const real = deriveClaimSecrets(w.identity.claimSecret);
    const guess = (): ClaimSecrets => ({ ...deriveClaimSecrets(c.randomBytes(16)), claimId: real.claimId });
    for (let i = 0; i < LIMIT; i++) {
      const claim = createClaim(mallory.admin.sign, guess(), { device: w.identity.id, master: mallory.masterId, account: mallory.account });
      const e = await refusedWith(mallory.client.claim(real.claimId, claim));
      t.is(e.code, 'bad-claim-proof', `guess ${i + 1}`);
      t.is(e.detail?.status, 403);
    }
    for (let i = 0; i < 20; i++) {
      const claim = createClaim(mallory.admin.sign, guess(), { device: w.identity.id, master: mallory.masterId, account: mallory.account });
      const e = await refusedWith(mallory.client.claim(real.claimId, claim));
      t.is(e.code, 'rate-limited', `guess ${LIMIT + i + 1}`);
      t.is(e.detail?.status, 429);
    }
    // Bob holds the label: his claim is right, but the device is locked for the window
    const right = createClaim(bob.admin.sign, real, { device: w.identity.id, master: bob.masterId, account: bob.account });
    const locked = await refusedWith(bob.client.claim(real.claimId, right));
    t.is(locked.code, 'rate-limited');
    t.regex(locked.message, /try again in \d+ s/);

    await new Promise((r) => setTimeout(r, 1000));
    t.is(w.configBytes(), before, 'config.json is exactly as before');
    const st = await agentStatus(w.dir);
    t.deepEqual(st.owners.map((o) => o.account), [w.alice.account], 'nobody new owns the device');
  } finally {
    mallory.close();
    bob.close();
    await w.close();
  }
});

test.serial('a hostile portal slips a claim without the label secret into the feed: the device refuses it (not-logged)', async (t) => {
  const w = await hostileWorld();
  const mallory = await TestOwner.create(w.portal.http, 'mallory');
  try {
    const before = w.configBytes();
    const real = deriveClaimSecrets(w.identity.claimSecret);
    // the portal knows the portal-side key (the device registered it) but not the device-side one
    const portalSide: ClaimSecrets = { ...deriveClaimSecrets(c.randomBytes(16)), claimId: real.claimId, portalKey: real.portalKey };
    const claim = createClaim(mallory.admin.sign, portalSide, { device: w.identity.id, master: mallory.masterId, account: mallory.account });
    const { rule, served } = swapNextItem('inject-claim', (it) => it.kind === 'application', (it) => ({ n: it.n, kind: 'claim', object: claim as never, master: mallory.masterEnvelope, index: it.index }));
    const off = w.proxy.use(rule);
    await w.alice.publish('thermostat', { setpoint: 25 });
    await served;
    const r = await refusal(w, (e) => e.kind === 'claim', 'the injected claim refused');
    // never logged (the portal would refuse it): the device refuses it before it checks the proof
    t.is(r.code, 'not-logged');
    await assertRefused(t, w, before, 'not-logged');
    t.deepEqual((await agentStatus(w.dir)).owners.map((o) => o.account), [w.alice.account]);
    off();
    await assertRecovers(t, w, { setpoint: 24 });
  } finally {
    mallory.close();
    await w.close();
  }
});
