import test from 'ava';
import { codeOf } from './helpers/code-of.js';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import jsQRModule from 'jsqr';
import pngjs from 'pngjs';
import { fromB64u } from '../mesh/bytes.js';
import { claimCode, cutUdf, parseClaimLabel, shortFingerprint } from '../mesh/claim.js';
import { ed25519KeyPair, randomBytes } from '../mesh/crypto.js';
import { b64u } from '../mesh/bytes.js';
import { isMeshError } from '../mesh/errors.js';
import { signKeyId } from '../mesh/keys.js';
import { verifyDeviceProfile, verifyEndorsement } from '../mesh/profiles.js';
import { schemaFingerprint } from '../mesh/schema.js';
import { readDeviceDirectory, readAgentSettings, readSchemas } from '../runtime/device-files.js';
import { MANIFEST_FILE, MANUFACTURER_KEY_FILE, PARTIAL_FILE, provisionBatch, type BatchProgress, type Manifest } from '../provisioning/batch.js';

const CLI = fileURLToPath(new URL('../provisioning/cli.js', import.meta.url));
const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const jsQR = ((jsQRModule as unknown as { default?: unknown }).default ?? jsQRModule) as (data: Uint8ClampedArray, w: number, h: number) => { data: string } | null;

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'mesh-provision-test-'));
test.after.always(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));
let seq = 0;
const tmp = (name: string): string => path.join(tmpRoot, `${name}-${++seq}`);

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : -1;
      resolve({ code, stdout, stderr });
    });
  });
}

function decodePng(file: string): string | undefined {
  const png = pngjs.PNG.sync.read(fs.readFileSync(file));
  return jsQR(new Uint8ClampedArray(png.data.buffer, png.data.byteOffset, png.data.length), png.width, png.height)?.data;
}

const mode = (f: string): number => fs.statSync(f).mode & 0o777;

const SCHEMA = { type: 'object', additionalProperties: false, properties: { setpoint: { type: 'number', minimum: 5, maximum: 30 } } };

test('batch of 5 through the CLI: board files, modes, signatures, labels, public manifest', async (t) => {
  const out = tmp('five');
  const schemaFile = path.join(tmpRoot, `schema-${++seq}.json`);
  fs.writeFileSync(schemaFile, JSON.stringify(SCHEMA));
  const r = await run(['batch', '--count', '5', '--model', 'thermo', '--out', out, '--portal', 'http://127.0.0.1:8080/mesh', '--serial-prefix', 'th-', '--schema', `thermostat=${schemaFile}`, '--json']);
  t.is(r.code, 0, r.stderr);
  const summary = JSON.parse(r.stdout) as { count: number; dir: string; seconds: number; devicesPerSecond: number; manufacturerKeyId: string; manufacturerKeyGenerated: boolean; manufacturerKeyFile: string };
  t.is(summary.count, 5);
  t.true(summary.devicesPerSecond > 0);
  t.true(summary.manufacturerKeyGenerated);
  t.is(summary.manufacturerKeyFile, path.join(out, MANUFACTURER_KEY_FILE));

  // the manufacturer key made for us: 0600, and the one whose UDF the summary prints
  const keyFile = path.join(out, MANUFACTURER_KEY_FILE);
  t.is(mode(keyFile), 0o600);
  const mkSeed = (JSON.parse(fs.readFileSync(keyFile, 'utf8')) as { sign: string }).sign;
  const mk = ed25519KeyPair(fromB64u(mkSeed, 'seed', 32));
  t.is(signKeyId(mk.publicKey), summary.manufacturerKeyId);

  t.false(fs.existsSync(path.join(out, PARTIAL_FILE)));
  const manifestText = fs.readFileSync(path.join(out, MANIFEST_FILE), 'utf8');
  const manifest = JSON.parse(manifestText) as Manifest;
  t.is(manifest.count, 5);
  t.is(manifest.devices.length, 5);
  t.is(manifest.manufacturerKeyId, summary.manufacturerKeyId);
  t.deepEqual(
    manifest.devices.map((d) => d.serial),
    ['th-000001', 'th-000002', 'th-000003', 'th-000004', 'th-000005'],
  );
  t.false(manifestText.includes(mkSeed), 'the manufacturer private key is not in the manifest');

  for (const m of manifest.devices) {
    const dir = path.join(out, m.serial);
    for (const f of ['device.json', 'keys.json', 'claim.json', 'agent.json', 'schemas/thermostat.json', 'mesh-agent.service', 'label.svg', 'label.png']) {
      t.true(fs.existsSync(path.join(dir, f)), `${m.serial}/${f}`);
    }
    t.is(mode(path.join(dir, 'keys.json')), 0o600);
    t.is(mode(path.join(dir, 'claim.json')), 0o600);
    t.is(mode(path.join(dir, 'label.png')), 0o600);
    t.is(mode(path.join(dir, 'label.svg')), 0o600);

    // what the agent reads
    const d = readDeviceDirectory(dir);
    t.is(d.id, m.id);
    t.is(d.serial, m.serial);
    t.is(readAgentSettings(dir).portal, 'http://127.0.0.1:8080/mesh');
    t.deepEqual(readSchemas(dir), { thermostat: SCHEMA });

    // signatures: the self-signed profile, the manufacturer's endorsement
    t.is(verifyDeviceProfile(d.profile, m.id).id, m.id);
    const e = verifyEndorsement(m.endorsement, m.id);
    t.is(e.manufacturerKeyId, summary.manufacturerKeyId);
    t.is(e.payload.serial, m.serial);
    t.is(e.payload.model, 'thermo');
    t.is(e.payload.manufacturer, 'acme');

    // no secret in the manifest: not the claim secret, code or URI, not any private key
    const claim = JSON.parse(fs.readFileSync(path.join(dir, 'claim.json'), 'utf8')) as { secret: string; code: string; uri: string };
    const keys = JSON.parse(fs.readFileSync(path.join(dir, 'keys.json'), 'utf8')) as Record<string, string>;
    for (const secret of [claim.secret, claim.code, claim.uri, ...Object.values(keys)]) t.false(manifestText.includes(secret), `manifest leaks ${secret}`);

    // the label decodes back to the claim URI, and the URI to this device's secret and fingerprint
    t.is(decodePng(path.join(dir, 'label.png')), claim.uri);
    const label = parseClaimLabel(claim.uri);
    t.deepEqual(label.secret, d.claimSecret);
    t.is(b64u(label.secret), claim.secret);
    t.is(label.fingerprint, m.fingerprint);
    t.is(label.fingerprint, d.fingerprint);
    t.is(label.portal, '127.0.0.1:8080');
    t.is(label.manufacturer, 'acme');
    const svg = fs.readFileSync(path.join(dir, 'label.svg'), 'utf8');
    t.true(svg.startsWith('<?xml'));
    for (const text of [m.serial, 'thermo', 'acme', ...m.fingerprint.split('-'), ...claim.code.split('-')]) t.true(svg.includes(text), `label.svg shows ${text}`);

    const unit = fs.readFileSync(path.join(dir, 'mesh-agent.service'), 'utf8');
    for (const line of [
      'User=mesh',
      'StateDirectory=mesh-agent',
      'ExecStart=/usr/bin/node --jitless /opt/mesh/mesh-agent.mjs run --data /var/lib/mesh-agent',
      'Restart=always',
      'ProtectSystem=strict',
      'NoNewPrivileges=yes',
      'PrivateTmp=yes',
      'ReadWritePaths=/var/lib/mesh-agent',
    ]) {
      t.true(unit.split('\n').includes(line), line);
    }
  }
  t.is(new Set(manifest.devices.map((d) => d.id)).size, 5);

  // re-render a label
  const dir = path.join(out, 'th-000003');
  const uri = readDeviceDirectory(dir).claimUri;
  fs.rmSync(path.join(dir, 'label.png'));
  fs.rmSync(path.join(dir, 'label.svg'));
  const l = await run(['label', dir]);
  t.is(l.code, 0, l.stderr);
  t.is(decodePng(path.join(dir, 'label.png')), uri);
  t.true(fs.readFileSync(path.join(dir, 'label.svg'), 'utf8').includes('th-000003'));

  // a directory from before 140-bit fingerprints (an mcu:// URI, 100 bits): made current, to be printed again
  const before = readDeviceDirectory(dir);
  const fp100 = cutUdf(before.id, 100);
  const claimFile = path.join(dir, 'claim.json');
  const deviceFile = path.join(dir, 'device.json');
  const oldUri = `mcu://acme@127.0.0.1:8080/${claimCode(before.claimSecret)}?fp=${fp100}`;
  fs.writeFileSync(claimFile, JSON.stringify({ ...JSON.parse(fs.readFileSync(claimFile, 'utf8')), uri: oldUri }));
  fs.writeFileSync(deviceFile, JSON.stringify({ ...JSON.parse(fs.readFileSync(deviceFile, 'utf8')), fingerprint: fp100 }));
  t.is(codeOf(() => parseClaimLabel(oldUri)), 'udf-too-short');
  const up = await run(['label', dir]);
  t.is(up.code, 0, up.stderr);
  t.regex(up.stdout, /print this label again/);
  const after = readDeviceDirectory(dir);
  t.is(after.fingerprint, shortFingerprint(before.id));
  t.is(after.claimUri, `https://127.0.0.1:8080/claim#code=${claimCode(before.claimSecret)}&fp=${shortFingerprint(before.id)}&m=acme`);
  t.is(decodePng(path.join(dir, 'label.png')), after.claimUri);
  t.is(mode(claimFile), 0o600);
  t.deepEqual(after.keys, before.keys);
  t.deepEqual(after.profile, before.profile);
  // a URI whose secret is another device's is refused, and nothing is rewritten
  const other = `mcu://acme@127.0.0.1:8080/${claimCode(randomBytes(16))}?fp=${fp100}`;
  fs.writeFileSync(claimFile, JSON.stringify({ ...JSON.parse(fs.readFileSync(claimFile, 'utf8')), uri: other }));
  fs.writeFileSync(deviceFile, JSON.stringify({ ...JSON.parse(fs.readFileSync(deviceFile, 'utf8')), fingerprint: fp100 }));
  const refused = await run(['label', dir]);
  t.not(refused.code, 0);
  t.is(readDeviceDirectory(dir).claimUri, other);
});

test('keygen, then a given manufacturer key endorses every device and no new key is made', async (t) => {
  const out = tmp('withkey');
  const keyFile = path.join(tmpRoot, `mk-${++seq}.json`);
  const kg = await run(['keygen', keyFile, '--json']);
  t.is(kg.code, 0, kg.stderr);
  t.is(mode(keyFile), 0o600);
  const seed = fromB64u((JSON.parse(fs.readFileSync(keyFile, 'utf8')) as { sign: string }).sign, 'seed', 32);
  const mkId = signKeyId(ed25519KeyPair(seed).publicKey);
  t.is((JSON.parse(kg.stdout) as { manufacturerKeyId: string }).manufacturerKeyId, mkId);
  await refused(t, ['keygen', keyFile], 'conflict', 1);
  t.deepEqual(fromB64u((JSON.parse(fs.readFileSync(keyFile, 'utf8')) as { sign: string }).sign, 'seed', 32), seed, 'an existing key is never replaced');
  const r = await run(['batch', '--count', '3', '--model', 'plug', '--manufacturer', 'globex', '--out', out, '--portal', 'https://portal.example.com', '--manufacturer-key', keyFile]);
  t.is(r.code, 0, r.stderr);
  t.true(r.stdout.includes(mkId), 'the summary prints the manufacturer key fingerprint');
  t.true(r.stdout.includes('devices/s'));
  t.false(fs.existsSync(path.join(out, MANUFACTURER_KEY_FILE)));
  const manifest = JSON.parse(fs.readFileSync(path.join(out, MANIFEST_FILE), 'utf8')) as Manifest;
  t.is(manifest.manufacturerKeyId, mkId);
  for (const d of manifest.devices) {
    t.is(verifyEndorsement(d.endorsement, d.id).manufacturerKeyId, mkId);
    t.is(parseClaimLabel(readDeviceDirectory(path.join(out, d.serial)).claimUri).portal, 'portal.example.com');
  }
  t.is(manifest.devices[0]?.serial, 'plug-000001');
});

test('a batch of 1,000 through provisionBatch', async (t) => {
  const out = tmp('thousand');
  const seen: BatchProgress[] = [];
  const r = await provisionBatch({ count: 1000, model: 'thermo', out, portal: 'http://127.0.0.1:8080' }, (p) => seen.push(p));
  t.log(`1,000 devices: ${r.seconds.toFixed(2)} s, ${r.devicesPerSecond.toFixed(1)} devices/s`);
  t.is(r.count, 1000);
  t.is(r.made, 1000);
  t.is(seen.length, 1000);
  t.is(seen.at(-1)?.done, 1000);
  const manifest = JSON.parse(fs.readFileSync(r.manifest, 'utf8')) as Manifest;
  t.is(manifest.devices.length, 1000);
  t.is(new Set(manifest.devices.map((d) => d.id)).size, 1000);
  t.is(new Set(manifest.devices.map((d) => d.serial)).size, 1000);
  const secrets = new Set<string>();
  for (const d of manifest.devices) secrets.add((JSON.parse(fs.readFileSync(path.join(out, d.serial, 'claim.json'), 'utf8')) as { secret: string }).secret);
  t.is(secrets.size, 1000);
  const dirs = fs.readdirSync(out).filter((n) => fs.statSync(path.join(out, n)).isDirectory());
  t.is(dirs.length, 1000);
});

test('an interrupted batch is refused without --resume and finished with it', async (t) => {
  const out = tmp('resume');
  const ac = new AbortController();
  const opts = { count: 10, model: 'thermo', out, portal: 'http://127.0.0.1:8080', workers: 1 };
  const e = await t.throwsAsync(provisionBatch({ ...opts, signal: ac.signal }, (p) => p.done === 3 && ac.abort()));
  t.true(isMeshError(e, 'state'));
  t.true(fs.existsSync(path.join(out, PARTIAL_FILE)));
  t.false(fs.existsSync(path.join(out, MANIFEST_FILE)));
  // a device that was being written when the power went: never recorded, so made again
  fs.mkdirSync(path.join(out, 'thermo-000004'));
  fs.writeFileSync(path.join(out, 'thermo-000004', 'keys.json'), '{"torn');
  fs.appendFileSync(path.join(out, PARTIAL_FILE), '{"device":{"serial":"thermo-0000');

  const again = await t.throwsAsync(provisionBatch(opts));
  t.true(isMeshError(again, 'conflict'));
  const changed = await t.throwsAsync(provisionBatch({ ...opts, model: 'other', resume: true }));
  t.true(isMeshError(changed, 'conflict'));

  const r = await provisionBatch({ ...opts, resume: true });
  t.is(r.kept, 3);
  t.is(r.made, 7);
  const manifest = JSON.parse(fs.readFileSync(r.manifest, 'utf8')) as Manifest;
  t.is(new Set(manifest.devices.map((d) => d.id)).size, 10);
  for (const d of manifest.devices) t.is(readDeviceDirectory(path.join(out, d.serial)).id, d.id);
  t.false(fs.existsSync(path.join(out, PARTIAL_FILE)));
  const done = await t.throwsAsync(provisionBatch({ ...opts, resume: true }));
  t.true(isMeshError(done, 'conflict'), 'a finished batch is not redone');
});

// ---------------------------------------------------------------- bad input

async function refused(t: import('ava').ExecutionContext, args: string[], code: string, exit?: number): Promise<void> {
  const r = await run(args);
  t.not(r.code, 0, `${args.join(' ')} must fail`);
  if (exit !== undefined) t.is(r.code, exit);
  t.regex(r.stderr, new RegExp(`^mesh-provision: error \\[${code}\\]: .+`, 'm'), r.stderr);
  t.notRegex(r.stderr, /\n\s+at /, 'no stack trace');
  const j = await run([...args, '--json']);
  t.not(j.code, 0);
  let parsed: { error?: { code?: string } } = {};
  t.notThrows(() => (parsed = JSON.parse(j.stdout) as typeof parsed), `--json output of ${args.join(' ')}: ${JSON.stringify(j)}`);
  t.is(parsed.error?.code, code);
}

const base = (out: string): string[] => ['batch', '--model', 'thermo', '--out', out, '--portal', 'http://127.0.0.1:8080'];

test('--count 0, --count abc and a missing --count are usage errors', async (t) => {
  const out = tmp('count');
  await refused(t, [...base(out), '--count', '0'], 'usage', 64);
  await refused(t, [...base(out), '--count', 'abc'], 'usage', 64);
  await refused(t, [...base(out), '--count', '-3'], 'usage', 64);
  await refused(t, [...base(out), '--count', '2.5'], 'usage', 64);
  await refused(t, base(out), 'usage', 64);
  t.false(fs.existsSync(out), 'nothing was written');
});

test('missing --model, a bad model or portal, unknown options are usage errors', async (t) => {
  const out = tmp('model');
  await refused(t, ['batch', '--count', '2', '--out', out, '--portal', 'http://127.0.0.1:8080'], 'usage', 64);
  await refused(t, ['batch', '--count', '2', '--model', 'Thermo Stat', '--out', out, '--portal', 'http://127.0.0.1:8080'], 'usage', 64);
  await refused(t, ['batch', '--count', '2', '--model', 'thermo', '--out', out, '--portal', 'not a url'], 'usage', 64);
  await refused(t, ['batch', '--count', '2', '--model', 'thermo', '--out', out, '--portal', 'ftp://x.example'], 'usage', 64);
  await refused(t, [...base(out), '--count', '2', '--colour', 'red'], 'usage', 64);
  await refused(t, ['frobnicate'], 'usage', 64);
  await refused(t, ['label'], 'usage', 64);
  t.false(fs.existsSync(out));
});

test('a non-empty or unwritable --out is refused', async (t) => {
  const full = tmp('full');
  fs.mkdirSync(full);
  fs.writeFileSync(path.join(full, 'something'), 'x');
  await refused(t, [...base(full), '--count', '2'], 'conflict', 1);
  t.deepEqual(fs.readdirSync(full), ['something']);

  const file = tmp('file');
  fs.writeFileSync(file, 'x');
  await refused(t, [...base(file), '--count', '2'], 'conflict', 1);
  await refused(t, [...base(path.join(file, 'sub')), '--count', '2'], 'state', 1);
});

test('a bad manufacturer key file is refused before anything is written', async (t) => {
  const out = tmp('badkey');
  const write = (text: string): string => {
    const f = path.join(tmpRoot, `key-${++seq}.json`);
    fs.writeFileSync(f, text, { mode: 0o600 });
    return f;
  };
  await refused(t, [...base(out), '--count', '2', '--manufacturer-key', write('not json')], 'bad-key', 1);
  await refused(t, [...base(out), '--count', '2', '--manufacturer-key', write(JSON.stringify({ sign: b64u(randomBytes(16)) }))], 'bad-key', 1);
  await refused(t, [...base(out), '--count', '2', '--manufacturer-key', write(JSON.stringify({ seed: b64u(randomBytes(32)) }))], 'bad-key', 1);
  await refused(t, [...base(out), '--count', '2', '--manufacturer-key', write('[]')], 'bad-key', 1);
  await refused(t, [...base(out), '--count', '2', '--manufacturer-key', path.join(tmpRoot, 'no-such-key.json')], 'state', 1);
  t.false(fs.existsSync(out));
});

test('a schema the agent would refuse is refused at the factory', async (t) => {
  const out = tmp('schema');
  const f = path.join(tmpRoot, `bad-schema-${++seq}.json`);
  fs.writeFileSync(f, JSON.stringify({ type: 'object', properties: { a: { oneOf: [] } } }));
  await refused(t, [...base(out), '--count', '2', '--schema', `thermostat=${f}`], 'schema', 1);
  await refused(t, [...base(out), '--count', '2', '--schema', 'thermostat'], 'usage', 64);
  t.false(fs.existsSync(out));
});

test('--help', async (t) => {
  const top = await run(['--help']);
  t.is(top.code, 0);
  t.regex(top.stdout, /mesh-provision batch/);
  t.regex(top.stdout, /mesh-provision label/);
  const b = await run(['batch', '--help']);
  t.is(b.code, 0);
  t.regex(b.stdout, /--manufacturer-key FILE/);
  t.regex(b.stdout, /--resume/);
  const l = await run(['label', '--help']);
  t.is(l.code, 0);
  t.regex(l.stdout, /label DIR\/<serial>/);
});

test('a known model brings its schemas (declared by fingerprint in each signed device profile); a model without one is said to have none', async (t) => {
  const out = tmp('model');
  const r = await run(['batch', '--count', '1', '--model', 'thermostat', '--out', out, '--portal', 'http://127.0.0.1:8080']);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /applications: thermostat \(the schemas of model thermostat, .*examples\/models\/thermostat\.json\)/);
  const dir = path.join(out, 'thermostat-000001');
  const shipped = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'examples', 'thermostat.schema.json'), 'utf8')) as unknown;
  t.deepEqual(JSON.parse(fs.readFileSync(path.join(dir, 'schemas', 'thermostat.json'), 'utf8')), shipped);
  const dev = JSON.parse(fs.readFileSync(path.join(dir, 'device.json'), 'utf8')) as { id: string; profile: unknown };
  t.deepEqual(verifyDeviceProfile(dev.profile, dev.id).payload.apps, [{ name: 'thermostat', schema: schemaFingerprint(shipped) }]);

  const none = tmp('nomodel');
  const n = await run(['batch', '--count', '1', '--model', 'thermo', '--out', none, '--portal', 'http://127.0.0.1:8080', '--json']);
  t.is(n.code, 0, n.stderr);
  t.deepEqual((JSON.parse(n.stdout) as { apps: string[] }).apps, []);
  const human = await run(['batch', '--count', '1', '--model', 'thermo', '--out', tmp('nomodel2'), '--portal', 'http://127.0.0.1:8080']);
  t.regex(human.stdout, /NOTE: model thermo has no schema .* refuse every setting/);
  const d2 = JSON.parse(fs.readFileSync(path.join(none, 'thermo-000001', 'device.json'), 'utf8')) as { id: string; profile: unknown };
  t.deepEqual(verifyDeviceProfile(d2.profile, d2.id).payload.apps, [], 'it declares that it runs nothing');
});
