/**
 * Attack 6: the portal freezes the device: it keeps answering every Download, with nothing.
 * A freezing portal still answers, so the device itself cannot tell; the owner can, from the
 * device's signed status: the owner publishes, the status never shows the new sequence, and
 * `mesh device list` must flag the device once that has lasted longer than the configured age.
 * The owner is not locked out: when the freeze ends, the device applies the latest.
 *
 * The second test is the other half of that check: a device that is in contact and simply has
 * nothing new must NOT be flagged, or the flag means nothing (see docs/reliability.md: the agent
 * sends no status while nothing changes, so today every idle device turns STALE).
 */
import { openClaimWindow } from '../../harness/agent-process.js';
import test from 'ava';
import { until } from '../../harness/agent-process.js';
import { DOWNLOAD, onDownload } from './proxy.js';
import { hostileWorld, mesh, tmpHome } from './world.js';

const AGE_MS = 3000;

interface Listed {
  id: string;
  stale: boolean;
  lastContact: string | null;
  apps: { app: string; seq: number | null; published: number; upToDate: boolean; lagging?: boolean }[];
}

async function listed(home: string, id: string): Promise<Listed> {
  const r = await mesh(home, ['device', 'list', '--max-stale-ms', String(AGE_MS), '--json']);
  if (r.code !== 0) throw new Error(r.stdout + r.stderr);
  const d = (r.json.devices as Listed[]).find((x) => x.id === id);
  if (d === undefined) throw new Error(`device ${id} not listed: ${r.stdout}`);
  return d;
}

test.serial('a portal that withholds every update: the owner sees the device has not applied it past the age; after the freeze, it does', async (t) => {
  const w = await hostileWorld({ initial: null });
  const dora = tmpHome('dora');
  try {
    t.is((await mesh(dora, ['profile', 'create', '--portal', w.portal.http, '--account', 'dora', '--admin-name', 'laptop', '--json'])).code, 0);
    await openClaimWindow(w.dir);
    const claimed = await mesh(dora, ['device', 'claim', w.identity.labelUri, '--name', 'hall', '--wait-ms', '15000', '--json']);
    t.true(claimed.json?.accepted, claimed.stdout + claimed.stderr);
    const first = await mesh(dora, ['config', 'set', 'thermostat', 'setpoint=21', '--wait-ms', '15000', '--json']);
    t.is(first.json?.results?.[0]?.result, 'applied', first.stdout + first.stderr);
    const ok = await listed(dora, w.identity.id);
    t.true(ok.apps.find((a) => a.app === 'thermostat')?.upToDate);

    // the freeze: every Download is answered, with no items
    let frozen = 0;
    const off = w.proxy.use(
      onDownload('freeze', (b, since) => {
        frozen++;
        return { n: since, items: [] };
      }),
    );
    const before = w.configBytes();
    const second = await mesh(dora, ['config', 'set', 'thermostat', 'setpoint=24', '--wait', '0', '--json']);
    t.is(second.code, 0, second.stdout + second.stderr);
    const published = second.json.seq as number;
    await new Promise((r) => setTimeout(r, AGE_MS + 1000));
    t.true(frozen >= 5, 'the device kept polling and the portal kept answering');
    t.is(w.configBytes(), before, 'nothing reached the device');
    const seen = await listed(dora, w.identity.id);
    const app = seen.apps.find((a) => a.app === 'thermostat');
    t.is(app?.published, published);
    t.is(app?.seq, published - 1, 'the signed status shows the older configuration');
    t.false(app?.upToDate, 'device list says the latest is not applied');
    t.true(seen.stale || app?.lagging === true, `device list flags the device (stale, or not applied past the age): ${JSON.stringify(seen)}`);
    const human = await mesh(dora, ['device', 'list', '--max-stale-ms', String(AGE_MS)]);
    t.regex(human.stdout, new RegExp(`latest published #${published}: not applied yet`));

    // the freeze ends: the device applies the latest and the owner's view is clean again
    off();
    await w.agent.waitFor((e) => e.type === 'applied' && e.account === 'dora@localhost' && e.seq === published, 15_000, 'the withheld update after the freeze');
    t.is(JSON.parse(w.configBytes()).thermostat.setpoint, 24);
    const after = await until('a status with the new sequence', async () => {
      const d = await listed(dora, w.identity.id);
      return d.apps.find((a) => a.app === 'thermostat')?.upToDate === true ? d : undefined;
    });
    t.false(after.stale);
    t.true(w.proxy.exchanges.some((x) => x.url.startsWith(DOWNLOAD) && x.rules.includes('freeze')));
  } finally {
    await w.close();
  }
});

test.serial('a device that is in contact and has applied everything is not flagged stale (it must re-send its status while idle)', async (t) => {
  // the device's own setting says how old its data may get; a status it sent at start-up must not be all the owner ever sees
  const w = await hostileWorld({ initial: null, maxStaleMs: AGE_MS });
  const erin = tmpHome('erin');
  try {
    t.is((await mesh(erin, ['profile', 'create', '--portal', w.portal.http, '--account', 'erin', '--admin-name', 'laptop', '--json'])).code, 0);
    await openClaimWindow(w.dir);
    t.true((await mesh(erin, ['device', 'claim', w.identity.labelUri, '--name', 'hall', '--wait-ms', '15000', '--json'])).json?.accepted);
    const r = await mesh(erin, ['config', 'set', 'thermostat', 'setpoint=21', '--wait-ms', '15000', '--json']);
    t.is(r.json?.results?.[0]?.result, 'applied');
    const polls = w.proxy.exchanges.filter((x) => x.url.startsWith(DOWNLOAD)).length;
    await new Promise((res) => setTimeout(res, AGE_MS + 2000));
    t.true(w.proxy.exchanges.filter((x) => x.url.startsWith(DOWNLOAD)).length > polls + 10, 'the device kept polling: it is in contact');
    const d = await listed(erin, w.identity.id);
    t.true(d.apps.find((a) => a.app === 'thermostat')?.upToDate);
    t.false(d.stale, `an idle device in contact is not STALE; its last signed status says lastContact ${d.lastContact ?? 'null'}`);
  } finally {
    await w.close();
  }
});
