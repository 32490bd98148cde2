/**
 * A nats-server of the test's own, with its MQTT interface (which needs JetStream and a
 * server_name), on free ports and a temporary JetStream directory; never the machine's
 * 4222/1883. `extraConfig` is appended to the configuration file (e.g. operator-mode
 * authorization from portal/push/nats-auth.ts).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';

export interface NatsServer {
  /** mqtt://127.0.0.1:PORT */
  readonly mqttUrl: string;
  /** nats://127.0.0.1:PORT */
  readonly natsUrl: string;
  /** the monitoring endpoint, http://127.0.0.1:PORT (/connz lists the connections) */
  readonly monitorUrl: string;
  readonly dir: string;
  logs(): string;
  stop(): Promise<void>;
}

/** A port that was free a moment ago (the kernel's choice for port 0). */
export async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const p of running) p.kill('SIGKILL');
});

export async function startNats(opts: { extraConfig?: string; mqttExtra?: string; binary?: string } = {}): Promise<NatsServer> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mesh-nats-'));
  const [client, mqtt, monitor] = [await freePort(), await freePort(), await freePort()];
  const conf = path.join(dir, 'nats.conf');
  fs.writeFileSync(
    conf,
    [
      `server_name: mesh_test_${randomBytes(4).toString('hex')}`,
      `listen: 127.0.0.1:${client}`,
      `jetstream { store_dir: ${JSON.stringify(path.join(dir, 'js'))} }`,
      `mqtt { listen: 127.0.0.1:${mqtt}${opts.mqttExtra !== undefined ? `, ${opts.mqttExtra}` : ''} }`,
      `http: 127.0.0.1:${monitor}`,
      opts.extraConfig ?? '',
    ].join('\n'),
  );
  const proc = spawn(opts.binary ?? 'nats-server', ['-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(proc);
  let log = '';
  const onData = (d: Buffer): void => {
    log = (log + d.toString()).slice(-200_000);
  };
  proc.stdout?.on('data', onData);
  proc.stderr?.on('data', onData);
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`nats-server did not start in 15 s:\n${log}`)), 15_000);
    const check = (): void => {
      if (/Server is ready/.test(log) && /Listening for MQTT clients/.test(log)) {
        clearTimeout(t);
        proc.stderr?.off('data', check);
        resolve();
      }
    };
    proc.stderr?.on('data', check);
    proc.once('exit', (code) => {
      clearTimeout(t);
      reject(new Error(`nats-server exited with ${String(code)}:\n${log}`));
    });
  });
  return {
    mqttUrl: `mqtt://127.0.0.1:${mqtt}`,
    natsUrl: `nats://127.0.0.1:${client}`,
    monitorUrl: `http://127.0.0.1:${monitor}`,
    dir,
    logs: () => log,
    stop: async () => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(t);
      running.delete(proc);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface NatsCluster {
  readonly nodes: readonly NatsServer[];
  stop(): Promise<void>;
}

/**
 * `n` nats-servers of the test's own in one cluster (routes between them on free ports), each
 * with JetStream and an MQTT listener whose streams are replicated `n` ways, the configuration
 * docs/portal.md gives for production. Resolves once JetStream has a meta leader.
 */
export async function startNatsCluster(n: number, opts: { extraConfig?: string } = {}): Promise<NatsCluster> {
  const name = `mesh_${randomBytes(4).toString('hex')}`;
  const routes: number[] = [];
  for (let i = 0; i < n; i++) routes.push(await freePort());
  const routeList = routes.map((p) => `nats-route://127.0.0.1:${p}`).join(', ');
  const nodes = await Promise.all(
    routes.map((route) =>
      startNats({
        extraConfig: [`cluster { name: ${name}, listen: 127.0.0.1:${route}, routes: [${routeList}] }`, opts.extraConfig ?? ''].join('\n'),
        mqttExtra: `stream_replicas: ${n}`,
      }),
    ),
  );
  const deadline = Date.now() + 60_000;
  for (;;) {
    const jsz = (await (await fetch(`${(nodes[0] as NatsServer).monitorUrl}/jsz`)).json().catch(() => ({}))) as { meta_cluster?: { leader?: string; cluster_size?: number } };
    if (jsz.meta_cluster?.leader !== undefined && jsz.meta_cluster.leader !== '') break;
    if (Date.now() > deadline) throw new Error(`the NATS cluster elected no JetStream leader in 60 s:\n${(nodes[0] as NatsServer).logs().slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
  return {
    nodes,
    stop: async () => {
      await Promise.all(nodes.map((x) => x.stop()));
    },
  };
}
