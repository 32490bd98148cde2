/**
 * Keys named like members of Object.prototype ("__proto__", "constructor", "toString", ...) in a
 * configuration document. JSON allows them and an owner may write them (or a fuzzer generates
 * them: test/profiles.test.ts's fast-check case failed on {"": {"__proto__": ""}}). They must
 * travel as ordinary keys and meet the same schema as any other key:
 *   - checkJsonValue (mesh/json.ts) keeps "__proto__" as an own key; plain assignment would set
 *     the copy's prototype instead, silently dropping the key (or grafting its value underneath);
 *   - the device's schema check (agent/schema.ts) refuses them where additionalProperties is
 *     false; `properties[k]` found Object.prototype's members and let such keys through unchecked;
 *   - end to end, a thermostat refuses {"toString": 350} from its owner (schema), like any unknown key.
 */
import test from 'ava';
import { checkJsonValue } from '../../mesh/json.js';
import { checkSchema, validate } from '../../mesh/schema.js';
import { THERMOSTAT_SCHEMA } from '../../harness/agent-process.js';
import { hostileWorld, refusal } from './world.js';

test('checkJsonValue keeps a "__proto__" key as an ordinary key, with its value, and leaves the prototype alone', (t) => {
  const doc = JSON.parse('{"a":{"__proto__":{"setpoint":99}},"__proto__":"x"}') as unknown;
  const out = checkJsonValue(doc, 'config') as Record<string, unknown>;
  t.deepEqual(Object.keys(out), ['a', '__proto__']);
  t.is(Object.getPrototypeOf(out), Object.prototype);
  t.is(Object.getOwnPropertyDescriptor(out, '__proto__')?.value, 'x');
  const inner = out.a as Record<string, unknown>;
  t.is(Object.getPrototypeOf(inner), Object.prototype, 'the nested value did not become a prototype');
  t.deepEqual(Object.getOwnPropertyDescriptor(inner, '__proto__')?.value, { setpoint: 99 });
  t.is((inner as { setpoint?: number }).setpoint, undefined, 'nothing is inherited from it');
  t.is(JSON.stringify(out), JSON.stringify(doc), 'the document survives a round trip unchanged');
});

test('the schema check refuses keys named after Object.prototype members where additionalProperties is false', (t) => {
  const schema = checkSchema(THERMOSTAT_SCHEMA, 'thermostat');
  for (const k of ['toString', 'constructor', 'hasOwnProperty', 'valueOf', '__proto__']) {
    const doc = checkJsonValue(JSON.parse(`{"setpoint":20,${JSON.stringify(k)}:350}`), 'config');
    t.true(validate(schema, doc).length > 0, `"${k}" is not a setting of the thermostat`);
  }
  t.deepEqual(validate(schema, { setpoint: 20 }), []);
  const required = checkSchema({ type: 'object', required: ['toString'] }, 'r');
  t.true(validate(required, {}).length > 0, 'an inherited member does not satisfy "required"');
});

test('end to end: a thermostat refuses {"toString": 350} from its owner (schema); config.json is unchanged', async (t) => {
  const w = await hostileWorld();
  try {
    const before = w.configBytes();
    await w.alice.publish('thermostat', { setpoint: 21, toString: 350 });
    t.is((await refusal(w, (e) => e.app === 'thermostat' && e.seq === 2, 'the refusal')).code, 'schema');
    t.is(w.configBytes(), before);
  } finally {
    await w.close();
  }
});
