/** Open the configured store: PostgreSQL when a database URL is given, else SQLite in the data directory. */
import * as path from 'node:path';
import { PostgresDriver } from './postgres.js';
import { SqliteDriver } from './sqlite.js';
import { SqlStore } from './sql-store.js';
import type { Storage } from './types.js';

export interface StorageOptions {
  readonly dataDir: string;
  readonly databaseUrl?: string;
  readonly pgSchema?: string;
  readonly onError?: (e: Error) => void;
}

export async function openStorage(o: StorageOptions): Promise<Storage> {
  if (o.databaseUrl !== undefined && o.databaseUrl !== '') {
    const d = await PostgresDriver.open({ url: o.databaseUrl, ...(o.pgSchema !== undefined ? { schema: o.pgSchema } : {}), ...(o.onError !== undefined ? { onError: o.onError } : {}) });
    try {
      return await SqlStore.open(d);
    } catch (e) {
      await d.close().catch(() => undefined);
      throw e;
    }
  }
  const d = new SqliteDriver(path.join(o.dataDir, 'portal.db'));
  try {
    return await SqlStore.open(d);
  } catch (e) {
    await d.close().catch(() => undefined);
    throw e;
  }
}
