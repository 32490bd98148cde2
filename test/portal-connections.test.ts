/**
 * Connections against a real portal process: thousands of idle sockets from one address, the
 * per-address cap on HTTP and on the embedded MQTT broker, and idle sockets closed. Clients on
 * other addresses are 127.0.0.2 and up (Linux routes all of 127/8 to the loopback interface).
 * Nothing here is a speed benchmark: "served" means answered, with a generous timeout per request;
 * the time a fresh client took is logged, not asserted.
 */
import test from 'ava';
import * as fs from 'node:fs';
import * as net from 'node:net';
import { performance } from 'node:perf_hooks';
import { PATHS } from '../mesh/protocol.js';
import { startPortalProcess } from '../harness/portal-process.js';
import { rawHttp } from './helpers/raw-http.js';

/** Our soft limit on open files: the test needs one per socket (and a margin for everything else). */
function openFileLimit(): number {
  const m = /^Max open files\s+(\d+|unlimited)/m.exec(fs.readFileSync('/proc/self/limits', 'utf8'));
  return m?.[1] === undefined || m[1] === 'unlimited' ? 1_000_000 : Number(m[1]);
}

const SOCKETS = Math.min(3_000, openFileLimit() - 500);

interface Herd {
  readonly sockets: net.Socket[];
  /** sockets the other side has closed */
  closed(): number;
  destroy(): void;
}

/**
 * Open `n` raw TCP connections from `from` that never send a byte, 200 at a time. After each
 * batch, until the listener has accepted them all (`accepted()`, the portal's own count): the
 * kernel completes a handshake before the process accepts it, and connections beyond a full accept
 * queue would be left half-open in the kernel, never seen by the portal (so never closed by it).
 */
async function herd(port: number, n: number, from: string, accepted?: () => Promise<number>): Promise<Herd> {
  const sockets: net.Socket[] = [];
  let closed = 0;
  const before = (await accepted?.()) ?? 0;
  for (let i = 0; i < n; i += 200) {
    const batch = Array.from({ length: Math.min(200, n - i) }, () => {
      const s = net.connect({ port, host: '127.0.0.1', localAddress: from });
      sockets.push(s);
      s.on('error', () => undefined);
      // flowing, so the portal's FIN is read (a paused socket would sit in CLOSE-WAIT, never 'close')
      s.resume();
      s.once('close', () => closed++);
      return new Promise<void>((resolve) => {
        s.once('connect', () => resolve());
        s.once('close', () => resolve());
      });
    });
    await Promise.all(batch);
    if (accepted !== undefined) await until(async () => (await accepted()) - before >= sockets.length);
  }
  return { sockets, closed: () => closed, destroy: () => sockets.forEach((s) => s.destroy()) };
}

/** Until `cond` holds: real time, no deadline of its own (ava's timeout is the backstop). */
async function until(cond: () => boolean | Promise<boolean>): Promise<void> {
  while (!(await cond())) await new Promise((r) => setTimeout(r, 20));
}

/** A metric of the portal, read from an address of its own (127.0.0.9: no per-address cap in the way). */
async function metric(url: string, name: string, from = '127.0.0.9'): Promise<number> {
  const text = String((await rawHttp(url, 'GET', '/metrics', { localAddress: from, timeoutMs: 10_000 })).json);
  const m = new RegExp(`^${name} (\\d+)$`, 'm').exec(text);
  return m?.[1] === undefined ? NaN : Number(m[1]);
}

/** HTTP connections the portal has accepted so far, less the metrics requests that asked (one each). */
function httpAccepted(url: string): () => Promise<number> {
  let asked = 0;
  return async () => (await metric(url, 'mesh_portal_http_connections_accepted_total')) - ++asked;
}

test.serial(`${SOCKETS} idle sockets from one address: all but the per-address cap are closed at accept, and a new client is served`, async (t) => {
  // idle sockets are closed after --headers-timeout-ms: a long one, so the held ones stay held here
  const p = await startPortalProcess({ args: ['--rate-limit', '50', '--max-connections-per-address', '64', '--headers-timeout-ms', '600000', '--no-mqtt'] });
  const port = Number(new URL(p.http).port);
  const h = await herd(port, SOCKETS, '127.0.0.1', httpAccepted(p.http));
  try {
    await until(() => h.closed() >= SOCKETS - 64);
    t.is(h.closed(), SOCKETS - 64, 'exactly the cap is held');
    const t0 = performance.now();
    const hello = await rawHttp(p.http, 'GET', PATHS.hello, { localAddress: '127.0.0.2', timeoutMs: 10_000 });
    const ms = performance.now() - t0;
    t.is(hello.status, 200);
    t.log(`a fresh Hello from 127.0.0.2 next to ${SOCKETS} sockets from 127.0.0.1: ${ms.toFixed(1)} ms`);
    // the capped address is refused a new connection before any answer
    await t.throwsAsync(rawHttp(p.http, 'GET', PATHS.hello, { localAddress: '127.0.0.1', timeoutMs: 10_000 }));
    t.is(await metric(p.http, 'mesh_portal_http_connections_refused_total'), SOCKETS - 64 + 1);
    // the held ones and the metrics request itself (the closes of earlier requests may take a moment to be counted)
    await until(async () => (await metric(p.http, 'mesh_portal_http_connections')) === 64 + 1);
    // once its sockets are gone, the address is served again
    h.destroy();
    await until(async () => (await metric(p.http, 'mesh_portal_http_connections')) === 1);
    t.is((await rawHttp(p.http, 'GET', PATHS.hello, { localAddress: '127.0.0.1', timeoutMs: 10_000 })).status, 200);
  } finally {
    h.destroy();
    t.is(await p.stop(), 0, p.logs().slice(-2000));
  }
});

test.serial(`${SOCKETS} idle sockets from one address with no per-address cap: all are held, and a new client on that address is served`, async (t) => {
  // --rate-limit 0 turns off the per-address cap (a test rig, many devices behind one address)
  const p = await startPortalProcess({ args: ['--rate-limit', '0', '--headers-timeout-ms', '600000', '--no-mqtt'] });
  const port = Number(new URL(p.http).port);
  const h = await herd(port, SOCKETS, '127.0.0.1', httpAccepted(p.http));
  try {
    t.is(h.closed(), 0);
    await until(async () => (await metric(p.http, 'mesh_portal_http_connections', '127.0.0.1')) >= SOCKETS + 1);
    const t0 = performance.now();
    const hello = await rawHttp(p.http, 'GET', PATHS.hello, { localAddress: '127.0.0.1', timeoutMs: 10_000 });
    t.is(hello.status, 200);
    t.log(`a fresh Hello next to ${SOCKETS} idle sockets from the same address: ${(performance.now() - t0).toFixed(1)} ms`);
    t.is(h.closed(), 0);
  } finally {
    h.destroy();
    t.is(await p.stop(), 0, p.logs().slice(-2000));
  }
});

test.serial(`idle sockets that never send a byte, and a request whose headers never end, are closed after --headers-timeout-ms`, async (t) => {
  const p = await startPortalProcess({ args: ['--rate-limit', '0', '--headers-timeout-ms', '1000', '--no-mqtt'] });
  const port = Number(new URL(p.http).port);
  const h = await herd(port, SOCKETS, '127.0.0.1', httpAccepted(p.http));
  const slow = net.connect({ port, host: '127.0.0.1' });
  slow.on('error', () => undefined);
  let answer = '';
  slow.on('data', (d: Buffer) => (answer += d.toString('utf8')));
  const slowClosed = new Promise<void>((r) => slow.once('close', () => r()));
  slow.write(`GET ${PATHS.hello} HTTP/1.1\r\nHost: x\r\n`);
  try {
    const t0 = performance.now();
    await until(() => h.closed() === SOCKETS);
    await slowClosed;
    // Sockets with no activity at all are also closed after 90 s (longer than any long poll): closed
    // well before that, they were closed by the headers timeout. (A bound of 60 s for a 1 s timeout
    // is no speed test.)
    const s = (performance.now() - t0) / 1000;
    t.true(s < 60, `closed after ${s.toFixed(1)} s`);
    t.log(`${SOCKETS} idle sockets and one with unfinished headers closed ${s.toFixed(1)} s after the last one opened (--headers-timeout-ms 1000)`);
    t.regex(answer, /^HTTP\/1\.1 408 /);
    t.is(h.closed(), SOCKETS);
    // the portal goes on serving
    t.is((await rawHttp(p.http, 'GET', PATHS.hello, { timeoutMs: 10_000 })).status, 200);
  } finally {
    h.destroy();
    slow.destroy();
    t.is(await p.stop(), 0, p.logs().slice(-2000));
  }
});

/** An MQTT 3.1.1 CONNECT with a user name and password (which the portal will refuse). */
function mqttConnect(clientId: string, user: string, pass: string): Buffer {
  const str = (s: string): Buffer => {
    const b = Buffer.from(s, 'utf8');
    return Buffer.concat([Buffer.from([b.length >> 8, b.length & 0xff]), b]);
  };
  const body = Buffer.concat([str('MQTT'), Buffer.from([4, 0xc2, 0, 60]), str(clientId), str(user), str(pass)]);
  return Buffer.concat([Buffer.from([0x10, body.length]), body]);
}

test.serial('embedded MQTT: past the per-address cap sockets are closed at accept; another address still gets its CONNACK', async (t) => {
  const p = await startPortalProcess({ args: ['--rate-limit', '50', '--max-connections-per-address', '64'] });
  const port = Number(new URL(p.mqtt ?? '').port);
  // 300 fit in the accept queue at once: no need to wait for the broker between batches
  const h = await herd(port, 300, '127.0.0.1');
  try {
    await until(() => h.closed() >= 300 - 64);
    t.is(h.closed(), 300 - 64);
    const s = net.connect({ port, host: '127.0.0.1', localAddress: '127.0.0.2' });
    s.on('error', () => undefined);
    const connack = await new Promise<Buffer>((resolve, reject) => {
      s.once('data', resolve);
      s.once('close', () => reject(new Error('closed without a CONNACK')));
      s.once('connect', () => s.write(mqttConnect('probe', 'not-a-device', 'no')));
    });
    s.destroy();
    t.is(connack[0], 0x20, 'CONNACK');
    t.true((connack[3] ?? 0) !== 0, 'the bogus credentials are refused');
    t.is(await metric(p.http, 'mesh_portal_mqtt_connections_refused_total'), 300 - 64);
  } finally {
    h.destroy();
    t.is(await p.stop(), 0, p.logs().slice(-2000));
  }
});
