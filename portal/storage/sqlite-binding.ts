/**
 * Where better-sqlite3's native module is, found by Node's own resolution (stat and open).
 * Without it better-sqlite3 asks the `bindings` package, which walks up from its file testing
 * paths with access(2): that judges by the real user id and ignores capabilities, so a portal run
 * as a service user from an install it can read only through them (a root-owned 0700 directory
 * above it, CAP_DAC_READ_SEARCH) could not open its database ("Could not find module root").
 */
import { createRequire } from 'node:module';
import type { Options } from 'better-sqlite3';

let found: string | null | undefined;

export function sqliteOptions(): Options {
  if (found === undefined) {
    try {
      found = createRequire(import.meta.url).resolve('better-sqlite3/build/Release/better_sqlite3.node');
    } catch {
      found = null; // a build elsewhere: better-sqlite3 finds it as it always did
    }
  }
  return found === null ? {} : { nativeBinding: found };
}
