/**
 * Attack 4: the portal replays genuine, correctly signed objects of its log where they do not
 * belong (injected into Download answers in place of the owner's next profile, each with its own
 * log index and inclusion proof, so the device's log check passes and its own rules must refuse):
 *   - an older application profile of the same owner (rollback)               -> rollback
 *   - the owner's profile meant for another of her devices (mix-and-match)      -> not-a-recipient
 *   - a profile of another owner (Mallory, who does not own this device)        -> unknown-owner
 *   - Alice's own old claim carrying Mallory's master profile                   -> wrong-master
 * config.json unchanged each time, the code in the agent's status and signed report, and the
 * device still obeys its owner afterwards.
 */
import test from 'ava';
import { PortalClient } from '../../client/portal-client.js';
import { b64u } from '../../mesh/bytes.js';
import { deriveClaimSecrets, sealClaimBlob } from '../../mesh/claim.js';
import { newDeviceIdentity } from '../../mesh/device.js';
import { createSession } from '../../mesh/messages.js';
import { TestOwner } from '../../harness/owner.js';
import { asLogged, swapNextItem, type WireAnswer, type WireItem } from './proxy.js';
import { assertRecovers, assertRefused, hostileWorld, refusal, type World } from './world.js';

async function inject(w: World, replacement: (it: WireItem, body: WireAnswer) => WireItem | Promise<WireItem>, setpoint: number): Promise<Record<string, unknown>> {
  const { rule, served } = swapNextItem('replay', (it) => it.kind === 'application', replacement);
  const off = w.proxy.use(rule);
  try {
    await w.alice.publish('thermostat', { setpoint });
    const n = await served;
    return await refusal(w, (e) => e.n === n, `item ${n} refused`);
  } finally {
    off();
  }
}

test.serial('an older application profile of the same owner is refused: rollback', async (t) => {
  const w = await hostileWorld();
  try {
    const v2 = await w.alice.publish('thermostat', { setpoint: 18 });
    await w.agent.waitFor((e) => e.type === 'applied' && e.seq === 2);
    await w.alice.publish('thermostat', { setpoint: 19 });
    await w.agent.waitFor((e) => e.type === 'applied' && e.seq === 3);
    const before = w.configBytes();
    const r = await inject(w, (it, body) => asLogged(w.portal.http, body, it, v2), 26);
    t.is(r.code, 'rollback');
    t.is(r.seq, 2);
    await assertRefused(t, w, before, 'rollback');
    t.is(JSON.parse(w.configBytes()).thermostat.setpoint, 19);
    await assertRecovers(t, w, { setpoint: 21 });
  } finally {
    await w.close();
  }
});

test.serial("the owner's profile for another of her devices is refused: not-a-recipient", async (t) => {
  const w = await hostileWorld();
  try {
    // Alice's second device, registered and claimed
    const d2 = newDeviceIdentity({ model: 'thermostat', manufacturer: 'acme', serial: 'two', portalAuthority: new URL(w.portal.http).host });
    const s2 = deriveClaimSecrets(d2.claimSecret);
    const c2 = new PortalClient({ url: w.portal.http });
    await c2.register({ device: d2.profile, endorsement: null, claim: { id: s2.claimId, blob: sealClaimBlob(s2, { profile: d2.profile, endorsement: null }), portalKey: b64u(s2.portalKey) }, request: createSession(d2.keys.auth, d2.id) });
    c2.close();
    await w.alice.claim(d2.labelUri);
    const other = w.alice.devices.get(d2.id);
    if (other === undefined) throw new Error('no second device');
    // published (and logged) for the other device only
    const forOther = await w.alice.publish('thermostat', { setpoint: 12 }, { devices: [other] });
    const before = w.configBytes();
    const r = await inject(w, (it, body) => asLogged(w.portal.http, body, it, forOther), 27);
    t.is(r.code, 'not-a-recipient');
    await assertRefused(t, w, before, 'not-a-recipient');
    await assertRecovers(t, w, { setpoint: 22 });
  } finally {
    await w.close();
  }
});

test.serial('a profile of another owner (who does not own the device) is refused: unknown-owner', async (t) => {
  const w = await hostileWorld();
  const mallory = await TestOwner.create(w.portal.http, 'mallory');
  try {
    const before = w.configBytes();
    // genuine, correctly signed by Mallory and logged: published for a device of her own
    const d3 = newDeviceIdentity({ model: 'thermostat', manufacturer: 'acme', serial: 'mallory', portalAuthority: new URL(w.portal.http).host });
    const s3 = deriveClaimSecrets(d3.claimSecret);
    const c3 = new PortalClient({ url: w.portal.http });
    await c3.register({ device: d3.profile, endorsement: null, claim: { id: s3.claimId, blob: sealClaimBlob(s3, { profile: d3.profile, endorsement: null }), portalKey: b64u(s3.portalKey) }, request: createSession(d3.keys.auth, d3.id) });
    c3.close();
    await mallory.claim(d3.labelUri);
    const hers = await mallory.publish('thermostat', { setpoint: 30, mode: 'comfort' }, { seq: 50 });
    const r = await inject(w, (it, body) => asLogged(w.portal.http, body, it, hers), 28);
    t.is(r.code, 'unknown-owner');
    t.is(r.master, mallory.masterId);
    await assertRefused(t, w, before, 'unknown-owner');
    // and a master profile of Mallory's, delivered as if it were an owner's update
    const { rule, served } = swapNextItem('master', (it) => it.kind === 'application', (it, body) => asLogged(w.portal.http, body, { n: it.n, kind: 'master', object: it.object, index: it.index }, mallory.masterEnvelope));
    const off = w.proxy.use(rule);
    await w.alice.publish('thermostat', { setpoint: 29 });
    const n = await served;
    t.is((await refusal(w, (e) => e.n === n, 'the foreign master refused')).code, 'unknown-owner');
    off();
    t.is(w.configBytes(), before);
    await assertRecovers(t, w, { setpoint: 23 });
  } finally {
    mallory.close();
    await w.close();
  }
});

test.serial("Alice's old claim replayed with another owner's master profile is refused: wrong-master", async (t) => {
  const w = await hostileWorld();
  const mallory = await TestOwner.create(w.portal.http, 'mallory');
  try {
    // the portal keeps Alice's claim in the device's feed (item 1): it can serve it again at will
    const dev = new PortalClient({ url: w.portal.http, identity: { subject: w.identity.id, key: w.identity.keys.auth } });
    const claimItem = (await dev.download(0)).items.find((i) => i.kind === 'claim');
    dev.close();
    if (claimItem === undefined) throw new Error('no claim in the feed');
    const before = w.configBytes();
    const r = await inject(w, (it, body) => asLogged(w.portal.http, body, { n: it.n, kind: 'claim', object: it.object, index: it.index }, claimItem.object, { master: mallory.masterEnvelope }), 27);
    t.is(r.code, 'wrong-master');
    await assertRefused(t, w, before, 'wrong-master');
    await assertRecovers(t, w, { setpoint: 21 });
  } finally {
    mallory.close();
    await w.close();
  }
});
