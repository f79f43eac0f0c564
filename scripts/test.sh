#!/usr/bin/env bash
# The test command (`npm test`): makes sure a Docker engine answers, builds the project and the
# images (layer cache makes a rebuild with nothing changed take seconds), then runs the unit
# and integration tests. Extra arguments go to vitest (e.g. a file filter). The extra engines the
# engine tests make (scripts/test-engines.sh, and the SSH one of scripts/test-ssh-engine.sh) are removed at the end, whatever happened
# (CMW_KEEP_TEST_ENGINES=1 keeps them for the next run).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/ensure-docker.sh
bash scripts/ensure-test-tools.sh
npm run --silent build
bash scripts/build-images.sh

report=$(mktemp)
cleanup() {
  rm -f "$report"
  if [ "${CMW_KEEP_TEST_ENGINES:-0}" != 1 ]; then
    bash scripts/test-ssh-engine.sh down >/dev/null 2>&1 || echo "test.sh: scripts/test-ssh-engine.sh down failed: run it by hand" >&2
    bash scripts/test-engines.sh down >/dev/null 2>&1 || echo "test.sh: scripts/test-engines.sh down failed: run it by hand" >&2
  fi
}
trap cleanup EXIT
status=0
npx vitest run --reporter=default --reporter=json --outputFile.json="$report" "$@" || status=$?
# A plain closing line any CI can read: "N passed, N failed, N skipped".
node -e '
  const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  const skipped = r.numPendingTests + r.numTodoTests;
  console.log(`tests: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${skipped} skipped`);
  if (r.numTotalTests === 0) { console.log("no test ran"); process.exit(1); }
' "$report" || status=1
exit $status
