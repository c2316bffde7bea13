#!/usr/bin/env bash
# Regenerates the pinned contract from the code and the dashboard's types from it:
#   docs/openapi.json, docs/websocket.{client,server}.schema.json  (shared/tests/api_contract.rs writes them)
#   dashboard/src/generated/api.ts                                  (openapi-typescript, from docs/openapi.json)
# Run it after changing a route, a response type or a WebSocket message; commit what it changes.
set -euo pipefail
cd "$(dirname "$0")/.."
FLOWSCOPE_UPDATE_CONTRACT=1 cargo test -q -p flowscope-core --test api_contract
cargo test -q -p flowscope-core --test api_contract
cd dashboard
[ -d node_modules ] || npm ci
npm run generate:types
echo "contract regenerated: docs/openapi.json, docs/websocket.*.schema.json, dashboard/src/generated/api.ts"
