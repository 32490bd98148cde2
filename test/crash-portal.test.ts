/**
 * The portal process killed with SIGKILL under publish load, then started again on the same data
 * (SQLite data directory; and PostgreSQL in a schema of its own): every publish the portal
 * ACKNOWLEDGED (HTTP 200 with a log receipt) is still there afterwards, as the leaf its receipt
 * names (Log/Entry), in the owner's account (Account) and in the target device's feed (Download);
 * and the tree head after the restart is proven (consistency proof) to extend the last one any
 * client received before the crash. CRASH_PORTAL_KILLS (default 2) crash cycles per store;
 * scripts/powerloss-long.sh runs more (the scenario is in harness/crash-kit.ts).
 */
import test from 'ava';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PostgresDriver } from '../portal/storage/postgres.js';
import { startPortalProcess } from '../harness/portal-process.js';
import { portalKills } from '../harness/crash-kit.js';

const KILLS = Number(process.env.CRASH_PORTAL_KILLS ?? 2);
const PG_URL = process.env.MESH_TEST_PG ?? 'postgres://root@127.0.0.1:5432/test';

test(`SQLite: kill -9 under publish load (${KILLS} times); every acknowledged publish survives; the log stays consistent`, async (t) => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mesh-crash-portal-'));
  try {
    const r = await portalKills(KILLS, () => startPortalProcess({ dataDir, args: ['--no-mqtt'] }), { onKill: (l) => t.log(l) });
    t.is(r.kills, KILLS);
    t.true(r.acknowledged >= KILLS * 4, `enough load: ${r.acknowledged} acknowledged publishes`);
    t.true(r.inFlightAtKill > 0, 'the kills hit publishes in flight');
  } finally {
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
});

test(`PostgreSQL: kill -9 under publish load (${KILLS} times); every acknowledged publish survives; the log stays consistent`, async (t) => {
  const schema = `mesh_crash_${randomBytes(5).toString('hex')}`;
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mesh-crash-portal-pg-'));
  try {
    const r = await portalKills(KILLS, () => startPortalProcess({ dataDir, env: { DATABASE_URL: PG_URL }, args: ['--no-mqtt', '--pg-schema', schema] }), { onKill: (l) => t.log(l) });
    t.is(r.kills, KILLS);
    t.true(r.acknowledged >= KILLS * 4, `enough load: ${r.acknowledged} acknowledged publishes`);
  } finally {
    await PostgresDriver.dropSchema(PG_URL, schema);
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
});
