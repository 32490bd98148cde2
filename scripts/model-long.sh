#!/usr/bin/env bash
# The long run of the model-based test of the device's rules (issue 19; test/agent-model.test.ts
# runs the short version in npm test): bash scripts/model-long.sh [RUNS] [more options of
# dist/scripts/model-long.js: --workers N --seed N --log FILE --chunk N]. Default 1,000,000
# sequences on 2 workers; progress (count, violations, rate) goes to model-long.log every chunk
# of 10,000 sequences. Figures: docs/reliability.md, "Model-based test of the device's rules".
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-1000000}"
shift || true
node_modules/.bin/tsc -p tsconfig.json
exec node dist/scripts/model-long.js --runs "$runs" "$@"
