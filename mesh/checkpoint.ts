/**
 * The log's head as a standard transparency-log checkpoint (C2SP tlog-checkpoint, a C2SP
 * signed-note), so that tools written for other transparency logs read and check it:
 *
 *     <origin>\n<tree size>\n<base64 RFC 6962 root>\n
 *     \n
 *     — <key name> base64(key ID || Ed25519 signature over the note text)\n
 *
 * key ID = SHA-256(key name || 0x0A || 0x01 || 32-byte Ed25519 public key)[:4] (the signed-note
 * recommendation for Ed25519, signature type 0x01). The portal's key name is its origin,
 * `<portal name>/mmm-log`. Base64 here is the standard alphabet with padding (RFC 4648 §4).
 */
import * as c from './crypto.js';
import { fail } from './errors.js';

const EM_DASH = '\u2014';
const ED25519_TYPE = 0x01;
const MAX_NOTE_BYTES = 16 * 1024;

export interface Checkpoint {
  readonly origin: string;
  readonly size: number;
  readonly root: Uint8Array;
}

export function logOrigin(portalName: string): string {
  return `${portalName}/mmm-log`;
}

/** SHA-256(name || 0x0A || type || public key)[:4]: a signed-note key ID (type 0x01 a note's Ed25519 key, 0x04 a cosigner's) */
export function typedKeyId(name: string, type: number, publicKey: Uint8Array): Uint8Array {
  const nameBytes = new TextEncoder().encode(name);
  const input = new Uint8Array(nameBytes.length + 2 + publicKey.length);
  input.set(nameBytes, 0);
  input[nameBytes.length] = 0x0a;
  input[nameBytes.length + 1] = type;
  input.set(publicKey, nameBytes.length + 2);
  return c.sha256(input).subarray(0, 4);
}

/** SHA-256(name || 0x0A || 0x01 || public key)[:4] */
export function noteKeyId(name: string, publicKey: Uint8Array): Uint8Array {
  return typedKeyId(name, ED25519_TYPE, publicKey);
}

/** The note text of a checkpoint (with its final newline). */
export function checkpointText(cp: Checkpoint): string {
  checkName(cp.origin, 'origin');
  if (!Number.isSafeInteger(cp.size) || cp.size < 0) fail('malformed', 'a checkpoint size is a non-negative integer');
  if (cp.root.length !== 32) fail('malformed', 'a checkpoint root is 32 bytes');
  return `${cp.origin}\n${cp.size}\n${Buffer.from(cp.root).toString('base64')}\n`;
}

/** Sign a checkpoint as a signed note, under the key name `name` (by default its origin). */
export function signCheckpoint(cp: Checkpoint, key: c.KeyPair, name = cp.origin): string {
  checkName(name, 'key name');
  const text = checkpointText(cp);
  const sig = c.ed25519Sign(key.privateKey, new TextEncoder().encode(text));
  const blob = Buffer.concat([noteKeyId(name, key.publicKey), sig]).toString('base64');
  return `${text}\n${EM_DASH} ${name} ${blob}\n`;
}

export interface NoteSignature {
  readonly name: string;
  readonly keyId: Uint8Array;
  readonly sig: Uint8Array;
}

/** Split a signed note into its text and signature lines (no signature checked). */
export function parseSignedNote(note: string): { text: string; sigs: NoteSignature[] } {
  if (typeof note !== 'string') return fail('malformed', 'a signed note is text');
  if (Buffer.byteLength(note) > MAX_NOTE_BYTES) fail('too-large', `a signed note is at most ${MAX_NOTE_BYTES} bytes`);
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u0009\u000b-\u001f]/.test(note)) fail('malformed', 'a signed note has no control characters but newlines');
  const split = note.lastIndexOf('\n\n');
  if (split < 0 || !note.endsWith('\n')) fail('malformed', 'a signed note is text, a blank line, then signature lines, each ending in a newline');
  const text = note.slice(0, split + 1);
  const lines = note.slice(split + 2, -1).split('\n');
  const sigs = lines.map((l): NoteSignature => {
    const m = /^\u2014 (\S+) ([A-Za-z0-9+/]+={0,2})$/.exec(l);
    if (m === null) return fail('malformed', `"${l.slice(0, 60)}" is not a signature line (— NAME BASE64)`);
    const blob = Buffer.from(m[2] as string, 'base64');
    if (blob.length < 5) fail('malformed', 'a note signature is a key ID and a signature');
    return { name: m[1] as string, keyId: new Uint8Array(blob.subarray(0, 4)), sig: new Uint8Array(blob.subarray(4)) };
  });
  if (sigs.length === 0) fail('malformed', 'a signed note has at least one signature');
  return { text, sigs };
}

/**
 * Verify a checkpoint signed by `key` under `name` and read it. Signatures by other keys are
 * ignored (witnesses' cosignatures, say); the one by this key must verify (`bad-signature`), and
 * there must be one (`unknown-signer`).
 */
export function verifyCheckpoint(note: string, key: { readonly name: string; readonly publicKey: Uint8Array }): Checkpoint {
  const { text, sigs } = parseSignedNote(note);
  const id = noteKeyId(key.name, key.publicKey);
  const mine = sigs.filter((s) => s.name === key.name && c.timingSafeEqual(s.keyId, id));
  if (mine.length === 0) fail('unknown-signer', `the checkpoint is not signed by ${key.name}`);
  for (const s of mine) {
    if (s.sig.length !== 64 || !c.ed25519Verify(key.publicKey, new TextEncoder().encode(text), s.sig)) fail('bad-signature', `the checkpoint's signature by ${key.name} does not verify`);
  }
  const lines = text.slice(0, -1).split('\n');
  if (lines.length < 3) fail('malformed', 'a checkpoint has an origin, a size and a root hash');
  const [origin, sizeText, rootText] = lines as [string, string, string];
  if (!/^(0|[1-9][0-9]{0,15})$/.test(sizeText)) fail('malformed', 'the checkpoint size is a decimal number without leading zeroes');
  const root = Buffer.from(rootText, 'base64');
  if (root.length !== 32 || root.toString('base64') !== rootText) fail('malformed', 'the checkpoint root is a base64 32-byte hash');
  return { origin, size: Number(sizeText), root: new Uint8Array(root) };
}

function checkName(name: string, what: string): void {
  if (name.length === 0 || /[\s+]/.test(name) || !/^[\x21-\x7e]+$/.test(name)) fail('malformed', `a checkpoint ${what} is printable ASCII with no spaces or plus signs`);
}
