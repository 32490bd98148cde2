/**
 * The boundary: untrusted JSON becomes typed only through these checks.
 * Every parser has a size limit and rejects unknown fields, wrong types and trailing garbage.
 */
import { fail } from './errors.js';
import { fromUtf8, utf8Length } from './bytes.js';

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
export type Obj = Record<string, unknown>;

/** Parse JSON text or UTF-8 bytes, refusing more than `maxBytes`. JSON.parse already refuses trailing garbage. */
export function parseJson(input: string | Uint8Array, maxBytes: number, what = 'document'): unknown {
  if (typeof input !== 'string' && !(input instanceof Uint8Array)) return fail('malformed', `${what} must be JSON text or its UTF-8 bytes`);
  const size = typeof input === 'string' ? utf8Length(input) : input.length;
  if (size > maxBytes) fail('too-large', `${what} is ${size} bytes; the limit is ${maxBytes}`, { size, limit: maxBytes });
  const text = typeof input === 'string' ? input : fromUtf8(input, what);
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    return fail('malformed', `${what} is not valid JSON: ${(e as Error).message}`);
  }
}

/** An object with exactly the `required` keys and any of the `optional` ones; nothing else. */
export function obj(v: unknown, what: string, required: readonly string[], optional: readonly string[] = []): Obj {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail('malformed', `${what} must be a JSON object`);
  const o = v as Obj;
  for (const k of Object.keys(o)) {
    if (!required.includes(k) && !optional.includes(k)) fail('malformed', `${what} has an unknown field "${k}"`, { field: k });
  }
  for (const k of required) {
    if (!(k in o)) fail('malformed', `${what} lacks the field "${k}"`, { field: k });
  }
  return o;
}

export function str(o: Obj, k: string, what: string, max = 256, pattern?: RegExp): string {
  const v = o[k];
  if (typeof v !== 'string') return fail('malformed', `${what}.${k} must be a string`);
  if (v.length > max) return fail('malformed', `${what}.${k} is longer than ${max} characters`);
  if (pattern !== undefined && !pattern.test(v)) return fail('malformed', `${what}.${k} has the wrong form`);
  return v;
}

export function optStr(o: Obj, k: string, what: string, max = 256, pattern?: RegExp): string | undefined {
  return o[k] === undefined ? undefined : str(o, k, what, max, pattern);
}

export function int(o: Obj, k: string, what: string, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  const v = o[k];
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) return fail('malformed', `${what}.${k} must be an integer`);
  if (v < min || v > max) return fail('malformed', `${what}.${k} must be between ${min} and ${max}`);
  return v;
}

export function arr(o: Obj, k: string, what: string, maxItems: number): unknown[] {
  const v = o[k];
  if (!Array.isArray(v)) return fail('malformed', `${what}.${k} must be an array`);
  if (v.length > maxItems) return fail('too-large', `${what}.${k} has more than ${maxItems} items`);
  return v;
}

export function bool(o: Obj, k: string, what: string): boolean {
  const v = o[k];
  if (typeof v !== 'boolean') return fail('malformed', `${what}.${k} must be true or false`);
  return v;
}

/** ISO 8601 UTC timestamps as written by Date.prototype.toISOString. */
export const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

export function time(o: Obj, k: string, what: string): string {
  const s = str(o, k, what, 24, ISO_TIME);
  if (Number.isNaN(Date.parse(s))) fail('malformed', `${what}.${k} is not a valid time`);
  return s;
}

/** Depth- and size-bounded check that a value is plain JSON data (for configuration documents). */
export function checkJsonValue(v: unknown, what: string, depth = 0): Json {
  if (depth > 16) return fail('malformed', `${what} is nested too deeply`);
  if (v === null || typeof v === 'boolean' || typeof v === 'string') return v;
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) fail('malformed', `${what} has a non-finite number`);
    return v;
  }
  if (Array.isArray(v)) return v.map((x, i) => checkJsonValue(x, `${what}[${i}]`, depth + 1));
  if (typeof v === 'object') {
    const out: { [k: string]: Json } = {};
    // defined, not assigned: a key named "__proto__" must stay an ordinary key (assignment would set the copy's prototype)
    for (const [k, x] of Object.entries(v as Obj)) Object.defineProperty(out, k, { value: checkJsonValue(x, `${what}.${k}`, depth + 1), enumerable: true, writable: true, configurable: true });
    return out;
  }
  return fail('malformed', `${what} is not JSON data`);
}
