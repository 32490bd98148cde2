/**
 * The Alice-and-Bob scenario (the same as `npm run demo`) with separate OS processes for the
 * portal, the agent and every CLI call, run on embedded defaults, on PostgreSQL with Mosquitto,
 * and with the single-file bundled agent. A failure names the step.
 */
import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { runScenario } from '../../harness/scenario.js';
import { REPO } from '../../harness/agent-process.js';

const PG = process.env.MESH_TEST_PG ?? 'postgres://root@127.0.0.1:5432/test';
const MQTT = process.env.MESH_TEST_MQTT ?? 'mqtt://127.0.0.1:1883';

function collect(): { say: (s: string) => void; lines: string[] } {
  const lines: string[] = [];
  return { lines, say: (s) => lines.push(s) };
}

const STEPS = [
  'Start the portal',
  'The factory provisions a thermostat',
  'The thermostat boots its agent',
  'Alice creates her profile',
  'Alice claims the thermostat',
  'Mallory photographed the label',
  'Alice invites Bob',
  'Mallory got hold of the invitation too',
  'Alice invites a guest',
  'Alice lists her devices',
  'Alice sets setpoint=21',
  'Bob sets setpoint=19 mode=eco',
  'REVERTED #',
  'A setpoint of 350 °C is refused',
  'Bob removes the thermostat',
  "Alice's laptop is lost",
  'demo complete',
];

function assertSteps(t: import('ava').ExecutionContext, lines: string[]): void {
  const text = lines.join('\n');
  for (const s of STEPS) t.true(text.includes(s), `the output shows the step "${s}"`);
}

test.serial('scenario on embedded defaults (SQLite, embedded broker)', async (t) => {
  const c = collect();
  await runScenario({ say: c.say });
  assertSteps(t, c.lines);
});

test.serial('scenario on PostgreSQL with Mosquitto', async (t) => {
  const schema = `mesh_e2e_${randomBytes(4).toString('hex')}`;
  const c = collect();
  try {
    await runScenario({ say: c.say, portalArgs: ['--database-url', PG, '--pg-schema', schema, '--mqtt-url', MQTT] });
    assertSteps(t, c.lines);
  } finally {
    const client = new pg.Client({ connectionString: PG });
    await client.connect();
    await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await client.end();
  }
});

test.serial('scenario with the single-file bundled agent (dist/mesh-agent.mjs)', async (t) => {
  const bundle = path.join(REPO, 'dist', 'mesh-agent.mjs');
  t.true(fs.existsSync(bundle), 'npm test builds the bundle first');
  const c = collect();
  await runScenario({ say: c.say, agentFile: bundle });
  assertSteps(t, c.lines);
  t.true(c.lines.some((l) => l.includes('process.arch=')), 'the agent reported its architecture');
});
