#!/usr/bin/env node
/**
 * mesh-portal: the Mesh portal as a service. Prints one line when ready,
 *   mesh-portal ready {"http":"http://127.0.0.1:8080","mqtt":"mqtt://127.0.0.1:1883","name":"localhost","portal":"<UDF>"}
 * then logs one line per event on stderr (runtime/log.ts). SIGTERM or SIGINT: stop accepting, finish
 * what is in flight, exit 0. Settings: flags, or MESH_PORTAL_* variables (one per flag). Under systemd
 * (Type=notify): READY=1, WATCHDOG=1 from the main loop, STOPPING=1 (runtime/sd-notify.ts).
 */
import * as path from 'node:path';
import { NOTE_ED25519_TYPE, parseVkey } from '../mesh/cosignature.js';
import { MeshError } from '../mesh/errors.js';
import { envName, envOptions, intOr, parse, runMain, usage } from '../runtime/cli.js';
import { portalDataDir } from '../runtime/paths.js';
import { sdNotifier } from '../runtime/sd-notify.js';
import { systemClock } from '../runtime/clock.js';
import { keysElsewhere, KEY_FILE } from './data-dir.js';
import { LOG_LEVELS, createLogger, type LogLevel } from './log.js';
import { startPortal, type MqttOption } from './server.js';

const ENV = 'MESH_PORTAL';
const SHUTDOWN_GRACE_MS = 10_000;

/** The flags, in --help order; each has its environment variable MESH_PORTAL_<FLAG> (a flag given wins). */
const FLAGS: readonly { name: string; arg?: string; help: string }[] = [
  { name: 'data', arg: 'DIR', help: 'data directory: SQLite database and portal key (default $STATE_DIRECTORY;\nelse /var/lib/mesh-portal as root, else $XDG_DATA_HOME/mesh-portal)' },
  { name: 'host', arg: 'ADDR', help: 'address to listen on, HTTP and the embedded broker (default 0.0.0.0:\nevery IPv4 interface; 127.0.0.1 for this machine only)' },
  { name: 'http-port', arg: 'N', help: 'HTTP port; 0 picks a free port (default 8080)' },
  { name: 'mqtt-port', arg: 'N', help: 'port of the embedded MQTT broker; 0 picks a free port (default 1883)' },
  { name: 'mqtt-url', arg: 'URL', help: 'publish through an external broker instead, e.g. mqtt://127.0.0.1:1883' },
  { name: 'mqtt-nats-account', arg: 'FILE', help: "with --mqtt-url to NATS in operator mode: the account seed file\n(scripts/nats-auth.ts) that signs the portal's and each device's MQTT\npassword (per-device topic access)" },
  { name: 'mqtt-public-url', arg: 'URL', help: 'the push URL advertised to devices, if they reach the broker elsewhere' },
  { name: 'no-mqtt', help: 'no push at all (devices long-poll Download)' },
  { name: 'database-url', arg: 'URL', help: 'PostgreSQL, e.g. postgres://user@host:5432/db?schema=mesh_portal\n(default: env DATABASE_URL, else SQLite in DIR/portal.db)' },
  { name: 'pg-schema', arg: 'NAME', help: "PostgreSQL schema for the portal's tables (default mesh_portal)" },
  { name: 'name', arg: 'NAME', help: 'account domain: accounts are alice@NAME (default localhost)' },
  { name: 'key', arg: 'FILE', help: `portal signing key (default DIR/portal-key.json, created 0600)` },
  { name: 'rate-limit', arg: 'N', help: 'requests per second per client address and per session (default 50);\n0 turns off every rate and per-address limit (a test rig; storage caps stay)' },
  { name: 'claim-attempts', arg: 'N', help: 'failed claim proofs per device per hour (default 10)' },
  { name: 'max-long-polls', arg: 'N', help: 'Downloads waiting at once (default 10000)' },
  { name: 'new-per-address', arg: 'N', help: 'new devices and accounts per client address per hour (default 30)' },
  { name: 'new-global', arg: 'N', help: 'new devices, accounts and joins per hour, all addresses (default 10000)' },
  { name: 'max-unclaimed', arg: 'N', help: 'registered devices nobody has claimed, at most (default 100000)' },
  { name: 'unclaimed-ttl-hours', arg: 'N', help: 'an unclaimed device with no live session is deleted after (default 168)' },
  { name: 'max-connections', arg: 'N', help: 'open connections per listener, HTTP and MQTT (default 10000)' },
  { name: 'max-connections-per-address', arg: 'N', help: 'open connections per client address and listener\n(default 256; 0 = no cap; with --rate-limit 0 the default is 0)' },
  { name: 'witness', arg: 'LIST', help: 'witnesses that cosign the log\'s checkpoints, comma-separated URL=VKEY\n(VKEY: the witness\'s verifier key, `mesh-witness --print-vkey`); the\ncheckpoints served (/checkpoint, Download) carry their cosignatures' },
  { name: 'witness-for', arg: 'LIST', help: 'be a witness for other portals\' logs, comma-separated log VKEYs (their\n/healthz logKey): POST /add-checkpoint cosigns their heads as NAME/witness\nwith this portal\'s key (/healthz witnessKey), only as they extend' },
  { name: 'trusted-proxy', arg: 'LIST', help: 'reverse proxies (addresses or CIDRs, comma-separated) whose\nX-Forwarded-For names the client; nobody else\'s is believed' },
  { name: 'headers-timeout-ms', arg: 'N', help: "to receive a request's headers (default 10000)" },
  { name: 'request-timeout-ms', arg: 'N', help: 'to receive a whole request (default 30000)' },
  { name: 'keep-alive-ms', arg: 'N', help: 'idle keep-alive connections are closed after (default 65000)' },
  { name: 'web', arg: 'DIR', help: "the owner app served at / (default: the one built with this portal,\ndist/web); none: no app (/claim and /invite answer static pages)" },
  { name: 'log-level', arg: 'LEVEL', help: 'debug, info, warn or error (default info)' },
];

function helpText(): string {
  const col = 26;
  const lines: string[] = [];
  for (const f of FLAGS) {
    const left = `  --${f.name}${f.arg !== undefined ? ' ' + f.arg : ''}`;
    const [first, ...more] = f.help.split('\n');
    lines.push(left.padEnd(col) + first, ...more.map((m) => ' '.repeat(col) + m), ' '.repeat(col) + `env ${envName(ENV, f.name)}`);
  }
  return `mesh-portal: the Mathematical Mesh portal (HTTP transactions, transparency log, MQTT push)

usage: mesh-portal [options]

${lines.join('\n')}
  --json                  errors on stdout as JSON
  --version               the version
  -h, --help              this help

Every option can also be set by its environment variable (shown under it); an option given on the
command line wins. Booleans take 1 or 0. MESH_LOG_FORMAT=json|human chooses the log format (default:
human on a terminal, else JSON lines; under systemd each line carries its journald priority).

When ready, one line on stdout: mesh-portal ready {"http":...,"mqtt":...|null,"name":...,"portal":...}
Logs: on stderr. Health: GET /livez (the process answers), GET /readyz (database and broker work),
GET /healthz (the same as /readyz, with details). Metrics: GET /metrics (Prometheus).
Under systemd (Type=notify) it reports READY=1 and pings the watchdog (see docs/operations.md).`;
}

type Spec = Record<string, { type: 'string' | 'boolean' }>;
const OPTIONS: Spec = Object.fromEntries(FLAGS.map((f) => [f.name, { type: f.arg === undefined ? 'boolean' : 'string' }]));
const MQTT_GROUP = ['no-mqtt', 'mqtt-url', 'mqtt-port', 'mqtt-nats-account'];

async function main(argv: string[]): Promise<void> {
  const parsed = parse(argv, OPTIONS, false).values as Record<string, string | boolean | undefined>;
  if (parsed.help === true) {
    process.stdout.write(helpText() + '\n');
    return;
  }
  // the push mode is chosen on the command line or in the environment, not half in each
  const mqttByFlag = MQTT_GROUP.some((k) => parsed[k] !== undefined);
  const fromEnv = Object.fromEntries(Object.entries(OPTIONS).filter(([k]) => !(mqttByFlag && MQTT_GROUP.includes(k))));
  const merged = envOptions(parsed, fromEnv, ENV);
  const v = merged.values as Record<string, string | boolean | undefined>;
  const str = (k: string): string | undefined => (typeof v[k] === 'string' ? (v[k] as string) : undefined);
  /** how to name an option in a message: as it was given */
  const flag = (k: string): string => (merged.from[k] === 'env' ? envName(ENV, k) : `--${k}`);

  const level = (str('log-level') ?? 'info') as LogLevel;
  if (!LOG_LEVELS.includes(level)) usage(`${flag('log-level')} must be one of ${LOG_LEVELS.join(', ')}`);
  const chosen = [v['no-mqtt'] === true, str('mqtt-url') !== undefined, str('mqtt-port') !== undefined].filter(Boolean).length;
  if (chosen > 1) usage('give at most one of --no-mqtt, --mqtt-url and --mqtt-port');
  const natsAccount = str('mqtt-nats-account');
  if (natsAccount !== undefined && str('mqtt-url') === undefined) usage(`${flag('mqtt-nats-account')} needs --mqtt-url`);
  const port = (k: string, dflt: number): number => intOr(str(k), flag(k), dflt, { max: 65_535 });
  const mqtt: MqttOption =
    v['no-mqtt'] === true ? { mode: 'off' } : str('mqtt-url') !== undefined ? { mode: 'external', url: str('mqtt-url') as string, ...(natsAccount !== undefined ? { natsAccountFile: path.resolve(natsAccount) } : {}) } : { mode: 'embedded', port: port('mqtt-port', 1883) };
  const dataDir = path.resolve(str('data') ?? portalDataDir());
  const databaseUrl = str('database-url') ?? process.env.DATABASE_URL;
  const log = createLogger({ level });
  const keyFile = path.resolve(str('key') ?? path.join(dataDir, KEY_FILE));
  for (const other of keysElsewhere(keyFile)) {
    log.warn('portal key found elsewhere', {
      found: other,
      using: keyFile,
      hint: `this portal makes a NEW identity at ${keyFile}; to keep the portal owners know, stop it and start with --data ${path.dirname(other)}`,
    });
  }
  const notify = sdNotifier({ onError: (e) => log.warn('systemd notification failed', { err: e.message }) });
  const int = (k: string, dflt: number, min: number, max: number): number => intOr(str(k), flag(k), dflt, { min, max });
  const trustedProxies = (str('trusted-proxy') ?? '').split(',').map((x) => x.trim()).filter((x) => x !== '');
  const witnesses = (str('witness') ?? '').split(',').map((x) => x.trim()).filter((x) => x !== '').map((x) => {
    const eq = x.indexOf('=');
    if (eq <= 0) usage(`${flag('witness')} takes URL=VKEY, not ${JSON.stringify(x.slice(0, 80))}`);
    const url = x.slice(0, eq);
    if (!/^https?:\/\/[^\s]+$/.test(url)) usage(`${flag('witness')}: ${JSON.stringify(url.slice(0, 80))} is not an http(s) URL`);
    return { url, key: parseVkey(x.slice(eq + 1)) };
  });

  // signals from the start: the first stops the portal (once it is up), a second exits at once
  let signalled: ((signal: string) => void) | undefined;
  let first: string | undefined;
  const onSignal = (signal: string): void => {
    if (first !== undefined) {
      log.warn('second signal: exiting now', { signal });
      process.exit(1);
    }
    first = signal;
    log.info('stopping', { signal });
    // requests in flight get the grace; should the stop (or a start still under way) hang, the process still ends
    systemClock.setTimer(
      () => {
        log.error('stop overran its grace: exiting now');
        process.exit(1);
      },
      SHUTDOWN_GRACE_MS + 5_000,
      { unref: true },
    );
    signalled?.(signal);
  };
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGINT', () => onSignal('SIGINT'));

  const portal = await startPortal({
    dataDir,
    host: str('host') ?? '0.0.0.0',
    httpPort: port('http-port', 8080),
    mqtt,
    ...(str('mqtt-public-url') !== undefined ? { mqttPublicUrl: str('mqtt-public-url') as string } : {}),
    ...(databaseUrl !== undefined && databaseUrl !== '' ? { databaseUrl } : {}),
    ...(str('pg-schema') !== undefined ? { pgSchema: str('pg-schema') as string } : {}),
    name: str('name') ?? 'localhost',
    keyFile,
    rateLimit: intOr(str('rate-limit'), flag('rate-limit'), 50, { max: 1_000_000 }),
    claimAttempts: intOr(str('claim-attempts'), flag('claim-attempts'), 10, { max: 1_000_000 }),
    maxLongPolls: intOr(str('max-long-polls'), flag('max-long-polls'), 10_000, { max: 10_000_000 }),
    ...(str('new-per-address') !== undefined ? { newPerAddressPerHour: int('new-per-address', 30, 1, 1_000_000) } : {}),
    ...(str('new-global') !== undefined ? { newGlobalPerHour: int('new-global', 10_000, 1, 100_000_000) } : {}),
    maxUnclaimed: int('max-unclaimed', 100_000, 0, 100_000_000),
    unclaimedTtlMs: int('unclaimed-ttl-hours', 168, 1, 100_000) * 3_600_000,
    maxConnections: int('max-connections', 10_000, 1, 10_000_000),
    ...(str('max-connections-per-address') !== undefined ? { maxConnectionsPerAddress: int('max-connections-per-address', 256, 0, 10_000_000) } : {}),
    trustedProxies,
    witnesses,
    witnessFor: (str('witness-for') ?? '').split(',').map((x) => x.trim()).filter((x) => x !== '').map((x) => parseVkey(x, NOTE_ED25519_TYPE)),
    headersTimeoutMs: int('headers-timeout-ms', 10_000, 1, 3_600_000),
    requestTimeoutMs: int('request-timeout-ms', 30_000, 1, 3_600_000),
    keepAliveTimeoutMs: int('keep-alive-ms', 65_000, 1, 3_600_000),
    ...(str('web') !== undefined ? { web: str('web') === 'none' ? null : path.resolve(str('web') as string) } : {}),
    shutdownGraceMs: SHUTDOWN_GRACE_MS,
    logger: log,
  });

  process.stdout.write(`mesh-portal ready ${JSON.stringify({ http: portal.httpUrl, mqtt: portal.mqttUrl, name: portal.name, portal: portal.portalId })}\n`);
  notify.ready(`serving ${portal.httpUrl} as ${portal.portalId}`);
  const stopWatchdog = notify.startWatchdog();

  // a bug must not take the portal down silently: log it; the request that hit it already got a 500
  process.on('uncaughtException', (e) => log.error('uncaught exception', { err: e.message, stack: e.stack }));
  process.on('unhandledRejection', (e) => log.error('unhandled rejection', { err: e instanceof Error ? e.message : String(e) }));

  await new Promise<void>((resolve) => {
    const stop = (): void => {
      stopWatchdog();
      notify.stopping();
      portal.close().then(resolve, (e: unknown) => {
        log.error('stop failed', { err: e instanceof Error ? e.message : String(e) });
        process.exitCode = 1;
        resolve();
      });
    };
    if (first !== undefined) stop();
    else signalled = stop;
  });
  await notify.flush();
  exitSoon();
}

/** Everything is closed (or failed to open); should a library still hold a handle, do not hang on it. */
function exitSoon(): void {
  systemClock.setTimer(() => process.exit(), 500, { unref: true });
}

/**
 * A reader that went away (`mesh-portal | head -1`, a closed log pipe) makes writes to stdout or
 * stderr fail with EPIPE, emitted as an 'error' event: unhandled, it would be an uncaught
 * exception, whose log line fails again, and so on. Such errors are swallowed; the logger stops
 * writing to a stream that is no longer writable.
 */
for (const s of [process.stdout, process.stderr]) s.on('error', () => undefined);

runMain('mesh-portal', (argv) =>
  main(argv).catch((e: unknown) => {
    exitSoon();
    throw e instanceof MeshError ? e : new MeshError('internal', e instanceof Error ? e.message : String(e));
  }),
);
