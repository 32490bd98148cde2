#!/usr/bin/env node
/**
 * mesh-agent: the device agent.
 *   mesh-agent run    --data DIR [--portal URL] [--first-boot --model M [--manufacturer NAME]] [--poll-interval-ms N] [--no-push]
 *   mesh-agent status --data DIR [--json]
 *   mesh-agent reset  --data DIR [--yes]
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { runMain, parse, usage, makeIo } from '../runtime/cli.js';
import { hasDeviceDirectory, readAgentSettings, readDeviceDirectory, readSchemas, writeDeviceDirectory, DEFAULT_SETTINGS, type AgentSettings } from '../runtime/device-files.js';
import { MeshError, type MeshErrorCode } from '../mesh/errors.js';
import { agentRunning, applyLocal, awaitAnswer, enqueue, newEpoch, type LocalCommand, type LocalResult } from './local.js';
import { loadState, statePath } from './state.js';
import { CONFIG_FILE } from './agent.js';

const HELP = `mesh-agent: the Mathematical Mesh device agent

Usage:
  mesh-agent run    --data DIR [options]   run the agent (as systemd does)
  mesh-agent status --data DIR [--json]    owners, applied configuration, last errors
  mesh-agent reset  --data DIR --yes       factory reset: forget every owner and all configuration
  mesh-agent open-claim-window --data DIR [--minutes N]
                                           let the label claim this device although it has owners
                                           (the button on a real board; default 5 minutes, at most 60)
  mesh-agent remove-owner --data DIR ACCOUNT
                                           remove one owner (physical possession decides)

run options:
  --portal URL            the portal (default: "portal" in DIR/agent.json)
  --poll-interval-ms N    how often to poll when no push arrives (default 30000)
  --no-push               do not use MQTT push, poll only
  --first-boot            if DIR holds no device identity, make one now and print its claim code
  --model NAME            the model, with --first-boot
  --manufacturer NAME     printed in the claim URI, with --first-boot (default "selfmade")
  --schema APP=FILE       install an application's JSON Schema, with --first-boot
  --hook CMD              run CMD after the configuration changed (MESH_CONFIG names the file)

The effective configuration is written to DIR/${CONFIG_FILE}.`;

async function main(argv: string[]): Promise<void> {
  const [cmd, ...rest] = argv;
  if (cmd === undefined || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    process.stdout.write(HELP + '\n');
    return;
  }
  switch (cmd) {
    case 'run':
      return run(rest);
    case 'status':
      return status(rest);
    case 'reset':
      return reset(rest);
    case 'open-claim-window':
      return local(rest, 'open-claim-window');
    case 'remove-owner':
      return local(rest, 'remove-owner');
    default:
      usage(`unknown command "${cmd}"; try mesh-agent --help`);
  }
}

async function run(argv: string[]): Promise<void> {
  const { values } = parse(argv, {
    data: { type: 'string' },
    portal: { type: 'string' },
    'poll-interval-ms': { type: 'string' },
    'no-push': { type: 'boolean' },
    'first-boot': { type: 'boolean' },
    model: { type: 'string' },
    manufacturer: { type: 'string' },
    schema: { type: 'string', multiple: true },
    hook: { type: 'string' },
  }, false);
  if (values.help) {
    process.stdout.write(HELP + '\n');
    return;
  }
  const dir = values.data ?? usage('--data DIR is required');
  const overrides: { -readonly [K in keyof AgentSettings]?: AgentSettings[K] } = {};
  if (values.portal !== undefined) overrides.portal = values.portal as string;
  if (values['poll-interval-ms'] !== undefined) {
    const n = Number(values['poll-interval-ms']);
    if (!Number.isInteger(n) || n < 50) usage('--poll-interval-ms must be a whole number of at least 50');
    overrides.pollIntervalMs = n;
  }
  if (values['no-push'] === true) overrides.push = false;
  if (values.hook !== undefined) overrides.hook = values.hook as string;

  if (!hasDeviceDirectory(dir)) {
    if (values['first-boot'] !== true) throw new MeshError('state', `${dir} holds no device identity; flash a provisioned image or start with --first-boot --model NAME`);
    const model = (values.model as string | undefined) ?? usage('--first-boot needs --model NAME');
    const portal = (values.portal as string | undefined) ?? usage('--first-boot needs --portal URL');
    const { newDeviceIdentity } = await import('../mesh/device.js');
    const schemas: Record<string, unknown> = {};
    for (const s of (values.schema as string[] | undefined) ?? []) {
      const [app, file] = s.split('=');
      if (app === undefined || file === undefined) usage('--schema takes APP=FILE');
      schemas[app] = JSON.parse(fs.readFileSync(file, 'utf8'));
    }
    const d = newDeviceIdentity({ model, manufacturer: (values.manufacturer as string | undefined) ?? 'selfmade', serial: 'firstboot', portalAuthority: new URL(portal).host });
    writeDeviceDirectory(dir, d, { ...DEFAULT_SETTINGS, portal, ...overrides }, schemas);
    process.stdout.write(`mesh-agent first-boot ${JSON.stringify({ device: d.id, fingerprint: d.fingerprint, claim: d.labelUri, code: d.claimCode })}\n`);
  }

  const device = readDeviceDirectory(dir);
  const settings = readAgentSettings(dir, overrides);
  const { Agent } = await import('./agent.js');
  const agent = new Agent({
    dir,
    device,
    settings,
    schemas: readSchemas(dir),
    log: (event, data) => process.stderr.write(JSON.stringify({ t: new Date().toISOString(), event, device: device.fingerprint, ...data }) + '\n'),
  });
  for (const ev of ['claimed', 'applied', 'removed', 'refused'] as const) {
    agent.on(ev, (d: Record<string, unknown>) => process.stdout.write(`mesh-agent event ${JSON.stringify({ type: ev, ...d })}\n`));
  }
  let stopping = false;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    void agent.stop().then(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  await agent.start();
  process.stdout.write(`mesh-agent ready ${JSON.stringify({ device: device.id, fingerprint: device.fingerprint, claim: device.claimUri, portal: settings.portal, arch: process.arch, node: process.version })}\n`);
}

async function status(argv: string[]): Promise<void> {
  const { values } = parse(argv, { data: { type: 'string' }, 'max-stale-ms': { type: 'string' } }, false);
  if (values.help) {
    process.stdout.write(HELP + '\n');
    return;
  }
  const dir = values.data ?? usage('--data DIR is required');
  const io = makeIo(values.json === true);
  const device = readDeviceDirectory(dir);
  const settings = readAgentSettings(dir, { portal: 'unused' });
  const s = loadState(dir);
  let config: Record<string, unknown> = {};
  try {
    config = JSON.parse(fs.readFileSync(path.join(dir, CONFIG_FILE), 'utf8')) as Record<string, unknown>;
  } catch {
    config = {};
  }
  const maxStale = values['max-stale-ms'] !== undefined ? Number(values['max-stale-ms']) : settings.maxStaleMs;
  const stale = s.lastContact === null || Date.now() - Date.parse(s.lastContact) > maxStale;
  const owners = Object.values(s.owners).map((o) => ({ account: o.account, master: o.master, claimedAt: o.claimedAt, apps: Object.fromEntries(Object.entries(o.apps).map(([a, x]) => [a, { seq: x.seq, appliedAt: x.appliedAt }])) }));
  const data = { device: device.id, fingerprint: device.fingerprint, model: device.model, claim: device.claimUri, registered: s.registered, lastContact: s.lastContact, stale, cursor: s.n, owners, config, errors: s.errors };
  const lines = [
    `device      ${device.fingerprint} (${device.model}, serial ${device.serial})`,
    `claim       ${device.claimUri}`,
    `portal      ${s.registered ? 'registered' : 'not registered yet'}; last contact ${s.lastContact ?? 'never'}${stale ? ' (STALE)' : ''}`,
    `owners      ${owners.length === 0 ? 'none: waiting to be claimed' : owners.map((o) => o.account).join(', ')}`,
  ];
  for (const o of owners) for (const [a, x] of Object.entries(o.apps)) lines.push(`  ${o.account}: ${a} #${x.seq} applied ${x.appliedAt}`);
  const { _sources, ...apps } = config as { _sources?: Record<string, Record<string, { owner: string; at: string }>> };
  for (const [app, vals] of Object.entries(apps)) {
    lines.push(`config      ${app}`);
    for (const [k, v] of Object.entries(vals as Record<string, unknown>)) {
      const src = _sources?.[app]?.[k];
      lines.push(`  ${k} = ${JSON.stringify(v)}${src !== undefined ? `   (set by ${src.owner} at ${src.at})` : ''}`);
    }
  }
  for (const e of s.errors.slice(-5)) lines.push(`error       [${e.code}] ${e.message} (${e.at})`);
  io.out(lines.join('\n'), data);
}

async function reset(argv: string[]): Promise<void> {
  const { values } = parse(argv, { data: { type: 'string' }, yes: { type: 'boolean' } }, false);
  if (values.help) {
    process.stdout.write(HELP + '\n');
    return;
  }
  if (values.yes !== true) usage('a factory reset forgets every owner and all configuration; confirm with --yes');
  await runLocal(values.data ?? usage('--data DIR is required'), { cmd: 'reset' }, values.json === true);
}

/** A command only someone holding the device can give: through the running agent, or straight to the state when none runs. */
async function local(argv: string[], cmd: 'open-claim-window' | 'remove-owner'): Promise<void> {
  const { values, positionals } = parse(argv, { data: { type: 'string' }, minutes: { type: 'string' } }, true);
  if (values.help) {
    process.stdout.write(HELP + '\n');
    return;
  }
  const dir = values.data ?? usage('--data DIR is required');
  if (cmd === 'open-claim-window') {
    const minutes = values.minutes === undefined ? 5 : Number(values.minutes);
    if (!Number.isInteger(minutes) || minutes < 1 || minutes > 60) usage('--minutes must be a whole number from 1 to 60');
    return runLocal(dir, { cmd, minutes }, values.json === true);
  }
  const who = positionals[0] ?? usage('remove-owner needs the ACCOUNT (or master fingerprint) of the owner to remove');
  return runLocal(dir, { cmd, who }, values.json === true);
}

async function runLocal(dir: string, command: LocalCommand, json: boolean): Promise<void> {
  const io = makeIo(json);
  const device = readDeviceDirectory(dir);
  let r: LocalResult | undefined;
  if (agentRunning(dir)) {
    const id = enqueue(dir, command);
    r = await awaitAnswer(dir, id, 15_000);
    if (r === undefined) throw new MeshError('timeout', `the agent running on ${dir} did not take the command within 15 s; it stays queued in ${dir}/inbox`);
  } else {
    const { deriveClaimSecrets } = await import('../mesh/claim.js');
    const { loadConf, writeConf } = await import('./outputs.js');
    const { configDocument } = await import('./core.js');
    const { saveState } = await import('./state.js');
    const out = applyLocal(loadState(dir), command, { claimKey: deriveClaimSecrets(device.claimSecret).deviceKey, nowMs: Date.now(), epoch: newEpoch() });
    if (out.configChanged) {
      await loadConf();
      writeConf(dir, configDocument(out.state));
    }
    saveState(dir, out.state);
    r = { ok: true, message: out.message };
  }
  if (!r.ok) throw new MeshError((r.code ?? 'internal') as MeshErrorCode, r.message);
  io.out(r.message, { ok: true, command: command.cmd, message: r.message });
}

runMain('mesh-agent', main);
