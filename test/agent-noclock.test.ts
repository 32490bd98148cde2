/**
 * A device without a real-time clock: the agent runs under Debian's `faketime` at 1970 (as a
 * board that boots without the time), against a real portal with its embedded MQTT broker, and
 * the owner uses the real `mesh` CLI. It registers (its session requests are fresh by the
 * portal's challenge, not by its clock), connects to the push broker, is claimed from its label
 * and applies a configuration. .ci/run installs faketime when it is missing.
 */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { agentStatus, provisionDevice, readConfig, startAgentProcess, until, AGENT_CLI } from '../harness/agent-process.js';
import { runCli } from '../harness/crash-kit.js';
import { startPortalProcess } from '../harness/portal-process.js';
import { fakeTimeEnv } from '../harness/faketime.js';

// the board's clock: it starts at 1970-01-02 and ticks (libfaketime, for the whole agent process)
const AT_1970 = '@1970-01-02 00:00:00';
const hasFaketime = spawnSync('sh', ['-c', 'ls /usr/lib/*/faketime/libfaketimeMT.so.1'], { stdio: 'ignore' }).status === 0;

test('an agent whose clock says 1970 registers, hears pushes, is claimed with mesh device claim and applies mesh config set', async (t) => {
  if (!hasFaketime) {
    t.fail('faketime is not installed: apt-get install faketime (.ci/run installs it)');
    return;
  }
  // faketime itself works here: node under it believes it is 1970
  const probe = spawnSync(process.execPath, ['-e', 'process.stdout.write(new Date().toISOString())'], { encoding: 'utf8', env: { ...process.env, ...fakeTimeEnv(AT_1970) } });
  t.regex(probe.stdout, /^1970-01-02T/, probe.stderr);

  const portal = await startPortalProcess();
  const { dir, identity } = provisionDevice(portal.http, { pollIntervalMs: 1000 });
  const agent = await startAgentProcess(dir, [], AGENT_CLI, fakeTimeEnv(AT_1970));
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'mesh-noclock-owner-'));
  t.teardown(async () => {
    await agent.stop();
    await portal.stop();
  });
  try {
    await until('the agent to register', async () => ((await agentStatus(dir)).registered ? true : undefined), 30_000);
    await until('the agent to connect to the push broker', () => (agent.logs().includes('"push-connected"') ? true : undefined), 30_000);

    const created = await runCli(home, ['profile', 'create', '--portal', portal.http, '--account', 'alice', '--json']);
    t.is(created.code, 0, created.stdout + created.stderr);
    const claimed = await runCli(home, ['device', 'claim', identity.labelUri, '--name', 'hall', '--wait-ms', '30000', '--json']);
    t.is(claimed.code, 0, claimed.stdout + claimed.stderr);
    t.true((JSON.parse(claimed.stdout.trim().split('\n').pop() as string) as { accepted?: boolean }).accepted, claimed.stdout + agent.logs().slice(-3000));
    await agent.waitFor((e) => e.type === 'claimed', 30_000, 'the claim');

    const set = await runCli(home, ['config', 'set', 'thermostat', 'setpoint=21', '--wait-ms', '30000', '--json']);
    t.is(set.code, 0, set.stdout + set.stderr);
    const out = JSON.parse(set.stdout.trim().split('\n').pop() as string) as { results: { result: string }[] };
    t.is(out.results[0]?.result, 'applied', set.stdout + agent.logs().slice(-3000));
    t.is(readConfig(dir).thermostat?.setpoint, 21);

    // it really ran at 1970: the times it wrote are its own clock's
    const st = await agentStatus(dir);
    t.regex(String((st as unknown as { lastContact: string | null }).lastContact), /^1970-01-0[12]T/);
    t.deepEqual(st.errors, []);
    // the owner is not told it is stale: its clock is not set, and the portal heard from it just now
    const list = await runCli(home, ['device', 'list']);
    t.is(list.code, 0, list.stderr);
    t.log(list.stdout);
    t.regex(list.stdout, /last contact: 1970-\S+ \(the device's clock is not set\)/);
    t.notRegex(list.stdout, /STALE/);
    t.regex(list.stdout, /thermostat: applied #1/);
  } catch (e) {
    t.log(agent.logs().slice(-5000));
    throw e;
  }
});
