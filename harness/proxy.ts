/**
 * A round-robin TCP proxy, as a load balancer in front of several portal processes: each new
 * connection goes to the next backend; a backend that refuses the connection (a dead process) is
 * skipped for the next one, as a load balancer's health check would. Connections are not
 * pinned: a client that opens a new connection may land on another process.
 */
import * as net from 'node:net';

export interface RoundRobinProxy {
  readonly port: number;
  readonly url: string;
  /** connections handed to each backend so far */
  readonly counts: readonly number[];
  close(): Promise<void>;
}

export async function roundRobinProxy(backends: readonly number[], host = '127.0.0.1'): Promise<RoundRobinProxy> {
  let next = 0;
  const counts = backends.map(() => 0);
  const open = new Set<net.Socket>();
  const server = net.createServer((client) => {
    open.add(client);
    client.on('close', () => open.delete(client));
    client.on('error', () => client.destroy());
    client.pause();
    const tryBackend = (left: number): void => {
      if (left === 0 || client.destroyed) {
        client.destroy();
        return;
      }
      const i = next++ % backends.length;
      const up = net.connect(backends[i] as number, host);
      let connected = false;
      up.once('connect', () => {
        connected = true;
        counts[i] = (counts[i] as number) + 1;
        open.add(up);
        up.on('close', () => {
          open.delete(up);
          client.destroy();
        });
        up.on('error', () => up.destroy());
        client.on('close', () => up.destroy());
        client.pipe(up);
        up.pipe(client);
        client.resume();
      });
      up.once('error', () => {
        if (!connected) tryBackend(left - 1);
      });
    };
    tryBackend(backends.length);
  });
  await new Promise<void>((r) => server.listen(0, host, () => r()));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    url: `http://${host}:${port}`,
    counts,
    close: () =>
      new Promise<void>((r) => {
        for (const s of open) s.destroy();
        server.close(() => r());
      }),
  };
}

/**
 * A TCP link to one backend that can be cut, as a network setting gone wrong cuts a device off:
 * while `isCut()` is true a new connection is closed at once, and an open one is closed when the
 * next bytes pass through it (a kept-alive HTTP connection does not outlive the cut).
 */
export async function cuttableLink(backend: number, isCut: () => boolean, host = '127.0.0.1'): Promise<{ readonly port: number; readonly url: string; close(): Promise<void> }> {
  const open = new Set<net.Socket>();
  const server = net.createServer((client) => {
    open.add(client);
    client.on('close', () => open.delete(client));
    client.on('error', () => client.destroy());
    if (isCut()) {
      client.destroy();
      return;
    }
    const up = net.connect(backend, host);
    open.add(up);
    up.on('close', () => {
      open.delete(up);
      client.destroy();
    });
    up.on('error', () => up.destroy());
    client.on('close', () => up.destroy());
    const pass = (to: net.Socket) => (d: Buffer): void => {
      if (isCut()) {
        client.destroy();
        up.destroy();
        return;
      }
      to.write(d);
    };
    client.on('data', pass(up));
    up.on('data', pass(client));
  });
  await new Promise<void>((r) => server.listen(0, host, () => r()));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    url: `http://${host}:${port}`,
    close: () =>
      new Promise<void>((r) => {
        for (const s of open) s.destroy();
        server.close(() => r());
      }),
  };
}
