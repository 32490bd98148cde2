/**
 * The scale-out row: publishes/s and unchanged polls/s with 1, 2 and 3 portal processes on one
 * PostgreSQL schema, behind a round-robin TCP proxy (its own process); the same load each time,
 * generated from this process: 32 keep-alive connections, which the proxy spreads over the
 * processes. Every figure is a report: on a machine with fewer cores than processes + database +
 * load generator, more processes share the same CPUs (say so next to the figures).
 */
import * as path from 'node:path';
import { PATHS } from '../mesh/protocol.js';
import { PostgresDriver } from '../portal/storage/postgres.js';
import { registerDevice } from '../harness/device.js';
import { each, hammer, rawRequest, repeat, type ConnectionPlan } from './load.js';
import { preparePublishers, type Publisher } from './portal-rows.js';
import { DIST, fmt, log, median, PG_URL, spawnUntil, startBenchPortal, stopChild, type BenchPortal, type Line, type Options } from './util.js';

interface Run {
  readonly processes: number;
  readonly publishes: number;
  readonly polls: number;
  readonly publishRuns: number[];
  readonly pollRuns: number[];
}

async function measure(o: Options, processes: number): Promise<Run> {
  const connections = 32;
  const publishMs = o.quick ? 3_000 : 5_000;
  const pollMs = o.quick ? 2_000 : 8_000;
  const runs = o.quick ? 1 : 3;
  // enough for each publisher at ~3,000 publishes/s in all (32 publishers); the runs take them in
  // turn, and a run that finds them used up says so (it does not replay numbers the portal holds)
  const perPublisher = 25 + (o.quick ? 300 : 500) * runs;
  const schema = `mesh_bench_scale_${process.pid}_${Date.now().toString(36)}`;
  const portals: BenchPortal[] = [];
  let proxy: Awaited<ReturnType<typeof spawnUntil>> | undefined;
  const pubs: Publisher[] = [];
  try {
    const args = ['--database-url', PG_URL, '--pg-schema', schema, '--no-mqtt'];
    portals.push(await startBenchPortal({ args }));
    const key = path.join((portals[0] as BenchPortal).dataDir, 'portal-key.json');
    while (portals.length < processes) portals.push(await startBenchPortal({ args: [...args, '--key', key] }));
    proxy = await spawnUntil([path.join(DIST, 'bench', 'rr-proxy.js'), ...portals.map((p) => new URL(p.http).port)], /^rr-proxy ready (\d+)$/m);
    const port = Number(/(\d+)$/.exec(proxy.line)?.[1]);
    const url = `http://127.0.0.1:${port}`;
    // publishes: 32 owners, each with a claimed device, back to back (as the publish row)
    pubs.push(...(await preparePublishers(url, connections, perPublisher)));
    const warm = 25;
    const w = await hammer({ port, connections, plan: (i) => each((pubs[i] as Publisher).requests.slice(0, warm)) });
    if (w.bad > 0) throw new Error(`publishes: ${w.bad} refused, e.g. ${w.sample ?? ''}`);
    const publishRuns: number[] = [];
    // one plan per publisher for all the runs: each run goes on from where the last one stopped
    const plans = pubs.map((p) => each(p.requests.slice(warm)));
    for (let k = 0; k < runs; k++) {
      const r = await hammer({ port, connections, durationMs: publishMs, plan: (i) => plans[i] as ConnectionPlan });
      if (r.bad > 0) throw new Error(`publishes: ${r.bad} refused, e.g. ${r.sample ?? ''}`);
      if (r.seconds < (publishMs / 1000) * 0.9) throw new Error(`publishes: the ${perPublisher} profiles prepared per publisher ran out after ${r.seconds.toFixed(1)} s of run ${k + 1}; prepare more`);
      publishRuns.push(r.rps);
    }
    // unchanged polls: 32 devices, each with its session, through the proxy
    const reqs: Buffer[] = [];
    for (let i = 0; i < connections; i++) {
      const { client } = await registerDevice(url);
      const n = (await client.download(0)).n;
      reqs.push(rawRequest('GET', `127.0.0.1:${port}`, `${PATHS.download}?since=${n}`, { authorization: `Bearer ${client.currentToken as string}` }));
      client.close();
    }
    await hammer({ port, connections, durationMs: o.quick ? 500 : 2_000, plan: (i) => repeat(reqs[i] as Buffer) });
    const pollRuns: number[] = [];
    for (let k = 0; k < runs; k++) {
      const r = await hammer({ port, connections, durationMs: pollMs, plan: (i) => repeat(reqs[i] as Buffer) });
      if (r.bad > 0) throw new Error(`polls: ${r.bad} bad answers, e.g. ${r.sample ?? ''}`);
      pollRuns.push(r.rps);
    }
    const run = { processes, publishes: median(publishRuns), polls: median(pollRuns), publishRuns, pollRuns };
    log(`scale: ${processes} process(es): publishes ${publishRuns.map((x) => Math.round(x)).join(', ')}/s; polls ${pollRuns.map((x) => Math.round(x)).join(', ')}/s`);
    return run;
  } finally {
    for (const p of pubs) p.owner.close();
    if (proxy !== undefined) await stopChild(proxy.proc);
    for (const p of portals) await p.stop();
    await PostgresDriver.dropSchema(PG_URL, schema).catch((e: unknown) => log(`could not drop ${schema}: ${(e as Error).message}`));
  }
}

export async function scaleRow(o: Options): Promise<Line[]> {
  const runs: Run[] = [];
  for (const n of [1, 2, 3]) runs.push(await measure(o, n));
  const show = (f: (r: Run) => number): string => runs.map((r) => `${fmt.int(f(r))}/s`).join(' / ');
  return [
    {
      figure: 'publishes/s on PostgreSQL, 1 / 2 / 3 portal processes behind a round-robin proxy',
      value: show((r) => r.publishes),
      baseline: '-',
      target: 'report',
      pass: null,
      data: { runs },
    },
    {
      figure: 'unchanged polls/s on PostgreSQL, 1 / 2 / 3 portal processes behind a round-robin proxy',
      value: show((r) => r.polls),
      baseline: '-',
      target: 'report',
      pass: null,
      data: { runs },
    },
  ];
}
