/**
 * The demo scenario (npm run demo: scripts/run-demo.ts; the e2e test: test/e2e/scenario.test.ts):
 * Alice and Bob and a shared thermostat, end to end, on embedded defaults
 * (SQLite, embedded MQTT broker, a temporary directory, free ports), with real processes:
 * mesh-portal, mesh-provision, mesh-agent and the owners' `mesh` CLI.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const bin = (name: string): string => path.join(root, 'dist', name, 'cli.js');
let tmp = '';
const children: ChildProcess[] = [];
let t0 = Date.now();
const bold = (s: string): string => (process.stdout.isTTY ? `\x1b[1m${s}\x1b[0m` : s);
let say: (s: string) => void = (s) => process.stdout.write(s + '\n');
let agentFile = bin('agent');
let agentNode = process.execPath;
let waitMs = 15_000;
let beforeStep: ((name: string) => Promise<void> | void) | undefined;

export class StepError extends Error {}

async function step<T>(name: string, fn: () => Promise<T>): Promise<T> {
  say(`\n${bold(`== ${name}`)}  (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  try {
    await beforeStep?.(name);
    return await fn();
  } catch (e) {
    throw new StepError(`step "${name}" failed: ${(e as Error).message}`);
  }
}

function run(file: string, args: string[], env: Record<string, string> = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [file, ...args], { env: { ...process.env, ...env }, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${path.basename(path.dirname(file))} ${args.join(' ')}: ${stderr.trim() || stdout.trim() || err.message}`));
      else resolve(stdout);
    });
  });
}

function start(file: string, args: string[], readyPrefix: string, node = process.execPath): Promise<{ proc: ChildProcess; ready: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const proc = spawn(node, [file, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(proc);
    let buf = '';
    let err = '';
    const timer = setTimeout(() => reject(new Error(`${readyPrefix} did not start within ${waitMs * 4} ms: ${err.slice(-500)}`)), waitMs * 4);
    proc.stderr?.on('data', (d: Buffer) => {
      err = (err + d.toString()).slice(-4000);
    });
    proc.stdout?.on('data', (d: Buffer) => {
      buf += d.toString();
      for (const line of buf.split('\n')) {
        if (line.startsWith(readyPrefix + ' ')) {
          clearTimeout(timer);
          resolve({ proc, ready: JSON.parse(line.slice(readyPrefix.length + 1)) as Record<string, unknown> });
        }
      }
    });
    proc.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${readyPrefix} exited with ${code}: ${err.slice(-500)}`));
    });
  });
}

const mesh = (home: string, ...args: string[]): Promise<string> => run(bin('admin'), args, { MESH_HOME: home });

/** `mesh` whose exit status is part of the story (3: a device not reached, 4: a device refused; docs/admin.md) */
function meshExit(home: string, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [bin('admin'), ...args], { env: { ...process.env, MESH_HOME: home }, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout, stderr });
    });
  });
}

async function deviceStatus(dir: string): Promise<{ owners: { account: string; apps: Record<string, { seq: number }> }[]; config: Record<string, unknown>; errors: { code: string; message: string }[] }> {
  return JSON.parse(await run(bin('agent'), ['status', '--data', dir, '--json'])) as never;
}

async function waitFor(what: string, dir: string, ok: (s: Awaited<ReturnType<typeof deviceStatus>>) => boolean): Promise<void> {
  const end = Date.now() + waitMs;
  for (;;) {
    const s = await deviceStatus(dir);
    if (ok(s)) return;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}; device state: ${JSON.stringify({ owners: s.owners, config: s.config, errors: s.errors.slice(-2) })}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** the thermostat's health check (agent.json "health"): a self-test that fails above 26 °C, with the line the owner reads */
const HEALTH = `if grep -Eq '"setpoint": ?(2[7-9]|30)([^0-9]|$)' "$MESH_CONFIG"; then echo 'heater self-test: cannot hold more than 26 °C'; exit 1; fi`;

/** whose `mesh device show` the demo prints after each step (Alice's computer, then her new one) */
let viewer = '';

/** What Alice sees of the thermostat: `mesh device show` (owners, each effective value and who set it, refusals), from the device's signed report. */
async function showConfig(dir: string): Promise<void> {
  if (viewer === '') {
    const out = await run(bin('agent'), ['status', '--data', dir]);
    for (const line of out.split('\n')) if (/^(owners|config| {2})/.test(line)) say('   ' + line);
    return;
  }
  // the device reports after each change; give its signed report a moment to reach the portal
  await new Promise((r) => setTimeout(r, 300));
  const out = await mesh(viewer, 'device', 'show', 'thermostat');
  say('   $ mesh device show thermostat');
  for (const line of out.split('\n')) if (line.trim() !== '' && !/^thermostat {3}|^ {2}last contact/.test(line)) say('   ' + line);
}

function thermostat(s: Awaited<ReturnType<typeof deviceStatus>>): Record<string, unknown> {
  return (s.config.thermostat ?? {}) as Record<string, unknown>;
}

export interface ScenarioOptions {
  /** extra portal arguments, e.g. --database-url and --mqtt-url for the at-scale run */
  readonly portalArgs?: readonly string[];
  /** the agent entry to run: dist/agent/cli.js, or the single-file bundle dist/mesh-agent.mjs */
  readonly agentFile?: string;
  /** the node executable that runs the agent, e.g. an ARM node under qemu (scripts/arm-test.sh) */
  readonly agentNode?: string;
  /** how long to wait for the device at each step */
  readonly waitMs?: number;
  /** start the portal(s) yourself (several processes behind a proxy, say); gets a directory to use */
  readonly startPortal?: (dir: string) => Promise<{ http: string; mqtt: string | null }>;
  /** called as each step starts, with its title (to stop a portal process in the middle, say) */
  readonly beforeStep?: (name: string) => Promise<void> | void;
  readonly say?: (s: string) => void;
}

/** Run the whole scenario; throws StepError naming the step that failed; always cleans up. */
export async function runScenario(opts: ScenarioOptions = {}): Promise<void> {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mesh-demo-'));
  t0 = Date.now();
  viewer = '';
  if (opts.say !== undefined) say = opts.say;
  if (opts.agentFile !== undefined) agentFile = opts.agentFile;
  if (opts.agentNode !== undefined) agentNode = opts.agentNode;
  if (opts.waitMs !== undefined) waitMs = opts.waitMs;
  beforeStep = opts.beforeStep;
  try {
    await scenario(opts.portalArgs ?? [], opts.startPortal);
  } finally {
    await cleanup();
  }
}

async function scenario(portalArgs: readonly string[], startPortal: ScenarioOptions['startPortal']): Promise<void> {
  say(bold('Mathematical Mesh demo: Alice, Bob and a shared thermostat'));
  say(`working directory ${tmp}`);
  const title = startPortal !== undefined ? 'Start the portal (several processes)' : portalArgs.length === 0 ? 'Start the portal (SQLite + embedded MQTT broker, free ports)' : `Start the portal (${portalArgs.join(' ')})`;
  const portal = await step(title, async () => {
    if (startPortal !== undefined) {
      const p = await startPortal(path.join(tmp, 'portal'));
      say(`   portal at ${p.http}, push at ${String(p.mqtt)}`);
      return p;
    }
    const external = portalArgs.some((a) => a.startsWith('--mqtt-url') || a === '--no-mqtt');
    const p = await start(bin('portal'), ['--data', path.join(tmp, 'portal'), '--http-port', '0', ...(external ? [] : ['--mqtt-port', '0']), ...portalArgs], 'mesh-portal ready');
    say(`   portal at ${String(p.ready.http)}, push at ${String(p.ready.mqtt)}`);
    return p.ready;
  });
  const url = String(portal.http);

  const dev = await step('The factory provisions a thermostat (device profile, keys, label)', async () => {
    const out = path.join(tmp, 'factory');
    // the model's applications and their schemas come from examples/models/thermostat.json
    await run(bin('provisioning'), ['batch', '--count', '1', '--model', 'thermostat', '--out', out, '--portal', url, '--json']);
    const serial = fs.readdirSync(out).find((d) => fs.existsSync(path.join(out, d, 'device.json')));
    if (serial === undefined) throw new Error('no device directory was written');
    const dir = path.join(out, serial);
    const claim = JSON.parse(fs.readFileSync(path.join(dir, 'claim.json'), 'utf8')) as { uri: string };
    say(`   label: ${claim.uri}`);
    return { dir, uri: claim.uri };
  });

  await step('The thermostat boots its agent (a separate process) and registers', async () => {
    // the thermostat's own self-test, run after every change: its heater cannot hold more than 26 °C
    const settings = path.join(dev.dir, 'agent.json');
    fs.writeFileSync(settings, JSON.stringify({ ...(JSON.parse(fs.readFileSync(settings, 'utf8')) as object), health: { command: HEALTH, timeoutMs: 10_000 } }, null, 2));
    const a = await start(agentFile, ['run', '--data', dev.dir, '--poll-interval-ms', '5000'], 'mesh-agent ready', agentNode);
    say(`   device ${String(a.ready.fingerprint)} (process.arch=${String(a.ready.arch)}, node ${String(a.ready.node)}) waiting to be claimed`);
  });

  const alice = path.join(tmp, 'alice');
  const bob = path.join(tmp, 'bob');
  const shares = await step('Alice creates her profile (3-of-5 recovery shares)', async () => {
    const out = JSON.parse(await mesh(alice, 'profile', 'create', '--portal', url, '--account', 'alice', '--json')) as { account: string; shares: string[] };
    say(`   account ${out.account}; shares printed once, e.g. ${out.shares[0] ?? '?'}`);
    return { account: out.account, shares: out.shares };
  });

  await step('Alice claims the thermostat from its label', async () => {
    say('   ' + (await mesh(alice, 'device', 'claim', dev.uri, '--name', 'thermostat')).trim().split('\n').join('\n   '));
    await waitFor('the thermostat to accept Alice', dev.dir, (s) => s.owners.some((o) => o.account.startsWith('alice@')));
    viewer = alice;
    await showConfig(dev.dir);
  });

  await step('Mallory photographed the label: the thermostat has an owner, so the label alone claims nothing (not-invited)', async () => {
    const mallory = path.join(tmp, 'mallory');
    await mesh(mallory, 'profile', 'create', '--portal', url, '--account', 'mallory', '--json');
    const out = await mesh(mallory, 'device', 'claim', dev.uri, '--name', 'stolen', '--json').then(
      (o) => JSON.parse(o) as { accepted?: boolean; error?: { code?: string } },
      (e: Error) => JSON.parse(e.message.slice(e.message.indexOf('{'))) as { accepted?: boolean; error?: { code?: string } },
    );
    if (out.accepted === true || out.error?.code !== 'not-invited') throw new Error(`Mallory's claim was not refused as not-invited: ${JSON.stringify(out)}`);
    await waitFor('the refusal', dev.dir, (s) => s.errors.some((e) => e.code === 'not-invited') && s.owners.length === 1);
    say(`   refused by the device: ${out.error.code}; the owners are still: ${(await deviceStatus(dev.dir)).owners.map((o) => o.account).join(', ')}`);
  });

  const invitation = await step('Alice invites Bob (mesh device invite: works once, for 15 minutes); Bob claims with the invitation', async () => {
    const inv = JSON.parse(await mesh(alice, 'device', 'invite', 'thermostat', '--json')) as { invitation: string; expires: string };
    say(`   invitation: ${inv.invitation} (until ${inv.expires})`);
    await mesh(bob, 'profile', 'create', '--portal', url, '--account', 'bob', '--json');
    await mesh(bob, 'device', 'claim', inv.invitation, '--name', 'hall thermostat');
    await waitFor('the thermostat to accept Bob too', dev.dir, (s) => s.owners.some((o) => o.account.startsWith('bob@')));
    await showConfig(dev.dir);
    return inv.invitation;
  });

  await step('Mallory got hold of the invitation too: it has been used (invitation-used)', async () => {
    const out = await mesh(path.join(tmp, 'mallory'), 'device', 'claim', invitation, '--name', 'stolen', '--json').then(
      (o) => JSON.parse(o) as { error?: { code?: string } },
      (e: Error) => JSON.parse(e.message.slice(e.message.indexOf('{'))) as { error?: { code?: string } },
    );
    if (out.error?.code !== 'invitation-used') throw new Error(`the used invitation was not refused: ${JSON.stringify(out)}`);
    say(`   refused: ${out.error.code}`);
  });

  await step('Alice invites a guest, Gina, who may set only the setpoint, within 16..24, for 2 hours', async () => {
    const gina = path.join(tmp, 'gina');
    const inv = JSON.parse(await mesh(alice, 'device', 'invite', 'thermostat', '--guest', 'thermostat:setpoint=16..24', '--until', '2h', '--json')) as { invitation: string };
    await mesh(gina, 'profile', 'create', '--portal', url, '--account', 'gina', '--json');
    await mesh(gina, 'device', 'claim', inv.invitation, '--name', 'holiday flat');
    await waitFor('the thermostat to accept the guest', dev.dir, (s) => s.owners.some((o) => o.account.startsWith('gina@')));
    await mesh(gina, 'config', 'set', 'thermostat', 'setpoint=22');
    await waitFor('setpoint 22 from the guest', dev.dir, (s) => thermostat(s).setpoint === 22);
    say('   the guest set 22: applied');
    // within the thermostat's schema (so it is published), outside the guest's grant: the device refuses it, and mesh waits for its answer
    const r = await meshExit(gina, 'config', 'set', 'thermostat', 'setpoint=28');
    if (r.code !== 4) throw new Error(`the guest's 28 was not reported refused (exit ${r.code}): ${r.stdout} ${r.stderr}`);
    const st = await deviceStatus(dev.dir);
    say(`   the guest set 28 (mesh exits 4):\n   ${r.stdout.trim().split('\n').join('\n   ')}\n   setpoint is still ${String(thermostat(st).setpoint)}`);
    await showConfig(dev.dir);
  });

  await step("Alice lists her devices: the device's signed report names every owner and guest, newcomers marked NEW", async () => {
    const out = await mesh(alice, 'device', 'list');
    for (const line of out.split('\n')) if (/(owner|guest)/.test(line)) say('   ' + line.trim());
  });

  await step('Alice sets setpoint=21', async () => {
    // checked against the schema the thermostat declared, published, and waited for: mesh prints what the device did
    say('   ' + (await mesh(alice, 'config', 'set', 'thermostat', 'setpoint=21')).trim().split('\n').join('\n   '));
    await waitFor('setpoint 21', dev.dir, (s) => thermostat(s).setpoint === 21);
    await showConfig(dev.dir);
  });

  await step('Bob sets setpoint=19 mode=eco (the change the device applies last wins)', async () => {
    await mesh(bob, 'config', 'set', 'thermostat', 'setpoint=19', 'mode=eco');
    await waitFor('setpoint 19 and eco', dev.dir, (s) => thermostat(s).setpoint === 19 && thermostat(s).mode === 'eco');
    await showConfig(dev.dir);
  });

  await step('Alice sets setpoint=29 --confirm-within 30s: the thermostat\'s self-test fails, it goes back to what it had on its own and says so (REVERTED)', async () => {
    const before = thermostat(await deviceStatus(dev.dir)).setpoint;
    const r = await meshExit(alice, 'config', 'set', 'thermostat', 'setpoint=29', '--confirm-within', '30s', '--wait', String(Math.max(20, Math.round((waitMs * 2) / 1000))));
    if (r.code !== 4 || !/REVERTED #\d+ \(health check failed\)/.test(r.stdout)) throw new Error(`the change was not reported reverted (exit ${r.code}): ${r.stdout} ${r.stderr}`);
    const after = thermostat(await deviceStatus(dev.dir)).setpoint;
    if (after !== before) throw new Error(`the setpoint is ${String(after)} after the revert, not ${String(before)}`);
    say(`   (mesh exits 4)\n   ${r.stdout.trim().split('\n').join('\n   ')}\n   setpoint is back to ${String(after)}`);
  });

  await step("A setpoint of 350 °C is refused on Alice's computer, and so is a typo: checked against the thermostat's schema, nothing is published", async () => {
    for (const args of [['setpoint=350'], ['setpont=20']]) {
      const r = await meshExit(alice, 'config', 'set', 'thermostat', ...args);
      if (r.code !== 1 || !r.stderr.includes('[schema]')) throw new Error(`config set thermostat ${args.join(' ')} was not refused: ${r.stdout} ${r.stderr}`);
      say(`   mesh config set thermostat ${args.join(' ')}\n     ${r.stderr.trim().split('\n').join('\n     ')}`);
    }
    say(`   setpoint is still ${String(thermostat(await deviceStatus(dev.dir)).setpoint)}`);
    await showConfig(dev.dir);
  });

  await step('Bob removes the thermostat from his profile: his values disappear', async () => {
    await mesh(bob, 'device', 'remove', 'hall thermostat');
    await waitFor('Bob to be gone', dev.dir, (s) => !s.owners.some((o) => o.account.startsWith('bob@')) && thermostat(s).mode === undefined);
    await showConfig(dev.dir);
  });

  await step("Alice's laptop is lost: her state is deleted; she recovers from 3 of her 5 shares", async () => {
    fs.rmSync(alice, { recursive: true, force: true });
    const alice2 = path.join(tmp, 'alice-new-laptop');
    viewer = alice2;
    await mesh(alice2, 'recover', ...shares.shares.slice(1, 4), '--portal', url, '--account', shares.account);
    say('   recovered; the lost laptop\'s administration key is revoked');
    await mesh(alice2, 'config', 'set', 'thermostat', 'setpoint=22');
    await waitFor('setpoint 22 from the recovered Alice', dev.dir, (s) => thermostat(s).setpoint === 22);
    say('   the thermostat applied it without being re-claimed');
    await showConfig(dev.dir);
  });

  say(`\n${bold('demo complete')} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}


async function cleanup(): Promise<void> {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
  await Promise.all(children.map((c) => (c.exitCode !== null || c.signalCode !== null ? Promise.resolve() : new Promise((r) => c.once('exit', r)))));
  children.length = 0;
  if (tmp !== '') fs.rmSync(tmp, { recursive: true, force: true });
}
