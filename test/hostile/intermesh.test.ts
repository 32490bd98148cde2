/**
 * The Intermesh's quorum of hash values (seed §8), as far as it goes here: two REAL portals that
 * witness each other (`--witness-for` the other's log, `--witness` the other's URL and key). Each
 * portal's checkpoint carries the other's cosignature (checked here and by the independent Python
 * verifier); a fork of portal A (its key, another history) asks B in vain: B does not cosign a
 * head that does not extend the one it cosigned for A, so the fork's checkpoint carries no
 * cosignature and an owner requiring B's is not fooled.
 */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as c from '../../mesh/crypto.js';
import { b64u } from '../../mesh/bytes.js';
import { logOrigin } from '../../mesh/checkpoint.js';
import { cosigners, formatVkey, NOTE_ED25519_TYPE } from '../../mesh/cosignature.js';
import { readHead } from '../../mesh/feedlog.js';
import { isMeshError } from '../../mesh/errors.js';
import { REPO, until } from '../../harness/agent-process.js';
import { startPortalProcess, type PortalProcess } from '../../harness/portal-process.js';
import { TestOwner } from '../../harness/owner.js';

const PY = path.join(REPO, 'test', 'interop', 'verify_checkpoint.py');

test.serial('two portals cosign each other; a fork of one gets no cosignature from the other', async (t) => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mesh-intermesh-'));
  const key = (name: string, seed: Uint8Array): string => {
    const f = path.join(tmp, name);
    fs.writeFileSync(f, JSON.stringify({ type: 'mesh-portal-key', sign: b64u(seed) }) + '\n', { mode: 0o600 });
    return f;
  };
  const seedA = c.randomBytes(32);
  const seedB = c.randomBytes(32);
  const pubA = c.ed25519KeyPair(seedA).publicKey;
  const pubB = c.ed25519KeyPair(seedB).publicKey;
  const logA = { name: logOrigin('a.test'), publicKey: pubA };
  const logB = { name: logOrigin('b.test'), publicKey: pubB };
  const wA = { name: 'a.test/witness', publicKey: pubA };
  const wB = { name: 'b.test/witness', publicKey: pubB };
  // B first (it witnesses A; A's witness URL is known only once A runs, so B is asked by A, and B asks A later)
  const started: PortalProcess[] = [];
  try {
    const bData = path.join(tmp, 'b-data');
    fs.mkdirSync(bData, { mode: 0o700 });
    const b0 = await startPortalProcess({ dataDir: bData, args: ['--no-mqtt', '--name', 'b.test', '--key', key('b.json', seedB), '--witness-for', formatVkey(logA, NOTE_ED25519_TYPE)] });
    started.push(b0);
    const a = await startPortalProcess({ args: ['--no-mqtt', '--name', 'a.test', '--key', key('a.json', seedA), '--witness-for', formatVkey(logB, NOTE_ED25519_TYPE), '--witness', `${b0.http}=${formatVkey(wB)}`] });
    started.push(a);
    // B again, on the same data and port (A asks it there), now also asking A
    await b0.stop();
    started.shift();
    const b = await startPortalProcess({ dataDir: bData, args: ['--http-port', new URL(b0.http).port, '--no-mqtt', '--name', 'b.test', '--key', key('b.json', seedB), '--witness-for', formatVkey(logA, NOTE_ED25519_TYPE), '--witness', `${a.http}=${formatVkey(wA)}`] });
    started.push(b);
    const health = (await (await fetch(`${a.http}/healthz`)).json()) as { logKey: string; witnessKey: string };
    t.is(health.logKey, formatVkey(logA, NOTE_ED25519_TYPE));
    t.is(health.witnessKey, formatVkey(wA));

    const alice = await TestOwner.create(a.http, 'alice');
    const bob = await TestOwner.create(b.http, 'bob');
    await alice.rotateAdmin();
    alice.close();
    bob.close();
    const noteA = await until("A's checkpoint cosigned by B", async () => {
      const n = await (await fetch(`${a.http}/checkpoint`)).text();
      return cosigners(n, [wB]).length === 1 && Number(n.split('\n')[1]) >= 3 ? n : undefined;
    });
    const noteB = await until("B's checkpoint cosigned by A", async () => {
      const n = await (await fetch(`${b.http}/checkpoint`)).text();
      return cosigners(n, [wA]).length === 1 && Number(n.split('\n')[1]) >= 2 ? n : undefined;
    });
    t.notThrows(() => readHead(noteA, logA, [{ witnesses: [wB], quorum: 1 }]));
    t.notThrows(() => readHead(noteB, logB, [{ witnesses: [wA], quorum: 1 }]));
    const py = (note: string, log: typeof logA, w: typeof wA): number => {
      const f = path.join(tmp, 'note');
      fs.writeFileSync(f, note);
      return spawnSync('python3', [PY, f, log.name, Buffer.from(log.publicKey).toString('base64'), '--cosigner', `${w.name}=${Buffer.from(w.publicKey).toString('base64')}`]).status ?? -1;
    };
    t.is(py(noteA, logA, wB), 0);
    t.is(py(noteB, logB, wA), 0);

    // a fork of A: A's key, another (longer) history, asking B
    const fork = await startPortalProcess({ args: ['--no-mqtt', '--name', 'a.test', '--key', key('fork.json', seedA), '--witness', `${b.http}=${formatVkey(wB)}`] });
    started.push(fork);
    const eve = await TestOwner.create(fork.http, 'eve');
    for (let i = 0; i < 6; i++) await eve.rotateAdmin();
    eve.close();
    const forkNote = await until("the fork's checkpoint past A's size", async () => {
      const n = await (await fetch(`${fork.http}/checkpoint`)).text();
      return Number(n.split('\n')[1]) > Number(noteA.split('\n')[1]) ? n : undefined;
    });
    t.deepEqual(cosigners(forkNote, [wB]), [], 'B did not cosign the fork');
    const e = t.throws(() => readHead(forkNote, logA, [{ witnesses: [wB], quorum: 1 }]));
    t.true(isMeshError(e, 'not-witnessed'), String(e));
    t.is(py(forkNote, logA, wB), 1);
    // and A's own heads are still cosigned by B
    const later = await (await fetch(`${a.http}/checkpoint`)).text();
    t.deepEqual(cosigners(later, [wB]), [wB.name]);
  } finally {
    for (const p of started.reverse()) await p.stop().catch(() => undefined);
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});
