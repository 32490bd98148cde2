/**
 * mesh/crypto.ts, the only door to cryptography: published vectors (RFC 8032 §7.1, RFC 7748 §5.2
 * and §6.1, the GCM specification), a differential run against an independent implementation
 * (@noble/curves, @noble/hashes), strict key checks, a junk table and fast-check properties.
 */
import { codeOf } from './helpers/code-of.js';
import test from 'ava';
import fc from 'fast-check';
import { ed25519 as nobleEd, x25519 as nobleX, ED25519_TORSION_SUBGROUP } from '@noble/curves/ed25519.js';
import { sha512 as nSha512, sha256 as nSha256 } from '@noble/hashes/sha2.js';
import { sha3_512 as nSha3_512 } from '@noble/hashes/sha3.js';
import { hmac as nHmac } from '@noble/hashes/hmac.js';
import { hkdf as nHkdf, expand as nExpand } from '@noble/hashes/hkdf.js';
import * as c from '../mesh/crypto.js';
import { MeshError } from '../mesh/errors.js';
import { equalBytes, fromHex, hex, utf8 } from '../mesh/bytes.js';

const h = (s: string): Uint8Array => fromHex(s.replace(/\s+/g, ''));

/** The MeshError code `fn` throws, 'no error', or the name of any other exception (a bug). */

function flipBit(b: Uint8Array, bit: number): Uint8Array {
  const out = new Uint8Array(b);
  const i = Math.floor(bit / 8) % out.length;
  out[i] = (out[i] as number) ^ (1 << (bit % 8));
  return out;
}

// ---------------------------------------------------------------- RFC 8032 §7.1 (Ed25519)

/**
 * RFC 8032 §7.1 "Test Vectors for Ed25519": TEST 1, 2, 3, 1024 and SHA(abc), hex as printed in the
 * RFC (https://www.rfc-editor.org/rfc/rfc8032#section-7.1). TEST 1024's message is 1023 octets.
 */
const RFC8032: readonly { name: string; secret: string; public: string; message: string; signature: string }[] = [
  {
    name: 'TEST 1',
    secret: '9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60',
    public: 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a',
    message: '',
    signature:
      'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b',
  },
  {
    name: 'TEST 2',
    secret: '4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb',
    public: '3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c',
    message: '72',
    signature:
      '92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00',
  },
  {
    name: 'TEST 3',
    secret: 'c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7',
    public: 'fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025',
    message: 'af82',
    signature:
      '6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a',
  },
  {
    name: 'TEST 1024',
    secret: 'f5e5767cf153319517630f226876b86c8160cc583bc013744c6bf255f5cc0ee5',
    public: '278117fc144c72340f67d0f2316e8386ceffbf2b2428c9c51fef7c597f1d426e',
    message: `
      08b8b2b733424243760fe426a4b54908632110a66c2f6591eabd3345e3e4eb98fa6e264bf09efe12ee50f8f54e9f77b1
      e355f6c50544e23fb1433ddf73be84d879de7c0046dc4996d9e773f4bc9efe5738829adb26c81b37c93a1b270b20329d
      658675fc6ea534e0810a4432826bf58c941efb65d57a338bbd2e26640f89ffbc1a858efcb8550ee3a5e1998bd177e93a
      7363c344fe6b199ee5d02e82d522c4feba15452f80288a821a579116ec6dad2b3b310da903401aa62100ab5d1a36553e
      06203b33890cc9b832f79ef80560ccb9a39ce767967ed628c6ad573cb116dbefefd75499da96bd68a8a97b928a8bbc10
      3b6621fcde2beca1231d206be6cd9ec7aff6f6c94fcd7204ed3455c68c83f4a41da4af2b74ef5c53f1d8ac70bdcb7ed1
      85ce81bd84359d44254d95629e9855a94a7c1958d1f8ada5d0532ed8a5aa3fb2d17ba70eb6248e594e1a2297acbbb39d
      502f1a8c6eb6f1ce22b3de1a1f40cc24554119a831a9aad6079cad88425de6bde1a9187ebb6092cf67bf2b13fd65f270
      88d78b7e883c8759d2c4f5c65adb7553878ad575f9fad878e80a0c9ba63bcbcc2732e69485bbc9c90bfbd62481d9089b
      eccf80cfe2df16a2cf65bd92dd597b0707e0917af48bbb75fed413d238f5555a7a569d80c3414a8d0859dc65a46128ba
      b27af87a71314f318c782b23ebfe808b82b0ce26401d2e22f04d83d1255dc51addd3b75a2b1ae0784504df543af8969b
      e3ea7082ff7fc9888c144da2af58429ec96031dbcad3dad9af0dcbaaaf268cb8fcffead94f3c7ca495e056a9b47acdb7
      51fb73e666c6c655ade8297297d07ad1ba5e43f1bca32301651339e22904cc8c42f58c30c04aafdb038dda0847dd988d
      cda6f3bfd15c4b4c4525004aa06eeff8ca61783aacec57fb3d1f92b0fe2fd1a85f6724517b65e614ad6808d6f6ee34df
      f7310fdc82aebfd904b01e1dc54b2927094b2db68d6f903b68401adebf5a7e08d78ff4ef5d63653a65040cf9bfd4aca7
      984a74d37145986780fc0b16ac451649de6188a7dbdf191f64b5fc5e2ab47b57f7f7276cd419c17a3ca8e1b939ae49e4
      88acba6b965610b5480109c8b17b80e1b7b750dfc7598d5d5011fd2dcc5600a32ef5b52a1ecc820e308aa342721aac09
      43bf6686b64b2579376504ccc493d97e6aed3fb0f9cd71a43dd497f01f17c0e2cb3797aa2a2f256656168e6c496afc5f
      b93246f6b1116398a346f1a641f3b041e989f7914f90cc2c7fff357876e506b50d334ba77c225bc307ba537152f3f161
      0e4eafe595f6d9d90d11faa933a15ef1369546868a7f3a45a96768d40fd9d03412c091c6315cf4fde7cb68606937380d
      b2eaaa707b4c4185c32eddcdd306705e4dc1ffc872eeee475a64dfac86aba41c0618983f8741c5ef68d3a101e8a3b8ca
      c60c905c15fc910840b94c00a0b9d0`,
    signature:
      '0aab4c900501b3e24d7cdf4663326a3a87df5e4843b2cbdb67cbf6e460fec350aa5371b1508f9f4528ecea23c436d94b5e8fcd4f681e30a6ac00a9704a188a03',
  },
  {
    name: 'TEST SHA(abc)',
    secret: '833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42',
    public: 'ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf',
    message:
      'ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f',
    signature:
      'dc2a4459e7369633a52b1bf277839a00201009a3efbf3ecb69bea2186c26b58909351fc9ac90b3ecfdfbc7c66431e0303dca179c138ac17ad9bef1177331a704',
  },
];

test('RFC 8032 §7.1 TEST 1024 carries a 1023-octet message and TEST SHA(abc) carries SHA-512("abc")', (t) => {
  t.is(h(RFC8032[3]!.message).length, 1023);
  t.is(hex(c.sha512(utf8('abc'))), RFC8032[4]!.message);
});

for (const v of RFC8032) {
  test(`RFC 8032 §7.1 ${v.name}: public key, signature and verification`, (t) => {
    const kp = c.ed25519KeyPair(h(v.secret));
    t.is(hex(kp.publicKey), v.public);
    t.is(hex(kp.privateKey), v.secret);
    const msg = h(v.message);
    const sig = c.ed25519Sign(kp.privateKey, msg);
    t.is(hex(sig), v.signature);
    t.true(c.ed25519Verify(h(v.public), msg, h(v.signature)));
    // the same vector with one bit changed anywhere fails, and does not throw
    t.false(c.ed25519Verify(h(v.public), msg, flipBit(h(v.signature), 7)));
    t.false(c.ed25519Verify(h(v.public), msg, flipBit(h(v.signature), 300)));
    t.false(c.ed25519Verify(h(v.public), msg.length === 0 ? Uint8Array.of(0) : flipBit(msg, 0), h(v.signature)));
  });
}

// ---------------------------------------------------------------- RFC 7748 (X25519)

test('RFC 7748 §5.2 X25519 vectors (the second u-coordinate has its top bit set, which is masked)', (t) => {
  const vectors = [
    [
      'a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4',
      'e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c',
      'c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552',
    ],
    [
      '4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d',
      'e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493',
      '95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957',
    ],
  ] as const;
  for (const [k, u, out] of vectors) t.is(hex(c.x25519(h(k), h(u))), out);
});

test('RFC 7748 §5.2 X25519 iterated: 1 and 1,000 iterations from k = u = 9', (t) => {
  let k: Uint8Array = new Uint8Array(32);
  k[0] = 9;
  let u: Uint8Array = new Uint8Array(k);
  for (let i = 1; i <= 1000; i++) {
    const next = c.x25519(k, u);
    u = k;
    k = next;
    if (i === 1) t.is(hex(k), '422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079');
  }
  t.is(hex(k), '684cf59ba83309552800ef566f2f4d3c1c3887c49360e3875f2eb94d99532c51');
});

test('RFC 7748 §6.1 Curve25519 Diffie-Hellman (Alice and Bob)', (t) => {
  const alicePriv = h('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a');
  const alicePub = '8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a';
  const bobPriv = h('5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb');
  const bobPub = 'de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f';
  const shared = '4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742';
  t.is(hex(c.x25519PublicKey(alicePriv)), alicePub);
  t.is(hex(c.x25519KeyPair(bobPriv).publicKey), bobPub);
  t.is(hex(c.x25519(alicePriv, h(bobPub))), shared);
  t.is(hex(c.x25519(bobPriv, h(alicePub))), shared);
});

// ---------------------------------------------------------------- HKDF-SHA-512 (no RFC 5869 SHA-512 vectors: cross-check)

test('hkdfSha512 equals @noble/hashes hkdf(sha512) on random inputs, including empty salt and the longest output', (t) => {
  let n = 0;
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 0, maxLength: 100 }),
      fc.uint8Array({ minLength: 0, maxLength: 130 }),
      fc.uint8Array({ minLength: 0, maxLength: 60 }),
      fc.oneof(fc.integer({ min: 1, max: 300 }), fc.constant(255 * 64)),
      (ikm, salt, info, len) => {
        n++;
        const ours = c.hkdfSha512(ikm, salt, info, len);
        return ours.length === len && equalBytes(ours, nHkdf(nSha512, ikm, salt, info, len));
      },
    ),
    { numRuns: 300 },
  );
  // a string info is its UTF-8 bytes
  t.deepEqual(c.hkdfSha512(utf8('ikm'), new Uint8Array(0), 'mmm-wrap-v1', 32), nHkdf(nSha512, utf8('ikm'), new Uint8Array(0), utf8('mmm-wrap-v1'), 32));
  t.is(n, 300);
});

test('hkdfExpandSha512 equals @noble/hashes expand(sha512) on random inputs; too long is malformed', (t) => {
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 64, maxLength: 64 }),
      fc.uint8Array({ minLength: 0, maxLength: 80 }),
      fc.oneof(fc.integer({ min: 1, max: 400 }), fc.constant(255 * 64)),
      (prk, info, len) => equalBytes(c.hkdfExpandSha512(prk, info, len), nExpand(nSha512, prk, info, len)),
    ),
    { numRuns: 300 },
  );
  t.deepEqual(c.hkdfExpandSha512(new Uint8Array(64).fill(3), 'KeyedUDFExpand', 64), nExpand(nSha512, new Uint8Array(64).fill(3), utf8('KeyedUDFExpand'), 64));
  t.is(codeOf(() => c.hkdfExpandSha512(new Uint8Array(64), 'x', 255 * 64 + 1)), 'malformed');
});

// ---------------------------------------------------------------- AES-256-GCM

test('AES-256-GCM: the GCM specification test cases 13 and 14 (AES-256, zero key and IV)', (t) => {
  // McGrew and Viega, "The Galois/Counter Mode of Operation (GCM)", Appendix B, test cases 13 and 14
  const key = new Uint8Array(32);
  const iv = new Uint8Array(12);
  t.is(hex(c.aesGcmEncrypt(key, iv, new Uint8Array(0), new Uint8Array(0))), '530f8afbc74536b9a963b4f1c4cb738b');
  t.is(hex(c.aesGcmEncrypt(key, iv, new Uint8Array(16), new Uint8Array(0))), 'cea7403d4d606b6e074ec5d3baf39d18' + 'd0d1c8a799996bf0265b98b5d48ab919');
  t.deepEqual(c.aesGcmDecrypt(key, iv, h('cea7403d4d606b6e074ec5d3baf39d18d0d1c8a799996bf0265b98b5d48ab919'), new Uint8Array(0)), new Uint8Array(16));
});

test('AES-256-GCM round trip (fast-check) and every single-bit change of ciphertext, tag, key, IV or AAD is decrypt-failed', (t) => {
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 32, maxLength: 32 }),
      fc.uint8Array({ minLength: 12, maxLength: 12 }),
      fc.uint8Array({ minLength: 0, maxLength: 200 }),
      fc.uint8Array({ minLength: 0, maxLength: 40 }),
      fc.nat(),
      (key, iv, pt, aad, bit) => {
        const sealed = c.aesGcmEncrypt(key, iv, pt, aad);
        if (sealed.length !== pt.length + c.GCM_TAG_LEN) return false;
        if (!equalBytes(c.aesGcmDecrypt(key, iv, sealed, aad), pt)) return false;
        const bad = [
          () => c.aesGcmDecrypt(key, iv, flipBit(sealed, bit % (sealed.length * 8)), aad),
          () => c.aesGcmDecrypt(flipBit(key, bit % 256), iv, sealed, aad),
          () => c.aesGcmDecrypt(key, flipBit(iv, bit % 96), sealed, aad),
          () => c.aesGcmDecrypt(key, iv, sealed, aad.length === 0 ? Uint8Array.of(0) : flipBit(aad, bit % (aad.length * 8))),
          () => c.aesGcmDecrypt(key, iv, sealed.subarray(0, sealed.length - 1), aad),
          () => c.aesGcmDecrypt(key, iv, sealed.subarray(0, 15), aad),
        ];
        return bad.every((f) => codeOf(f) === 'decrypt-failed');
      },
    ),
    { numRuns: 200 },
  );
  t.pass();
});

// ---------------------------------------------------------------- differential: node:crypto (OpenSSL) against noble

/** Random cases per differential run (MESH_DIFF_CASES overrides; noble is pure JS, about 1 ms per operation). */
const DIFF_CASES = Number(process.env.MESH_DIFF_CASES ?? 2000);
/** noble's verification is its slowest operation: every CROSS-th case is also verified by noble. */
const CROSS = 4;

test(`differential Ed25519 (${DIFF_CASES} random cases): same public keys and signatures as @noble/curves, cross-verified both ways`, (t) => {
  const mismatches: string[] = [];
  let nobleVerified = 0;
  for (let i = 0; i < DIFF_CASES; i++) {
    const seed = c.randomBytes(32);
    const msg = c.randomBytes(i % 300);
    const ours = c.ed25519KeyPair(seed);
    if (!equalBytes(ours.publicKey, nobleEd.getPublicKey(seed))) mismatches.push(`public key of seed ${hex(seed)}`);
    const sig = c.ed25519Sign(seed, msg);
    const nsig = nobleEd.sign(msg, seed);
    if (!equalBytes(sig, nsig)) mismatches.push(`signature of seed ${hex(seed)} msg ${hex(msg)}`);
    if (!c.ed25519Verify(ours.publicKey, msg, nsig)) mismatches.push(`ours rejects noble's signature: ${hex(seed)} ${hex(msg)}`);
    // a changed message is false
    const other = flipBit(msg.length === 0 ? Uint8Array.of(1) : msg, i);
    if (c.ed25519Verify(ours.publicKey, other, sig)) mismatches.push(`a changed message verified: ${hex(seed)}`);
    if (i % CROSS === 0) {
      nobleVerified++;
      if (!nobleEd.verify(sig, msg, ours.publicKey, { zip215: false })) mismatches.push(`noble rejects our signature: ${hex(seed)} ${hex(msg)}`);
      if (nobleEd.verify(sig, other, ours.publicKey)) mismatches.push(`noble accepts a changed message: ${hex(seed)}`);
    }
  }
  t.deepEqual(mismatches, []);
  t.is(nobleVerified, Math.ceil(DIFF_CASES / CROSS));
});

test(`differential X25519 (${DIFF_CASES} random cases): same public keys and shared secrets as @noble/curves`, (t) => {
  const mismatches: string[] = [];
  for (let i = 0; i < DIFF_CASES; i++) {
    const a = c.randomBytes(32);
    const b = c.randomBytes(32);
    const A = c.x25519PublicKey(a);
    const B = c.x25519PublicKey(b);
    if (!equalBytes(A, nobleX.getPublicKey(a))) mismatches.push(`public key of ${hex(a)}`);
    const ab = c.x25519(a, B);
    if (!equalBytes(ab, c.x25519(b, A))) mismatches.push(`DH not symmetric: ${hex(a)} ${hex(b)}`);
    if (!equalBytes(ab, nobleX.getSharedSecret(a, B))) mismatches.push(`shared secret differs from noble: ${hex(a)} ${hex(b)}`);
    if (i % CROSS === 0) {
      // an arbitrary 32-byte u-coordinate (top bit included): both mask it and agree
      const u = c.randomBytes(32);
      if (!equalBytes(c.x25519(a, u), nobleX.getSharedSecret(a, u))) mismatches.push(`raw u ${hex(u)}`);
    }
  }
  t.deepEqual(mismatches, []);
});

test(`differential hashes (${DIFF_CASES} random inputs): SHA-512, SHA3-512, SHA-256 and HMAC-SHA-512 equal @noble/hashes`, (t) => {
  const mismatches: string[] = [];
  for (let i = 0; i < DIFF_CASES; i++) {
    const data = c.randomBytes(i % 517);
    const key = c.randomBytes(i % 200);
    if (!equalBytes(c.sha512(data), nSha512(data))) mismatches.push(`sha512 ${hex(data)}`);
    if (!equalBytes(c.sha3_512(data), nSha3_512(data))) mismatches.push(`sha3_512 ${hex(data)}`);
    if (!equalBytes(c.sha256(data), nSha256(data))) mismatches.push(`sha256 ${hex(data)}`);
    if (!equalBytes(c.hmacSha512(key, data), nHmac(nSha512, key, data))) mismatches.push(`hmac ${hex(key)} ${hex(data)}`);
  }
  t.deepEqual(mismatches, []);
});

// ---------------------------------------------------------------- strict keys

test('Ed25519: the 8 torsion points (small order) are bad-key, for checkEd25519PublicKey and for verify', (t) => {
  t.is(ED25519_TORSION_SUBGROUP.length, 8);
  const sig = c.ed25519Sign(c.randomBytes(32), utf8('m'));
  for (const p of ED25519_TORSION_SUBGROUP) {
    const pub = h(p);
    t.is(codeOf(() => c.checkEd25519PublicKey(pub)), 'bad-key', p);
    t.is(codeOf(() => c.ed25519Verify(pub, utf8('m'), sig)), 'bad-key', p);
    // the same point with the x sign bit flipped is still small order (or non-canonical)
    t.is(codeOf(() => c.checkEd25519PublicKey(flipBit(pub, 255))), 'bad-key', `${p} with the sign bit flipped`);
  }
});

test('Ed25519: a signature made by a small-order "key" does not verify under any checked key (and the key itself is refused)', (t) => {
  // identity point: every signature (R = identity, S = 0) "verifies" under cofactored lenient rules
  const identity = h('0100000000000000000000000000000000000000000000000000000000000000');
  const forged = new Uint8Array(64);
  forged.set(identity, 0);
  t.is(codeOf(() => c.ed25519Verify(identity, utf8('anything'), forged)), 'bad-key');
});

const P = 2n ** 255n - 19n;
const le32 = (n: bigint): Uint8Array => {
  const out = new Uint8Array(32);
  for (let i = 0; i < 32; i++) out[i] = Number((n >> BigInt(8 * i)) & 0xffn);
  return out;
};

test('Ed25519: non-canonical encodings (y >= p, either sign bit) are bad-key, including ones that decode to a point of large order', (t) => {
  let largeOrder = 0;
  for (let k = 0n; k < 19n; k++) {
    for (const signBit of [0, 1]) {
      const enc = le32(P + k);
      if (signBit === 1) enc[31] = (enc[31] as number) | 0x80;
      // what a lenient (ZIP-215) decoder makes of it: the point y = k, if there is one
      let decodesToLargeOrder = false;
      try {
        decodesToLargeOrder = !nobleEd.Point.fromBytes(enc, true).isSmallOrder();
      } catch {
        decodesToLargeOrder = false;
      }
      if (decodesToLargeOrder) largeOrder++;
      t.is(codeOf(() => c.checkEd25519PublicKey(enc)), 'bad-key', `y = p + ${k}, sign ${signBit}`);
    }
  }
  // the test means something: some of these are valid points a lenient verifier would accept
  t.true(largeOrder > 0, 'expected some non-canonical encodings of large-order points');
});

test('Ed25519: a valid key is accepted by checkEd25519PublicKey (and again from the cache)', (t) => {
  const pub = c.ed25519KeyPair().publicKey;
  t.is(codeOf(() => c.checkEd25519PublicKey(pub)), 'no error');
  t.is(codeOf(() => c.checkEd25519PublicKey(pub)), 'no error');
});

test('X25519: small-order peers (u = 0, 1, p-1, the order-8 points, and p, p+1 non-canonical) are bad-key', (t) => {
  const smallOrder = [
    le32(0n),
    le32(1n),
    le32(P - 1n),
    h('e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800'),
    h('5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157'),
    le32(P),
    le32(P + 1n),
  ];
  const priv = c.randomBytes(32);
  for (const u of smallOrder) t.is(codeOf(() => c.x25519(priv, u)), 'bad-key', hex(u));
});

// ---------------------------------------------------------------- junk: a caller's mistake throws 'malformed'; a forgery is false

const JUNK: readonly [string, unknown][] = [
  ['a string', 'abcdefghabcdefghabcdefghabcdefgh'],
  ['a number', 32],
  ['null', null],
  ['an object', { length: 32 }],
  ['an array of 32 numbers', Array.from({ length: 32 }, () => 1)],
  ['a Uint16Array', new Uint16Array(16)],
  ['an ArrayBuffer', new ArrayBuffer(32)],
];
const short = (n: number): [string, unknown][] => [
  ['one byte short', new Uint8Array(n - 1)],
  ['one byte long', new Uint8Array(n + 1)],
  ['empty', new Uint8Array(0)],
];

const k32 = (): Uint8Array => new Uint8Array(32).fill(9);
const edPub = c.ed25519KeyPair(k32()).publicKey;
const xPub = c.x25519PublicKey(k32());

/** Every API argument that asserts its type and length: each junk value must throw 'malformed'. */
const CHECKED: readonly { name: string; len?: number; nullMakesRandom?: true; call: (x: unknown) => unknown }[] = [
  { name: 'ed25519KeyPair(seed)', len: 32, nullMakesRandom: true, call: (x) => c.ed25519KeyPair(x as Uint8Array) },
  { name: 'ed25519Sign(privateKey)', len: 32, call: (x) => c.ed25519Sign(x as Uint8Array, new Uint8Array(1)) },
  { name: 'ed25519Sign(message)', call: (x) => c.ed25519Sign(k32(), x as Uint8Array) },
  { name: 'ed25519Verify(publicKey)', len: 32, call: (x) => c.ed25519Verify(x as Uint8Array, new Uint8Array(1), new Uint8Array(64)) },
  { name: 'ed25519Verify(message)', call: (x) => c.ed25519Verify(edPub, x as Uint8Array, new Uint8Array(64)) },
  { name: 'ed25519Verify(signature)', len: 64, call: (x) => c.ed25519Verify(edPub, new Uint8Array(1), x as Uint8Array) },
  { name: 'checkEd25519PublicKey', len: 32, call: (x) => c.checkEd25519PublicKey(x as Uint8Array) },
  { name: 'ed25519Spki', len: 32, call: (x) => c.ed25519Spki(x as Uint8Array) },
  { name: 'x25519Spki', len: 32, call: (x) => c.x25519Spki(x as Uint8Array) },
  { name: 'x25519KeyPair(seed)', len: 32, nullMakesRandom: true, call: (x) => c.x25519KeyPair(x as Uint8Array) },
  { name: 'x25519PublicKey', len: 32, nullMakesRandom: true, call: (x) => c.x25519PublicKey(x as Uint8Array) },
  { name: 'x25519(privateKey)', len: 32, call: (x) => c.x25519(x as Uint8Array, xPub) },
  { name: 'x25519(peerPublicKey)', len: 32, call: (x) => c.x25519(k32(), x as Uint8Array) },
  { name: 'aesGcmEncrypt(key)', len: 32, call: (x) => c.aesGcmEncrypt(x as Uint8Array, new Uint8Array(12), new Uint8Array(1), new Uint8Array(0)) },
  { name: 'aesGcmEncrypt(iv)', len: 12, call: (x) => c.aesGcmEncrypt(k32(), x as Uint8Array, new Uint8Array(1), new Uint8Array(0)) },
  { name: 'aesGcmDecrypt(key)', len: 32, call: (x) => c.aesGcmDecrypt(x as Uint8Array, new Uint8Array(12), new Uint8Array(16), new Uint8Array(0)) },
  { name: 'aesGcmDecrypt(iv)', len: 12, call: (x) => c.aesGcmDecrypt(k32(), x as Uint8Array, new Uint8Array(16), new Uint8Array(0)) },
  { name: 'aesGcmDecrypt(ciphertext)', call: (x) => c.aesGcmDecrypt(k32(), new Uint8Array(12), x as Uint8Array, new Uint8Array(0)) },
];

test('junk table: wrong types and lengths throw MeshError malformed, never a TypeError', (t) => {
  const wrong: string[] = [];
  for (const api of CHECKED) {
    const inputs = api.len === undefined ? JUNK : [...JUNK, ...short(api.len)];
    for (const [what, x] of inputs) {
      if (api.nullMakesRandom === true && x === null) continue; // see the KNOWN GAP test below
      const got = codeOf(() => api.call(x));
      if (got !== 'malformed') wrong.push(`${api.name} with ${what}: ${got}`);
    }
  }
  t.deepEqual(wrong, []);
});

test('junk table: a Buffer is bytes (accepted where a Uint8Array is)', (t) => {
  const kp = c.ed25519KeyPair(Buffer.alloc(32, 5));
  t.true(c.ed25519Verify(Buffer.from(kp.publicKey), Buffer.from('m'), Buffer.from(c.ed25519Sign(Buffer.alloc(32, 5), utf8('m')))));
});

test('a forged signature is false, not a throw: zeros, random bytes, another key\'s signature, S >= L', (t) => {
  const kp = c.ed25519KeyPair();
  const other = c.ed25519KeyPair();
  const msg = utf8('pay 10 to bob');
  const good = c.ed25519Sign(kp.privateKey, msg);
  t.true(c.ed25519Verify(kp.publicKey, msg, good));
  t.false(c.ed25519Verify(kp.publicKey, msg, new Uint8Array(64)));
  t.false(c.ed25519Verify(kp.publicKey, msg, c.randomBytes(64)));
  t.false(c.ed25519Verify(kp.publicKey, msg, c.ed25519Sign(other.privateKey, msg)));
  t.false(c.ed25519Verify(other.publicKey, msg, good));
  // malleability: S + L is the same signature equation but a non-canonical scalar (RFC 8032 §5.1.7 step 1)
  const L = 2n ** 252n + 27742317777372353535851937790883648493n;
  let s = 0n;
  for (let i = 31; i >= 0; i--) s = (s << 8n) | BigInt(good[32 + i] as number);
  const malleated = new Uint8Array(good);
  malleated.set(le32(s + L), 32);
  t.false(c.ed25519Verify(kp.publicKey, msg, malleated));
});

/**
 * Known gaps in the door's boundary checks: these functions take a string or any junk without the
 * 'malformed' MeshError the file header promises (a string is hashed as UTF-8; other junk gives
 * node's TypeError). Marked failing so the test turns green (and ava says so) once fixed.
 */
const UNCHECKED: readonly { name: string; call: (x: unknown) => unknown }[] = [
  { name: 'sha512', call: (x) => c.sha512(x as Uint8Array) },
  { name: 'sha3_512', call: (x) => c.sha3_512(x as Uint8Array) },
  { name: 'sha256', call: (x) => c.sha256(x as Uint8Array) },
  { name: 'hmacSha512(key)', call: (x) => c.hmacSha512(x as Uint8Array, new Uint8Array(1)) },
  { name: 'hmacSha512(data)', call: (x) => c.hmacSha512(new Uint8Array(1), x as Uint8Array) },
  { name: 'hkdfSha512(ikm)', call: (x) => c.hkdfSha512(x as Uint8Array, new Uint8Array(0), 'i', 32) },
  { name: 'hkdfExpandSha512(prk)', call: (x) => c.hkdfExpandSha512(x as Uint8Array, 'i', 32) },
  { name: 'hkdfExpandSha512(length)', call: (x) => c.hkdfExpandSha512(new Uint8Array(64), 'i', x as number) },
  { name: 'aesGcmEncrypt(plaintext)', call: (x) => c.aesGcmEncrypt(k32(), new Uint8Array(12), x as Uint8Array, new Uint8Array(0)) },
  { name: 'aesGcmEncrypt(aad)', call: (x) => c.aesGcmEncrypt(k32(), new Uint8Array(12), new Uint8Array(1), x as Uint8Array) },
  { name: 'timingSafeEqual', call: (x) => c.timingSafeEqual(x as Uint8Array, new Uint8Array(1)) },
];

test('hashes, HMAC, HKDF, GCM plaintext/AAD and timingSafeEqual assert bytes (a string is not silently hashed)', (t) => {
  const wrong: string[] = [];
  for (const api of UNCHECKED) {
    for (const [what, x] of [['a string', 'abc'], ['null', null], ['a number', -1]] as const) {
      const got = codeOf(() => api.call(x));
      if (got !== 'malformed') wrong.push(`${api.name} with ${what}: ${got}`);
    }
  }
  t.deepEqual(wrong, []);
});

test('a null seed is refused, and x25519PublicKey(undefined or null) is refused, never a random key', (t) => {
  // `seed ?? randomBytes(...)` in ed25519KeyPair/x25519KeyPair; x25519PublicKey passes its argument on.
  // A caller whose private key went missing gets a fresh random key instead of an error.
  t.is(codeOf(() => c.x25519PublicKey(undefined as unknown as Uint8Array)), 'malformed');
  t.is(codeOf(() => c.x25519PublicKey(null as unknown as Uint8Array)), 'malformed');
  t.is(codeOf(() => c.ed25519KeyPair(null as unknown as Uint8Array)), 'malformed');
  t.is(codeOf(() => c.x25519KeyPair(null as unknown as Uint8Array)), 'malformed');
});

// ---------------------------------------------------------------- properties

test('property: sign then verify is true; one flipped bit in the message or the signature makes it false', (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.uint8Array({ minLength: 0, maxLength: 256 }), fc.nat(), (seed, msg, bit) => {
      const kp = c.ed25519KeyPair(seed);
      const sig = c.ed25519Sign(seed, msg);
      if (!c.ed25519Verify(kp.publicKey, msg, sig)) return false;
      if (c.ed25519Verify(kp.publicKey, msg, flipBit(sig, bit % 512))) return false;
      if (msg.length > 0 && c.ed25519Verify(kp.publicKey, flipBit(msg, bit % (msg.length * 8)), sig)) return false;
      return true;
    }),
    { numRuns: 500 },
  );
  t.pass();
});

test('property: X25519 agreement is symmetric and never all-zero for honest keys', (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.uint8Array({ minLength: 32, maxLength: 32 }), (a, b) => {
      const s = c.x25519(a, c.x25519PublicKey(b));
      return equalBytes(s, c.x25519(b, c.x25519PublicKey(a))) && s.some((x) => x !== 0);
    }),
    { numRuns: 300 },
  );
  t.pass();
});

test('timingSafeEqual: equal, different, and different lengths (false, not a throw)', (t) => {
  t.true(c.timingSafeEqual(Uint8Array.of(1, 2), Uint8Array.of(1, 2)));
  t.false(c.timingSafeEqual(Uint8Array.of(1, 2), Uint8Array.of(1, 3)));
  t.false(c.timingSafeEqual(Uint8Array.of(1, 2), Uint8Array.of(1, 2, 3)));
});

test('MeshError is what the door throws (instanceof, with a code)', (t) => {
  const e = t.throws(() => c.ed25519KeyPair(new Uint8Array(3)));
  t.true(e instanceof MeshError);
  t.is((e as MeshError).code, 'malformed');
});
