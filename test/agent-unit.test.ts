import test from 'ava';
import fc from 'fast-check';
import { validate, checkSchema } from '../mesh/schema.js';
import { merge, nextValues } from '../agent/merge.js';
import { backoff } from '../runtime/backoff.js';
import { MeshError } from '../mesh/errors.js';

const thermostat = checkSchema({
  type: 'object',
  additionalProperties: false,
  properties: {
    setpoint: { type: 'number', minimum: 5, maximum: 30 },
    mode: { enum: ['comfort', 'eco', 'off'] },
    name: { type: 'string', maxLength: 8 },
  },
});

test('schema: a thermostat refuses 350 °C and unknown keys, accepts sane values', (t) => {
  t.deepEqual(validate(thermostat, { setpoint: 21, mode: 'eco' }), []);
  t.deepEqual(validate(thermostat, { setpoint: 350 }), ['setpoint is 350; the maximum is 30']);
  t.deepEqual(validate(thermostat, { colour: 'red' }), ['colour is not a setting of this application']);
  t.deepEqual(validate(thermostat, { mode: 'turbo' }), ['mode must be one of ["comfort","eco","off"]']);
  t.deepEqual(validate(thermostat, { setpoint: '21' }), ['setpoint must be number, not string']);
  t.is(validate(thermostat, { name: 'much too long' }).length, 1);
});

test('schema: unsupported keywords are refused at load, not ignored', (t) => {
  const e = t.throws(() => checkSchema({ type: 'object', properties: { a: { oneOf: [] } } }), { instanceOf: MeshError });
  t.is(e?.code, 'schema');
});

test('merge: the change the device applied last wins (feed order), whatever time its signer wrote; sources recorded', (t) => {
  // Bob's clock is a day ahead: his change (applied first, n=5) says tomorrow; Alice's (n=6) says today
  const bob = { master: 'MBBB', account: 'bob@h', values: nextValues(undefined, { setpoint: 25, mode: 'eco' }, '2026-01-02T00:00:00.000Z', 5) };
  const alice = { master: 'MAAA', account: 'alice@h', values: nextValues(undefined, { setpoint: 18 }, '2026-01-01T00:00:01.000Z', 6) };
  const e = merge([alice, bob]);
  t.deepEqual(e.values, { mode: 'eco', setpoint: 18 });
  t.is(e.sources.setpoint?.owner, 'alice@h');
  t.is(e.sources.setpoint?.n, 6);
  t.is(e.sources.mode?.owner, 'bob@h');
  t.deepEqual(merge([bob, alice]), e, 'the owners\' order does not matter');
  // without alice, bob's value stands
  t.deepEqual(merge([bob]).values, { mode: 'eco', setpoint: 25 });
});

test('merge: re-sending an unchanged value keeps its original change (and its place in the order)', (t) => {
  const v1 = nextValues(undefined, { setpoint: 21, mode: 'eco' }, '2026-01-01T00:00:01.000Z', 3);
  const v2 = nextValues(v1, { setpoint: 21, mode: 'off' }, '2026-01-01T00:00:05.000Z', 9);
  t.is(v2.setpoint?.changedAt, '2026-01-01T00:00:01.000Z');
  t.is(v2.setpoint?.n, 3);
  t.is(v2.mode?.changedAt, '2026-01-01T00:00:05.000Z');
  t.is(v2.mode?.n, 9);
  // so a co-owner's later change to setpoint (n=7) still stands against the re-sent document
  const other = { master: 'MBBB', account: 'bob@h', values: nextValues(undefined, { setpoint: 26 }, '2026-01-01T00:00:02.000Z', 7) };
  t.is(merge([{ master: 'MAAA', account: 'alice@h', values: v2 }, other]).values.setpoint, 26);
});

test('merge is independent of owner order (property)', (t) => {
  const owner = fc.record({
    master: fc.stringMatching(/^M[A-Z2-7]{4}$/),
    values: fc.dictionary(fc.constantFrom('a', 'b', 'c'), fc.record({ value: fc.integer(), changedAt: fc.constantFrom('2026-01-01T00:00:01.000Z', '2026-01-01T00:00:02.000Z'), n: fc.integer({ min: 1, max: 5 }) })),
  });
  fc.assert(
    fc.property(fc.uniqueArray(owner, { selector: (o) => o.master, maxLength: 4 }), (owners) => {
      const docs = owners.map((o) => ({ ...o, account: o.master }));
      t.deepEqual(merge(docs), merge([...docs].reverse()));
    }),
  );
});

test('backoff grows, is capped and jittered between half and the whole step', (t) => {
  const lo = backoff(100, 1000, () => 0);
  const hi = backoff(100, 1000, () => 1);
  const a = Array.from({ length: 8 }, () => lo.next());
  const b = Array.from({ length: 8 }, () => hi.next());
  t.deepEqual(a, [50, 100, 200, 400, 500, 500, 500, 500]);
  t.deepEqual(b, [100, 200, 400, 800, 1000, 1000, 1000, 1000]);
  lo.reset();
  t.is(lo.failures, 0);
  t.is(lo.next(), 50, 'after a reset the schedule starts again at the base delay');
});
