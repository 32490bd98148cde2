/**
 * mesh/envelope.ts: signed and encrypted envelopes. Round trips (fast-check payloads, signer and
 * recipient sets) and one mutation per refusal, each asserting its code.
 */
import { codeOf } from './helpers/code-of.js';
import test from 'ava';
import fc from 'fast-check';
import * as c from '../mesh/crypto.js';
import { b64u, equalBytes, fromB64u, utf8 } from '../mesh/bytes.js';
import { encKeyId, signKeyId } from '../mesh/keys.js';
import {
  MAX_ENVELOPE_BYTES,
  MAX_RECIPIENTS,
  MAX_SIGNATURES,
  decodeSignedEnvelope,
  decrypt,
  encrypt,
  parseEncryptedEnvelope,
  parseSignedEnvelope,
  payloadBytes,
  sign,
  signJson,
  verifyCarriedKey,
  verifySignedBy,
  verifyWithResolver,
  type EncryptedEnvelope,
  type SignedEnvelope,
} from '../mesh/envelope.js';


/** A deep, mutable copy of a wire object, as a tamperer would hold it. */
const wire = (v: unknown): Record<string, any> => JSON.parse(JSON.stringify(v)) as Record<string, any>;

function flipB64u(s: string, bit: number): string {
  const b = new Uint8Array(fromB64u(s));
  const i = Math.floor(bit / 8) % b.length;
  b[i] = (b[i] as number) ^ (1 << (bit % 8));
  return b64u(b);
}

const isCanonicalB64u = (s: string): boolean => /^[A-Za-z0-9_-]*$/.test(s) && s.length % 4 !== 1 && Buffer.from(s, 'base64url').toString('base64url') === s;

const signer = (): c.KeyPair => c.ed25519KeyPair();
const recipient = (): c.KeyPair => c.x25519KeyPair();

// ---------------------------------------------------------------- signed: round trips

test('round trip (fast-check): any payload bytes, 1..8 signers; each signer verifies, the wire text parses back equal', (t) => {
  const pool = Array.from({ length: 8 }, signer);
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 0, maxLength: 2000 }), fc.subarray(pool, { minLength: 1 }), (payload, signers) => {
      const env = sign(payload, signers);
      const back = decodeSignedEnvelope(JSON.stringify(env));
      if (JSON.stringify(back) !== JSON.stringify(env)) return false;
      if (!equalBytes(payloadBytes(back), payload)) return false;
      for (const s of signers) if (!equalBytes(verifySignedBy(back, s.publicKey), payload)) return false;
      // a key in the pool that did not sign is unknown-signer
      const outsider = pool.find((p) => !signers.includes(p));
      return outsider === undefined || codeOf(() => verifySignedBy(back, outsider.publicKey)) === 'unknown-signer';
    }),
    { numRuns: 150 },
  );
  t.pass();
});

test('round trip (fast-check): signJson of any JSON value signs the exact bytes of JSON.stringify', (t) => {
  const k = signer();
  fc.assert(
    fc.property(fc.jsonValue(), (v) => {
      const env = signJson(v, [k]);
      const bytes = verifySignedBy(decodeSignedEnvelope(utf8(JSON.stringify(env))), k.publicKey);
      return Buffer.from(bytes).toString('utf8') === JSON.stringify(v);
    }),
    { numRuns: 150 },
  );
  t.pass();
});

test('verifyWithResolver returns the first signer it knows; none known is unknown-signer', (t) => {
  const a = signer();
  const b = signer();
  const env = sign(utf8('hello'), [a, b]);
  const onlyB = (kid: string): Uint8Array | undefined => (kid === signKeyId(b.publicKey) ? b.publicKey : undefined);
  const r = verifyWithResolver(env, onlyB);
  t.is(r.kid, signKeyId(b.publicKey));
  t.deepEqual(r.payload, utf8('hello'));
  t.is(codeOf(() => verifyWithResolver(env, () => undefined)), 'unknown-signer');
});

test('the signature is over "mmm-sig-v1" || 0x00 || payload (the documented construction)', (t) => {
  const k = signer();
  const env = sign(utf8('{"a":1}'), [k]);
  const sig = fromB64u(env.sigs[0]!.sig);
  t.true(c.ed25519Verify(k.publicKey, Buffer.concat([Buffer.from('mmm-sig-v1\u0000'), Buffer.from('{"a":1}')]), sig));
  t.false(c.ed25519Verify(k.publicKey, utf8('{"a":1}'), sig));
  t.is(env.sigs[0]!.kid, signKeyId(k.publicKey));
});

test('a carried key (manufacturer endorsement style) verifies; a mismatched or missing carried key is refused', (t) => {
  const k = signer();
  const env = sign(utf8('x'), [k], { includeKey: true });
  t.deepEqual(verifyCarriedKey(env).key, k.publicKey);
  const other = signer();
  const swapped = wire(env);
  swapped.sigs[0].key = b64u(other.publicKey);
  t.is(codeOf(() => verifyCarriedKey(parseSignedEnvelope(swapped))), 'bad-signature');
  t.is(codeOf(() => verifyCarriedKey(sign(utf8('x'), [k]))), 'unknown-signer');
});

// ---------------------------------------------------------------- signed: mutations

test('bit flip in the payload or in a signature (fast-check) is bad-signature', (t) => {
  const k = signer();
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 1, maxLength: 300 }), fc.nat(), (payload, bit) => {
      const env = wire(sign(payload, [k]));
      const p = { ...env, payload: flipB64u(env.payload as string, bit) };
      const s = { ...env, sigs: [{ ...env.sigs[0], sig: flipB64u(env.sigs[0].sig as string, bit) }] };
      return (
        codeOf(() => verifySignedBy(parseSignedEnvelope(p), k.publicKey)) === 'bad-signature' &&
        codeOf(() => verifySignedBy(parseSignedEnvelope(s), k.publicKey)) === 'bad-signature'
      );
    }),
    { numRuns: 200 },
  );
  t.pass();
});

test('truncated or extended base64: a signature is malformed; a payload is malformed unless it is still canonical (then bad-signature)', (t) => {
  const k = signer();
  let malformed = 0;
  let badSig = 0;
  for (let n = 1; n < 40; n++) {
    const env = wire(sign(c.randomBytes(n), [k]));
    const sig = env.sigs[0].sig as string;
    t.is(codeOf(() => parseSignedEnvelope({ ...env, sigs: [{ ...env.sigs[0], sig: sig.slice(0, -1) }] })), 'malformed');
    t.is(codeOf(() => parseSignedEnvelope({ ...env, sigs: [{ ...env.sigs[0], sig: sig + 'A' }] })), 'malformed');
    const payload = env.payload as string;
    for (const mutated of [payload.slice(0, -1), payload + 'A', payload + 'AA', payload + '=', payload.slice(1)]) {
      const got = codeOf(() => verifySignedBy(parseSignedEnvelope({ ...env, payload: mutated }), k.publicKey));
      t.is(got, isCanonicalB64u(mutated) ? 'bad-signature' : 'malformed', `${payload} -> ${mutated}`);
      if (got === 'malformed') malformed++;
      else badSig++;
    }
  }
  t.true(malformed > 0 && badSig > 0);
});

test('the wire text: every strict prefix, and trailing bytes after the object, are malformed', (t) => {
  const text = JSON.stringify(sign(utf8('{"type":"x"}'), [signer()]));
  for (let i = 0; i < text.length; i++) t.is(codeOf(() => decodeSignedEnvelope(text.slice(0, i))), 'malformed', `prefix ${i}`);
  for (const tail of ['x', '}', '{}', ',', '\u0000', '"', '1']) t.is(codeOf(() => decodeSignedEnvelope(text + tail)), 'malformed', JSON.stringify(tail));
  // JSON whitespace is not a byte of the envelope: accepted
  t.is(codeOf(() => decodeSignedEnvelope(` ${text}\n`)), 'no error');
  // invalid UTF-8 in the bytes
  t.is(codeOf(() => decodeSignedEnvelope(Buffer.concat([Buffer.from(text.slice(0, -1)), Buffer.from([0xff]), Buffer.from('}')]))), 'malformed');
});

test('unknown, missing and mistyped fields are malformed (top level and in a signature)', (t) => {
  const env = wire(sign(utf8('p'), [signer()]));
  const cases: Record<string, unknown> = {
    'unknown top-level field': { ...env, extra: 1 },
    'no payload': { sigs: env.sigs },
    'no sigs': { payload: env.payload },
    'empty sigs': { ...env, sigs: [] },
    'sigs not an array': { ...env, sigs: env.sigs[0] },
    'payload a number': { ...env, payload: 5 },
    'unknown signature field': { ...env, sigs: [{ ...env.sigs[0], alg: 'EdDSA' }] },
    'signature without kid': { ...env, sigs: [{ sig: env.sigs[0].sig }] },
    'kid not a UDF': { ...env, sigs: [{ ...env.sigs[0], kid: 'not a udf' }] },
    'kid lower case': { ...env, sigs: [{ ...env.sigs[0], kid: (env.sigs[0].kid as string).toLowerCase() }] },
    'carried key 31 bytes': { ...env, sigs: [{ ...env.sigs[0], key: b64u(new Uint8Array(31)) }] },
    'padded base64': { ...env, payload: Buffer.from('p').toString('base64') },
    'standard base64 alphabet': { ...env, payload: b64u(new Uint8Array([0xfb, 0xff])).replace(/-/g, '+').replace(/_/g, '/') },
    'an array': [env],
    null: null,
    'a string': JSON.stringify(env),
  };
  for (const [name, v] of Object.entries(cases)) t.is(codeOf(() => parseSignedEnvelope(v)), 'malformed', name);
});

test('the wrong key is unknown-signer; a signature taken from another envelope is bad-signature', (t) => {
  const k = signer();
  const env = sign(utf8('pay alice 1'), [k]);
  t.is(codeOf(() => verifySignedBy(env, signer().publicKey)), 'unknown-signer');
  const other = sign(utf8('pay mallory 1000'), [k]);
  const spliced: SignedEnvelope = { payload: other.payload, sigs: env.sigs };
  t.is(codeOf(() => verifySignedBy(spliced, k.publicKey)), 'bad-signature');
  // another signer's signature relabelled with k's kid
  const relabelled: SignedEnvelope = { payload: env.payload, sigs: [{ kid: env.sigs[0]!.kid, sig: sign(utf8('pay alice 1'), [signer()]).sigs[0]!.sig }] };
  t.is(codeOf(() => verifySignedBy(relabelled, k.publicKey)), 'bad-signature');
});

test(`oversize: an envelope text over ${MAX_ENVELOPE_BYTES} bytes is too-large; more than ${MAX_SIGNATURES} signatures is too-large`, (t) => {
  const k = signer();
  const big = JSON.stringify(sign(new Uint8Array(MAX_ENVELOPE_BYTES), [k]));
  t.true(big.length > MAX_ENVELOPE_BYTES);
  t.is(codeOf(() => decodeSignedEnvelope(big)), 'too-large');
  t.is(codeOf(() => decodeSignedEnvelope(utf8(big))), 'too-large');
  t.is(codeOf(() => decodeSignedEnvelope(' '.repeat(MAX_ENVELOPE_BYTES + 1))), 'too-large');
  // a caller can allow more
  t.is(codeOf(() => decodeSignedEnvelope(big, 'big', 2 * big.length)), 'no error');
  const nine = sign(utf8('x'), Array.from({ length: MAX_SIGNATURES + 1 }, signer));
  t.is(codeOf(() => parseSignedEnvelope(wire(nine))), 'too-large');
  t.is(codeOf(() => parseSignedEnvelope(wire(sign(utf8('x'), Array.from({ length: MAX_SIGNATURES }, signer))))), 'no error');
});

test('signing needs a signer (malformed); a signer key of the wrong length is malformed', (t) => {
  t.is(codeOf(() => sign(utf8('x'), [])), 'malformed');
  t.is(codeOf(() => sign(utf8('x'), [{ publicKey: new Uint8Array(32), privateKey: new Uint8Array(31) }])), 'malformed');
});

test('a small-order signer key named by the envelope is bad-key (thrown, not false)', (t) => {
  const identity = new Uint8Array(32);
  identity[0] = 1;
  const env: SignedEnvelope = { payload: b64u(utf8('x')), sigs: [{ kid: signKeyId(identity), sig: b64u(new Uint8Array(64)) }] };
  t.is(codeOf(() => verifySignedBy(env, identity)), 'bad-key');
});

// ---------------------------------------------------------------- encrypted: round trips

test('encryption round trip (fast-check): any plaintext, 1..6 recipients; each decrypts, a non-recipient is not-a-recipient', (t) => {
  const pool = Array.from({ length: 7 }, recipient);
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 0, maxLength: 3000 }), fc.subarray(pool.slice(0, 6), { minLength: 1 }), (pt, rs) => {
      const env = parseEncryptedEnvelope(wire(encrypt(pt, rs)));
      if (env.recipients.length !== rs.length) return false;
      for (const r of rs) if (!equalBytes(decrypt(env, r), pt)) return false;
      const outsider = pool.find((p) => !rs.includes(p));
      return outsider !== undefined && codeOf(() => decrypt(env, outsider)) === 'not-a-recipient';
    }),
    { numRuns: 100 },
  );
  t.pass();
});

test('recipients are listed by the UDF of their X25519 key, once each (duplicates folded)', (t) => {
  const r = recipient();
  const env = encrypt(utf8('x'), [r, r, { publicKey: new Uint8Array(r.publicKey) }]);
  t.is(env.recipients.length, 1);
  t.is(env.recipients[0]!.kid, encKeyId(r.publicKey));
  // the SPKI names the algorithm: the same 32 bytes as an Ed25519 key have another UDF
  t.not(encKeyId(r.publicKey), signKeyId(r.publicKey));
});

test('two encryptions of the same plaintext differ (fresh ephemeral key, content key and IV)', (t) => {
  const r = recipient();
  const a = encrypt(utf8('same'), [r]);
  const b = encrypt(utf8('same'), [r]);
  t.not(a.epk, b.epk);
  t.not(a.iv, b.iv);
  t.not(a.ct, b.ct);
});

// ---------------------------------------------------------------- encrypted: mutations

test('tampered ciphertext, IV, wrapped key or ephemeral key (fast-check bit) is decrypt-failed', (t) => {
  const r = recipient();
  const r2 = recipient();
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 0, maxLength: 200 }), fc.nat(), (pt, bit) => {
      const env = wire(encrypt(pt, [r, r2]));
      const muts: EncryptedEnvelope[] = [
        { ...(env as EncryptedEnvelope), ct: flipB64u(env.ct as string, bit) },
        { ...(env as EncryptedEnvelope), iv: flipB64u(env.iv as string, bit) },
        { ...(env as EncryptedEnvelope), recipients: [{ ...env.recipients[0], wk: flipB64u(env.recipients[0].wk as string, bit) }, env.recipients[1]] },
      ];
      const epk = { ...(env as EncryptedEnvelope), epk: flipB64u(env.epk as string, bit % 255) };
      return (
        muts.every((m) => codeOf(() => decrypt(parseEncryptedEnvelope(m), r)) === 'decrypt-failed') &&
        ['decrypt-failed', 'bad-key'].includes(codeOf(() => decrypt(parseEncryptedEnvelope(epk), r)))
      );
    }),
    { numRuns: 150 },
  );
  t.pass();
});

test('wrapped keys are bound to their recipient: swapping two recipients\' wk, or taking one from another envelope, is decrypt-failed', (t) => {
  const a = recipient();
  const b = recipient();
  const env = encrypt(utf8('secret'), [a, b]);
  const [ra, rb] = env.recipients as [{ kid: string; wk: string }, { kid: string; wk: string }];
  const swapped: EncryptedEnvelope = { ...env, recipients: [{ kid: ra.kid, wk: rb.wk }, { kid: rb.kid, wk: ra.wk }] };
  t.is(codeOf(() => decrypt(swapped, a)), 'decrypt-failed');
  t.is(codeOf(() => decrypt(swapped, b)), 'decrypt-failed');
  const other = encrypt(utf8('other'), [a]);
  t.is(codeOf(() => decrypt({ ...env, recipients: other.recipients }, a)), 'decrypt-failed');
  // the whole header of another envelope with this ciphertext
  t.is(codeOf(() => decrypt({ ...other, ct: env.ct, iv: env.iv }, a)), 'decrypt-failed');
  // relabelling a's entry with a stranger's kid: the stranger is a listed recipient but cannot unwrap
  const stranger = recipient();
  t.is(codeOf(() => decrypt({ ...env, recipients: [{ kid: encKeyId(stranger.publicKey), wk: ra.wk }] }, stranger)), 'decrypt-failed');
  t.is(codeOf(() => decrypt(env, stranger)), 'not-a-recipient');
});

test(`encrypted envelope parser: unknown fields, wrong lengths, empty recipients, truncation are malformed; over ${MAX_RECIPIENTS} recipients too-large`, (t) => {
  const env = wire(encrypt(utf8('x'), [recipient()]));
  const cases: Record<string, unknown> = {
    'unknown field': { ...env, alg: 'A256GCM' },
    'unknown recipient field': { ...env, recipients: [{ ...env.recipients[0], epk: env.epk }] },
    'no recipients': { ...env, recipients: [] },
    'epk 31 bytes': { ...env, epk: b64u(new Uint8Array(31)) },
    'iv 16 bytes': { ...env, iv: b64u(new Uint8Array(16)) },
    'ct shorter than a tag': { ...env, ct: b64u(new Uint8Array(15)) },
    'wk truncated': { ...env, recipients: [{ ...env.recipients[0], wk: (env.recipients[0].wk as string).slice(0, -2) }] },
    // cut to a length no byte string encodes to (4k + 1 characters); a cut by one character can still be
    // canonical base64url of shorter bytes, which the parser cannot tell from a real ciphertext (GCM can)
    'ct base64 cut to an impossible length': { ...env, ct: (env.ct as string).slice(0, 4 * Math.floor((env.ct as string).length / 4) - 3) },
    'kid not a UDF': { ...env, recipients: [{ ...env.recipients[0], kid: 'x' }] },
    'missing ct': { epk: env.epk, recipients: env.recipients, iv: env.iv },
  };
  for (const [name, v] of Object.entries(cases)) t.is(codeOf(() => parseEncryptedEnvelope(v)), 'malformed', name);
  const many = { ...env, recipients: Array.from({ length: MAX_RECIPIENTS + 1 }, () => env.recipients[0]) };
  t.is(codeOf(() => parseEncryptedEnvelope(many)), 'too-large');
});

test(`encrypt: no recipient is malformed; more than ${MAX_RECIPIENTS} is too-large; a small-order recipient key is bad-key`, (t) => {
  t.is(codeOf(() => encrypt(utf8('x'), [])), 'malformed');
  const r = recipient();
  t.is(codeOf(() => encrypt(utf8('x'), Array.from({ length: MAX_RECIPIENTS + 1 }, () => r))), 'too-large');
  t.is(codeOf(() => encrypt(utf8('x'), [r, { publicKey: new Uint8Array(32) }])), 'bad-key');
});

test('decrypt with an X25519 key whose private half is wrong for the listed public key is decrypt-failed', (t) => {
  const r = recipient();
  const env = encrypt(utf8('x'), [r]);
  t.is(codeOf(() => decrypt(env, { publicKey: r.publicKey, privateKey: c.randomBytes(32) })), 'decrypt-failed');
});
