/**
 * Push through an external MQTT broker (e.g. Mosquitto, or a cluster behind one address): the
 * portal connects as a client and publishes each feed item (QoS 1, not retained). Reconnects on
 * the one retry schedule (runtime/backoff.ts: exponential, jittered from the clock's random source),
 * so a fleet of portals does not reconnect in step after a broker restart. While disconnected, up to `maxQueued` items wait; beyond that they
 * are dropped and counted (devices catch up with Download).
 */
import { randomUUID } from 'node:crypto';
import mqtt from 'mqtt';
import { MeshError } from '../../mesh/errors.js';
import { deviceTopic } from '../../mesh/protocol.js';
import { backoff } from '../../runtime/backoff.js';
import type { Clock, Timer } from '../../runtime/clock.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import type { PushCredentials } from './nats-auth.js';
import type { Push } from './types.js';

export interface ExternalOptions {
  readonly url: string;
  /** the URL advertised to devices, if it differs from the one the portal uses */
  readonly publicUrl?: string;
  readonly metrics: Metrics;
  readonly log: Logger;
  readonly maxQueued?: number;
  readonly connectTimeoutMs?: number;
  readonly clock: Clock;
  /** NATS operator mode: the portal connects with a JWT it mints, and mints each device's (nats-auth.ts) */
  readonly credentials?: PushCredentials;
}

/** The URL without user name and password (what may be logged and advertised). */
export function publicBrokerUrl(url: string): string {
  const u = new URL(url);
  u.username = '';
  u.password = '';
  return u.toString().replace(/\/$/, '');
}

export async function connectExternalBroker(o: ExternalOptions): Promise<Push> {
  let parsed: URL;
  try {
    parsed = new URL(o.url);
  } catch {
    throw new MeshError('usage', 'the MQTT URL is not a URL (expected mqtt://host:port or mqtts://host:port)');
  }
  if (!['mqtt:', 'mqtts:', 'tcp:', 'tls:', 'ws:', 'wss:'].includes(parsed.protocol)) throw new MeshError('usage', 'the MQTT URL must start with mqtt://, mqtts://, ws:// or wss://');
  const shown = publicBrokerUrl(o.url);
  const maxQueued = o.maxQueued ?? 10_000;
  const client = mqtt.connect(o.url, {
    clientId: `mesh-portal-${randomUUID()}`,
    clean: true,
    protocolVersion: 4,
    reconnectPeriod: 0,
    connectTimeout: o.connectTimeoutMs ?? 10_000,
    keepalive: 30,
    ...(o.credentials !== undefined ? { username: 'mesh-portal', password: o.credentials.portal() } : {}),
  });
  let closed = false;
  let queued = 0;
  const delays = backoff(250, 30_000, () => o.clock.random());
  let timer: Timer | undefined;

  const scheduleReconnect = (): void => {
    if (closed || timer !== undefined) return;
    timer = o.clock.setTimer(
      () => {
        timer = undefined;
        if (closed || client.connected) return;
        // a fresh JWT at each connection (the last one may have expired)
        if (o.credentials !== undefined) client.options.password = o.credentials.portal();
        client.reconnect();
      },
      delays.next(),
      { unref: true },
    );
  };

  // the first connection must succeed, so a wrong URL is found at start, not at the first push
  await new Promise<void>((resolve, reject) => {
    const ok = (): void => {
      client.off('error', bad);
      client.off('close', bad);
      resolve();
    };
    const bad = (e?: Error): void => {
      client.off('connect', ok);
      client.off('error', bad);
      client.off('close', bad);
      closed = true;
      client.end(true);
      reject(new MeshError('unavailable', `cannot connect to the MQTT broker ${shown}: ${e?.message ?? 'connection closed'}`));
    };
    client.once('connect', ok);
    client.once('error', bad);
    client.once('close', bad);
  });
  o.log.info('connected to the MQTT broker', { url: shown });

  client.on('connect', () => {
    delays.reset();
    o.log.info('connected to the MQTT broker again', { url: shown });
  });
  client.on('close', () => {
    if (!closed) {
      o.log.warn('lost the MQTT broker; reconnecting', { url: shown });
      scheduleReconnect();
    }
  });
  client.on('error', (e) => o.log.warn('MQTT broker error', { url: shown, err: e.message }));

  return {
    mode: 'external',
    url: o.publicUrl ?? shown,
    publish(device, payload) {
      if (closed) return;
      if (queued >= maxQueued) {
        o.metrics.mqttPublishFailures++;
        return;
      }
      queued++;
      client.publish(deviceTopic(device), payload, { qos: 1, retain: false }, (e) => {
        queued--;
        if (e === undefined || e === null) o.metrics.mqttPublishes++;
        else {
          o.metrics.mqttPublishFailures++;
          o.log.warn('mqtt publish failed', { device, err: e.message });
        }
      });
    },
    clients: () => (client.connected ? 1 : 0),
    ...(o.credentials !== undefined ? { deviceCredential: (device: string, expiresMs: number) => (o.credentials as PushCredentials).device(deviceTopic(device), device, expiresMs) } : {}),
    healthy: () => !closed && client.connected,
    async close() {
      if (closed) return;
      closed = true;
      timer?.cancel();
      await new Promise<void>((resolve) => {
        const t = o.clock.setTimer(() => {
          client.end(true);
          resolve();
        }, 3000);
        client.end(false, {}, () => {
          t.cancel();
          resolve();
        });
      });
    },
  };
}
