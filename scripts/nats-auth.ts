/**
 * node dist/scripts/nats-auth.js --out DIR: the keys and configuration for per-device push
 * authorization on NATS (operator mode, see portal/push/nats-auth.ts). Writes, 0600:
 *
 *   DIR/mesh-auth.conf   include it in every nats-server.conf of the cluster
 *   DIR/account.nk       the mesh account seed: give it to every mesh-portal (--mqtt-nats-account)
 *   DIR/operator.nk      the operator seed: keep it offline (it signs accounts, not devices)
 *   DIR/system.nk        the system account seed: keep it offline
 *
 * Refuses to overwrite: a new authority invalidates every credential the old one signed.
 */
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { writeNatsAuthority } from '../harness/nats-authority.js';

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const { values } = parseArgs({ options: { out: { type: 'string' }, help: { type: 'boolean', short: 'h' } } });
  if (values.help === true || values.out === undefined) {
    process.stdout.write('node dist/scripts/nats-auth.js --out DIR: NATS operator-mode keys and config for per-device push authorization\n');
    process.exit(values.help === true ? 0 : 2);
  }
  try {
    const r = writeNatsAuthority(path.resolve(values.out));
    process.stdout.write(`wrote ${r.configFile} (include it in nats-server.conf) and ${r.accountFile} (mesh-portal --mqtt-nats-account); mesh account ${r.account}\n`);
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n`);
    process.exit(1);
  }
}
