/**
 * Per-device parts (seed §6.5, issue 16): an application profile to many devices is signed once
 * over the shared ciphertext and a manifest of the parts; each device is served only its own part
 * and checks it against the owner's signature. What a device reads does not grow with the fleet.
 */
import test from 'ava';
import * as c from '../mesh/crypto.js';
import { b64u, concat, fromB64u, utf8 } from '../mesh/bytes.js';
import { checkParts, encrypt, manifestOf, parseSignedEnvelope, payloadBytes, signJson, type Part, type SignedEnvelope } from '../mesh/envelope.js';
import { encKeyId, signKeyId } from '../mesh/keys.js';
import { parseFeedItem } from '../mesh/protocol.js';
import {
  applicationTargets,
  createApplicationProfile,
  openApplicationAsReader,
  openApplicationProfile,
  verifyApplicationProfile,
  verifyMasterProfile,
  type TargetDevice,
} from '../mesh/profiles.js';
import { buildExamples, type ExampleDevice } from '../harness/protocol-examples.js';
import { checkApplication, MasterCache } from '../portal/verify.js';
import { codeOf } from './helpers/code-of.js';

const x = buildExamples();
const [d0, d1, d2] = x.devices as [ExampleDevice, ExampleDevice, ExampleDevice];
const masterV2 = verifyMasterProfile(x.masterV2, x.masterId);
const config = { setpoint: 21, mode: 'eco' };
const target = (d: ExampleDevice): TargetDevice => ({ id: d.id, enc: d.keys.enc.publicKey });
const generated = (n: number): TargetDevice[] => Array.from({ length: n }, () => ({ id: signKeyId(c.ed25519KeyPair().publicKey), enc: c.x25519KeyPair().publicKey }));
const make = (devices: readonly TargetDevice[], readers: readonly Uint8Array[] = [x.keys.admin.enc.publicKey]): SignedEnvelope =>
  createApplicationProfile(x.keys.admin, { master: x.masterId, app: 'thermostat', seq: 3, config, devices, alsoReadableBy: readers, created: '2026-12-03T10:00:00.000Z' });
/** What the portal serves a device: the signed envelope and that device's part alone, through the wire. */
const servedTo = (env: SignedEnvelope, device: string): SignedEnvelope => {
  const part = env.parts?.find((p) => p.device === device);
  return parseSignedEnvelope(JSON.parse(JSON.stringify({ payload: env.payload, sigs: env.sigs, ...(part !== undefined ? { parts: [part] } : {}) })) as unknown);
};
const payloadOf = (env: SignedEnvelope): Record<string, unknown> => JSON.parse(Buffer.from(payloadBytes(env)).toString('utf8')) as Record<string, unknown>;
const withParts = (env: SignedEnvelope, parts: readonly Part[]): SignedEnvelope => ({ payload: env.payload, sigs: env.sigs, parts });

test('each target opens the configuration from the signed envelope and its own part alone; others are not recipients', (t) => {
  const env = make([target(d0), target(d1)]);
  t.is(env.parts?.length, 3);
  for (const d of [d0, d1]) {
    const ap = verifyApplicationProfile(servedTo(env, d.id), masterV2);
    t.false(ap.complete);
    t.deepEqual(openApplicationProfile(ap, { id: d.id, enc: d.keys.enc }), config);
    // a device's view cannot tell the other targets
    t.is(codeOf(() => applicationTargets(ap)), 'bad-part');
  }
  // d2 is served the envelope with no part (or d0's part): not a recipient
  t.is(codeOf(() => openApplicationProfile(verifyApplicationProfile(servedTo(env, d2.id), masterV2), { id: d2.id, enc: d2.keys.enc })), 'not-a-recipient');
  t.is(codeOf(() => openApplicationProfile(verifyApplicationProfile(withParts(env, [env.parts?.[0] as Part]), masterV2), { id: d2.id, enc: d2.keys.enc })), 'not-a-recipient');
  // the owner, with every part: the targets, and its own reader's part
  const full = verifyApplicationProfile(env, masterV2);
  t.true(full.complete);
  t.deepEqual(applicationTargets(full), [d0.id, d1.id]);
  t.deepEqual(openApplicationAsReader(full, x.keys.admin.enc), config);
  t.is(codeOf(() => openApplicationAsReader(full, d2.keys.enc)), 'not-a-recipient');
});

test('what one device is served does not grow with the number of recipients (1 to 2,000 here; the bench goes to 10,000)', (t) => {
  const sizes = [1, 100, 2_000].map((n) => {
    const env = make([target(d0), ...generated(n - 1)]);
    t.is(env.parts?.length, n + 1);
    const mine = servedTo(env, d0.id);
    t.deepEqual(openApplicationProfile(verifyApplicationProfile(mine, masterV2), { id: d0.id, enc: d0.keys.enc }), config);
    return Buffer.byteLength(JSON.stringify(mine));
  });
  const base = sizes[0] as number;
  // the only difference is the digits of the manifest's count
  for (const s of sizes) t.true(Math.abs(s - base) <= 8, `${sizes.join(' / ')} bytes`);
});

test('nobody but the signer can make a part that opens: not the portal, not another recipient', (t) => {
  const env = make([target(d0), target(d1)]);
  const ap = verifyApplicationProfile(env, masterV2);
  const sealed = ap.payload.sealed as { epk: string };
  const epk = fromB64u(sealed.epk);
  // d0 (a recipient, who could learn the content key) wraps a key for d2 under a key of its own making:
  // d2 derives its wrapping key from the signed ephemeral key, whose private half only the signer held
  const forger = c.x25519KeyPair();
  const kek = c.hkdfSha512(c.x25519(forger.privateKey, d2.keys.enc.publicKey), concat(epk, d2.keys.enc.publicKey), 'mmm-wrap-v1', 32);
  const aad = concat(utf8('mmm-part-v1'), new Uint8Array(1), utf8(encKeyId(d2.keys.enc.publicKey)), new Uint8Array(1), utf8(d2.id));
  const forged: Part = { device: d2.id, kid: encKeyId(d2.keys.enc.publicKey), wk: b64u(c.aesGcmEncrypt(kek, new Uint8Array(12), c.randomBytes(32), aad)) };
  t.is(codeOf(() => openApplicationProfile(verifyApplicationProfile(withParts(env, [forged]), masterV2), { id: d2.id, enc: d2.keys.enc })), 'decrypt-failed');
  // d0's part relabelled for d1 (d1's key id): bound to d0's key and id, it does not open
  const p0 = env.parts?.find((p) => p.device === d0.id) as Part;
  const moved: Part = { device: d1.id, kid: encKeyId(d1.keys.enc.publicKey), wk: p0.wk };
  t.is(codeOf(() => openApplicationProfile(verifyApplicationProfile(withParts(env, [moved]), masterV2), { id: d1.id, enc: d1.keys.enc })), 'decrypt-failed');
  // d0's part moved under d1's name with d0's key id: not d1's key
  t.is(codeOf(() => openApplicationProfile(verifyApplicationProfile(withParts(env, [{ ...p0, device: d1.id }]), masterV2), { id: d1.id, enc: d1.keys.enc })), 'not-a-recipient');
  // a part from another profile (another content key): the wrap is bound to its own ephemeral key
  const other = make([target(d0)]);
  const p0other = other.parts?.find((p) => p.device === d0.id) as Part;
  t.is(codeOf(() => openApplicationProfile(verifyApplicationProfile(withParts(env, [p0other]), masterV2), { id: d0.id, enc: d0.keys.enc })), 'decrypt-failed');
});

test('the key in a part must be the one the signer committed to (bad-part)', (t) => {
  const env = make([target(d0)]);
  const p = payloadOf(env);
  const sealed = p.sealed as Record<string, string>;
  const resigned: SignedEnvelope = { ...signJson({ ...p, sealed: { ...sealed, kc: b64u(c.randomBytes(32)) } }, [x.keys.admin.sign]), parts: env.parts ?? [] };
  t.is(codeOf(() => openApplicationProfile(verifyApplicationProfile(servedTo(resigned, d0.id), masterV2), { id: d0.id, enc: d0.keys.enc })), 'bad-part');
});

test('the manifest: every part as signed, none added, none twice; the portal takes a publish only with all of them', (t) => {
  const env = make([target(d0), target(d1), target(d2)]);
  const parts = env.parts ?? [];
  t.deepEqual(manifestOf(parts), payloadOf(env).parts);
  const m = manifestOf(parts);
  t.true(checkParts(parts, m));
  t.false(checkParts(parts.slice(1), m));
  const changed = parts.map((p, i) => (i === 1 ? { ...p, wk: b64u(c.randomBytes(48)) } : p));
  t.is(codeOf(() => verifyApplicationProfile(withParts(env, changed), masterV2)), 'bad-part');
  t.is(codeOf(() => verifyApplicationProfile(withParts(env, [...parts, parts[0] as Part]), masterV2)), 'bad-part');
  t.is(codeOf(() => verifyApplicationProfile(withParts(env, [parts[0] as Part, parts[0] as Part]), masterV2)), 'bad-part');
  t.is(codeOf(() => verifyApplicationProfile(withParts(env, [...parts].reverse()), masterV2)), 'bad-part');
  // the portal's check (portal/verify.ts): all parts, or bad-part
  const job = (object: SignedEnvelope) => ({ object, account: x.account, masterId: x.masterId, master: JSON.stringify(x.masterV2) });
  const ok = checkApplication(job(env), new MasterCache());
  t.deepEqual(ok.devices, [d0.id, d1.id, d2.id]);
  t.deepEqual(ok.parts?.map((s) => JSON.parse(s) as unknown), parts.filter((p) => p.device !== undefined));
  t.false(ok.text.includes('"parts"'));
  t.true(ok.latest.includes('"parts"'));
  t.is(codeOf(() => checkApplication(job(withParts(env, parts.slice(0, 2))), new MasterCache())), 'bad-part');
  t.is(codeOf(() => checkApplication(job({ payload: env.payload, sigs: env.sigs }), new MasterCache())), 'bad-part');
});

test('a feed item carries the device part inside its object; a profile from before parts cannot carry any', (t) => {
  const env = make([target(d0)]);
  const item = parseFeedItem(JSON.parse(JSON.stringify({ n: 1, kind: 'application', object: servedTo(env, d0.id), index: 4 })) as unknown);
  t.deepEqual(openApplicationProfile(verifyApplicationProfile(item.object, masterV2), { id: d0.id, enc: d0.keys.enc }), config);
  const bad = JSON.parse(JSON.stringify({ n: 1, kind: 'application', object: { ...servedTo(env, d0.id), parts: [{ device: d0.id, kid: 'nope', wk: 'AAAA' }] }, index: 4 })) as unknown;
  t.is(codeOf(() => parseFeedItem(bad)), 'malformed');
  // the form before parts (a devices list and a wrapped key per recipient, all signed) is still read
  const { sealed: _s, parts: _p, ...head } = payloadOf(env);
  const v1 = signJson({ ...head, devices: [d0.id], config: encrypt(utf8(JSON.stringify(config)), [{ publicKey: d0.keys.enc.publicKey }]) }, [x.keys.admin.sign]);
  const ap = verifyApplicationProfile(v1, masterV2);
  t.true(ap.complete);
  t.deepEqual(applicationTargets(ap), [d0.id]);
  t.deepEqual(openApplicationProfile(ap, { id: d0.id, enc: d0.keys.enc }), config);
  t.is(codeOf(() => verifyApplicationProfile(withParts(v1, env.parts ?? []), masterV2)), 'malformed');
});
