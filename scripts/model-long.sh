#!/usr/bin/env bash
# The model-based test of the device's rules (test/agent-model.test.ts) with many more random
# sequences than npm test runs: bash scripts/model-long.sh [RUNS] (default 20000).
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-20000}"
npx tsc -p tsconfig.json
MESH_MODEL_RUNS="$runs" npx ava --timeout=24h dist/test/agent-model.test.js
