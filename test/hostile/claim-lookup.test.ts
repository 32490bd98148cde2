/**
 * Attack 1: the portal answers an owner's ClaimLookup with ANOTHER device's record, to make the
 * owner claim (and then configure) a device that is not the one in their hand.
 *   a) the other device's real blob: sealed under another label secret, it does not open
 *      (`decrypt-failed`);
 *   b) a blob sealed under the RIGHT secret but holding another device's profile (possible only
 *      for someone who knows the label secret; the test knows both): the fingerprint printed on
 *      the label does not match (`fingerprint-mismatch`).
 * The REAL `mesh` CLI claims through the proxy; it must refuse with the code and claim nothing;
 * the device, already owned by Alice, keeps its configuration and its single owner.
 */
import { openClaimWindow } from '../../harness/agent-process.js';
import test from 'ava';
import { PortalClient } from '../../client/portal-client.js';
import { b64u } from '../../mesh/bytes.js';
import { deriveClaimSecrets, sealClaimBlob } from '../../mesh/claim.js';
import { newDeviceIdentity } from '../../mesh/device.js';
import { createSession } from '../../mesh/messages.js';
import { PATHS } from '../../mesh/protocol.js';
import { agentStatus } from '../../harness/agent-process.js';
import { jsonResponse } from './proxy.js';
import { cliError, hostileWorld, mesh, tmpHome } from './world.js';

async function registerOther(portalUrl: string) {
  const other = newDeviceIdentity({ model: 'thermostat', manufacturer: 'acme', serial: 'other', portalAuthority: new URL(portalUrl).host });
  const s = deriveClaimSecrets(other.claimSecret);
  const client = new PortalClient({ url: portalUrl });
  await client.register({
    device: other.profile,
    endorsement: other.endorsement,
    claim: { id: s.claimId, blob: sealClaimBlob(s, { profile: other.profile, endorsement: other.endorsement }), portalKey: b64u(s.portalKey) },
    request: createSession(other.keys.auth, other.id),
  });
  client.close();
  return other;
}

for (const variant of ['decrypt-failed', 'fingerprint-mismatch'] as const) {
  test.serial(`ClaimLookup answered with another device's record: the mesh CLI refuses (${variant}) and claims nothing`, async (t) => {
    const w = await hostileWorld();
    const carol = tmpHome('carol');
    try {
      const other = await registerOther(w.portal.http);
      const mine = deriveClaimSecrets(w.identity.claimSecret);
      const otherBlob = (await w.alice.client.claimLookup(deriveClaimSecrets(other.claimSecret).claimId)).blob;
      // (b): only someone holding this label's secret can seal under it; the test does, to show the fingerprint check
      const forgedBlob = sealClaimBlob(mine, { profile: other.profile, endorsement: other.endorsement });
      const blob = variant === 'decrypt-failed' ? otherBlob : forgedBlob;
      let served = 0;
      const off = w.proxy.use({
        name: 'swap-claim-blob',
        response: (req, res) => {
          if (req.path !== PATHS.claimLookup || req.query.get('id') !== mine.claimId || res.status !== 200) return undefined;
          served++;
          return jsonResponse(200, { blob });
        },
      });
      const created = await mesh(carol, ['profile', 'create', '--portal', w.proxy.url, '--account', 'carol', '--admin-name', 'laptop', '--json']);
      t.is(created.code, 0, created.stdout + created.stderr);
      const before = w.configBytes();

      const r = await mesh(carol, ['device', 'claim', w.identity.labelUri, '--wait-ms', '0', '--json']);
      t.is(served, 1, 'the proxy did substitute the record');
      t.not(r.code, 0, 'the CLI exits non-zero');
      t.is(cliError(r), variant, r.stdout + r.stderr);
      const human = await mesh(carol, ['device', 'claim', w.identity.labelUri, '--wait-ms', '0']);
      t.is(human.code, 1);
      t.regex(human.stderr, new RegExp(`error \\[${variant}\\]`));
      t.regex(human.stderr, variant === 'decrypt-failed' ? /code does not open/ : /substituted another device/);

      // nothing was claimed: not in carol's state, not on the device, and the device's config is as it was
      const list = await mesh(carol, ['device', 'list', '--json']);
      t.deepEqual(list.json.devices, []);
      const st = await agentStatus(w.dir);
      t.deepEqual(st.owners.map((o) => o.account), [w.alice.account]);
      t.is(w.configBytes(), before, 'config.json is exactly as before');

      // control: once the portal stops lying, the same command claims the device it should
      off();
      await openClaimWindow(w.dir);
      const ok = await mesh(carol, ['device', 'claim', w.identity.labelUri, '--wait-ms', '15000', '--json']);
      t.is(ok.code, 0, ok.stdout + ok.stderr);
      t.is(ok.json.device.id, w.identity.id);
      t.true(ok.json.accepted);
    } finally {
      await w.close();
    }
  });
}
