/**
 * Small byte helpers. Everything here is pure. Node's Buffer does base64url and hex where it
 * exists (fast); the browser (the owner app) gets the same results from the plain code below.
 */
import { fail } from './errors.js';

type NodeBuffer = { from(a: ArrayBufferLike | string, o?: number | string, l?: number): Uint8Array & { toString(e: string): string }; byteLength(s: string, e: string): number };
const NB = (globalThis as { Buffer?: NodeBuffer }).Buffer;
const enc = new TextEncoder();
const dec = new TextDecoder('utf-8', { fatal: true });

export function utf8(s: string): Uint8Array {
  return enc.encode(s);
}

export function fromUtf8(b: Uint8Array, field = 'text'): string {
  try {
    return dec.decode(b);
  } catch {
    return fail('malformed', `${field} is not valid UTF-8`);
  }
}

/** The UTF-8 length of a string in bytes (as it will be sent). */
export function utf8Length(s: string): number {
  return NB !== undefined ? NB.byteLength(s, 'utf8') : enc.encode(s).length;
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

const B64URL = /^[A-Za-z0-9_-]*$/;

const ALPHA = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const ALPHA_INDEX = new Map(ALPHA.split('').map((ch, i) => [ch, i]));

export function b64u(b: Uint8Array): string {
  if (NB !== undefined) return NB.from(b.buffer, b.byteOffset, b.byteLength).toString('base64url');
  let out = '';
  for (let i = 0; i < b.length; i += 3) {
    const n = ((b[i] as number) << 16) | ((b[i + 1] ?? 0) << 8) | (b[i + 2] ?? 0);
    out += (ALPHA[(n >> 18) & 63] as string) + (ALPHA[(n >> 12) & 63] as string);
    if (i + 1 < b.length) out += ALPHA[(n >> 6) & 63] as string;
    if (i + 2 < b.length) out += ALPHA[n & 63] as string;
  }
  return out;
}

/** base64url (or, with `std`, base64 with its padding) to bytes, lenient: callers check it round-trips. */
function decodeB64(s: string): Uint8Array {
  if (NB !== undefined) {
    const buf = NB.from(s, 'base64url');
    return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  }
  const out = new Uint8Array(Math.floor((s.length * 3) / 4));
  let o = 0;
  let acc = 0;
  let bits = 0;
  for (const ch of s) {
    acc = (acc << 6) | (ALPHA_INDEX.get(ch) ?? 0);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (acc >> bits) & 255;
    }
  }
  return out.subarray(0, o);
}

/** Strict base64url decode: rejects padding, other alphabets and non-canonical trailing bits. */
export function fromB64u(s: unknown, field = 'value', expectLen?: number): Uint8Array {
  if (typeof s !== 'string') return fail('malformed', `${field} must be a base64url string`);
  if (!B64URL.test(s) || s.length % 4 === 1) return fail('malformed', `${field} is not base64url`);
  const buf = decodeB64(s);
  if (b64u(buf) !== s) return fail('malformed', `${field} is not canonical base64url`);
  if (expectLen !== undefined && buf.length !== expectLen) {
    return fail('malformed', `${field} must be ${expectLen} bytes, got ${buf.length}`);
  }
  return buf;
}

export function hex(b: Uint8Array): string {
  if (NB !== undefined) return NB.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
  let out = '';
  for (const x of b) out += x.toString(16).padStart(2, '0');
  return out;
}

export function fromHex(s: string, field = 'hex'): Uint8Array {
  if (!/^(?:[0-9a-fA-F]{2})*$/.test(s)) return fail('malformed', `${field} must be an even number of hex digits`);
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(s.slice(2 * i, 2 * i + 2), 16);
  return out;
}

export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= (a[i] as number) ^ (b[i] as number);
  return d === 0;
}

export function u64be(n: number): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, BigInt(n));
  return out;
}
