/**
 * client/owner-schemas.ts restoreSchemas: what recovery and a new administration device take
 * each device's schemas from (the personal profile's copies, by fingerprint), kept only where they
 * match what the device's own signed profile declares; and the personal profile carrying them
 * (an older one without them still reads).
 */
import test from 'ava';
import { payloadBytes } from '../mesh/envelope.js';
import { generateDeviceKeys, masterKeysFromSeed, signKeyId } from '../mesh/keys.js';
import { createDeviceProfile, createPersonalProfile, parsePersonalPayload, verifyDeviceProfile } from '../mesh/profiles.js';
import { schemaFingerprint } from '../mesh/schema.js';
import type { Json } from '../mesh/json.js';
import type { DeviceStatusEntry } from '../mesh/protocol.js';
import type { PortalClient } from '../client/portal-client.js';
import { restoreSchemas } from '../client/owner-schemas.js';
import { MAX_PERSONAL_SCHEMA_BYTES, newAdminKeys, schemasByFingerprint, type DeviceRecord } from '../client/owner-state.js';
import { codeOf } from './helpers/code-of.js';

const HEATING = { type: 'object', properties: { level: { type: 'number', minimum: 0, maximum: 10 } } };
const LIGHT = { type: 'object', properties: { on: { type: 'boolean' } } };

function device(name: string, apps?: Record<string, object>) {
  const keys = generateDeviceKeys();
  const env = createDeviceProfile(keys, name, undefined, apps === undefined ? undefined : Object.entries(apps).map(([app, s]) => ({ name: app, schema: schemaFingerprint(s) })));
  const p = verifyDeviceProfile(env);
  const rec: DeviceRecord = { id: p.id, name, model: name, enc: p.payload.enc, fingerprint: p.id.slice(0, 20), claimedAt: null, endorsedBy: null };
  return { rec, entry: { device: p.id, profile: env, status: null, received: null } as DeviceStatusEntry };
}

const portalWith = (entries: DeviceStatusEntry[]): PortalClient => ({ deviceStatus: () => Promise.resolve(entries) }) as unknown as PortalClient;

test('each device gets back the schemas its signed profile declares; a tampered one is dropped with a note; an older device gets none', async (t) => {
  const boiler = device('boiler', { heating: HEATING });
  const lamp = device('lamp', { light: LIGHT });
  const old = device('old');
  const carried: Record<string, Json> = { [schemaFingerprint(HEATING)]: HEATING, [schemaFingerprint(LIGHT)]: { ...LIGHT, properties: { on: { type: 'string' } } } };
  const notes: string[] = [];
  const out = await restoreSchemas(portalWith([boiler.entry, lamp.entry, old.entry]), [boiler.rec, lamp.rec, old.rec], carried, (s) => notes.push(s));
  t.deepEqual(out[0]?.schemas, { heating: HEATING });
  t.deepEqual(out[1]?.schemas, {}, 'the tampered schema is dropped');
  t.is(out[2]?.schemas, undefined, 'an older device declares none');
  t.is(notes.length, 1, notes.join(''));
  t.regex(notes[0] ?? '', /lamp: the schema of light that came with the personal profile at the portal is not the one the device's signed profile declares/);
});

test('a profile the portal substitutes, a missing one, and a personal profile without schemas: nothing is kept, with a note', async (t) => {
  const boiler = device('boiler', { heating: HEATING });
  const other = device('other', { heating: HEATING });
  const lamp = device('lamp', { light: LIGHT });
  const notes: string[] = [];
  const carried = schemasByFingerprint([{ ...boiler.rec, schemas: { heating: HEATING } }]);
  t.deepEqual(Object.keys(carried), [schemaFingerprint(HEATING)]);
  const out = await restoreSchemas(portalWith([{ ...other.entry, device: boiler.rec.id }]), [boiler.rec, lamp.rec], carried, (s) => notes.push(s));
  t.is(out[0]?.schemas, undefined);
  t.is(out[1]?.schemas, undefined);
  t.regex(notes.join(''), /boiler: its profile from the portal does not verify/);
  t.regex(notes.join(''), /lamp: the portal returned no profile for it/);
  const before: string[] = [];
  const unchanged = await restoreSchemas(portalWith([boiler.entry]), [boiler.rec], undefined, (s) => before.push(s));
  t.is(unchanged[0]?.schemas, undefined);
  t.regex(before.join(''), /does not carry your devices' schemas/);
});

test('the personal profile carries the schemas by fingerprint; one without them still reads; a bad key is refused', (t) => {
  const mk = masterKeysFromSeed(new Uint8Array(32).fill(3));
  const admin = newAdminKeys('laptop');
  const base = { master: signKeyId(mk.sign.publicKey), account: 'alice@portal.example', seq: 2, devices: [], apps: ['heating'] };
  const withSchemas = parsePersonalPayload(payloadBytes(createPersonalProfile(admin, { ...base, schemas: { [schemaFingerprint(HEATING)]: HEATING } })));
  t.deepEqual(withSchemas.schemas, { [schemaFingerprint(HEATING)]: HEATING });
  const without = parsePersonalPayload(payloadBytes(createPersonalProfile(admin, { ...base, schemas: {} })));
  t.false('schemas' in without, 'no empty field is written');
  t.is(codeOf(() => parsePersonalPayload(payloadBytes(createPersonalProfile(admin, { ...base, schemas: { __proto__x: HEATING } })))), 'malformed');
});

test('the schemas a personal profile carries stay within its share of the profile: beyond it a schema is left out', (t) => {
  const big = (i: number) => ({ type: 'object', description: `${i}`.padEnd(15_000, 'x') });
  const recs = [0, 1, 2, 3, 4].map((i): DeviceRecord => ({ ...device(`d${i}`).rec, schemas: { app: big(i) } }));
  const carried = schemasByFingerprint(recs);
  t.is(Object.keys(carried).length, 3, '3 of 15 kB fit in 48 KiB');
  t.true(JSON.stringify(carried).length <= MAX_PERSONAL_SCHEMA_BYTES + 1000);
  t.is(Object.keys(schemasByFingerprint([...recs.slice(0, 1), ...recs.slice(0, 1)])).length, 1, 'one copy per fingerprint');
});
