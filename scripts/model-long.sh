#!/usr/bin/env bash
# The long run of the model-based test of the device's rules (issue 19; test/agent-model.test.ts
# runs the short version in npm test): bash scripts/model-long.sh [RUNS] [more options of
# dist/scripts/model-long.js: --workers N --seed N --log FILE --chunk N]. Default 1,000,000
# sequences on 2 workers; progress (count, violations, rate) goes to model-long.log every chunk
# of 10,000 sequences. Figures: docs/reliability.md, section 8 "Model-based test of the device's
# rules". Measured 2026-12-02 (built from 4797d3a, 2 vCPU shared, load 4-13): 1,000,000 sequences
# (14,956,547 steps) in 2,750 s on 2 workers, 364 seq/s, 0 violations (seed 708876707); a second
# run alongside it, 500,000 in 1,737 s, 0 violations (seed 1500000000).
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-1000000}"
shift || true
node_modules/.bin/tsc -p tsconfig.json
exec node dist/scripts/model-long.js --runs "$runs" "$@"
