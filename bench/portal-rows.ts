/**
 * Portal-side rows, each against a portal PROCESS (node dist/portal/cli.js, rate limits off) with
 * the load generated from this process: bytes on the wire for an unchanged poll, unchanged
 * polls/s (against a bare node:http server with the same tool), publishes/s on SQLite and
 * PostgreSQL.
 */
import * as net from 'node:net';
import { PortalClient } from '../client/portal-client.js';
import { payloadBytes, signJson } from '../mesh/envelope.js';
import { parseApplicationPayload, type ApplicationPayload } from '../mesh/profiles.js';
import { PATHS } from '../mesh/protocol.js';
import { PostgresDriver } from '../portal/storage/postgres.js';

import { TestOwner } from '../harness/owner.js';
import { each, hammer, rawRequest, repeat } from './load.js';
import { cpuMs, cpuSplitMs, startBenchPortal, DIST, fmt, log, median, PG_URL, spawnUntil, stopChild, type Line, type Options } from './util.js';
import * as path from 'node:path';

import { registerDevice } from '../harness/device.js';

/** A TCP proxy that counts the bytes going each way. */
async function countingProxy(targetPort: number): Promise<{ port: number; up: () => number; down: () => number; reset: () => void; close: () => Promise<void> }> {
  let up = 0;
  let down = 0;
  const conns = new Set<net.Socket>();
  const server = net.createServer((c) => {
    const s = net.connect(targetPort, '127.0.0.1');
    conns.add(c);
    conns.add(s);
    c.on('data', (d: Buffer) => {
      up += d.length;
      s.write(d);
    });
    s.on('data', (d: Buffer) => {
      down += d.length;
      c.write(d);
    });
    const end = (): void => {
      c.destroy();
      s.destroy();
    };
    c.on('close', end);
    s.on('close', end);
    c.on('error', end);
    s.on('error', end);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    port: (server.address() as net.AddressInfo).port,
    up: () => up,
    down: () => down,
    reset: () => {
      up = 0;
      down = 0;
    },
    close: () =>
      new Promise<void>((r) => {
        for (const c of conns) c.destroy();
        server.close(() => r());
      }),
  };
}

// ------------------------------------------------------------------ wire bytes

export async function wireRow(_o: Options): Promise<Line[]> {
  const portal = await startBenchPortal();
  const proxy = await countingProxy(Number(new URL(portal.http).port));
  const owner = await TestOwner.create(portal.http, 'alice');
  try {
    const { client: direct, identity } = await registerDevice(portal.http);
    await owner.claim(identity.labelUri);
    await owner.publish('thermostat', { setpoint: 21 }, { devices: [...owner.devices.values()] });
    const n = (await direct.download(0)).n;
    // the device's own client, through the proxy, with the session it already holds
    const client = new PortalClient({ url: `http://127.0.0.1:${proxy.port}`, token: direct.currentToken as string, identity: { subject: identity.id, key: identity.keys.auth } });
    await client.download(n); // the keep-alive connection is open from here on
    proxy.reset();
    client.bytesIn = 0;
    client.bytesOut = 0;
    const r = await client.download(n);
    if (r.items.length !== 0 || r.n !== n) throw new Error('the poll was not unchanged');
    const up = proxy.up();
    const down = proxy.down();
    const total = up + down;
    client.close();
    direct.close();
    return [
      {
        figure: 'bytes on the wire for an unchanged poll, request + response',
        value: `${total} B (${up} + ${down})`,
        baseline: '-',
        target: '<= 400 B',
        pass: total <= 400,
        data: { request: up, response: down, total, clientCounters: { out: client.bytesOut, in: client.bytesIn } },
      },
    ];
  } finally {
    owner.close();
    await proxy.close();
    await portal.stop();
  }
}

// ------------------------------------------------------------------ unchanged polls/s

export async function pollsRow(o: Options): Promise<Line[]> {
  const connections = 32;
  const durationMs = o.quick ? 2_000 : 10_000;
  const warmMs = o.quick ? 500 : 2_000;
  const runs = o.quick ? 1 : 3;
  const portal = await startBenchPortal();
  const bare = await spawnUntil([path.join(DIST, 'bench', 'bare-server.js')], /^bare-server ready (\d+)$/m);
  const barePort = Number(/(\d+)$/.exec(bare.line)?.[1]);
  try {
    const url = new URL(portal.http);
    const reqs: Buffer[] = [];
    for (let i = 0; i < connections; i++) {
      const { client } = await registerDevice(portal.http);
      const n = (await client.download(0)).n;
      reqs.push(rawRequest('GET', url.host, `${PATHS.download}?since=${n}`, { authorization: `Bearer ${client.currentToken as string}` }));
      client.close();
    }
    // the same request line and headers, byte for byte in length
    const bareReq = (_i: number): Buffer => rawRequest('GET', `127.0.0.1:${barePort}`, `${PATHS.download}?since=1`, { authorization: `Bearer ${'x'.repeat(43)}` });
    const portalRuns: number[] = [];
    const bareRuns: number[] = [];
    await hammer({ port: Number(url.port), connections, durationMs: warmMs, plan: (i) => repeat(reqs[i] as Buffer) });
    await hammer({ port: barePort, connections, durationMs: warmMs, plan: (i) => repeat(bareReq(i)) });
    const portalCpu: number[] = [];
    const bareCpu: number[] = [];
    for (let k = 0; k < runs; k++) {
      let c0 = cpuSplitMs(portal.proc.pid as number);
      const p = await hammer({ port: Number(url.port), connections, durationMs, plan: (i) => repeat(reqs[i] as Buffer) });
      let c1 = cpuSplitMs(portal.proc.pid as number);
      if (p.bad > 0) throw new Error(`unchanged polls: ${p.bad} bad answers, e.g. ${p.sample ?? ''}`);
      portalRuns.push(p.rps);
      portalCpu.push(((c1[0] - c0[0] + c1[1] - c0[1]) * 1000) / p.requests);
      log(`polls: portal ${Math.round(p.rps)}/s, user ${Math.round(((c1[0] - c0[0]) * 1000) / p.requests)} us + system ${Math.round(((c1[1] - c0[1]) * 1000) / p.requests)} us per poll`);
      c0 = cpuSplitMs(bare.proc.pid as number);
      const b = await hammer({ port: barePort, connections, durationMs, plan: (i) => repeat(bareReq(i)) });
      c1 = cpuSplitMs(bare.proc.pid as number);
      bareRuns.push(b.rps);
      bareCpu.push(((c1[0] - c0[0] + c1[1] - c0[1]) * 1000) / b.requests);
      log(`polls: bare ${Math.round(b.rps)}/s, user ${Math.round(((c1[0] - c0[0]) * 1000) / b.requests)} us + system ${Math.round(((c1[1] - c0[1]) * 1000) / b.requests)} us per poll`);
    }
    const rps = median(portalRuns);
    const base = median(bareRuns);
    const ratio = rps / base;
    return [
      {
        figure: 'unchanged polls/s on one portal process',
        value: `${fmt.int(rps)}/s (${fmt.x(ratio)})`,
        baseline: `${fmt.int(base)}/s (bare node:http)`,
        target: '>= 0.6x',
        pass: ratio >= 0.6,
        data: { rps, baselineRps: base, ratio, connections, durationMs, portalRuns, bareRuns, portalCpuUsPerPoll: median(portalCpu), bareCpuUsPerPoll: median(bareCpu) },
      },
    ];
  } finally {
    await stopChild(bare.proc);
    await portal.stop();
  }
}

// ------------------------------------------------------------------ publishes/s

export interface Publisher {
  readonly owner: TestOwner;
  readonly requests: Buffer[];
}

/**
 * `publishers` owners, each with one claimed device and its own keep-alive connection, each
 * publishing application profiles seq 1, 2, 3, ... back to back. Every profile is a real,
 * fresh signature by the owner's administration key (made before the clock starts); the
 * encrypted configuration is one real ciphertext per owner, reused (the portal never decrypts).
 */
export async function preparePublishers(portalUrl: string, publishers: number, perPublisher: number): Promise<Publisher[]> {
  const url = new URL(portalUrl);
  const portal = { http: portalUrl };
  const out: Publisher[] = [];
  const one = async (i: number): Promise<Publisher> => {
    const owner = await TestOwner.create(portal.http, `owner${i}`);
    const { identity, client } = await registerDevice(portal.http);
    client.close();
    await owner.claim(identity.labelUri);
    const first = owner.applicationProfile('thermostat', { setpoint: 20 });
    const base = parseApplicationPayload(payloadBytes(first));
    const token = owner.client.currentToken as string;
    const requests: Buffer[] = [];
    for (let seq = 1; seq <= perPublisher; seq++) {
      const p: ApplicationPayload = { ...base, seq, created: new Date().toISOString() };
      // the same sealed configuration and manifest, so the first profile's parts go with it
      const env = { ...signJson(p, [owner.admin.sign]), parts: first.parts };
      requests.push(rawRequest('POST', url.host, PATHS.publish, { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, JSON.stringify({ object: env })));
    }
    return { owner, requests };
  };
  // eight owners at a time: their set-up is round trips and key generation, not the measurement
  for (let i = 0; i < publishers; i += 8) out.push(...(await Promise.all(Array.from({ length: Math.min(8, publishers - i) }, (_, k) => one(i + k)))));
  return out;
}

export async function publishRate(o: Options, backend: 'sqlite' | 'postgres'): Promise<Record<string, unknown> & { rate: number }> {
  const publishers = 32;
  const perPublisher = 25 + (o.quick ? (backend === 'sqlite' ? 200 : 60) : backend === 'sqlite' ? 1000 : 500);
  const durationMs = o.quick ? 3_000 : 15_000;
  const schema = `mesh_bench_${process.pid}_${Date.now().toString(36)}`;
  const args = backend === 'postgres' ? ['--database-url', PG_URL, '--pg-schema', schema] : [];
  const portal = await startBenchPortal({ args });
  const pubs: Publisher[] = [];
  try {
    pubs.push(...(await preparePublishers(portal.http, publishers, perPublisher)));
    log(`publishes/s ${backend}: ${publishers} publishers x ${perPublisher} profiles prepared`);
    // warm-up (JIT, caches, first checkpoint): the first profiles of each publisher, not counted
    const warm = 25;
    const w = await hammer({ port: Number(new URL(portal.http).port), connections: publishers, plan: (i) => each((pubs[i] as Publisher).requests.slice(0, warm)) });
    if (w.bad > 0) throw new Error(`publishes on ${backend}: ${w.bad} refused, e.g. ${w.sample ?? ''}`);
    const cpu0 = cpuMs(portal.proc.pid as number);
    const main0 = cpuMs(portal.proc.pid as number, true);
    const split0 = cpuSplitMs(portal.proc.pid as number, true);
    const r = await hammer({ port: Number(new URL(portal.http).port), connections: publishers, durationMs, plan: (i) => each((pubs[i] as Publisher).requests.slice(warm)) });
    const portalCpuMs = cpuMs(portal.proc.pid as number) - cpu0;
    const mainCpuMs = cpuMs(portal.proc.pid as number, true) - main0;
    const split1 = cpuSplitMs(portal.proc.pid as number, true);
    log(`main thread user ${split1[0] - split0[0]} ms, system ${split1[1] - split0[1]} ms`);
    if (r.bad > 0) throw new Error(`publishes on ${backend}: ${r.bad} refused, e.g. ${r.sample ?? ''}`);
    log(`publishes/s ${backend}: ${r.requests} in ${r.seconds.toFixed(2)} s; portal CPU ${Math.round((portalCpuMs * 1000) / r.requests)} us per publish (main thread ${Math.round((mainCpuMs * 1000) / r.requests)} us, busy ${Math.round(mainCpuMs / 10 / r.seconds)}%)`);
    return { rate: r.rps, publishes: r.requests, seconds: r.seconds, publishers, portalCpuUsPerPublish: (portalCpuMs * 1000) / r.requests, mainThreadUsPerPublish: (mainCpuMs * 1000) / r.requests, mainThreadBusy: mainCpuMs / 1000 / r.seconds };
  } finally {
    for (const p of pubs) p.owner.close();
    await portal.stop();
    if (backend === 'postgres') await PostgresDriver.dropSchema(PG_URL, schema).catch((e: unknown) => log(`could not drop ${schema}: ${(e as Error).message}`));
  }
}

export async function publishRow(o: Options): Promise<Line[]> {
  const lite = await publishRate(o, 'sqlite');
  let pg: (Record<string, unknown> & { rate: number }) | { error: string };
  try {
    pg = await publishRate(o, 'postgres');
  } catch (e) {
    pg = { error: (e as Error).message.split('\n')[0] ?? 'failed' };
    log(`publishes/s postgres: ${pg.error}`);
  }
  return [
    {
      figure: 'publishes/s accepted (verify + store + log append), SQLite',
      value: `${fmt.int(lite.rate)}/s`,
      baseline: '-',
      target: '>= 3,000/s',
      pass: lite.rate >= 3000,
      data: lite,
    },
    {
      figure: 'publishes/s accepted (verify + store + log append), PostgreSQL',
      value: 'rate' in pg ? `${fmt.int(pg.rate)}/s` : `failed: ${pg.error}`,
      baseline: '-',
      target: '>= 1,500/s',
      pass: 'rate' in pg ? pg.rate >= 1500 : false,
      data: pg,
    },
  ];
}
