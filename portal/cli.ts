#!/usr/bin/env node
/**
 * mesh-portal: the Mesh portal as a service. Prints one line when ready,
 *   mesh-portal ready {"http":"http://127.0.0.1:8080","mqtt":"mqtt://127.0.0.1:1883","name":"localhost","portal":"<UDF>"}
 * then logs JSON lines on stderr. SIGTERM or SIGINT: stop accepting, finish what is in flight, exit 0.
 */
import * as path from 'node:path';
import { MeshError } from '../mesh/errors.js';
import { parse, runMain, usage } from '../runtime/cli.js';
import { LOG_LEVELS, jsonLogger, type LogLevel } from './log.js';
import { startPortal, type MqttOption } from './server.js';

const HELP = `mesh-portal: the Mathematical Mesh portal (HTTP transactions, transparency log, MQTT push)

usage: mesh-portal [options]

  --data DIR            data directory: SQLite database and portal key (default ./.mesh-data/portal)
  --host ADDR           address to listen on, HTTP and the embedded broker (default 127.0.0.1)
  --http-port N         HTTP port; 0 picks a free port (default 8080)
  --mqtt-port N         port of the embedded MQTT broker; 0 picks a free port (default 1883)
  --mqtt-url URL        publish through an external broker instead, e.g. mqtt://127.0.0.1:1883
  --mqtt-nats-account F with --mqtt-url to NATS in operator mode: the account seed file (scripts/nats-auth.ts)
                        that signs the portal's and each device's MQTT password (per-device topic access)
  --mqtt-public-url URL the push URL advertised to devices, if they reach the broker elsewhere
  --no-mqtt             no push at all (devices long-poll Download)
  --database-url URL    PostgreSQL, e.g. postgres://user@host:5432/db?schema=mesh_portal
                        (default: env DATABASE_URL, else SQLite in DIR/portal.db)
  --pg-schema NAME      PostgreSQL schema for the portal's tables (default mesh_portal)
  --name NAME           account domain: accounts are alice@NAME (default localhost)
  --key FILE            portal signing key (default DIR/portal-key.json, created 0600)
  --rate-limit N        requests per second per client address and per session; 0 = off (default 50)
  --claim-attempts N    failed claim proofs per device per hour (default 10)
  --max-long-polls N    Downloads waiting at once (default 10000)
  --log-level LEVEL     debug, info, warn or error (default info)
  --json                errors on stdout as JSON
  -h, --help            this help

When ready, one line on stdout: mesh-portal ready {"http":...,"mqtt":...|null,"name":...,"portal":...}
Logs: JSON lines on stderr. Health: GET /healthz. Metrics: GET /metrics (Prometheus).`;

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
      'mqtt-nats-account': { type: 'string' },
      'no-mqtt': { type: 'boolean' },
      'database-url': { type: 'string' },
      'pg-schema': { type: 'string' },
      name: { type: 'string' },
      key: { type: 'string' },
      'rate-limit': { type: 'string' },
      'claim-attempts': { type: 'string' },
      'max-long-polls': { type: 'string' },
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
    v['no-mqtt'] === true ? { mode: 'off' } : v['mqtt-url'] !== undefined ? { mode: 'external', url: v['mqtt-url'], ...(v['mqtt-nats-account'] !== undefined ? { natsAccountFile: path.resolve(v['mqtt-nats-account']) } : {}) } : { mode: 'embedded', port: count(v['mqtt-port'], '--mqtt-port', 1883) };
  const dataDir = path.resolve(v.data ?? path.join('.mesh-data', 'portal'));
  const databaseUrl = v['database-url'] ?? process.env.DATABASE_URL;
  const log = jsonLogger(level);

  const portal = await startPortal({
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
    logger: log,
  });

  process.stdout.write(`mesh-portal ready ${JSON.stringify({ http: portal.httpUrl, mqtt: portal.mqttUrl, name: portal.name, portal: portal.portalId })}\n`);

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
      portal.close().then(resolve, (e: unknown) => {
        log.error('stop failed', { err: e instanceof Error ? e.message : String(e) });
        process.exitCode = 1;
        resolve();
      });
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
  });
  // everything is closed; should a library still hold a handle, do not hang on it
  setTimeout(() => process.exit(), 500).unref();
}

runMain('mesh-portal', (argv) =>
  main(argv).catch((e: unknown) => {
    throw e instanceof MeshError ? e : new MeshError('internal', e instanceof Error ? e.message : String(e));
  }),
);
