/**
 * The device's own MQTT 3.1.1 client (runtime/mqtt-lite.ts) against real brokers: aedes in
 * process (credentials, QoS 1 both ways, keep-alive on a fake clock, a dropped connection), the
 * machine's Mosquitto at 127.0.0.1:1883, and NATS's MQTT interface (a nats-server of the test's
 * own); then a hostile broker (a raw TCP server) that sends malformed, oversized or random
 * packets: the client closes the link with a coded error, and never throws.
 */
import test from 'ava';
import * as net from 'node:net';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { Aedes, type Client } from 'aedes';
import { MqttLite, PacketReader, decodePublish, parseMqttUrl } from '../runtime/mqtt-lite.js';
import { FakeClock, systemClock } from '../runtime/clock.js';
import { isMeshError } from '../mesh/errors.js';
import { startNats } from './helpers/nats.js';

const codeOf = async (p: Promise<unknown>): Promise<string> => {
  try {
    await p;
    return 'no error';
  } catch (e) {
    return isMeshError(e) ? e.code : `not coded: ${String(e)}`;
  }
};

async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 2000; i++) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error(`never: ${what}`);
}

interface AedesBroker {
  readonly url: string;
  readonly broker: Aedes;
  readonly clients: () => Client[];
  readonly pings: () => number;
  close(): Promise<void>;
}

async function aedes(opts: { password?: string } = {}): Promise<AedesBroker> {
  const b = await Aedes.createBroker({
    authenticate: (_client, _username, password, done) => {
      if (opts.password === undefined || password?.toString() === opts.password) done(null, true);
      else done(Object.assign(new Error('bad password'), { returnCode: 4 }) as never, false);
    },
  });
  const live = new Set<Client>();
  let pings = 0;
  b.on('client', (c) => live.add(c));
  b.on('clientDisconnect', (c) => live.delete(c));
  b.on('ping', () => pings++);
  const server = net.createServer(b.handle);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `mqtt://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    broker: b,
    clients: () => [...live],
    pings: () => pings,
    close: async () => {
      await new Promise<void>((r) => b.close(() => r()));
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

const MOSQUITTO = process.env.MESH_TEST_MQTT ?? 'mqtt://127.0.0.1:1883';
const cid = (): string => `lite-${randomBytes(6).toString('hex')}`;

test('URLs: mqtt:// and mqtts:// with default ports; ws://, wss:// and junk are usage errors', async (t) => {
  t.deepEqual(parseMqttUrl('mqtt://broker.example'), { host: 'broker.example', port: 1883, secure: false });
  t.deepEqual(parseMqttUrl('mqtts://u:p%40ss@[::1]:9000'), { host: '::1', port: 9000, secure: true, username: 'u', password: 'p@ss' });
  for (const bad of ['ws://broker:8080/mqtt', 'wss://broker/mqtt', 'http://x', 'not a url', 'mqtt://'])
    t.is(await codeOf(MqttLite.connect({ url: bad, clientId: 'x', clock: systemClock })), 'usage', bad);
});

test('aedes: refused credentials are unauthorized; the right password connects', async (t) => {
  const mq = await aedes({ password: 'sesame' });
  t.teardown(() => mq.close());
  t.is(await codeOf(MqttLite.connect({ url: mq.url, clientId: cid(), username: 'd', password: 'wrong', clock: systemClock })), 'unauthorized');
  const c = await MqttLite.connect({ url: mq.url, clientId: cid(), username: 'd', password: 'sesame', clock: systemClock });
  t.true(c.connected);
  await c.end();
  t.false(c.connected);
});

test('aedes: subscribe at QoS 1, messages in are acknowledged, QoS 1 out resolves on PUBACK; a clean end says no error', async (t) => {
  const mq = await aedes();
  t.teardown(() => mq.close());
  const c = await MqttLite.connect({ url: mq.url, clientId: cid(), clock: systemClock });
  const got: { topic: string; payload: string }[] = [];
  c.onMessage((topic, payload) => void got.push({ topic, payload: payload.toString() }));
  const st: { closed: Error | undefined | 'open' } = { closed: 'open' };
  c.onClose((e) => (st.closed = e));
  t.is(await c.subscribe('dev/1', 1), 1);
  let acks = 0;
  mq.broker.on('ack', () => acks++);
  const published: string[] = [];
  mq.broker.on('publish', (p, client) => {
    if (client !== null && client !== undefined) published.push(`${p.topic}:${p.qos}:${p.payload.toString()}`);
  });
  await new Promise<void>((r) => mq.broker.publish({ cmd: 'publish', topic: 'dev/1', payload: Buffer.from('hint 7'), qos: 1, retain: false, dup: false }, () => r()));
  await until(() => got.length === 1 && acks === 1, 'the message in and its PUBACK');
  t.deepEqual(got, [{ topic: 'dev/1', payload: 'hint 7' }]);
  await c.publish('out/1', 'hello', { qos: 1 });
  t.deepEqual(published, ['out/1:1:hello'], 'the broker had the message when publish resolved');
  await c.publish('out/0', Buffer.from('q0'));
  await until(() => published.length === 2, 'the QoS 0 message');
  await c.end();
  t.is(st.closed, undefined);
});

test('aedes: keep-alive on the injected clock: a PINGREQ each period; the link stays up while PINGRESPs come', async (t) => {
  const mq = await aedes();
  t.teardown(() => mq.close());
  const clock = new FakeClock();
  const c = await MqttLite.connect({ url: mq.url, clientId: cid(), keepaliveS: 30, clock });
  t.teardown(() => c.destroy());
  t.is(mq.pings(), 0);
  await clock.advance(29_999);
  t.is(mq.pings(), 0, 'nothing before the period');
  await clock.advance(1);
  await until(() => mq.pings() === 1, 'the first PINGREQ');
  for (let n = 2; n <= 4; n++) {
    // the PINGRESP must be in before the next tick, or the link is declared dead: poll for it
    await until(() => c.pongs === n - 1, 'the PINGRESP');
    await clock.advance(30_000);
    await until(() => mq.pings() === n, `PINGREQ ${n}`);
  }
  t.true(c.connected);
});

test('aedes: a broker that drops the link: onClose with unavailable, a pending QoS 1 publish is rejected', async (t) => {
  const mq = await aedes();
  t.teardown(() => mq.close());
  // a broker that never acknowledges this topic: the publish stays pending until the drop
  mq.broker.authorizePublish = (_client, packet, done) => {
    if (packet.topic === 'stuck') return;
    done(null);
  };
  const c = await MqttLite.connect({ url: mq.url, clientId: cid(), clock: systemClock });
  const st: { closed: Error | undefined | 'open' } = { closed: 'open' };
  c.onClose((e) => (st.closed = e));
  const pending = codeOf(c.publish('stuck', 'x', { qos: 1 }));
  await until(() => mq.clients().length === 1, 'the client on the broker');
  for (const cl of mq.clients()) cl.close();
  t.is(await pending, 'unavailable');
  await until(() => st.closed !== 'open', 'the close');
  t.true(isMeshError(st.closed) && st.closed.code === 'unavailable');
  t.false(c.connected);
  t.is(await codeOf(c.publish('x', 'y', { qos: 1 })), 'unavailable', 'publishing on a closed link is refused, not thrown');
});

test('Mosquitto at 127.0.0.1:1883: subscribe, QoS 1 round trip, retained message', async (t) => {
  const clock = systemClock;
  const topic = `mesh-test/lite/${randomBytes(6).toString('hex')}`;
  const a = await MqttLite.connect({ url: MOSQUITTO, clientId: cid(), clock });
  t.teardown(() => a.end());
  const got: string[] = [];
  a.onMessage((tp, p) => void got.push(`${tp}=${p.toString()}`));
  t.is(await a.subscribe(topic, 1), 1);
  await a.publish(topic, 'one', { qos: 1 });
  await until(() => got.length === 1, 'the message back');
  t.deepEqual(got, [`${topic}=one`]);
  // retained: a second client subscribing later gets it
  await a.publish(`${topic}/r`, 'kept', { qos: 1, retain: true });
  const b = await MqttLite.connect({ url: MOSQUITTO, clientId: cid(), clock });
  t.teardown(() => b.end());
  const later: string[] = [];
  b.onMessage((_tp, p) => void later.push(p.toString()));
  await b.subscribe(`${topic}/r`, 1);
  await until(() => later.length === 1, 'the retained message');
  t.deepEqual(later, ['kept']);
  await a.publish(`${topic}/r`, Buffer.alloc(0), { qos: 1, retain: true }); // clear it
});

test("NATS's MQTT interface: subscribe at QoS 1, QoS 1 both ways", async (t) => {
  const nats = await startNats();
  t.teardown(() => nats.stop());
  const a = await MqttLite.connect({ url: nats.mqttUrl, clientId: cid(), clock: systemClock });
  t.teardown(() => a.destroy());
  const got: string[] = [];
  a.onMessage((tp, p) => void got.push(`${tp}=${p.toString()}`));
  t.is(await a.subscribe('mmm/v1/device/D1', 1), 1);
  const b = await MqttLite.connect({ url: nats.mqttUrl, clientId: cid(), clock: systemClock });
  t.teardown(() => b.destroy());
  await b.publish('mmm/v1/device/D1', '{"seq":3}', { qos: 1 });
  await until(() => got.length === 1, 'the message through NATS');
  t.deepEqual(got, ['mmm/v1/device/D1={"seq":3}']);
  await a.end();
  await b.end();
});

// ---- a hostile broker ----

/** A raw TCP server: on the first bytes from a client (its CONNECT) it answers with `reply()`, then closes. */
async function hostile(reply: () => Buffer, opts: { close?: boolean } = {}): Promise<{ url: string; pings: () => number; close: () => Promise<void> }> {
  let pings = 0;
  const socks = new Set<net.Socket>();
  const server = net.createServer((s) => {
    socks.add(s);
    s.on('error', () => undefined);
    s.on('close', () => socks.delete(s));
    let first = true;
    s.on('data', (d) => {
      if (first) {
        first = false;
        s.write(reply());
        if (opts.close !== false) s.end();
      } else if (d[0] === 0xc0) pings++;
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `mqtt://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    pings: () => pings,
    close: async () => {
      for (const s of socks) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

const CONNACK_OK = Buffer.from([0x20, 0x02, 0x00, 0x00]);

/** Connect to the hostile server, wait for the link to end; its close error's code ('none' for a clean close). */
async function ending(url: string, maxPacketBytes?: number): Promise<string> {
  let c: MqttLite;
  try {
    c = await MqttLite.connect({ url, clientId: cid(), clock: new FakeClock(), keepaliveS: 0, ...(maxPacketBytes !== undefined ? { maxPacketBytes } : {}) });
  } catch (e) {
    return isMeshError(e) ? `connect:${e.code}` : `not coded: ${String(e)}`;
  }
  c.onMessage(() => undefined);
  const err = await new Promise<Error | undefined>((r) => c.onClose(r));
  if (err === undefined) return 'none';
  return isMeshError(err) ? err.code : `not coded: ${String(err)}`;
}

test('hostile broker: no PINGRESP: the link is closed with timeout after the next period', async (t) => {
  const h = await hostile(() => CONNACK_OK, { close: false });
  t.teardown(() => h.close());
  const clock = new FakeClock();
  const c = await MqttLite.connect({ url: h.url, clientId: cid(), keepaliveS: 10, clock });
  const st: { closed: Error | undefined | 'open' } = { closed: 'open' };
  c.onClose((e) => (st.closed = e));
  await clock.advance(10_000);
  await until(() => h.pings() === 1, 'the PINGREQ');
  t.is(st.closed, 'open');
  await clock.advance(10_000);
  t.true(isMeshError(st.closed) && st.closed.code === 'timeout', String(st.closed));
});

test('hostile broker: refusals and malformed, oversized or unexpected packets close the link with a code', async (t) => {
  const cases: [string, Buffer, string, number?][] = [
    ['CONNACK refused: not authorized', Buffer.from([0x20, 0x02, 0x00, 0x05]), 'connect:unauthorized'],
    ['CONNACK refused: server unavailable', Buffer.from([0x20, 0x02, 0x00, 0x03]), 'connect:unavailable'],
    ['no CONNACK at all, just a close', Buffer.alloc(0), 'connect:unavailable'],
    ['a remaining length of 5 bytes', Buffer.concat([CONNACK_OK, Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01])]), 'malformed'],
    ['a packet over the size limit', Buffer.concat([CONNACK_OK, Buffer.from([0x30, 0x80, 0x80, 0x04])]), 'too-large', 4096],
    ['a PUBLISH at QoS 2', Buffer.concat([CONNACK_OK, Buffer.from([0x34, 0x05, 0x00, 0x01, 0x61, 0x00, 0x01])]), 'malformed'],
    ['a PUBLISH whose topic length overruns it', Buffer.concat([CONNACK_OK, Buffer.from([0x30, 0x03, 0x00, 0x09, 0x61])]), 'malformed'],
    ['a topic that is not UTF-8', Buffer.concat([CONNACK_OK, Buffer.from([0x30, 0x04, 0x00, 0x02, 0xc3, 0x28])]), 'malformed'],
    ['a PUBACK for a packet never sent', Buffer.concat([CONNACK_OK, Buffer.from([0x40, 0x02, 0x12, 0x34])]), 'malformed'],
    ['a CONNECT from the broker', Buffer.concat([CONNACK_OK, Buffer.from([0x10, 0x00])]), 'malformed'],
    ['a second CONNACK', Buffer.concat([CONNACK_OK, CONNACK_OK]), 'malformed'],
    ['a good message, then the close', Buffer.concat([CONNACK_OK, Buffer.from([0x30, 0x04, 0x00, 0x01, 0x61, 0x62])]), 'unavailable'],
  ];
  for (const [what, bytes, code, max] of cases) {
    const h = await hostile(() => bytes);
    t.is(await ending(h.url, max), code, what);
    await h.close();
  }
});

test('hostile broker, fuzzed: random bytes after CONNACK never crash the client; the link ends with a coded error', async (t) => {
  let next = Buffer.alloc(0);
  const h = await hostile(() => Buffer.concat([CONNACK_OK, next]));
  t.teardown(() => h.close());
  await fc.assert(
    fc.asyncProperty(
      fc.oneof(
        fc.uint8Array({ maxLength: 300 }),
        // well-framed packets of any type and flags with random bodies
        fc.array(fc.tuple(fc.integer({ min: 0, max: 255 }), fc.uint8Array({ maxLength: 40 })), { maxLength: 5 }).map((ps) =>
          Buffer.concat(ps.map(([first, body]) => Buffer.concat([Buffer.from([first, body.length]), body]))),
        ),
      ),
      async (bytes) => {
        next = Buffer.from(bytes);
        const code = await ending(h.url, 256);
        return ['unavailable', 'malformed', 'too-large'].includes(code);
      },
    ),
    { numRuns: 60, seed: 16 },
  );
  t.pass('60 hostile streams, each ended with a coded error');
});

test('the packet reader: any split of the stream yields the same packets; a bad length is a coded error', (t) => {
  fc.assert(
    fc.property(fc.array(fc.uint8Array({ maxLength: 200 }), { maxLength: 6 }), fc.integer({ min: 1, max: 50 }), (bodies, cut) => {
      const stream = Buffer.concat(bodies.map((b) => Buffer.concat([Buffer.from([0x30, ...(b.length < 128 ? [b.length] : [(b.length % 128) | 0x80, b.length >> 7])]), b])));
      const r = new PacketReader(1024);
      const got: Buffer[] = [];
      for (let i = 0; i < stream.length; i += cut) for (const p of r.push(stream.subarray(i, i + cut))) got.push(Buffer.from(p.body));
      return got.length === bodies.length && got.every((g, i) => g.equals(Buffer.from(bodies[i]!)));
    }),
  );
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 400 }), (bytes) => {
      try {
        for (const p of new PacketReader(128).push(Buffer.from(bytes))) if (p.type === 3) decodePublish(p);
        return true;
      } catch (e) {
        return isMeshError(e);
      }
    }),
  );
  t.pass();
});
