/**
 * Witnesses (C2SP tlog-cosignature v1, tlog-witness): cosignatures made and checked here and by
 * the independent Python implementation (test/interop/verify_checkpoint.py); the witness's rules
 * (mesh/witness.ts) in process: it cosigns only what extends what it cosigned before.
 */
import test from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import * as c from '../mesh/crypto.js';
import { logOrigin, signCheckpoint } from '../mesh/checkpoint.js';
import { addSignatures, cosign, cosigners, formatAddCheckpoint, formatVkey, NOTE_ED25519_TYPE, parseAddCheckpoint, parseVkey, requireCosignatures } from '../mesh/cosignature.js';
import { MerkleTree } from '../mesh/merkle.js';
import { fileWitnessStore, Witness } from '../mesh/witness.js';
import * as files from '../runtime/files.js';
import { REPO } from '../harness/agent-process.js';
import { codeOf } from './helpers/code-of.js';

const PY = path.join(REPO, 'test', 'interop', 'verify_checkpoint.py');
const origin = logOrigin('portal.example');
const logKey = c.ed25519KeyPair();
const w1 = { name: 'witness.example/w1', key: c.ed25519KeyPair() };
const w2 = { name: 'witness.example/w2', key: c.ed25519KeyPair() };
const pub = (w: { name: string; key: c.KeyPair }): { name: string; publicKey: Uint8Array } => ({ name: w.name, publicKey: w.key.publicKey });

function tree(n: number, salt = ''): MerkleTree {
  const t = new MerkleTree();
  for (let i = 0; i < n; i++) t.appendData(new TextEncoder().encode(`leaf ${i}${salt}`));
  return t;
}
const noteOf = (t: MerkleTree, size = t.size): string => signCheckpoint({ origin, size, root: t.root(size) }, logKey);
const textOf = (note: string): string => note.slice(0, note.lastIndexOf('\n\n') + 1);

function python(note: string, args: string[]): { code: number; out: string; err: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mesh-cosig-'));
  fs.writeFileSync(path.join(dir, 'note'), note);
  const r = spawnSync('python3', [PY, path.join(dir, 'note'), origin, Buffer.from(logKey.publicKey).toString('base64'), ...args], { encoding: 'utf8' });
  fs.rmSync(dir, { recursive: true, force: true });
  return { code: r.status ?? -1, out: r.stdout.trim(), err: r.stderr.trim() };
}

test('a cosignature verifies here and in the Python implementation; a quorum is counted; changed or foreign ones do not count', (t) => {
  const note = noteOf(tree(10));
  const one = addSignatures(note, cosign(textOf(note), w1, 1_700_000_000));
  const both = addSignatures(one, cosign(textOf(note), w2, 1_700_000_001));
  t.deepEqual(cosigners(both, [pub(w1), pub(w2)]), [w1.name, w2.name]);
  t.deepEqual(requireCosignatures(one, [pub(w1), pub(w2)], 1), [w1.name]);
  t.is(codeOf(() => requireCosignatures(one, [pub(w1), pub(w2)], 2)), 'not-witnessed');
  t.deepEqual(requireCosignatures(note, [], 0), []);
  const arg = (w: typeof w1): string[] => ['--cosigner', `${w.name}=${Buffer.from(w.key.publicKey).toString('base64')}`];
  const py = python(both, [...arg(w1), ...arg(w2)]);
  t.is(py.code, 0, py.err);
  t.regex(py.out, new RegExp(`cosigned ${w1.name} ${w2.name}$`));
  t.is(python(one, [...arg(w1), ...arg(w2)]).code, 1, 'one of two is not all of them');
  t.is(python(one, [...arg(w1), ...arg(w2), '--quorum', '1']).code, 0);
  // a cosignature of another checkpoint, moved onto this one, is not one
  const other = noteOf(tree(11));
  const moved = addSignatures(note, cosign(textOf(other), w1, 1_700_000_000));
  t.deepEqual(cosigners(moved, [pub(w1)]), []);
  t.is(python(moved, arg(w1)).code, 1);
  // the same key under the checkpoint signature type (0x01) is not a cosignature
  const wrongType = addSignatures(note, signCheckpoint({ origin, size: 10, root: tree(10).root() }, w1.key, w1.name).split('\n').filter((l) => l.startsWith('\u2014')).join('\n'));
  t.deepEqual(cosigners(wrongType, [pub(w1)]), []);
});

test('verifier keys: written and read back; a wrong key ID or type is bad-key; add-checkpoint bodies round-trip', (t) => {
  const v = formatVkey(pub(w1));
  t.regex(v, /^witness\.example\/w1\+[0-9a-f]{8}\+[A-Za-z0-9+/]+=*$/);
  t.deepEqual(parseVkey(v), pub(w1));
  const logV = formatVkey({ name: origin, publicKey: logKey.publicKey }, NOTE_ED25519_TYPE);
  t.deepEqual(parseVkey(logV, NOTE_ED25519_TYPE).publicKey, logKey.publicKey);
  t.is(codeOf(() => parseVkey(logV)), 'bad-key', 'a log key is not a cosigner key');
  t.is(codeOf(() => parseVkey(v.replace(/\+([0-9a-f])/, (_m, d: string) => `+${d === '0' ? '1' : '0'}`))), 'bad-key');
  t.is(codeOf(() => parseVkey('not a key')), 'malformed');
  const tr = tree(10);
  const body = formatAddCheckpoint({ old: 4, proof: tr.consistencyProof(4), note: noteOf(tr) });
  const back = parseAddCheckpoint(body);
  t.is(back.old, 4);
  t.deepEqual(back.proof, tr.consistencyProof(4));
  t.is(back.note, noteOf(tr));
  t.is(codeOf(() => parseAddCheckpoint('old 01\n\nx')), 'malformed');
});

test('the witness cosigns only what extends what it cosigned: 409 with its size, 422 for another history, 403, 404; its state survives a restart', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mesh-witness-'));
  try {
    const make = (): Witness => new Witness({ name: w1.name, key: w1.key, logs: [{ name: origin, publicKey: logKey.publicKey }], store: fileWitnessStore(path.join(dir, 'state.json'), files), now: () => 1_700_000_000 });
    const w = make();
    const tr = tree(12);
    const add = (old: number, size: number, t2 = tr, proofFrom = t2): ReturnType<Witness['addCheckpoint']> =>
      w.addCheckpoint(new TextEncoder().encode(formatAddCheckpoint({ old, proof: old === 0 ? [] : proofFrom.consistencyProof(old, size), note: noteOf(t2, size) })));
    const first = add(0, 5);
    t.is(first.status, 200, first.body);
    t.deepEqual(cosigners(addSignatures(noteOf(tr, 5), first.body), [pub(w1)]), [w1.name]);
    const stale = add(0, 8);
    t.is(stale.status, 409);
    t.is(stale.type, 'text/x.tlog.size');
    t.is(stale.body, '5\n');
    t.is(add(5, 8).status, 200);
    // a fork: another history of 10 leaves, "proved" from 8 with its own proof
    const fork = tree(10, 'fork');
    const r = w.addCheckpoint(new TextEncoder().encode(formatAddCheckpoint({ old: 8, proof: fork.consistencyProof(8, 10), note: noteOf(fork) })));
    t.is(r.status, 422, r.body);
    // the same size as held, another root
    t.is(w.addCheckpoint(new TextEncoder().encode(formatAddCheckpoint({ old: 8, proof: [], note: noteOf(fork, 8) }))).status, 409);
    // not signed by the log's key; a log it does not witness
    const forged = signCheckpoint({ origin, size: 12, root: tr.root() }, c.ed25519KeyPair());
    t.is(w.addCheckpoint(new TextEncoder().encode(formatAddCheckpoint({ old: 8, proof: tr.consistencyProof(8, 12), note: forged }))).status, 403);
    const elsewhere = signCheckpoint({ origin: 'other/mmm-log', size: 3, root: tr.root(3) }, logKey, 'other/mmm-log');
    t.is(w.addCheckpoint(new TextEncoder().encode(formatAddCheckpoint({ old: 0, proof: [], note: elsewhere }))).status, 404);
    t.is(w.addCheckpoint(new TextEncoder().encode('junk')).status, 400);
    // restarted: it still holds 8
    const again = make();
    t.deepEqual(again.latest(origin), { size: 8, root: Buffer.from(tr.root(8)).toString('base64url') });
    t.is(again.addCheckpoint(new TextEncoder().encode(formatAddCheckpoint({ old: 8, proof: tr.consistencyProof(8, 12), note: noteOf(tr) }))).status, 200);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
