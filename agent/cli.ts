#!/usr/bin/env node
/**
 * mesh-agent: the device agent.
 *   mesh-agent run    --data DIR [--portal URL] [--first-boot --model M [--manufacturer NAME]] [--poll-interval-ms N] [--no-push]
 *   mesh-agent status --data DIR [--json]
 *   mesh-agent reset  --data DIR [--yes]
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { runMain, parse, usage, makeIo, intFlag, intOr, unknownCommand, envName } from '../runtime/cli.js';
import { hasDeviceDirectory, readAgentSettings, readDeviceDirectory, readSchemas, writeDeviceDirectory, DEFAULT_SETTINGS, type AgentSettings } from '../runtime/device-files.js';
import { createLogger, isLogLevel, levelOfEvent, LOG_LEVELS, type LogLevel } from '../runtime/log.js';
import { sdNotifier } from '../runtime/sd-notify.js';
import { MeshError, type MeshErrorCode } from '../mesh/errors.js';
import { normalizeUdf } from '../mesh/udf.js';
import type { Json } from '../mesh/json.js';
import { agentRunning, applyLocal, awaitAnswer, enqueue, newEpoch, type LocalCommand, type LocalResult } from './local.js';
import { loadState } from './state.js';
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
  mesh-agent set --data DIR APP KEY=VALUE...
                                           change a setting on the device itself (its dial)
  mesh-agent move --data DIR --to URL --portal-key UDF
                                           move the device to another portal (its old one is gone)
  mesh-agent help COMMAND                  a command's options (the same as COMMAND --help)

Every command takes --help and --json; mesh-agent --version prints the version.
The effective configuration is written to DIR/${CONFIG_FILE}.`;

const RUN_HELP = `usage: mesh-agent run --data DIR [options]

Run the agent: register with the portal, wait for claims, apply the owners' configuration to
DIR/${CONFIG_FILE}. Runs until SIGTERM or SIGINT (then finishes the item it is applying, exit 0).
Prints "mesh-agent ready {...}" on stdout once registered and the feed has been read once.

options:
  --data DIR              the device directory (device.json, keys.json, agent.json, schemas/)
  --portal URL            the portal (default: "portal" in DIR/agent.json)
  --poll-interval-ms N    how often to poll when no push arrives (default 30000, at least 50)
  --no-push               do not use MQTT push, poll only
  --first-boot            if DIR holds no device identity, make one now and print its claim code
  --model NAME            the model, with --first-boot
  --manufacturer NAME     printed in the claim URI, with --first-boot (default "selfmade")
  --schema APP=FILE       install an application's JSON Schema, with --first-boot (repeatable)
  --hook CMD              run CMD after the configuration changed (MESH_CONFIG names the file)
  --log-level LEVEL       debug, info, warn or error (default info; env ${envName('MESH_AGENT', 'log-level')})

Logs: one line per event on stderr, JSON (time, level, event, fields) or, on a terminal, for
people; MESH_LOG_FORMAT=json|human chooses. Under systemd (Type=notify) it reports READY=1,
its connection in STATUS= and pings the watchdog from its main loop. With MESH_AGENT_HEALTH_FILE
set (containers), the main loop touches that file every 30 s for the image's HEALTHCHECK.`;

const STATUS_HELP = `usage: mesh-agent status --data DIR [--max-stale-ms N] [--json]

What the device knows: its identity and claim URI, whether it is registered and when it last
reached the portal (STALE after --max-stale-ms, default maxStaleMs of DIR/agent.json), its
owners, the configuration applied and by whom, the last errors.`;

const RESET_HELP = `usage: mesh-agent reset --data DIR --yes [--json]

Factory reset: forget every owner and all configuration. The device keeps its identity and
label, so it can be claimed again from the label; it starts a new ownership epoch, and nothing
of its former owners (claims, removals, older configurations) is obeyed again. With the agent
running, the agent applies it at once; otherwise the next start does.`;

const WINDOW_HELP = `usage: mesh-agent open-claim-window --data DIR [--minutes N] [--json]

Someone holding the device lets the label claim it although it has owners (the button on a real
board; a hook can call this from a GPIO). Open for N minutes of the device's clock (default 5, at
most 60). Without it, a co-owner needs an invitation from a current owner.`;

const REMOVE_OWNER_HELP = `usage: mesh-agent remove-owner --data DIR ACCOUNT [--json]

Remove one owner (by account, e.g. bob@portal.example, or master fingerprint): physical
possession decides what no owner can do to another over the network. The other owners are not
affected; the removed owner's older objects stay refused.`;

const SET_HELP = `usage: mesh-agent set --data DIR APP KEY=VALUE... [--json]

Change a setting on the device itself, as its dial or its own firmware would: checked against
the application's schema (refused with "schema" otherwise), in effect at once with the source
"local", reported to the owners in the device's encrypted status, and replaced by the next owner
change the device applies (the same precedence by order as owners' changes). VALUE is JSON when
it parses as JSON, else text; KEY= gives the key back to the owners.

The device's firmware can do the same over its local MQTT broker: with "localMqtt": {"url": ...,
"topic": T, "dial": true} in agent.json, the running agent takes {"APP": {"KEY": VALUE}} on T/set
and answers on T/set/result (docs/agent.md).`;

const MOVE_HELP = `usage: mesh-agent move --data DIR --to URL --portal-key UDF [--json]

Move this device to another portal when its old portal is gone (someone holding the device
decides, as for a factory reset; with the old portal up, its owners use mesh device move). The
device registers at URL, trusting only the portal whose key is UDF (its /healthz "portal"), and
keeps its owners, configuration, rollback state and epoch; each owner then links it to the
account at the new portal with mesh device move (after mesh account move).

  --data DIR         the agent's directory
  --to URL           the new portal's base URL
  --portal-key UDF   the new portal's key
  --json             print the result as JSON`;

const COMMAND_HELP: Record<string, string> = { run: RUN_HELP, status: STATUS_HELP, reset: RESET_HELP, 'open-claim-window': WINDOW_HELP, 'remove-owner': REMOVE_OWNER_HELP, set: SET_HELP, move: MOVE_HELP };

/** The agent's events and their levels; the rest by name (runtime/log.ts levelOfEvent). */
const EVENT_LEVELS: Readonly<Record<string, LogLevel>> = {
  'internal-error': 'error',
  refused: 'warn',
  reverted: 'warn',
  unhealthy: 'warn',
  'push-disconnected': 'warn',
  accepted: 'info',
  connection: 'info',
};

async function main(argv: string[]): Promise<void> {
  const [cmd, ...rest] = argv;
  if (cmd === undefined || cmd === '--help' || cmd === '-h') {
    process.stdout.write(HELP + '\n');
    if (cmd === undefined) process.exitCode = 64;
    return;
  }
  switch (cmd) {
    case 'help': {
      const topic = rest[0];
      process.stdout.write((topic !== undefined ? (COMMAND_HELP[topic] ?? unknownCommand('mesh-agent', topic, Object.keys(COMMAND_HELP))) : HELP) + '\n');
      return;
    }
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
    case 'move':
      return move(rest);
    case 'set':
      return setLocal(rest);
    default:
      unknownCommand('mesh-agent', cmd, [...Object.keys(COMMAND_HELP), 'help']);
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
    'log-level': { type: 'string' },
  }, false);
  if (values.help) {
    process.stdout.write(RUN_HELP + '\n');
    return;
  }
  const levelName = values['log-level'] ?? process.env[envName('MESH_AGENT', 'log-level')] ?? 'info';
  if (!isLogLevel(levelName)) usage(`--log-level must be one of ${LOG_LEVELS.join(', ')}`);
  const dir = values.data ?? usage('--data DIR is required');
  const overrides: { -readonly [K in keyof AgentSettings]?: AgentSettings[K] } = {};
  if (values.portal !== undefined) overrides.portal = values.portal as string;
  const pollMs = intFlag(values['poll-interval-ms'], '--poll-interval-ms', { min: 50 });
  if (pollMs !== undefined) overrides.pollIntervalMs = pollMs;
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
    const d = newDeviceIdentity({ model, manufacturer: (values.manufacturer as string | undefined) ?? 'selfmade', serial: 'firstboot', portalAuthority: new URL(portal).host, schemas });
    writeDeviceDirectory(dir, d, { ...DEFAULT_SETTINGS, portal, ...overrides }, schemas);
    process.stdout.write(`mesh-agent first-boot ${JSON.stringify({ device: d.id, fingerprint: d.fingerprint, claim: d.labelUri, code: d.claimCode })}\n`);
  }

  const device = readDeviceDirectory(dir);
  const settings = readAgentSettings(dir, overrides);
  const { Agent } = await import('./agent.js');
  const logger = createLogger({ level: levelName, fields: { device: device.fingerprint } });
  const notify = sdNotifier({ onError: (e) => logger.warn('systemd-notify-failed', { message: e.message }) });
  const agent = new Agent({
    dir,
    device,
    settings,
    schemas: readSchemas(dir),
    log: (event, data) => {
      logger[levelOfEvent(event, EVENT_LEVELS)](event, data);
      if (event === 'connection' && typeof data?.state === 'string') notify.status(`portal ${settings.portal}: ${data.state}`);
    },
  });
  for (const ev of ['claimed', 'applied', 'removed', 'refused', 'confirmed', 'reverted', 'unhealthy'] as const) {
    agent.on(ev, (d: object) => void process.stdout.write(`mesh-agent event ${JSON.stringify({ type: ev, ...d })}\n`));
  }
  let stopping = false;
  const stopWatchdog = notify.startWatchdog();
  const stopHeartbeat = heartbeat(process.env.MESH_AGENT_HEALTH_FILE, (e) => logger.warn('health-file-failed', { message: e.message }));
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    stopWatchdog();
    stopHeartbeat();
    notify.stopping();
    void agent
      .stop()
      .then(() => notify.flush())
      .then(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  // ready for systemd as soon as the agent runs: a board whose portal is away keeps its last good
  // configuration and keeps trying, and that is working (STATUS= says how it is connected)
  notify.ready(`device ${device.fingerprint}: starting`);
  await agent.start();
  process.stdout.write(`mesh-agent ready ${JSON.stringify({ device: device.id, fingerprint: device.fingerprint, claim: device.claimUri, portal: settings.portal, arch: process.arch, node: process.version })}\n`);
}

/** How often the health file is touched; a container health check calls the agent dead after 3 misses. */
const HEARTBEAT_MS = 30_000;

/**
 * For containers, which have no systemd watchdog: with MESH_AGENT_HEALTH_FILE set, the main loop
 * touches that file every HEARTBEAT_MS (the image puts it on /tmp, not on the device's storage), and
 * the image's HEALTHCHECK fails when it is older than three periods.
 */
function heartbeat(file: string | undefined, onError: (e: Error) => void): () => void {
  if (file === undefined || file === '') return () => undefined;
  let complained = false;
  const touch = (): void => {
    try {
      fs.writeFileSync(file, new Date().toISOString() + '\n');
    } catch (e) {
      if (!complained) onError(e as Error);
      complained = true;
    }
  };
  touch();
  const t = setInterval(touch, HEARTBEAT_MS);
  t.unref();
  return () => clearInterval(t);
}

async function status(argv: string[]): Promise<void> {
  const { values } = parse(argv, { data: { type: 'string' }, 'max-stale-ms': { type: 'string' } }, false);
  if (values.help) {
    process.stdout.write(STATUS_HELP + '\n');
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
  const maxStale = intFlag(values['max-stale-ms'], '--max-stale-ms') ?? settings.maxStaleMs;
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

async function move(argv: string[]): Promise<void> {
  const { values } = parse(argv, { data: { type: 'string' }, to: { type: 'string' }, 'portal-key': { type: 'string' } }, false);
  if (values.help) {
    process.stdout.write(MOVE_HELP + '\n');
    return;
  }
  const dir = values.data ?? usage('--data DIR is required');
  const portal = values.to ?? usage('--to URL (the new portal) is required');
  if (!/^https?:\/\/\S+$/.test(portal)) usage('--to is an http:// or https:// URL');
  const portalId = values['portal-key'] ?? usage("--portal-key UDF (the new portal's key, its /healthz \"portal\") is required");
  return runLocal(dir, { cmd: 'move', portal: portal.replace(/\/$/, ''), portalId: (normalizeUdf(portalId).match(/.{1,4}/g) ?? []).join('-') }, values.json === true);
}

async function reset(argv: string[]): Promise<void> {
  const { values } = parse(argv, { data: { type: 'string' }, yes: { type: 'boolean' } }, false);
  if (values.help) {
    process.stdout.write(RESET_HELP + '\n');
    return;
  }
  if (values.yes !== true) usage('a factory reset forgets every owner and all configuration; confirm with --yes');
  await runLocal(values.data ?? usage('--data DIR is required'), { cmd: 'reset' }, values.json === true);
}

async function setLocal(argv: string[]): Promise<void> {
  const { values, positionals } = parse(argv, { data: { type: 'string' } }, true);
  if (values.help) {
    process.stdout.write(SET_HELP + '\n');
    return;
  }
  const dir = values.data ?? usage('--data DIR is required');
  const [app, ...assignments] = positionals;
  if (app === undefined || assignments.length === 0) usage('give the application and at least one KEY=VALUE, e.g. mesh-agent set --data DIR thermostat setpoint=23');
  const set: Record<string, Json> = {};
  const remove: string[] = [];
  for (const a of assignments) {
    const i = a.indexOf('=');
    if (i <= 0) usage(`"${a}" is not KEY=VALUE`);
    const k = a.slice(0, i);
    const raw = a.slice(i + 1);
    if (raw === '') remove.push(k);
    else set[k] = jsonOrText(raw);
  }
  return runLocal(dir, { cmd: 'set', app, set, remove }, values.json === true);
}

function jsonOrText(raw: string): Json {
  try {
    return JSON.parse(raw) as Json;
  } catch {
    return raw;
  }
}

/** A command only someone holding the device can give: through the running agent, or straight to the state when none runs. */
async function local(argv: string[], cmd: 'open-claim-window' | 'remove-owner'): Promise<void> {
  const { values, positionals } = parse(argv, { data: { type: 'string' }, minutes: { type: 'string' } }, true);
  if (values.help) {
    process.stdout.write(COMMAND_HELP[cmd] + '\n');
    return;
  }
  const dir = values.data ?? usage('--data DIR is required');
  if (cmd === 'open-claim-window') {
    const minutes = intOr(values.minutes, '--minutes', 5, { min: 1, max: 60 });
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
    const { checkSchema } = await import('../mesh/schema.js');
    const schemas = new Map(Object.entries(readSchemas(dir)).map(([app, sc]) => [app, checkSchema(sc, `schema ${app}`)]));
    const out = applyLocal(loadState(dir), command, { claimKey: deriveClaimSecrets(device.claimSecret).deviceKey, nowMs: Date.now(), epoch: newEpoch(), schemas });
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
