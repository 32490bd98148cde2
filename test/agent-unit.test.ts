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

test('merge: the most recent change to a key wins; ties by owner fingerprint; sources recorded', (t) => {
  const alice = { master: 'MAAA', account: 'alice@h', values: nextValues(undefined, { setpoint: 21 }, '2026-01-01T00:00:01.000Z') };
  const bob = { master: 'MBBB', account: 'bob@h', values: nextValues(undefined, { setpoint: 19, mode: 'eco' }, '2026-01-01T00:00:02.000Z') };
  const e = merge([alice, bob]);
  t.deepEqual(e.values, { mode: 'eco', setpoint: 19 });
  t.is(e.sources.setpoint?.owner, 'bob@h');
  // without bob, alice's value stands
  t.deepEqual(merge([alice]).values, { setpoint: 21 });
  // a tie goes to the greater fingerprint, whatever the order
  const a2 = { ...alice, values: nextValues(undefined, { setpoint: 22 }, '2026-01-01T00:00:02.000Z') };
  t.is(merge([a2, bob]).values.setpoint, 19);
  t.is(merge([bob, a2]).values.setpoint, 19);
});

test('merge: re-sending an unchanged value keeps its original change time', (t) => {
  const v1 = nextValues(undefined, { setpoint: 21, mode: 'eco' }, '2026-01-01T00:00:01.000Z');
  const v2 = nextValues(v1, { setpoint: 21, mode: 'off' }, '2026-01-01T00:00:05.000Z');
  t.is(v2.setpoint?.changedAt, '2026-01-01T00:00:01.000Z');
  t.is(v2.mode?.changedAt, '2026-01-01T00:00:05.000Z');
});

test('merge is independent of owner order (property)', (t) => {
  const owner = fc.record({
    master: fc.stringMatching(/^M[A-Z2-7]{4}$/),
    values: fc.dictionary(fc.constantFrom('a', 'b', 'c'), fc.record({ value: fc.integer(), changedAt: fc.constantFrom('2026-01-01T00:00:01.000Z', '2026-01-01T00:00:02.000Z') })),
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
