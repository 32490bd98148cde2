/**
 * startPortal: the whole portal in one process, for the CLI, in-process tests and benchmarks.
 *
 *   storage (SQLite or PostgreSQL) -> the log tree, feeds and sessions kept in memory, in step with
 *   the database through its change events -> the HTTP front and the MQTT push.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { MeshError } from '../mesh/errors.js';
import { createPortalProfile } from '../mesh/messages.js';
import { isoNow, systemClock, type Clock, type Timer } from '../runtime/clock.js';
import { TrustedProxies } from './address.js';
import { claimPage, invitePage } from './claim-page.js';
import { defaultWebDir, loadWebApp } from './web.js';
import { logOrigin } from '../mesh/checkpoint.js';
import { formatVkey, NOTE_ED25519_TYPE, type NoteKey } from '../mesh/cosignature.js';
import { fileWitnessStore, Witness } from '../mesh/witness.js';
import * as files from '../runtime/files.js';
import { Witnessing, type WitnessConfig } from './witnesses.js';

/** how often the portal checks whether its log grew past what its witnesses cosigned */
const WITNESS_INTERVAL_MS = 1000;
import { FeedHub, itemBuffer } from './feed.js';
import { ROUTES } from './handlers/index.js';
import { HttpFront } from './http.js';
import { errorFields, jsonLogger, type Logger, type LogLevel } from './log.js';
import { Metrics } from './metrics.js';
import { claimDataDir } from './pidfile.js';
import { loadOrCreatePortalKey } from './portal-key.js';
import { RateLimiter } from './ratelimit.js';
import { SharedBudget } from './limits.js';
import { SessionManager } from './sessions.js';
import { openStorage } from './storage/open.js';
import type { Storage, StoreEvent } from './storage/types.js';
import { LogTree } from './transparency.js';
import { Trust } from './trust.js';
import { Verifier } from './verify.js';
import { connectExternalBroker } from './push/external.js';
import { startEmbeddedBroker } from './push/embedded.js';
import { loadPushCredentials } from './push/nats-auth.js';
import type { Push } from './push/types.js';
import type { PortalContext, PortalLimits } from './context.js';

export type MqttOption =
  | { readonly mode: 'embedded'; readonly port: number }
  /** `natsAccountFile`: NATS operator mode, per-device MQTT passwords signed with this account seed (push/nats-auth.ts) */
  | { readonly mode: 'external'; readonly url: string; readonly natsAccountFile?: string }
  | { readonly mode: 'off' };

export interface PortalOptions {
  /** data directory: SQLite database and the portal key (created 0700) */
  readonly dataDir: string;
  /** address to bind HTTP and the embedded broker (default 127.0.0.1) */
  readonly host?: string;
  /** the owner app's directory (built by scripts/build-web.mjs); default dist/web when built; null: none */
  readonly web?: string | null;
  /** HTTP port; 0 picks a free one (default 8080) */
  readonly httpPort?: number;
  /** default: embedded broker on port 1883 */
  readonly mqtt?: MqttOption;
  /** the push URL to advertise in Hello, when devices reach the broker at another address */
  readonly mqttPublicUrl?: string;
  /** PostgreSQL URL (may carry ?schema=NAME); default SQLite in dataDir/portal.db */
  readonly databaseUrl?: string;
  /** PostgreSQL schema; overrides ?schema= */
  readonly pgSchema?: string;
  /** account domain: accounts are name@<name> (default localhost) */
  readonly name?: string;
  /** portal signing key file (default dataDir/portal-key.json) */
  readonly keyFile?: string;
  /** witnesses that cosign the log's checkpoints (C2SP tlog-witness): served with them */
  readonly witnesses?: readonly WitnessConfig[];
  /** other portals' logs (origin and key) this portal witnesses at POST /add-checkpoint, cosigning as `<name>/witness` */
  readonly witnessFor?: readonly NoteKey[];
  /** requests per second per client address and per session; 0 turns every request-rate limit off (default 50) */
  readonly rateLimit?: number;
  /** failed claim proofs per device per hour (default 10) */
  readonly claimAttempts?: number;
  /** long polls waiting at once (default 10000) */
  readonly maxLongPolls?: number;
  /** new devices and accounts per client address per hour, burst as many (default 30; off when rateLimit is 0) */
  readonly newPerAddressPerHour?: number;
  /** new devices and accounts per hour from all addresses, burst as many (default 10,000; off when rateLimit is 0) */
  readonly newGlobalPerHour?: number;
  /** registered, never claimed devices at most (default 100,000) */
  readonly maxUnclaimed?: number;
  /** an unclaimed device with no live session is deleted this long after it registered (default 7 days) */
  readonly unclaimedTtlMs?: number;
  /** live sessions kept per device or account, the newest (default 16) */
  readonly sessionsPerSubject?: number;
  /** open connections per listener (HTTP, embedded MQTT) in all (default 10,000) */
  readonly maxConnections?: number;
  /** open connections per client address and listener (default 256; 0 = none; default 0 when rateLimit is 0) */
  readonly maxConnectionsPerAddress?: number;
  /** reverse proxies (addresses, CIDR ranges) whose X-Forwarded-For names the client */
  readonly trustedProxies?: readonly string[];
  /** time to receive a request's headers / the whole request (defaults 10 s / 30 s; long polls are not cut by them) */
  readonly headersTimeoutMs?: number;
  readonly requestTimeoutMs?: number;
  /** idle keep-alive connections are closed after this (default 65 s) */
  readonly keepAliveTimeoutMs?: number;
  /** the clock: time, timers, randomness (default the system's; tests pass a FakeClock) */
  readonly clock?: Clock;
  /** how long requests in flight may take to finish at close (default 10 s) */
  readonly shutdownGraceMs?: number;
  /** worker threads verifying published profiles (default: cores - 1, at most 4; 0 verifies on the event loop) */
  readonly verifyThreads?: number;
  readonly logLevel?: LogLevel;
  readonly logger?: Logger;
}

export interface PortalHandle {
  /** e.g. http://127.0.0.1:43121 */
  readonly httpUrl: string;
  /** the push URL devices should use, or null */
  readonly mqttUrl: string | null;
  readonly name: string;
  /** UDF of the portal key */
  readonly portalId: string;
  /** The sweep in progress (expired sessions, nonces, joins, claim failures, unclaimed devices), or a settled promise. */
  housekeeping(): Promise<void>;
  close(): Promise<void>;
}

const HOST_NAME = /^[a-z0-9.-]{1,253}(?::\d{1,5})?$/;
const PRUNE_EVERY_MS = 60_000;
const RESYNC_EVERY_MS = 5_000;
const HOUR_MS = 60 * 60 * 1000;

/** Run `fn` every `ms` of the clock until cancelled. */
function every(clock: Clock, ms: number, fn: () => void): Timer {
  let t: Timer;
  let stopped = false;
  const tick = (): void => {
    if (stopped) return;
    fn();
    t = clock.setTimer(tick, ms, { unref: true });
  };
  t = clock.setTimer(tick, ms, { unref: true });
  return {
    cancel: () => {
      stopped = true;
      t.cancel();
    },
  };
}

export async function startPortal(opts: PortalOptions): Promise<PortalHandle> {
  const log = opts.logger ?? jsonLogger(opts.logLevel ?? 'info');
  const name = opts.name ?? 'localhost';
  if (!HOST_NAME.test(name)) throw new MeshError('usage', `--name must be a lowercase host name (optionally :port), not "${name}"`);
  const host = opts.host ?? '127.0.0.1';
  const dataDir = path.resolve(opts.dataDir);
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const clock = opts.clock ?? systemClock;
  const rate = opts.rateLimit ?? 50;
  const limits: PortalLimits = {
    claimAttempts: opts.claimAttempts ?? 10,
    claimWindowMs: HOUR_MS,
    maxLongPolls: opts.maxLongPolls ?? 10_000,
    maxJoinsPerAccount: 16,
    joinMaxAgeMs: 10 * 60 * 1000,
    maxUnclaimed: opts.maxUnclaimed ?? 100_000,
    unclaimedTtlMs: opts.unclaimedTtlMs ?? 7 * 24 * HOUR_MS,
    sessionsPerSubject: opts.sessionsPerSubject ?? 16,
  };
  const trusted = TrustedProxies.parse((opts.trustedProxies ?? []).join(','));
  const connections = {
    maxTotal: opts.maxConnections ?? 10_000,
    maxPerAddress: opts.maxConnectionsPerAddress ?? (rate > 0 ? 256 : 0),
    trusted,
  };
  const newPerAddress = rate > 0 ? (opts.newPerAddressPerHour ?? 30) : 0;
  const newGlobal = rate > 0 ? (opts.newGlobalPerHour ?? 10_000) : 0;

  const keyFile = opts.keyFile ?? path.join(dataDir, 'portal-key.json');
  const pk = loadOrCreatePortalKey(keyFile);
  for (const w of pk.warnings) log.warn(w, { file: keyFile });
  if (pk.created) log.info('portal key created', { portal: pk.id, file: keyFile });

  const cleanups: (() => Promise<void>)[] = [];
  const undo = async (): Promise<void> => {
    for (const c of cleanups.reverse()) await c().catch((e: unknown) => log.error('cleanup failed', errorFields(e)));
  };

  try {
    if (opts.databaseUrl === undefined || opts.databaseUrl === '') {
      const release = claimDataDir(dataDir);
      cleanups.push(() => Promise.resolve(release()));
    }
    const store: Storage = await openStorage({
      dataDir,
      ...(opts.databaseUrl !== undefined ? { databaseUrl: opts.databaseUrl } : {}),
      ...(opts.pgSchema !== undefined ? { pgSchema: opts.pgSchema } : {}),
      onError: (e) => log.warn('database connection error', { err: e.message }),
    });
    cleanups.push(() => store.close());

    const metrics = new Metrics();
    const trust = new Trust();
    const verifier = new Verifier(opts.verifyThreads);
    cleanups.push(() => verifier.close());
    const sessions = new SessionManager(store, trust, clock, limits.sessionsPerSubject, pk.key.privateKey);
    const tree = new LogTree(store, pk.key, clock);
    await tree.sync();
    const witnessing = new Witnessing(opts.witnesses ?? [], tree, name, clock, log);
    // the Intermesh: this portal witnesses other portals' logs (cosigning their heads with its key, as <name>/witness)
    const peerWitness =
      (opts.witnessFor ?? []).length === 0
        ? undefined
        : new Witness({
            name: `${name}/witness`,
            key: pk.key,
            logs: opts.witnessFor ?? [],
            store: fileWitnessStore(path.join(dataDir, 'witness-state.json'), files),
            now: () => Math.floor(clock.now() / 1000),
            log: (event, data) => (event === 'cosigned' ? log.debug('cosigned a peer checkpoint', data) : log.warn(`peer log ${event}`, data)),
          });
    if (witnessing.enabled) {
      // a round whenever the log grew (a Download that needs a newer head starts one at once)
      let witnessTimer: { cancel(): void } | undefined;
      const tick = (): void => {
        if (witnessing.latest === undefined || witnessing.latest.size < tree.size) void witnessing.start();
        witnessTimer = clock.setTimer(tick, WITNESS_INTERVAL_MS, { unref: true });
      };
      tick();
      cleanups.push(async () => witnessTimer?.cancel());
    }
    const feed = new FeedHub(store, limits.maxLongPolls, clock);
    const counters = { unclaimed: await store.unclaimedCount() };

    const mqtt = opts.mqtt ?? { mode: 'embedded', port: 1883 };
    let push: Push | null = null;
    if (mqtt.mode === 'embedded') {
      push = await startEmbeddedBroker({ host, port: mqtt.port, sessions, metrics, log, connections, ...(opts.mqttPublicUrl !== undefined ? { publicUrl: opts.mqttPublicUrl } : {}) });
    } else if (mqtt.mode === 'external') {
      const credentials = mqtt.natsAccountFile !== undefined ? loadPushCredentials(mqtt.natsAccountFile, clock) : undefined;
      push = await connectExternalBroker({ url: mqtt.url, metrics, log, clock, ...(opts.mqttPublicUrl !== undefined ? { publicUrl: opts.mqttPublicUrl } : {}), ...(credentials !== undefined ? { credentials } : {}) });
    }
    const pushed = push;
    if (pushed !== null) cleanups.push(() => pushed.close());

    store.onEvent((e: StoreEvent) => {
      switch (e.type) {
        case 'feed':
          feed.onItem(e.device, e.n);
          if (pushed === null) break;
          if (e.item !== undefined) pushed.publish(e.device, itemBuffer(e.item));
          else if (pushed.mode === 'embedded') {
            // another process wrote it; devices connected to this process's broker hear it from here
            store.feedItem(e.device, e.n).then(
              (i) => {
                if (i !== undefined) pushed.publish(e.device, itemBuffer(i));
              },
              (err: unknown) => log.warn('could not read a feed item to push', { device: e.device, ...errorFields(err) }),
            );
          }
          break;
        case 'log':
          if (e.size > tree.size) tree.sync().catch((err: unknown) => log.warn('log sync failed', errorFields(err)));
          break;
        case 'sessions':
          sessions.forgetAccount(e.account);
          break;
        case 'resync':
          log.warn('database change feed interrupted; refreshing caches');
          feed.resync();
          sessions.forgetAll();
          tree.sync().catch((err: unknown) => log.warn('log sync failed', errorFields(err)));
          break;
      }
    });

    let closing = false;
    const profile = createPortalProfile(pk.key, name, isoNow(clock));
    const ctx: PortalContext = {
      name,
      key: pk.key,
      portalId: pk.id,
      profile,
      store,
      log,
      tree,
      witnessing,
      sessions,
      feed,
      trust,
      verifier,
      metrics,
      limits,
      limiters: {
        joinPerIp: new RateLimiter(rate > 0 ? 1 / 6 : 0, 10),
        joinPerAccount: new RateLimiter(rate > 0 ? 1 / 6 : 0, 10),
        claimLookupPerAccount: new RateLimiter(rate > 0 ? 2 : 0, 20),
        newPerAddress: new SharedBudget(newPerAddress, HOUR_MS),
        newGlobal: new SharedBudget(newGlobal, HOUR_MS),
      },
      counters,
      mqttUrl: pushed?.url ?? null,
      ...(pushed?.deviceCredential !== undefined ? { pushCredential: pushed.deviceCredential } : {}),
      clock,
      now: () => clock.now(),
    };

    const health = async (): Promise<{ status: number; type: string; body: string }> => {
      let db = 'ok';
      try {
        await store.ping();
      } catch (e) {
        db = (e as Error).message;
      }
      const mq = pushed === null ? 'off' : pushed.healthy() ? 'ok' : 'down';
      const ok = db === 'ok' && mq !== 'down' && !closing;
      return {
        status: ok ? 200 : 503,
        type: 'application/json',
        body: JSON.stringify({ ok, db, mqtt: mq, storage: store.kind, logSize: tree.size, portal: pk.id, logKey: formatVkey({ name: logOrigin(name), publicKey: pk.key.publicKey }, NOTE_ED25519_TYPE), ...(peerWitness !== undefined ? { witnessKey: formatVkey({ name: `${name}/witness`, publicKey: pk.key.publicKey }) } : {}), ...(closing ? { closing: true } : {}) }),
      };
    };
    // the log's head as a C2SP tlog-checkpoint (signed note), for tools made for other transparency logs
    const checkpoint = async (): Promise<{ status: number; type: string; body: string }> => {
      if (!store.eventsReliable) await tree.sync();
      const cosigned = witnessing.enabled ? await witnessing.ensure(tree.size) : undefined;
      return { status: 200, type: 'text/plain; charset=utf-8', body: cosigned?.note ?? tree.checkpoint(logOrigin(name)) };
    };
    const live = async (): Promise<{ status: number; type: string; body: string }> => ({ status: 200, type: 'application/json', body: JSON.stringify({ ok: true, portal: pk.id }) });
    const scrape = async (): Promise<{ status: number; type: string; body: string }> => {
      const s = await store.stats();
      return {
        status: 200,
        type: 'text/plain; version=0.0.4; charset=utf-8',
        body: metrics.render({
          log_size: { help: 'Entries in the transparency log.', value: s.logSize },
          feed_items: { help: 'Feed items stored, all devices.', value: s.feedItems },
          devices: { help: 'Registered devices.', value: s.devices },
          accounts: { help: 'Bound accounts.', value: s.accounts },
          mqtt_clients: { help: 'Connected MQTT clients (embedded broker) or the portal connection (external).', value: pushed?.clients() ?? 0 },
          long_polls: { help: 'Downloads waiting for an item.', value: feed.pending },
          unclaimed_devices: { help: 'Registered devices never claimed (counted by the last sweep, plus registrations since).', value: counters.unclaimed },
          http_connections: { help: 'Open HTTP connections.', value: front.connections.total },
        }, {
          http_connections_accepted: { help: 'HTTP connections accepted (those closed at once by a cap included).', value: front.connections.accepted },
          http_connections_refused: { help: 'HTTP connections closed at accept: over the per-address or total cap.', value: front.connections.refused },
          mqtt_connections_refused: { help: 'MQTT connections closed at accept: over the per-address or total cap.', value: pushed?.refusedConnections?.() ?? 0 },
        }),
      };
    };

    const webDir = opts.web === null ? undefined : (opts.web ?? defaultWebDir());
    const web = webDir === undefined ? {} : loadWebApp(webDir);
    const front = new HttpFront(ctx, {
      routes: ROUTES,
      perIp: new RateLimiter(rate, Math.max(10, rate * 2)),
      perSession: new RateLimiter(rate, Math.max(10, rate * 2)),
      // /livez: the process answers (restart it if not); /readyz: it can serve (database and broker
      // work, not stopping; take it out of the load balancer if not); /healthz: /readyz, kept for old probes;
      // /claim, /invite: the static pages a label's or an invitation's QR code opens (the secret stays in the fragment)
      // /, /claim, /invite and the app's files: the owner app, when there is one (--web)
      ...(peerWitness !== undefined ? { extraPost: { '/add-checkpoint': (b: Buffer) => peerWitness.addCheckpoint(b) } } : {}),
      extra: { '/claim': claimPage, '/invite': invitePage, ...web, '/livez': live, '/readyz': health, '/healthz': health, '/metrics': scrape, '/checkpoint': checkpoint },
      connections,
      trusted,
      ...(opts.headersTimeoutMs !== undefined ? { headersTimeoutMs: opts.headersTimeoutMs } : {}),
      ...(opts.requestTimeoutMs !== undefined ? { requestTimeoutMs: opts.requestTimeoutMs } : {}),
      ...(opts.keepAliveTimeoutMs !== undefined ? { keepAliveTimeoutMs: opts.keepAliveTimeoutMs } : {}),
    });
    const addr = await front.listen(opts.httpPort ?? 8080, host);
    const shownHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
    const httpUrl = `http://${shownHost}:${addr.port}`;

    // the sweep: what expires goes, unclaimed devices past their time go, and they are counted again
    let sweeping: Promise<void> | undefined;
    const sweep = (): void => {
      if (sweeping !== undefined) return;
      const now = clock.now();
      sweeping = (async () => {
        await store.prune({ nowMs: now, joinsBeforeMs: now - limits.joinMaxAgeMs, failuresBeforeMs: now - limits.claimWindowMs, budgetsBeforeMs: now - HOUR_MS });
        const gone = await store.expireUnclaimed({ registeredBeforeMs: now - limits.unclaimedTtlMs, nowMs: now });
        if (gone > 0) log.info('unclaimed devices expired', { count: gone, ttlHours: limits.unclaimedTtlMs / HOUR_MS });
        counters.unclaimed = await store.unclaimedCount();
      })()
        .catch((e: unknown) => log.warn('sweep failed', errorFields(e)))
        .finally(() => {
          sweeping = undefined;
        });
    };
    const timers = [
      every(clock, PRUNE_EVERY_MS, sweep),
      every(clock, RESYNC_EVERY_MS, () => {
        // belt and braces: without a reliable change feed, read what other processes appended
        if (!store.eventsReliable) tree.sync().catch((e: unknown) => log.warn('log sync failed', errorFields(e)));
      }),
    ];

    log.info('portal started', { http: httpUrl, mqtt: ctx.mqttUrl, name, portal: pk.id, storage: store.kind, logSize: tree.size });

    let closed: Promise<void> | undefined;
    return {
      httpUrl,
      mqttUrl: ctx.mqttUrl,
      name,
      portalId: pk.id,
      housekeeping: () => sweeping ?? Promise.resolve(),
      close: () => {
        closed ??= (async () => {
          closing = true;
          for (const t of timers) t.cancel();
          feed.close();
          await front.stop(opts.shutdownGraceMs ?? 10_000);
          await sweeping;
          await undo();
          log.info('portal stopped');
        })();
        return closed;
      },
    };
  } catch (e) {
    await undo();
    throw e;
  }
}
