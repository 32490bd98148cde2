#!/usr/bin/env node
/**
 * mesh-portal: the Mesh portal as a service. Prints one line when ready,
 *   mesh-portal ready {"http":"http://127.0.0.1:8080","mqtt":"mqtt://127.0.0.1:1883","name":"localhost","portal":"<UDF>"}
 * then logs one line per event on stderr (runtime/log.ts). SIGTERM or SIGINT: stop accepting, finish
 * what is in flight, exit 0. Settings: flags, or MESH_PORTAL_* variables (one per flag). Under systemd
 * (Type=notify): READY=1, WATCHDOG=1 from the main loop, STOPPING=1 (runtime/sd-notify.ts).
 */
import * as path from 'node:path';
import { MeshError } from '../mesh/errors.js';
import { envName, envOptions, intOr, parse, runMain, usage } from '../runtime/cli.js';
import { portalDataDir } from '../runtime/paths.js';
import { sdNotifier } from '../runtime/sd-notify.js';
import { keysElsewhere, KEY_FILE } from './data-dir.js';
import { LOG_LEVELS, createLogger, type LogLevel } from './log.js';
import { startPortal, type MqttOption } from './server.js';

const ENV = 'MESH_PORTAL';

/** The flags, in --help order; each has its environment variable MESH_PORTAL_<FLAG> (a flag given wins). */
const FLAGS: readonly { name: string; arg?: string; help: string }[] = [
  { name: 'data', arg: 'DIR', help: 'data directory: SQLite database and portal key (default $STATE_DIRECTORY;\nelse /var/lib/mesh-portal as root, else $XDG_DATA_HOME/mesh-portal)' },
  { name: 'host', arg: 'ADDR', help: 'address to listen on, HTTP and the embedded broker (default 0.0.0.0:\nevery IPv4 interface; 127.0.0.1 for this machine only)' },
  { name: 'http-port', arg: 'N', help: 'HTTP port; 0 picks a free port (default 8080)' },
  { name: 'mqtt-port', arg: 'N', help: 'port of the embedded MQTT broker; 0 picks a free port (default 1883)' },
  { name: 'mqtt-url', arg: 'URL', help: 'publish through an external broker instead, e.g. mqtt://127.0.0.1:1883' },
  { name: 'mqtt-public-url', arg: 'URL', help: 'the push URL advertised to devices, if they reach the broker elsewhere' },
  { name: 'no-mqtt', help: 'no push at all (devices long-poll Download)' },
  { name: 'database-url', arg: 'URL', help: 'PostgreSQL, e.g. postgres://user@host:5432/db?schema=mesh_portal\n(default: env DATABASE_URL, else SQLite in DIR/portal.db)' },
  { name: 'pg-schema', arg: 'NAME', help: "PostgreSQL schema for the portal's tables (default mesh_portal)" },
  { name: 'name', arg: 'NAME', help: 'account domain: accounts are alice@NAME (default localhost)' },
  { name: 'key', arg: 'FILE', help: `portal signing key (default DIR/portal-key.json, created 0600)` },
  { name: 'rate-limit', arg: 'N', help: 'requests per second per client address and per session; 0 = off (default 50)' },
  { name: 'claim-attempts', arg: 'N', help: 'failed claim proofs per device per hour (default 10)' },
  { name: 'max-long-polls', arg: 'N', help: 'Downloads waiting at once (default 10000)' },
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
const MQTT_GROUP = ['no-mqtt', 'mqtt-url', 'mqtt-port'];

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
  const port = (k: string, dflt: number): number => intOr(str(k), flag(k), dflt, { max: 65_535 });
  const mqtt: MqttOption =
    v['no-mqtt'] === true ? { mode: 'off' } : str('mqtt-url') !== undefined ? { mode: 'external', url: str('mqtt-url') as string } : { mode: 'embedded', port: port('mqtt-port', 1883) };
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
    logger: log,
  });

  process.stdout.write(`mesh-portal ready ${JSON.stringify({ http: portal.httpUrl, mqtt: portal.mqttUrl, name: portal.name, portal: portal.portalId })}\n`);
  notify.ready(`serving ${portal.httpUrl} as ${portal.portalId}`);
  const stopWatchdog = notify.startWatchdog();

  // a bug must not take the portal down silently: log it; the request that hit it already got a 500
  process.on('uncaughtException', (e) => log.error('uncaught exception', { err: e.message, stack: e.stack }));
  process.on('unhandledRejection', (e) => log.error('unhandled rejection', { err: e instanceof Error ? e.message : String(e) }));

  await new Promise<void>((resolve) => {
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) {
        log.warn('second signal: exiting now', { signal });
        process.exit(1);
      }
      stopping = true;
      log.info('stopping', { signal });
      stopWatchdog();
      notify.stopping();
      portal.close().then(resolve, (e: unknown) => {
        log.error('stop failed', { err: e instanceof Error ? e.message : String(e) });
        process.exitCode = 1;
        resolve();
      });
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
  });
  await notify.flush();
  // everything is closed; should a library still hold a handle, do not hang on it
  setTimeout(() => process.exit(), 500).unref();
}

runMain('mesh-portal', (argv) =>
  main(argv).catch((e: unknown) => {
    throw e instanceof MeshError ? e : new MeshError('internal', e instanceof Error ? e.message : String(e));
  }),
);
