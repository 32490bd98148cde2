/**
 * The portal operator also holds a stolen administration key of the owner's (not yet revoked).
 * It configures the device with it, straight into the device's feed, never through Publish (and
 * so never through its log, where the owner would see it). The key is valid, but the device
 * checks that what it applies was logged: refused `not-logged`, config.json unchanged, the code
 * in its signed status; the real item the forgery replaced is applied once the portal serves it.
 */
import { openClaimWindow } from '../../harness/agent-process.js';
import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as c from '../../mesh/crypto.js';
import { fromB64u } from '../../mesh/bytes.js';
import { createApplicationProfile, type AdminKeys } from '../../mesh/profiles.js';
import { swapNextItem } from './proxy.js';
import { assertRefused, hostileWorld, mesh, refusal, tmpHome } from './world.js';

test.serial('a configuration signed with a stolen key but never published (never logged) is refused: not-logged', async (t) => {
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
    const before = w.configBytes();
    await w.alice.publish('thermostat', { setpoint: 22 }); // any item of the feed will do as the carrier
    const n = await served;
    const refused = await refusal(w, (e) => e.n === n, 'the forged #99 refused');
    t.is(refused.code, 'not-logged', 'never published, so in no log: the device refuses it although the key is valid');
    t.is(w.configBytes(), before, 'the stolen key configured nothing');
    await assertRefused(t, w, before, 'not-logged');
    off();
    // the real item behind it was held, not lost: it is applied once the portal serves it honestly
    await w.agent.waitFor((e) => e.type === 'applied' && e.n === n && e.account === w.alice.account, 15_000, 'the real item applied');

    const r = await mesh(hana, ['device', 'list', '--json']);
    t.is(r.code, 0, r.stdout + r.stderr);
    const app = (r.json.devices[0].apps as { app: string; seq: number; published: number; upToDate: boolean }[]).find((a) => a.app === 'thermostat');
    t.is(app?.published, published);
    t.is(app?.seq, published, "the device's signed status shows the owner's own publication, never #99");
    t.true(app?.upToDate);
  } finally {
    await w.close();
  }
});
