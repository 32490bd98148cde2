/**
 * The Alice-and-Bob scenario on a scaled-out portal: two mesh-portal processes on one PostgreSQL
 * schema behind a round-robin TCP proxy, push through a nats-server of the test's own (MQTT
 * interface, JetStream, free ports) in operator mode: the portals hold the account seed and the
 * agent connects with the per-device credential they mint (portal/push/nats-auth.ts). While the scenario runs, a third owner publishes through the
 * proxy without pause; in the middle one portal process is killed with SIGKILL. Then: the scenario
 * completes, every publish the portal acknowledged is in the log at the index it was given with
 * the bytes that were sent, and the log the surviving process serves is consistent with a head
 * the killed one served before it died.
 */
import test from 'ava';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PortalClient } from '../../client/portal-client.js';
import { fromB64u } from '../../mesh/bytes.js';
import { payloadBytes } from '../../mesh/envelope.js';
import { leafHash, verifyConsistency, verifyInclusion } from '../../mesh/merkle.js';
import { verifyPortalProfile, verifyTreeHead, type TreeHead } from '../../mesh/messages.js';
import { PostgresDriver } from '../../portal/storage/postgres.js';
import { runScenario } from '../../harness/scenario.js';
import { writeNatsAuthority } from '../../harness/nats-authority.js';
import { registerDevice } from '../../harness/device.js';
import { startNats } from '../helpers/nats.js';
import { TestOwner } from '../../harness/owner.js';
import { startPortalProcess, type PortalProcess } from '../../harness/portal-process.js';
import { roundRobinProxy, type RoundRobinProxy } from '../../harness/proxy.js';

const PG_URL = process.env.MESH_TEST_PG ?? 'postgres://root@127.0.0.1:5432/test';
const KILL_AT = 'Bob sets setpoint=19';
const CHECK_PUSH_AT = 'A setpoint of 350';

/** Whether an agent (MQTT client id mmm-...) is connected to the nats-server, from its monitoring endpoint. */
async function agentConnected(monitorUrl: string): Promise<boolean> {
  const connz = (await (await fetch(`${monitorUrl}/connz?limit=1024`)).json()) as { connections?: { mqtt_client?: string }[] };
  return (connz.connections ?? []).some((c) => c.mqtt_client?.startsWith('mmm-') === true);
}

test('scenario on two portal processes behind a round-robin proxy, PostgreSQL and NATS; one process killed -9 in the middle', async (t) => {
  t.timeout(300_000);
  const authDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mesh-e2e-nats-auth-'));
  const auth = writeNatsAuthority(authDir);
  const nats = await startNats({ extraConfig: fs.readFileSync(auth.configFile, 'utf8') });
  const schema = `mesh_e2e_scale_${randomBytes(4).toString('hex')}`;
  const portals: PortalProcess[] = [];
  let proxy: RoundRobinProxy | undefined;
  let carol: TestOwner | undefined;
  let stopCarol = false;
  let carolLoop: Promise<void> = Promise.resolve();
  const acked: { index: number; hash: Uint8Array }[] = [];
  let failedOnA = 0;
  let killed = false;
  let before: TreeHead | undefined;
  let pub: Uint8Array | undefined;
  let agentOnNats = false;
  const lines: string[] = [];
  try {
    await runScenario({
      say: (s) => lines.push(s),
      startPortal: async (dir) => {
        const args = ['--database-url', PG_URL, '--pg-schema', schema, '--mqtt-url', nats.mqttUrl, '--mqtt-nats-account', auth.accountFile];
        const a = await startPortalProcess({ dataDir: path.join(dir, 'a'), args });
        portals.push(a);
        portals.push(await startPortalProcess({ dataDir: path.join(dir, 'b'), args: [...args, '--key', path.join(dir, 'a', 'portal-key.json')] }));
        proxy = await roundRobinProxy(portals.map((p) => Number(new URL(p.http).port)));
        const url = proxy.url;
        // carol publishes through the proxy, back to back, for the whole scenario
        carol = await TestOwner.create(url, 'carol');
        const { client: dc, identity: d } = await registerDevice(url);
        dc.close();
        await carol.claim(d.labelUri);
        const owner = carol;
        // every other publish goes straight to process A, so that some are in flight there when it dies
        const direct = new PortalClient({ url: (portals[0] as PortalProcess).http, token: owner.client.currentToken as string });
        carolLoop = (async () => {
          for (let seq = 1; !stopCarol; seq++) {
            const env = owner.applicationProfile('thermostat', { setpoint: 10 + (seq % 10) }, { seq });
            const toA = seq % 2 === 0 && !killed;
            try {
              const r = await (toA ? direct : owner.client).publish(env);
              acked.push({ index: r.index, hash: leafHash(payloadBytes(env)) });
            } catch {
              // not acknowledged (the process died under it): nothing is promised; a new connection goes to the other process
              if (toA) failedOnA++;
              else {
                owner.client.close();
                owner.client = new PortalClient({ url, identity: { subject: owner.account, key: owner.admin.sign } });
              }
            }
          }
          direct.close();
        })();
        return { http: url, mqtt: nats.mqttUrl };
      },
      beforeStep: async (name) => {
        if (name.startsWith(CHECK_PUSH_AT)) agentOnNats = await agentConnected(nats.monitorUrl);
        if (!name.startsWith(KILL_AT)) return;
        const a = portals[0] as PortalProcess;
        const c = new PortalClient({ url: a.http });
        pub = verifyPortalProfile((await c.hello()).portal).sign;
        before = verifyTreeHead(await c.treeHead(), pub);
        c.close();
        t.true(acked.length > 0, 'carol had publishes acknowledged before the kill');
        killed = true;
        a.proc.kill('SIGKILL');
        await new Promise<void>((r) => (a.proc.exitCode !== null || a.proc.signalCode !== null ? r() : a.proc.once('exit', () => r())));
      },
    });
    stopCarol = true;
    await carolLoop;
    t.true(killed, `the scenario reached "${KILL_AT}" and a process was killed there`);
    t.true(agentOnNats, 'the thermostat was connected to NATS over MQTT with its own credential (operator mode accepts no other)');
    t.true(lines.join('\n').includes('demo complete'), 'the scenario completed');
    const ackedAfter = acked.filter((x) => before !== undefined && x.index >= before.size).length;
    t.true(ackedAfter > 0, 'publishes were acknowledged after the kill, by the surviving process');
    t.log(`carol: ${acked.length} publishes acknowledged, ${failedOnA} sent to A not acknowledged; proxy connections per process: ${proxy?.counts.join(', ')}`);
    t.log(lines.filter((l) => l.includes('==')).join('\n'));

    // the surviving process serves one log that holds everything acknowledged
    const b = portals[1] as PortalProcess;
    const c = new PortalClient({ url: b.http });
    const head = verifyTreeHead(await c.treeHead(), pub as Uint8Array);
    const old = before as TreeHead;
    const cons = await c.consistency(old.size, head.size);
    verifyConsistency(old.size, head.size, old.root, head.root, cons.proof.map((x) => fromB64u(x, 'proof', 32)));
    const seen = new Set<number>();
    for (const x of acked) {
      t.false(seen.has(x.index), `index ${x.index} was acknowledged once`);
      seen.add(x.index);
      const e = await c.entry(x.index);
      t.deepEqual(leafHash(fromB64u(e.data, 'data')), x.hash, `entry ${x.index} holds the acknowledged profile`);
      const p = await c.inclusion(x.index, head.size);
      verifyInclusion(x.hash, x.index, head.size, p.proof.map((y) => fromB64u(y, 'proof', 32)), head.root);
    }
    c.close();
  } finally {
    stopCarol = true;
    await carolLoop.catch(() => undefined);
    carol?.close();
    await proxy?.close();
    for (const p of portals) await p.stop();
    await nats.stop();
    fs.rmSync(authDir, { recursive: true, force: true });
    await PostgresDriver.dropSchema(PG_URL, schema).catch(() => undefined);
  }
});
