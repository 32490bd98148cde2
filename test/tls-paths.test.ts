/**
 * The device's TLS paths, which it loads only when a URL asks for them (node:https for an https
 * portal, node:tls for an mqtts:// broker): a self-signed certificate made here with openssl.
 */
import test from 'ava';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as https from 'node:https';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import { makeTransport } from '../client/transport-node.js';
import { MqttLite } from '../runtime/mqtt-lite.js';
import { systemClock } from '../runtime/clock.js';
import { isMeshError } from '../mesh/errors.js';

function selfSigned(): { key: string; cert: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mesh-tls-'));
  try {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost', '-keyout', path.join(dir, 'k.pem'), '-out', path.join(dir, 'c.pem')], { stdio: 'ignore' });
    return { key: fs.readFileSync(path.join(dir, 'k.pem'), 'utf8'), cert: fs.readFileSync(path.join(dir, 'c.pem'), 'utf8') };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

test('an https portal URL goes over TLS (an untrusted certificate is refused as unavailable)', async (t) => {
  const { key, cert } = selfSigned();
  const server = https.createServer({ key, cert }, (_req, res) => res.end('{}'));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  const tr = makeTransport(new URL(`https://localhost:${(server.address() as AddressInfo).port}`));
  t.teardown(() => tr.close());
  const e = await t.throwsAsync(tr.send({ method: 'GET', path: '/healthz', headers: {}, body: undefined, timeoutMs: 10_000, maxBytes: 1000 }));
  t.true(isMeshError(e) && e.code === 'unavailable');
  t.regex(e?.message ?? '', /certificate/);
});

test('mqtts://: the client connects over TLS with the given CA, and refuses an untrusted certificate', async (t) => {
  const { key, cert } = selfSigned();
  const server = tls.createServer({ key, cert }, (s) => {
    s.on('error', () => undefined);
    s.once('data', () => s.write(Buffer.from([0x20, 0x02, 0x00, 0x00])));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  const url = `mqtts://localhost:${(server.address() as AddressInfo).port}`;
  const c = await MqttLite.connect({ url, clientId: 'tls-1', clock: systemClock, tls: { ca: cert } });
  t.true(c.connected);
  c.destroy();
  const e = await t.throwsAsync(MqttLite.connect({ url, clientId: 'tls-2', clock: systemClock }));
  t.true(isMeshError(e) && e.code === 'unavailable', String(e));
});
