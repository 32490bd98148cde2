/**
 * The subset of JSON Schema (draft 2020-12 keywords) an application declares on the device:
 * type, properties, required, additionalProperties (boolean), enum, const, minimum, maximum,
 * exclusiveMinimum, exclusiveMaximum, minLength, maxLength, pattern, items, minItems, maxItems.
 * Any other keyword in a shipped schema is refused at start-up rather than silently ignored.
 * A dependency such as ajv would add ~1 MB and ~40 ms of start-up to a $5 board for keywords
 * thermostats do not use.
 */
import { MeshError } from './errors.js';
import type { Json } from './json.js';

const KNOWN = new Set([
  '$schema', '$id', 'title', 'description', 'default', 'examples', 'type', 'properties', 'required', 'additionalProperties',
  'enum', 'const', 'minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum', 'minLength', 'maxLength', 'pattern',
  'items', 'minItems', 'maxItems',
]);

export type Schema = { readonly [k: string]: unknown };

/** Check a schema uses only the supported keywords; throws `schema` naming the first one that is not. */
export function checkSchema(s: unknown, where = 'schema'): Schema {
  if (typeof s !== 'object' || s === null || Array.isArray(s)) throw new MeshError('schema', `${where} must be an object`);
  for (const k of Object.keys(s)) if (!KNOWN.has(k)) throw new MeshError('schema', `${where} uses the unsupported keyword "${k}"`);
  const o = s as Schema;
  if (o.properties !== undefined) {
    for (const [k, v] of Object.entries(o.properties as object)) checkSchema(v, `${where}.properties.${k}`);
  }
  if (o.items !== undefined) checkSchema(o.items, `${where}.items`);
  return o;
}

function typeOf(v: Json): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v;
}

function typeMatches(want: string, got: string): boolean {
  return want === got || (want === 'number' && got === 'integer');
}

/** Validate `v` against `s`. Returns the list of problems, empty when valid. */
export function validate(s: Schema, v: Json, path = ''): string[] {
  const out: string[] = [];
  const at = path === '' ? 'the document' : path;
  const t = typeOf(v);
  if (s.type !== undefined) {
    const types = Array.isArray(s.type) ? (s.type as string[]) : [s.type as string];
    if (!types.some((x) => typeMatches(x, t))) {
      out.push(`${at} must be ${types.join(' or ')}, not ${t}`);
      return out;
    }
  }
  if (s.enum !== undefined && !(s.enum as Json[]).some((e) => JSON.stringify(e) === JSON.stringify(v))) out.push(`${at} must be one of ${JSON.stringify(s.enum)}`);
  if (s.const !== undefined && JSON.stringify(s.const) !== JSON.stringify(v)) out.push(`${at} must be ${JSON.stringify(s.const)}`);
  if (typeof v === 'number') {
    if (typeof s.minimum === 'number' && v < s.minimum) out.push(`${at} is ${v}; the minimum is ${s.minimum}`);
    if (typeof s.maximum === 'number' && v > s.maximum) out.push(`${at} is ${v}; the maximum is ${s.maximum}`);
    if (typeof s.exclusiveMinimum === 'number' && v <= s.exclusiveMinimum) out.push(`${at} must be above ${s.exclusiveMinimum}`);
    if (typeof s.exclusiveMaximum === 'number' && v >= s.exclusiveMaximum) out.push(`${at} must be below ${s.exclusiveMaximum}`);
  }
  if (typeof v === 'string') {
    // JSON Schema counts a string's length in code points, which is what spreading a string gives
    const length = [...v].length; // oxlint-disable-line typescript/no-misused-spread
    if (typeof s.minLength === 'number' && length < s.minLength) out.push(`${at} is shorter than ${s.minLength}`);
    if (typeof s.maxLength === 'number' && length > s.maxLength) out.push(`${at} is longer than ${s.maxLength}`);
    if (typeof s.pattern === 'string' && !new RegExp(s.pattern, 'u').test(v)) out.push(`${at} does not match ${s.pattern}`);
  }
  if (Array.isArray(v)) {
    if (typeof s.minItems === 'number' && v.length < s.minItems) out.push(`${at} has fewer than ${s.minItems} items`);
    if (typeof s.maxItems === 'number' && v.length > s.maxItems) out.push(`${at} has more than ${s.maxItems} items`);
    if (s.items !== undefined) v.forEach((x, i) => out.push(...validate(s.items as Schema, x, `${path}[${i}]`)));
  }
  if (t === 'object') {
    const o = v as { [k: string]: Json };
    const props = (s.properties ?? {}) as Record<string, Schema>;
    // own properties only: "toString", "constructor" or "__proto__" must not find Object.prototype's members
    for (const r of (s.required ?? []) as string[]) if (!Object.hasOwn(o, r)) out.push(`${path === '' ? '' : path + '.'}${r} is required`);
    for (const [k, x] of Object.entries(o)) {
      const p = Object.hasOwn(props, k) ? props[k] : undefined;
      const kp = path === '' ? k : `${path}.${k}`;
      if (p !== undefined) out.push(...validate(p, x, kp));
      else if (s.additionalProperties === false) out.push(`${kp} is not a setting of this application`);
    }
  }
  return out;
}
