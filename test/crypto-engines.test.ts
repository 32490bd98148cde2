/**
 * The two cryptographic engines (mesh/crypto-node.ts for node, mesh/crypto-web.ts that the owner
 * app's bundle uses) give the same bytes and the same refusals, and mesh/bytes.ts without Node's
 * Buffer (as in the browser) encodes and decodes as with it.
 */
import test from 'ava';
import fc from 'fast-check';
import * as n from '../mesh/crypto-node.js';
import * as w from '../mesh/crypto-web.js';
import * as bytes from '../mesh/bytes.js';
import { codeOf } from './helpers/code-of.js';

const key32 = fc.uint8Array({ minLength: 32, maxLength: 32 });
const data = fc.uint8Array({ maxLength: 300 });
const same = (a: Uint8Array, b: Uint8Array): boolean => bytes.equalBytes(a, b);

test('hashes, HMAC and HKDF agree', (t) => {
  fc.assert(
    fc.property(data, data, fc.integer({ min: 1, max: 200 }), (x, y, len) => {
      return (
        same(n.sha512(x), w.sha512(x)) &&
        same(n.sha3_512(x), w.sha3_512(x)) &&
        same(n.sha256(x), w.sha256(x)) &&
        same(n.hmacSha512(x, y), w.hmacSha512(x, y)) &&
        same(n.hkdfSha512(x, y, 'info', len), w.hkdfSha512(x, y, 'info', len))
      );
    }),
    { numRuns: 100 },
  );
  t.false(same(n.sha512(Uint8Array.of(1)), w.sha512(Uint8Array.of(2))));
});

test('Ed25519: the same keys and signatures, each verifies the other, forgeries and bad keys refused alike', (t) => {
  fc.assert(
    fc.property(key32, data, (seed, msg) => {
      const a = n.ed25519KeyPair(seed);
      const b = w.ed25519KeyPair(seed);
      const sa = n.ed25519Sign(seed, msg);
      const sb = w.ed25519Sign(seed, msg);
      const forged = new Uint8Array(sa);
      forged[0] = (forged[0] as number) ^ 1;
      return same(a.publicKey, b.publicKey) && same(sa, sb) && w.ed25519Verify(a.publicKey, msg, sa) && n.ed25519Verify(b.publicKey, msg, sb) && !w.ed25519Verify(a.publicKey, msg, forged);
    }),
    { numRuns: 50 },
  );
  const small = new Uint8Array(32);
  small[0] = 1; // the identity point: small order
  t.is(codeOf(() => w.checkEd25519PublicKey(small)), 'bad-key');
  t.is(codeOf(() => n.checkEd25519PublicKey(small)), 'bad-key');
  t.is(codeOf(() => w.ed25519Sign(new Uint8Array(31), new Uint8Array(0))), 'malformed');
});

test('X25519 and AES-256-GCM agree; a changed ciphertext and a small-order peer are refused alike', (t) => {
  fc.assert(
    fc.property(key32, key32, data, data, (a, b, pt, aad) => {
      const pa = n.x25519KeyPair(a);
      const pb = w.x25519KeyPair(b);
      const iv = a.subarray(0, 12);
      const ct = n.aesGcmEncrypt(b, iv, pt, aad);
      return (
        same(pa.publicKey, w.x25519PublicKey(a)) &&
        same(n.x25519(a, pb.publicKey), w.x25519(b, pa.publicKey)) &&
        same(ct, w.aesGcmEncrypt(b, iv, pt, aad)) &&
        same(w.aesGcmDecrypt(b, iv, ct, aad), pt)
      );
    }),
    { numRuns: 50 },
  );
  const k = new Uint8Array(32).fill(7);
  const iv = new Uint8Array(12);
  const ct = w.aesGcmEncrypt(k, iv, Uint8Array.of(1, 2, 3), new Uint8Array(0));
  ct[0] = (ct[0] as number) ^ 1;
  t.is(codeOf(() => w.aesGcmDecrypt(k, iv, ct, new Uint8Array(0))), 'decrypt-failed');
  t.is(codeOf(() => n.aesGcmDecrypt(k, iv, ct, new Uint8Array(0))), 'decrypt-failed');
  t.is(codeOf(() => w.x25519(k, new Uint8Array(32))), 'bad-key');
  t.is(codeOf(() => n.x25519(k, new Uint8Array(32))), 'bad-key');
  t.is(w.randomBytes(70000).length, 70000);
});

test('mesh/bytes.ts without Buffer (the browser) encodes and refuses exactly as with it', async (t) => {
  const g = globalThis as { Buffer?: unknown };
  const saved = g.Buffer;
  g.Buffer = undefined;
  let plain: typeof bytes;
  try {
    const spec = new URL('../mesh/bytes.js?no-buffer', import.meta.url).href;
    plain = (await import(spec)) as typeof bytes;
  } finally {
    g.Buffer = saved;
  }
  t.not(plain.b64u, bytes.b64u);
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 100 }), fc.string({ maxLength: 40 }), (b, s) => {
      const e = bytes.b64u(b);
      return (
        plain.b64u(b) === e &&
        same(plain.fromB64u(e), b) &&
        plain.hex(b) === bytes.hex(b) &&
        same(plain.fromHex(bytes.hex(b)), b) &&
        plain.utf8Length(s) === bytes.utf8Length(s) &&
        codeOf(() => plain.fromB64u(s)) === codeOf(() => bytes.fromB64u(s))
      );
    }),
    { numRuns: 300 },
  );
  t.is(codeOf(() => plain.fromB64u('AB')), 'malformed'); // non-canonical trailing bits
  t.is(codeOf(() => plain.fromB64u('AA==')), 'malformed');
});
