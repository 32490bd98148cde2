#!/bin/sh
# Power loss, the long run: hundreds of kill -9.
#   1. the writer fixture of test/powerloss.test.ts (conf + the agent's atomic state writes in a
#      tight loop), POWERLOSS_KILLS times (default 500);
#   2. scripts/crash-long.js: the REAL agent process killed while applying a stream of
#      configurations, `mesh config set` killed at random points, the portal killed under
#      publish load on SQLite and PostgreSQL (CRASH_LONG_AGENT / CRASH_LONG_CLI / CRASH_LONG_PORTAL).
# usage: scripts/powerloss-long.sh [--out DIR]   (DIR gets writer.txt, crash-long.json, crash-long.txt)
set -eu
cd "$(dirname "$0")/.."
OUT=""
if [ "${1:-}" = "--out" ]; then OUT="$2"; mkdir -p "$OUT"; fi
npx tsc -p . || echo "powerloss-long: tsc reported errors; running what was built" >&2
KILLS="${POWERLOSS_KILLS:-500}"
echo "== 1. the writer fixture, $KILLS kills ($(date -u +%FT%TZ), $(nproc) cores)"
start=$(date +%s)
if [ -n "$OUT" ]; then
  POWERLOSS_KILLS="$KILLS" npx ava dist/test/powerloss.test.js --timeout 60m --verbose | tee "$OUT/writer.txt"
else
  POWERLOSS_KILLS="$KILLS" npx ava dist/test/powerloss.test.js --timeout 60m --verbose
fi
echo "   $(($(date +%s) - start)) s"
echo "== 2. the real processes (scripts/crash-long.js)"
if [ -n "$OUT" ]; then
  node dist/scripts/crash-long.js --out "$OUT/crash-long.json" | tee "$OUT/crash-long.txt"
else
  node dist/scripts/crash-long.js
fi
