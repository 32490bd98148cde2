import test from 'ava';
import fc from 'fast-check';
import { isMeshError, type MeshErrorCode } from '../mesh/errors.js';
import { concat, hex } from '../mesh/bytes.js';
import { randomBytes } from '../mesh/crypto.js';
import { base32Decode } from '../mesh/base32.js';
import { parseShareUdf, present, shareUdf } from '../mesh/udf.js';
import { recoverSecret, shamirPrime, splitSecret } from '../mesh/shamir.js';

function code(fn: () => unknown): MeshErrorCode | 'no error' | 'not a MeshError' {
  try {
    fn();
    return 'no error';
  } catch (e) {
    return isMeshError(e) ? e.code : 'not a MeshError';
  }
}

function thrown(fn: () => unknown): { code?: string; message: string; detail?: unknown } {
  try {
    fn();
  } catch (e) {
    if (isMeshError(e)) return { code: e.code, message: e.message, detail: e.detail };
  }
  return { message: '' };
}

/** Every k-element subset of xs, in order. */
function subsets<T>(xs: readonly T[], k: number): T[][] {
  if (k === 0) return [[]];
  if (xs.length < k) return [];
  const [head, ...rest] = xs as [T, ...T[]];
  return [...subsets(rest, k - 1).map((s) => [head, ...s]), ...subsets(rest, k)];
}

function secretOf(n: number, seed: number): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (i * 131 + seed * 17 + 7) & 0xff);
}

/** A random source replaying the given byte strings (each call takes the next one). */
function replay(...chunks: Uint8Array[]): (n: number) => Uint8Array {
  let i = 0;
  return (n: number) => {
    const c = chunks[Math.min(i++, chunks.length - 1)] as Uint8Array;
    if (c.length !== n) throw new Error(`replay: asked for ${n} bytes, have ${c.length}`);
    return c;
  };
}

// ---------------------------------------------------------------- the primes (test-only Miller-Rabin)

function powMod(b: bigint, e: bigint, m: bigint): bigint {
  let r = 1n;
  let x = b % m;
  let k = e;
  while (k > 0n) {
    if (k & 1n) r = (r * x) % m;
    x = (x * x) % m;
    k >>= 1n;
  }
  return r;
}

/** Miller-Rabin with the first 40 primes as bases: error below 4^-40 for composites. */
function probablyPrime(n: bigint): boolean {
  const bases = [2n, 3n, 5n, 7n, 11n, 13n, 17n, 19n, 23n, 29n, 31n, 37n, 41n, 43n, 47n, 53n, 59n, 61n, 67n, 71n,
    73n, 79n, 83n, 89n, 97n, 101n, 103n, 107n, 109n, 113n, 127n, 131n, 137n, 139n, 149n, 151n, 157n, 163n, 167n, 173n];
  if (n < 2n) return false;
  for (const p of bases) if (n % p === 0n) return n === p;
  let d = n - 1n;
  let s = 0;
  while ((d & 1n) === 0n) {
    d >>= 1n;
    s++;
  }
  outer: for (const a of bases) {
    let x = powMod(a, d, n);
    if (x === 1n || x === n - 1n) continue;
    for (let i = 1; i < s; i++) {
      x = (x * x) % n;
      if (x === n - 1n) continue outer;
    }
    return false;
  }
  return true;
}

test('the field primes are the smallest primes above 2^128 and 2^256 (udf.md)', (t) => {
  for (const [n, offset] of [[16, 51n], [32, 297n]] as const) {
    const base = 1n << BigInt(8 * n);
    const p = shamirPrime(n);
    t.is(p, base + offset);
    t.true(probablyPrime(base + offset));
    for (let c = base + 1n; c < base + offset; c++) t.false(probablyPrime(c), `2^${8 * n} + ${c - base}`);
  }
  t.is(shamirPrime(24), undefined);
  t.true(probablyPrime(2n ** 127n - 1n)); // the test's Miller-Rabin knows a Mersenne prime
  t.false(probablyPrime(3215031751n)); // and a strong pseudoprime to bases 2, 3, 5, 7
});

// ---------------------------------------------------------------- round trips

test('every k-subset of n shares recovers a 16-byte and a 32-byte secret (n <= 6)', (t) => {
  for (const len of [16, 32]) {
    for (let n = 2; n <= 6; n++) {
      for (let k = 2; k <= n; k++) {
        const secret = secretOf(len, n * 10 + k);
        const shares = splitSecret(secret, k, n);
        t.is(shares.length, n);
        t.is(new Set(shares).size, n);
        for (const sub of subsets(shares, k)) t.is(hex(recoverSecret(sub)), hex(secret));
        // order does not matter
        t.is(hex(recoverSecret(shares.slice(0, k).reverse())), hex(secret));
        // more than k shares: all consistent
        t.is(hex(recoverSecret(shares)), hex(secret));
      }
    }
  }
});

test('share format: S, header threshold << 4 | (x - 1), value in n bytes', (t) => {
  for (const len of [16, 32]) {
    const shares = splitSecret(secretOf(len, 1), 3, 5);
    shares.forEach((s, i) => {
      t.is(s[0], 'S');
      t.regex(s, /^([A-Z2-7]{4}-)*[A-Z2-7]{1,4}$/);
      const seq = base32Decode(s.replace(/-/g, ''));
      t.is(seq.length, 2 + len);
      t.is(seq[0], 0x90);
      t.is(seq[1], (3 << 4) | i);
      t.deepEqual(parseShareUdf(s).x, i + 1);
    });
  }
});

test('known answer: f(x) = secret + x with an injected random source', (t) => {
  // threshold 2: one coefficient, drawn from 17 bytes whose top byte keeps 1 bit; here a1 = 1
  const a1 = new Uint8Array(17);
  a1[16] = 1;
  const secret = new Uint8Array(16).fill(0x10);
  const shares = splitSecret(secret, 2, 3, replay(a1));
  for (let x = 1; x <= 3; x++) {
    const value = new Uint8Array(16).fill(0x10);
    value[15] = 0x10 + x;
    t.is(shares[x - 1], present(concat(Uint8Array.of(0x90, 0x20 | (x - 1)), value)));
  }
  t.is(hex(recoverSecret([shares[2] as string, shares[0] as string])), hex(secret));
});

test('coefficients: values >= p are rejected and drawn again', (t) => {
  // all-ones 17 bytes -> 2^129 - 1 after masking: >= p, rejected; then a1 = 2
  const tooBig = new Uint8Array(17).fill(0xff);
  const two = new Uint8Array(17);
  two[16] = 2;
  let calls = 0;
  const src = replay(tooBig, two);
  const shares = splitSecret(new Uint8Array(16), 2, 2, (n) => {
    calls++;
    return src(n);
  });
  t.is(calls, 2);
  t.is(hex(parseShareUdf(shares[0] as string).value), `${'00'.repeat(15)}02`);
  t.is(hex(parseShareUdf(shares[1] as string).value), `${'00'.repeat(15)}04`);
  // a coefficient in [2^128, p) is a field element and is kept: a1 = 2^128 = -51 (mod p)
  const inField = new Uint8Array(17);
  inField[0] = 1;
  let calls2 = 0;
  const s2 = splitSecret(new Uint8Array(16).fill(0xff), 2, 2, (n) => {
    calls2++;
    return replay(inField)(n);
  });
  t.is(calls2, 1);
  t.is(hex(parseShareUdf(s2[0] as string).value), `${'ff'.repeat(15)}cc`); // 2^128 - 1 - 51
  t.is(hex(parseShareUdf(s2[1] as string).value), `${'ff'.repeat(15)}99`); // 2^128 - 1 - 102
});

test('a polynomial whose share would not fit n bytes is drawn again', (t) => {
  // secret = 2^128 - 1 and a1 = 1 gives f(1) = 2^128 (needs 17 bytes): redraw with a1 = 0
  const secret = new Uint8Array(16).fill(0xff);
  const one = new Uint8Array(17);
  one[16] = 1;
  const zero = new Uint8Array(17);
  const shares = splitSecret(secret, 2, 3, replay(one, zero));
  for (const s of shares) t.is(hex(parseShareUdf(s).value), 'ff'.repeat(16));
  t.is(hex(recoverSecret(shares.slice(1))), hex(secret));
});

test('the random source must deliver what is asked', (t) => {
  t.is(code(() => splitSecret(new Uint8Array(16), 2, 2, () => new Uint8Array(3))), 'malformed');
});

test('split arguments: 16 or 32 bytes, threshold 2..15, shares threshold..16', (t) => {
  const s = new Uint8Array(16);
  for (const len of [0, 1, 15, 17, 24, 31, 33, 64]) t.is(code(() => splitSecret(new Uint8Array(len), 2, 3)), 'malformed', `length ${len}`);
  for (const k of [0, 1, 16, 2.5, Number.NaN]) t.is(code(() => splitSecret(s, k, 16)), 'malformed', `threshold ${k}`);
  for (const [k, n] of [[3, 2], [2, 17], [15, 14], [2, 2.5]] as const) t.is(code(() => splitSecret(s, k, n)), 'malformed', `${k} of ${n}`);
  t.is(code(() => splitSecret('secret' as unknown as Uint8Array, 2, 3)), 'malformed');
  // the largest split the header allows: 15 of 16
  const secret = secretOf(32, 99);
  const shares = splitSecret(secret, 15, 16);
  t.is(shares.length, 16);
  t.is(parseShareUdf(shares[15] as string).x, 16);
  t.is(hex(recoverSecret(shares.slice(1))), hex(secret));
  t.is(hex(recoverSecret(shares)), hex(secret));
});

// ---------------------------------------------------------------- refusals

test('fewer than threshold shares: not-enough-shares, saying how many more', (t) => {
  const shares = splitSecret(secretOf(16, 3), 3, 5);
  const e = thrown(() => recoverSecret(shares.slice(0, 2)));
  t.is(e.code, 'not-enough-shares');
  t.regex(e.message, /3 shares are needed and 2 were given: 1 more is needed/);
  t.deepEqual(e.detail, { need: 3, got: 2 });
  t.regex(thrown(() => recoverSecret(shares.slice(0, 1))).message, /2 more are needed/);
  t.is(code(() => recoverSecret([])), 'not-enough-shares');
});

test('the same share twice: duplicate-share', (t) => {
  const shares = splitSecret(secretOf(16, 4), 2, 3);
  const a = shares[0] as string;
  t.is(code(() => recoverSecret([a, a])), 'duplicate-share');
  t.is(code(() => recoverSecret([a, a.toLowerCase().replace(/-/g, '')])), 'duplicate-share');
  // same index with a different value (e.g. from another split of the same shape)
  const other = splitSecret(secretOf(16, 5), 2, 3);
  t.is(code(() => recoverSecret([a, other[0] as string, shares[1] as string])), 'duplicate-share');
});

test('mistyped shares: bad-share', (t) => {
  const shares = splitSecret(secretOf(32, 6), 2, 3);
  const [a, b] = shares as [string, string, string];
  const bad = (s: string) => code(() => recoverSecret([s, b]));
  t.is(bad(a.replace(/^(.{6})./, '$10')), 'bad-share'); // a digit Base32 never uses
  t.is(bad(a.replace(/^(.{6})./, '$1!')), 'bad-share');
  t.is(bad(a.replace(/-/g, '').slice(0, -1)), 'bad-share'); // a character lost
  t.is(bad(`${a}A`), 'bad-share'); // a character added
  t.is(bad(a.replace(/^S/, 'M')), 'bad-share'); // not a share
  t.is(bad('hello'), 'bad-share');
  t.is(bad(''), 'bad-share');
  const e = thrown(() => recoverSecret([b, a.replace(/^(.{6})./, '$18')]));
  t.regex(e.message, /^share 2: /);
  t.regex(e.message, /letter B/);
});

test('shares from different splits or of different shapes: bad-share', (t) => {
  const k2 = splitSecret(secretOf(16, 7), 2, 4);
  const k3 = splitSecret(secretOf(16, 7), 3, 4);
  const long = splitSecret(secretOf(32, 7), 2, 4);
  t.is(code(() => recoverSecret([k2[0] as string, k3[1] as string, k3[2] as string])), 'bad-share');
  t.is(code(() => recoverSecret([k2[0] as string, long[1] as string])), 'bad-share');
  // an extra share that is not on the same polynomial
  const other = splitSecret(secretOf(16, 8), 2, 4);
  t.is(code(() => recoverSecret([k2[0] as string, k2[1] as string, other[2] as string])), 'bad-share');
  // a share of an unsupported length
  const odd = shareUdf(2, 1, new Uint8Array(24));
  t.is(code(() => recoverSecret([odd, shareUdf(2, 2, new Uint8Array(24))])), 'bad-share');
});

test('a typo inside the value is caught when an extra share is given', (t) => {
  const secret = secretOf(16, 9);
  const shares = splitSecret(secret, 2, 3);
  const text = (shares[1] as string).replace(/-/g, '');
  const i = 10; // inside the value
  const typo = text.slice(0, i) + (text[i] === 'A' ? 'B' : 'A') + text.slice(i + 1);
  // with exactly k shares the format cannot tell (no checksum): the caller's fingerprint check must
  t.not(hex(recoverSecret([shares[0] as string, typo])), hex(secret));
  // with one more share than needed, the inconsistency is detected
  t.is(code(() => recoverSecret([shares[0] as string, typo, shares[2] as string])), 'bad-share');
});

test('shares that interpolate to no possible secret: bad-share', (t) => {
  // f(1) = 0, f(2) = 1 is the line x - 1, so f(0) = p - 1 >= 2^128
  const one = new Uint8Array(16);
  one[15] = 1;
  t.is(code(() => recoverSecret([shareUdf(2, 1, new Uint8Array(16)), shareUdf(2, 2, one)])), 'bad-share');
});

// ---------------------------------------------------------------- properties

test('property: split then recover from a random k-subset, 16- and 32-byte secrets', (t) => {
  fc.assert(
    fc.property(
      fc.oneof(fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.uint8Array({ minLength: 32, maxLength: 32 })),
      fc.integer({ min: 2, max: 6 }),
      fc.integer({ min: 0, max: 4 }),
      fc.infiniteStream(fc.nat()),
      (secret, k, extra, picks) => {
        const n = Math.min(16, k + extra);
        const shares = splitSecret(secret, k, n);
        const pool = [...shares];
        const chosen: string[] = [];
        const it = picks[Symbol.iterator]();
        while (chosen.length < k) {
          const r = it.next().value as number;
          chosen.push(pool.splice(r % pool.length, 1)[0] as string);
        }
        return hex(recoverSecret(chosen)) === hex(secret);
      },
    ),
    { numRuns: 150 },
  );
  t.pass();
});

test('property: fewer than k shares never recover, they are refused', (t) => {
  fc.assert(
    fc.property(fc.integer({ min: 2, max: 8 }), (k) => {
      const shares = splitSecret(randomBytes(16), k, k);
      return isMeshError(
        (() => {
          try {
            recoverSecret(shares.slice(1));
          } catch (e) {
            return e;
          }
          return undefined;
        })(),
        'not-enough-shares',
      );
    }),
    { numRuns: 30 },
  );
  t.pass();
});
