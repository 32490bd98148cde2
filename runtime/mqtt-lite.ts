/**
 * A small MQTT 3.1.1 client for the device: what the agent needs and nothing else, so that the
 * single-file agent does not carry mqtt.js (its idle memory is part of the device's budget).
 *
 * - CONNECT (clean session, client id, username/password, keep-alive), CONNACK;
 * - SUBSCRIBE at QoS 0 or 1, SUBACK;
 * - PUBLISH in and out at QoS 0 or 1 (PUBACK both ways; a QoS 1 message in is acknowledged after
 *   its handler ran), retain on the way out;
 * - PINGREQ on the injected clock's keep-alive; no PINGRESP by the next tick closes the link;
 * - DISCONNECT on `end()`;
 * - mqtt:// and mqtts:// only (a ws:// URL is a `usage` error);
 * - every packet from the broker is bounded (`maxPacketBytes`) and parsed defensively: anything
 *   malformed, oversized or out of protocol closes the connection with an error, never throws out
 *   of a socket callback.
 *
 * No reconnection here: the caller decides (the agent's push channel on its backoff schedule).
 */
import * as net from 'node:net';
import type * as tls from 'node:tls';
import { MeshError } from '../mesh/errors.js';
import type { Clock, Timer } from './clock.js';

export interface MqttLiteOptions {
  /** mqtt://host[:port] or mqtts://host[:port]; user:password in the URL are used when username/password are not given */
  readonly url: string;
  readonly clientId: string;
  readonly username?: string;
  readonly password?: string;
  /** seconds; 0 turns keep-alive off (default 30) */
  readonly keepaliveS?: number;
  /** ms to wait for CONNACK (default 10 s) */
  readonly connectTimeoutMs?: number;
  /** the largest packet accepted from the broker (default 1 MiB) */
  readonly maxPacketBytes?: number;
  readonly clock: Clock;
  /** TLS options for mqtts:// (e.g. a CA); the server name is the URL's host */
  readonly tls?: tls.ConnectionOptions;
}

export type MessageHandler = (topic: string, payload: Buffer) => void | Promise<void>;

const CONNACK_REASONS: Record<number, string> = {
  1: 'unacceptable protocol version',
  2: 'client identifier rejected',
  3: 'server unavailable',
  4: 'bad user name or password',
  5: 'not authorized',
};

/** Parse and check a broker URL: host, port, TLS or not. */
export function parseMqttUrl(url: string): { host: string; port: number; secure: boolean; username?: string; password?: string } {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new MeshError('usage', `"${url}" is not a URL; give mqtt://HOST[:PORT] or mqtts://HOST[:PORT]`);
  }
  if (u.protocol !== 'mqtt:' && u.protocol !== 'mqtts:') throw new MeshError('usage', `the device speaks MQTT 3.1.1 over mqtt:// or mqtts:// only, not ${u.protocol}// (${url})`);
  const secure = u.protocol === 'mqtts:';
  const host = u.hostname.replace(/^\[(.*)\]$/, '$1');
  if (host === '') throw new MeshError('usage', `${url} names no host`);
  const port = u.port === '' ? (secure ? 8883 : 1883) : Number(u.port);
  return {
    host,
    port,
    secure,
    ...(u.username !== '' ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.password !== '' ? { password: decodeURIComponent(u.password) } : {}),
  };
}

// ---- encoding ----

function varint(n: number): Buffer {
  const out: number[] = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return Buffer.from(out);
}

function str(s: string | Buffer): Buffer {
  const b = typeof s === 'string' ? Buffer.from(s, 'utf8') : s;
  if (b.length > 0xffff) throw new MeshError('too-large', 'an MQTT string is at most 65,535 bytes');
  const len = Buffer.alloc(2);
  len.writeUInt16BE(b.length);
  return Buffer.concat([len, b]);
}

function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}

function packet(first: number, body: Buffer): Buffer {
  if (body.length > 268_435_455) throw new MeshError('too-large', 'an MQTT packet is at most 256 MiB');
  return Buffer.concat([Buffer.from([first]), varint(body.length), body]);
}

export function encodeConnect(o: { clientId: string; username?: string; password?: string; keepaliveS: number }): Buffer {
  let flags = 0x02; // clean session
  if (o.username !== undefined) flags |= 0x80;
  if (o.password !== undefined) flags |= 0x40;
  const parts = [str('MQTT'), Buffer.from([4, flags]), u16(o.keepaliveS), str(o.clientId)];
  if (o.username !== undefined) parts.push(str(o.username));
  if (o.password !== undefined) parts.push(str(o.password));
  return packet(0x10, Buffer.concat(parts));
}

export function encodePublish(topic: string, payload: Buffer, qos: 0 | 1, retain: boolean, id: number): Buffer {
  return packet(0x30 | (qos << 1) | (retain ? 1 : 0), Buffer.concat([str(topic), qos > 0 ? u16(id) : Buffer.alloc(0), payload]));
}

// ---- decoding ----

export interface Packet {
  readonly type: number;
  readonly flags: number;
  readonly body: Buffer;
}

/**
 * Splits the byte stream into packets. `push` yields the complete packets so far, one at a time
 * (so each is handled before a bad one after it is met); throws a MeshError (`malformed`,
 * `too-large`) on a length that cannot be, after which the stream is dead.
 */
export class PacketReader {
  private buf: Buffer = Buffer.alloc(0);
  constructor(private readonly maxPacketBytes: number) {}

  *push(chunk: Buffer): Generator<Packet, void, void> {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    for (;;) {
      if (this.buf.length < 2) return;
      let len = 0;
      let mult = 1;
      let i = 1;
      for (;;) {
        if (i > 4) throw new MeshError('malformed', 'an MQTT remaining length longer than 4 bytes');
        if (i >= this.buf.length) return; // length not complete yet
        const b = this.buf[i]!;
        len += (b & 0x7f) * mult;
        mult *= 128;
        i++;
        if ((b & 0x80) === 0) break;
      }
      if (len + i > this.maxPacketBytes) throw new MeshError('too-large', `an MQTT packet of ${len + i} bytes, over the limit of ${this.maxPacketBytes}`);
      if (this.buf.length < i + len) return;
      const first = this.buf[0]!;
      const body = this.buf.subarray(i, i + len);
      this.buf = this.buf.subarray(i + len);
      yield { type: first >> 4, flags: first & 0x0f, body };
    }
  }
}

/** A PUBLISH packet's parts; `malformed` when it cannot be one. */
export function decodePublish(p: Packet): { topic: string; payload: Buffer; qos: 0 | 1; id: number } {
  const qos = (p.flags >> 1) & 3;
  if (qos > 1) throw new MeshError('malformed', `a PUBLISH at QoS ${qos}, which this client never subscribes to`);
  if (p.body.length < 2) throw new MeshError('malformed', 'a PUBLISH without a topic');
  const tlen = p.body.readUInt16BE(0);
  const end = 2 + tlen + (qos > 0 ? 2 : 0);
  if (p.body.length < end) throw new MeshError('malformed', 'a PUBLISH shorter than its topic');
  const topicBytes = p.body.subarray(2, 2 + tlen);
  let topic: string;
  try {
    topic = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(topicBytes);
  } catch {
    throw new MeshError('malformed', 'a PUBLISH whose topic is not UTF-8');
  }
  const id = qos > 0 ? p.body.readUInt16BE(2 + tlen) : 0;
  if (qos > 0 && id === 0) throw new MeshError('malformed', 'a QoS 1 PUBLISH with packet id 0');
  return { topic, payload: p.body.subarray(end), qos: qos as 0 | 1, id };
}

// ---- the client ----

interface Waiter {
  readonly resolve: (v: Buffer) => void;
  readonly reject: (e: Error) => void;
}

export class MqttLite {
  private readonly reader: PacketReader;
  private readonly waiting = new Map<number, Waiter>();
  private nextId = 1;
  private keepTimer: Timer | undefined;
  private awaitingPong = false;
  private pongCount = 0;
  private closed = false;
  private ending = false;
  private closeError: Error | undefined;
  private messageHandler: MessageHandler = () => undefined;
  private readonly closeHandlers: ((err: Error | undefined) => void)[] = [];
  /** messages in, one at a time in arrival order (a QoS 1 one is acknowledged after its handler) */
  private inbox: Promise<void> = Promise.resolve();

  private constructor(
    private readonly socket: net.Socket,
    private readonly o: MqttLiteOptions,
  ) {
    this.reader = new PacketReader(o.maxPacketBytes ?? 1024 * 1024);
  }

  /** Connect and wait for the broker's CONNACK; rejects with `unauthorized` (refused credentials), `unavailable` or `timeout`. */
  static async connect(o: MqttLiteOptions): Promise<MqttLite> {
    const where = parseMqttUrl(o.url);
    const username = o.username ?? where.username;
    const password = o.password ?? where.password;
    // TLS is loaded only for mqtts://: a device on plain MQTT does not pay for it at idle
    const socket = where.secure ? (await import('node:tls')).connect({ host: where.host, port: where.port, servername: net.isIP(where.host) === 0 ? where.host : undefined, ...o.tls }) : net.connect({ host: where.host, port: where.port });
    socket.setNoDelay(true);
    const c = new MqttLite(socket, o);
    return new Promise<MqttLite>((resolve, reject) => {
      let settled = false;
      const timer = o.clock.setTimer(() => c.fail(new MeshError('timeout', `no CONNACK from ${o.url} within ${o.connectTimeoutMs ?? 10_000} ms`)), o.connectTimeoutMs ?? 10_000);
      c.waiting.set(-1, {
        resolve: (body) => {
          timer.cancel();
          settled = true;
          const rc = body[1]!;
          if (body.length !== 2 || rc !== 0) {
            const e =
              rc === 4 || rc === 5
                ? new MeshError('unauthorized', `the MQTT broker ${o.url} refused the connection: ${CONNACK_REASONS[rc]}`)
                : new MeshError('unavailable', `the MQTT broker ${o.url} refused the connection: ${CONNACK_REASONS[rc] ?? `code ${rc}`}`);
            c.fail(e);
            reject(e);
            return;
          }
          c.startKeepalive();
          resolve(c);
        },
        reject: (e) => {
          timer.cancel();
          if (!settled) reject(e);
        },
      });
      socket.once(where.secure ? 'secureConnect' : 'connect', () => {
        try {
          socket.write(encodeConnect({ clientId: o.clientId, username, password, keepaliveS: o.keepaliveS ?? 30 }));
        } catch (e) {
          c.fail(e as Error);
        }
      });
      socket.on('data', (d: Buffer) => c.onData(d));
      socket.on('error', (e) => c.fail(new MeshError('unavailable', `MQTT ${o.url}: ${e.message}`)));
      socket.on('close', () => c.fail(new MeshError('unavailable', `the MQTT broker ${o.url} closed the connection`)));
    });
  }

  /** Messages on the subscribed topics; a QoS 1 message is acknowledged once the handler's promise settles. */
  onMessage(fn: MessageHandler): void {
    this.messageHandler = fn;
  }

  /** Called once when the connection ends: undefined after `end()`, else why. */
  onClose(fn: (err: Error | undefined) => void): void {
    if (this.closed) queueMicrotask(() => fn(this.closeError));
    else this.closeHandlers.push(fn);
  }

  /** PINGRESPs received so far */
  get pongs(): number {
    return this.pongCount;
  }

  get connected(): boolean {
    return !this.closed;
  }

  /** Subscribe; resolves with the granted QoS, rejects with `forbidden` when the broker refuses. */
  async subscribe(topic: string, qos: 0 | 1): Promise<0 | 1> {
    const id = this.id();
    const body = await this.request(id, packet(0x82, Buffer.concat([u16(id), str(topic), Buffer.from([qos])])));
    const granted = body[2];
    if (body.length !== 3 || granted === undefined || granted === 0x80 || granted > 2) throw new MeshError('forbidden', `the MQTT broker refused the subscription to ${topic}`);
    return (granted > 1 ? 1 : granted) as 0 | 1;
  }

  /** Publish; at QoS 1 resolves when the broker's PUBACK came. */
  async publish(topic: string, payload: string | Buffer, opts: { qos?: 0 | 1; retain?: boolean } = {}): Promise<void> {
    const qos = opts.qos ?? 0;
    const data = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload;
    if (qos === 0) {
      this.write(encodePublish(topic, data, 0, opts.retain === true, 0));
      return;
    }
    const id = this.id();
    await this.request(id, encodePublish(topic, data, 1, opts.retain === true, id));
  }

  /** A clean DISCONNECT, then the socket is closed. */
  async end(): Promise<void> {
    if (this.closed) return;
    this.ending = true;
    await new Promise<void>((resolve) => {
      this.socket.end(Buffer.from([0xe0, 0x00]), () => resolve());
      this.socket.once('close', () => resolve());
    });
    this.fail(undefined);
  }

  /** Close at once, without DISCONNECT (the broker then sends any will; we set none). */
  destroy(): void {
    this.fail(undefined);
  }

  private id(): number {
    for (let n = 0; n < 0xffff; n++) {
      const id = this.nextId;
      this.nextId = this.nextId === 0xffff ? 1 : this.nextId + 1;
      if (!this.waiting.has(id)) return id;
    }
    throw new MeshError('internal', 'no MQTT packet id free');
  }

  private request(id: number, bytes: Buffer): Promise<Buffer> {
    if (this.closed) return Promise.reject(this.closeError ?? new MeshError('unavailable', 'the MQTT connection is closed'));
    return new Promise<Buffer>((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      this.write(bytes);
    });
  }

  private write(bytes: Buffer): void {
    if (this.closed) throw this.closeError ?? new MeshError('unavailable', 'the MQTT connection is closed');
    this.socket.write(bytes);
  }

  private startKeepalive(): void {
    const s = this.o.keepaliveS ?? 30;
    if (s <= 0 || this.closed) return;
    const tick = (): void => {
      if (this.closed) return;
      if (this.awaitingPong) {
        this.fail(new MeshError('timeout', `no PINGRESP from ${this.o.url} within ${s} s`));
        return;
      }
      this.awaitingPong = true;
      this.write(Buffer.from([0xc0, 0x00]));
      this.keepTimer = this.o.clock.setTimer(tick, s * 1000, { unref: true });
    };
    this.keepTimer = this.o.clock.setTimer(tick, s * 1000, { unref: true });
  }

  private onData(d: Buffer): void {
    if (this.closed) return;
    try {
      for (const p of this.reader.push(d)) this.handle(p);
    } catch (e) {
      this.fail(e instanceof MeshError ? e : new MeshError('malformed', `MQTT from ${this.o.url}: ${(e as Error).message}`));
    }
  }

  private handle(p: Packet): void {
    if (this.closed) return;
    switch (p.type) {
      case 2: {
        // CONNACK
        const w = this.waiting.get(-1);
        if (w === undefined || p.body.length < 2) throw new MeshError('malformed', 'an unexpected CONNACK');
        this.waiting.delete(-1);
        w.resolve(p.body);
        return;
      }
      case 3: {
        const m = decodePublish(p);
        this.inbox = this.inbox.then(async () => {
          try {
            await this.messageHandler(m.topic, m.payload);
          } catch {
            // the handler's own failure is the handler's business; the message is still acknowledged
          }
          if (m.qos === 1 && !this.closed) this.write(Buffer.concat([Buffer.from([0x40, 0x02]), u16(m.id)]));
        });
        return;
      }
      case 4: // PUBACK
      case 9: {
        // SUBACK
        if (p.body.length < 2) throw new MeshError('malformed', 'an acknowledgement without a packet id');
        const id = p.body.readUInt16BE(0);
        const w = this.waiting.get(id);
        if (w === undefined) throw new MeshError('malformed', `an acknowledgement for packet ${id}, which was not sent`);
        this.waiting.delete(id);
        w.resolve(p.body);
        return;
      }
      case 13: // PINGRESP
        this.awaitingPong = false;
        this.pongCount++;
        return;
      default:
        throw new MeshError('malformed', `an MQTT packet of type ${p.type}, which a broker does not send to this client`);
    }
  }

  private fail(err: Error | undefined): void {
    if (this.closed) return;
    this.closed = true;
    if (this.ending) err = undefined;
    this.closeError = err;
    this.keepTimer?.cancel();
    this.socket.destroy();
    const reason = err ?? new MeshError('unavailable', 'the MQTT connection was closed');
    for (const w of this.waiting.values()) w.reject(reason);
    this.waiting.clear();
    for (const fn of this.closeHandlers.splice(0)) fn(err);
  }
}
