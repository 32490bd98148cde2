/**
 * The embedded MQTT 3.1.1 broker (aedes). A device connects with username = its device UDF and
 * password = a fresh session request (createSession(authKey, deviceId)) as JSON, verified like
 * the Session transaction (signature, freshness, unused nonce). It may subscribe only to its own
 * topic and may not publish. Sessions are forced clean and wills dropped: the broker keeps no
 * offline queue (a device that was away catches up with Download).
 */
import * as net from 'node:net';
import { Aedes, type AedesPublishPacket, type AuthenticateError, type Client } from 'aedes';
import { MeshError } from '../../mesh/errors.js';
import { decodeSignedEnvelope, UDF_TEXT } from '../../mesh/envelope.js';
import { deviceTopic } from '../../mesh/protocol.js';
import { ConnectionGuard, listenError, type ConnectionLimits } from '../connections.js';
import type { Logger } from '../log.js';
import { errorFields } from '../log.js';
import type { Metrics } from '../metrics.js';
import type { SessionManager } from '../sessions.js';
import type { Push } from './types.js';

export interface EmbeddedOptions {
  readonly host: string;
  readonly port: number;
  /** host put in the advertised URL (defaults to the bound host; 127.0.0.1 for a wildcard bind) */
  readonly publicUrl?: string;
  readonly sessions: SessionManager;
  readonly metrics: Metrics;
  readonly log: Logger;
  /** per client address and in all (default 10,000 in all) */
  readonly connections?: ConnectionLimits;
}

const MAX_PASSWORD_BYTES = 8 * 1024;

function authError(message: string, returnCode: 4 | 5): AuthenticateError {
  return Object.assign(new Error(message), { returnCode }) as AuthenticateError;
}

export async function startEmbeddedBroker(o: EmbeddedOptions): Promise<Push> {
  const deviceOf = new WeakMap<Client, string>();
  const broker = await Aedes.createBroker({
    connectTimeout: 10_000,
    maxClientsIdLength: 128,
    preConnect: (_client, packet, cb) => {
      packet.clean = true;
      delete packet.will;
      cb(null, true);
    },
    authenticate: (client, username, password, done) => {
      const refuse = (e: unknown): void => {
        o.metrics.mqttAuthFailures++;
        o.log.info('mqtt connection refused', { device: username, ...errorFields(e) });
        const code = e instanceof MeshError && e.code !== 'internal' && e.code !== 'unavailable' ? 4 : 5;
        done(authError(e instanceof Error ? e.message : 'refused', code), false);
      };
      if (username === undefined || !UDF_TEXT.test(username) || password === undefined || password.length > MAX_PASSWORD_BYTES) {
        refuse(new MeshError('unauthorized', 'username must be the device UDF and password a session request'));
        return;
      }
      let env;
      try {
        env = decodeSignedEnvelope(password, 'MQTT password', MAX_PASSWORD_BYTES);
      } catch (e) {
        refuse(e);
        return;
      }
      o.sessions.verifyRequest(env, username).then(
        (s) => {
          if (s.kind !== 'device') {
            refuse(new MeshError('forbidden', 'only devices connect to the push broker'));
            return;
          }
          deviceOf.set(client, s.subject);
          o.log.debug('mqtt device connected', { device: s.subject });
          done(null, true);
        },
        refuse,
      );
    },
    authorizeSubscribe: (client, sub, cb) => {
      const device = deviceOf.get(client);
      if (device !== undefined && sub.topic === deviceTopic(device)) {
        cb(null, { ...sub, qos: sub.qos > 1 ? 1 : sub.qos });
        return;
      }
      o.log.info('mqtt subscription refused', { device, topic: sub.topic.slice(0, 200) });
      cb(null, null);
    },
    authorizePublish: (client, _packet, cb) => {
      cb(client === null ? null : new Error('devices do not publish to the portal'));
    },
  });
  // aedes emits 'error' (e.g. from its will sweeper) though its types do not say so
  (broker as unknown as NodeJS.EventEmitter).on('error', (e: Error) => o.log.warn('mqtt broker error', { err: e.message }));
  broker.on('clientError', (_c: Client, e: Error) => o.log.debug('mqtt client error', { err: e.message }));
  broker.on('connectionError', (_c: Client, e: Error) => o.log.debug('mqtt connection error', { err: e.message }));

  const sockets = new Set<net.Socket>();
  const guard = new ConnectionGuard(o.connections ?? { maxTotal: 10_000, maxPerAddress: 0 });
  const server = net.createServer((socket) => {
    if (!guard.admit(socket)) return;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    broker.handle(socket);
  });
  try {
    await new Promise<void>((resolve, reject) => {
      const failed = (e: NodeJS.ErrnoException): void => reject(listenError('MQTT', o.host, o.port, e));
      server.once('error', failed);
      server.listen(o.port, o.host, () => {
        server.off('error', failed);
        resolve();
      });
    });
  } catch (e) {
    // the broker has timers of its own: close it, or the process would not exit
    await new Promise<void>((resolve) => broker.close(() => resolve()));
    throw e;
  }
  server.on('error', (e) => o.log.error('mqtt listener error', { err: e.message }));
  const addr = server.address() as net.AddressInfo;
  const host = o.host === '0.0.0.0' || o.host === '::' ? '127.0.0.1' : o.host.includes(':') ? `[${o.host}]` : o.host;
  const url = o.publicUrl ?? `mqtt://${host}:${addr.port}`;
  let closed = false;

  return {
    mode: 'embedded',
    url,
    publish(device, payload) {
      if (closed) return;
      const packet = { cmd: 'publish', topic: deviceTopic(device), payload: typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload, qos: 1, retain: false, dup: false } as unknown as AedesPublishPacket;
      broker.publish(packet, (e?: Error) => {
        if (e === undefined || e === null) o.metrics.mqttPublishes++;
        else {
          o.metrics.mqttPublishFailures++;
          o.log.warn('mqtt publish failed', { device, err: e.message });
        }
      });
    },
    clients: () => broker.connectedClients,
    refusedConnections: () => guard.refused,
    healthy: () => !closed && server.listening,
    async close() {
      if (closed) return;
      closed = true;
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        broker.close(() => {
          for (const s of sockets) s.destroy();
        });
      });
    },
  };
}
