/**
 * The portal operator also holds a stolen administration key of the owner's (not yet revoked).
 * It configures the device with it, straight into the device's feed, never through Publish: the
 * owner's account at the portal still shows the owner's own latest configuration. The device
 * obeys (the key is valid) and says so in its signed status: it applied a sequence number the
 * owner never published. `mesh device list` must not show that as "up to date"; it is the one
 * trace the owner gets (the object is not in the log either: the device does not check that
 * what it applies was logged; see docs/reliability.md).
 */
import { openClaimWindow } from '../../harness/agent-process.js';
import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as c from '../../mesh/crypto.js';
import { fromB64u } from '../../mesh/bytes.js';
import { createApplicationProfile, type AdminKeys } from '../../mesh/profiles.js';
import { swapNextItem } from './proxy.js';
import { hostileWorld, mesh, tmpHome } from './world.js';

test.serial('a configuration the owner never published, applied by the device, is flagged by mesh device list', async (t) => {
  const w = await hostileWorld({ initial: null });
  const hana = tmpHome('hana');
  try {
    t.is((await mesh(hana, ['profile', 'create', '--portal', w.portal.http, '--account', 'hana', '--admin-name', 'laptop', '--json'])).code, 0);
    await openClaimWindow(w.dir);
    t.true((await mesh(hana, ['device', 'claim', w.identity.labelUri, '--name', 'hall', '--wait-ms', '15000', '--json'])).json?.accepted);
    const first = await mesh(hana, ['config', 'set', 'thermostat', 'setpoint=21', '--wait-ms', '15000', '--json']);
    t.is(first.json?.results?.[0]?.result, 'applied');
    const published = first.json.seq as number;

    // the stolen key, and what the owner's profile says about the device
    const keys = JSON.parse(fs.readFileSync(path.join(hana, 'admin-keys.json'), 'utf8')) as { name: string; sign: string; enc: string };
    const stolen: AdminKeys = { name: keys.name, sign: c.ed25519KeyPair(fromB64u(keys.sign, 'sign', 32)), enc: c.x25519KeyPair(fromB64u(keys.enc, 'enc', 32)) };
    const profile = JSON.parse(fs.readFileSync(path.join(hana, 'profile.json'), 'utf8')) as { master: string; devices: { id: string; enc: string }[] };
    const target = profile.devices.map((d) => ({ id: d.id, enc: fromB64u(d.enc, 'enc', 32) }));
    const forged = createApplicationProfile(stolen, { master: profile.master, app: 'thermostat', seq: 99, config: { setpoint: 5, mode: 'off' }, devices: target });
    const { rule, served } = swapNextItem('stolen-key', (it) => it.kind === 'application', (it) => ({ ...it, object: forged as never }));
    const off = w.proxy.use(rule);
    await w.alice.publish('thermostat', { setpoint: 22 }); // any item of the feed will do as the carrier
    await served;
    off();
    await w.agent.waitFor((e) => e.type === 'applied' && e.seq === 99 && e.account === 'hana@localhost', 15_000, 'the forged #99 applied');
    t.is(JSON.parse(w.configBytes()).thermostat.mode, 'off', 'the device obeyed the stolen key (it is a valid key)');

    const r = await mesh(hana, ['device', 'list', '--json']);
    t.is(r.code, 0, r.stdout + r.stderr);
    const app = (r.json.devices[0].apps as { app: string; seq: number; published: number; upToDate: boolean }[]).find((a) => a.app === 'thermostat');
    t.is(app?.published, published, 'the portal shows the owner only its own publication');
    t.is(app?.seq, 99, "the device's signed status shows #99");
    t.false(app?.upToDate, `device list calls a device that applied #99, which the owner never published (latest #${published}), up to date: ${JSON.stringify(app)}`);
  } finally {
    await w.close();
  }
});
