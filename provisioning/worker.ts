/** A worker thread of a large batch: makes the devices whose serials it is sent (see batch.ts). */
import { parentPort, workerData } from 'node:worker_threads';
import { MeshError } from '../mesh/errors.js';
import { makeDevice, type DeviceJobContext } from './device-job.js';

export type WorkerReply =
  | { readonly serial: string; readonly ok: true; readonly device: Awaited<ReturnType<typeof makeDevice>> }
  | { readonly serial: string; readonly ok: false; readonly error: ReturnType<MeshError['toJSON']> };

const ctx = workerData as DeviceJobContext;
const port = parentPort;
if (port === null) throw new Error('provisioning/worker.js runs only as a worker thread');

port.on('message', (serial: string) => {
  makeDevice(ctx, serial).then(
    (device) => port.postMessage({ serial, ok: true, device } satisfies WorkerReply),
    (e: unknown) => {
      const err = e instanceof MeshError ? e : new MeshError('internal', e instanceof Error ? e.message : String(e));
      port.postMessage({ serial, ok: false, error: err.toJSON() } satisfies WorkerReply);
    },
  );
});
