/** A verification thread of the portal (verify.ts): checkApplication, one message at a time. */
import { parentPort } from 'node:worker_threads';
import { checkApplication, MasterCache, toWire, type ApplicationJob } from './verify.js';

const port = parentPort;
if (port === null) throw new Error('verify-worker.js runs as a worker thread');
const masters = new MasterCache();
port.on('message', (m: { id: number; job: ApplicationJob }) => {
  try {
    const ok = checkApplication(m.job, masters);
    // copied, not transferred: small buffers share Node's pool
    port.postMessage({ id: m.id, ok });
  } catch (e) {
    port.postMessage({ id: m.id, fail: toWire(e) });
  }
});
