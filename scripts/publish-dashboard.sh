#!/usr/bin/env bash
# Builds the dashboard and publishes it to the stack's dashboard bucket (served by CloudFront).
#
# Usage: scripts/publish-dashboard.sh <stack> [options]
#   --outputs-json FILE   read the stack outputs from FILE instead of CloudFormation: either the
#                         `aws cloudformation describe-stacks` answer or its Stacks[0].Outputs list
#   --dashboard-dir DIR   the dashboard project (default: <repo>/dashboard)
#   --skip-build          publish DIR/dist as it is (no npm ci / npm run build)
#   --region REGION       AWS region (default: AWS_REGION / AWS_DEFAULT_REGION / the CLI's config)
#
# config.json carries endpoints and mode only, never a key: everything in the bucket is public
# through CloudFront. The page asks for the API key (or takes it from a `#token=…` link) and keeps
# it in sessionStorage. `--token` is refused.
#
# Uses the AWS CLI (from the deploy venv if present). AWS_ENDPOINT_URL (or AWS_ENDPOINT_URL_S3) points
# it at an S3 emulator; path-style addressing is then used, as emulators need.
#
# Caching: content-hashed files under assets/ are immutable for a year; everything else
# (index.html, config.json) is `no-cache`, which CloudFront's CachingOptimized policy keeps for its
# 1 s minimum, so a publish is live within a second without an invalidation.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

usage() {
  sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

STACK=""
OUTPUTS_JSON=""
DASHBOARD_DIR="$REPO_ROOT/dashboard"
SKIP_BUILD=0
REGION_ARGS=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --outputs-json) OUTPUTS_JSON="${2:?--outputs-json needs a file}"; shift 2 ;;
    --dashboard-dir) DASHBOARD_DIR="${2:?--dashboard-dir needs a directory}"; shift 2 ;;
    --skip-build) SKIP_BUILD=1; shift ;;
    --token)
      echo "publish-dashboard: --token is no longer supported: config.json is public, so it never carries a key;" \
        "the dashboard asks for it (or open it with #token=<key>)" >&2
      exit 2 ;;
    --region) REGION_ARGS=(--region "${2:?--region needs a value}"); shift 2 ;;
    -h | --help) usage ;;
    -*) echo "publish-dashboard: unknown option $1" >&2; usage ;;
    *)
      [[ -z "$STACK" ]] || { echo "publish-dashboard: one stack name only" >&2; usage; }
      STACK="$1"; shift ;;
  esac
done
[[ -n "$STACK" || -n "$OUTPUTS_JSON" ]] || usage

# The AWS CLI: the deploy venv's, else one on PATH, else install the deploy tools.
if [[ -x "$REPO_ROOT/.venv-deploy/bin/aws" ]]; then
  AWS="$REPO_ROOT/.venv-deploy/bin/aws"
elif command -v aws >/dev/null; then
  AWS="$(command -v aws)"
else
  "$REPO_ROOT/scripts/deploy-tools.sh" >/dev/null
  AWS="$REPO_ROOT/.venv-deploy/bin/aws"
fi

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

# Emulators serve buckets by path, not by virtual host name.
if [[ -n "${AWS_ENDPOINT_URL:-}${AWS_ENDPOINT_URL_S3:-}" ]]; then
  printf '[default]\ns3 =\n    addressing_style = path\n' >"$scratch/aws-config"
  if [[ -n "${AWS_PROFILE:-}" ]]; then
    printf '[profile %s]\ns3 =\n    addressing_style = path\n' "$AWS_PROFILE" >>"$scratch/aws-config"
  fi
  export AWS_CONFIG_FILE="$scratch/aws-config"
fi

# 1. Stack outputs.
if [[ -n "$OUTPUTS_JSON" ]]; then
  [[ -f "$OUTPUTS_JSON" ]] || { echo "publish-dashboard: no such file $OUTPUTS_JSON" >&2; exit 1; }
  cp "$OUTPUTS_JSON" "$scratch/outputs.json"
else
  "$AWS" "${REGION_ARGS[@]}" cloudformation describe-stacks --stack-name "$STACK" \
    --query 'Stacks[0].Outputs' --output json >"$scratch/outputs.json"
fi

# Prints BUCKET, API and WS lines, or fails naming what is missing.
read_outputs() {
  python3 - "$1" <<'PY'
import json, sys

with open(sys.argv[1]) as f:
    doc = json.load(f)
if isinstance(doc, dict) and "Stacks" in doc:
    doc = (doc["Stacks"] or [{}])[0].get("Outputs", [])
if not isinstance(doc, list):
    sys.exit("publish-dashboard: outputs must be a list of {OutputKey, OutputValue}")
outputs = {o.get("OutputKey"): o.get("OutputValue") for o in doc if isinstance(o, dict)}
missing = [k for k in ("DashboardBucketName", "HttpApiUrl", "WebSocketUrl") if not outputs.get(k)]
if missing:
    sys.exit("publish-dashboard: stack outputs lack " + ", ".join(missing))
print(outputs["DashboardBucketName"])
print(outputs["HttpApiUrl"].rstrip("/"))
print(outputs["WebSocketUrl"])
PY
}
outputs_text="$(read_outputs "$scratch/outputs.json")" || exit 1
{
  read -r BUCKET
  read -r API_BASE_URL
  read -r WS_URL
} <<<"$outputs_text"

# 2. Build.
if [[ "$SKIP_BUILD" == 0 ]]; then
  [[ -f "$DASHBOARD_DIR/package.json" ]] || {
    echo "publish-dashboard: $DASHBOARD_DIR has no package.json" >&2
    exit 1
  }
  (cd "$DASHBOARD_DIR" && npm ci --no-audit --no-fund && npm run build)
fi
DIST="$DASHBOARD_DIR/dist"
[[ -f "$DIST/index.html" ]] || { echo "publish-dashboard: $DIST/index.html missing (build first)" >&2; exit 1; }

# 3. config.json: where the page finds the APIs (see dashboard's config contract).
# Public: endpoints and mode only. `auth: key` tells the page to ask for the API key first.
python3 - "$DIST/config.json" "$API_BASE_URL" "$WS_URL" <<'PY'
import json, sys

path, api, ws = sys.argv[1:4]
with open(path, "w") as f:
    json.dump({"apiBaseUrl": api, "wsUrl": ws, "mode": "aws", "auth": "key"}, f, indent=2)
    f.write("\n")
PY

# 4. Upload: hashed assets first, so a fresh index.html never points at files not yet there.
if [[ -d "$DIST/assets" ]]; then
  "$AWS" "${REGION_ARGS[@]}" s3 sync "$DIST/assets" "s3://$BUCKET/assets" --delete --only-show-errors \
    --cache-control "public, max-age=31536000, immutable"
fi
"$AWS" "${REGION_ARGS[@]}" s3 sync "$DIST" "s3://$BUCKET" --delete --only-show-errors \
  --exclude "assets/*" --cache-control "no-cache"

echo "publish-dashboard: published $DIST to s3://$BUCKET (api $API_BASE_URL, ws $WS_URL)"
