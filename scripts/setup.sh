#!/usr/bin/env bash
# Installs the system packages the tests need that a fresh machine may lack (Debian: chromium for
# the browser tests, ca-certificates for https alert sinks, which use the OS root certificates). Toolchains (cargo, node/npm, java, python3) are checked, not installed.
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

packages=()
command -v chromium >/dev/null || packages+=(chromium)
[ -s /etc/ssl/certs/ca-certificates.crt ] || [ -s /etc/pki/tls/certs/ca-bundle.crt ] || packages+=(ca-certificates)
# Exporters the scrape tests read (cli/tests/local_scrape.rs): Debian's node exporter and the Python
# Prometheus client for the system python3.
[ -x /usr/bin/prometheus-node-exporter ] || packages+=(prometheus-node-exporter)
/usr/bin/python3 -c 'import prometheus_client' 2>/dev/null || packages+=(python3-prometheus-client)
# promtool: local mode through the Prometheus read API (cli/tests/local_promql.rs) and `promtool check metrics`
# on GET /metrics (cli/tests/local_own_metrics.rs).
command -v promtool >/dev/null || packages+=(prometheus)
if [ ${#packages[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing ${packages[*]} (Debian packages)…"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >/dev/null
  else
    echo "missing packages: ${packages[*]} (e.g. sudo apt-get install ${packages[*]})" >&2
    exit 1
  fi
fi
echo "toolchains: $(cargo --version | cut -d' ' -f1-2), node $(node --version), $(java -version 2>&1 | head -n1), $(python3 --version)"
echo "chromium: $(chromium --version 2>/dev/null || echo missing)"
