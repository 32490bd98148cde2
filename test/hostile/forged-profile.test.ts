/**
 * Attack 3: the portal delivers an application profile the owner did not sign. The proxy swaps
 * the next application profile the device downloads for
 *   - the same profile with one bit of its signature flipped            -> bad-signature
 *     (the log leaf is the signed payload, which is unchanged: the log check passes)
 *   - a profile signed by a key the owner's master profile does not list -> not-logged
 *   - a profile signed by an administration key the owner has revoked    -> not-logged
 * (the portal itself refuses all three at Publish, so only a hostile portal can deliver them,
 * and its log holds none of the last two: the device refuses them before reading them; the
 * core's unknown-signer and revoked-key checks behind it are in test/agent-core.test.ts).
 * Each time: refused with the code, config.json unchanged, the reason in the agent's status and
 * in its signed report; and the device still obeys the owner afterwards.
 */
import test from 'ava';
import * as c from '../../mesh/crypto.js';
import { isMeshError } from '../../mesh/errors.js';
import { createApplicationProfile, type AdminKeys } from '../../mesh/profiles.js';
import { until } from '../../harness/agent-process.js';
import { swapNextItem } from './proxy.js';
import type { SignedEnvelope } from '../../mesh/envelope.js';
import { assertRecovers, assertRefused, flipSignatureBit, hostileWorld, payloadOf, refusal, type World } from './world.js';

const isApp = (it: { kind: string }): boolean => it.kind === 'application';

async function attack(w: World, make: (seq: number, real: SignedEnvelope) => unknown, setpoint: number): Promise<string> {
  const { rule, served } = swapNextItem('forge', isApp, (it) => ({ ...it, object: make(payloadOf(it.object).seq as number, it.object as SignedEnvelope) as never }));
  const off = w.proxy.use(rule);
  try {
    await w.alice.publish('thermostat', { setpoint });
    const n = await served;
    const r = await refusal(w, (e) => e.n === n, 'the forged profile refused');
    return String(r.code);
  } finally {
    off();
  }
}

function deviceTarget(w: World): { id: string; enc: Uint8Array } {
  const d = w.alice.devices.get(w.identity.id);
  if (d === undefined) throw new Error('alice has no device');
  return d;
}

test.serial('a profile with one bit of its signature flipped is refused: bad-signature', async (t) => {
  const w = await hostileWorld();
  try {
    const before = w.configBytes();
    // the real, owner-signed (and logged) profile with one bit of its signature changed: the log
    // leaf is the signed payload, so the log check passes and the signature check refuses it
    const code = await attack(w, (_seq, real) => flipSignatureBit(real), 30);
    t.is(code, 'bad-signature');
    await assertRefused(t, w, before, 'bad-signature');
    await assertRecovers(t, w, { setpoint: 22 });
  } finally {
    await w.close();
  }
});

test.serial('a profile signed by a key the master profile does not list is in no log: refused not-logged', async (t) => {
  const w = await hostileWorld();
  try {
    const before = w.configBytes();
    const stranger: AdminKeys = { name: 'stranger', sign: c.ed25519KeyPair(), enc: c.x25519KeyPair() };
    const forged = (seq: number) => createApplicationProfile(stranger, { master: w.alice.masterId, app: 'thermostat', seq, config: { setpoint: 30 }, devices: [deviceTarget(w)] });
    // the portal refuses it too: only a hostile portal can deliver it
    const e = await w.alice.client.publish(forged(99)).then(() => undefined, (x: unknown) => x);
    t.true(isMeshError(e, 'unknown-signer'), String(e));
    // and so it is in no log: the device refuses it before it looks at its signature
    const code = await attack(w, forged, 21);
    t.is(code, 'not-logged');
    await assertRefused(t, w, before, 'not-logged');
    await assertRecovers(t, w, { setpoint: 23 });
  } finally {
    await w.close();
  }
});

test.serial('after the owner rotates its administration key, a profile signed by the old key is in no log: refused not-logged', async (t) => {
  const w = await hostileWorld();
  try {
    const old = await w.alice.rotateAdmin();
    // the new master profile (seq 2, old key revoked) reaches the device through its feed
    await until('the device holds master profile #2', () => (w.state().owners[w.alice.masterId]?.masterSeq === 2 ? true : undefined));
    const before = w.configBytes();
    const forged = (seq: number) => createApplicationProfile(old, { master: w.alice.masterId, app: 'thermostat', seq, config: { setpoint: 5, mode: 'off' }, devices: [deviceTarget(w)] });
    const e = await w.alice.client.publish(forged(99)).then(() => undefined, (x: unknown) => x);
    t.true(isMeshError(e, 'revoked-key'), String(e));
    const code = await attack(w, forged, 21);
    t.is(code, 'not-logged');
    await assertRefused(t, w, before, 'not-logged');
    await assertRecovers(t, w, { setpoint: 19 });
  } finally {
    await w.close();
  }
});
