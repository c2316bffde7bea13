#!/usr/bin/env bash
# End-to-end test of local mode, as a user would run it:
#   1. build `flowscope` (skipped when FLOWSCOPE_BIN points at a binary);
#   2. start `flowscope local` on free 127.0.0.1 ports with a temporary data dir;
#   3. run the unmodified OpenTelemetry SDK verifiers: Python (OTLP/HTTP protobuf) and Node (OTLP/HTTP
#      JSON), which check values and the 2 s visibility promise through the query API and the WebSocket;
#   4. stop and restart `flowscope local` on the same data dir: series and history must survive, unchanged;
#   5. run `flowscope loadgen --duration 5s`: its five services must appear;
#   6. the hostile-neighbour test (cli/tests/local_hostile_neighbour.rs) against the release binary, as
#      users run it: a 100k-series request, 400 slow-header connections and a never-reading subscriber
#      beside a well-behaved client whose points must be visible within 2 s, with RSS under 300 MB.
# One PASS/FAIL line per check; the last line is `N passed, N failed`; exit status 1 if any failed.
#
# Needs: cargo (unless FLOWSCOPE_BIN), curl, python3 with venv, node + npm.
# Python deps go to .venv-sdk/ (git-ignored), Node deps to tests/sdk/node/node_modules/.
# Environment: FLOWSCOPE_BIN (prebuilt binary), E2E_TIMEOUT (seconds after the build, default 180),
# E2E_KEEP=1 (keep the temp dir with data and logs).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
ROOT=$(pwd)

E2E_TIMEOUT=${E2E_TIMEOUT:-180}
VENV="$ROOT/.venv-sdk"
NODE_DIR="$ROOT/tests/sdk/node"
PY_DIR="$ROOT/tests/sdk/python"
LOADGEN_SERVICES=(auth api database cache queue)
STARTED_AT=$SECONDS

PASSED=0
FAILED=0
SERVER_PID=""
WATCHDOG_PID=""
WORK=$(mktemp -d "${TMPDIR:-/tmp}/flowscope-e2e.XXXXXX")
DATA_DIR="$WORK/data"
SERVER_LOG="$WORK/flowscope-local.log"

pass() {
  PASSED=$((PASSED + 1))
  echo "PASS: $*"
}

fail() {
  FAILED=$((FAILED + 1))
  echo "FAIL: $*"
}

# Prints the summary as the very last line and exits; the EXIT trap cleans up.
finish() {
  trap - TERM INT
  if [ "$FAILED" -gt 0 ] && [ -s "$SERVER_LOG" ]; then
    echo "---- last lines of the flowscope local log ($SERVER_LOG) ----"
    tail -n 60 "$SERVER_LOG"
    echo "----"
  fi
  echo "e2e took $((SECONDS - STARTED_AT)) s"
  echo "$PASSED passed, $FAILED failed"
  exit $((FAILED > 0))
}

stop_server() {
  [ -n "$SERVER_PID" ] || return 0
  if kill -0 "$SERVER_PID" 2>/dev/null; then
    # SIGINT is Ctrl-C: `flowscope local` shuts down gracefully on it.
    kill -INT "$SERVER_PID" 2>/dev/null
    for _ in $(seq 1 100); do
      kill -0 "$SERVER_PID" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$SERVER_PID" 2>/dev/null; then
      echo "flowscope local did not stop within 10 s of SIGINT; killing it" >&2
      kill -KILL "$SERVER_PID" 2>/dev/null
    fi
  fi
  wait "$SERVER_PID" 2>/dev/null
  SERVER_PID=""
}

# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
  stop_server
  if [ -n "$WATCHDOG_PID" ]; then
    kill "$WATCHDOG_PID" 2>/dev/null
    wait "$WATCHDOG_PID" 2>/dev/null
  fi
  if [ "${E2E_KEEP:-0}" = 1 ]; then
    echo "kept $WORK" >&2
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT
trap 'fail "interrupted or over the time limit (E2E_TIMEOUT=${E2E_TIMEOUT}s after the build)"; finish' TERM INT

# --- helpers -------------------------------------------------------------------------------------

for tool in curl python3 node npm; do
  command -v "$tool" >/dev/null || { fail "required tool '$tool' is not installed"; finish; }
done

# Two distinct free ports on 127.0.0.1 (bound together, so they differ; released just before use).
free_ports() {
  python3 - <<'EOF'
import socket
sockets = [socket.socket() for _ in range(2)]
for s in sockets:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in sockets))
EOF
}

http_get() { # URL → body on stdout; fails on non-2xx
  curl -sS --fail --max-time 3 "$1"
}

start_server() {
  "$FLOWSCOPE_BIN" local \
    --otlp-addr "127.0.0.1:$OTLP_PORT" \
    --http-addr "127.0.0.1:$HTTP_PORT" \
    --data-dir "$DATA_DIR" \
    --dashboard-dir "$WORK/no-dashboard" \
    >>"$SERVER_LOG" 2>&1 &
  SERVER_PID=$!
  local waited_from=$SECONDS
  for _ in $(seq 1 150); do # 15 s
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      fail "$1: flowscope local exited during start-up"
      SERVER_PID=""
      return 1
    fi
    if curl -sf --max-time 1 "$API/healthz" >/dev/null 2>&1; then
      pass "$1: flowscope local answers /healthz ($((SECONDS - waited_from)) s)"
      return 0
    fi
    sleep 0.1
  done
  fail "$1: flowscope local did not answer /healthz within 15 s"
  return 1
}

# Runs a verifier: its PASS/FAIL lines count toward the totals; a crash without a FAIL line counts too.
run_verifier() {
  local label=$1
  shift
  local out="$WORK/$label.out"
  local started=$SECONDS
  timeout 90 "$@" >"$out" 2>&1
  local status=$?
  cat "$out"
  local passes fails
  passes=$(grep -c '^PASS: ' "$out")
  fails=$(grep -c '^FAIL: ' "$out")
  PASSED=$((PASSED + passes))
  FAILED=$((FAILED + fails))
  if [ "$status" -ne 0 ] && [ "$fails" -eq 0 ]; then
    fail "$label verifier exited with status $status (124 = timed out after 90 s)"
  elif [ "$status" -eq 0 ] && [ "$passes" -eq 0 ]; then
    fail "$label verifier ran no check"
  fi
  echo "$label verifier took $((SECONDS - started)) s"
}

# A stable rendering of what a restart must keep: the service names, and the series count and bucket
# history of every metric of the given services over a fixed range.
persisted_state() {
  local from=$1 to=$2
  shift 2
  python3 - "$API" "$from" "$to" "$@" <<'EOF'
import json, sys, urllib.parse, urllib.request
api, since, until, services = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
def get(path):
    with urllib.request.urlopen(api + path, timeout=3) as r:
        return json.loads(r.read())
# Flowscope's own series (`flowscope.*`: the health score it stores every 10 s, probe results) keep
# changing by design; the check is about what the SDKs sent.
state = {"services": sorted(s["name"] for s in get("/api/services")["services"] if s["name"] in services)}
for service in services:
    q = urllib.parse.quote(service, safe="")
    for metric in get(f"/api/services/{q}/metrics")["metrics"]:
        if metric["name"].startswith("flowscope."):
            continue
        m = urllib.parse.quote(metric["name"], safe="")
        query = urllib.parse.urlencode({"from": since, "to": until, "resolution": "1m"})
        buckets = get(f"/api/services/{q}/metrics/{m}?{query}")["buckets"]
        state[f"{service}/{metric['name']}"] = {"series": len(metric["series"]), "buckets": buckets}
print(json.dumps(state, sort_keys=True))
EOF
}

# --- 1. build --------------------------------------------------------------------------------------

if [ -z "${FLOWSCOPE_BIN:-}" ]; then
  build_started=$SECONDS
  if cargo build -p flowscope-cli >"$WORK/build.log" 2>&1; then
    pass "cargo build -p flowscope-cli ($((SECONDS - build_started)) s)"
    FLOWSCOPE_BIN="$ROOT/target/debug/flowscope"
  else
    tail -n 40 "$WORK/build.log"
    fail "cargo build -p flowscope-cli"
    finish
  fi
fi
if [ ! -x "$FLOWSCOPE_BIN" ]; then
  fail "FLOWSCOPE_BIN=$FLOWSCOPE_BIN is not an executable"
  finish
fi
# The hostile-neighbour test measures what users run: the release build (and its test harness).
build_started=$SECONDS
if cargo build --release --locked -p flowscope-cli >"$WORK/build-release.log" 2>&1 &&
  cargo test --locked -p flowscope-cli --test local_hostile_neighbour --no-run >>"$WORK/build-release.log" 2>&1; then
  pass "cargo build --release -p flowscope-cli and the hostile-neighbour test ($((SECONDS - build_started)) s)"
  RELEASE_BIN="$ROOT/target/release/flowscope"
else
  tail -n 40 "$WORK/build-release.log"
  fail "cargo build --release -p flowscope-cli"
  RELEASE_BIN=""
fi

# Time limit for everything after the build (a cold build on 2 cores alone takes minutes).
MAIN_PID=$$
(
  trap 'kill "$sleeper" 2>/dev/null; exit 0' TERM
  sleep "$E2E_TIMEOUT" &
  sleeper=$!
  wait "$sleeper" && kill -TERM "$MAIN_PID" 2>/dev/null
) &
WATCHDOG_PID=$!

# --- 2. SDK dependencies ---------------------------------------------------------------------------

wanted_requirements=$(sha256sum "$PY_DIR/requirements.txt" | cut -d' ' -f1)
if [ "$(cat "$VENV/.requirements.sha256" 2>/dev/null)" != "$wanted_requirements" ]; then
  echo "installing Python SDK deps into .venv-sdk/ …"
  if { [ -x "$VENV/bin/python" ] || timeout 120 python3 -m venv "$VENV"; } &&
    timeout 240 "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$PY_DIR/requirements.txt" >"$WORK/pip.log" 2>&1; then
    echo "$wanted_requirements" >"$VENV/.requirements.sha256"
  else
    tail -n 20 "$WORK/pip.log" 2>/dev/null
  fi
fi
if [ "$(cat "$VENV/.requirements.sha256" 2>/dev/null)" = "$wanted_requirements" ]; then
  pass "Python SDK deps in .venv-sdk/ match tests/sdk/python/requirements.txt"
  PY_READY=1
else
  fail "installing tests/sdk/python/requirements.txt into .venv-sdk/"
  PY_READY=0
fi

# npm writes node_modules/.package-lock.json; newer than the lock file means `npm ci` already ran.
if [ ! -f "$NODE_DIR/node_modules/.package-lock.json" ] ||
  [ "$NODE_DIR/package-lock.json" -nt "$NODE_DIR/node_modules/.package-lock.json" ]; then
  echo "installing Node SDK deps (npm ci) …"
  (cd "$NODE_DIR" && timeout 240 npm ci --no-audit --no-fund --loglevel=error) >"$WORK/npm.log" 2>&1 ||
    tail -n 20 "$WORK/npm.log"
fi
if [ -f "$NODE_DIR/node_modules/.package-lock.json" ] &&
  ! [ "$NODE_DIR/package-lock.json" -nt "$NODE_DIR/node_modules/.package-lock.json" ]; then
  pass "Node SDK deps installed from tests/sdk/node/package-lock.json"
  NODE_READY=1
else
  fail "npm ci in tests/sdk/node"
  NODE_READY=0
fi

# --- 3. first run: the SDK verifiers ---------------------------------------------------------------

read -r OTLP_PORT HTTP_PORT <<<"$(free_ports)"
OTLP="http://127.0.0.1:$OTLP_PORT"
API="http://127.0.0.1:$HTTP_PORT"
echo "flowscope local: OTLP $OTLP, API $API, data $DATA_DIR, log $SERVER_LOG"
start_server "first start" || finish

RUN_ID=$(date +%s)-$$
PY_SERVICE="sdk-python-$RUN_ID"
NODE_SERVICE="sdk-node-$RUN_ID"
RANGE_FROM=$(($(date +%s) - 600))
SDK_SERVICES=()
if [ "$PY_READY" = 1 ]; then
  run_verifier python "$VENV/bin/python" "$PY_DIR/export_and_verify.py" --otlp "$OTLP" --api "$API" --service "$PY_SERVICE"
  SDK_SERVICES+=("$PY_SERVICE")
fi
if [ "$NODE_READY" = 1 ]; then
  run_verifier node node "$NODE_DIR/export_and_verify.mjs" --otlp "$OTLP" --api "$API" --service "$NODE_SERVICE"
  SDK_SERVICES+=("$NODE_SERVICE")
fi
RANGE_TO=$(($(date +%s) + 600))

# --- 4. restart on the same data dir ---------------------------------------------------------------

# The SDKs export once more when they shut down: wait until what is stored stops changing (two equal
# reads 1 s apart, at most 6 s) before taking the "before" picture.
stable_state() {
  local previous="" current=""
  for _ in $(seq 1 6); do
    current=$(persisted_state "$RANGE_FROM" "$RANGE_TO" "${SDK_SERVICES[@]}" 2>"$WORK/state.err") || return 1
    [ "$current" = "$previous" ] && break
    previous=$current
    sleep 1
  done
  echo "$current"
}

if [ "${#SDK_SERVICES[@]}" -gt 0 ]; then
  if before=$(stable_state); then
    stop_server
    if [ -n "$(ls -A "$DATA_DIR" 2>/dev/null)" ]; then
      pass "data dir is populated after a graceful stop"
    else
      fail "data dir $DATA_DIR is empty after a graceful stop"
    fi
    if start_server "restart on the same data dir"; then
      # A restart that replays the stream must not count anything twice: compare until equal (or 5 s),
      # then once more a little later so that a late replay would still be caught.
      after=""
      for _ in $(seq 1 50); do
        after=$(persisted_state "$RANGE_FROM" "$RANGE_TO" "${SDK_SERVICES[@]}" 2>/dev/null) || after=""
        [ "$after" = "$before" ] && break
        sleep 0.1
      done
      if [ "$after" = "$before" ]; then
        sleep 1.5
        after=$(persisted_state "$RANGE_FROM" "$RANGE_TO" "${SDK_SERVICES[@]}" 2>/dev/null) || after=""
      fi
      services_listed=$(python3 -c 'import json,sys; print(len(json.loads(sys.argv[1] or "{}").get("services", [])))' "$after" 2>/dev/null || echo 0)
      if [ "$services_listed" -eq "${#SDK_SERVICES[@]}" ]; then
        pass "after restart: the SDK services are still listed (${SDK_SERVICES[*]})"
      else
        fail "after restart: ${services_listed} of ${#SDK_SERVICES[@]} SDK services listed"
      fi
      buckets=$(python3 -c 'import json,sys; s=json.loads(sys.argv[1]); print(sum(len(v["buckets"]) for k, v in s.items() if k != "services"))' "$before")
      if [ "$after" = "$before" ]; then
        pass "after restart: series and all $buckets history buckets are unchanged"
      else
        fail "after restart: series or history differ from before the restart"
        echo "before: $before" | cut -c1-2000
        echo "after:  $after" | cut -c1-2000
      fi
    fi
  else
    fail "reading series and history before the restart: $(tail -n 1 "$WORK/state.err")"
  fi
else
  fail "restart check skipped: no SDK verifier could run"
fi

# --- 5. loadgen ------------------------------------------------------------------------------------

if [ -n "$SERVER_PID" ]; then
  loadgen_started=$SECONDS
  timeout 30 "$FLOWSCOPE_BIN" loadgen --endpoint "$OTLP" --duration 5s >"$WORK/loadgen.log" 2>&1
  loadgen_status=$?
  if [ "$loadgen_status" -eq 0 ]; then
    pass "flowscope loadgen --duration 5s exited cleanly ($((SECONDS - loadgen_started)) s)"
  else
    tail -n 20 "$WORK/loadgen.log"
    fail "flowscope loadgen --duration 5s failed (status $loadgen_status; 124 = timed out after 30 s)"
  fi
  missing=("${LOADGEN_SERVICES[@]}")
  for _ in $(seq 1 50); do # 5 s
    listed=$(http_get "$API/api/services" 2>/dev/null | python3 -c 'import json,sys; print(" ".join(s["name"] for s in json.load(sys.stdin)["services"]))' 2>/dev/null)
    missing=()
    for service in "${LOADGEN_SERVICES[@]}"; do
      [[ " $listed " == *" $service "* ]] || missing+=("$service")
    done
    [ "${#missing[@]}" -eq 0 ] && break
    sleep 0.1
  done
  if [ "${#missing[@]}" -eq 0 ]; then
    pass "loadgen's five services are listed (${LOADGEN_SERVICES[*]})"
  else
    fail "loadgen services missing from /api/services: ${missing[*]}"
  fi
else
  fail "loadgen check skipped: flowscope local is not running"
fi

# --- 6. hostile neighbour ----------------------------------------------------------------------------

stop_server # the test starts its own flowscope local
if [ -n "$RELEASE_BIN" ]; then
  if FLOWSCOPE_BIN="$RELEASE_BIN" cargo test --locked -p flowscope-cli --test local_hostile_neighbour \
    -- --ignored --nocapture >"$WORK/hostile.log" 2>&1; then
    grep -E '^(100k|round|RSS)' "$WORK/hostile.log" | cut -c1-200
    pass "hostile neighbour: the well-behaved client's points were visible within 2 s each, RSS under 300 MB"
  else
    tail -n 40 "$WORK/hostile.log"
    fail "hostile neighbour (cli/tests/local_hostile_neighbour.rs)"
  fi
else
  fail "hostile neighbour skipped: no release build"
fi

finish
