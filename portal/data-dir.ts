/**
 * A portal's identity is its key: a portal started on another data directory than last time makes a
 * new key, and owners who pinned the old one refuse it. Before a key is made, look where a portal
 * key may already be (the default directories of root and of this user, and ./.mesh-data/portal,
 * the default of earlier versions) and say so.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { portalDataDir, xdgDataHome } from '../runtime/paths.js';

export const KEY_FILE = 'portal-key.json';

/** Portal key files that exist outside `dataDir` in the places a portal used by default. */
export function keysElsewhere(keyFile: string, env: NodeJS.ProcessEnv = process.env, cwd: string = process.cwd(), systemDir = '/var/lib/mesh-portal'): string[] {
  if (fs.existsSync(keyFile)) return [];
  const dirs = new Set([portalDataDir(env), systemDir, path.join(xdgDataHome(env), 'mesh-portal'), path.join(cwd, '.mesh-data', 'portal')]);
  const found: string[] = [];
  for (const d of dirs) {
    const f = path.join(d, KEY_FILE);
    if (path.resolve(f) !== path.resolve(keyFile) && fs.existsSync(f)) found.push(f);
  }
  return found;
}
