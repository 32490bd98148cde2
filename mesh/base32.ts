/**
 * RFC 4648 §6 Base32 (alphabet A-Z 2-7), without padding: the text form of every UDF (udf.md,
 * "Binary data sequence and presentation"). Pure functions.
 *
 * Decoding is strict: input is case-insensitive, but any character outside the alphabet
 * (a dash, a space, '=', '0', '1', '8', '9', ...) is refused with MeshError 'bad-udf' naming the
 * character and its 1-based position. Callers that accept dashed presentations strip the dashes
 * first (udf.ts `normalizeUdf`).
 */
import { fail } from './errors.js';

export const BASE32_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

/** Value 0..31 of an upper- or lower-case alphabet character, or -1. */
function charValue(code: number): number {
  if (code >= 65 && code <= 90) return code - 65; // A-Z
  if (code >= 97 && code <= 122) return code - 97; // a-z
  if (code >= 50 && code <= 55) return code - 24; // 2-7 -> 26..31
  return -1;
}

/** Why a character is refused, with the likely intended letter for the usual confusions. */
export function base32CharHint(ch: string): string {
  switch (ch) {
    case '0':
      return ' (Base32 has no 0: did you mean the letter O?)';
    case '1':
      return ' (Base32 has no 1: did you mean the letter I or L?)';
    case '8':
      return ' (Base32 has no 8: did you mean the letter B?)';
    case '9':
      return ' (Base32 has no 9)';
    default:
      return '';
  }
}

function badChar(s: string, i: number, what: string): never {
  const cp = s.codePointAt(i) ?? 0;
  const ch = String.fromCodePoint(cp);
  const shown = /^[\x21-\x7e]$/.test(ch) ? `'${ch}'` : `U+${cp.toString(16).toUpperCase().padStart(4, '0')}`;
  return fail(
    'bad-udf',
    `${what}: character ${shown} at position ${i + 1} is not Base32 (only A-Z and 2-7 are used)${base32CharHint(ch)}`,
    { position: i + 1, character: ch },
  );
}

/** Number of Base32 characters that carry `bits` bits: ceil(bits / 5). */
export function base32Chars(bits: number): number {
  return Math.ceil(bits / 5);
}

/**
 * Encode bytes; `chars` (default: all, ceil(8n/5)) keeps only the first characters, which is how
 * a UDF is cut to a precision (udf.md: "the first ceil(bits / 5) Base32 characters").
 */
export function base32Encode(bytes: Uint8Array, chars?: number): string {
  const total = base32Chars(bytes.length * 8);
  const n = chars === undefined ? total : chars;
  if (!Number.isInteger(n) || n < 0 || n > total) {
    return fail('malformed', `cannot take ${String(chars)} Base32 characters from ${bytes.length} bytes`);
  }
  let out = '';
  let acc = 0;
  let accBits = 0;
  let i = 0;
  while (out.length < n) {
    if (accBits < 5) {
      // append the next byte, or zero bits past the end (the unpadded final character)
      acc = ((acc << 8) | (i < bytes.length ? (bytes[i] as number) : 0)) & 0xffff;
      i++;
      accBits += 8;
    }
    accBits -= 5;
    out += BASE32_ALPHABET[(acc >> accBits) & 31];
  }
  return out;
}

/** Check every character and return the 5-bit values. */
function values(s: string, what: string): number[] {
  const v: number[] = [];
  for (let i = 0; i < s.length; i++) {
    const x = charValue(s.charCodeAt(i));
    if (x < 0) badChar(s, i, what);
    v[i] = x;
  }
  return v;
}

function unpack(v: number[], nBytes: number): Uint8Array {
  const out = new Uint8Array(nBytes);
  let acc = 0;
  let accBits = 0;
  let o = 0;
  for (const x of v) {
    if (o >= nBytes) break;
    acc = ((acc << 5) | x) & 0xffff;
    accBits += 5;
    if (accBits >= 8) {
      accBits -= 8;
      out[o++] = (acc >> accBits) & 0xff;
    }
  }
  return out;
}

/**
 * Whole bytes carried by a prefix of an encoding (any length): floor(5 * length / 8) bytes.
 * Bits of a final partial byte are dropped: a UDF cut to a precision ends mid-byte.
 */
export function base32DecodePrefix(s: string, what = 'UDF'): Uint8Array {
  const v = values(s, what);
  return unpack(v, Math.floor((v.length * 5) / 8));
}

/**
 * Strict decode of a complete unpadded encoding: the length must be one an encoding of whole
 * bytes can have (not 1, 3 or 6 modulo 8) and the unused low bits of the last character must be
 * zero, so each byte string has exactly one accepted text (a changed last character is refused,
 * not silently read as other bytes).
 */
export function base32Decode(s: string, what = 'Base32 value'): Uint8Array {
  const v = values(s, what);
  const r = v.length % 8;
  if (r === 1 || r === 3 || r === 6) {
    return fail('bad-udf', `${what}: ${v.length} Base32 characters cannot encode whole bytes; a character is missing or extra`);
  }
  const nBytes = Math.floor((v.length * 5) / 8);
  const spare = v.length * 5 - nBytes * 8; // 0..4 unused low bits in the last character
  if (spare > 0 && ((v[v.length - 1] as number) & ((1 << spare) - 1)) !== 0) {
    return fail('bad-udf', `${what}: the last character '${s[s.length - 1] ?? ''}' is not possible here; it was probably mistyped`);
  }
  return unpack(v, nBytes);
}
