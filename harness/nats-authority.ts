/**
 * The keys and configuration for per-device push authorization on NATS (operator mode, see
 * portal/push/nats-auth.ts), written 0600 to a directory: used by scripts/nats-auth.ts and by tests.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { natsServerAuthConfig, newNatsAuthority, seedNkey, publicNkey } from '../portal/push/nats-auth.js';
import { writeFileAtomic } from '../runtime/files.js';

export function writeNatsAuthority(dir: string): { accountFile: string; configFile: string; account: string } {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const files = ['mesh-auth.conf', 'account.nk', 'operator.nk', 'system.nk'].map((f) => path.join(dir, f));
  for (const f of files) if (fs.existsSync(f)) throw new Error(`${f} exists; refusing to replace the authority (every device credential depends on it)`);
  const a = newNatsAuthority();
  writeFileAtomic(path.join(dir, 'operator.nk'), seedNkey('operator', a.operator.privateKey) + '\n');
  writeFileAtomic(path.join(dir, 'system.nk'), seedNkey('account', a.system.privateKey) + '\n');
  writeFileAtomic(path.join(dir, 'account.nk'), seedNkey('account', a.account.privateKey) + '\n');
  writeFileAtomic(path.join(dir, 'mesh-auth.conf'), natsServerAuthConfig(a));
  return { accountFile: path.join(dir, 'account.nk'), configFile: path.join(dir, 'mesh-auth.conf'), account: publicNkey('account', a.account.publicKey) };
}
