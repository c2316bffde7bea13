#!/usr/bin/env bash
# Creates (or reuses) ONE Python venv holding every deploy-time tool Flowscope needs:
#   aws-sam-cli  (sam validate / build / deploy)
#   cfn-lint     (template linting, also used by `sam validate --lint`)
#   cargo-lambda (SAM's rust-cargolambda build method shells out to it)
#   ziglang      (cargo-lambda cross-links arm64 with zig; it finds it via `python3 -m ziglang`,
#                 which only works if zig lives in the same interpreter as cargo-lambda)
#   awscli       (publish-dashboard.sh: cloudformation describe-stacks, s3 sync)
#
# Usage:  scripts/deploy-tools.sh            # install or reuse, print versions
#         source "$(scripts/deploy-tools.sh --print-activate)"   # put the tools on PATH
# Env:    FLOWSCOPE_DEPLOY_VENV  venv location (default: <repo>/.venv-deploy)
#         PYTHON                 interpreter to create the venv with (default: python3)
#
# Idempotent: a stamp file records the pinned requirement set; when it matches and every tool
# answers, nothing is installed and the script finishes in about a second.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${FLOWSCOPE_DEPLOY_VENV:-$REPO_ROOT/.venv-deploy}"
PYTHON="${PYTHON:-python3}"

# Pinned so CI and every developer lint/build with the same tools. Bump deliberately.
REQUIREMENTS=(
  "aws-sam-cli==1.170.0"
  "cfn-lint==1.58.0"
  "cargo-lambda==1.9.2"
  "ziglang==0.15.2"
  "awscli==1.46.3"
)

if [[ "${1:-}" == "--print-activate" ]]; then
  echo "$VENV/bin/activate"
  exit 0
fi

STAMP="$VENV/.flowscope-deploy-tools"
WANTED="$(printf '%s\n' "${REQUIREMENTS[@]}")"

tools_answer() {
  "$VENV/bin/sam" --version >/dev/null 2>&1 &&
    "$VENV/bin/cfn-lint" --version >/dev/null 2>&1 &&
    "$VENV/bin/cargo-lambda" lambda --version >/dev/null 2>&1 &&
    "$VENV/bin/python" -m ziglang version >/dev/null 2>&1 &&
    "$VENV/bin/aws" --version >/dev/null 2>&1
}

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$WANTED" ]] && tools_answer; then
  echo "deploy tools: reusing $VENV"
else
  echo "deploy tools: installing into $VENV"
  if [[ ! -x "$VENV/bin/python" ]]; then
    "$PYTHON" -m venv "$VENV"
  fi
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${REQUIREMENTS[@]}"
  if ! tools_answer; then
    echo "deploy tools: installed, but a tool does not answer --version" >&2
    exit 1
  fi
  printf '%s' "$WANTED" >"$STAMP"
fi

echo "  $("$VENV/bin/sam" --version)"
echo "  cfn-lint $("$VENV/bin/cfn-lint" --version 2>&1 | awk '{print $NF}')"
echo "  $("$VENV/bin/cargo-lambda" lambda --version)"
echo "  zig $("$VENV/bin/python" -m ziglang version)"
echo "  $("$VENV/bin/aws" --version 2>&1)"
