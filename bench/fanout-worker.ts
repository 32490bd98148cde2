/**
 * A fan-out worker process: N in-process Agent instances (each with its own portal session and
 * its own MQTT connection), provisioned into their own device directories. Talks to the parent
 * (bench/fanout.ts) over the IPC channel:
 *
 *   parent -> {type:'start', portal, count, base, index}     worker -> {type:'online', labels, ms}
 *                                                            worker -> {type:'claimed'}   (all claimed)
 *                                                            worker -> {type:'applied', first, last}   (all applied)
 *   parent -> {type:'stop'}                                  worker -> {type:'stopped', problems}
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Agent } from '../agent/agent.js';
import { newDeviceIdentity } from '../mesh/device.js';
import { DEFAULT_SETTINGS, readAgentSettings, readDeviceDirectory, readSchemas, writeDeviceDirectory } from '../runtime/device-files.js';
import { REPO, sleep, wallMs } from './util.js';

interface Start {
  readonly type: 'start';
  readonly portal: string;
  readonly count: number;
  readonly base: string;
  readonly index: number;
}

const send = (m: Record<string, unknown>): void => {
  process.send?.(m);
};

const agents: Agent[] = [];
const problems: Record<string, number> = {};

async function start(m: Start): Promise<void> {
  const t0 = wallMs();
  const schema = JSON.parse(fs.readFileSync(path.join(REPO, 'examples', 'thermostat.schema.json'), 'utf8')) as unknown;
  const labels: string[] = [];
  const connected = new Set<number>();
  let claimed = 0;
  let applied = 0;
  let first = 0;
  let last = 0;
  for (let i = 0; i < m.count; i++) {
    const dir = path.join(m.base, `w${m.index}-${i}`);
    const identity = newDeviceIdentity({ model: 'thermostat', manufacturer: 'acme', serial: `w${m.index}-${i}`, portalAuthority: new URL(m.portal).host });
    // a long poll interval: the change must arrive by push
    writeDeviceDirectory(dir, identity, { ...DEFAULT_SETTINGS, portal: m.portal, pollIntervalMs: 600_000, push: true }, { thermostat: schema });
    labels.push(identity.labelUri);
    const agent = new Agent({
      dir,
      device: readDeviceDirectory(dir),
      settings: readAgentSettings(dir),
      schemas: readSchemas(dir),
      log: (event) => {
        if (event === 'push-connected') connected.add(i);
        else if (event === 'push-disconnected') connected.delete(i);
        if (event.endsWith('-failed') || event === 'push-disconnected' || event === 'push-error' || event === 'refused' || event === 'internal-error') problems[event] = (problems[event] ?? 0) + 1;
      },
    });
    agent.on('claimed', () => {
      if (++claimed === m.count) send({ type: 'claimed' });
    });
    agent.on('applied', () => {
      const now = wallMs();
      if (applied === 0) first = now;
      last = now;
      if (++applied === m.count) send({ type: 'applied', first, last });
    });
    agents.push(agent);
  }
  // start in small waves, as a fleet does not all boot in the same millisecond
  for (let i = 0; i < agents.length; i += 25) await Promise.all(agents.slice(i, i + 25).map((a) => a.start()));
  const end = Date.now() + 120_000;
  while (connected.size < m.count) {
    if (Date.now() > end) throw new Error(`only ${connected.size} of ${m.count} agents connected by MQTT`);
    await sleep(50);
  }
  send({ type: 'online', labels, ms: wallMs() - t0 });
}

process.on('message', (m: { type: string }) => {
  if (m.type === 'start') {
    start(m as Start).catch((e: unknown) => {
      send({ type: 'error', message: (e as Error).message });
    });
  } else if (m.type === 'stop') {
    void Promise.all(agents.map((a) => a.stop())).then(() => {
      send({ type: 'stopped', problems });
      process.disconnect?.();
      setTimeout(() => process.exit(0), 100);
    });
  }
});
