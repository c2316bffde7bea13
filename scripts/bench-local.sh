#!/usr/bin/env bash
# End-to-end benchmark of local mode: the load generator sends OTLP protobuf (gzip) at a fixed rate;
# prints ingest points/s, end-to-end points/s (until the aggregator has applied everything the
# receiver accepted), and the local process's peak RSS. Prints numbers; asserts nothing.
#   scripts/bench-local.sh [rate points/s, default 20000] [seconds, default 20]
set -euo pipefail
cd "$(dirname "$0")/.."
RATE="${1:-20000}"
SECONDS_TO_RUN="${2:-20}"

cargo build --release --quiet -p flowscope-cli
BIN=target/release/flowscope
DATA="$(mktemp -d)"
read -r OTLP_PORT HTTP_PORT < <(python3 -c 'import socket
s=[socket.socket() for _ in range(2)]
[x.bind(("127.0.0.1",0)) for x in s]
print(*[x.getsockname()[1] for x in s])')
"$BIN" local --otlp-addr "127.0.0.1:$OTLP_PORT" --http-addr "127.0.0.1:$HTTP_PORT" --data-dir "$DATA" \
  --dashboard-dir /nonexistent >"$DATA/local.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$DATA"' EXIT
for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:$HTTP_PORT/healthz" >/dev/null && break
  sleep 0.1
done

stats() { curl -fs "http://127.0.0.1:$HTTP_PORT/api/pipeline"; }
field() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

start=$(date +%s.%N)
"$BIN" loadgen --endpoint "http://127.0.0.1:$OTLP_PORT" --rate "$RATE" --duration "${SECONDS_TO_RUN}s" \
  --gzip --traces-per-second 0 --quiet
sent_done=$(date +%s.%N)
accepted=$(stats | field 'd["ingest"]["accepted_data_points"]')
# Wait (bounded) until the aggregator has consumed every accepted point.
for _ in $(seq 1 600); do
  consumed=$(stats | field 'sum(d["aggregator"][k] for k in ("points_applied","points_noop","points_duplicate","points_expired"))')
  [ "$consumed" -ge "$accepted" ] && break
  sleep 0.1
done
done_at=$(date +%s.%N)
python3 - "$start" "$sent_done" "$done_at" "$accepted" "$consumed" "$PID" "$RATE" <<'PY'
import sys
start, sent, done, accepted, consumed, pid, rate = sys.argv[1:]
start, sent, done = float(start), float(sent), float(done)
accepted, consumed = int(accepted), int(consumed)
status = dict(l.split(":", 1) for l in open(f"/proc/{pid}/status") if ":" in l)
print(f"offered rate:             {int(rate)} points/s (loadgen, protobuf+gzip)")
print(f"ingest:                   {accepted / (sent - start):.0f} points/s accepted ({accepted} points)")
print(f"end to end:               {consumed / (done - start):.0f} points/s aggregated; caught up {done - sent:.2f} s after the last request")
print(f"local mode RSS:           peak {status['VmHWM'].strip()}, now {status['VmRSS'].strip()}")
PY
