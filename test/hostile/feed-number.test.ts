/**
 * The feed number in a Download answer is not signed. One forged answer that gives the next real
 * item an enormous number must not move the device's cursor past everything the honest portal will
 * deliver: the device records `feed-gap`, applies nothing from that answer, and applies the real
 * change as soon as an honest answer delivers it, and every change after it.
 */
import test from 'ava';
import { onDownload } from './proxy.js';
import { agentStatus } from '../../harness/agent-process.js';
import { assertRecovers, hostileWorld } from './world.js';

test.serial('one Download answer with an enormous item number, then the honest portal: the real change is applied (feed-gap recorded)', async (t) => {
  const w = await hostileWorld();
  try {
    let forged = 0;
    const off = w.proxy.use(
      onDownload('enormous-n', (body) => {
        if (forged > 0 || body.items.length === 0) return undefined;
        forged++;
        return { ...body, n: 1e15, items: body.items.map((it) => ({ ...it, n: it.n + 1e12 })) };
      }),
    );
    try {
      const applied = w.agent.waitFor((e) => e.type === 'applied' && e.seq === 2, 20_000, 'the real change applied after the forged answer');
      await w.alice.publish('thermostat', { setpoint: 23 });
      await applied;
    } finally {
      off();
    }
    t.is(forged, 1, 'exactly one answer was forged');
    t.is(JSON.parse(w.configBytes()).thermostat.setpoint, 23);
    const st = await agentStatus(w.dir);
    t.true(st.errors.some((e) => e.code === 'feed-gap'), JSON.stringify(st.errors));
    t.true(st.cursor < 1e12, `the cursor is ${st.cursor}`);
    await assertRecovers(t, w, { setpoint: 24 });
  } finally {
    await w.close();
  }
});
