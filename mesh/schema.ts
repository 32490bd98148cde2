/**
 * The subset of JSON Schema (draft 2020-12 keywords) an application declares on the device:
 * type, properties, required, additionalProperties (boolean), enum, const, minimum, maximum,
 * exclusiveMinimum, exclusiveMaximum, minLength, maxLength, pattern, items, minItems, maxItems.
 * One keyword of our own: `x-confirm-within` (whole seconds, 1 to 86,400) on a setting (or on the
 * whole schema) says a change to it is only applied on probation: the owner's change must ask the
 * device to confirm it within a window, and the owner's CLI asks for this many seconds when its
 * user gave no --confirm-within (network settings, a portal address: a change that could cut the
 * device off).
 * Any other keyword in a shipped schema is refused at start-up rather than silently ignored.
 * A dependency such as ajv would add ~1 MB and ~40 ms of start-up to a $5 board for keywords
 * thermostats do not use.
 */
import { MeshError } from './errors.js';
import type { Json } from './json.js';
import { utf8 } from './bytes.js';
import { contentUdf } from './udf.js';

const KNOWN = new Set([
  '$schema', '$id', 'title', 'description', 'default', 'examples', 'type', 'properties', 'required', 'additionalProperties',
  'enum', 'const', 'minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum', 'minLength', 'maxLength', 'pattern',
  'items', 'minItems', 'maxItems', 'x-confirm-within',
]);

/** The keyword that makes a setting's changes need a confirmation window (seconds). */
export const CONFIRM_KEYWORD = 'x-confirm-within';
const MAX_CONFIRM_WITHIN_S = 86_400;

export type Schema = { readonly [k: string]: unknown };

/** Check a schema uses only the supported keywords; throws `schema` naming the first one that is not. */
export function checkSchema(s: unknown, where = 'schema'): Schema {
  if (typeof s !== 'object' || s === null || Array.isArray(s)) throw new MeshError('schema', `${where} must be an object`);
  for (const k of Object.keys(s)) if (!KNOWN.has(k)) throw new MeshError('schema', `${where} uses the unsupported keyword "${k}"`);
  const o = s as Schema;
  const cw = o[CONFIRM_KEYWORD];
  if (cw !== undefined && !(typeof cw === 'number' && Number.isInteger(cw) && cw >= 1 && cw <= MAX_CONFIRM_WITHIN_S)) {
    throw new MeshError('schema', `${where}.${CONFIRM_KEYWORD} must be a whole number of seconds from 1 to ${MAX_CONFIRM_WITHIN_S}`);
  }
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

/**
 * The confirmation window a change from `before` to `after` (an application's whole documents)
 * needs by the schema: the largest `x-confirm-within` of the settings whose value differs (or of
 * the schema itself when anything differs); undefined when the change needs none.
 */
export function confirmNeeded(s: Schema, before: Json | undefined, after: Json | undefined): number | undefined {
  const same = (a: Json | undefined, b: Json | undefined): boolean => canonicalJson(a ?? null) === canonicalJson(b ?? null);
  const fields = (v: Json | undefined): Record<string, Json> => (typeof v === 'object' && v !== null && !Array.isArray(v) ? v : {});
  let need: number | undefined;
  const take = (n: unknown): void => {
    if (typeof n === 'number') need = Math.max(need ?? 0, n);
  };
  if (same(before, after)) return undefined;
  take(s[CONFIRM_KEYWORD]);
  const b = fields(before);
  const a = fields(after);
  for (const [k, p] of Object.entries((s.properties ?? {}) as Record<string, Schema>)) {
    const x = Object.hasOwn(b, k) ? b[k] : undefined;
    const y = Object.hasOwn(a, k) ? a[k] : undefined;
    if (!same(x, y)) take(p[CONFIRM_KEYWORD]);
  }
  return need;
}

/** JSON with every object's keys sorted: one text per schema, however its file was laid out. */
export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map((x) => canonicalJson(x)).join(',')}]`;
  if (typeof v === 'object' && v !== null) {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v);
}

/** The content type the fingerprint of a schema is made with. */
export const SCHEMA_CONTENT_TYPE = 'application/schema+json';

/**
 * An application's schema fingerprint, as the device profile lists it: the content UDF (SHA-2,
 * 200 bits) of the schema's canonical JSON (keys sorted, no spaces).
 */
export function schemaFingerprint(schema: unknown): string {
  return contentUdf(utf8(canonicalJson(schema)), SCHEMA_CONTENT_TYPE, { bits: 200 });
}

/**
 * The schemas that came with a device (its sealed claim record, or an invitation; `source` names
 * where they came from otherwise, e.g. the personal profile at recovery), kept only where they
 * match the fingerprints its signed profile declares: `schemas` holds those, `problems` says what
 * was left out and why.
 */
export function declaredSchemas(declared: readonly { readonly name: string; readonly schema: string }[], carried: unknown, source = 'the device'): { schemas: Record<string, Schema>; problems: string[] } {
  const schemas: Record<string, Schema> = {};
  const problems: string[] = [];
  const given = typeof carried === 'object' && carried !== null && !Array.isArray(carried) ? (carried as Record<string, unknown>) : {};
  for (const a of declared) {
    const s = Object.hasOwn(given, a.name) ? given[a.name] : undefined;
    if (s === undefined) {
      problems.push(`the schema of ${a.name} did not come with ${source}`);
      continue;
    }
    if (schemaFingerprint(s) !== a.schema) {
      problems.push(`the schema of ${a.name} that came with ${source} is not the one ${source === 'the device' ? 'its' : "the device's"} signed profile declares (${a.schema})`);
      continue;
    }
    try {
      schemas[a.name] = checkSchema(s, `schema ${a.name}`);
    } catch (e) {
      problems.push((e as Error).message);
    }
  }
  return { schemas, problems };
}
