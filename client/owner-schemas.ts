/**
 * The devices' schemas on an administration device that did not claim them (mesh recover, mesh
 * admin join, and a device another administration device claimed, seen at sync): taken from the
 * personal profile's copies and kept only where the device's own signed profile declares them.
 */
import { isMeshError } from '../mesh/errors.js';
import type { Json } from '../mesh/json.js';
import { verifyDeviceProfile, type DeviceProfile } from '../mesh/profiles.js';
import { declaredSchemas } from '../mesh/schema.js';
import type { PortalClient } from './portal-client.js';
import type { DeviceRecord } from './owner-state.js';

/**
 * The devices read back with their schemas: each device's signed profile (the portal serves it
 * with the devices' status; it must verify under the device's own key, whose UDF is the id the
 * personal profile lists) declares its applications and their schema fingerprints, and only a
 * carried schema with that fingerprint is kept. Anything else is dropped with a note: values for
 * that application are then checked by the device alone. Never fails: without the portal's
 * answer the devices come back without schemas, as they did before profiles carried them.
 */
export async function restoreSchemas(client: PortalClient, devices: readonly DeviceRecord[], carried: Readonly<Record<string, Json>> | undefined, note: (s: string) => void): Promise<DeviceRecord[]> {
  if (devices.length === 0) return [...devices];
  if (carried === undefined) {
    note("note: the personal profile at the portal does not carry your devices' schemas (an older mesh published it): values are checked by the devices alone\n");
    return [...devices];
  }
  let profiles: Map<string, DeviceProfile | string>;
  try {
    profiles = new Map();
    for (const e of await client.deviceStatus()) {
      try {
        profiles.set(e.device, verifyDeviceProfile(e.profile, e.device));
      } catch (err) {
        profiles.set(e.device, isMeshError(err) ? `${err.code}: ${err.message}` : String(err));
      }
    }
  } catch (e) {
    note(`warning: the devices' profiles could not be read from the portal (${isMeshError(e) ? e.message : String(e)}): your devices come back without their schemas, and values are checked by the devices alone\n`);
    return [...devices];
  }
  return devices.map((d) => {
    const p = profiles.get(d.id);
    if (p === undefined || typeof p === 'string') {
      note(`warning: ${d.name}: ${p === undefined ? 'the portal returned no profile for it' : `its profile from the portal does not verify (${p})`}; its schemas are not kept, and values for it are checked by the device alone\n`);
      return d;
    }
    const apps = p.payload.apps;
    if (apps === undefined) return d; // an older device: its profile declares no schemas
    const given: Record<string, Json> = {};
    for (const a of apps) if (Object.hasOwn(carried, a.schema)) given[a.name] = carried[a.schema] as Json;
    const got = declaredSchemas(apps, given, 'the personal profile at the portal');
    for (const x of got.problems) note(`warning: ${d.name}: ${x}; it is dropped, and values for it are checked by the device alone\n`);
    return { ...d, schemas: got.schemas };
  });
}
