#!/usr/bin/env bash
# The test command (README): formatting, lints, unit + contract tests, AWS emulator integration tests,
# the same suite against LocalStack (host mode), template validation, dashboard unit tests,
# OpenTelemetry SDK interop, browser tests and deploy-script tests. Installs what it needs (apt/pip/npm by
# package name). Needs no Docker and no AWS account.
#
# Every stage runs even when an earlier one failed; the last line counts the stages.
#   FLOWSCOPE_SKIP="browser template"   skip stages by name (space separated)
set -uo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

passed=()
failed=()
skipped=()
skip_list=" ${FLOWSCOPE_SKIP:-} "

stage() {
  local name=$1
  shift
  if [[ "$skip_list" == *" $name "* ]]; then
    echo "=== $name: skipped (FLOWSCOPE_SKIP)"
    skipped+=("$name")
    return
  fi
  echo "=== $name"
  local start=$SECONDS
  if "$@"; then
    passed+=("$name")
    echo "=== $name: passed in $((SECONDS - start))s"
  else
    failed+=("$name")
    echo "=== $name: FAILED after $((SECONDS - start))s"
  fi
}

stage setup bash scripts/setup.sh
# The core's module graph: no import cycle, no dependency pointing up a layer (docs/architecture.md).
stage layers python3 scripts/module-graph.py
stage fmt cargo fmt --all --check
stage clippy bash -c 'cargo clippy --workspace --all-targets --locked -- -D warnings && cargo clippy --workspace --all-targets --locked --features flowscope-cli/emulator-tests,flowscope-core/emulator-tests,flowscope-integration-tests/emulator-tests -- -D warnings'
stage rust-tests cargo test --workspace --locked
stage aws-emulators bash scripts/aws-tests.sh
# The same AWS suite against LocalStack itself (host mode, no Docker), its init hook included.
stage localstack bash scripts/localstack-tests.sh
stage template bash -c 'bash scripts/deploy-tools.sh >/dev/null && bash scripts/validate-template.sh'
stage dashboard bash -c 'cd dashboard && npm ci --no-audit --no-fund --loglevel=error && npm test && npm run build'
stage sdk-interop bash scripts/e2e-local.sh
stage browser bash scripts/browser-tests.sh
stage publish-dashboard bash tests/publish-dashboard.sh
stage localstack-hook bash localstack/test-init-hook.sh

echo
echo "passed stages: ${passed[*]:-none}"
[ ${#skipped[@]} -eq 0 ] || echo "skipped stages: ${skipped[*]}"
[ ${#failed[@]} -eq 0 ] || echo "FAILED stages: ${failed[*]}"
echo "stages: ${#passed[@]} passed, ${#failed[@]} failed"
[ ${#failed[@]} -eq 0 ]
