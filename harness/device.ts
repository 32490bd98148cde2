/** A device registered the way the agent does it (Hello, Register), for tests and benchmarks. */
import { PortalClient } from '../client/portal-client.js';
import { b64u } from '../mesh/bytes.js';
import { deriveClaimSecrets, sealClaimBlob } from '../mesh/claim.js';
import { newDeviceIdentity, type DeviceIdentity } from '../mesh/device.js';

/** Register a new (or the given) device through `portalUrl`; returns a client holding its session. */
export async function registerDevice(portalUrl: string, identity?: DeviceIdentity): Promise<{ client: PortalClient; identity: DeviceIdentity }> {
  const d = identity ?? newDeviceIdentity({ model: 'thermostat', manufacturer: 'acme', serial: 'test', portalAuthority: new URL(portalUrl).host });
  const client = new PortalClient({ url: portalUrl, identity: { subject: d.id, key: d.keys.auth } });
  const secrets = deriveClaimSecrets(d.claimSecret);
  await client.hello();
  await client.register({
    device: d.profile,
    endorsement: d.endorsement,
    claim: { id: secrets.claimId, blob: sealClaimBlob(secrets, { profile: d.profile, endorsement: d.endorsement }), portalKey: b64u(secrets.portalKey) },
    request: await client.sessionRequest(d.keys.auth, d.id),
  });
  return { client, identity: d };
}
