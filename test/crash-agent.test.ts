/**
 * Power loss on the device, for real: the REAL agent process is killed with SIGKILL at random
 * moments while it applies a stream of configurations (pushed and polled), and started again
 * each time. After every kill:
 *   - config.json parses and is exactly the effective configuration of ONE of the published
 *     documents (never a mix, never torn), with Alice named as the source of each value;
 *   - state.json parses, and never records more than config.json shows (the configuration is
 *     written before the state that records it);
 * and at the end the agent converges to the latest document.
 * Then the owner's side: `mesh config set` killed at random points; every file in --home parses,
 * the CLI reads its state back, and the next command works (it re-reads what reached the portal).
 * A change on probation: the agent killed -9 at a random moment of the confirm window (of a change
 * that cuts the device's link, or of one that does not) always ends it confirmed or reverted after
 * the restart, with config.json holding what the verdict says.
 * CRASH_KILLS (default 4) kills per part; scripts/powerloss-long.sh runs hundreds
 * (the scenarios are in harness/crash-kit.ts).
 */
import test from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { agentKills, cliKills, inspectDevice, probationKills } from '../harness/crash-kit.js';

const KILLS = Number(process.env.CRASH_KILLS ?? 4);

test('the invariant check can fail: a torn config.json, a mixed one, a state ahead of the config', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mesh-crash-check-'));
  try {
    const state = (seq: number): string => JSON.stringify({ v: 1, n: seq, owners: { M: { apps: { thermostat: { seq } } } } });
    const cfg = (th: Record<string, unknown>): string => JSON.stringify({ thermostat: th, _sources: { thermostat: { mode: { owner: 'a@x' }, schedule: { owner: 'a@x' }, setpoint: { owner: 'a@x' } } } });
    const v3 = { mode: 'comfort', schedule: `v3:${'x'.repeat(40)}`, setpoint: 8 };
    fs.writeFileSync(path.join(dir, 'state.json'), state(3));
    fs.writeFileSync(path.join(dir, 'config.json'), cfg(v3));
    t.deepEqual(inspectDevice(dir, 'a@x', 5), { version: 3, stateSeq: 3 });
    fs.writeFileSync(path.join(dir, 'config.json'), cfg(v3).slice(0, 50));
    t.throws(() => inspectDevice(dir, 'a@x', 5), { message: /does not parse/ });
    fs.writeFileSync(path.join(dir, 'config.json'), cfg({ ...v3, setpoint: 9 }));
    t.throws(() => inspectDevice(dir, 'a@x', 5), { message: /not exactly version 3/ });
    fs.writeFileSync(path.join(dir, 'config.json'), cfg(v3));
    fs.writeFileSync(path.join(dir, 'state.json'), state(4));
    t.throws(() => inspectDevice(dir, 'a@x', 5), { message: /ahead of the configuration/ });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test(`the agent process killed -9 ${KILLS} times while applying a stream of configurations: never torn, never mixed, converges`, async (t) => {
  const r = await agentKills(KILLS, { onKill: (l) => t.log(l) });
  t.is(r.kills, KILLS);
  t.true(r.published > KILLS, `${r.published} configurations published during the kills`);
  t.log(`converged to v${r.published} ${r.convergeMs} ms after the last publication; config.json ahead of state.json at ${r.configAhead} kills`);
});

test(`mesh config set killed -9 ${KILLS} times at random points: the files in --home always parse; the next command works`, async (t) => {
  const r = await cliKills(KILLS, { onKill: (l) => t.log(l) });
  t.is(r.kills, KILLS, 'the command was killed mid-way that many times');
  t.true(r.finalApplied, 'the command after the crashes was applied by the device');
});

test(`the agent killed -9 ${KILLS} times at random moments of a confirm window: after each restart the change ends confirmed or reverted, never in between`, async (t) => {
  const r = await probationKills(KILLS, { onKill: (l) => t.log(l) });
  t.is(r.kills, KILLS);
  t.is(r.confirmed + r.reverted, KILLS, 'every change on probation ended one way or the other');
  t.log(`${r.confirmed} confirmed, ${r.reverted} reverted; ${r.beforeApply} kills before the change was applied`);
});
