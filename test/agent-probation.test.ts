/**
 * Changes on probation, in the pure core: a change whose owner asked for confirmation holds the
 * feed until the shell confirms it (portal reached, health check passed) or reverts it; a reverted
 * change is never applied again, the owner's earlier configuration comes back, and the owners are
 * told why. The shell's side (the hook cutting the device off, kill -9 in the window) is in
 * test/e2e/probation.test.ts.
 */
import test from 'ava';
import { applyItems, configDocument, confirmPending, factoryReset, removeOwnerLocally, revertPending } from '../agent/core.js';
import { EMPTY_STATE, type AgentState } from '../agent/state.js';
import { CoreDevice, CoreOwner, item, FIXED_TIME } from './helpers/core-world.js';

const setpoint = (s: AgentState): unknown => (configDocument(s).thermostat as { setpoint?: unknown } | undefined)?.setpoint;

function start(): { dev: CoreDevice; alice: CoreOwner; s: AgentState } {
  const dev = new CoreDevice();
  const alice = new CoreOwner('alice@portal.test');
  const s = applyItems({ ...EMPTY_STATE, epoch: 'e' }, [item(1, 'claim', alice.claim(dev), alice.masterEnvelope), item(2, 'application', alice.config(dev, 'thermostat', { setpoint: 20 }))], dev.context()).state;
  return { dev, alice, s };
}

test('a change asking for confirmation is applied and holds the feed until it is confirmed', (t) => {
  const { dev, alice, s: s0 } = start();
  const r = applyItems(s0, [item(3, 'application', alice.config(dev, 'thermostat', { setpoint: 29 }, { confirmS: 60 })), item(4, 'application', alice.config(dev, 'thermostat', { setpoint: 21 }))], dev.context());
  t.is(setpoint(r.state), 29, 'in effect while on probation');
  t.is(r.state.n, 3, 'the item after it waits');
  t.is(r.state.pending?.seq, 2);
  t.is(r.state.pending?.deadlineMs, Date.parse(FIXED_TIME) + 60_000);
  t.is(applyItems(r.state, [item(4, 'application', alice.config(dev, 'thermostat', { setpoint: 21 }, { seq: 3 }))], dev.context()).state, r.state, 'nothing moves while on probation');
  const confirmed = confirmPending(r.state);
  t.is(confirmed.pending, null);
  const after = applyItems(confirmed, [item(4, 'application', alice.config(dev, 'thermostat', { setpoint: 21 }, { seq: 3 }))], dev.context()).state;
  t.is(setpoint(after), 21);
});

test('a reverted change brings back the configuration before it, is reported, and is never applied again', (t) => {
  const { dev, alice, s: s0 } = start();
  const bad = alice.config(dev, 'thermostat', { setpoint: 29 }, { confirmS: 5 });
  const r = applyItems(s0, [item(3, 'application', bad)], dev.context()).state;
  const back = revertPending(r, { code: 'reverted', reason: 'no portal contact within 5 s of applying it' }, FIXED_TIME);
  t.is(setpoint(back), 20);
  t.is(back.pending, null);
  const err = back.errors.at(-1);
  t.is(err?.code, 'reverted');
  t.is(err?.seq, 2);
  t.regex(err?.message ?? '', /no portal contact/);
  // the portal delivers the same change again (a replay, or a feed read again): refused
  const again = applyItems({ ...back, n: 3 }, [item(4, 'application', bad)], dev.context()).state;
  t.is(again.errors.at(-1)?.code, 'rollback');
  t.is(setpoint(again), 20);
  // the owner publishes anew: applied
  const fixed = applyItems(again, [item(5, 'application', alice.config(dev, 'thermostat', { setpoint: 22 }))], dev.context()).state;
  t.is(setpoint(fixed), 22);
  // an unhealthy revert of a first change for an application leaves the application unset
  const first = applyItems(fixed, [item(6, 'application', alice.config(dev, 'lights', { on: true }, { confirmS: 5 }))], { ...dev.context(), schemas: new Map([...dev.context().schemas, ['lights', { type: 'object' } as never]]) }).state;
  t.truthy(configDocument(first).lights);
  const gone = revertPending(first, { code: 'unhealthy', reason: 'the health check exited with 3: sensor says no' }, FIXED_TIME);
  t.is(configDocument(gone).lights, undefined);
  t.is(gone.errors.at(-1)?.code, 'unhealthy');
});

test('a factory reset or the owner leaving ends a probation', (t) => {
  const { dev, alice, s: s0 } = start();
  const r = applyItems(s0, [item(3, 'application', alice.config(dev, 'thermostat', { setpoint: 29 }, { confirmS: 5 }))], dev.context()).state;
  t.not(r.pending, null);
  t.is(factoryReset(r, 'e2', dev.secrets.deviceKey).pending, null);
  // the pending owner's own removal waits behind the probation like any item; locally, it ends it
  t.is(removeOwnerLocally(r, alice.account, dev.secrets.deviceKey).state.pending, null);
});

test('on a device with a health check every change is on probation, for the check alone when no confirmation was asked for', (t) => {
  const { dev, alice, s: s0 } = start();
  const r = applyItems(s0, [item(3, 'application', alice.config(dev, 'thermostat', { setpoint: 23 }))], { ...dev.context(), health: true }).state;
  t.is(setpoint(r), 23);
  t.is(r.pending?.contact, false, 'no portal contact required');
  t.is(r.pending?.seq, 2);
  t.is(applyItems(s0, [item(3, 'application', alice.config(dev, 'thermostat', { setpoint: 23 }, { seq: 2 }))], dev.context()).state.pending, null, 'without a health check nothing is on probation');
  t.is(setpoint(revertPending(r, { code: 'unhealthy', reason: 'the health check exited with 1' }, FIXED_TIME)), 20);
});

test('a reverted change stays refused after its owner is removed on the device and claims again (the floor keeps it)', (t) => {
  const { dev, alice, s: s0 } = start();
  const bad = alice.config(dev, 'thermostat', { setpoint: 29 }, { confirmS: 5 });
  const r = revertPending(applyItems(s0, [item(3, 'application', bad)], dev.context()).state, { code: 'reverted', reason: 'no portal contact' }, FIXED_TIME);
  const gone = removeOwnerLocally(r, alice.account, dev.secrets.deviceKey).state;
  const back = applyItems(gone, [item(4, 'claim', alice.claim(dev), alice.masterEnvelope), item(5, 'application', bad)], dev.context()).state;
  t.truthy(back.owners[alice.masterId], 'claimed again');
  t.is(back.errors.at(-1)?.code, 'rollback');
  t.is(setpoint(back), undefined, 'the reverted change is not applied');
});
