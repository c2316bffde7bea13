#!/usr/bin/env bash
# Installs the system packages the tests need that a fresh machine may lack (Debian: chromium for
# the browser tests). Toolchains (cargo, node/npm, java, python3) are checked, not installed.
# Idempotent; everything else is installed by the stage that needs it (pip venvs, npm ci).
set -euo pipefail

missing=()
for tool in cargo node npm java python3; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "missing tools: ${missing[*]} (install them with your package manager)" >&2
  exit 1
fi

if ! command -v chromium >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing chromium (Debian package) for the browser tests…"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "chromium is missing: install it (e.g. sudo apt-get install chromium) for the browser tests" >&2
    exit 1
  fi
fi
echo "toolchains: $(cargo --version | cut -d' ' -f1-2), node $(node --version), $(java -version 2>&1 | head -n1), $(python3 --version)"
echo "chromium: $(chromium --version 2>/dev/null || echo missing)"
