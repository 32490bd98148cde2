/**
 * The device's own dial over its local MQTT broker: the firmware publishes a change made on the
 * device to `<topic>/set`, e.g. {"thermostat": {"setpoint": 23}} (null hands a key back to the
 * owners), and reads the answer on `<topic>/set/result`. Each change goes through the same path
 * as `mesh-agent set` (a command in DIR/inbox/, applied by the running agent): checked against
 * the application's schema, in effect at once with the source `local`, reported to the owners in
 * the encrypted status, and replaced by the next owner change the device applies.
 *
 * Opt-in (`"localMqtt": {"url": ..., "topic": ..., "dial": true}` in agent.json): whoever can
 * publish on that broker can turn the dial, within the schema. Keep the broker on the device.
 */
import { MeshError, isMeshError } from '../mesh/errors.js';
import { checkJsonValue, parseJson, type Json } from '../mesh/json.js';
import type { AgentSettings } from '../runtime/device-files.js';
import { awaitAnswer, enqueue, type LocalResult } from './local.js';
import { backoff } from '../runtime/backoff.js';
import { systemClock, type Clock, type Timer } from '../runtime/clock.js';
import { MqttLite, parseMqttUrl } from '../runtime/mqtt-lite.js';

/** the largest change a message may carry */
const MAX_DIAL_BYTES = 16_384;
const APP = /^[a-z0-9][a-z0-9._-]{0,63}$/;

export interface DialChange {
  readonly app: string;
  readonly set: Record<string, Json>;
  readonly remove: string[];
}

/** A dial message: {APP: {KEY: VALUE or null, ...}, ...}; anything else is `malformed`. */
export function parseDialMessage(payload: Uint8Array | string): DialChange[] {
  const v = checkJsonValue(parseJson(payload, MAX_DIAL_BYTES, 'the dial message'), 'the dial message');
  if (typeof v !== 'object' || v === null || Array.isArray(v) || Object.keys(v).length === 0) throw new MeshError('malformed', 'a dial message is {"APP": {"KEY": VALUE, ...}}');
  return Object.entries(v).map(([app, keys]) => {
    if (!APP.test(app)) throw new MeshError('malformed', `"${app}" is not an application name`);
    if (typeof keys !== 'object' || keys === null || Array.isArray(keys) || Object.keys(keys).length === 0) throw new MeshError('malformed', `${app}: give {"KEY": VALUE, ...} (null hands a key back to the owners)`);
    const set: Record<string, Json> = {};
    const remove: string[] = [];
    for (const [k, x] of Object.entries(keys)) {
      if (x === null) remove.push(k);
      else set[k] = x;
    }
    return { app, set, remove };
  });
}

export interface Dial {
  stop(): Promise<void>;
}

type Log = (event: string, data: Record<string, unknown>) => void;

/** Listen on `<topic>/set` of the local broker (reconnecting while the agent runs); undefined when the dial is not enabled. */
export async function startDial(dir: string, settings: AgentSettings, log: Log, clock: Clock = systemClock): Promise<Dial | undefined> {
  const lm = settings.localMqtt;
  if (lm?.dial !== true) return undefined;
  const setTopic = `${lm.topic}/set`;
  const resultTopic = `${lm.topic}/set/result`;
  const delays = backoff(500, 30_000, () => clock.random());
  let client: MqttLite | undefined;
  let timer: Timer | undefined;
  let stopped = false;
  // one message at a time, in the order they came
  let queue: Promise<void> = Promise.resolve();
  const again = (): void => {
    if (stopped) return;
    timer = clock.setTimer(() => void attempt(), delays.next());
  };
  const attempt = async (): Promise<void> => {
    if (stopped) return;
    let c: MqttLite;
    try {
      c = await MqttLite.connect({ url: lm.url, clientId: `mesh-dial-${process.pid}-${Math.floor(clock.random() * 1e9).toString(36)}`, connectTimeoutMs: 5000, keepaliveS: 30, clock });
    } catch (e) {
      log('dial-error', { message: (e as Error).message });
      again();
      return;
    }
    if (stopped) {
      c.destroy();
      return;
    }
    client = c;
    c.onClose((err) => {
      if (client === c) client = undefined;
      if (err !== undefined) log('dial-error', { message: err.message });
      again();
    });
    c.onMessage((topic, payload) => {
      if (topic !== setTopic) return;
      queue = queue.then(async () => {
        const result = await turn(dir, payload);
        log('dial', { ok: result.ok, message: result.message });
        await c.publish(resultTopic, JSON.stringify(result), { qos: 1 }).catch((e: unknown) => log('dial-error', { message: `could not answer on ${resultTopic}: ${(e as Error).message}` }));
      });
    });
    try {
      await c.subscribe(setTopic, 1);
    } catch (e) {
      log('dial-error', { message: `could not subscribe to ${setTopic}: ${(e as Error).message}` });
      c.destroy();
      return;
    }
    delays.reset();
    log('dial-ready', { topic: setTopic });
  };
  parseMqttUrl(lm.url);
  await attempt();
  return {
    async stop() {
      stopped = true;
      timer?.cancel();
      await queue;
      await client?.end();
    },
  };
}

/** Apply one dial message through the agent's inbox; the answer, or why not. */
async function turn(dir: string, payload: Uint8Array): Promise<LocalResult> {
  let changes: DialChange[];
  try {
    changes = parseDialMessage(payload);
  } catch (e) {
    return { ok: false, code: isMeshError(e) ? e.code : 'malformed', message: (e as Error).message };
  }
  const messages: string[] = [];
  for (const c of changes) {
    const id = enqueue(dir, { cmd: 'set', app: c.app, set: c.set, remove: c.remove });
    const r = await awaitAnswer(dir, id, 15_000);
    if (r === undefined) return { ok: false, code: 'timeout', message: `the agent did not take the change to ${c.app} within 15 s` };
    if (!r.ok) return r;
    messages.push(r.message);
  }
  return { ok: true, message: messages.join('; ') };
}
