/**
 * A schema may require a confirmation window for some settings (`x-confirm-within`, seconds):
 * the device refuses a change to such a setting sent without one (confirm-required), and the
 * owner's CLI sends the schema's window when its user gave none. Pure: the core and the planning.
 */
import test from 'ava';
import { applyItems, configDocument, confirmPending } from '../agent/core.js';
import { EMPTY_STATE, type AgentState } from '../agent/state.js';
import { confirmWindow, schemaConfirm, type Planned } from '../client/owner-config.js';
import type { DeviceRecord } from '../client/owner-state.js';
import type { Ctx } from '../client/owner.js';
import { isMeshError } from '../mesh/errors.js';
import { checkSchema, confirmNeeded } from '../mesh/schema.js';
import { CoreDevice, CoreOwner, item } from './helpers/core-world.js';

const NET = checkSchema({
  type: 'object',
  additionalProperties: false,
  properties: {
    setpoint: { type: 'number', minimum: 5, maximum: 30 },
    mode: { enum: ['comfort', 'eco', 'off'] },
    ssid: { type: 'string', maxLength: 32, 'x-confirm-within': 60 },
    portal: { type: 'string', 'x-confirm-within': 120 },
  },
});

test('x-confirm-within must be whole seconds from 1 to a day', (t) => {
  for (const bad of [0, -5, 1.5, '60', 86_401, null]) {
    const e = t.throws(() => checkSchema({ type: 'object', properties: { ssid: { type: 'string', 'x-confirm-within': bad } } }));
    t.true(isMeshError(e, 'schema'), String(bad));
    t.regex(e.message, /x-confirm-within/);
  }
  t.notThrows(() => checkSchema({ type: 'object', 'x-confirm-within': 86_400 }));
});

test('confirmNeeded: the largest window of the settings a change touches, none when they are untouched', (t) => {
  t.is(confirmNeeded(NET, { setpoint: 20, ssid: 'home' }, { setpoint: 21, ssid: 'home' }), undefined);
  t.is(confirmNeeded(NET, { setpoint: 20, ssid: 'home' }, { setpoint: 20, ssid: 'work' }), 60);
  t.is(confirmNeeded(NET, { ssid: 'home' }, {}), 60, 'removing a setting changes it too');
  t.is(confirmNeeded(NET, {}, { ssid: 'a', portal: 'https://p.example' }), 120);
  t.is(confirmNeeded(NET, { ssid: 'a' }, { ssid: 'a' }), undefined);
  t.is(confirmNeeded(checkSchema({ type: 'object', 'x-confirm-within': 30 }), { a: 1 }, { a: 2 }), 30, 'on the whole schema: any change');
  t.is(confirmNeeded(checkSchema({ type: 'object', 'x-confirm-within': 30 }), { a: 1 }, { a: 1 }), undefined);
});

function start(): { dev: CoreDevice; alice: CoreOwner; bob: CoreOwner; s: AgentState; ctx: ReturnType<CoreDevice['context']> } {
  const dev = new CoreDevice();
  const ctx = { ...dev.context(undefined, true), schemas: new Map([['thermostat', NET]]) };
  const alice = new CoreOwner('alice@portal.test');
  const bob = new CoreOwner('bob@portal.test');
  const s = applyItems(
    { ...EMPTY_STATE, epoch: 'e' },
    [item(1, 'claim', alice.claim(dev), alice.masterEnvelope), item(2, 'claim', bob.claim(dev), bob.masterEnvelope), item(3, 'application', alice.config(dev, 'thermostat', { setpoint: 20, ssid: 'home' }, { confirmS: 60 }))],
    ctx,
  ).state;
  return { dev, alice, bob, s: confirmPending(s), ctx };
}

const doc = (s: AgentState): unknown => configDocument(s).thermostat;

test('the device refuses a change to a setting its schema takes only on probation, sent without a window: confirm-required', (t) => {
  const { dev, alice, s, ctx } = start();
  t.deepEqual(doc(s), { setpoint: 20, ssid: 'home' });
  const r = applyItems(s, [item(4, 'application', alice.config(dev, 'thermostat', { setpoint: 20, ssid: 'work' }))], ctx);
  t.is(r.state.errors.at(-1)?.code, 'confirm-required');
  t.regex(r.state.errors.at(-1)?.message ?? '', /--confirm-within 60s/);
  t.deepEqual(doc(r.state), { setpoint: 20, ssid: 'home' }, 'nothing of it applied');
  t.is(r.state.pending, null);
});

test('with a window the same change is applied on probation; a change that leaves the setting alone needs none', (t) => {
  const { dev, alice, s, ctx } = start();
  const plain = applyItems(s, [item(4, 'application', alice.config(dev, 'thermostat', { setpoint: 22, ssid: 'home' }))], ctx).state;
  t.deepEqual(doc(plain), { setpoint: 22, ssid: 'home' });
  t.is(plain.pending, null);
  const probed = applyItems(plain, [item(5, 'application', alice.config(dev, 'thermostat', { setpoint: 22, ssid: 'work' }, { confirmS: 30 }))], ctx).state;
  t.deepEqual(doc(probed), { setpoint: 22, ssid: 'work' });
  t.is(probed.pending?.seq, 3);
});

test("what counts is the device's effective value: Bob's change that sets the value already in effect needs no window", (t) => {
  const { dev, bob, s, ctx } = start();
  const r = applyItems(s, [item(4, 'application', bob.config(dev, 'thermostat', { ssid: 'home', setpoint: 19 }))], ctx).state;
  t.deepEqual(doc(r), { setpoint: 19, ssid: 'home' });
  const r2 = applyItems(r, [item(5, 'application', bob.config(dev, 'thermostat', { ssid: 'guest', setpoint: 19 }))], ctx).state;
  t.is(r2.errors.at(-1)?.code, 'confirm-required');
});

function device(name: string, schemas?: Record<string, ReturnType<typeof checkSchema>>): DeviceRecord {
  return { id: `id-${name}`, name, model: 'thermostat', enc: 'x', fingerprint: `fp-${name}`, claimedAt: null, endorsedBy: null, ...(schemas !== undefined ? { schemas } : {}) };
}

test("the owner's side: the schema's window when none was asked for, said in a note; the owner's own window wins", (t) => {
  const planned: Planned[] = [
    { device: device('hall', { thermostat: NET }), from: { ssid: 'home' }, doc: { ssid: 'work' } },
    { device: device('old'), from: { ssid: 'home' }, doc: { ssid: 'work' } },
  ];
  t.is(schemaConfirm('thermostat', planned), 60);
  t.is(schemaConfirm('thermostat', [{ device: device('hall', { thermostat: NET }), from: { setpoint: 1 }, doc: { setpoint: 2 } }]), undefined);
  const notes: string[] = [];
  const ctx = { note: (l: string) => notes.push(l) } as unknown as Ctx;
  t.is(confirmWindow(ctx, 'thermostat', planned, undefined), 60);
  t.is(notes.length, 1);
  t.regex(notes[0] ?? '', /within 60 s/);
  t.is(confirmWindow(ctx, 'thermostat', planned, 15), 15);
  t.is(notes.length, 1, 'no note when the owner chose');
});
