/**
 * The log's head as a C2SP tlog-checkpoint (a signed note), checked by our own code and by an
 * independent implementation written from the specifications in another language
 * (test/interop/verify_checkpoint.py: Python, standard library only, RFC 8032's reference Ed25519).
 */
import test from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import * as c from '../mesh/crypto.js';
import { codeOf } from './helpers/code-of.js';
import { logOrigin, noteKeyId, signCheckpoint, verifyCheckpoint } from '../mesh/checkpoint.js';
import { REPO } from '../harness/agent-process.js';
import { startPortalProcess } from '../harness/portal-process.js';
import { PortalClient } from '../client/portal-client.js';
import { verifyPortalProfile, verifyTreeHead } from '../mesh/messages.js';
import { TestOwner } from '../harness/owner.js';

const PY = path.join(REPO, 'test', 'interop', 'verify_checkpoint.py');

function python(note: string, name: string, publicKey: Uint8Array): { code: number; out: string; err: string } {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'mesh-checkpoint-')), 'note');
  fs.writeFileSync(file, note);
  const r = spawnSync('python3', [PY, file, name, Buffer.from(publicKey).toString('base64')], { encoding: 'utf8' });
  fs.rmSync(path.dirname(file), { recursive: true, force: true });
  return { code: r.status ?? -1, out: r.stdout.trim(), err: r.stderr.trim() };
}

const root = c.sha256(new TextEncoder().encode('a root'));

test('a checkpoint made here verifies here and in the independent Python implementation; a changed one fails in both', (t) => {
  const key = c.ed25519KeyPair();
  const origin = logOrigin('portal.example');
  const note = signCheckpoint({ origin, size: 42, root }, key);
  t.true(note.startsWith(`portal.example/mmm-log\n42\n${Buffer.from(root).toString('base64')}\n\n\u2014 portal.example/mmm-log `));
  const cp = verifyCheckpoint(note, { name: origin, publicKey: key.publicKey });
  t.is(cp.size, 42);
  t.deepEqual(cp.root, root);
  const py = python(note, origin, key.publicKey);
  t.is(py.code, 0, py.err);
  t.is(py.out, `${origin} 42 ${Buffer.from(root).toString('base64')}`);

  const bigger = note.replace('\n42\n', '\n43\n');
  t.is(codeOf(() => verifyCheckpoint(bigger, { name: origin, publicKey: key.publicKey })), 'bad-signature');
  t.is(python(bigger, origin, key.publicKey).code, 1);
  const other = c.ed25519KeyPair();
  t.is(codeOf(() => verifyCheckpoint(note, { name: origin, publicKey: other.publicKey })), 'unknown-signer');
  t.is(python(note, origin, other.publicKey).code, 1);

  // a witness's cosignature on the same text is another signature line: both implementations ignore it
  const witness = c.ed25519KeyPair();
  const text = note.slice(0, note.lastIndexOf('\n\n') + 1);
  const wsig = Buffer.concat([noteKeyId('witness.example', witness.publicKey), c.ed25519Sign(witness.privateKey, new TextEncoder().encode(text))]).toString('base64');
  const cosigned = `${note}\u2014 witness.example ${wsig}\n`;
  t.is(verifyCheckpoint(cosigned, { name: origin, publicKey: key.publicKey }).size, 42);
  t.is(python(cosigned, origin, key.publicKey).code, 0);
  t.is(python(cosigned, 'witness.example', witness.publicKey).code, 0, 'and the witness signature checks with the witness key');
  t.is(codeOf(() => verifyCheckpoint(note.replace('\u2014', '-'), { name: origin, publicKey: key.publicKey })), 'malformed');
});

test("the portal serves its log head at /checkpoint: the same size and root as its signed tree head, checked by the Python implementation", async (t) => {
  const portal = await startPortalProcess({ args: ['--no-mqtt', '--name', 'portal.example'] });
  const alice = await TestOwner.create(portal.http, 'alice');
  try {
    const client = new PortalClient({ url: portal.http });
    const hello = await client.hello();
    const profile = verifyPortalProfile(hello.portal);
    const head = verifyTreeHead((await client.treeHead()), profile.sign);
    client.close();
    const res = await fetch(`${portal.http}/checkpoint`);
    t.is(res.status, 200);
    t.regex(res.headers.get('content-type') ?? '', /^text\/plain/);
    const note = await res.text();
    const origin = logOrigin('portal.example');
    const cp = verifyCheckpoint(note, { name: origin, publicKey: profile.sign });
    t.is(cp.size, head.size);
    t.true(cp.size >= 2, 'the account binding is logged');
    t.deepEqual(cp.root, head.root);
    const py = python(note, origin, profile.sign);
    t.is(py.code, 0, py.err);
    t.is(py.out, `${origin} ${head.size} ${Buffer.from(head.root).toString('base64')}`);
  } finally {
    alice.close();
    await portal.stop();
  }
});
