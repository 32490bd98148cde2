/**
 * Device-side rows, all with the BUNDLED agent (dist/mesh-agent.mjs) as a separate process
 * against a portal process: idle RSS, cold start to the first successful poll, and the latency
 * from an owner's Publish to the 'applied' line of the agent (push over loopback).
 */
import * as fs from 'node:fs';
import { spawn } from 'node:child_process';

import { openClaimWindow, provisionDevice, startAgentProcess, type AgentProcess } from '../harness/agent-process.js';
import { TestOwner } from '../harness/owner.js';
import { AGENT_NODE_FLAGS } from '../provisioning/systemd.js';
import { startBenchPortal, track, type BenchPortal, BUNDLED_AGENT, fmt, log, median, percentile, rssMiB, rssParts, sleep, spawnUntil, stopChild, timeToExit, wallMs, type Line, type Options } from './util.js';

function needBundle(): void {
  if (!fs.existsSync(BUNDLED_AGENT)) throw new Error(`${BUNDLED_AGENT} is missing: run npm run bench (it builds the bundle) or npm run build:agent`);
}

async function waitForLog(a: AgentProcess, text: string, timeoutMs = 15_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!a.logs().includes(text)) {
    if (Date.now() > end) throw new Error(`the agent did not log ${text}\n${a.logs().slice(-2000)}`);
    await sleep(50);
  }
}

// ------------------------------------------------------------------ idle RSS

/** The node options the agent ships with (or MESH_BENCH_AGENT_FLAGS, space-separated, to try others). */
function shippedFlags(): readonly string[] {
  const env = process.env.MESH_BENCH_AGENT_FLAGS;
  return env === undefined ? AGENT_NODE_FLAGS : env.split(' ').filter((f) => f !== '');
}

/**
 * Agents claimed by two owners, connected by MQTT, left idle; and a bare node idling alongside.
 * Each run starts the agent both as it ships (node with AGENT_NODE_FLAGS, the V8 options of the
 * systemd unit and the Docker image: provisioning/systemd.ts) and with node's defaults: the
 * target is judged on the first, the second is reported. MESH_BENCH_AGENT_FLAGS (space-separated)
 * replaces the shipped flags, to try others.
 */
export async function rssRow(o: Options): Promise<Line[]> {
  needBundle();
  const runs = o.quick ? 1 : 3;
  const idleMs = o.quick ? 5_000 : 10_000;
  const shipped = shippedFlags();
  const portal = await startBenchPortal();
  const alice = await TestOwner.create(portal.http, 'alice');
  const bob = await TestOwner.create(portal.http, 'bob');
  const agents: { a: AgentProcess; dir: string; flags: boolean }[] = [];
  const bares: ReturnType<typeof spawn>[] = [];
  try {
    for (let i = 0; i < runs * 2; i++) {
      const flags = i % 2 === 0;
      const { dir, identity } = provisionDevice(portal.http, { pollIntervalMs: 30_000 });
      const a = await startAgentProcess(dir, [], BUNDLED_AGENT, {}, flags ? shipped : []);
      agents.push({ a, dir, flags });
      await alice.claim(identity.labelUri);
      await a.waitFor((e) => e.type === 'claimed' && e.account === alice.account, 15_000, 'alice claimed');
      // a device with an owner takes a second label claim only while its claim window is open (the button)
      await openClaimWindow(dir);
      await bob.claim(identity.labelUri);
      await a.waitFor((e) => e.type === 'claimed' && e.account === bob.account, 15_000, 'bob claimed');
      await waitForLog(a, '"push-connected"');
    }
    // the idle period starts now for all agents; a bare node starts idling alongside each
    for (let i = 0; i < runs; i++) bares.push(track(spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' })));
    log(`rss: ${runs} agent(s) with the shipped flags (${shipped.join(' ') || 'none'}) and ${runs} without, claimed by two owners and connected; idling ${idleMs / 1000} s`);
    await sleep(idleMs);
    const measure = (flags: boolean): { rss: number[]; parts: unknown[] } => {
      const mine = agents.filter((x) => x.flags === flags);
      return { rss: mine.map(({ a }) => rssMiB(a.proc.pid as number)), parts: mine.map(({ a }) => rssParts(a.proc.pid as number)) };
    };
    const withFlags = measure(true);
    const without = measure(false);
    const bareRss = bares.map((b) => rssMiB(b.pid as number));
    const bareParts = bares.map((b) => rssParts(b.pid as number));
    for (const { a } of agents) if (!a.logs().includes('"push-connected"') || a.logs().includes('"push-disconnected"')) throw new Error('an agent lost its MQTT connection while idling');
    const rss = median(withFlags.rss);
    const plain = median(without.rss);
    const base = median(bareRss);
    const ratio = rss / base;
    return [
      {
        figure: `agent idle RSS, connected, two owners, as shipped (node ${shipped.join(' ') || 'with no options'})`,
        value: `${fmt.mib(rss)} (${fmt.x(ratio)})`,
        baseline: `${fmt.mib(base)} (node idle)`,
        target: '<= 1.25x',
        pass: ratio <= 1.25,
        data: { rssMiB: rss, baselineMiB: base, ratio, runs, idleMs, flags: shipped, agentRss: withFlags.rss, bareRss, agentParts: withFlags.parts, bareParts },
      },
      {
        figure: 'agent idle RSS, the same, with node\'s default options',
        value: `${fmt.mib(plain)} (${fmt.x(plain / base)})`,
        baseline: `${fmt.mib(base)} (node idle)`,
        target: 'report',
        pass: null,
        data: { rssMiB: plain, baselineMiB: base, ratio: plain / base, agentRss: without.rss, agentParts: without.parts },
      },
    ];
  } finally {
    for (const b of bares) await stopChild(b);
    for (const { a, dir } of agents) {
      await a.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
    alice.close();
    bob.close();
    await portal.stop();
  }
}

// ------------------------------------------------------------------ cold start

export async function coldStartRow(o: Options): Promise<Line[]> {
  needBundle();
  const runs = o.quick ? 3 : 9;
  const portal = await startBenchPortal();
  const { dir } = provisionDevice(portal.http, { pollIntervalMs: 30_000 });
  const agentMs: number[] = [];
  const bareMs: number[] = [];
  try {
    // one run of each first, not counted: the page cache holds node and the bundle for every run after
    await timeToExit(['-e', '0']);
    const flags = shippedFlags();
    const first = await spawnUntil([...flags, BUNDLED_AGENT, 'run', '--data', dir], /^mesh-agent ready .*$/m);
    await stopChild(first.proc);
    for (let i = 0; i < runs; i++) {
      bareMs.push(await timeToExit(['-e', '0']));
      const r = await spawnUntil([...flags, BUNDLED_AGENT, 'run', '--data', dir], /^mesh-agent ready .*$/m);
      agentMs.push(r.ms);
      await stopChild(r.proc);
    }
    const agent = median(agentMs);
    const base = median(bareMs);
    const ratio = agent / base;
    return [
      {
        figure: `agent cold start to first successful poll, as shipped (node ${flags.join(' ') || 'with no options'})`,
        value: `${fmt.ms(agent)} (${fmt.x(ratio)})`,
        baseline: `${fmt.ms(base)} (node -e 0)`,
        target: '<= 3x',
        pass: ratio <= 3,
        data: { agentMs: agent, baselineMs: base, ratio, runs, agentRuns: agentMs, baselineRuns: bareMs },
      },
    ];
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
    await portal.stop();
  }
}

// ------------------------------------------------------------------ publish -> applied

export async function latencyRow(o: Options): Promise<Line[]> {
  needBundle();
  const samples = o.quick ? 50 : 400;
  const warmup = 10;
  const portal: BenchPortal = await startBenchPortal();
  const { dir, identity } = provisionDevice(portal.http, { pollIntervalMs: 30_000 });
  const agent = await startAgentProcess(dir, [], BUNDLED_AGENT, {}, shippedFlags());
  const alice = await TestOwner.create(portal.http, 'alice');
  const ms: number[] = [];
  const accepted: number[] = [];
  try {
    await alice.claim(identity.labelUri);
    await agent.waitFor((e) => e.type === 'claimed', 15_000, 'claimed');
    await waitForLog(agent, '"push-connected"');
    for (let i = 1; i <= samples + warmup; i++) {
      const env = alice.applicationProfile('thermostat', { setpoint: 5 + (i % 25), mode: i % 2 === 0 ? 'eco' : 'comfort' });
      const t0 = wallMs();
      const seen = agent.waitFor((e) => e.type === 'applied' && e.seq === i, 15_000, `applied #${i}`);
      await alice.client.publish(env);
      const acc = wallMs() - t0;
      await seen;
      const dt = wallMs() - t0;
      if (i > warmup) {
        ms.push(dt);
        accepted.push(acc);
      }
      // let the agent's status report (sent 50 ms after each change) go out between samples, as it would
      if (i % 20 === 0) await sleep(60);
    }
    if (agent.logs().includes('"poll-failed"')) log('latency: the agent logged a failed poll during the run');
    const p50 = percentile(ms, 50);
    const p99 = percentile(ms, 99);
    return [
      {
        figure: 'publish -> applied on the device (push, loopback), p50',
        value: fmt.ms(p50),
        baseline: '-',
        target: '<= 20 ms',
        pass: p50 <= 20,
        data: { p50, p90: percentile(ms, 90), p99, max: Math.max(...ms), samples, publishAcceptedP50: percentile(accepted, 50), publishAcceptedP99: percentile(accepted, 99) },
      },
      {
        figure: 'publish -> applied on the device (push, loopback), p99',
        value: fmt.ms(p99),
        baseline: '-',
        target: '<= 100 ms',
        pass: p99 <= 100,
        data: { p99, samples },
      },
    ];
  } finally {
    alice.close();
    await agent.stop();
    await portal.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
