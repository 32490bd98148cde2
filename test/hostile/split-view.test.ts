/**
 * Attack 7: a split view. Two REAL portal processes share one signing key (--key) but not their
 * data: the proxy sends the device's Log/TreeHead requests to the second one, so the device signs
 * into its status a tree head, validly signed by "the portal", of a log the owner never sees.
 * The owner compares that head with its own log: `mesh log verify` fails with log-inconsistent
 * ("SPLIT VIEW"), and the library check (verifyConsistency against the owner's log) fails too.
 * Before the split, on the same world, log verify passes: the test can tell the two apart.
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
import { PATHS } from '../../mesh/protocol.js';
import { PortalClient } from '../../client/portal-client.js';
import { startPortalProcess } from '../../harness/portal-process.js';
import { TestOwner } from '../../harness/owner.js';
import { until } from '../../harness/agent-process.js';
import { cliError, hostileWorld, mesh, tmpHome } from './world.js';

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

    // the split: the device's tree heads now come from the fork
    w.proxy.use({ name: 'split-view', upstream: (req) => (req.path === PATHS.treeHead ? fork.http : undefined) });
    const before = w.configBytes();
    const r = await mesh(gina, ['config', 'set', 'thermostat', 'setpoint=22', '--wait-ms', '15000', '--json']);
    t.is(r.json?.results?.[0]?.result, 'applied', 'the split does not stop configuration: it is detected, not prevented');
    t.not(w.configBytes(), before);
    // the device's signed status now carries the fork's head
    const forkRoot = await until('a status with the forked head', async () => {
      const s = await w.signedStatus();
      return s?.treeHead !== undefined && s.treeHead.root !== good.json.treeHead.root && s.treeHead.size !== good.json.treeHead.size ? s.treeHead : undefined;
    });

    const bad = await mesh(gina, ['log', 'verify', '--json']);
    t.not(bad.code, 0);
    t.is(cliError(bad), 'log-inconsistent', bad.stdout + bad.stderr);
    const human = await mesh(gina, ['log', 'verify']);
    t.is(human.code, 1);
    t.regex(human.stderr, /error \[log-inconsistent\]/);
    t.regex(human.stderr, /SPLIT VIEW: device hall/);

    // the same check with the library: the owner's log does not extend the head the device saw
    const owners = new PortalClient({ url: w.portal.http });
    const mine = verifyTreeHead(await owners.treeHead(), verifyPortalProfile((await owners.hello()).portal).sign);
    t.true(forkRoot.size > 0 && forkRoot.size < mine.size, `the fork's log (${forkRoot.size}) is shorter than the owner's (${mine.size})`);
    const proof = (await owners.consistency(forkRoot.size, mine.size)).proof.map((p) => fromB64u(p, 'proof', 32));
    owners.close();
    const e = t.throws(() => verifyConsistency(forkRoot.size, mine.size, fromB64u(forkRoot.root, 'root', 32), mine.root, proof));
    t.true(isMeshError(e, 'bad-proof'), String(e));
  } finally {
    await w.close();
  }
});
