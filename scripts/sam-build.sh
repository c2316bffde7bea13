#!/usr/bin/env bash
# Cross-builds every Lambda function in template.yaml for arm64 (provided.al2023) with SAM's
# rust-cargolambda build method (cargo-lambda + zig, no Docker), then prints each built artifact
# with its size and its zipped size, which is what Lambda's 50 MB / cold-start budget sees.
#
# Usage:  scripts/sam-build.sh [--project-dir DIR] [extra `sam build` args...]
#   --project-dir DIR   directory holding template.yaml and the cargo workspace (default: repo root);
#                       lets the mechanism be proven on a throwaway workspace.
# Slow (a full release build per function, sharing one target dir): not part of CI.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PROJECT_DIR="$REPO_ROOT"
if [[ "${1:-}" == "--project-dir" ]]; then
  PROJECT_DIR="$(cd "$2" && pwd)"
  shift 2
fi

"$REPO_ROOT/scripts/deploy-tools.sh" >/dev/null
# shellcheck disable=SC1090,SC1091
source "$("$REPO_ROOT/scripts/deploy-tools.sh" --print-activate)"

rustup target add aarch64-unknown-linux-gnu

export SAM_CLI_TELEMETRY=0
# rust-cargolambda has been a SAM beta feature; opting in is harmless where it no longer is.
export SAM_CLI_BETA_RUST_CARGO_LAMBDA=1

cd "$PROJECT_DIR"
start=$(date +%s)
sam build --template-file template.yaml --build-dir .aws-sam/build "$@"
echo "sam build took $(($(date +%s) - start)) s"

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

printf '\n%-28s %12s %12s  %s\n' "function" "bootstrap B" "zip B" "binary"
found=0
for bootstrap in .aws-sam/build/*/bootstrap; do
  [[ -f "$bootstrap" ]] || continue
  found=1
  function_dir="$(dirname "$bootstrap")"
  name="$(basename "$function_dir")"
  # Zip exactly as SAM packages it (bootstrap at the archive root) to measure the upload size.
  (cd "$function_dir" && zip -q -9 "$scratch/$name.zip" bootstrap)
  kind="$(file -b "$bootstrap" 2>/dev/null | cut -d, -f1-2 || true)"
  printf '%-28s %12s %12s  %s\n' "$name" "$(stat -c %s "$bootstrap")" \
    "$(stat -c %s "$scratch/$name.zip")" "$kind"
done
if [[ "$found" == 0 ]]; then
  echo "no built function found under $PROJECT_DIR/.aws-sam/build" >&2
  exit 1
fi
