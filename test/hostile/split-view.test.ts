/**
 * Attack 7: a split view. Two REAL portal processes share one signing key (--key) but not their
 * data: the proxy sends the device's /checkpoint requests to the second one, so the device is
 * shown a tree head, validly signed by "the portal", of a log the owner never sees. The device
 * takes a new head only with a consistency proof from the one it holds (agent/logged.ts): it
 * refuses the fork's head (`log-inconsistent` in its signed status), keeps the owner's, and keeps
 * obeying the honest feed; `mesh log verify` (which compares the device's head with the owner's
 * log, and would say SPLIT VIEW) passes because the device never took the fork's head.
 */
import { openClaimWindow } from '../../harness/agent-process.js';
import test from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fromB64u } from '../../mesh/bytes.js';
import { isMeshError } from '../../mesh/errors.js';
import { verifyConsistency } from '../../mesh/merkle.js';
import { verifyPortalProfile, verifyTreeHead } from '../../mesh/messages.js';
import { PortalClient } from '../../client/portal-client.js';
import { startPortalProcess } from '../../harness/portal-process.js';
import { TestOwner } from '../../harness/owner.js';
import { until } from '../../harness/agent-process.js';
import { hostileWorld, mesh, tmpHome } from './world.js';

test.serial('the device is shown a forked log (same portal key, other data): mesh log verify reports log-inconsistent', async (t) => {
  const w = await hostileWorld({ initial: null });
  const keyCopy = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'mesh-split-key-')), 'portal-key.json');
  fs.copyFileSync(path.join(w.portal.dataDir, 'portal-key.json'), keyCopy);
  fs.chmodSync(keyCopy, 0o600);
  const fork = await startPortalProcess({ args: ['--no-mqtt', '--key', keyCopy] });
  w.cleanups.push(() => fork.stop(), () => fs.rmSync(path.dirname(keyCopy), { recursive: true, force: true }));
  const gina = tmpHome('gina');
  try {
    t.is(fork.portal, w.portal.portal, 'both portals sign with the same key');
    // the fork has a history of its own
    const eve = await TestOwner.create(fork.http, 'eve');
    await eve.rotateAdmin();
    eve.close();

    t.is((await mesh(gina, ['profile', 'create', '--portal', w.portal.http, '--account', 'gina', '--admin-name', 'laptop', '--json'])).code, 0);
    await openClaimWindow(w.dir);
    t.true((await mesh(gina, ['device', 'claim', w.identity.labelUri, '--name', 'hall', '--wait-ms', '15000', '--json'])).json?.accepted);
    t.is((await mesh(gina, ['config', 'set', 'thermostat', 'setpoint=21', '--wait-ms', '15000', '--json'])).json?.results?.[0]?.result, 'applied');
    // control: no split yet, the device saw the owner's log
    const good = await mesh(gina, ['log', 'verify', '--json']);
    t.is(good.code, 0, good.stdout + good.stderr);
    t.is(good.json.devices[0]?.consistent, true);

    // the split: the device's checkpoints (its status's refresh of its head) now come from the fork
    w.proxy.use({ name: 'split-view', upstream: (req) => (req.path === '/checkpoint' ? fork.http : undefined) });
    const before = w.configBytes();
    const r = await mesh(gina, ['config', 'set', 'thermostat', 'setpoint=22', '--wait-ms', '15000', '--json']);
    t.is(r.json?.results?.[0]?.result, 'applied', 'the honest feed still configures the device');
    t.not(w.configBytes(), before);
    // the device refuses the forked head itself: it is not one history with the head it holds
    const signed = await until('a signed status reporting log-inconsistent', async () => {
      const s = await w.signedStatus();
      return s?.errors.some((e) => e.code === 'log-inconsistent') === true ? s : undefined;
    });
    t.true(signed.errors.some((e) => e.code === 'log-inconsistent'));
    t.true(w.proxy.exchanges.some((x) => x.rules.includes('split-view')), 'the device was shown the fork');
    // and it never holds the fork's head: the head in its status is part of the owner's log
    const owners = new PortalClient({ url: w.portal.http });
    const mine = verifyTreeHead(await owners.treeHead(), verifyPortalProfile((await owners.hello()).portal).sign);
    const held = signed.treeHead;
    if (held === undefined) throw new Error('no head in the status');
    if (held.size < mine.size) {
      const proof = (await owners.consistency(held.size, mine.size)).proof.map((p) => fromB64u(p, 'proof', 32));
      t.notThrows(() => verifyConsistency(held.size, mine.size, fromB64u(held.root, 'root', 32), mine.root, proof));
    }
    owners.close();
    const after = await mesh(gina, ['log', 'verify', '--json']);
    t.is(after.code, 0, after.stdout + after.stderr);
    // what the device refused is a different history: the fork's head is not consistent with the owner's log
    const forkCp = await (await fetch(`${fork.http}/checkpoint`)).text();
    const forkSize = Number(forkCp.split('\n')[1]);
    const forkRoot = Buffer.from(forkCp.split('\n')[2] as string, 'base64');
    const c2 = new PortalClient({ url: w.portal.http });
    const proof = (await c2.consistency(Math.min(forkSize, mine.size), Math.max(forkSize, mine.size))).proof.map((p) => fromB64u(p, 'proof', 32));
    c2.close();
    const e = t.throws(() => (forkSize <= mine.size ? verifyConsistency(forkSize, mine.size, forkRoot, mine.root, proof) : verifyConsistency(mine.size, forkSize, mine.root, forkRoot, proof)));
    t.true(isMeshError(e, 'bad-proof'), String(e));
  } finally {
    await w.close();
  }
});
