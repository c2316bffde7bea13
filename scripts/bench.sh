#!/usr/bin/env bash
# Issue 11's benchmark table in one command: prints a markdown table of every row it can measure
# here, with the raw floors (prost decode alone, DDSketch insert alone) as ratios and VictoriaMetrics
# (Debian's `victoria-metrics`) side by side. Prints numbers; asserts nothing. Bounded in time
# (~6 minutes with the defaults).
#   scripts/bench.sh                      # everything
#   BENCH_ONLY="core rss10k" scripts/bench.sh
#   BENCH_ONLY=abuse scripts/bench.sh     # opt-in (10 minutes): 100k new series per minute
# Knobs (env): BENCH_E2E_RATE (points/s offered, default 500000), BENCH_E2E_SECONDS (20),
# BENCH_RSS_SECONDS (60: how long the 10k series are sent at 1 point/s), BENCH_100K_SECONDS (30),
# BENCH_WS_CLIENTS (10000), BENCH_WS_SECONDS (10: how long the clients' lag is measured),
# BENCH_ABUSE_MINUTES (10: how long 100k new series per minute are sent),
# FLOWSCOPE_BIN (a prebuilt `flowscope`; default: build the release binary).
set -euo pipefail
cd "$(dirname "$0")/.."
ONLY="${BENCH_ONLY:-core spans e2e ws rss10k rss100k}"
E2E_RATE="${BENCH_E2E_RATE:-500000}"
E2E_SECONDS="${BENCH_E2E_SECONDS:-20}"
RSS_SECONDS="${BENCH_RSS_SECONDS:-60}"
BIG_SECONDS="${BENCH_100K_SECONDS:-30}"
WS_CLIENTS="${BENCH_WS_CLIENTS:-10000}"
WS_SECONDS="${BENCH_WS_SECONDS:-10}"
ABUSE_MINUTES="${BENCH_ABUSE_MINUTES:-10}"
want() { [[ " $ONLY " == *" $1 "* ]]; }

if [ -z "${FLOWSCOPE_BIN:-}" ]; then
  cargo build --release --quiet -p flowscope-cli
  TARGET="${CARGO_TARGET_DIR:-target}"
  FLOWSCOPE_BIN="$TARGET/release/flowscope"
fi
BIN="$FLOWSCOPE_BIN"
WORK="$(mktemp -d)"
ROWS="$WORK/rows.md"
: >"$ROWS"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]:-}"; do [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; done
  rm -rf "$WORK"
}
trap cleanup EXIT
row() { printf '| %s | %s |\n' "$1" "$2" | tee -a "$ROWS" >&2; }

free_ports() {
  python3 -c 'import socket,sys
s=[socket.socket() for _ in range(int(sys.argv[1]))]
[x.bind(("127.0.0.1",0)) for x in s]
print(*[x.getsockname()[1] for x in s])' "$1"
}
# kB of a process: rss_kb PID VmRSS|VmHWM
rss_kb() { awk -v k="$2:" '$1==k {print $2}' "/proc/$1/status"; }
# utime + stime of a process, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
CLK_TCK=$(getconf CLK_TCK)
mb() { python3 -c "print(f'{int(\"$1\")/1024:.0f} MB')"; }

# Starts `flowscope local` on a fresh data dir; sets LOCAL_PID, OTLP, API.
start_local() {
  local dir="$WORK/local-$1"; shift
  mkdir -p "$dir"
  read -r op hp < <(free_ports 2)
  "$BIN" local --otlp-addr "127.0.0.1:$op" --http-addr "127.0.0.1:$hp" --data-dir "$dir" \
    --dashboard-dir /nonexistent "$@" >"$dir.log" 2>&1 &
  LOCAL_PID=$!
  PIDS+=("$LOCAL_PID")
  OTLP="http://127.0.0.1:$op"
  API="http://127.0.0.1:$hp"
  for _ in $(seq 1 100); do curl -fs "$API/healthz" >/dev/null && return 0; sleep 0.1; done
  echo "flowscope local did not start: $(tail -5 "$dir.log")" >&2
  return 1
}
stop_pid() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
stats() { curl -fs "$API/api/pipeline"; }
consumed_points() {
  stats | python3 -c 'import json,sys; d=json.load(sys.stdin)["aggregator"]; print(sum(d[k] for k in ("points_applied","points_noop","points_duplicate","points_expired")))'
}
accepted_points() { stats | python3 -c 'import json,sys; print(json.load(sys.stdin)["ingest"]["accepted_data_points"])'; }
# Waits (bounded) until the aggregator has consumed every accepted point; prints the seconds waited.
wait_caught_up() {
  local accepted started now
  accepted=$(accepted_points)
  started=$(date +%s.%N)
  for _ in $(seq 1 "${1:-600}"); do
    [ "$(consumed_points)" -ge "$accepted" ] && break
    sleep 0.1
  done
  now=$(date +%s.%N)
  python3 -c "print(f'{$now-$started:.1f}')"
}
# Extra flags that raise the series limits, when this build has them.
LIMIT_FLAGS=()
for flag in --max-series-per-service --max-series-per-metric; do
  if "$BIN" local --help | grep -q -- "$flag"; then LIMIT_FLAGS+=("$flag" 1000000); fi
done

echo "| measure | result |" >&2
echo "|---|---|" >&2

if want core; then
  out=$(cargo bench --quiet -p flowscope-core --bench aggregate 2>/dev/null)
  echo "$out" >"$WORK/core.txt"
  get() { awk -F': *' -v k="$1" '$1==k {print $2}' "$WORK/core.txt"; }
  row "core path, OTLP protobuf → aggregated buckets (decode + normalize + cumulative→delta + 1m/5m/1h), one core" \
    "$(get 'core path') ($(get 'core path vs prost decode') of prost decode alone at $(get 'prost decode alone'); $(get 'core path vs sketch insert') of DDSketch insert alone at $(get 'sketch insert alone'))"
fi

if want spans; then
  out=$(cargo bench --quiet -p flowscope-core --bench spans 2>/dev/null | grep -i 'spans/s' | head -5 | tr '\n' ';')
  row "span processor (decode + RED + graph + sampling + store), one core" "${out:-see cargo bench --bench spans}"
fi

if want e2e; then
  start_local e2e "${LIMIT_FLAGS[@]}"
  cpu0=$(cpu_ticks "$LOCAL_PID")
  started=$(date +%s.%N)
  "$BIN" loadgen --endpoint "$OTLP" --rate "$E2E_RATE" --duration "${E2E_SECONDS}s" --gzip \
    --traces-per-second 0 >"$WORK/e2e-loadgen.txt" 2>&1 || true
  sent=$(date +%s.%N)
  accepted=$(accepted_points)
  consumed_at_stop=$(consumed_points)
  lag=$(wait_caught_up 600)
  consumed=$(consumed_points)
  done_at=$(date +%s.%N)
  cpu1=$(cpu_ticks "$LOCAL_PID")
  # Points the receiver answered 429/503 (backpressure), from the loadgen's summary.
  refused=$(awk '$1=="points" && $2=="refused" {print $3}' "$WORK/e2e-loadgen.txt")
  row "local mode end to end, loadgen protobuf+gzip at ${E2E_RATE} points/s offered for ${E2E_SECONDS}s, 2 cores" \
    "$(python3 -c "print(f'{$accepted/($sent-$started):.0f} points/s accepted, {$consumed_at_stop/($sent-$started):.0f} points/s aggregated while sending, {$consumed/($done_at-$started):.0f} points/s aggregated to the end; lag $lag s after the sender stopped; {${refused:-0}/($sent-$started):.0f} points/s refused with 503 (backpressure); {($cpu1-$cpu0)/$CLK_TCK/max($consumed,1)*1e6:.1f} µs local CPU per point')"); peak RSS $(mb "$(rss_kb "$LOCAL_PID" VmHWM)"); load $(cut -d' ' -f1 /proc/loadavg)"
  stop_pid "$LOCAL_PID"
fi

if want rss10k; then
  start_local rss10k "${LIMIT_FLAGS[@]}"
  VM_ARGS=()
  if command -v victoria-metrics >/dev/null; then
    read -r vp < <(free_ports 1)
    victoria-metrics -storageDataPath="$WORK/vm" -httpListenAddr="127.0.0.1:$vp" -retentionPeriod=1d \
      -loggerLevel=ERROR >"$WORK/vm.log" 2>&1 &
    VM_PID=$!
    PIDS+=("$VM_PID")
    for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$vp/health" >/dev/null && break; sleep 0.1; done
    VM_ARGS=(--prometheus-import "http://127.0.0.1:$vp")
  fi
  "$BIN" loadgen --endpoint "$OTLP" --gauge-series 10000 --duration "${RSS_SECONDS}s" --gzip --quiet "${VM_ARGS[@]}"
  lag=$(wait_caught_up 600)
  fs=$(rss_kb "$LOCAL_PID" VmRSS)
  fs_peak=$(rss_kb "$LOCAL_PID" VmHWM)
  result="Flowscope $(mb "$fs") (peak $(mb "$fs_peak"), $(python3 -c "print(f'{$fs/10000:.1f}')") KB per series; lag $lag s)"
  if [ -n "${VM_PID:-}" ]; then
    vm=$(rss_kb "$VM_PID" VmRSS)
    vm_series=$(curl -fs "http://127.0.0.1:$vp/api/v1/series/count" | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"][0])' || echo '?')
    result="$result; VictoriaMetrics $(mb "$vm") ($vm_series series); Flowscope/VictoriaMetrics = $(python3 -c "print(f'{$fs/$vm:.2f}')")×"
    stop_pid "$VM_PID"
  else
    result="$result; VictoriaMetrics: not installed (apt-get install victoria-metrics)"
  fi
  row "local mode RSS with 10k active gauge series at 1 point/s each for ${RSS_SECONDS}s (same data to both)" "$result"
  stop_pid "$LOCAL_PID"
fi

if want rss100k; then
  start_local rss100k "${LIMIT_FLAGS[@]}"
  "$BIN" loadgen --endpoint "$OTLP" --gauge-series 100000 --interval 10s --duration "${BIG_SECONDS}s" --gzip --quiet
  lag=$(wait_caught_up 600)
  loaded=$(rss_kb "$LOCAL_PID" VmRSS)
  peak=$(rss_kb "$LOCAL_PID" VmHWM)
  sleep 10 # idle: what is kept after the load stops
  idle=$(rss_kb "$LOCAL_PID" VmRSS)
  limits="${LIMIT_FLAGS[*]:-default series limits}"
  row "local mode RSS with 100k active series (one point per series every 10 s for ${BIG_SECONDS}s; $limits)" \
    "$(mb "$loaded") after the load (peak $(mb "$peak")), $(mb "$idle") after 10 s idle; lag $lag s"
  stop_pid "$LOCAL_PID"
fi

if want ws; then
  # 10,000 clients need as many sockets on each side.
  ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
  cargo bench --quiet -p flowscope-cli --bench ws --no-run 2>/dev/null
  ws_bench() { cargo bench --quiet -p flowscope-cli --bench ws -- "$@" 2>/dev/null; }
  start_local ws "${LIMIT_FLAGS[@]}" --max-connections $((WS_CLIENTS + 100))
  ws_bench latency "${OTLP#http://}" "${API#http://}" 60 >"$WORK/ws-latency.txt"
  WS_BENCH_SERVER_PID="$LOCAL_PID" ws_bench clients "${OTLP#http://}" "${API#http://}" "$WS_CLIENTS" "$WS_SECONDS" >"$WORK/ws-clients.txt"
  wsget() { awk -F': ' -v k="$1" '$1==k {print $2}' "$2"; }
  row "OTLP accepted → WebSocket frame at a subscribed client, excluding the ≤ 1 s batch window (accepted → visible in the API + flush → frame)" \
    "$(wsget 'accepted to frame excluding the batch window' "$WORK/ws-latency.txt"); parts: visible in the API $(wsget 'accepted to visible in the query API' "$WORK/ws-latency.txt"), flush → frame $(wsget 'flush to frame at the client' "$WORK/ws-latency.txt"); with the window $(wsget 'accepted to frame including the batch window' "$WORK/ws-latency.txt")"
  row "$WS_CLIENTS WebSocket clients, 1 update/s each, delivery lag (flush → frame at each client)" \
    "$(wsget 'flush to frame at each client' "$WORK/ws-clients.txt"); $(wsget clients "$WORK/ws-clients.txt"); server CPU while measured $(wsget 'server CPU while measured' "$WORK/ws-clients.txt"); peak RSS $(mb "$(rss_kb "$LOCAL_PID" VmHWM)")"
  stop_pid "$LOCAL_PID"
fi

# Issue 11 item 4, opt-in: 100k series never seen before every minute (10k every 6 s), limits raised;
# RSS sampled every minute, then after the aggregator caught up and after 30 s idle.
if want abuse; then
  start_local abuse "${LIMIT_FLAGS[@]}"
  "$BIN" loadgen --endpoint "$OTLP" --gauge-series 10000 --interval 6s --new-series-each-interval \
    --duration "$((ABUSE_MINUTES * 60))s" --gzip --quiet &
  LOADGEN_PID=$!
  PIDS+=("$LOADGEN_PID")
  samples=""
  for minute in $(seq 1 "$ABUSE_MINUTES"); do
    sleep 60
    samples="$samples ${minute}m $(mb "$(rss_kb "$LOCAL_PID" VmRSS)"),"
  done
  wait "$LOADGEN_PID" || true
  lag=$(wait_caught_up 600)
  loaded=$(rss_kb "$LOCAL_PID" VmRSS)
  sleep 30 # idle: what is kept after the load stops
  idle=$(rss_kb "$LOCAL_PID" VmRSS)
  row "local mode RSS under 100k new series per minute for ${ABUSE_MINUTES} min (${LIMIT_FLAGS[*]:-default series limits}; target ≤ 300 MB)" \
    "every minute:$samples peak $(mb "$(rss_kb "$LOCAL_PID" VmHWM)"); $(mb "$loaded") when caught up (lag $lag s), $(mb "$idle") after 30 s idle; $(accepted_points) points accepted"
  stop_pid "$LOCAL_PID"
fi

row "Lambda aggregator: DynamoDB writes and Kinesis bytes per 1M points" "needs emulators: see tests/e2e/aws_cost_bench.rs"

echo
echo "| measure | result |"
echo "|---|---|"
cat "$ROWS"
