/**
 * Moving to another portal (issue 18), REAL processes: portals A and B, a device provisioned for
 * A, Alice and Bob (the `mesh` CLI) co-owning it on A. Each moves the account to B
 * (`mesh account move`) and asks the device to move (`mesh device move`); the device moves once
 * both have asked, keeping its owners and configuration, and registers at B. A is shut down:
 * the device keeps obeying Alice and Bob through B.
 */
import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { startPortalProcess, type PortalProcess } from '../../harness/portal-process.js';
import { execFile } from 'node:child_process';
import { AGENT_CLI, provisionDevice, readConfig, startAgentProcess, until } from '../../harness/agent-process.js';
import { mesh, tmpHome, type CliRun } from '../hostile/world.js';

const ok = (t: { is: (a: unknown, b: unknown, m?: string) => void }, r: CliRun, what: string): CliRun => {
  t.is(r.code, 0, `${what}: ${r.stdout}${r.stderr}`);
  return r;
};

/** Portals A and B, and a device provisioned for A (polling, no push) whose agent runs. */
async function twoPortals(): Promise<{ a: PortalProcess; b: PortalProcess; dir: string; identity: ReturnType<typeof provisionDevice>['identity']; agent: Awaited<ReturnType<typeof startAgentProcess>> }> {
  const a = await startPortalProcess({ args: ['--no-mqtt'] });
  const b = await startPortalProcess({ args: ['--no-mqtt', '--name', 'b.test'] });
  const { dir, identity } = provisionDevice(a.http, { push: false, pollIntervalMs: 200 });
  return { a, b, dir, identity, agent: await startAgentProcess(dir) };
}

test.serial('Alice and Bob move their accounts and their thermostat from portal A to portal B; A shuts down and the device keeps obeying both', async (t) => {
  const { a, b, dir, identity, agent } = await twoPortals();
  const alice = tmpHome('alice');
  const bob = tmpHome('bob');
  let aStopped = false;
  try {
    ok(t, await mesh(alice, ['profile', 'create', '--portal', a.http, '--account', 'alice', '--admin-name', 'laptop', '--json']), 'alice profile');
    ok(t, await mesh(bob, ['profile', 'create', '--portal', a.http, '--account', 'bob', '--admin-name', 'phone', '--json']), 'bob profile');
    ok(t, await mesh(alice, ['device', 'claim', identity.labelUri, '--name', 'hall', '--wait-ms', '15000', '--json']), 'alice claims');
    const inv = ok(t, await mesh(alice, ['device', 'invite', 'hall', '--json']), 'invite');
    ok(t, await mesh(bob, ['device', 'claim', (inv.json as { invitation: string }).invitation, '--name', 'hall', '--wait-ms', '15000', '--json']), 'bob accepts');
    ok(t, await mesh(alice, ['config', 'set', 'thermostat', 'setpoint=21', '--wait-ms', '15000', '--json']), 'alice sets 21');
    ok(t, await mesh(bob, ['config', 'set', 'thermostat', 'mode=eco', '--wait-ms', '15000', '--json']), 'bob sets eco');
    t.deepEqual(readConfig(dir).thermostat, { setpoint: 21, mode: 'eco' });

    // Alice moves: her account, then the device (which waits for Bob)
    const am = ok(t, await mesh(alice, ['account', 'move', '--to', b.http, '--json']), 'alice account move');
    t.is(am.json.account, 'alice@b.test');
    const half = await mesh(alice, ['device', 'move', 'hall', '--wait', '2', '--json']);
    t.is(half.code, 4, 'not moved while Bob has not asked');
    t.is(half.json.asked, true);
    t.is(half.json.linked, false);
    await until("alice's move recorded on the device", () => {
      const st = JSON.parse(fs.readFileSync(path.join(dir, 'state.json'), 'utf8')) as { moves?: Record<string, { portal: string }> };
      return Object.values(st.moves ?? {}).some((m) => m.portal === b.http) ? true : undefined;
    });
    // Bob moves too: now every owner has asked, the device moves to B and registers there
    ok(t, await mesh(bob, ['account', 'move', '--to', b.http, '--json']), 'bob account move');
    const bm = ok(t, await mesh(bob, ['device', 'move', 'hall', '--wait', '20', '--json']), 'bob device move');
    t.is(bm.json.linked, true);
    const again = ok(t, await mesh(alice, ['device', 'move', 'hall', '--wait', '20', '--json']), 'alice links the device at B');
    t.is(again.json.linked, true);
    const state = JSON.parse(fs.readFileSync(path.join(dir, 'state.json'), 'utf8')) as { portalUrl?: string; portalKey: string; owners: Record<string, unknown> };
    t.is(state.portalUrl, b.http);
    t.is(state.portalKey, b.portal, "the device pinned B's key");
    t.is(Object.keys(state.owners).length, 2, 'both owners kept');
    t.deepEqual(readConfig(dir).thermostat, { setpoint: 21, mode: 'eco' }, 'the configuration kept');

    // A is shut down; both keep steering the device through B
    await a.stop();
    aStopped = true;
    const s1 = ok(t, await mesh(alice, ['config', 'set', 'thermostat', 'setpoint=24', '--wait-ms', '20000', '--json']), 'alice sets 24 at B');
    t.is(s1.json?.results?.[0]?.result, 'applied', s1.stdout);
    const s2 = ok(t, await mesh(bob, ['config', 'set', 'thermostat', 'mode=comfort', '--wait-ms', '20000', '--json']), 'bob sets comfort at B');
    t.is(s2.json?.results?.[0]?.result, 'applied', s2.stdout);
    await until('both settings in effect', () => {
      const c = readConfig(dir).thermostat;
      return c?.setpoint === 24 && c.mode === 'comfort' ? true : undefined;
    });
    t.pass();
  } finally {
    await agent.stop();
    if (!aStopped) await a.stop();
    await b.stop();
    for (const d of [alice, bob, dir]) fs.rmSync(d, { recursive: true, force: true });
  }
});

test.serial('the old portal is already gone: the device is moved on the device itself (mesh-agent move), and its owner links it at the new portal', async (t) => {
  const { a, b, dir, identity, agent } = await twoPortals();
  const alice = tmpHome('alice');
  let aStopped = false;
  try {
    ok(t, await mesh(alice, ['profile', 'create', '--portal', a.http, '--account', 'alice', '--admin-name', 'laptop', '--json']), 'alice profile');
    ok(t, await mesh(alice, ['device', 'claim', identity.labelUri, '--name', 'hall', '--wait-ms', '15000', '--json']), 'alice claims');
    ok(t, await mesh(alice, ['config', 'set', 'thermostat', 'setpoint=21', '--wait-ms', '15000', '--json']), 'alice sets 21');
    await a.stop();
    aStopped = true;
    ok(t, await mesh(alice, ['account', 'move', '--to', b.http, '--json']), 'alice account move');
    // someone holding the device moves it
    const moved = await new Promise<{ code: number | null; out: string }>((resolve) => {
      execFile(process.execPath, [AGENT_CLI, 'move', '--data', dir, '--to', b.http, '--portal-key', b.portal, '--json'], (err, stdout, stderr) => resolve({ code: err === null ? 0 : ((err as { code?: number }).code ?? 1), out: stdout + stderr }));
    });
    t.is(moved.code, 0, moved.out);
    const dm = ok(t, await mesh(alice, ['device', 'move', 'hall', '--wait', '20', '--json']), 'alice links the device at B');
    t.is(dm.json.asked, false, 'the old portal could not be asked');
    t.is(dm.json.linked, true);
    const s = ok(t, await mesh(alice, ['config', 'set', 'thermostat', 'setpoint=23', '--wait-ms', '20000', '--json']), 'alice sets 23 at B');
    t.is(s.json?.results?.[0]?.result, 'applied', s.stdout);
    t.is(readConfig(dir).thermostat?.setpoint, 23);
  } finally {
    await agent.stop();
    if (!aStopped) await a.stop();
    await b.stop();
    for (const d of [alice, dir]) fs.rmSync(d, { recursive: true, force: true });
  }
});
