/**
 * A short fuzz run of every parser of external input in mesh/ (the table is harness/fuzz-targets.ts):
 * generated inputs (fast-check anything, JSON, strings, bytes) and mutations of valid examples
 * (bit flips, truncations, insertions, field deletions and duplications, payloads changed and
 * re-signed). Each must return or throw a MeshError with a known code, never crash.
 * FUZZ_RUNS sets the inputs per target (default 2000); FUZZ_SEED replays a run.
 */
import test from 'ava';
import fc from 'fast-check';
import { MeshError } from '../mesh/errors.js';
import * as proto from '../mesh/protocol.js';
import { buildExamples } from '../harness/protocol-examples.js';
import { check, duplicateKeyText, fuzzTargets, inputFor, jsonPaths, mutateJson, mutatePayload, nastyValues, protocolParsers, signerIndex } from '../harness/fuzz-targets.js';

const RUNS = Number(process.env.FUZZ_RUNS ?? 2000);
const SEED = process.env.FUZZ_SEED === undefined ? undefined : Number(process.env.FUZZ_SEED);

const x = buildExamples();
const targets = fuzzTargets(x);

test('the table covers every parse*Request/Response of mesh/protocol.ts and the parsers named in the brief', (t) => {
  const names = new Set(targets.map((tg) => tg.name));
  const missing = protocolParsers().filter((n) => !names.has(n));
  t.deepEqual(missing, []);
  for (const n of ['parseUdf', 'parseClaimLabel', 'parseSignedEnvelope', 'decodeSignedEnvelope', 'parseEncryptedEnvelope', 'verifyDeviceProfile', 'verifyMasterProfile', 'parseBundle', 'parseStatusPayload', 'parseFeedItem', 'parseJoin']) {
    t.true(names.has(n), n);
  }
});

test('every seed is valid: each target accepts each of its seeds', (t) => {
  for (const tg of targets) {
    for (const [i, s] of tg.seeds.entries()) t.notThrows(() => tg.run(s), `${tg.name} seed ${i}`);
  }
});

test('the property can fail: a crash and an unexpected code are reported', (t) => {
  t.regex(check({ name: 'crashes', input: 'value', seeds: [], run: () => (null as unknown as { a: number }).a }, 1).failure ?? '', /crashed with TypeError/);
  t.regex(check({ name: 'wrong code', input: 'value', seeds: [], run: () => { throw new MeshError('internal', 'x'); }, codes: ['malformed'] }, 1).failure ?? '', /unexpected code internal/);
  t.deepEqual(check({ name: 'refuses', input: 'value', seeds: [], run: () => { throw new MeshError('malformed', 'x'); } }, 1), { outcome: 'malformed' });
});

test('the mutators change what they say they change', (t) => {
  const v = { a: 1, b: [1, 2], c: { d: 'x' } };
  t.is(jsonPaths(v).length, 7);
  t.deepEqual(mutateJson(v, 'delete', 1, null), { b: [1, 2], c: { d: 'x' } });
  t.deepEqual(mutateJson(v, 'duplicate', 3, null), { a: 1, b: [1, 1, 2], c: { d: 'x' } });
  t.deepEqual(mutateJson(v, 'add-field', 1, 5), { a: 1, ax: 5, b: [1, 2], c: { d: 'x' } });
  t.deepEqual(v, { a: 1, b: [1, 2], c: { d: 'x' } }, 'the seed itself is untouched');
  t.is(duplicateKeyText({ a: 1 }, 0, 'junk'), '{"a":"junk","a":1}');
  // a payload changed and signed again by its own key still verifies as far as the signature
  const signers = signerIndex(x);
  const m = mutatePayload(x.remove, 0, (p) => ({ ...(p as object), extra: 1 }), signers, true) as { sigs: { kid: string }[] };
  t.is(m.sigs[0]?.kid, x.remove.sigs[0]?.kid);
  t.not((m as unknown as { payload: string }).payload, x.remove.payload);
});

test('nasty values (deep nesting, huge strings, prototype keys, non-JSON values) never crash any target', (t) => {
  const failures: string[] = [];
  for (const tg of targets) for (const v of nastyValues()) {
    const f = check(tg, v).failure;
    if (f !== undefined) failures.push(f.split('\n')[0] as string);
  }
  t.deepEqual(failures, []);
});

for (const tg of targets) {
  test(`fuzz ${tg.name}: returns or throws a MeshError with a known code (${RUNS} inputs)`, (t) => {
    const outcomes = new Map<string, number>();
    const arb = inputFor(tg, x);
    let firstFailure: string | undefined;
    const details = fc.check(
      fc.property(arb, (v) => {
        const { outcome, failure } = check(tg, v);
        outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
        if (failure !== undefined) firstFailure ??= failure;
        return failure === undefined;
      }),
      { numRuns: RUNS, ...(SEED === undefined ? {} : { seed: SEED }) },
    );
    if (details.failed) {
      const shown = (() => {
        try {
          return JSON.stringify(details.counterexample)?.slice(0, 600) ?? String(details.counterexample);
        } catch {
          return String(details.counterexample);
        }
      })();
      t.fail(`${firstFailure ?? 'property failed'}\ncounterexample: ${shown}\nreplay: FUZZ_SEED=${details.seed} (path ${details.counterexamplePath ?? ''})`);
      return;
    }
    // the run reached past the first check: more than one outcome was seen
    t.true(outcomes.size > 1, `${tg.name} outcomes: ${JSON.stringify([...outcomes])}`);
    t.log(JSON.stringify(Object.fromEntries(outcomes)));
  });
}

test('parseAccountResponse refuses an application named "__proto__" instead of dropping it into the prototype', (t) => {
  const text = JSON.stringify(x.wire.accountResponse).replace('"thermostat":', '"__proto__":');
  const e = t.throws(() => proto.parseAccountResponse(JSON.parse(text)));
  t.is((e as { code?: string }).code, 'malformed');
});
