/**
 * A short fuzz of a REAL portal process from outside (scripts/fuzz-long.ts runs the long one):
 * generated and mutated bodies at every POST transaction, with the session each needs, junk
 * queries at the GET transactions, and garbage at its embedded MQTT broker. Every answer is below
 * 500 and every refusal a JSON error with a known code; the portal stays alive and healthy, and
 * a real device still hears its pushes afterwards.
 * FUZZ_PORTAL_RUNS sets the number of requests (default 3000); FUZZ_SEED replays a run.
 */
import test from 'ava';
import { startPortalProcess } from '../../harness/portal-process.js';
import { fuzzWorld, healthy, judge, newStats, pushStillWorks, raw, throwMqttJunk, throwRequests } from '../../harness/portal-fuzz.js';
import { PATHS } from '../../mesh/protocol.js';

const RUNS = Number(process.env.FUZZ_PORTAL_RUNS ?? 3000);
const SEED = process.env.FUZZ_SEED === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(process.env.FUZZ_SEED);

test('the property can fail: a 500, an HTML error page, an unknown code are each reported', (t) => {
  t.regex(judge({ status: 500, body: '{"error":{"code":"internal","message":"x"}}' }) ?? '', /HTTP 500/);
  t.regex(judge({ status: 400, body: '<html>bad</html>' }) ?? '', /not JSON/);
  t.regex(judge({ status: 403, body: '{"error":{"code":"nope","message":"x"}}' }) ?? '', /known error code/);
  t.is(judge({ status: 422, body: '{"error":{"code":"bad-signature","message":"x"}}' }), undefined);
});

test(`a real portal answers ${RUNS} fuzzed requests and MQTT garbage with typed 4xx refusals, never 5xx, and stays up`, async (t) => {
  const portal = await startPortalProcess();
  try {
    const w = await fuzzWorld(portal);
    // every POST transaction is reached, with its own session where it needs one
    for (const r of w.routes) {
      const a = await raw(w.http, 'POST', r.path, '{"junk":1}', { 'content-type': 'application/json', ...(r.token !== undefined ? { authorization: `Bearer ${r.token}` } : {}) });
      t.is(a.status, 400, `${r.name} reaches its parser: ${a.body}`);
    }
    const stats = newStats();
    await throwRequests(w, RUNS, SEED, stats);
    t.log(`seed ${SEED}: ${stats.requests} requests; ${JSON.stringify(stats.statuses)}; ${JSON.stringify(stats.codes)}`);
    t.deepEqual(stats.failures, [], `replay with FUZZ_SEED=${SEED}`);
    t.is(stats.serverErrors, 0);
    t.true(Object.keys(stats.codes).length >= 6, 'the inputs reached many different refusals');
    t.true((stats.statuses['4xx'] ?? 0) > RUNS / 2);

    const junk = await throwMqttJunk(w, 150, SEED);
    t.log(`MQTT junk: ${JSON.stringify(junk.kinds)}`);
    const h = await healthy(w.http);
    t.true(h.ok, h.body);
    t.regex(h.body, /"mqtt":"ok"/);
    t.true(await pushStillWorks(w), 'a device with a real session still hears its pushes');
    t.is(portal.proc.exitCode, null, 'the portal process is alive');
    t.notRegex(portal.logs(), /uncaught exception|unhandled rejection/);
    // and an ordinary owner request still works
    const acct = await w.alice.client.account();
    t.is(acct.account, w.alice.account);
    t.is((await raw(w.http, 'GET', PATHS.hello)).status, 200);
    w.alice.close();
  } finally {
    await portal.stop();
  }
});
