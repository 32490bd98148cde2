/**
 * A staged rollout's plan and record (client/rollout.ts), without I/O: the waves, the decision
 * after each, and the record read back with every field checked.
 */
import test from 'ava';
import { decide, docTable, failures, parseRollout, planWaves, waveSent, withDevices, type DeviceEntry, type RolloutRecord } from '../client/rollout.js';
import { isMeshError } from '../mesh/errors.js';

const ids = Array.from({ length: 10 }, (_, i) => `d${i + 1}`);

test('the canaries first, then the rest in waves of M, in the order given; all the rest at once without --wave', (t) => {
  t.deepEqual(planWaves(ids, 2, 4), [['d1', 'd2'], ['d3', 'd4', 'd5', 'd6'], ['d7', 'd8', 'd9', 'd10']]);
  t.deepEqual(planWaves(ids, 3, 0), [['d1', 'd2', 'd3'], ids.slice(3)]);
  t.deepEqual(planWaves(ids, 1, 5), [['d1'], ids.slice(1, 6), ids.slice(6)]);
  t.is(planWaves(ids, 9, 1).length, 2);
});

test('a rollout needs more devices than canaries, and sane numbers', (t) => {
  for (const [c, w] of [[10, 1], [11, 0], [0, 1], [2, -1], [1.5, 1]] as const) {
    const e = t.throws(() => planWaves(ids, c, w));
    t.true(isMeshError(e, 'usage'), `${c}/${w}: ${String(e)}`);
  }
  t.true(isMeshError(t.throws(() => planWaves(['a', 'b', 'a'], 1, 1)), 'usage'));
});

function record(over: Partial<RolloutRecord> = {}): RolloutRecord {
  const table = docTable();
  const to = table.add({ setpoint: 23 });
  const from = table.add({ setpoint: 20 });
  const waves = planWaves(ids, 2, 4);
  const devices: DeviceEntry[] = ids.map((id) => ({ id, name: `dev-${id}`, doc: to, from, result: 'pending' }));
  return { v: 1, id: 'r-1', app: 'thermostat', summary: 'setpoint=23', by: 'laptop', lastBy: 'laptop', created: 'x', updated: 'x', canary: 2, abortOn: 1, waves, wave: 0, devices, docs: table.docs, forgiven: 0, state: 'running', ...over };
}

const set = (rec: RolloutRecord, results: Record<string, DeviceEntry['result']>, seq = 5): RolloutRecord =>
  withDevices(
    rec,
    rec.devices.filter((d) => results[d.id] !== undefined).map((d) => ({ ...d, seq, result: results[d.id] as DeviceEntry['result'] })),
  );

test('after a wave: stop at K failures (refused, reverted or unhealthy), wait while some have not answered, else the next wave, then done', (t) => {
  const r0 = record();
  t.false(waveSent(r0, 0));
  t.is(decide(set(r0, { d1: 'applied', d2: 'pending' })), 'wait');
  t.is(decide(set(r0, { d1: 'applied', d2: 'not-reached' })), 'wait');
  t.is(decide(set(r0, { d1: 'applied', d2: 'applied' })), 'next');
  t.true(waveSent(set(r0, { d1: 'applied', d2: 'applied' }), 0));
  for (const bad of ['refused', 'reverted', 'unhealthy'] as const) t.is(decide(set(r0, { d1: 'applied', d2: bad })), 'stop', bad);
  // a failure stops it even while the other canary has not answered
  t.is(decide(set(r0, { d1: 'pending', d2: 'refused' })), 'stop');
  // abort on 2: one failure is not enough
  t.is(decide(set(record({ abortOn: 2 }), { d1: 'refused', d2: 'applied' })), 'next');
  // after a resume, the failures before it are forgiven
  const resumed = { ...set(r0, { d1: 'applied', d2: 'refused' }), forgiven: 1 };
  t.is(failures(resumed), 0);
  t.is(decide(resumed), 'next');
  const last = set({ ...r0, wave: 2 }, Object.fromEntries(ids.map((id) => [id, 'applied'])));
  t.is(decide(last), 'done');
});

test('equal documents are stored once', (t) => {
  const tb = docTable();
  t.is(tb.add({ a: 1 }), 0);
  t.is(tb.add({ b: 2 }), 1);
  t.is(tb.add({ a: 1 }), 0);
  t.is(tb.docs.length, 2);
});

test('the record reads back as it was written; anything out of shape or range is malformed', (t) => {
  const rec = set(record({ confirmS: 60, base: { setpoint: 23 } }), { d1: 'applied', d2: 'refused' });
  t.deepEqual(parseRollout(JSON.parse(JSON.stringify(rec)) as unknown), rec);
  const bad: [string, (r: Record<string, unknown>) => unknown][] = [
    ['version', (r) => ({ ...r, v: 2 })],
    ['unknown field', (r) => ({ ...r, extra: 1 })],
    ['state', (r) => ({ ...r, state: 'exploded' })],
    ['wave past the end', (r) => ({ ...r, wave: 3 })],
    ['doc index', (r) => ({ ...r, devices: (r.devices as DeviceEntry[]).map((d, i) => (i === 0 ? { ...d, doc: 7 } : d)) })],
    ['result', (r) => ({ ...r, devices: (r.devices as DeviceEntry[]).map((d, i) => (i === 0 ? { ...d, result: 'fine' } : d)) })],
    ['a device in no wave', (r) => ({ ...r, waves: [['d1', 'd2']] })],
    ['a wave naming a stranger', (r) => ({ ...r, waves: [['d1', 'zz'], ...(r.waves as string[][]).slice(1)] })],
    ['a device twice', (r) => ({ ...r, devices: [...(r.devices as DeviceEntry[]), (r.devices as DeviceEntry[])[0]] })],
    ['not an object', () => [1, 2]],
    ['a document that is a list', (r) => ({ ...r, docs: [[1]] })],
  ];
  for (const [what, f] of bad) {
    const e = t.throws(() => parseRollout(f(JSON.parse(JSON.stringify(rec)) as Record<string, unknown>)), undefined, what);
    t.true(isMeshError(e) && ['malformed', 'unknown-field'].includes(e.code), `${what}: ${String(e)}`);
  }
});
