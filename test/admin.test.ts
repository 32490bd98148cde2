/**
 * The owner's CLI (`mesh`), spawned for real: `node dist/admin/cli.js --home <tmp> ...`.
 * Stateless commands first (UDF vectors from udf.md, shares), then everything against a real
 * portal process. Devices here are simulated in-process with the protocol library (register,
 * read the feed, post signed statuses), so these flows need no device agent; the agent's own
 * end-to-end flows are in admin-agent.test.ts.
 */
import test, { type ExecutionContext } from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as c from '../mesh/crypto.js';
import { b64u, fromB64u, utf8 } from '../mesh/bytes.js';
import { payloadBytes } from '../mesh/envelope.js';
import { docOf, targetsOf } from './helpers/app-profile.js';
import { deriveClaimSecrets, labelUri, sealClaimBlob } from '../mesh/claim.js';
import { encKeyId } from '../mesh/keys.js';
import { newDeviceIdentity, type DeviceIdentity } from '../mesh/device.js';
import { createSession, createStatus, type OwnerStatus, type StatusError, type TreeHeadRef } from '../mesh/messages.js';
import { parseApplicationPayload, parseMasterPayload, parsePersonalPayload } from '../mesh/profiles.js';
import { authenticatorUdf, contentUdf } from '../mesh/udf.js';
import { schemaFingerprint } from '../mesh/schema.js';
import { PortalClient } from '../client/portal-client.js';
import type { FeedItem } from '../mesh/protocol.js';
import { startPortalProcess } from '../harness/portal-process.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const CLI = path.resolve(here, '../admin/cli.js');

// ---------------------------------------------------------------- harness

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
  /** the last stdout line parsed as JSON (with --json) */
  readonly json: any;
}

function mesh(home: string | null, args: string[], opts: { input?: string; onStdout?: (chunk: string, child: ChildProcess) => void; timeoutMs?: number } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const full = home === null ? args : ['--home', home, ...args];
    const env = { ...process.env };
    delete env.MESH_HOME;
    const child = spawn(process.execPath, [CLI, ...full], { stdio: ['pipe', 'pipe', 'pipe'], env });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 90_000);
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
      opts.onStdout?.(d, child);
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      const last = stdout.trim().split('\n').pop() ?? '';
      let json: unknown;
      try {
        json = JSON.parse(last);
      } catch {
        json = undefined;
      }
      resolve({ code: code ?? -1, stdout, stderr, json });
    });
    child.stdin.end(opts.input ?? '');
  });
}

const errCode = (r: Run): string | undefined => (r.json as { error?: { code?: string } } | undefined)?.error?.code;

function tmp(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `mesh-admin-${prefix}-`));
}

interface Portal {
  readonly url: string;
  readonly name: string;
  stop(): Promise<void>;
}

async function startPortal(): Promise<Portal> {
  const p = await startPortalProcess();
  return { url: p.http, name: p.name, stop: async () => { await p.stop(); } };
}

/** A device simulated with the protocol library: registers, reads its feed, posts signed statuses. */
class SimDevice {
  readonly client: PortalClient;
  items: FeedItem[] = [];
  n = 0;
  statusSeq = 0;
  constructor(
    readonly d: DeviceIdentity,
    url: string,
  ) {
    this.client = new PortalClient({ url, identity: { subject: d.id, key: d.keys.auth } });
  }

  static make(url: string, authority: string, opts: { maker?: c.KeyPair; model?: string; blobProfile?: DeviceIdentity; sealWith?: Uint8Array; schemas?: Record<string, unknown> } = {}): DeviceIdentity {
    return newDeviceIdentity({ model: opts.model ?? 'thermostat', manufacturer: 'acme', serial: `sn${Math.floor(Math.random() * 1e9)}`, portalAuthority: authority, ...(opts.maker !== undefined ? { manufacturerKey: opts.maker } : {}), ...(opts.schemas !== undefined ? { schemas: opts.schemas } : {}) });
  }

  /** Register; `blobOf` replaces what is sealed in the claim blob, `sealSecret` the secret it is sealed under (to simulate a dishonest portal). */
  async register(opts: { blobOf?: DeviceIdentity; sealSecret?: Uint8Array; schemas?: Record<string, unknown> } = {}): Promise<void> {
    const secrets = deriveClaimSecrets(this.d.claimSecret);
    const sealer = deriveClaimSecrets(opts.sealSecret ?? this.d.claimSecret);
    const shown = opts.blobOf ?? this.d;
    await this.client.register({
      device: this.d.profile,
      endorsement: this.d.endorsement,
      claim: { id: secrets.claimId, blob: sealClaimBlob(sealer, { profile: shown.profile, endorsement: shown.endorsement, ...(opts.schemas !== undefined ? { schemas: opts.schemas } : {}) }), portalKey: b64u(secrets.portalKey) },
      request: createSession(this.d.keys.auth, this.d.id),
    });
  }

  async poll(): Promise<readonly FeedItem[]> {
    const r = await this.client.download(this.n);
    this.items.push(...r.items);
    if (r.items.length > 0) this.n = Math.max(this.n, ...r.items.map((i) => i.n));
    return r.items;
  }

  async status(owners: OwnerStatus[], opts: { lastContact?: string; errors?: StatusError[]; treeHead?: TreeHeadRef } = {}): Promise<void> {
    this.statusSeq++;
    await this.client.status(
      createStatus(this.d.keys.sign, {
        seq: this.statusSeq,
        lastContact: opts.lastContact ?? new Date().toISOString(),
        owners,
        errors: opts.errors ?? [],
        ...(opts.treeHead !== undefined ? { treeHead: opts.treeHead } : {}),
      }),
    );
  }

  /** The newest application profile for `app` in the feed, decrypted with the device key. */
  latestConfig(app: string): { seq: number; doc: unknown; master: string } | undefined {
    const apps = this.items.filter((i) => i.kind === 'application').map((i) => ({ p: parseApplicationPayload(payloadBytes(i.object)), env: i.object })).filter((x) => x.p.app === app);
    const last = apps.sort((a, b) => a.p.seq - b.p.seq).pop();
    if (last === undefined) return undefined;
    return { seq: last.p.seq, master: last.p.master, doc: docOf(last.env, this.d.keys.enc, this.d.id) };
  }

  close(): void {
    this.client.close();
  }
}

function adminKeyOf(home: string): c.KeyPair {
  const o = JSON.parse(fs.readFileSync(path.join(home, 'admin-keys.json'), 'utf8')) as { sign: string };
  return c.ed25519KeyPair(fromB64u(o.sign, 'sign', 32));
}

async function accountOf(url: string, home: string, account: string) {
  const client = new PortalClient({ url, identity: { subject: account, key: adminKeyOf(home) } });
  try {
    return await client.account();
  } finally {
    client.close();
  }
}

function authority(url: string): string {
  return new URL(url).host;
}

// ---------------------------------------------------------------- stateless commands

test('udf: the udf.md vectors through the CLI (stdin, "-" and a file)', async (t) => {
  const a = await mesh(null, ['udf', '--content-type', 'text/plain'], { input: 'UDF Data Value' });
  t.is(a.code, 0, a.stderr);
  t.is(a.stdout, 'MDDK-7N6A-727A-JZNO-STRX-XKS7-DJAF\n');
  const b = await mesh(null, ['udf', '--content-type', 'text/plain', '--bits', '100', '-'], { input: 'UDF Data Value' });
  t.is(b.stdout.trim(), 'MDDK-7N6A-727A-JZNO-STRX');
  const dir = tmp('udf');
  const f = path.join(dir, 'v.txt');
  fs.writeFileSync(f, 'UDF Data Value');
  const cf = await mesh(null, ['udf', '--content-type', 'text/plain', f, '--json']);
  t.deepEqual(cf.json, { udf: 'MDDK-7N6A-727A-JZNO-STRX-XKS7-DJAF' });
});

test('udf: --sha3, --bits and --key agree with the library', async (t) => {
  const data = utf8('UDF Data Value');
  const s3 = await mesh(null, ['udf', '--content-type', 'text/plain', '--sha3', '--bits', '200'], { input: 'UDF Data Value' });
  t.is(s3.stdout.trim(), contentUdf(data, 'text/plain', { alg: 'sha3', bits: 200 }));
  t.true(s3.stdout.startsWith('K'));
  const key = 'NDBC-Q5G4-ZDLI-X3B3-4ZWH-FZAR-ZBMN-5Q';
  const au = await mesh(null, ['udf', '--content-type', 'text/plain', '--key', key], { input: 'UDF Data Value' });
  t.is(au.stdout.trim(), authenticatorUdf(data, 'text/plain', key));
  t.true(au.stdout.startsWith('A'));
});

test('udf: bad precision, missing content type and --key with --sha3 are usage errors', async (t) => {
  for (const args of [['--content-type', 'text/plain', '--bits', '130'], ['--content-type', 'text/plain', '--bits', '60'], [], ['--content-type', 'x', '--sha3', '--key', 'k']]) {
    const r = await mesh(null, ['udf', ...args, '--json'], { input: 'x' });
    t.is(r.code, 64, args.join(' '));
    t.is(errCode(r), 'usage', r.stdout + r.stderr);
  }
});

test('key share / key recover: round trip, any 3 of 5, and wrong shares refused', async (t) => {
  const secret = b64u(c.randomBytes(32));
  const hexSecret = Buffer.from(fromB64u(secret)).toString('hex');
  const sh = await mesh(null, ['key', 'share', hexSecret, '--quorum', '3', '--shares', '5']);
  t.is(sh.code, 0, sh.stderr);
  const shares = sh.stdout.trim().split('\n');
  t.is(shares.length, 5);
  for (const s of shares) t.regex(s, /^S[A-Z2-7]{3}(-[A-Z2-7]{1,4})+$/);
  for (const pick of [[0, 1, 2], [4, 2, 0], [1, 3, 4]]) {
    const r = await mesh(null, ['key', 'recover', ...pick.map((i) => shares[i] as string)]);
    t.is(r.stdout.trim(), hexSecret);
  }
  // too few
  const few = await mesh(null, ['key', 'recover', shares[0] as string, shares[1] as string, '--json']);
  t.is(errCode(few), 'not-enough-shares', few.stdout + few.stderr);
  t.is(few.code, 1);
  // a share from another split, given as a fourth share, does not agree
  const other = (await mesh(null, ['key', 'share', hexSecret.replace(/^../, 'ff'), '--quorum', '3', '--shares', '5'])).stdout.trim().split('\n');
  const mixed = await mesh(null, ['key', 'recover', shares[0] as string, shares[1] as string, shares[2] as string, other[3] as string, '--json']);
  t.is(errCode(mixed), 'bad-share', mixed.stdout + mixed.stderr);
  // a mistyped character that is not Base32
  const typo = (shares[2] as string).replace(/^(.{6})./, '$11');
  const bad = await mesh(null, ['key', 'recover', shares[0] as string, shares[1] as string, typo, '--json']);
  t.is(errCode(bad), 'bad-share', bad.stdout + bad.stderr);
  // the same share twice
  const dup = await mesh(null, ['key', 'recover', shares[0] as string, shares[0] as string, shares[1] as string, '--json']);
  t.is(errCode(dup), 'duplicate-share', dup.stdout + dup.stderr);
});

test('every command has --help; mesh --help lists them all; unknown commands are usage errors', async (t) => {
  const top = await mesh(null, ['--help']);
  t.is(top.code, 0);
  const names = ['profile create', 'profile show', 'status', 'device claim', 'device list', 'device remove', 'config set', 'config apply', 'admin add', 'admin join', 'admin revoke', 'recover', 'log verify', 'log witnesses', 'account move', 'device move', 'udf', 'key share', 'key recover'];
  for (const n of names) {
    t.true(top.stdout.includes(`mesh ${n} `), n);
    const h = await mesh(null, [...n.split(' '), '--help']);
    t.is(h.code, 0, n);
    t.true(h.stdout.startsWith(`usage: mesh ${n}`), n);
  }
  const u = await mesh(null, ['frobnicate', '--json']);
  t.is(u.code, 64);
  t.is(errCode(u), 'usage', u.stdout + u.stderr);
  const o = await mesh(null, ['device', 'claim', '--no-such-option', '--json']);
  t.is(errCode(o), 'usage', o.stdout + o.stderr);
  const ns = await mesh(tmp('empty'), ['status', '--json']);
  t.is(errCode(ns), 'state', ns.stdout + ns.stderr);
});

// ---------------------------------------------------------------- against a real portal

interface World {
  portal: Portal;
  alice: string;
  aliceAccount: string;
  aliceShares: string[];
  bobShares: string[];
  bob: string;
  bobAccount: string;
  dev?: SimDevice;
}

let world: World | undefined;
const started: { stop(): Promise<void> }[] = [];
const devices: SimDevice[] = [];

test.after.always(async () => {
  for (const d of devices) d.close();
  for (const s of started) await s.stop();
});

async function getWorld(): Promise<World> {
  if (world !== undefined) return world;
  const portal = await startPortal();
  started.push(portal);
  const alice = tmp('alice');
  const bob = tmp('bob');
  const a = await mesh(alice, ['profile', 'create', '--portal', portal.url, '--account', 'alice', '--admin-name', 'laptop', '--json']);
  if (a.code !== 0) throw new Error(`profile create failed: ${a.stdout} ${a.stderr}`);
  const b = await mesh(bob, ['profile', 'create', '--portal', portal.url, '--account', 'bob', '--quorum', '2', '--shares', '3', '--keep-master-key']);
  if (b.code !== 0) throw new Error(`profile create failed: ${b.stdout} ${b.stderr}`);
  const bobShares = [...b.stdout.matchAll(/^\s+\d+\.\s+(S[A-Z2-7-]+)$/gm)].map((m) => m[1] as string);
  world = { portal, alice, aliceAccount: a.json.account, aliceShares: a.json.shares, bob, bobAccount: `bob@${portal.name}`, bobShares };
  return world;
}

test.serial('profile create: binds the account, prints the shares once, keeps keys 0600, refuses to overwrite', async (t) => {
  const w = await getWorld();
  t.is(w.aliceAccount, `alice@${w.portal.name}`);
  t.is(w.aliceShares.length, 5);
  t.is(w.bobShares.length, 3, 'human output shows the shares, one per numbered line');
  const st = JSON.parse(fs.readFileSync(path.join(w.alice, 'profile.json'), 'utf8')) as { master: string; account: string; personalSeq: number };
  t.is(st.account, w.aliceAccount);
  t.is(st.personalSeq, 1);
  t.is(fs.statSync(path.join(w.alice, 'admin-keys.json')).mode & 0o777, 0o600);
  t.is(fs.statSync(path.join(w.alice, 'profile.json')).mode & 0o777, 0o600);
  t.false(fs.existsSync(path.join(w.alice, 'master-seed.json')), 'the master key is not kept without --keep-master-key');
  t.is(fs.statSync(path.join(w.bob, 'master-seed.json')).mode & 0o777, 0o600);
  t.false(fs.readFileSync(path.join(w.alice, 'profile.json'), 'utf8').includes(JSON.parse(fs.readFileSync(path.join(w.alice, 'admin-keys.json'), 'utf8')).sign));

  // the portal holds the account, bound to the master just made
  const acct = await accountOf(w.portal.url, w.alice, w.aliceAccount);
  const m = parseMasterPayload(payloadBytes(acct.master));
  t.is(m.seq, 1);
  t.is(m.admins.length, 1);
  t.is(m.admins[0]?.name, 'laptop');
  t.is(parsePersonalPayload(payloadBytes(acct.personal!)).account, w.aliceAccount);

  const show = await mesh(w.alice, ['profile', 'show', '--json']);
  t.is(show.json.master, st.master);
  t.is(show.json.admins.length, 1);

  const again = await mesh(w.alice, ['profile', 'create', '--portal', w.portal.url, '--account', 'alice2', '--json']);
  t.is(errCode(again), 'conflict', again.stdout + again.stderr);
  t.is(again.code, 1);
  const taken = await mesh(tmp('carol'), ['profile', 'create', '--portal', w.portal.url, '--account', 'alice', '--json']);
  t.not(taken.code, 0, 'an account name already bound is refused');
});

test.serial('device claim: a wrong code, a tampered record and a substituted device are refused clearly', async (t) => {
  const w = await getWorld();
  const auth = authority(w.portal.url);
  const real = new SimDevice(SimDevice.make(w.portal.url, auth), w.portal.url);
  devices.push(real);
  await real.register();

  // wrong code: a valid code that is not this device's
  const wrong = labelUri({ manufacturer: 'acme', portal: auth, secret: c.randomBytes(16), fingerprint: real.d.fingerprint });
  const r1 = await mesh(w.alice, ['device', 'claim', wrong, '--json', '--wait-ms', '0']);
  t.is(errCode(r1), 'not-found', r1.stdout + r1.stderr);
  t.regex(r1.json.error.message, /check the code/);

  // a mistyped code (not Base32)
  const typo = await mesh(w.alice, ['device', 'claim', `${real.d.claimCode.replace(/^(.{5})./, '$11')} ${real.d.fingerprint}`, '--json']);
  t.is(errCode(typo), 'bad-udf', typo.stdout + typo.stderr);

  // the record under this code is sealed under another secret: the portal returned something else
  const tampered = new SimDevice(SimDevice.make(w.portal.url, auth), w.portal.url);
  devices.push(tampered);
  await tampered.register({ sealSecret: c.randomBytes(16) });
  const r2 = await mesh(w.alice, ['device', 'claim', tampered.d.labelUri, '--json']);
  t.is(errCode(r2), 'decrypt-failed', r2.stdout + r2.stderr);
  t.regex(r2.json.error.message, /code is wrong/);

  // the record opens but holds another device: fingerprint mismatch
  const victim = new SimDevice(SimDevice.make(w.portal.url, auth), w.portal.url);
  const impostor = SimDevice.make(w.portal.url, auth);
  devices.push(victim);
  await victim.register({ blobOf: impostor });
  const r3 = await mesh(w.alice, ['device', 'claim', victim.d.labelUri, '--json']);
  t.is(errCode(r3), 'fingerprint-mismatch', r3.stdout + r3.stderr);
  t.regex(r3.json.error.message, /substituted/);

  const show = await mesh(w.alice, ['profile', 'show', '--json']);
  t.is(show.json.devices.length, 0, 'nothing was claimed');
});

test.serial('device claim: endorsement shown, claim delivered, device confirms', async (t) => {
  const w = await getWorld();
  const maker = c.ed25519KeyPair();
  const makerId = contentUdf(c.ed25519Spki(maker.publicKey), 'application/pkix-keyinfo');
  const dev = new SimDevice(SimDevice.make(w.portal.url, authority(w.portal.url), { maker }), w.portal.url);
  devices.push(dev);
  await dev.register();
  w.dev = dev;
  const st = JSON.parse(fs.readFileSync(path.join(w.alice, 'profile.json'), 'utf8')) as { master: string };
  // the device: answer the claim when it shows up in its feed
  let stop = false;
  const answering = (async () => {
    while (!stop) {
      const items = await dev.poll();
      if (items.some((i) => i.kind === 'claim')) {
        await dev.status([{ master: st.master, account: w.aliceAccount, apps: [] }]);
        return;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  const r = await mesh(w.alice, ['device', 'claim', `${dev.d.claimCode} ${dev.d.fingerprint}`, '--name', 'hall thermostat', '--trust-manufacturer', makerId, '--wait-ms', '20000', '--json']);
  stop = true;
  await answering;
  t.is(r.code, 0, r.stdout + r.stderr);
  t.is(r.json.accepted, true);
  t.is(r.json.device.id, dev.d.id);
  t.is(r.json.endorsedBy.manufacturer, 'acme');
  t.is(r.json.endorsedBy.trusted, true);
  t.is(r.json.personalSeq, 2);
  const acct = await accountOf(w.portal.url, w.alice, w.aliceAccount);
  const pp = parsePersonalPayload(payloadBytes(acct.personal!));
  t.deepEqual(pp.devices.map((d) => d.id), [dev.d.id]);
  const again = await mesh(w.alice, ['device', 'claim', dev.d.labelUri, '--json', '--wait-ms', '0']);
  t.is(errCode(again), 'conflict', again.stdout + again.stderr);
  // an unendorsed device claimed by hand: a warning on stderr, not a refusal
  const plain = new SimDevice(SimDevice.make(w.portal.url, authority(w.portal.url)), w.portal.url);
  devices.push(plain);
  await plain.register();
  const p = await mesh(w.alice, ['device', 'claim', plain.d.labelUri, '--name', 'spare', '--wait-ms', '0']);
  t.is(p.code, 0, p.stderr);
  t.regex(p.stderr, /not endorsed/);
  t.regex(p.stdout, /Claimed spare/);
});

test.serial('config set: publishes, seq increments at the portal, merged, encrypted to the device', async (t) => {
  const w = await getWorld();
  const dev = w.dev!;
  const r1 = await mesh(w.alice, ['config', 'set', 'thermostat', 'target=21', 'mode=heat', 'schedule={"am":19}', '--wait', '0', '--json']);
  t.is(r1.code, 0, r1.stderr);
  t.is(r1.json.seq, 1);
  t.is(r1.json.devices.length, 2);
  const seqAt = async () => parseApplicationPayload(payloadBytes((await accountOf(w.portal.url, w.alice, w.aliceAccount)).applications.thermostat!)).seq;
  t.is(await seqAt(), 1);
  const r2 = await mesh(w.alice, ['config', 'set', 'thermostat', 'target=22.5', 'mode=', 'label=hall', '--wait', '0', '--json']);
  t.is(r2.json.seq, 2);
  t.is(await seqAt(), 2);
  const show = await mesh(w.alice, ['config', 'show', 'thermostat', '--json']);
  t.deepEqual(show.json.doc, { target: 22.5, schedule: { am: 19 }, label: 'hall' });
  await dev.poll();
  const cfg = dev.latestConfig('thermostat');
  t.is(cfg?.seq, 2);
  t.deepEqual(cfg?.doc, { target: 22.5, schedule: { am: 19 }, label: 'hall' });

  const file = path.join(tmp('cfg'), 'lamp.json');
  fs.writeFileSync(file, JSON.stringify({ on: true, level: 40 }));
  const ap = await mesh(w.alice, ['config', 'apply', 'lamp', file, '--wait', '0', '--json']);
  t.is(ap.json.seq, 1);
  t.is(ap.json.personalSeq !== undefined, true, 'a new application is added to the personal profile');
  const bad = await mesh(w.alice, ['config', 'set', 'Bad App', 'x=1', '--json']);
  t.is(errCode(bad), 'usage', bad.stdout + bad.stderr);
  fs.writeFileSync(file, '[1,2]');
  const notObj = await mesh(w.alice, ['config', 'apply', 'lamp', file, '--json']);
  t.is(errCode(notObj), 'malformed', notObj.stdout + notObj.stderr);
});

test.serial('config set --wait-ms: reports applied, or the error the device signed', async (t) => {
  const w = await getWorld();
  const dev = w.dev!;
  const master = (JSON.parse(fs.readFileSync(path.join(w.alice, 'profile.json'), 'utf8')) as { master: string }).master;
  let stop = false;
  const answering = (async () => {
    let answered = 0;
    while (!stop && answered < 2) {
      for (const i of await dev.poll()) {
        if (i.kind !== 'application') continue;
        const p = parseApplicationPayload(payloadBytes(i.object));
        if (p.app !== 'thermostat') continue;
        const doc = docOf(i.object, dev.d.keys.enc, dev.d.id) as { target?: unknown };
        if (typeof doc.target === 'number' && doc.target > 30) {
          await dev.status([{ master, account: w.aliceAccount, apps: [{ app: 'thermostat', seq: p.seq - 1, appliedAt: new Date().toISOString() }] }], {
            errors: [{ code: 'schema', message: 'target must be at most 30', at: new Date().toISOString(), master, app: 'thermostat', seq: p.seq }],
          });
        } else {
          await dev.status([{ master, account: w.aliceAccount, apps: [{ app: 'thermostat', seq: p.seq, appliedAt: new Date().toISOString() }] }]);
        }
        answered++;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  const ok = await mesh(w.alice, ['config', 'set', 'thermostat', 'target=20', '--wait-ms', '1500', '--json']);
  const hall = ok.json.results.find((x: { device: string }) => x.device === 'hall thermostat');
  t.is(hall.result, 'applied');
  t.is(hall.seq, ok.json.seq);
  const spare = ok.json.results.find((x: { device: string }) => x.device === 'spare');
  t.is(spare.result, 'not-reached', 'a device that never answers is reported as not reached yet');
  const refused = await mesh(w.alice, ['config', 'set', 'thermostat', 'target=35', '--wait-ms', '1500', '--json']);
  stop = true;
  await answering;
  t.is(refused.code, 4, 'exit status 4: a device refused it');
  const r = refused.json.results.find((x: { device: string }) => x.device === 'hall thermostat');
  t.is(r.result, 'refused');
  t.is(r.error.code, 'schema');
  // put a valid value back for what follows
  await mesh(w.alice, ['config', 'set', 'thermostat', 'target=21', '--wait', '0']);
});

test.serial('device list: applied seq per app from the signed status, stale marking, errors', async (t) => {
  const w = await getWorld();
  const dev = w.dev!;
  const st = JSON.parse(fs.readFileSync(path.join(w.alice, 'profile.json'), 'utf8')) as { master: string; apps: Record<string, { seq: number }> };
  const seq = st.apps.thermostat!.seq;
  const old = new Date(Date.now() - 2 * 86_400_000).toISOString();
  await dev.status([{ master: st.master, account: w.aliceAccount, apps: [{ app: 'thermostat', seq, appliedAt: old }] }], {
    lastContact: old,
    errors: [{ code: 'schema', message: 'lamp is not run here', at: old, master: st.master, app: 'lamp', seq: 1 }, { code: 'x', message: 'someone else', at: old, master: 'MAAA-BBBB-CCCC-DDDD-EEEE' }],
  });
  const r = await mesh(w.alice, ['device', 'list', '--json']);
  t.is(r.code, 0, r.stderr);
  const d = r.json.devices.find((x: { id: string }) => x.id === dev.d.id);
  t.is(d.state, 'ok');
  t.true(d.owner);
  t.true(d.stale);
  t.is(d.lastContact, old);
  const th = d.apps.find((a: { app: string }) => a.app === 'thermostat');
  t.is(th.seq, seq);
  t.true(th.upToDate);
  t.is(d.lastError.code, 'schema', "another owner's errors are not shown");
  const spare = r.json.devices.find((x: { name: string }) => x.name === 'spare');
  t.is(spare.state, 'no-status');
  const fresh = await mesh(w.alice, ['device', 'list', '--max-stale-ms', String(3 * 86_400_000), '--json']);
  t.false(fresh.json.devices.find((x: { id: string }) => x.id === dev.d.id).stale);
  const human = await mesh(w.alice, ['device', 'list']);
  t.regex(human.stdout, /hall thermostat .* STALE/);
  t.regex(human.stdout, new RegExp(`thermostat: applied #${seq}`));
  await dev.status([{ master: st.master, account: w.aliceAccount, apps: [{ app: 'thermostat', seq, appliedAt: new Date().toISOString() }] }]);
});

test.serial('device remove: the device is told, dropped from the profile, and later configuration skips it', async (t) => {
  const w = await getWorld();
  const list = (await mesh(w.alice, ['profile', 'show', '--json'])).json.devices as { id: string; name: string; fingerprint: string }[];
  const spare = list.find((d) => d.name === 'spare')!;
  const sim = devices.find((d) => d.d.id === spare.id)!;
  const dev = w.dev!;
  const r = await mesh(w.alice, ['device', 'remove', spare.fingerprint.slice(0, 9), '--wait', '0', '--json']);
  t.is(r.code, 0, r.stderr);
  t.is(r.json.removed.id, spare.id);
  await sim.poll();
  t.true(sim.items.some((i) => i.kind === 'remove'));
  const acct = await accountOf(w.portal.url, w.alice, w.aliceAccount);
  t.false(parsePersonalPayload(payloadBytes(acct.personal!)).devices.some((d) => d.id === spare.id));
  const next = await mesh(w.alice, ['config', 'set', 'thermostat', 'note=after-remove', '--wait', '0', '--json']);
  t.deepEqual(next.json.devices.map((d: { name: string }) => d.name), ['hall thermostat']);
  const env = (await accountOf(w.portal.url, w.alice, w.aliceAccount)).applications.thermostat!;
  t.false(targetsOf(env).includes(spare.id));
  t.false(env.parts?.some((x) => x.kid === encKeyId(sim.d.keys.enc.publicKey)), 'not encrypted to the removed device');
  t.true(env.parts?.some((x) => x.kid === encKeyId(dev.d.keys.enc.publicKey)));
  const unknown = await mesh(w.alice, ['device', 'remove', 'no-such-device', '--json']);
  t.is(errCode(unknown), 'not-found', unknown.stdout + unknown.stderr);
});

test.serial('log verify: consistent, all receipts included; a device that saw another history is a split view', async (t) => {
  const w = await getWorld();
  const first = await mesh(w.alice, ['log', 'verify', '--json']);
  t.is(first.code, 0, first.stdout + first.stderr);
  t.true(first.json.ok);
  t.true(first.json.receipts.total >= 6);
  await mesh(w.alice, ['config', 'set', 'thermostat', 'note=x', '--wait', '0']);
  const second = await mesh(w.alice, ['log', 'verify', '--json']);
  t.true(second.json.ok);
  t.is(second.json.previous.size, first.json.treeHead.size);
  t.is(second.json.receipts.checkedNow, 1);

  // the device reports a head the owner's view does not contain
  const dev = w.dev!;
  const master = (JSON.parse(fs.readFileSync(path.join(w.alice, 'profile.json'), 'utf8')) as { master: string }).master;
  await dev.status([{ master, account: w.aliceAccount, apps: [] }], { treeHead: { size: second.json.treeHead.size, root: b64u(c.randomBytes(32)) } });
  const split = await mesh(w.alice, ['log', 'verify', '--json']);
  t.is(split.code, 1);
  t.is(errCode(split), 'log-inconsistent', split.stdout + split.stderr);
  t.regex(split.json.error.message, /SPLIT VIEW/);
  // a device that saw an honest, older head is fine
  await dev.status([{ master, account: w.aliceAccount, apps: [] }], { treeHead: { size: first.json.treeHead.size, root: first.json.treeHead.root } });
  const ok = await mesh(w.alice, ['log', 'verify']);
  t.is(ok.code, 0, ok.stderr);
  t.regex(ok.stdout, /verdict: OK/);
  t.regex(ok.stdout, /1 device saw the same history/);

  // a different portal key than the one pinned is refused
  const st = JSON.parse(fs.readFileSync(path.join(w.alice, 'profile.json'), 'utf8')) as Record<string, unknown>;
  const copy = tmp('pin');
  fs.copyFileSync(path.join(w.alice, 'admin-keys.json'), path.join(copy, 'admin-keys.json'));
  fs.writeFileSync(path.join(copy, 'profile.json'), JSON.stringify({ ...st, portalId: 'MAAA-AAAA-AAAA-AAAA-AAAA-AAAA-AAAA' }));
  const pinned = await mesh(copy, ['log', 'verify', '--json']);
  t.is(errCode(pinned), 'bad-key', pinned.stdout + pinned.stderr);
});

const HEATING = { type: 'object', properties: { level: { type: 'number', minimum: 0, maximum: 10 } }, additionalProperties: false };
const LIGHT = { type: 'object', properties: { level: { type: 'number', minimum: 0, maximum: 5 } }, additionalProperties: false };

async function logSize(url: string): Promise<number> {
  const client = new PortalClient({ url });
  try {
    return (JSON.parse(Buffer.from(payloadBytes(await client.treeHead())).toString('utf8')) as { size: number }).size;
  } finally {
    client.close();
  }
}

/** `mesh config set heating level=11` from `home` is refused before publishing, with the schema's message: the log does not grow. */
async function refusesOutOfRange(t: ExecutionContext, w: World, home: string): Promise<void> {
  const before = await logSize(w.portal.url);
  const r = await mesh(home, ['config', 'set', 'heating', 'level=11', '--wait', '0', '--json']);
  t.is(errCode(r), 'schema', r.stdout + r.stderr);
  t.regex(r.json.error.message as string, /boiler would refuse it: .*level is 11; the maximum is 10/);
  t.is(await logSize(w.portal.url), before, 'nothing was published');
}

test.serial('device claim: a device that declares its schema; the personal profile carries it; config set checks values before publishing', async (t) => {
  const w = await getWorld();
  const boiler = new SimDevice(SimDevice.make(w.portal.url, authority(w.portal.url), { model: 'boiler', schemas: { heating: HEATING } }), w.portal.url);
  devices.push(boiler);
  await boiler.register({ schemas: { heating: HEATING } });
  const r = await mesh(w.alice, ['device', 'claim', boiler.d.labelUri, '--name', 'boiler', '--wait-ms', '0', '--json']);
  t.is(r.code, 0, r.stdout + r.stderr);
  const pp = parsePersonalPayload(payloadBytes((await accountOf(w.portal.url, w.alice, w.aliceAccount)).personal!));
  t.deepEqual(pp.schemas, { [schemaFingerprint(HEATING)]: HEATING }, 'one copy, by fingerprint');
  await refusesOutOfRange(t, w, w.alice);
});

test.serial('admin add / join: a second administration device by one-time PIN; then revoke it', async (t) => {
  const w = await getWorld();
  const phone = tmp('phone');
  let joined: Promise<Run> | undefined;
  let buf = '';
  const add = mesh(w.alice, ['admin', 'add', '--name', 'phone', '--wait-ms', '30000', '--json', ...w.aliceShares.slice(0, 3).flatMap((s) => ['--share', s])], {
    onStdout: (chunk) => {
      buf += chunk;
      if (joined !== undefined) return;
      const line = buf.split('\n').find((l) => l.includes('"pin"') && l.endsWith('}'));
      if (line === undefined) return;
      const { pin } = JSON.parse(line) as { pin: string };
      const master = (JSON.parse(fs.readFileSync(path.join(w.alice, 'profile.json'), 'utf8')) as { master: string }).master;
      joined = mesh(phone, ['admin', 'join', '--portal', w.portal.url, '--account', w.aliceAccount, '--pin', pin, '--name', 'phone', '--master', master, '--wait-ms', '30000', '--json']);
    },
  });
  const a = await add;
  t.is(a.code, 0, a.stdout + a.stderr);
  t.truthy(joined);
  const j = await joined!;
  t.is(j.code, 0, j.stdout + j.stderr);
  t.is(a.json.added.name, 'phone');
  t.is(j.json.admin.key, a.json.added.key);
  t.is(j.json.devices.length, 2);
  t.true(j.json.apps.thermostat.readable, 'configurations were re-encrypted so the new device can read them');
  // the joined device has the devices' schemas back (from the personal profile, checked against each device's signed profile)
  await refusesOutOfRange(t, w, phone);
  // a device the phone claims: the laptop takes its schema from the personal profile at its next sync
  const lamp = new SimDevice(SimDevice.make(w.portal.url, authority(w.portal.url), { model: 'lamp', schemas: { light: LIGHT } }), w.portal.url);
  devices.push(lamp);
  await lamp.register({ schemas: { light: LIGHT } });
  const cl = await mesh(phone, ['device', 'claim', lamp.d.labelUri, '--name', 'lamp', '--wait-ms', '0', '--json']);
  t.is(cl.code, 0, cl.stdout + cl.stderr);
  const size = await logSize(w.portal.url);
  const dim = await mesh(w.alice, ['config', 'set', 'light', 'level=9', '--wait', '0', '--json']);
  t.is(errCode(dim), 'schema', dim.stdout + dim.stderr);
  t.regex(dim.json.error.message as string, /lamp would refuse it: .*level is 9; the maximum is 5/);
  t.is(await logSize(w.portal.url), size, 'nothing was published');

  // the phone can change configuration; the laptop then carries on from its seq
  const before = (await mesh(w.alice, ['profile', 'show', '--json'])).json.apps.find((x: { app: string }) => x.app === 'thermostat').seq as number;
  const fromPhone = await mesh(phone, ['config', 'set', 'thermostat', 'target=19', '--wait', '0', '--json']);
  t.is(fromPhone.code, 0, fromPhone.stderr);
  t.is(fromPhone.json.seq, before + 1);
  const fromLaptop = await mesh(w.alice, ['config', 'set', 'thermostat', 'mode=eco', '--wait', '0', '--json']);
  t.is(fromLaptop.json.seq, before + 2);
  t.deepEqual((await mesh(w.alice, ['config', 'show', 'thermostat', '--json'])).json.doc.target, 19, "the laptop merged on top of the phone's change");

  // revoke needs the master key: without shares it says so; with a wrong share set it refuses
  const noKey = await mesh(w.alice, ['admin', 'revoke', 'phone', '--json']);
  t.is(errCode(noKey), 'not-enough-shares', noKey.stdout + noKey.stderr);
  const wrong = await mesh(w.alice, ['admin', 'revoke', 'phone', '--json', ...w.bobShares.slice(0, 2).flatMap((s) => ['--share', s])]);
  t.not(wrong.code, 0);
  t.true(['bad-share', 'not-enough-shares'].includes(errCode(wrong) ?? ''), errCode(wrong));
  const self = await mesh(w.alice, ['admin', 'revoke', 'laptop', '--json', ...w.aliceShares.slice(2, 5).flatMap((s) => ['--share', s])]);
  t.is(errCode(self), 'usage', self.stdout + self.stderr);
  const rv = await mesh(w.alice, ['admin', 'revoke', 'phone', '--json', ...w.aliceShares.slice(2, 5).flatMap((s) => ['--share', s])]);
  t.is(rv.code, 0, rv.stdout + rv.stderr);
  t.is(rv.json.revoked.key, a.json.added.key);
  const acct = await accountOf(w.portal.url, w.alice, w.aliceAccount);
  const m = parseMasterPayload(payloadBytes(acct.master));
  t.deepEqual(m.admins.map((x) => x.name), ['laptop']);
  t.true(m.revoked.includes(a.json.added.key));
  const denied = await mesh(phone, ['config', 'set', 'thermostat', 'target=30', '--json']);
  t.is(errCode(denied), 'revoked-key', denied.stdout + denied.stderr);
});

test.serial('recover: 3 shares on a new computer rebuild alice; wrong shares are refused; the old laptop is revoked', async (t) => {
  const w = await getWorld();
  const oldLaptop = tmp('old');
  for (const f of fs.readdirSync(w.alice)) fs.copyFileSync(path.join(w.alice, f), path.join(oldLaptop, f));
  const before = (await mesh(w.alice, ['config', 'show', 'thermostat', '--json'])).json as { seq: number; doc: unknown };
  fs.rmSync(w.alice, { recursive: true, force: true });

  const fresh = tmp('new');
  // shares of another account (bob: a valid split, the wrong master)
  const bobs = await mesh(fresh, ['recover', ...w.bobShares.slice(0, 2), '--portal', w.portal.url, '--account', w.aliceAccount, '--json']);
  t.is(errCode(bobs), 'bad-share', bobs.stdout + bobs.stderr);
  t.regex(bobs.json.error.message, /do not rebuild alice/);
  // one share mistyped
  const typo = await mesh(fresh, ['recover', w.aliceShares[0]!, w.aliceShares[1]!, w.aliceShares[2]!.replace(/^(.{6})./, '$11'), '--portal', w.portal.url, '--account', w.aliceAccount, '--json']);
  t.is(errCode(typo), 'bad-share', typo.stdout + typo.stderr);
  // a share with a valid form but the wrong value: the rebuilt key is not alice's
  const s2 = w.aliceShares[2]!;
  const other = s2.slice(0, 10) + (s2[10] === 'A' ? 'B' : 'A') + s2.slice(11);
  const wrongValue = await mesh(fresh, ['recover', w.aliceShares[0]!, w.aliceShares[1]!, other, '--portal', w.portal.url, '--account', w.aliceAccount, '--json']);
  t.is(errCode(wrongValue), 'bad-share', wrongValue.stdout + wrongValue.stderr);
  t.false(fs.existsSync(path.join(fresh, 'profile.json')));

  const r = await mesh(fresh, ['recover', w.aliceShares[4]!, w.aliceShares[1]!, w.aliceShares[3]!, '--portal', w.portal.url, '--account', w.aliceAccount, '--admin-name', 'new laptop', '--json']);
  t.is(r.code, 0, r.stdout + r.stderr);
  t.is(r.json.account, w.aliceAccount);
  t.true(r.json.revoked.length >= 1);
  t.is(r.json.apps.thermostat.seq, before.seq);
  t.true(r.json.apps.thermostat.readable, 'configuration read back with the escrow key');
  const show = await mesh(fresh, ['config', 'show', 'thermostat', '--json']);
  t.deepEqual(show.json.doc, before.doc);
  const prof = await mesh(fresh, ['profile', 'show', '--json']);
  t.deepEqual(prof.json.admins.map((a: { name: string }) => a.name), ['new laptop']);
  t.is(prof.json.devices.length, 3);
  // the devices' schemas came back: values are checked before publishing
  await refusesOutOfRange(t, w, fresh);

  // the lost laptop can no longer change anything
  const lost = await mesh(oldLaptop, ['config', 'set', 'thermostat', 'target=30', '--json']);
  t.is(errCode(lost), 'revoked-key', lost.stdout + lost.stderr);

  // the recovered owner publishes; the device receives it signed by the new key, readable by it
  const pub = await mesh(fresh, ['config', 'set', 'thermostat', 'target=23', '--wait', '0', '--json']);
  t.is(pub.code, 0, pub.stderr);
  t.is(pub.json.seq, before.seq + 1);
  const dev = w.dev!;
  await dev.poll();
  t.true(dev.items.some((i) => i.kind === 'master' && parseMasterPayload(payloadBytes(i.object)).admins[0]?.name === 'new laptop'), 'the new master profile reached the device');
  const cfg = dev.latestConfig('thermostat');
  t.is(cfg?.seq, before.seq + 1);
  t.is((cfg?.doc as { target: number } | undefined)?.target, 23);

  // recovering into a home that already has a profile is refused
  const again = await mesh(fresh, ['recover', ...w.aliceShares.slice(0, 3), '--portal', w.portal.url, '--account', w.aliceAccount, '--json']);
  t.is(errCode(again), 'conflict', again.stdout + again.stderr);
  const lv = await mesh(fresh, ['log', 'verify', '--json']);
  t.is(lv.code, 0, lv.stdout);
  w.alice = fresh;
});
