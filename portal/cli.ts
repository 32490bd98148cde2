#!/usr/bin/env node
/**
 * mesh-portal: the Mesh portal as a service. Prints one line when ready,
 *   mesh-portal ready {"http":"http://127.0.0.1:8080","mqtt":"mqtt://127.0.0.1:1883","name":"localhost","portal":"<UDF>"}
 * then logs JSON lines on stderr. SIGTERM or SIGINT: stop accepting, finish what is in flight, exit 0;
 * a second signal, or a stop that overruns its grace, exits 1 at once. A listener that cannot bind
 * exits 1 with a message naming it. A closed stdout or stderr (`mesh-portal | head -1`) is ignored.
 */
import * as path from 'node:path';
import { MeshError } from '../mesh/errors.js';
import { parse, runMain, usage } from '../runtime/cli.js';
import { systemClock } from '../runtime/clock.js';
import { LOG_LEVELS, jsonLogger, type LogLevel } from './log.js';
import { startPortal, type MqttOption } from './server.js';

const HELP = `mesh-portal: the Mathematical Mesh portal (HTTP transactions, transparency log, MQTT push)

usage: mesh-portal [options]

  --data DIR            data directory: SQLite database and portal key (default ./.mesh-data/portal)
  --host ADDR           address to listen on, HTTP and the embedded broker (default 127.0.0.1)
  --http-port N         HTTP port; 0 picks a free port (default 8080)
  --mqtt-port N         port of the embedded MQTT broker; 0 picks a free port (default 1883)
  --mqtt-url URL        publish through an external broker instead, e.g. mqtt://127.0.0.1:1883
  --mqtt-public-url URL the push URL advertised to devices, if they reach the broker elsewhere
  --no-mqtt             no push at all (devices long-poll Download)
  --database-url URL    PostgreSQL, e.g. postgres://user@host:5432/db?schema=mesh_portal
                        (default: env DATABASE_URL, else SQLite in DIR/portal.db)
  --pg-schema NAME      PostgreSQL schema for the portal's tables (default mesh_portal)
  --name NAME           account domain: accounts are alice@NAME (default localhost)
  --key FILE            portal signing key (default DIR/portal-key.json, created 0600)
  --rate-limit N        requests per second per client address and per session (default 50);
                        0 turns off every rate and per-address limit (a test rig; storage caps stay)
  --claim-attempts N    failed claim proofs per device per hour (default 10)
  --max-long-polls N    Downloads waiting at once (default 10000)
  --new-per-address N   new devices and accounts per client address per hour (default 30)
  --new-global N        new devices, accounts and joins per hour, all addresses (default 10000)
  --max-unclaimed N     registered devices nobody has claimed, at most (default 100000)
  --unclaimed-ttl-hours N  an unclaimed device with no live session is deleted after (default 168)
  --max-connections N   open connections per listener, HTTP and MQTT (default 10000)
  --max-connections-per-address N  open connections per client address and listener
                        (default 256; 0 = no cap; with --rate-limit 0 the default is 0)
  --trusted-proxy LIST  reverse proxies (addresses or CIDRs, comma-separated; repeatable) whose
                        X-Forwarded-For names the client; nobody else's is believed
  --headers-timeout-ms N  to receive a request's headers (default 10000)
  --request-timeout-ms N  to receive a whole request (default 30000)
  --keep-alive-ms N     idle keep-alive connections are closed after (default 65000)
  --log-level LEVEL     debug, info, warn or error (default info)
  --json                errors on stdout as JSON
  -h, --help            this help

When ready, one line on stdout: mesh-portal ready {"http":...,"mqtt":...|null,"name":...,"portal":...}
Logs: JSON lines on stderr. Health: GET /healthz. Metrics: GET /metrics (Prometheus).`;

const SHUTDOWN_GRACE_MS = 10_000;

function count(v: string | undefined, flag: string, dflt: number, max = 65_535): number {
  if (v === undefined) return dflt;
  if (!/^\d{1,9}$/.test(v) || Number(v) > max) usage(`${flag} must be a whole number from 0 to ${max}`);
  return Number(v);
}

async function main(argv: string[]): Promise<void> {
  const { values: v } = parse(
    argv,
    {
      data: { type: 'string' },
      host: { type: 'string' },
      'http-port': { type: 'string' },
      'mqtt-port': { type: 'string' },
      'mqtt-url': { type: 'string' },
      'mqtt-public-url': { type: 'string' },
      'no-mqtt': { type: 'boolean' },
      'database-url': { type: 'string' },
      'pg-schema': { type: 'string' },
      name: { type: 'string' },
      key: { type: 'string' },
      'rate-limit': { type: 'string' },
      'claim-attempts': { type: 'string' },
      'max-long-polls': { type: 'string' },
      'new-per-address': { type: 'string' },
      'new-global': { type: 'string' },
      'max-unclaimed': { type: 'string' },
      'unclaimed-ttl-hours': { type: 'string' },
      'max-connections': { type: 'string' },
      'max-connections-per-address': { type: 'string' },
      'trusted-proxy': { type: 'string', multiple: true },
      'headers-timeout-ms': { type: 'string' },
      'request-timeout-ms': { type: 'string' },
      'keep-alive-ms': { type: 'string' },
      'log-level': { type: 'string' },
    },
    false,
  );
  if (v.help === true) {
    process.stdout.write(HELP + '\n');
    return;
  }
  const level = (v['log-level'] ?? 'info') as LogLevel;
  if (!LOG_LEVELS.includes(level)) usage(`--log-level must be one of ${LOG_LEVELS.join(', ')}`);
  const chosen = [v['no-mqtt'] === true, v['mqtt-url'] !== undefined, v['mqtt-port'] !== undefined].filter(Boolean).length;
  if (chosen > 1) usage('give at most one of --no-mqtt, --mqtt-url and --mqtt-port');
  const mqtt: MqttOption =
    v['no-mqtt'] === true ? { mode: 'off' } : v['mqtt-url'] !== undefined ? { mode: 'external', url: v['mqtt-url'] } : { mode: 'embedded', port: count(v['mqtt-port'], '--mqtt-port', 1883) };
  const dataDir = path.resolve(v.data ?? path.join('.mesh-data', 'portal'));
  const databaseUrl = v['database-url'] ?? process.env.DATABASE_URL;
  const log = jsonLogger(level);
  const trustedProxies = (v['trusted-proxy'] ?? []).flatMap((s) => s.split(',')).map((s) => s.trim()).filter((s) => s !== '');
  const positive = (x: string | undefined, flag: string, dflt: number, max: number): number => {
    const n = count(x, flag, dflt, max);
    if (n === 0) usage(`${flag} must be at least 1`);
    return n;
  };
  const options = {
    dataDir,
    host: v.host ?? '127.0.0.1',
    httpPort: count(v['http-port'], '--http-port', 8080),
    mqtt,
    ...(v['mqtt-public-url'] !== undefined ? { mqttPublicUrl: v['mqtt-public-url'] } : {}),
    ...(databaseUrl !== undefined && databaseUrl !== '' ? { databaseUrl } : {}),
    ...(v['pg-schema'] !== undefined ? { pgSchema: v['pg-schema'] } : {}),
    name: v.name ?? 'localhost',
    ...(v.key !== undefined ? { keyFile: path.resolve(v.key) } : {}),
    rateLimit: count(v['rate-limit'], '--rate-limit', 50, 1_000_000),
    claimAttempts: count(v['claim-attempts'], '--claim-attempts', 10, 1_000_000),
    maxLongPolls: count(v['max-long-polls'], '--max-long-polls', 10_000, 10_000_000),
    ...(v['new-per-address'] !== undefined ? { newPerAddressPerHour: positive(v['new-per-address'], '--new-per-address', 30, 1_000_000) } : {}),
    ...(v['new-global'] !== undefined ? { newGlobalPerHour: positive(v['new-global'], '--new-global', 10_000, 100_000_000) } : {}),
    maxUnclaimed: count(v['max-unclaimed'], '--max-unclaimed', 100_000, 100_000_000),
    unclaimedTtlMs: positive(v['unclaimed-ttl-hours'], '--unclaimed-ttl-hours', 168, 100_000) * 3_600_000,
    maxConnections: positive(v['max-connections'], '--max-connections', 10_000, 10_000_000),
    ...(v['max-connections-per-address'] !== undefined ? { maxConnectionsPerAddress: count(v['max-connections-per-address'], '--max-connections-per-address', 256, 10_000_000) } : {}),
    trustedProxies,
    headersTimeoutMs: positive(v['headers-timeout-ms'], '--headers-timeout-ms', 10_000, 3_600_000),
    requestTimeoutMs: positive(v['request-timeout-ms'], '--request-timeout-ms', 30_000, 3_600_000),
    keepAliveTimeoutMs: positive(v['keep-alive-ms'], '--keep-alive-ms', 65_000, 3_600_000),
    shutdownGraceMs: SHUTDOWN_GRACE_MS,
    logger: log,
  };

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

  const portal = await startPortal(options);

  process.stdout.write(`mesh-portal ready ${JSON.stringify({ http: portal.httpUrl, mqtt: portal.mqttUrl, name: portal.name, portal: portal.portalId })}\n`);

  // a bug must not take the portal down silently: log it; the request that hit it already got a 500
  process.on('uncaughtException', (e) => log.error('uncaught exception', { err: e.message, stack: e.stack }));
  process.on('unhandledRejection', (e) => log.error('unhandled rejection', { err: e instanceof Error ? e.message : String(e) }));

  await new Promise<void>((resolve) => {
    const stop = (): void => {
      portal.close().then(resolve, (e: unknown) => {
        log.error('stop failed', { err: e instanceof Error ? e.message : String(e) });
        process.exitCode = 1;
        resolve();
      });
    };
    if (first !== undefined) stop();
    else signalled = stop;
  });
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
