/**
 * Open the configured store: PostgreSQL when a database URL is given, else SQLite in the data directory.
 *
 * Each driver is loaded only when chosen: better-sqlite3 (a native module) and pg are optional
 * dependencies of the package, so the agent and the owner CLI install without them
 * (`npm install --omit=optional`). A portal whose driver is missing says which package to install.
 */
import * as path from 'node:path';
import { MeshError } from '../../mesh/errors.js';
import { SqlStore } from './sql-store.js';
import type { SqlDriver } from './sql.js';
import type { Storage } from './types.js';

export interface StorageOptions {
  readonly dataDir: string;
  readonly databaseUrl?: string;
  readonly pgSchema?: string;
  readonly onError?: (e: Error) => void;
}

/** Import a driver module; a missing npm package becomes a `state` error naming it. */
async function driverModule<T>(load: () => Promise<T>, pkg: string, what: string): Promise<T> {
  try {
    return await load();
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const missing = (err.code === 'ERR_MODULE_NOT_FOUND' || err.code === 'MODULE_NOT_FOUND') && err.message.includes(`'${pkg}'`);
    // better-sqlite3 installed but its native part not built (a failed optional build)
    const unbuilt = pkg === 'better-sqlite3' && /Could not locate the bindings file|invalid ELF|NODE_MODULE_VERSION/.test(err.message);
    if (!missing && !unbuilt) throw e;
    throw new MeshError(
      'state',
      `${what} needs the npm package ${pkg}, which is ${missing ? 'not installed' : 'installed but not built for this Node.js'}: run \`npm install ${pkg}\` where mesh-portal is installed` +
        (pkg === 'better-sqlite3' ? ' (or use PostgreSQL: --database-url, with the package pg)' : ''),
      { package: pkg },
    );
  }
}

async function open(d: SqlDriver): Promise<Storage> {
  try {
    return await SqlStore.open(d);
  } catch (e) {
    await d.close().catch(() => undefined);
    throw e;
  }
}

export async function openStorage(o: StorageOptions): Promise<Storage> {
  if (o.databaseUrl !== undefined && o.databaseUrl !== '') {
    const { PostgresDriver } = await driverModule(() => import('./postgres.js'), 'pg', 'PostgreSQL storage');
    const d = await PostgresDriver.open({ url: o.databaseUrl, ...(o.pgSchema !== undefined ? { schema: o.pgSchema } : {}), ...(o.onError !== undefined ? { onError: o.onError } : {}) });
    return open(d);
  }
  const { SqliteDriver } = await driverModule(() => import('./sqlite.js'), 'better-sqlite3', 'SQLite storage (the default)');
  return open(new SqliteDriver(path.join(o.dataDir, 'portal.db')));
}
