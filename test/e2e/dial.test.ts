/**
 * The device's own dial over its local MQTT broker, with real processes (a portal, the agent, two
 * owners' `mesh` CLIs, Mosquitto as the device's broker): the thermostat's firmware publishes a
 * change to `<topic>/set`; the agent checks it against the schema (a value out of range is
 * refused, with the answer on `<topic>/set/result`), makes it effective with the source `local`,
 * publishes the new configuration to `<topic>`, both owners' `mesh device show` say `local`, and
 * the next owner change replaces it.
 */
import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { connectAsync, type MqttClient } from 'mqtt';
import { startPortalProcess } from '../../harness/portal-process.js';
import { provisionDevice, readConfig, startAgentProcess, until } from '../../harness/agent-process.js';
import { parseDialMessage } from '../../agent/dial.js';
import { isMeshError } from '../../mesh/errors.js';
import { mesh, tmpHome, type CliRun } from '../hostile/world.js';

const MQTT_URL = process.env.MESH_TEST_MQTT ?? 'mqtt://127.0.0.1:1883';
const show = (r: CliRun): string => `exit ${r.code}\n${r.stdout}\n${r.stderr}`;

interface Shown {
  effective: Record<string, Record<string, { value: unknown; owner: string }>> | null;
}

test('a dial message is {APP: {KEY: VALUE or null}}; anything else is malformed', (t) => {
  t.deepEqual(parseDialMessage('{"thermostat": {"setpoint": 23, "mode": null}}'), [{ app: 'thermostat', set: { setpoint: 23 }, remove: ['mode'] }]);
  for (const bad of ['', 'nope', '[]', '{}', '{"thermostat": 23}', '{"thermostat": {}}', '{"Bad App": {"a": 1}}', `{"thermostat": {"s": "${'x'.repeat(20_000)}"}}`]) {
    const e = t.throws(() => parseDialMessage(bad));
    t.true(isMeshError(e), `${bad.slice(0, 40)}: ${String(e)}`);
  }
});

test.serial("the firmware turns the dial over local MQTT: checked, effective as local, shown as local in both owners' device show, replaced by the next owner change", async (t) => {
  const topic = `mesh-test/dial-${randomBytes(4).toString('hex')}`;
  const portal = await startPortalProcess({ args: ['--no-mqtt'] });
  const { dir, identity } = provisionDevice(portal.http, { push: false, pollIntervalMs: 200 });
  const settings = path.join(dir, 'agent.json');
  fs.writeFileSync(settings, JSON.stringify({ ...(JSON.parse(fs.readFileSync(settings, 'utf8')) as object), localMqtt: { url: MQTT_URL, topic, dial: true } }));
  const agent = await startAgentProcess(dir);
  const alice = tmpHome('dial-alice');
  const bob = tmpHome('dial-bob');
  let firmware: MqttClient | undefined;
  try {
    t.is((await mesh(alice, ['profile', 'create', '--portal', portal.http, '--account', 'alice', '--json'])).code, 0);
    t.is((await mesh(bob, ['profile', 'create', '--portal', portal.http, '--account', 'bob', '--json'])).code, 0);
    const c = await mesh(alice, ['device', 'claim', identity.labelUri, '--name', 'hall', '--wait', '30', '--json']);
    t.is(c.code, 0, show(c));
    const inv = await mesh(alice, ['device', 'invite', 'hall', '--json']);
    const b = await mesh(bob, ['device', 'claim', (inv.json as { invitation: string }).invitation, '--name', 'hall', '--wait', '30', '--json']);
    t.is(b.code, 0, show(b));
    const set = await mesh(alice, ['config', 'set', 'thermostat', 'setpoint=20', '--wait', '30']);
    t.is(set.code, 0, show(set));

    // the firmware: it reads the configuration the agent publishes, and turns the dial
    firmware = await connectAsync(MQTT_URL, { reconnectPeriod: 0 });
    const results: { ok: boolean; code?: string; message: string }[] = [];
    let published: Record<string, Record<string, unknown>> = {};
    firmware.on('message', (tp, payload) => {
      if (tp === `${topic}/set/result`) results.push(JSON.parse(payload.toString('utf8')) as (typeof results)[number]);
      else if (tp === topic) published = JSON.parse(payload.toString('utf8')) as typeof published;
    });
    await firmware.subscribeAsync([topic, `${topic}/set/result`], { qos: 1 });
    // the agent's log says when it listens on the dial topic
    await until('the agent listening on the dial topic', () => (agent.logs().includes('"dial-ready"') ? true : undefined), 20_000);

    // out of range: refused by the schema, nothing changes
    await firmware.publishAsync(`${topic}/set`, JSON.stringify({ thermostat: { setpoint: 45 } }), { qos: 1 });
    const refused = await until('the answer to 45', () => results[0], 20_000);
    t.false(refused.ok);
    t.is(refused.code, 'schema');
    t.regex(refused.message, /maximum is 30/);
    t.is(readConfig(dir).thermostat?.setpoint, 20);

    await firmware.publishAsync(`${topic}/set`, JSON.stringify({ thermostat: { setpoint: 23 } }), { qos: 1 });
    const ok = await until('the answer to 23', () => results[1], 20_000);
    t.true(ok.ok, ok.message);
    t.is(readConfig(dir).thermostat?.setpoint, 23);
    await until('the configuration published back to the firmware', () => (published.thermostat?.setpoint === 23 ? true : undefined), 20_000);

    const shownBy = async (home: string): Promise<string | undefined> => {
      const r = await mesh(home, ['device', 'show', 'hall', '--json']);
      const e = (r.json as Shown).effective?.thermostat?.setpoint;
      return e === undefined ? undefined : `${String(e.value)} ${e.owner}`;
    };
    t.is(await until("Alice's device show saying local", async () => ((await shownBy(alice)) === '23 local' ? '23 local' : undefined), 30_000), '23 local');
    t.is(await shownBy(bob), '23 local', "Bob's too");
    t.regex((await mesh(bob, ['device', 'show', 'hall'])).stdout, /thermostat\.setpoint = 23 {3}set on the device itself \(local\)/);

    // Bob's next change replaces the dial's value, for both
    const next = await mesh(bob, ['config', 'set', 'thermostat', 'setpoint=19', '--wait', '30']);
    t.is(next.code, 0, show(next));
    t.is(readConfig(dir).thermostat?.setpoint, 19);
    const bobs = await until("Alice's device show naming Bob", async () => {
      const s = await shownBy(alice);
      return s?.startsWith('19 bob@') === true ? s : undefined;
    }, 30_000);
    t.regex(bobs, /^19 bob@/);
  } finally {
    await firmware?.endAsync();
    await agent.stop();
    await portal.stop();
    for (const d of [alice, bob, dir]) fs.rmSync(d, { recursive: true, force: true });
  }
});
