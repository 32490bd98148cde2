/**
 * Witnesses' cosignatures on the log's checkpoints (C2SP tlog-cosignature, Ed25519 type, v1) and
 * the witness protocol's add-checkpoint request (C2SP tlog-witness).
 *
 * A cosignature is a signed-note signature line on the checkpoint:
 *
 *     — <witness name> base64(key ID || u64 big-endian timestamp || Ed25519 signature)
 *
 * key ID = SHA-256(name || 0x0A || 0x04 || 32-byte public key)[:4]; the signed message is
 *
 *     cosignature/v1\n
 *     time <timestamp>\n
 *     <the checkpoint's note text: origin, size, root (and any extension lines)>
 *
 * A witness key is written as a signed-note verifier key (vkey):
 * `<name>+<8 hex digits of key ID>+<base64(0x04 || public key)>`; a log's key likewise with 0x01.
 *
 * add-checkpoint (POST <witness>/add-checkpoint):
 *
 *     old <size the witness cosigned last>\n
 *     <consistency proof from it, one base64 hash a line>\n
 *     \n
 *     <the checkpoint, with the log's signature>
 *
 * answered 200 with the cosignature lines, 409 (text/x.tlog.size) with the size it holds when
 * `old` is not that, 422 when the proof does not verify, 403 when the log's signature does not,
 * 404 for a log it does not witness.
 */
import * as c from './crypto.js';
import { fromUtf8, utf8 } from './bytes.js';
import { parseSignedNote, typedKeyId, type NoteSignature } from './checkpoint.js';

export { typedKeyId };
import { fail } from './errors.js';

export const COSIGNATURE_TYPE = 0x04;
export const NOTE_ED25519_TYPE = 0x01;
const EM_DASH = '\u2014';

export interface NoteKey {
  readonly name: string;
  readonly publicKey: Uint8Array;
}

const hex = (b: Uint8Array): string => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64');

/** A signed-note verifier key: `<name>+<hex key ID>+<base64(type || key)>`. */
export function formatVkey(key: NoteKey, type = COSIGNATURE_TYPE): string {
  const body = new Uint8Array(33);
  body[0] = type;
  body.set(key.publicKey, 1);
  return `${key.name}+${hex(typedKeyId(key.name, type, key.publicKey))}+${b64(body)}`;
}

/** Read a verifier key of the given signature type (0x04 a witness's, 0x01 a log's); its key ID must match. */
export function parseVkey(v: string, type = COSIGNATURE_TYPE): NoteKey {
  if (typeof v !== 'string' || v.length > 400) return fail('malformed', 'a verifier key is text of at most 400 characters');
  const m = /^([\x21-\x2a\x2c-\x7e]+)\+([0-9a-f]{8})\+([A-Za-z0-9+/]+={0,2})$/.exec(v);
  if (m === null) return fail('malformed', `"${v.slice(0, 80)}" is not a verifier key (NAME+KEYID+BASE64)`);
  const body = Buffer.from(m[3] as string, 'base64');
  if (body.length !== 33 || body[0] !== type) fail('bad-key', `the verifier key of ${m[1]} is not an Ed25519 key of type 0x0${type} (${type === COSIGNATURE_TYPE ? 'a cosignature key' : 'a note signing key'})`);
  const key = { name: m[1] as string, publicKey: new Uint8Array(body.subarray(1)) };
  if (hex(typedKeyId(key.name, type, key.publicKey)) !== m[2]) fail('bad-key', `the key ID in the verifier key of ${key.name} does not match its key`);
  return key;
}

/** The message a v1 cosignature signs. `text` is the checkpoint's note text (with its final newline). */
export function cosignedMessage(text: string, timestamp: number): Uint8Array {
  return utf8(`cosignature/v1\ntime ${timestamp}\n${text}`);
}

/** A witness's cosignature line (ending in a newline) on the checkpoint whose note text is `text`. */
export function cosign(text: string, witness: { readonly name: string; readonly key: c.KeyPair }, timestamp: number): string {
  if (!Number.isSafeInteger(timestamp) || timestamp < 0) fail('malformed', 'a cosignature timestamp is a non-negative integer');
  const sig = c.ed25519Sign(witness.key.privateKey, cosignedMessage(text, timestamp));
  const blob = new Uint8Array(4 + 8 + 64);
  blob.set(typedKeyId(witness.name, COSIGNATURE_TYPE, witness.key.publicKey), 0);
  new DataView(blob.buffer).setBigUint64(4, BigInt(timestamp), false);
  blob.set(sig, 12);
  return `${EM_DASH} ${witness.name} ${b64(blob)}\n`;
}

/** The timestamp of a valid cosignature by `witness` among `sigs` over `text`, or undefined. */
function cosignedBy(text: string, sigs: readonly NoteSignature[], witness: NoteKey): number | undefined {
  const id = typedKeyId(witness.name, COSIGNATURE_TYPE, witness.publicKey);
  for (const s of sigs) {
    if (s.name !== witness.name || !c.timingSafeEqual(s.keyId, id) || s.sig.length !== 72) continue;
    const ts = new DataView(s.sig.buffer, s.sig.byteOffset, 8).getBigUint64(0, false);
    if (ts > BigInt(Number.MAX_SAFE_INTEGER)) continue;
    if (c.ed25519Verify(witness.publicKey, cosignedMessage(text, Number(ts)), s.sig.subarray(8))) return Number(ts);
  }
  return undefined;
}

/** Which of `witnesses` cosigned the checkpoint `note` (their names). Signatures by other keys are ignored. */
export function cosigners(note: string, witnesses: readonly NoteKey[]): string[] {
  const { text, sigs } = parseSignedNote(note);
  return witnesses.filter((w) => cosignedBy(text, sigs, w) !== undefined).map((w) => w.name);
}

/**
 * The checkpoint must carry valid cosignatures of at least `quorum` of `witnesses`
 * (`not-witnessed`). Returns the names of those that cosigned.
 */
export function requireCosignatures(note: string, witnesses: readonly NoteKey[], quorum: number): string[] {
  if (quorum <= 0) return [];
  const names = cosigners(note, witnesses);
  if (names.length < quorum) fail('not-witnessed', `the log head carries cosignatures of ${names.length} of the witnesses listed (${witnesses.map((w) => w.name).join(', ') || 'none'}), fewer than the quorum of ${quorum}`, { cosigned: names, quorum });
  return names;
}

/** The note with `lines` (signature lines, each ending in a newline) added after its signatures, once each. */
export function addSignatures(note: string, lines: string): string {
  const have = new Set(note.split('\n'));
  const add = lines.split('\n').filter((l) => l.startsWith(`${EM_DASH} `) && !have.has(l));
  return add.length === 0 ? note : `${note}${add.join('\n')}\n`;
}

// ---------------------------------------------------------------- tlog-witness add-checkpoint

export interface AddCheckpoint {
  readonly old: number;
  readonly proof: Uint8Array[];
  readonly note: string;
}

export function formatAddCheckpoint(r: AddCheckpoint): string {
  return `old ${r.old}\n${r.proof.map((h) => `${b64(h)}\n`).join('')}\n${r.note}`;
}

export function parseAddCheckpoint(body: Uint8Array | string): AddCheckpoint {
  const t = typeof body === 'string' ? body : fromUtf8(body, 'add-checkpoint body');
  if (t.length > 32 * 1024) fail('too-large', 'an add-checkpoint body is at most 32 KiB');
  const blank = t.indexOf('\n\n');
  if (blank < 0) fail('malformed', 'an add-checkpoint body is an old size line, proof lines, a blank line and a checkpoint');
  const lines = t.slice(0, blank).split('\n');
  const m = /^old (0|[1-9][0-9]{0,15})$/.exec(lines[0] ?? '');
  if (m === null) fail('malformed', 'the first line is "old <size>", a decimal without leading zeroes');
  const proofLines = lines.slice(1);
  if (proofLines.length > 63) fail('malformed', 'at most 63 consistency proof lines');
  const proof = proofLines.map((l, i) => {
    const h = Buffer.from(l, 'base64');
    if (h.length !== 32 || h.toString('base64') !== l) fail('malformed', `proof line ${i + 1} is not a base64 32-byte hash`);
    return new Uint8Array(h);
  });
  return { old: Number(m[1]), proof, note: t.slice(blank + 2) };
}
