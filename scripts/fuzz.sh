#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ (issue 16 item 5) for a bounded time each and prints a
# summary: executions and crashes per target, and the total.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default 60 s, every target)
#
# Needs a nightly toolchain and cargo-fuzz (`rustup toolchain install nightly`,
# `cargo install cargo-fuzz`); fails with that message when either is missing. Seeds are in
# fuzz/seeds/<target>/ (committed); the growing corpus and any crash inputs go under
# $CARGO_TARGET_DIR (default target/) in fuzz-corpus/ and fuzz-artifacts/. A crash input becomes a
# regression test next to the decoder (see fuzz/README.md). Exit status 1 if any target crashed.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
seconds="${1:-${FUZZ_SECONDS:-60}}"
shift || true
target_dir="${CARGO_TARGET_DIR:-$root/target}"
fuzz_target_dir="$target_dir/fuzz"

command -v cargo-fuzz >/dev/null || { echo "cargo-fuzz is missing: cargo install cargo-fuzz" >&2; exit 2; }
rustup toolchain list | grep -q '^nightly' || { echo "a nightly toolchain is missing: rustup toolchain install nightly" >&2; exit 2; }

cd "$root/fuzz"
cargo +nightly fuzz build -O --target-dir "$fuzz_target_dir"
if [ $# -gt 0 ]; then targets=("$@"); else mapfile -t targets < <(cargo +nightly fuzz list); fi

total=0
crashed=0
summary=""
for t in "${targets[@]}"; do
  corpus="$target_dir/fuzz-corpus/$t"
  artifacts="$target_dir/fuzz-artifacts/$t/"
  mkdir -p "$corpus" "$artifacts"
  seeds=()
  [ -d "$root/fuzz/seeds/$t" ] && seeds=("$root/fuzz/seeds/$t")
  log="$target_dir/fuzz-$t.log"
  status=0
  cargo +nightly fuzz run -O --target-dir "$fuzz_target_dir" "$t" "$corpus" "${seeds[@]}" -- \
    -max_total_time="$seconds" -print_final_stats=1 -rss_limit_mb=2048 -max_len=65536 \
    -timeout=10 -artifact_prefix="$artifacts" >"$log" 2>&1 || status=$?
  runs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || echo 0)
  crashes=$(find "$artifacts" -type f | wc -l)
  total=$((total + runs))
  if [ "$status" -ne 0 ] || [ "$crashes" -gt 0 ]; then
    crashed=$((crashed + 1))
    summary+=$(printf '%-22s %12s executions  CRASH (exit %s; inputs in %s; log %s)' "$t" "$runs" "$status" "$artifacts" "$log")$'\n'
  else
    summary+=$(printf '%-22s %12s executions  0 crashes' "$t" "$runs")$'\n'
  fi
done
printf '\nfuzz summary (%s s per target)\n%s' "$seconds" "$summary"
printf 'total                  %12s executions, %s target(s) crashed\n' "$total" "$crashed"
[ "$crashed" -eq 0 ]
