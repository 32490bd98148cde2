/**
 * mesh/profiles.ts and mesh/keys.ts: the four profiles, the endorsement, the one verification
 * function, and escrow of the master seed. Fixtures are the real examples of
 * harness/protocol-examples.ts (the ones docs/protocol.md shows).
 */
import { codeOf } from './helpers/code-of.js';
import test from 'ava';
import fc from 'fast-check';
import * as c from '../mesh/crypto.js';
import { MeshError } from '../mesh/errors.js';
import { b64u, fromB64u, utf8 } from '../mesh/bytes.js';
import { encrypt, payloadBytes, sign, signJson, type SignedEnvelope } from '../mesh/envelope.js';
import { encKeyId, masterKeysFromSeed, parseDeviceKeys, serializeDeviceKeys, signKeyId, generateDeviceKeys } from '../mesh/keys.js';
import {
  MAX_CONFIG_BYTES,
  MAX_PROFILE_BYTES,
  adminEntry,
  applicationTargets,
  createApplicationProfile,
  createDeviceProfile,
  createMasterProfile,
  createPersonalProfile,
  endorseDevice,
  openApplicationAsReader,
  openApplicationProfile,
  verify,
  verifyApplicationProfile,
  verifyByAdmin,
  verifyDeviceProfile,
  verifyEndorsement,
  verifyMasterProfile,
  verifyPersonalProfile,
  type AdminKeys,
} from '../mesh/profiles.js';
import { recoverSecret, splitSecret } from '../mesh/shamir.js';
import type { Json } from '../mesh/json.js';
import { declaredSchemas, schemaFingerprint } from '../mesh/schema.js';
import { buildExamples, type ExampleDevice } from '../harness/protocol-examples.js';


const x = buildExamples();
const [d0, d1, d2] = x.devices as [ExampleDevice, ExampleDevice, ExampleDevice];
const master = verifyMasterProfile(x.master, x.masterId);
const masterV2 = verifyMasterProfile(x.masterV2, x.masterId);
const adminKeys = (name: string): AdminKeys => ({ name, sign: c.ed25519KeyPair(), enc: c.x25519KeyPair() });
const payloadOf = (env: SignedEnvelope): Record<string, unknown> => JSON.parse(Buffer.from(payloadBytes(env)).toString('utf8')) as Record<string, unknown>;
/** The same envelope with its payload replaced and signed again by `signer` (a well-signed but altered object). */
const resigned = (env: SignedEnvelope, change: (p: Record<string, unknown>) => unknown, signer: c.KeyPair): SignedEnvelope => signJson(change(payloadOf(env)), [signer]);
/** The payload replaced, the old signatures kept. */
const tampered = (env: SignedEnvelope, change: (p: Record<string, unknown>) => unknown): SignedEnvelope => ({ payload: b64u(utf8(JSON.stringify(change(payloadOf(env))))), sigs: env.sigs });

// ---------------------------------------------------------------- device profile

test('device profile: self-signed; its identity is the UDF of its signature key; the expected id matches', (t) => {
  const p = verifyDeviceProfile(d0.profile, d0.id);
  t.is(p.id, d0.id);
  t.is(p.id, signKeyId(d0.keys.sign.publicKey));
  t.is(p.payload.model, 'thermostat-t2');
  t.deepEqual(fromB64u(p.payload.enc), d0.keys.enc.publicKey);
  t.is(codeOf(() => verifyDeviceProfile(d0.profile, d1.id)), 'wrong-device');
});

test('device profile: a changed payload is bad-signature; signed by another key is unknown-signer; a bad auth key is bad-key', (t) => {
  t.is(codeOf(() => verifyDeviceProfile(tampered(d0.profile, (p) => ({ ...p, model: 'evil' })))), 'bad-signature');
  // claims d0's keys but is signed by d1: no signature by the key it names
  t.is(codeOf(() => verifyDeviceProfile(resigned(d0.profile, (p) => p, d1.keys.sign))), 'unknown-signer');
  // an authentication key of small order
  const identity = new Uint8Array(32);
  identity[0] = 1;
  t.is(codeOf(() => verifyDeviceProfile(resigned(d0.profile, (p) => ({ ...p, auth: b64u(identity) }), d0.keys.sign))), 'bad-key');
  // the wrong kind of object
  t.is(codeOf(() => verifyDeviceProfile(d0.endorsement)), 'wrong-type');
  t.is(codeOf(() => verifyDeviceProfile(resigned(d0.profile, (p) => ({ ...p, serial: 'x' }), d0.keys.sign))), 'malformed');
  t.is(codeOf(() => verifyDeviceProfile(resigned(d0.profile, (p) => ({ ...p, created: 'yesterday' }), d0.keys.sign))), 'malformed');
  t.is(codeOf(() => createDeviceProfile(generateDeviceKeys(), 'Bad Model'), ), 'malformed');
});

test('device keys file round trip (serializeDeviceKeys/parseDeviceKeys)', (t) => {
  const back = parseDeviceKeys(serializeDeviceKeys(d0.keys));
  t.deepEqual(back.sign.publicKey, d0.keys.sign.publicKey);
  t.deepEqual(back.enc.publicKey, d0.keys.enc.publicKey);
  t.deepEqual(back.auth.publicKey, d0.keys.auth.publicKey);
  t.is(codeOf(() => parseDeviceKeys('{"sign":"","enc":"","auth":""}')), 'malformed');
});

// ---------------------------------------------------------------- endorsement

test('endorsement: valid for its device; another device, a changed payload or a swapped key is endorsement-invalid', (t) => {
  const e = verifyEndorsement(d0.endorsement, d0.id);
  t.is(e.manufacturerKeyId, signKeyId(x.keys.manufacturer.publicKey));
  t.is(e.payload.serial, 'sn-1001');
  t.is(codeOf(() => verifyEndorsement(d0.endorsement, d1.id)), 'endorsement-invalid');
  const bad = tampered(d0.endorsement, (p) => ({ ...p, serial: 'sn-9999' }));
  t.is(codeOf(() => verifyEndorsement(bad, d0.id)), 'endorsement-invalid');
  // the underlying reason is kept
  const err = t.throws(() => verifyEndorsement(bad, d0.id)) as MeshError;
  t.is(err.detail?.cause, 'bad-signature');
  // an endorsement without its carried key
  const noKey = endorseDevice(x.keys.manufacturer, { id: d0.id, model: d0.model }, { manufacturer: 'acme', serial: 'sn-1' });
  const stripped = { payload: noKey.payload, sigs: noKey.sigs.map((s) => ({ kid: s.kid, sig: s.sig })) };
  t.is(codeOf(() => verifyEndorsement(stripped, d0.id)), 'endorsement-invalid');
  t.is(codeOf(() => verifyEndorsement('junk', d0.id)), 'endorsement-invalid');
});

// ---------------------------------------------------------------- master profile

test('master profile: verifies against the trusted UDF; another master is wrong-master', (t) => {
  t.is(master.id, x.masterId);
  t.is(master.payload.admins.length, 2);
  const other = masterKeysFromSeed(c.randomBytes(32));
  const otherEnv = createMasterProfile(other, [adminEntry(x.keys.admin)]);
  t.is(codeOf(() => verifyMasterProfile(otherEnv, x.masterId)), 'wrong-master');
  t.is(verifyMasterProfile(otherEnv, signKeyId(other.sign.publicKey)).payload.seq, 1);
});

test('master profile: forgeries are refused (changed payload, key named but signed by another, revoked key still an admin)', (t) => {
  t.is(codeOf(() => verifyMasterProfile(tampered(x.master, (p) => ({ ...p, seq: 99 })), x.masterId)), 'bad-signature');
  // an attacker copies the victim's public master key into its own profile and signs it: no signature by that key
  const attacker = c.ed25519KeyPair();
  t.is(codeOf(() => verifyMasterProfile(resigned(x.master, (p) => p, attacker), x.masterId)), 'unknown-signer');
  // the master key itself signs a profile that still lists a revoked admin: malformed
  const inconsistent = createMasterProfile(x.keys.master, [adminEntry(x.keys.admin), adminEntry(x.keys.admin2)], { seq: 3, revoked: [signKeyId(x.keys.admin2.sign.publicKey)] });
  t.is(codeOf(() => verifyMasterProfile(inconsistent, x.masterId)), 'malformed');
  t.is(codeOf(() => verifyMasterProfile(x.personal, x.masterId)), 'wrong-type');
  t.is(codeOf(() => verifyMasterProfile(resigned(x.master, (p) => ({ ...p, seq: 0 }), x.keys.master.sign), x.masterId)), 'malformed');
});

// ---------------------------------------------------------------- personal and application profiles

test('personal profile: signed by a listed admin; an unlisted key is unknown-signer; a revoked key is revoked-key', (t) => {
  const p = verifyPersonalProfile(x.personal, master);
  t.is(p.signer, signKeyId(x.keys.admin.sign.publicKey));
  t.is(p.payload.account, x.account);
  t.deepEqual(p.payload.devices.map((d) => d.id), [d0.id, d1.id]);
  const stranger = adminKeys('stranger');
  const byStranger = createPersonalProfile(stranger, { master: x.masterId, account: x.account, seq: 2, devices: [], apps: [] });
  t.is(codeOf(() => verifyPersonalProfile(byStranger, master)), 'unknown-signer');
  // admin2 is listed in master v1 and revoked in v2
  const byPhone = createPersonalProfile(x.keys.admin2, { master: x.masterId, account: x.account, seq: 2, devices: [], apps: [] });
  t.is(verifyPersonalProfile(byPhone, master).signer, signKeyId(x.keys.admin2.sign.publicKey));
  t.is(codeOf(() => verifyPersonalProfile(byPhone, masterV2)), 'revoked-key');
  // a revoked signature next to a valid one: the valid one counts
  const both = sign(payloadBytes(byPhone), [x.keys.admin2.sign, x.keys.admin.sign]);
  t.is(verifyPersonalProfile(both, masterV2).signer, signKeyId(x.keys.admin.sign.publicKey));
});

test('personal profile: naming another master is wrong-master; a changed payload is bad-signature', (t) => {
  const other = createPersonalProfile(x.keys.admin, { master: d0.id, account: x.account, seq: 2, devices: [], apps: [] });
  t.is(codeOf(() => verifyPersonalProfile(other, master)), 'wrong-master');
  t.is(codeOf(() => verifyPersonalProfile(tampered(x.personal, (p) => ({ ...p, apps: ['spy'] })), master)), 'bad-signature');
  t.is(codeOf(() => createPersonalProfile(x.keys.admin, { master: x.masterId, account: 'no-at-sign', seq: 1, devices: [], apps: [] })), 'malformed');
});

test('application profile: each target device decrypts the configuration; a non-target is not-a-recipient', (t) => {
  const ap = verifyApplicationProfile(x.application, masterV2);
  t.deepEqual(applicationTargets(ap), [d0.id, d1.id]);
  for (const d of [d0, d1]) t.deepEqual(openApplicationProfile(ap, { id: d.id, enc: d.keys.enc }), x.config);
  t.is(codeOf(() => openApplicationProfile(ap, { id: d2.id, enc: d2.keys.enc })), 'not-a-recipient');
  // d2 pretending to be d0 (the listed id, its own key): not a recipient of the envelope
  t.is(codeOf(() => openApplicationProfile(ap, { id: d0.id, enc: d2.keys.enc })), 'not-a-recipient');
  // the administration device was added as a reader: it opens the configuration with its own part
  t.deepEqual(openApplicationAsReader(ap, x.keys.admin.enc), x.config);
  t.is(ap.envelope.parts?.length, 3);
  t.is(ap.payload.parts?.n, 3);
  t.true(ap.envelope.parts?.some((r) => r.kid === encKeyId(d1.keys.enc.publicKey) && r.device === d1.id));
});

test('application profile (fast-check): any JSON object config, any non-empty subset of devices as targets', (t) => {
  const pool = [d0, d1, d2];
  fc.assert(
    fc.property(
      fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 3 }), { maxKeys: 6 }),
      fc.subarray(pool, { minLength: 1 }),
      (config, targets) => {
        const env = createApplicationProfile(x.keys.admin, { master: x.masterId, app: 'lights', seq: 5, config: config as Json, devices: targets.map((d) => ({ id: d.id, enc: d.keys.enc.publicKey })) });
        const result = verify(x.masterId, { master: x.masterV2, object: env }, {});
        if (result.kind !== 'application') return false;
        for (const d of pool) {
          const got = codeOf(() => openApplicationProfile(result.profile, { id: d.id, enc: d.keys.enc }));
          if (targets.includes(d) ? got !== 'no error' : got !== 'not-a-recipient') return false;
          if (targets.includes(d)) {
            const opened = openApplicationProfile(result.profile, { id: d.id, enc: d.keys.enc });
            if (JSON.stringify(opened) !== JSON.stringify(JSON.parse(JSON.stringify(config)))) return false;
          }
        }
        return true;
      },
    ),
    { numRuns: 40 },
  );
  t.pass();
});

test('application profile: config limits and a signed but undecryptable config', (t) => {
  const target = [{ id: d0.id, enc: d0.keys.enc.publicKey }];
  t.is(codeOf(() => createApplicationProfile(x.keys.admin, { master: x.masterId, app: 'big', seq: 1, config: { s: 'x'.repeat(MAX_CONFIG_BYTES) }, devices: target })), 'too-large');
  t.is(codeOf(() => createApplicationProfile(x.keys.admin, { master: x.masterId, app: 'Bad Name', seq: 1, config: {}, devices: target })), 'malformed');
  // an admin signs a config whose ciphertext was damaged before signing: the signature is fine, decryption is not
  const p = payloadOf(x.application);
  const cfg = p.sealed as { ct: string };
  const ct = new Uint8Array(fromB64u(cfg.ct));
  ct[0] = (ct[0] as number) ^ 1;
  const broken = { ...signJson({ ...p, sealed: { ...cfg, ct: b64u(ct) } }, [x.keys.admin.sign]), parts: x.application.parts };
  t.is(codeOf(() => verify(x.masterId, { master: x.masterV2, object: broken }, { device: { id: d0.id, enc: d0.keys.enc } })), 'decrypt-failed');
  // a config that decrypts to something other than a JSON object (in the form before parts, still read)
  const { sealed: _s, parts: _p, ...head } = p;
  const notObject = signJson({ ...head, devices: [d0.id], config: encrypt(utf8('[1,2]'), [{ publicKey: d0.keys.enc.publicKey }]) }, [x.keys.admin.sign]);
  t.is(codeOf(() => verify(x.masterId, { master: x.masterV2, object: notObject }, { device: { id: d0.id, enc: d0.keys.enc } })), 'malformed');
});

// ---------------------------------------------------------------- the one verification function

test('verify(trustedMaster, bundle, {device}): master, personal, application (with and without decryption)', (t) => {
  const m = verify(x.masterId, { master: x.master });
  t.is(m.kind, 'master');
  const p = verify(x.masterId, { master: x.master, object: x.personal });
  t.is(p.kind, 'personal');
  if (p.kind === 'personal') t.is(p.profile.payload.account, x.account);
  const a = verify(x.masterId, { master: x.masterV2, object: x.application });
  t.is(a.kind, 'application');
  if (a.kind === 'application') t.is(a.config, undefined);
  const opened = verify(x.masterId, { master: x.masterV2, object: x.application }, { device: { id: d1.id, enc: d1.keys.enc } });
  t.true(opened.kind === 'application' && JSON.stringify(opened.config) === JSON.stringify(x.config));
  // the wire form is accepted too (a bundle parsed from JSON text)
  t.is(verify(x.masterId, JSON.parse(JSON.stringify({ master: x.master, object: x.personal }))).kind, 'personal');
});

test('verify: each refusal carries its code', (t) => {
  const stranger = adminKeys('stranger');
  const otherMaster = masterKeysFromSeed(c.randomBytes(32));
  const cases: [string, string, () => unknown][] = [
    ['another master profile than the trusted one', 'wrong-master', () => verify(x.masterId, { master: createMasterProfile(otherMaster, [adminEntry(stranger)]) })],
    ['an object naming another master', 'wrong-master', () => verify(x.masterId, { master: x.master, object: createPersonalProfile(x.keys.admin, { master: d0.id, account: x.account, seq: 1, devices: [], apps: [] }) })],
    ['an object signed by an unlisted key', 'unknown-signer', () => verify(x.masterId, { master: x.master, object: createPersonalProfile(stranger, { master: x.masterId, account: x.account, seq: 1, devices: [], apps: [] }) })],
    ['an object signed by a revoked key', 'revoked-key', () => verify(x.masterId, { master: x.masterV2, object: createPersonalProfile(x.keys.admin2, { master: x.masterId, account: x.account, seq: 1, devices: [], apps: [] }) })],
    ['a changed object', 'bad-signature', () => verify(x.masterId, { master: x.master, object: tampered(x.personal, (p) => ({ ...p, seq: 9 })) })],
    ['a changed master', 'bad-signature', () => verify(x.masterId, { master: tampered(x.master, (p) => ({ ...p, seq: 9 })) })],
    ['a non-target device', 'not-a-recipient', () => verify(x.masterId, { master: x.master, object: x.application }, { device: { id: d2.id, enc: d2.keys.enc } })],
    ['a device profile as the object', 'wrong-type', () => verify(x.masterId, { master: x.master, object: d0.profile })],
    ['a master as the object', 'wrong-type', () => verify(x.masterId, { master: x.master, object: x.masterV2 })],
    ['an unknown bundle field', 'malformed', () => verify(x.masterId, { master: x.master, extra: 1 })],
    ['no master', 'malformed', () => verify(x.masterId, { object: x.personal })],
    ['not an object', 'malformed', () => verify(x.masterId, 'bundle')],
    ['an object payload over MAX_PROFILE_BYTES', 'too-large', () => verify(x.masterId, { master: x.master, object: sign(utf8(JSON.stringify({ type: 'personal', pad: 'x'.repeat(MAX_PROFILE_BYTES) })), [x.keys.admin.sign]) })],
  ];
  for (const [what, code, fn] of cases) t.is(codeOf(fn), code, what);
});

test('verifyByAdmin accepts the first listed admin signature and names revoked signers', (t) => {
  const env = sign(utf8('{}'), [x.keys.admin.sign]);
  t.is(verifyByAdmin(env, masterV2).kid, signKeyId(x.keys.admin.sign.publicKey));
  t.is(codeOf(() => verifyByAdmin(sign(utf8('{}'), [x.keys.admin2.sign]), masterV2)), 'revoked-key');
  t.is(codeOf(() => verifyByAdmin(sign(utf8('{}'), [x.keys.master.sign]), masterV2)), 'unknown-signer');
});

// ---------------------------------------------------------------- escrow

test('escrow: masterKeysFromSeed is deterministic; distinct seeds give distinct masters; the seed must be 32 bytes', (t) => {
  const a = masterKeysFromSeed(x.keys.master.seed);
  const b = masterKeysFromSeed(new Uint8Array(x.keys.master.seed));
  t.deepEqual(a.sign.publicKey, b.sign.publicKey);
  t.deepEqual(a.escrow.publicKey, b.escrow.publicKey);
  t.is(signKeyId(a.sign.publicKey), x.masterId);
  t.notDeepEqual(a.sign.publicKey, a.escrow.publicKey);
  t.not(signKeyId(masterKeysFromSeed(c.randomBytes(32)).sign.publicKey), x.masterId);
  t.is(codeOf(() => masterKeysFromSeed(new Uint8Array(31))), 'malformed');
});

test('escrow: any threshold of the shares of the seed rebuilds the same master id (fast-check)', (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.integer({ min: 2, max: 5 }), fc.integer({ min: 0, max: 3 }), fc.nat(), (seed, k, extra, pick) => {
      const n = k + extra;
      const shares = splitSecret(seed, k, n);
      const chosen = [...shares].sort((s1, s2) => ((s1.charCodeAt(pick % s1.length) ^ pick) & 7) - ((s2.charCodeAt(pick % s2.length) ^ pick) & 7)).slice(0, k);
      const rebuilt = masterKeysFromSeed(recoverSecret(chosen));
      return signKeyId(rebuilt.sign.publicKey) === signKeyId(masterKeysFromSeed(seed).sign.publicKey);
    }),
    { numRuns: 60 },
  );
  // the example's own shares
  const id = signKeyId(masterKeysFromSeed(recoverSecret([x.escrowShares[2]!, x.escrowShares[0]!])).sign.publicKey);
  t.is(id, x.masterId);
  t.is(codeOf(() => recoverSecret([x.escrowShares[0]!])), 'not-enough-shares');
});

test('device profile: declares its applications with schema fingerprints; the owner keeps only schemas that match them', (t) => {
  const schema = { type: 'object', properties: { setpoint: { type: 'number', maximum: 30 } } };
  const relaid = { properties: { setpoint: { maximum: 30, type: 'number' } }, type: 'object' };
  t.is(schemaFingerprint(schema), schemaFingerprint(relaid), 'the fingerprint does not depend on the key order');
  const keys = generateDeviceKeys();
  const dp = verifyDeviceProfile(createDeviceProfile(keys, 'thermostat', undefined, [{ name: 'thermostat', schema: schemaFingerprint(schema) }]));
  t.deepEqual(dp.payload.apps, [{ name: 'thermostat', schema: schemaFingerprint(schema) }]);
  t.is(verifyDeviceProfile(createDeviceProfile(keys, 'thermostat')).payload.apps, undefined, 'a profile without apps still verifies');
  const ok = declaredSchemas(dp.payload.apps ?? [], { thermostat: relaid });
  t.deepEqual(Object.keys(ok.schemas), ['thermostat']);
  t.deepEqual(ok.problems, []);
  const swapped = declaredSchemas(dp.payload.apps ?? [], { thermostat: { ...schema, properties: { setpoint: { type: 'number', maximum: 90 } } } });
  t.deepEqual(swapped.schemas, {});
  t.regex(swapped.problems[0] ?? '', /not the one its signed profile declares/);
  t.regex(declaredSchemas(dp.payload.apps ?? [], undefined).problems[0] ?? '', /did not come with the device/);
  t.is(codeOf(() => createDeviceProfile(keys, 'thermostat', undefined, [{ name: 'Bad App', schema: schemaFingerprint(schema) }])), 'malformed');
});
