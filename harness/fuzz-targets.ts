/**
 * Fuzz targets: every parser of external input in mesh/, each with valid seeds (the real examples
 * of harness/protocol-examples.ts), and the generators and mutators that feed them. The property
 * every target must hold: it returns, or throws a MeshError (instanceof) with a known code; never
 * a TypeError, RangeError or any other crash.
 *
 * Used by test/fuzz-core.test.ts (a short run) and reusable by a long-run script:
 *
 *   const x = buildExamples();
 *   for (const t of fuzzTargets(x)) {
 *     for (const v of nastyValues()) assert(check(t, v).failure === undefined);
 *     fc.assert(fc.property(inputFor(t, x), (v) => check(t, v).failure === undefined), { numRuns: 1e6 });
 *   }
 */
import fc from 'fast-check';
import { b64u, fromB64u, utf8 } from '../mesh/bytes.js';
import { MeshError, isMeshErrorCode, type MeshErrorCode } from '../mesh/errors.js';
import { decodeSignedEnvelope, encrypt, parseEncryptedEnvelope, parseManifest, parsePart, parseSealed, parseSignedEnvelope, sign, type SignedEnvelope, type Signer } from '../mesh/envelope.js';
import { parseDeviceKeys, signKeyId } from '../mesh/keys.js';
import {
  parseBundle,
  verify,
  verifyApplicationProfile,
  verifyDeviceProfile,
  verifyEndorsement,
  verifyMasterProfile,
  verifyPersonalProfile,
} from '../mesh/profiles.js';
import {
  parseJoin,
  parseSessionPayload,
  parseStatusPayload,
  verifyClaim,
  verifyJoinPin,
  verifyPortalProfile,
  verifyRemove,
  verifyStatus,
  verifyTreeHead,
} from '../mesh/messages.js';
import { claimCode, openClaimBlob, parseClaimLabel } from '../mesh/claim.js';
import { invitationUri, parseGuestSpec, parseInvitation } from '../mesh/invite.js';
import { parseKeyUdf, parseShareUdf, parseUdf } from '../mesh/udf.js';
import { recoverSecret } from '../mesh/shamir.js';
import * as proto from '../mesh/protocol.js';
import type { Examples } from './protocol-examples.js';

// ---------------------------------------------------------------- the property


/** What a target takes: any JS value (parsed JSON or junk), text, bytes, or text-or-bytes. */
export type InputKind = 'value' | 'string' | 'bytes' | 'text';

export interface FuzzTarget {
  readonly name: string;
  readonly input: InputKind;
  /** valid inputs of that kind (each is accepted by `run`) */
  readonly seeds: readonly unknown[];
  readonly run: (input: unknown) => unknown;
  /**
   * Codes a refusal of this target may carry; anything else is a finding. Undefined: any known
   * code. (A parser that only parses should never say, e.g., `internal`.)
   */
  readonly codes?: readonly MeshErrorCode[];
}

/** What a target did with an input: 'ok', the MeshError code, and a `failure` when the property does not hold. */
export interface Outcome {
  readonly outcome: string;
  readonly failure?: string;
}

export function check(t: FuzzTarget, input: unknown): Outcome {
  try {
    t.run(input);
    return { outcome: 'ok' };
  } catch (e) {
    if (e instanceof MeshError) {
      if (!isMeshErrorCode(e.code)) return { outcome: String(e.code), failure: `${t.name}: unknown code ${String(e.code)}` };
      if (t.codes !== undefined && !t.codes.includes(e.code)) return { outcome: e.code, failure: `${t.name}: unexpected code ${e.code} (${e.message})` };
      return { outcome: e.code };
    }
    const what = e instanceof Error ? `${e.name}: ${e.message}\n${e.stack ?? ''}` : String(e);
    return { outcome: 'crash', failure: `${t.name}: crashed with ${what}` };
  }
}

// ---------------------------------------------------------------- byte and text mutators

export function flipBit(b: Uint8Array, bit: number): Uint8Array {
  if (b.length === 0) return Uint8Array.of(1 << (bit % 8));
  const out = new Uint8Array(b);
  const i = Math.floor(bit / 8) % out.length;
  out[i] = (out[i] as number) ^ (1 << (bit % 8));
  return out;
}
export function truncate(b: Uint8Array, keep: number): Uint8Array {
  return b.slice(0, b.length === 0 ? 0 : keep % b.length);
}
export function insertBytes(b: Uint8Array, at: number, ins: Uint8Array): Uint8Array {
  const i = b.length === 0 ? 0 : at % (b.length + 1);
  const out = new Uint8Array(b.length + ins.length);
  out.set(b.subarray(0, i), 0);
  out.set(ins, i);
  out.set(b.subarray(i), i + ins.length);
  return out;
}
export function deleteBytes(b: Uint8Array, at: number, n: number): Uint8Array {
  if (b.length === 0) return b;
  const i = at % b.length;
  return Uint8Array.from([...b.subarray(0, i), ...b.subarray(Math.min(b.length, i + 1 + (n % 16)))]);
}
export function duplicateBytes(b: Uint8Array, at: number, n: number): Uint8Array {
  if (b.length === 0) return b;
  const i = at % b.length;
  return insertBytes(b, i, b.slice(i, i + 1 + (n % 64)));
}

export type ByteOp = 'flip' | 'truncate' | 'insert' | 'delete' | 'duplicate';
export const BYTE_OPS: readonly ByteOp[] = ['flip', 'truncate', 'insert', 'delete', 'duplicate'];

export function mutateBytes(b: Uint8Array, op: ByteOp, a: number, n: number, ins: Uint8Array): Uint8Array {
  switch (op) {
    case 'flip':
      return flipBit(b, a);
    case 'truncate':
      return truncate(b, a);
    case 'insert':
      return insertBytes(b, a, ins);
    case 'delete':
      return deleteBytes(b, a, n);
    case 'duplicate':
      return duplicateBytes(b, a, n);
  }
}

/** The same operations on text, by UTF-16 code unit (so lone surrogates happen too). */
export function mutateText(s: string, op: ByteOp, a: number, n: number, ins: string): string {
  const len = s.length;
  const i = len === 0 ? 0 : a % len;
  switch (op) {
    case 'flip':
      return len === 0 ? ins : s.slice(0, i) + String.fromCharCode(s.charCodeAt(i) ^ (1 << (n % 16))) + s.slice(i + 1);
    case 'truncate':
      return s.slice(0, i);
    case 'insert':
      return s.slice(0, i) + ins + s.slice(i);
    case 'delete':
      return s.slice(0, i) + s.slice(i + 1 + (n % 16));
    case 'duplicate':
      return s.slice(0, i) + s.slice(i, i + 1 + (n % 64)) + s.slice(i);
  }
}

// ---------------------------------------------------------------- JSON structure mutators

export type Path = readonly (string | number)[];

/** Every path to a node of a JSON value (the root is []). */
export function jsonPaths(v: unknown, at: Path = [], out: Path[] = []): Path[] {
  out.push(at);
  if (Array.isArray(v)) v.forEach((x, i) => jsonPaths(x, [...at, i], out));
  else if (typeof v === 'object' && v !== null) for (const [k, x] of Object.entries(v)) jsonPaths(x, [...at, k], out);
  return out;
}

const clone = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;

function parentOf(root: unknown, path: Path): { parent: Record<string | number, unknown> | unknown[]; key: string | number } | undefined {
  if (path.length === 0) return undefined;
  let p: unknown = root;
  for (const k of path.slice(0, -1)) p = (p as Record<string | number, unknown>)[k];
  return { parent: p as Record<string | number, unknown>, key: path[path.length - 1] as string | number };
}

export type JsonOp = 'delete' | 'duplicate' | 'replace' | 'rename' | 'wrap' | 'add-field';
export const JSON_OPS: readonly JsonOp[] = ['delete', 'duplicate', 'replace', 'rename', 'wrap', 'add-field'];

/**
 * A copy of `v` with one structural change at the path'th node: delete it (a field or an element),
 * duplicate it (an element twice, or a field's value copied into a sibling field), replace it with
 * `junk`, rename a field, wrap it in an array, or add an unknown field beside it.
 */
export function mutateJson(v: unknown, op: JsonOp, pathIndex: number, junk: unknown): unknown {
  const root = clone(v);
  const paths = jsonPaths(root);
  const path = paths[pathIndex % paths.length] as Path;
  const loc = parentOf(root, path);
  if (loc === undefined) {
    // the root itself
    if (op === 'wrap') return [root];
    if (op === 'replace' || op === 'delete') return junk;
    if (typeof root === 'object' && root !== null && !Array.isArray(root)) return { ...root, extra: junk };
    return junk;
  }
  const { parent, key } = loc;
  if (Array.isArray(parent)) {
    const i = key as number;
    if (op === 'delete') parent.splice(i, 1);
    else if (op === 'duplicate') parent.splice(i, 0, clone(parent[i]));
    else if (op === 'wrap') parent[i] = [parent[i]];
    else if (op === 'add-field') parent.push(junk);
    else parent[i] = junk;
    return root;
  }
  const o = parent as Record<string, unknown>;
  const k = key as string;
  switch (op) {
    case 'delete':
      delete o[k];
      break;
    case 'duplicate': {
      const siblings = Object.keys(o).filter((x) => x !== k);
      const target = siblings.length === 0 ? `${k}2` : (siblings[pathIndex % siblings.length] as string);
      o[target] = clone(o[k]);
      break;
    }
    case 'replace':
      o[k] = junk;
      break;
    case 'rename':
      o[k.length > 0 ? k.toUpperCase() + '_' : '_'] = o[k];
      delete o[k];
      break;
    case 'wrap':
      o[k] = [o[k]];
      break;
    case 'add-field':
      o[`${k}x`] = junk;
      break;
  }
  return root;
}

/** JSON text of `v` in which the object at the path'th node carries one key twice: first `junk`, then its own value (JSON.parse keeps the last). */
export function duplicateKeyText(v: unknown, pathIndex: number, junk: unknown, junkLast = false): string {
  const paths = jsonPaths(v).filter((p) => p.length > 0 && !Array.isArray(valueAt(v, p.slice(0, -1))));
  const target = paths.length === 0 ? undefined : paths[pathIndex % paths.length];
  const ser = (x: unknown, at: Path): string => {
    if (Array.isArray(x)) return `[${x.map((y, i) => ser(y, [...at, i])).join(',')}]`;
    if (typeof x === 'object' && x !== null) {
      const parts = Object.entries(x).map(([k, y]) => {
        const own = `${JSON.stringify(k)}:${ser(y, [...at, k])}`;
        const here = target !== undefined && target.length === at.length + 1 && target[at.length] === k && at.every((p, i) => p === target[i]);
        if (!here) return own;
        const dup = `${JSON.stringify(k)}:${JSON.stringify(junk) ?? 'null'}`;
        return junkLast ? `${own},${dup}` : `${dup},${own}`;
      });
      return `{${parts.join(',')}}`;
    }
    return JSON.stringify(x) ?? 'null';
  };
  return ser(v, []);
}

function valueAt(v: unknown, path: Path): unknown {
  let p = v;
  for (const k of path) p = (p as Record<string | number, unknown>)[k];
  return p;
}

// ---------------------------------------------------------------- payload mutation (inside signed envelopes)

const isEnvelope = (v: unknown): v is { payload: string; sigs: { kid: string; key?: string; sig: string }[] } =>
  typeof v === 'object' && v !== null && typeof (v as { payload?: unknown }).payload === 'string' && Array.isArray((v as { sigs?: unknown }).sigs);

/** The signers of the examples by key UDF, so a mutated payload can be signed again by its own signer. */
export function signerIndex(x: Examples): ReadonlyMap<string, Signer> {
  const all: Signer[] = [
    x.keys.master.sign,
    x.keys.admin.sign,
    x.keys.admin2.sign,
    x.keys.joiner.sign,
    x.keys.manufacturer,
    x.keys.portal,
    ...x.devices.flatMap((d) => [d.keys.sign, d.keys.auth]),
  ];
  return new Map(all.map((s) => [signKeyId(s.publicKey), s]));
}

/**
 * A copy of `v` in which the payload of the i'th signed envelope found inside it is changed by
 * `change` (given the decoded JSON payload). With `resign`, the envelope is signed again by the
 * same keys, so the parser gets past the signature to the payload; without, the old signatures stay.
 */
export function mutatePayload(v: unknown, i: number, change: (payload: unknown) => unknown, signers: ReadonlyMap<string, Signer>, resign: boolean): unknown {
  const root = clone(v);
  const envs = jsonPaths(root).filter((p) => isEnvelope(valueAt(root, p)));
  if (envs.length === 0) return root;
  const path = envs[i % envs.length] as Path;
  const env = valueAt(root, path) as { payload: string; sigs: { kid: string; key?: string; sig: string }[] };
  let payload: unknown;
  try {
    payload = JSON.parse(Buffer.from(fromB64u(env.payload)).toString('utf8')) as unknown;
  } catch {
    return root;
  }
  const changed = change(payload);
  const bytes = utf8(typeof changed === 'string' ? changed : (JSON.stringify(changed) ?? 'null'));
  let next: SignedEnvelope = { payload: b64u(bytes), sigs: env.sigs };
  if (resign) {
    const ss = env.sigs.map((s) => signers.get(s.kid)).filter((s): s is Signer => s !== undefined);
    if (ss.length > 0) next = sign(bytes, ss, { includeKey: env.sigs.some((s) => s.key !== undefined) });
  }
  if (path.length === 0) return next;
  const loc = parentOf(root, path) as { parent: Record<string | number, unknown>; key: string | number };
  loc.parent[loc.key] = next;
  return root;
}

// ---------------------------------------------------------------- input generators

/** Values no generator is likely to make, thrown at every target. */
export function nastyValues(): unknown[] {
  let deep: unknown = null;
  for (let i = 0; i < 5000; i++) deep = [deep];
  let deepObj: unknown = {};
  for (let i = 0; i < 5000; i++) deepObj = { payload: deepObj, sigs: [deepObj] };
  const nullProto = Object.create(null) as Record<string, unknown>;
  nullProto.payload = 'AA';
  nullProto.sigs = [];
  return [
    undefined,
    null,
    NaN,
    -0,
    Infinity,
    2 ** 53,
    10n,
    Symbol('s'),
    () => 1,
    new Date(0),
    new Map(),
    new Uint8Array(4),
    deep,
    deepObj,
    nullProto,
    JSON.parse('{"__proto__":{"payload":"AA","sigs":[]},"constructor":{"prototype":{}}}'),
    { toString: () => 'x', valueOf: () => 1, length: 3 },
    Array.from({ length: 1e5 }, () => null),
    { payload: 'A'.repeat(400_000), sigs: [] },
    'x'.repeat(500_000),
    '',
    '\u0000',
    '\ud800',
    '['.repeat(50_000) + ']'.repeat(50_000),
    '{"a":'.repeat(20_000) + '1' + '}'.repeat(20_000),
  ];
}

const junkValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom<unknown>(null, true, false, 0, -1, 1.5, 2 ** 53, '', 'x', [], {}, 'AAAA', 'MAAA-AAAA-AAAA-AAAA-AAAA', '2026-01-01T00:00:00.000Z'),
  fc.jsonValue({ maxDepth: 2 }),
  fc.string({ maxLength: 40 }),
  fc.integer(),
);

/** Text that looks like what the parsers read: base32 and base64url characters, dashes, JSON punctuation. */
const nearText: fc.Arbitrary<string> = fc.oneof(
  fc.string({ unit: fc.constantFrom(...'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567-'.split('')), maxLength: 120 }),
  fc.string({ unit: fc.constantFrom(...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_=+/.@:?'.split('')), maxLength: 120 }),
  fc.string({ unit: 'binary', maxLength: 60 }),
  fc.string({ unit: 'grapheme', maxLength: 60 }),
);

function generated(kind: InputKind): fc.Arbitrary<unknown> {
  const values: fc.Arbitrary<unknown> = fc.oneof(
    fc.anything({ withBigInt: true, withDate: true, withTypedArray: true, withSparseArray: true, withNullPrototype: true, withBoxedValues: true, maxDepth: 4 }),
    fc.json({ maxDepth: 4 }).map((s) => JSON.parse(s) as unknown),
    fc.jsonValue({ maxDepth: 3 }),
  );
  switch (kind) {
    case 'value':
      return values;
    case 'string':
      return fc.oneof({ weight: 8, arbitrary: fc.oneof(nearText, fc.json({ maxDepth: 2 })) }, { weight: 1, arbitrary: values });
    case 'bytes':
      return fc.oneof(fc.uint8Array({ maxLength: 300 }), fc.json({ maxDepth: 3 }).map(utf8), nearText.map(utf8));
    case 'text':
      return fc.oneof(fc.json({ maxDepth: 3 }), nearText, fc.uint8Array({ maxLength: 300 }), fc.json({ maxDepth: 3 }).map(utf8));
  }
}

const asText = (seed: unknown): string => (typeof seed === 'string' ? seed : seed instanceof Uint8Array ? Buffer.from(seed).toString('latin1') : (JSON.stringify(seed) ?? ''));

/** Mutations of a target's valid seeds: bytes and text, JSON structure, and payloads inside signed envelopes (re-signed or not). */
function mutated(t: FuzzTarget, signers: ReadonlyMap<string, Signer>): fc.Arbitrary<unknown> {
  const seed = fc.nat({ max: t.seeds.length - 1 }).map((i) => t.seeds[i]);
  const byteOp = fc.constantFrom(...BYTE_OPS);
  const jsonOp = fc.constantFrom(...JSON_OPS);
  const n = fc.nat();
  const isValue = t.input === 'value';
  const ofKind = (text: string, asBytes: boolean): unknown => {
    if (t.input === 'bytes' || (t.input === 'text' && asBytes)) return utf8(text);
    if (!isValue) return text;
    try {
      return JSON.parse(text) as unknown;
    } catch {
      return text;
    }
  };

  const textual = fc.tuple(seed, byteOp, n, n, nearText, fc.boolean()).map(([s, op, a, b, ins, asBytes]) => {
    if (s instanceof Uint8Array) return mutateBytes(s, op, a, b, utf8(ins));
    return ofKind(mutateText(asText(s), op, a, b, ins), asBytes);
  });
  const rawBytes = fc.tuple(seed, byteOp, n, n, fc.uint8Array({ minLength: 1, maxLength: 8 })).map(([s, op, a, b, ins]) => {
    const bytes = s instanceof Uint8Array ? s : utf8(asText(s));
    const m = mutateBytes(bytes, op, a, b, ins);
    if (t.input === 'bytes' || t.input === 'text') return m;
    const text = Buffer.from(m).toString('utf8');
    return ofKind(text, false);
  });
  const structural = fc.tuple(seed, jsonOp, n, junkValue).map(([s, op, i, junk]) => {
    const v = typeof s === 'string' || s instanceof Uint8Array ? tryParse(s) : s;
    if (v === undefined) return s;
    const m = mutateJson(v, op, i, junk);
    return isValue ? m : ofKind(JSON.stringify(m) ?? 'null', s instanceof Uint8Array);
  });
  const dupKey = fc.tuple(seed, n, junkValue, fc.boolean()).map(([s, i, junk, last]) => {
    const v = typeof s === 'string' || s instanceof Uint8Array ? tryParse(s) : s;
    if (v === undefined) return s;
    return ofKind(duplicateKeyText(v, i, junk, last), s instanceof Uint8Array);
  });
  const payload = fc.tuple(seed, n, jsonOp, n, junkValue, fc.boolean()).map(([s, e, op, i, junk, resign]) => {
    const v = typeof s === 'string' || s instanceof Uint8Array ? tryParse(s) : s;
    if (v === undefined) return s;
    const m = mutatePayload(v, e, (p) => mutateJson(p, op, i, junk), signers, resign);
    return isValue ? m : ofKind(JSON.stringify(m), s instanceof Uint8Array);
  });
  const parts: fc.Arbitrary<unknown>[] = [textual, rawBytes, structural, dupKey];
  if (t.input === 'value' || t.input === 'text') parts.push(payload, payload);
  return fc.oneof(...parts);
}

function tryParse(s: string | Uint8Array): unknown {
  try {
    return JSON.parse(typeof s === 'string' ? s : Buffer.from(s).toString('utf8')) as unknown;
  } catch {
    return undefined;
  }
}

/**
 * The generator for a target: a third generated from nothing, two thirds mutated from its valid
 * seeds. (nastyValues() are slow to make and to refuse: run them once each, not at random.)
 */
export function inputFor(t: FuzzTarget, x: Examples): fc.Arbitrary<unknown> {
  const signers = signerIndex(x);
  return fc.oneof({ weight: 1, arbitrary: generated(t.input) }, { weight: 2, arbitrary: mutated(t, signers) });
}

// ---------------------------------------------------------------- the targets

const text = (e: SignedEnvelope): string => JSON.stringify(e);

/** Every parser of external input in mesh/, with valid seeds from the examples. */
export function fuzzTargets(x: Examples): FuzzTarget[] {
  const w = x.wire;
  const [d0, d1] = x.devices as [Examples['devices'][number], Examples['devices'][number]];
  const master = verifyMasterProfile(x.master, x.masterId);
  const masterV2 = verifyMasterProfile(x.masterV2, x.masterId);
  const envelopes = [x.master, x.masterV2, x.personal, x.application, x.claim, x.remove, x.status, x.session, x.ownerSession, x.portalProfile, x.join, x.log.treeHead, d0.profile, d0.endorsement];
  const bundles = [{ master: x.master }, { master: x.master, object: x.personal }, { master: x.master, object: x.application }, { master: x.masterV2, object: x.application }];
  const appPayload = JSON.parse(Buffer.from(fromB64u(x.application.payload)).toString('utf8')) as { sealed: unknown; parts: unknown };
  // the form before parts, still read: an encrypted envelope with a wrapped key per recipient
  const v1Config = JSON.parse(JSON.stringify(encrypt(utf8('{"setpoint":21}'), [{ publicKey: d0.keys.enc.publicKey }, { publicKey: d1.keys.enc.publicKey }]))) as unknown;
  // what the portal serves device 0: the signed envelope with its own part
  const servedToD0 = { payload: x.application.payload, sigs: x.application.sigs, parts: (x.application.parts ?? []).filter((q) => q.device === d0.id) };
  const p = <T>(name: string, parse: (v: unknown) => T, ...seeds: unknown[]): FuzzTarget => ({ name, input: 'value', seeds, run: parse });
  const PARSE_ONLY: readonly MeshErrorCode[] = ['malformed', 'too-large'];

  return [
    // identifiers and labels
    { name: 'parseUdf', input: 'string', seeds: [d0.id, x.masterId, d0.fingerprint, claimCode(d0.claimSecret), ...x.escrowShares], run: (v) => parseUdf(v as string), codes: ['bad-udf', 'udf-too-short'] },
    { name: 'parseKeyUdf', input: 'string', seeds: [claimCode(d0.claimSecret)], run: (v) => parseKeyUdf(v as string), codes: ['bad-udf', 'udf-too-short'] },
    { name: 'parseShareUdf', input: 'string', seeds: [...x.escrowShares], run: (v) => parseShareUdf(v as string), codes: ['bad-share', 'bad-udf'] },
    { name: 'recoverSecret', input: 'value', seeds: [x.escrowShares.slice(0, 2), [...x.escrowShares]], run: (v) => recoverSecret(v as string[]) },
    { name: 'parseInvitation', input: 'string', seeds: [invitationUri({ portal: 'portal.example', secret: d0.claimSecret, fingerprint: d0.id })], run: (v) => parseInvitation(v as string), codes: ['malformed', 'too-large', 'bad-udf', 'udf-too-short'] },
    { name: 'parseGuestSpec', input: 'string', seeds: ['thermostat:setpoint=16..24,mode', 'lights'], run: (v) => parseGuestSpec(v as string), codes: ['usage'] },
    { name: 'parseClaimLabel', input: 'string', seeds: [d0.labelUri, `mcu://acme@portal.example/${claimCode(d0.claimSecret)}?fp=${d0.fingerprint}`, `${claimCode(d0.claimSecret)} ${d0.fingerprint}`], run: (v) => parseClaimLabel(v as string), codes: ['malformed', 'too-large', 'bad-udf', 'udf-too-short'] },
    { name: 'openClaimBlob', input: 'value', seeds: [x.claimBlob], run: (v) => openClaimBlob(d0.secrets, v), codes: ['malformed', 'too-large', 'decrypt-failed'] },
    { name: 'parseDeviceKeys', input: 'text', seeds: [JSON.stringify({ sign: b64u(d0.keys.sign.privateKey), enc: b64u(d0.keys.enc.privateKey), auth: b64u(d0.keys.auth.privateKey) })], run: (v) => parseDeviceKeys(v as string), codes: PARSE_ONLY },

    // envelopes
    { ...p('parseSignedEnvelope', (v) => parseSignedEnvelope(v), ...envelopes), codes: PARSE_ONLY },
    { name: 'decodeSignedEnvelope', input: 'text', seeds: [...envelopes.map(text), utf8(text(x.application))], run: (v) => decodeSignedEnvelope(v as string), codes: PARSE_ONLY },
    { ...p('parseEncryptedEnvelope', (v) => parseEncryptedEnvelope(v), v1Config), codes: PARSE_ONLY },
    { ...p('parseSealed', (v) => parseSealed(v), appPayload.sealed), codes: PARSE_ONLY },
    { ...p('parseManifest', (v) => parseManifest(v), appPayload.parts), codes: PARSE_ONLY },
    { ...p('parsePart', (v) => parsePart(v), ...(x.application.parts ?? [])), codes: PARSE_ONLY },

    // profiles
    p('verifyDeviceProfile', (v) => verifyDeviceProfile(v), d0.profile, d1.profile),
    p('verifyDeviceProfile(expected id)', (v) => verifyDeviceProfile(v, d0.id), d0.profile),
    { ...p('verifyEndorsement', (v) => verifyEndorsement(v, d0.id), d0.endorsement), codes: ['endorsement-invalid'] },
    p('verifyMasterProfile', (v) => verifyMasterProfile(v, x.masterId), x.master, x.masterV2),
    p('verifyPersonalProfile', (v) => verifyPersonalProfile(v, master), x.personal),
    p('verifyApplicationProfile', (v) => verifyApplicationProfile(v, masterV2), x.application, servedToD0),
    { ...p('parseBundle', (v) => parseBundle(v), ...bundles), codes: PARSE_ONLY },
    p('verify (the one function, with a target device)', (v) => verify(x.masterId, v, { device: { id: d0.id, enc: d0.keys.enc } }), ...bundles, { master: x.masterV2, object: servedToD0 }),

    // messages
    { name: 'parseStatusPayload', input: 'bytes', seeds: [fromB64u(x.status.payload)], run: (v) => parseStatusPayload(v as Uint8Array), codes: ['malformed', 'too-large', 'wrong-type'] },
    p('verifyStatus', (v) => verifyStatus(v, d0.keys.sign.publicKey), x.status),
    p('verifyClaim (portal proof)', (v) => verifyClaim(v, master, { key: d0.secrets.portalKey, which: 'portal' }), x.claim),
    p('verifyClaim (device proof)', (v) => verifyClaim(v, master, { key: d0.secrets.deviceKey, which: 'device' }), x.claim),
    p('verifyRemove', (v) => verifyRemove(v, master), x.remove),
    p('parseSessionPayload', (v) => parseSessionPayload(parseSignedEnvelope(v)), x.session, x.ownerSession),
    p('verifyTreeHead', (v) => verifyTreeHead(v, x.keys.portal.publicKey), x.log.treeHead),
    p('verifyPortalProfile', (v) => verifyPortalProfile(v, x.portalId), x.portalProfile),
    p('parseJoin', (v) => parseJoin(v), x.join),
    p('parseJoin + verifyJoinPin', (v) => verifyJoinPin(parseJoin(v), x.pin), x.join),

    // the protocol (mesh/protocol.ts)
    { ...p('parseHelloResponse', proto.parseHelloResponse, w.helloResponse), codes: PARSE_ONLY },
    { ...p('parseChallengeResponse', proto.parseChallengeResponse, w.challengeResponse), codes: PARSE_ONLY },
    { ...p('parseSessionRequest', proto.parseSessionRequest, w.sessionRequest, w.ownerSessionRequest), codes: PARSE_ONLY },
    { ...p('parseSessionResponse', proto.parseSessionResponse, w.sessionResponse, w.ownerSessionResponse, w.registerResponse), codes: PARSE_ONLY },
    { ...p('parseRegisterRequest', proto.parseRegisterRequest, w.registerRequest), codes: PARSE_ONLY },
    { ...p('parseBindAccountRequest', proto.parseBindAccountRequest, w.bindAccountRequest), codes: PARSE_ONLY },
    { ...p('parseBindAccountResponse', proto.parseBindAccountResponse, w.bindAccountResponse), codes: PARSE_ONLY },
    { ...p('parsePublishRequest', proto.parsePublishRequest, w.publishRequest), codes: PARSE_ONLY },
    { ...p('parseLogReceipt', (v) => proto.parseLogReceipt(v, 'Publish'), w.publishResponse, w.claimResponse, w.postResponse), codes: PARSE_ONLY },
    { ...p('parseAccountResponse', proto.parseAccountResponse, w.accountResponse), codes: PARSE_ONLY },
    { ...p('parseJoinRequest', proto.parseJoinRequest, w.joinRequest), codes: PARSE_ONLY },
    { ...p('parseDownloadResponse', proto.parseDownloadResponse, w.downloadResponse, w.downloadUnchangedResponse), codes: PARSE_ONLY },
    { ...p('parseFeedItem', (v) => proto.parseFeedItem(v), ...(w.downloadResponse as { items: unknown[] }).items), codes: PARSE_ONLY },
    { ...p('parseClaimLookupResponse', proto.parseClaimLookupResponse, w.claimLookupResponse), codes: PARSE_ONLY },
    { ...p('parseClaimRequest', proto.parseClaimRequest, w.claimRequest), codes: PARSE_ONLY },
    { ...p('parsePostRequest', proto.parsePostRequest, w.postRequest), codes: PARSE_ONLY },
    { ...p('parseStatusRequest', proto.parseStatusRequest, w.statusRequest), codes: PARSE_ONLY },
    { ...p('parseDeviceStatusResponse', proto.parseDeviceStatusResponse, w.deviceStatusResponse), codes: PARSE_ONLY },
    { ...p('parseTreeHeadResponse', proto.parseTreeHeadResponse, w.treeHeadResponse), codes: PARSE_ONLY },
    { ...p('parseInclusionResponse', proto.parseInclusionResponse, w.inclusionResponse), codes: PARSE_ONLY },
    { ...p('parseConsistencyResponse', proto.parseConsistencyResponse, w.consistencyResponse), codes: PARSE_ONLY },
    { ...p('parseEntryResponse', proto.parseEntryResponse, w.entryResponse), codes: PARSE_ONLY },
  ];
}

/** The parse* functions of mesh/protocol.ts, so a test can check the table leaves none out. */
export function protocolParsers(): string[] {
  return Object.keys(proto).filter((k) => /^parse.*(Request|Response|Receipt|FeedItem)$/.test(k));
}

