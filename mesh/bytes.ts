/** Small byte helpers. Everything here is pure. */
import { fail } from './errors.js';

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

export function b64u(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64url');
}

/** Strict base64url decode: rejects padding, other alphabets and non-canonical trailing bits. */
export function fromB64u(s: unknown, field = 'value', expectLen?: number): Uint8Array {
  if (typeof s !== 'string') return fail('malformed', `${field} must be a base64url string`);
  if (!B64URL.test(s) || s.length % 4 === 1) return fail('malformed', `${field} is not base64url`);
  const buf = Buffer.from(s, 'base64url');
  if (buf.toString('base64url') !== s) return fail('malformed', `${field} is not canonical base64url`);
  if (expectLen !== undefined && buf.length !== expectLen) {
    return fail('malformed', `${field} must be ${expectLen} bytes, got ${buf.length}`);
  }
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}

export function hex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
}

export function fromHex(s: string, field = 'hex'): Uint8Array {
  if (!/^(?:[0-9a-fA-F]{2})*$/.test(s)) return fail('malformed', `${field} must be an even number of hex digits`);
  return new Uint8Array(Buffer.from(s, 'hex'));
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
