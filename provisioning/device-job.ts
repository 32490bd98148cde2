/**
 * Making one device: identity, its directory (runtime/device-files.ts), its systemd unit and its
 * label. Run in-process for small batches and in worker threads (worker.ts) for large ones.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { MeshError } from '../mesh/errors.js';
import { newDeviceIdentity } from '../mesh/device.js';
import type { KeyPair } from '../mesh/crypto.js';
import type { SignedEnvelope } from '../mesh/envelope.js';
import { writeDeviceDirectory, type AgentSettings } from '../runtime/device-files.js';
import { writeFileAtomic } from '../runtime/files.js';
import { writeLabels } from './label.js';
import { agentSysusers, SYSUSERS_FILE, UNIT_FILE } from './systemd.js';

/** One device in the manifest: public data only. */
export interface ManifestDevice {
  readonly serial: string;
  readonly id: string;
  readonly fingerprint: string;
  readonly model: string;
  readonly endorsement: SignedEnvelope | null;
}

/** Everything a device needs besides its serial; structured-cloneable (it is a worker's workerData). */
export interface DeviceJobContext {
  readonly out: string;
  readonly model: string;
  readonly manufacturer: string;
  /** host[:port] printed in the label URI */
  readonly authority: string;
  readonly settings: AgentSettings;
  readonly schemas: Readonly<Record<string, unknown>>;
  readonly unit: string;
  readonly manufacturerKey: KeyPair;
}

/** A file-system failure as a `state` error naming the file and the errno. */
export function ioError(e: unknown, what: string, file: string): MeshError {
  if (e instanceof MeshError) return e;
  const errno = (e as NodeJS.ErrnoException).code ?? 'error';
  const why =
    errno === 'EACCES' || errno === 'EPERM' || errno === 'EROFS'
      ? 'permission denied'
      : errno === 'ENOTDIR'
        ? 'a parent is not a directory'
        : errno === 'ENOSPC'
          ? 'the disk is full'
          : (e as Error).message;
  return new MeshError('state', `cannot ${what} ${file}: ${why} (${errno})`, { file, errno });
}

export async function makeDevice(ctx: DeviceJobContext, serial: string): Promise<ManifestDevice> {
  const dir = path.join(ctx.out, serial);
  try {
    // never recorded in the partial manifest: whatever is there never reached a manifest or a printer
    fs.rmSync(dir, { recursive: true, force: true });
    const d = newDeviceIdentity({ model: ctx.model, manufacturer: ctx.manufacturer, serial, portalAuthority: ctx.authority, manufacturerKey: ctx.manufacturerKey, schemas: ctx.schemas });
    writeDeviceDirectory(dir, d, ctx.settings, ctx.schemas as Record<string, unknown>);
    writeFileAtomic(path.join(dir, UNIT_FILE), ctx.unit, 0o644);
    writeFileAtomic(path.join(dir, SYSUSERS_FILE), agentSysusers(), 0o644);
    await writeLabels(dir, { uri: d.labelUri, code: d.claimCode, manufacturer: d.manufacturer, model: d.model, serial, fingerprint: d.fingerprint });
    return { serial, id: d.id, fingerprint: d.fingerprint, model: d.model, endorsement: d.endorsement };
  } catch (e) {
    throw ioError(e, 'write device', dir);
  }
}
