#!/usr/bin/env bash
# Browser tests: headless Debian Chromium (never a downloaded browser) driven by playwright-core
# against `flowscope local` + the load generator, which the test starts and restarts itself.
# Needs chromium (scripts/setup.sh installs it on Debian). Screenshots: build/screenshots/.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x /usr/bin/chromium ] && [ -z "${CHROMIUM_PATH:-}" ]; then
  echo "chromium is missing: run scripts/setup.sh (Debian: apt-get install chromium)" >&2
  exit 1
fi
cargo build --locked --quiet -p flowscope-cli
(cd dashboard && { [ -d node_modules ] || npm ci --no-audit --no-fund --loglevel=error; } && npm run build --silent)
(cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
export FLOWSCOPE_BIN="${FLOWSCOPE_BIN:-$PWD/target/debug/flowscope}"
# Ports of their own, so a developer's running `flowscope local` on 4318/8080 is left alone.
# Both tests run even when the first fails, so one report shows everything.
status=0
node tests/browser/dashboard.mjs || status=$?
node tests/browser/profiles.mjs || status=$?
exit "$status"
