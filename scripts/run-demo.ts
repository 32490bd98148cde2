/**
 * npm run demo [-- options]: the scenario of harness/scenario.ts, from the command line.
 */
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { runScenario } from '../harness/scenario.js';

const { values } = parseArgs({
  options: {
    'agent-file': { type: 'string' },
    'agent-node': { type: 'string' },
    'wait-ms': { type: 'string' },
    'portal-arg': { type: 'string', multiple: true },
    help: { type: 'boolean', short: 'h' },
  },
  strict: true,
});
if (values.help === true) {
  process.stdout.write(`npm run demo [-- options]: Alice, Bob and a shared thermostat, end to end, with real processes.
  --agent-file F     run this agent entry (default dist/agent/cli.js; the bundle is dist/mesh-agent.mjs)
  --agent-node N     run the agent with this node executable (an ARM node under qemu, say)
  --wait-ms N        how long to wait for the device at each step (default 15000)
  --portal-arg A     pass A to mesh-portal (repeat), e.g. --portal-arg=--mqtt-url=mqtt://127.0.0.1:1883
`);
  process.exit(0);
}
const opts: { agentFile?: string; agentNode?: string; waitMs?: number; portalArgs?: string[] } = {};
if (values['agent-file'] !== undefined) opts.agentFile = path.resolve(values['agent-file']);
if (values['agent-node'] !== undefined) opts.agentNode = values['agent-node'];
if (values['wait-ms'] !== undefined) opts.waitMs = Number(values['wait-ms']);
if (values['portal-arg'] !== undefined) opts.portalArgs = values['portal-arg'];
runScenario(opts).then(
  () => undefined,
  (e: unknown) => {
    process.stderr.write(`\ndemo FAILED: ${(e as Error).message}\n`);
    process.exitCode = 1;
  },
);
