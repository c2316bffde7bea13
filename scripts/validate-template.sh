#!/usr/bin/env bash
# Lints template.yaml the way CI does: `sam validate --lint` (SAM transform + cfn-lint) and a plain
# `cfn-lint template.yaml`. Needs no AWS account: dummy credentials and a region satisfy the SDK,
# and nothing is sent to AWS. Exits non-zero on any error.
#
# Usage: scripts/validate-template.sh [TEMPLATE]   (default: <repo>/template.yaml)
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TEMPLATE="${1:-$REPO_ROOT/template.yaml}"

"$REPO_ROOT/scripts/deploy-tools.sh" >/dev/null
VENV_BIN="$(dirname "$("$REPO_ROOT/scripts/deploy-tools.sh" --print-activate)")"

export AWS_REGION="${AWS_REGION:-us-east-1}"
export AWS_DEFAULT_REGION="$AWS_REGION"
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-validate}"
export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-validate}"
export SAM_CLI_TELEMETRY=0

status=0
echo "== sam validate --lint $TEMPLATE"
"$VENV_BIN/sam" validate --lint --template-file "$TEMPLATE" --region "$AWS_REGION" || status=1
echo "== cfn-lint $TEMPLATE"
# cfn-lint's exit code is a bit set: 1 fatal, 2 errors, 4 warnings, 8 informational only.
# Warnings fail too (the template is kept warning-free); informational notes do not.
lint_rc=0
"$VENV_BIN/cfn-lint" --regions "$AWS_REGION" -- "$TEMPLATE" || lint_rc=$?
if ((lint_rc & 7)); then
  status=1
fi

if [[ "$status" == 0 ]]; then
  echo "template OK"
else
  echo "template has errors" >&2
fi
exit "$status"
