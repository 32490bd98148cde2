/**
 * The push channel's reconnect schedule, driven by a fake clock against a real MQTT broker (aedes
 * on a free port): after every connection that came up and subscribed, the schedule starts again
 * at its base delay, so a broker that dropped the device five times is reconnected to within the
 * base delay the sixth time, not after a delay grown for the life of the process.
 */
import test from 'ava';
import * as net from 'node:net';
import { Aedes, type Client } from 'aedes';
import { Push } from '../agent/connection.js';
import { FakeClock } from '../runtime/clock.js';
import { newDeviceIdentity } from '../mesh/device.js';
import type { DeviceFiles } from '../runtime/device-files.js';

async function broker(): Promise<{ url: string; clients: () => Client[]; subscribed: (n: number) => Promise<void>; close: () => Promise<void> }> {
  const b = await Aedes.createBroker();
  const live = new Set<Client>();
  let subs = 0;
  const waiters: { n: number; done: () => void }[] = [];
  b.on('client', (c) => live.add(c));
  b.on('clientDisconnect', (c) => live.delete(c));
  b.on('subscribe', () => {
    subs++;
    for (const w of waiters.filter((x) => subs >= x.n)) w.done();
  });
  const server = net.createServer(b.handle);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  return {
    url: `mqtt://127.0.0.1:${port}`,
    clients: () => [...live],
    subscribed: (n) => (subs >= n ? Promise.resolve() : new Promise<void>((done) => waiters.push({ n, done }))),
    close: async () => {
      await new Promise<void>((r) => b.close(() => r()));
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

test('a broker that drops the device five times: the sixth reconnect comes within the base delay', async (t) => {
  const mq = await broker();
  t.teardown(() => mq.close());
  const clock = new FakeClock(Date.UTC(2026, 0, 1), () => 0.999);
  const id = newDeviceIdentity({ model: 'thermostat', manufacturer: 'acme', serial: '1', portalAuthority: 'p' });
  const device = { id: id.id, keys: id.keys } as unknown as DeviceFiles;
  let ups = 0;
  let drops = 0;
  const log = (event: string): void => {
    if (event === 'push-disconnected') drops++;
  };
  const push = new Push({ url: mq.url, device, clock, log, onHint: () => undefined, onUp: () => ups++ });
  t.teardown(() => push.stop());
  await push.start();
  await mq.subscribed(1);
  for (let drop = 1; drop <= 6; drop++) {
    for (const c of mq.clients()) c.close();
    // the device notices the close and sets a reconnect timer on the fake clock
    // (the keep-alive timer of the live link is on the same clock, so wait for the disconnect itself)
    for (let i = 0; i < 1000 && drops < drop; i++) await new Promise((r) => setTimeout(r, 10));
    t.is(clock.timers, 1, `drop ${drop}: one reconnect timer`);
    const due = (clock.nextAt ?? Infinity) - clock.now();
    t.true(due <= 500, `drop ${drop}: the reconnect is due in ${due} ms, within the 500 ms base delay`);
    await clock.advance(500);
    await mq.subscribed(drop + 1);
  }
  for (let i = 0; i < 1000 && ups < 7; i++) await new Promise((r) => setTimeout(r, 10));
  t.is(ups, 7, 'subscribed once at start and after each of the six drops');
  t.is(push.delays.failures, 0, 'the schedule was reset by the last subscription');
});
