/**
 * Shamir secret sharing with share UDFs (udf.md "Nonce, key and share UDFs"):
 * share = 0x90 || (threshold << 4 | (x - 1)) || f(x) big-endian in n bytes, where f is a random
 * polynomial of degree threshold - 1 over GF(p), p the smallest prime above 2^(8n), f(0) = secret.
 *
 * Choices (documented, tested):
 * - Secret lengths: n = 16 (p = 2^128 + 51) and n = 32 (p = 2^256 + 297) only; any other length
 *   is refused with 'malformed' when splitting and 'bad-share' when recovering. (The primes are
 *   fixed constants; test/shamir.test.ts checks with Miller-Rabin that each is prime and that
 *   no prime lies between 2^(8n) and it.)
 * - threshold 2..15 (the header's high nibble); shares threshold..16 (x - 1 is the low nibble).
 * - Coefficients are uniform in [0, p) by rejection sampling.
 * - p > 2^(8n), so f(x) may not fit in n bytes (probability about 2^-122 per share). Rather than
 *   write a share the format cannot hold, the whole polynomial is drawn again.
 * - The format carries no checksum. A mistyped share still fails when it has a non-Base32
 *   character, a wrong length, impossible last-character bits or an impossible header; given
 *   more than `threshold` shares, recovery also checks that the extra ones lie on the same
 *   polynomial. Otherwise the caller checks the recovered secret against a known fingerprint.
 */
import { fail, isMeshError } from './errors.js';
import { randomBytes } from './crypto.js';
import { parseShareUdf, shareUdf } from './udf.js';

/** The smallest prime above 2^(8n), for the supported secret lengths n. */
const PRIMES: ReadonlyMap<number, bigint> = new Map([
  [16, (1n << 128n) + 51n],
  [32, (1n << 256n) + 297n],
]);

export const SHAMIR_SECRET_LENGTHS: readonly number[] = [...PRIMES.keys()];
export const SHAMIR_MIN_THRESHOLD = 2;
export const SHAMIR_MAX_THRESHOLD = 15;
export const SHAMIR_MAX_SHARES = 16;

/** The field prime for an n-byte secret, or undefined when n is not supported. */
export function shamirPrime(n: number): bigint | undefined {
  return PRIMES.get(n);
}

// ---------------------------------------------------------------- big integers

function toBig(b: Uint8Array): bigint {
  let v = 0n;
  for (const x of b) v = (v << 8n) | BigInt(x);
  return v;
}

function toBytes(v: bigint, n: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = v;
  for (let i = n - 1; i >= 0; i--) {
    out[i] = Number(x & 0xffn);
    x >>= 8n;
  }
  return out;
}

function mod(a: bigint, p: bigint): bigint {
  const r = a % p;
  return r < 0n ? r + p : r;
}

/** Inverse modulo the prime p (extended Euclid); a must not be 0 mod p. */
function invert(a: bigint, p: bigint): bigint {
  let [r0, r1] = [mod(a, p), p];
  let [s0, s1] = [1n, 0n];
  while (r1 !== 0n) {
    const q = r0 / r1;
    [r0, r1] = [r1, r0 - q * r1];
    [s0, s1] = [s1, s0 - q * s1];
  }
  return mod(s0, p);
}

/** f(x) by Horner's rule; coefficients[0] is the constant term. */
function evaluate(coefficients: readonly bigint[], x: bigint, p: bigint): bigint {
  let acc = 0n;
  for (let i = coefficients.length - 1; i >= 0; i--) acc = mod(acc * x + (coefficients[i] as bigint), p);
  return acc;
}

interface Point {
  x: bigint;
  y: bigint;
}

/** Lagrange interpolation through `points`, evaluated at `at`. */
function lagrangeAt(points: readonly Point[], at: bigint, p: bigint): bigint {
  let sum = 0n;
  for (let i = 0; i < points.length; i++) {
    const pi = points[i] as Point;
    let num = 1n;
    let den = 1n;
    for (let j = 0; j < points.length; j++) {
      if (j === i) continue;
      const pj = points[j] as Point;
      num = mod(num * (at - pj.x), p);
      den = mod(den * (pi.x - pj.x), p);
    }
    sum = mod(sum + pi.y * num * invert(den, p), p);
  }
  return sum;
}

// ---------------------------------------------------------------- split

const MAX_DRAWS = 1000;

/** Uniform element of [0, p) for 2^(8n) < p < 2^(8n+1): draw 8n+1 bits, reject values >= p. */
function fieldElement(random: (n: number) => Uint8Array, n: number, p: bigint): bigint {
  for (let i = 0; i < MAX_DRAWS; i++) {
    const b = random(n + 1);
    if (!(b instanceof Uint8Array) || b.length !== n + 1) {
      return fail('malformed', `the random source must return ${n + 1} bytes`);
    }
    const v = toBig(Uint8Array.of((b[0] as number) & 1, ...b.subarray(1)));
    if (v < p) return v;
  }
  return fail('internal', 'the random source keeps returning values outside the field');
}

function checkSplitArgs(secret: Uint8Array, threshold: number, shares: number): bigint {
  if (!(secret instanceof Uint8Array)) return fail('malformed', 'the secret must be bytes');
  const p = shamirPrime(secret.length);
  if (p === undefined) {
    return fail('malformed', `a secret to split must be ${SHAMIR_SECRET_LENGTHS.join(' or ')} bytes, got ${secret.length}`);
  }
  if (!Number.isInteger(threshold) || threshold < SHAMIR_MIN_THRESHOLD || threshold > SHAMIR_MAX_THRESHOLD) {
    return fail('malformed', `the threshold must be ${SHAMIR_MIN_THRESHOLD}..${SHAMIR_MAX_THRESHOLD}, got ${String(threshold)}`);
  }
  if (!Number.isInteger(shares) || shares < threshold || shares > SHAMIR_MAX_SHARES) {
    return fail('malformed', `the number of shares must be ${threshold}..${SHAMIR_MAX_SHARES} (at least the threshold), got ${String(shares)}`);
  }
  return p;
}

/**
 * Split `secret` (16 or 32 bytes) into `shares` share UDFs, any `threshold` of which recover it.
 * `random` is injectable for tests; it defaults to the CSPRNG of crypto.ts.
 */
export function splitSecret(
  secret: Uint8Array,
  threshold: number,
  shares: number,
  random: (n: number) => Uint8Array = randomBytes,
): string[] {
  const p = checkSplitArgs(secret, threshold, shares);
  const n = secret.length;
  const limit = 1n << BigInt(8 * n);
  for (let draw = 0; draw < MAX_DRAWS; draw++) {
    const coefficients = [toBig(secret)];
    for (let i = 1; i < threshold; i++) coefficients.push(fieldElement(random, n, p));
    const ys: bigint[] = [];
    for (let x = 1; x <= shares; x++) ys.push(evaluate(coefficients, BigInt(x), p));
    // every f(x) must fit in n bytes (see the header comment); otherwise draw again
    if (ys.every((y) => y < limit)) return ys.map((y, i) => shareUdf(threshold, i + 1, toBytes(y, n)));
  }
  return fail('internal', 'could not draw a polynomial whose shares fit the share format');
}

// ---------------------------------------------------------------- recover

interface Share {
  threshold: number;
  x: number;
  value: Uint8Array;
}

function parseAll(shares: readonly string[]): Share[] {
  return shares.map((s, i) => {
    try {
      return parseShareUdf(s);
    } catch (e) {
      if (isMeshError(e)) return fail('bad-share', `share ${i + 1}: ${e.message}`, { share: i + 1 });
      throw e;
    }
  });
}

/** Same threshold and length everywhere, a supported length, no index twice, enough shares. */
function checkSet(parsed: readonly Share[]): { threshold: number; n: number; p: bigint } {
  const first = parsed[0];
  if (first === undefined) return fail('not-enough-shares', 'no shares were given');
  const { threshold } = first;
  const n = first.value.length;
  parsed.forEach((s, i) => {
    if (s.threshold !== threshold) {
      fail('bad-share', `share ${i + 1} needs ${s.threshold} shares but share 1 needs ${threshold}: they are not from the same split, or one was mistyped`);
    }
    if (s.value.length !== n) {
      fail('bad-share', `share ${i + 1} is not the same length as share 1: they are not from the same split, or one was mistyped`);
    }
  });
  const p = shamirPrime(n);
  if (p === undefined) return fail('bad-share', `shares of a ${n}-byte secret are not supported (only ${SHAMIR_SECRET_LENGTHS.join(' or ')} bytes)`);
  const seen = new Map<number, number>();
  parsed.forEach((s, i) => {
    const j = seen.get(s.x);
    if (j !== undefined) fail('duplicate-share', `shares ${j + 1} and ${i + 1} are both share number ${s.x}; give a different share instead`, { x: s.x });
    seen.set(s.x, i);
  });
  if (parsed.length < threshold) {
    const more = threshold - parsed.length;
    fail('not-enough-shares', `${threshold} shares are needed and ${parsed.length} were given: ${more} more ${more === 1 ? 'is' : 'are'} needed`, {
      need: threshold,
      got: parsed.length,
    });
  }
  return { threshold, n, p };
}

/**
 * Recover the secret from share UDFs by Lagrange interpolation at 0. Errors: 'bad-share'
 * (mistyped, not a share, mixed splits, or extra shares inconsistent with the first
 * `threshold`), 'duplicate-share', 'not-enough-shares' (saying how many more are needed).
 */
export function recoverSecret(shares: string[]): Uint8Array {
  if (!Array.isArray(shares)) return fail('malformed', 'shares must be a list of share UDFs');
  const parsed = parseAll(shares);
  const { threshold, n, p } = checkSet(parsed);
  const points: Point[] = parsed.map((s) => ({ x: BigInt(s.x), y: toBig(s.value) }));
  const basis = points.slice(0, threshold);
  for (let i = threshold; i < points.length; i++) {
    const extra = points[i] as Point;
    if (lagrangeAt(basis, extra.x, p) !== extra.y) {
      fail('bad-share', `share ${i + 1} does not agree with the first ${threshold}: at least one share was mistyped or comes from another split`);
    }
  }
  const secret = lagrangeAt(basis, 0n, p);
  if (secret >= 1n << BigInt(8 * n)) {
    return fail('bad-share', 'these shares do not give a possible secret: at least one was mistyped or comes from another split');
  }
  return toBytes(secret, n);
}
