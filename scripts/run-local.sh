#!/usr/bin/env bash
# Runs Flowscope locally: builds the dashboard (when needed) and starts `flowscope local`
# (OTLP/HTTP on 127.0.0.1:4318, dashboard + API + WebSocket on http://127.0.0.1:8080).
# Extra arguments go to `flowscope local` (see `flowscope local --help`).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null; then
  echo "cargo not found: install Rust from your package manager or rustup first" >&2
  exit 1
fi

if command -v npm >/dev/null; then
  if [ ! -f dashboard/dist/index.html ] || [ -n "$(find dashboard/src dashboard/index.html dashboard/package.json -newer dashboard/dist/index.html 2>/dev/null | head -n 1)" ]; then
    echo "building the dashboard…" >&2
    (cd dashboard && npm ci --no-audit --no-fund --loglevel=error && npm run build --silent)
  fi
else
  echo "npm not found: the dashboard will not be built (the API and OTLP port still work)" >&2
fi

exec cargo run --release --quiet -p flowscope-cli -- local "$@"
