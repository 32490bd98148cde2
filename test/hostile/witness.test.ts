/**
 * A split view between two portals, caught by a witness and by the device. REAL processes: a
 * `mesh-witness`, portal A (the device's, through the proxy) and portal B, a fork that signs with
 * A's key but keeps another history; both are started with `--witness` for the same witness.
 * Alice's master profile requires that witness's cosignature (quorum 1).
 *   - A's checkpoints are cosigned (checked here and by the independent Python verifier), and
 *     the device, which now requires the cosignature, keeps applying Alice's changes;
 *   - the witness refuses B's head (it does not extend the one it cosigned for A): B's
 *     checkpoint carries no cosignature, and the Python verifier says so;
 *   - the device shown B's checkpoint refuses it (`not-witnessed` in its signed status) and keeps
 *     A's head; shown a Download head stripped of the cosignature, it applies nothing
 *     (`not-witnessed`) until the portal serves the cosigned head again.
 */
import test from 'ava';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as c from '../../mesh/crypto.js';
import { b64u } from '../../mesh/bytes.js';
import { logOrigin } from '../../mesh/checkpoint.js';
import { cosigners, formatVkey, NOTE_ED25519_TYPE, parseVkey } from '../../mesh/cosignature.js';
import { REPO, until } from '../../harness/agent-process.js';
import { startPortalProcess } from '../../harness/portal-process.js';
import { TestOwner } from '../../harness/owner.js';
import { onDownload } from './proxy.js';
import { cliError, hostileWorld, mesh, tmpHome } from './world.js';

const WITNESS_CLI = path.join(REPO, 'dist', 'witness', 'cli.js');
const PY = path.join(REPO, 'test', 'interop', 'verify_checkpoint.py');

async function startWitness(dir: string, logVkey: string): Promise<{ url: string; vkey: string; proc: ChildProcess; logs: () => string }> {
  const proc = spawn(process.execPath, [WITNESS_CLI, '--data', dir, '--name', 'witness.test/w1', '--log', logVkey], { stdio: ['ignore', 'pipe', 'pipe'] });
  let logs = '';
  proc.stderr?.setEncoding('utf8').on('data', (d: string) => (logs += d));
  const ready = await new Promise<{ url: string; vkey: string }>((resolve, reject) => {
    let out = '';
    proc.stdout?.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      const m = /mesh-witness ready (\{.*\})\n/.exec(out);
      if (m !== null) resolve(JSON.parse(m[1] as string) as { url: string; vkey: string });
    });
    proc.once('exit', (code) => reject(new Error(`mesh-witness exited ${String(code)}: ${logs}`)));
  });
  return { ...ready, proc, logs: () => logs };
}

let logPub = '';

function python(note: string, witnessVkey: string): { code: number; out: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mesh-witness-py-'));
  fs.writeFileSync(path.join(dir, 'note'), note);
  const origin = note.split('\n', 1)[0] as string;
  const w = parseVkey(witnessVkey);
  const r = spawnSync('python3', [PY, path.join(dir, 'note'), origin, logPub, '--cosigner', `${w.name}=${Buffer.from(w.publicKey).toString('base64')}`], { encoding: 'utf8' });
  fs.rmSync(dir, { recursive: true, force: true });
  return { code: r.status ?? -1, out: r.stdout.trim() };
}

test.serial('a split view between two portals is caught by the witness and by the device', async (t) => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mesh-split-witness-'));
  // the portal key, made here so that the witness can be told it before either portal starts
  const seed = c.randomBytes(32);
  const pub = c.ed25519KeyPair(seed).publicKey;
  logPub = Buffer.from(pub).toString('base64');
  const keyFile = (name: string): string => {
    const f = path.join(tmp, name);
    fs.writeFileSync(f, JSON.stringify({ type: 'mesh-portal-key', sign: b64u(seed) }) + '\n', { mode: 0o600 });
    return f;
  };
  const logVkey = formatVkey({ name: logOrigin('localhost'), publicKey: pub }, NOTE_ED25519_TYPE);
  const witness = await startWitness(path.join(tmp, 'witness'), logVkey);
  const witnessArg = `${witness.url}=${witness.vkey}`;
  const w = await hostileWorld({ portalArgs: ['--key', keyFile('a.json'), '--witness', witnessArg] });
  let fork: Awaited<ReturnType<typeof startPortalProcess>> | undefined;
  try {
    // Alice requires the witness's cosignature; the device learns it from her master profile
    await w.alice.requireWitnesses([witness.vkey], 1);
    await until('the device holds the master profile requiring the witness', () => (w.state().owners[w.alice.masterId]?.masterSeq === 2 ? true : undefined));
    await w.alice.publish('thermostat', { setpoint: 23 });
    await w.agent.waitFor((e) => e.type === 'applied' && e.seq === 2, 20_000, 'applied under the witness requirement');
    const good = await (await fetch(`${w.portal.http}/checkpoint`)).text();
    t.deepEqual(cosigners(good, [parseVkey(witness.vkey)]), ['witness.test/w1'], "A's checkpoint is cosigned");
    const pyGood = python(good, witness.vkey);
    t.is(pyGood.code, 0, pyGood.out);

    // B: the same key, another history, larger than A's; it asks the same witness
    fork = await startPortalProcess({ args: ['--no-mqtt', '--key', keyFile('b.json'), '--witness', witnessArg] });
    const eve = await TestOwner.create(fork.http, 'eve');
    for (let i = 0; i < 8; i++) await eve.rotateAdmin();
    eve.close();
    const forkNote = await until('the fork to have tried the witness', async () => {
      const n = await (await fetch(`${fork?.http ?? ''}/checkpoint`)).text();
      return /"event":"(inconsistent|split-view)"/.test(witness.logs()) ? n : undefined;
    });
    t.deepEqual(cosigners(forkNote, [parseVkey(witness.vkey)]), [], "the witness did not cosign B's head");
    t.is(python(forkNote, witness.vkey).code, 1, 'the Python verifier finds no cosignature on B');

    // the device is shown B's checkpoint: refused, not-witnessed, in its signed status
    const off = w.proxy.use({ name: 'split', upstream: (req) => (req.path === '/checkpoint' ? fork?.http : undefined) });
    await w.alice.publish('thermostat', { setpoint: 24 });
    await w.agent.waitFor((e) => e.type === 'applied' && e.seq === 3, 20_000, 'the honest feed still applies');
    const refused = await until('a signed status reporting not-witnessed', async () => {
      const s = await w.signedStatus();
      return s?.errors.some((e) => e.code === 'not-witnessed') === true ? s : undefined;
    });
    t.true((refused.treeHead?.size ?? 0) > 0);
    off();

    // a Download head stripped of its cosignature: nothing applied until the cosigned head is served
    const before = w.configBytes();
    let stripped = 0;
    const strip = w.proxy.use(
      onDownload('strip-cosignature', (body) => {
        if (body.log === undefined) return undefined;
        stripped++;
        return { ...body, log: { ...body.log, treeHead: body.log.treeHead.split('\n').filter((l) => !l.startsWith('\u2014 witness.test/w1 ')).join('\n') } };
      }),
    );
    await w.alice.publish('thermostat', { setpoint: 25 });
    const n0 = w.state().n;
    await until('the stripped head refused', () => (stripped >= 2 && w.agent.events.some((e) => e.type === 'refused' && e.code === 'not-witnessed' && e.n === n0 + 1) ? true : undefined));
    t.is(w.configBytes(), before, 'nothing applied from a head without the cosignature');
    t.is(w.state().n, n0, 'nor skipped');
    strip();
    await w.agent.waitFor((e) => e.type === 'applied' && e.seq === 4, 20_000, 'applied once the cosigned head is served');
    t.is(JSON.parse(w.configBytes()).thermostat.setpoint, 25);
  } finally {
    await fork?.stop();
    await w.close();
    witness.proc.kill('SIGTERM');
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});

test.serial("the owner's CLI: mesh log witnesses lists and adds a witness; mesh log verify checks the portal's checkpoint carries its cosignature (not-witnessed without it)", async (t) => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mesh-witness-cli-'));
  const seed = c.randomBytes(32);
  const pub = c.ed25519KeyPair(seed).publicKey;
  const keyFile = path.join(tmp, 'portal-key.json');
  fs.writeFileSync(keyFile, JSON.stringify({ type: 'mesh-portal-key', sign: b64u(seed) }) + '\n', { mode: 0o600 });
  const witness = await startWitness(path.join(tmp, 'witness'), formatVkey({ name: logOrigin('localhost'), publicKey: pub }, NOTE_ED25519_TYPE));
  const witnessed = await startPortalProcess({ args: ['--no-mqtt', '--key', keyFile, '--witness', `${witness.url}=${witness.vkey}`] });
  const plain = await startPortalProcess({ args: ['--no-mqtt'] });
  const gina = tmpHome('gina');
  const hana = tmpHome('hana');
  try {
    t.is((await mesh(gina, ['profile', 'create', '--portal', witnessed.http, '--account', 'gina', '--admin-name', 'laptop', '--keep-master-key', '--json'])).code, 0);
    const none = await mesh(gina, ['log', 'witnesses', '--json']);
    t.is(none.code, 0, none.stderr);
    t.deepEqual(none.json, { witnesses: [], quorum: 0 });
    const add = await mesh(gina, ['log', 'witnesses', '--add', witness.vkey, '--json']);
    t.is(add.code, 0, add.stdout + add.stderr);
    t.is(add.json.quorum, 1);
    t.is(add.json.masterSeq, 2);
    t.deepEqual(add.json.witnesses.map((w: { name: string }) => w.name), ['witness.test/w1']);
    const ok = await until('mesh log verify with the cosigned checkpoint', async () => {
      const r = await mesh(gina, ['log', 'verify', '--json']);
      return r.code === 0 ? r : undefined;
    });
    t.deepEqual(ok.json.witnessed.cosigners, ['witness.test/w1']);
    const human = await mesh(gina, ['log', 'verify']);
    t.regex(human.stdout, /cosigned by witness\.test\/w1 \(your quorum is met\)/);

    // an owner on a portal whose checkpoints nobody cosigns, requiring the same witness
    t.is((await mesh(hana, ['profile', 'create', '--portal', plain.http, '--account', 'hana', '--admin-name', 'laptop', '--keep-master-key', '--json'])).code, 0);
    t.is((await mesh(hana, ['log', 'witnesses', '--add', witness.vkey, '--json'])).code, 0);
    const bad = await mesh(hana, ['log', 'verify', '--json']);
    t.not(bad.code, 0);
    t.is(cliError(bad), 'not-witnessed', bad.stdout + bad.stderr);
    const rm = await mesh(hana, ['log', 'witnesses', '--remove', 'witness.test/w1', '--json']);
    t.deepEqual(rm.json.witnesses, []);
    t.is(rm.json.quorum, 0);
    t.is((await mesh(hana, ['log', 'verify', '--json'])).code, 0, 'with no witness required, verify passes again');
  } finally {
    await witnessed.stop();
    await plain.stop();
    witness.proc.kill('SIGTERM');
    fs.rmSync(tmp, { recursive: true, force: true });
    fs.rmSync(gina, { recursive: true, force: true });
    fs.rmSync(hana, { recursive: true, force: true });
  }
});

test.serial('a witness that is down: the portal serves its heads uncosigned, a device whose owner requires none keeps applying, one that requires it refuses (not-witnessed)', async (t) => {
  const dead = formatVkey({ name: 'witness.test/down', publicKey: c.ed25519KeyPair().publicKey });
  // nothing listens on port 9 of this machine (discard): every round fails
  const w = await hostileWorld({ portalArgs: ['--witness', `http://127.0.0.1:9=${dead}`] });
  try {
    t.is(JSON.parse(w.configBytes()).thermostat.setpoint, 20, 'the first configuration was applied through an uncosigned head');
    await w.alice.publish('thermostat', { setpoint: 21 });
    await w.agent.waitFor((e) => e.type === 'applied' && e.seq === 2, 20_000, 'applied with the witness down');
    const note = await (await fetch(`${w.portal.http}/checkpoint`)).text();
    t.deepEqual(cosigners(note, [parseVkey(dead)]), []);
    // Alice now requires that witness: nothing more is applied while it is down
    await w.alice.requireWitnesses([dead], 1);
    await until('the master profile requiring it applied', () => (w.state().owners[w.alice.masterId]?.masterSeq === 2 ? true : undefined));
    const before = w.configBytes();
    await w.alice.publish('thermostat', { setpoint: 22 });
    await w.agent.waitFor((e) => e.type === 'refused' && e.code === 'not-witnessed', 20_000, 'refused not-witnessed');
    t.is(w.configBytes(), before);
  } finally {
    await w.close();
  }
});
