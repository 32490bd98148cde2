/**
 * Uniform Data Fingerprints, exactly as /work/shared/reference/udf.md (normative) states them.
 * Section names in comments refer to udf.md.
 *
 * A UDF is a binary data sequence (type byte first) shown in Base32 with a dash after every
 * 4 characters. Digest and authenticator UDFs are cut to a multiple of 20 bits (100..440);
 * nonce, key, share and seed UDFs are fixed length and never cut.
 *
 * Choices where udf.md leaves room (each makes a mistyped UDF fail rather than match):
 * - A digest or authenticator UDF must have a multiple of 4 characters (a multiple of 20 bits):
 *   any other length means a character was lost or added ('bad-udf'). The whole 65-byte
 *   sequence (104 characters) is the longest accepted.
 * - A fixed-length UDF must be a complete, canonical Base32 encoding: a length no byte string
 *   has, or non-zero unused bits in the last character, is 'bad-udf'.
 * - Nonces, keys and seeds carry at least 16 bytes after the type byte.
 * - An authenticator's key string is used as given (UTF-8 of the dashed text, as the drafts'
 *   published example does), not normalized.
 */
import { fail, isMeshError } from './errors.js';
import { concat, utf8 } from './bytes.js';
import { hkdfExpandSha512, hmacSha512, randomBytes, sha3_512, sha512 } from './crypto.js';
import { base32Chars, base32CharHint, base32Decode, base32DecodePrefix, base32Encode } from './base32.js';

export const UDF_DEFAULT_BITS = 140;
export const UDF_MIN_BITS = 100;
/** Longest cut of a digest or authenticator UDF (udf.md: "100, 120, 140, ... up to 440"). */
export const UDF_MAX_BITS = 440;
/** Fewest bytes after the type byte of a nonce, key or seed UDF. */
export const UDF_MIN_FIXED_BYTES = 16;

export type UdfAlg = 'sha2' | 'sha3';
export type UdfType = 'authenticator' | 'key' | 'sha3' | 'sha2' | 'nonce' | 'share' | 'seed';

export interface ParsedUdf {
  type: UdfType;
  /** compression level 0..4 (digests only; 0 otherwise) */
  compression: number;
  /** normalized text: upper case, no dashes or whitespace */
  text: string;
  /** precision: 5 bits per character for digests and authenticators, 8 per byte for fixed types */
  bits: number;
  /** the whole bytes the text carries, type byte first */
  bytes: Uint8Array;
}

// ---------------------------------------------------------------- type identifiers (udf.md table)

const TYPE_AUTHENTICATOR = 0x00;
const TYPE_KEY = 0x20;
const TYPE_SHA3 = 0x50;
const TYPE_SHA2 = 0x60;
const TYPE_NONCE = 0x68;
const TYPE_SHARE = 0x90;
const TYPE_SEED = 0xc8;
const MAX_COMPRESSION = 4;

/** Digest length of SHA-2-512 and SHA-3-512; a digest sequence is 1 + 64 bytes. */
const DIGEST_LEN = 64;
/** Characters of a whole digest/authenticator sequence: ceil(65 * 8 / 5) = 104. */
const DIGEST_SEQUENCE_CHARS = base32Chars((1 + DIGEST_LEN) * 8);

function typeOfByte(b: number): { type: UdfType; compression: number } | undefined {
  if (b === TYPE_AUTHENTICATOR) return { type: 'authenticator', compression: 0 };
  if (b === TYPE_KEY) return { type: 'key', compression: 0 };
  if (b >= TYPE_SHA3 && b <= TYPE_SHA3 + MAX_COMPRESSION) return { type: 'sha3', compression: b - TYPE_SHA3 };
  if (b >= TYPE_SHA2 && b <= TYPE_SHA2 + MAX_COMPRESSION) return { type: 'sha2', compression: b - TYPE_SHA2 };
  if (b === TYPE_NONCE) return { type: 'nonce', compression: 0 };
  if (b === TYPE_SHARE) return { type: 'share', compression: 0 };
  if (b === TYPE_SEED) return { type: 'seed', compression: 0 };
  return undefined;
}

/** Digest and authenticator UDFs are variable length and cut; the others never are. */
function isCutType(t: UdfType): boolean {
  return t === 'sha2' || t === 'sha3' || t === 'authenticator';
}

// ---------------------------------------------------------------- presentation

/** Base32 with a dash after every 4 characters. */
function dashed(text: string): string {
  return (text.match(/.{1,4}/g) ?? []).join('-');
}

/**
 * udf.md "Binary data sequence and presentation": the first ceil(bits / 5) Base32 characters of
 * the sequence (type byte included), dashed every 4. `bits` undefined shows the whole sequence.
 */
export function present(sequence: Uint8Array, bits?: number): string {
  if (sequence.length === 0) return fail('malformed', 'a UDF sequence has at least its type byte');
  if (bits !== undefined && (!Number.isInteger(bits) || bits < 1 || bits > sequence.length * 8)) {
    return fail('malformed', `cannot present ${String(bits)} bits of a ${sequence.length * 8}-bit sequence`);
  }
  return dashed(base32Encode(sequence, bits === undefined ? undefined : base32Chars(bits)));
}

/** A digest or authenticator precision: a multiple of 20 bits in [100, 440] (udf.md). */
function checkCutBits(bits: number): void {
  if (!Number.isInteger(bits) || bits % 20 !== 0 || bits < UDF_MIN_BITS || bits > UDF_MAX_BITS) {
    fail('malformed', `UDF precision must be a multiple of 20 bits from ${UDF_MIN_BITS} to ${UDF_MAX_BITS}, got ${String(bits)}`);
  }
}

// ---------------------------------------------------------------- content digest (udf.md "Content digest UDF")

/**
 * Compression level of a TCDV: trailing zero bits counted from the least significant bit of the
 * last byte toward byte 0; 20-29 -> 1, 30-39 -> 2, 40-49 -> 3, 50+ -> 4, fewer than 20 -> 0.
 */
export function compressionLevel(tcdv: Uint8Array): number {
  let zeros = 0;
  for (let i = tcdv.length - 1; i >= 0; i--) {
    const b = tcdv[i] as number;
    if (b === 0) {
      zeros += 8;
      continue;
    }
    let x = b;
    while ((x & 1) === 0) {
      zeros++;
      x >>= 1;
    }
    break;
  }
  if (zeros < 20) return 0;
  return Math.min(MAX_COMPRESSION, Math.floor(zeros / 10) - 1);
}

const COLON = Uint8Array.of(0x3a);

function hashOf(alg: UdfAlg): (d: Uint8Array) => Uint8Array {
  if (alg === 'sha2') return sha512;
  if (alg === 'sha3') return sha3_512;
  return fail('malformed', `unknown UDF digest algorithm ${String(alg)} (use sha2 or sha3)`);
}

/** TCDV = H(UTF8(content_type) || ":" || H(data)). */
function tcdvOf(data: Uint8Array, contentType: string, h: (d: Uint8Array) => Uint8Array): Uint8Array {
  return h(concat(utf8(contentType), COLON, h(data)));
}

/** The full 65-byte sequence: (base + compression level) || TCDV; digest bytes are not shifted. */
export function contentDigestBinary(data: Uint8Array, contentType: string, alg: UdfAlg = 'sha2'): Uint8Array {
  const tcdv = tcdvOf(data, contentType, hashOf(alg));
  const base = alg === 'sha3' ? TYPE_SHA3 : TYPE_SHA2;
  return concat(Uint8Array.of(base + compressionLevel(tcdv)), tcdv);
}

/** Dashed content digest UDF cut to `bits` (default 140; a multiple of 20 in [100, 440]). */
export function contentUdf(
  data: Uint8Array,
  contentType: string,
  opts?: { alg?: UdfAlg; bits?: number },
): string {
  const bits = opts?.bits ?? UDF_DEFAULT_BITS;
  checkCutBits(bits);
  return present(contentDigestBinary(data, contentType, opts?.alg ?? 'sha2'), bits);
}

// ---------------------------------------------------------------- authenticator (udf.md "Authenticator (keyed) UDF")

const AUTH_MASTER = utf8('KeyedUDFMaster');
const AUTH_EXPAND = 'KeyedUDFExpand';

/** 0x00 || HMAC-SHA-512(OKM, UTF8(content_type) || ":" || SHA-512(data)); never compressed. */
export function authenticatorBinary(data: Uint8Array, contentType: string, keyString: string): Uint8Array {
  if (typeof keyString !== 'string' || keyString.length === 0) {
    return fail('malformed', 'an authenticator UDF needs a non-empty key string');
  }
  const prk = hmacSha512(AUTH_MASTER, utf8(keyString));
  const okm = hkdfExpandSha512(prk, AUTH_EXPAND, DIGEST_LEN);
  const av = hmacSha512(okm, concat(utf8(contentType), COLON, sha512(data)));
  return concat(Uint8Array.of(TYPE_AUTHENTICATOR), av);
}

/** Dashed authenticator UDF cut to `bits` (default 140; a multiple of 20 in [100, 440]). */
export function authenticatorUdf(
  data: Uint8Array,
  contentType: string,
  keyString: string,
  bits: number = UDF_DEFAULT_BITS,
): string {
  checkCutBits(bits);
  return present(authenticatorBinary(data, contentType, keyString), bits);
}

// ---------------------------------------------------------------- fixed length (udf.md "Nonce, key and share UDFs")

function fixedUdf(type: number, body: Uint8Array, what: string): string {
  if (!(body instanceof Uint8Array) || body.length < UDF_MIN_FIXED_BYTES) {
    return fail('malformed', `a ${what} UDF needs at least ${UDF_MIN_FIXED_BYTES} bytes`);
  }
  return present(concat(Uint8Array.of(type), body));
}

/** 0x68 || random bytes (16 fresh random bytes unless given; at least 16). Never cut. */
export function nonceUdf(random?: Uint8Array): string {
  return fixedUdf(TYPE_NONCE, random ?? randomBytes(UDF_MIN_FIXED_BYTES), 'nonce');
}

/** 0x20 || key bytes (at least 16). Never cut. */
export function keyUdf(key: Uint8Array): string {
  return fixedUdf(TYPE_KEY, key, 'key');
}

/** The key bytes of a key UDF; any other type is 'bad-udf'. */
export function parseKeyUdf(s: string): Uint8Array {
  const p = parseUdf(s);
  if (p.type !== 'key') return fail('bad-udf', `expected a key UDF (starting with E), got a ${p.type} UDF`);
  return p.bytes.slice(1);
}

/** Shamir share: 0x90 || (threshold << 4 | (x - 1)) || f(x) big-endian in n bytes. Never cut. */
export function shareUdf(threshold: number, x: number, value: Uint8Array): string {
  if (!Number.isInteger(threshold) || threshold < 2 || threshold > 15) {
    return fail('malformed', `a share threshold must be 2..15, got ${String(threshold)}`);
  }
  if (!Number.isInteger(x) || x < 1 || x > 16) return fail('malformed', `a share index must be 1..16, got ${String(x)}`);
  if (!(value instanceof Uint8Array) || value.length === 0) return fail('malformed', 'a share value needs at least one byte');
  return present(concat(Uint8Array.of(TYPE_SHARE, (threshold << 4) | (x - 1)), value));
}

/** Threshold, index and value of a share UDF; anything mistyped or not a share is 'bad-share'. */
export function parseShareUdf(s: string): { threshold: number; x: number; value: Uint8Array } {
  let p: ParsedUdf;
  try {
    p = parseUdf(s);
  } catch (e) {
    if (isMeshError(e, 'bad-udf') || isMeshError(e, 'udf-too-short')) {
      return fail('bad-share', `not a valid share: ${e.message}`);
    }
    throw e;
  }
  if (p.type !== 'share') return fail('bad-share', `expected a share UDF (starting with S), got a ${p.type} UDF`);
  const header = p.bytes[1];
  if (header === undefined || p.bytes.length < 3) return fail('bad-share', 'a share UDF is too short to hold a value');
  const threshold = header >> 4;
  if (threshold < 2) return fail('bad-share', `share threshold ${threshold} is impossible (2..15); the share was mistyped`);
  return { threshold, x: (header & 15) + 1, value: p.bytes.slice(2) };
}

// ---------------------------------------------------------------- reading what a person typed

/**
 * Upper case with dashes and whitespace removed. Any other character outside A-Z 2-7 is
 * 'bad-udf', naming the character and its 1-based position in the input.
 */
export function normalizeUdf(s: string): string {
  if (typeof s !== 'string') return fail('bad-udf', 'a UDF must be text');
  let out = '';
  let i = 0;
  for (const ch of s) {
    if (ch !== '-' && !/^\s$/u.test(ch)) {
      const u = ch.toUpperCase();
      if (!/^[A-Z2-7]$/.test(u)) {
        const shown = /^[\x21-\x7e]$/.test(ch) ? `'${ch}'` : `U+${(ch.codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, '0')}`;
        return fail(
          'bad-udf',
          `character ${shown} at position ${i + 1} is not allowed in a UDF (only A-Z, 2-7 and dashes)${base32CharHint(ch)}`,
          { position: i + 1, character: ch },
        );
      }
      out += u;
    }
    i++;
  }
  return out;
}

function tooShort(minBits: number, got: number): never {
  const need = Math.ceil(minBits / 20) * 4;
  return fail(
    'udf-too-short',
    `this UDF has ${got} characters; at least ${need} (${Math.ceil(minBits / 20) * 20} bits) are needed to identify anything safely`,
    { need, got },
  );
}

/**
 * Parse a UDF as typed: normalize, identify the type byte, check the length rules. Mistyped
 * (bad character, unknown type byte, impossible length) is 'bad-udf'; a digest or authenticator
 * UDF of fewer than `minBits` bits is 'udf-too-short'.
 */
export function parseUdf(s: string, minBits: number = UDF_MIN_BITS): ParsedUdf {
  const text = normalizeUdf(s);
  if (text.length === 0) return fail('bad-udf', 'a UDF cannot be empty');
  if (text.length < 2) return tooShort(minBits, text.length);
  const typeByte = base32DecodePrefix(text.slice(0, 2))[0] as number;
  const t = typeOfByte(typeByte);
  if (t === undefined) {
    return fail(
      'bad-udf',
      `'${text.slice(0, 2)}' does not begin any kind of UDF (type byte 0x${typeByte.toString(16).padStart(2, '0')}); check the first two characters`,
    );
  }
  if (isCutType(t.type)) {
    const bits = text.length * 5;
    if (text.length > DIGEST_SEQUENCE_CHARS) {
      return fail('bad-udf', `a ${t.type} UDF has at most ${DIGEST_SEQUENCE_CHARS} characters, this one has ${text.length}`);
    }
    if (bits < minBits) return tooShort(minBits, text.length);
    if (text.length % 4 !== 0) {
      return fail(
        'bad-udf',
        `a fingerprint comes in groups of 4 characters; this one has ${text.length}, so a character is missing or extra`,
      );
    }
    return { ...t, text, bits, bytes: base32DecodePrefix(text) };
  }
  const bytes = base32Decode(text, `${t.type} UDF`);
  const minBytes = t.type === 'share' ? 3 : 1 + UDF_MIN_FIXED_BYTES;
  if (bytes.length < minBytes) {
    return fail('bad-udf', `a ${t.type} UDF is never cut, and this one is too short to be whole (${text.length} characters)`);
  }
  return { ...t, text, bits: bytes.length * 8, bytes };
}

/**
 * True when `candidate` (at least `minBits`) is a prefix of `full`, ignoring case and dashes.
 * Fixed-length UDFs (never cut) match only when equal. Compression sits in the type byte, so
 * UDFs made with compression compare correctly as text.
 */
export function udfMatches(candidate: string, full: string, minBits: number = UDF_MIN_BITS): boolean {
  const c = parseUdf(candidate, minBits);
  const f = parseUdf(full, 0);
  if (!isCutType(c.type) || !isCutType(f.type)) return c.text === f.text;
  return f.text.startsWith(c.text);
}
