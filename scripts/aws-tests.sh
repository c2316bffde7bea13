#!/usr/bin/env bash
# AWS-adapter tests against local emulators (DynamoDB Local + kinesis-mock; no Docker, no AWS):
# the shared contract suites against the Kinesis/DynamoDB adapters, and the Lambda pipeline end to
# end (ingest → Kinesis → aggregator → DynamoDB → query, replay, mid-batch failure, WebSocket + 410,
# kept traces as `trace` frames through the live table, subscribe snapshots and resumes from DynamoDB,
# the probe function's health scores into DynamoDB and `health`/`registry` frames through the live table),
# and every sample event in events/ through its function's handler (tests/e2e/sample_events.rs).
# Endpoint-agnostic: with AWS_ENDPOINT_URL already set (LocalStack, say) it uses that instead and starts
# nothing (scripts/localstack-tests.sh does that).
set -euo pipefail
cd "$(dirname "$0")/.."

started=""
if [ -z "${AWS_ENDPOINT_URL:-}${AWS_ENDPOINT_URL_DYNAMODB:-}" ]; then
  bash scripts/emulators.sh start
  started=1
  trap 'bash scripts/emulators.sh stop' EXIT
  # shellcheck disable=SC1090
  source "$(bash scripts/emulators.sh env)"
fi
# The emulator tests build only with the `emulator-tests` feature, and fail without endpoints.
cargo test --locked -p flowscope-core --features emulator-tests --test contract_aws
cargo test --locked -p flowscope-core --features emulator-tests --test registry_aws
cargo test --locked -p flowscope-integration-tests --features emulator-tests
# `flowscope local --aws`: the local event-source mapper, DynamoDB, and fan-out through
# aws-sdk-apigatewaymanagement to the local gateway's @connections.
cargo test --locked -p flowscope-cli --features emulator-tests --test local_aws
[ -z "$started" ] || echo "emulators: DynamoDB Local + kinesis-mock"
