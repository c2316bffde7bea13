#!/usr/bin/env bash
# Runs the LocalStack ready.d hook without Docker: `awslocal` is stood in for by the AWS CLI pointed at
# moto's server on 127.0.0.1, which speaks the same Kinesis/DynamoDB/SQS/SSM/S3 APIs. Proves the
# hook's CLI calls are well-formed, create what README.md promises (keys, GSI, TTL, stream view),
# and that a second run is harmless. Last line: "N passed, N failed".
set -uo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
EMU_DIR="${FLOWSCOPE_EMULATORS_DIR:-$REPO_ROOT/.emulators}"
MOTO_VENV="$EMU_DIR/moto-venv"
MOTO_VERSION="5.2.5"
HOOK="$REPO_ROOT/localstack/init/ready.d/10-flowscope.sh"

passed=0
failed=0
check() {
  local what="$1"
  shift
  if "$@"; then
    echo "ok   - $what"
    passed=$((passed + 1))
  else
    echo "FAIL - $what"
    failed=$((failed + 1))
  fi
}

"$REPO_ROOT/scripts/deploy-tools.sh" >/dev/null || {
  echo "0 passed, 1 failed"
  exit 1
}
AWS="$REPO_ROOT/.venv-deploy/bin/aws"
if [[ ! -x "$MOTO_VENV/bin/moto_server" ]] || ! "$MOTO_VENV/bin/python" -c "import moto, sys; sys.exit(moto.__version__ != '$MOTO_VERSION')" 2>/dev/null; then
  python3 -m venv "$MOTO_VENV"
  "$MOTO_VENV/bin/python" -m pip install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION"
fi

work="$(mktemp -d)"
moto_pid=""
cleanup() {
  if [[ -n "$moto_pid" ]]; then
    kill "$moto_pid" 2>/dev/null
    wait "$moto_pid" 2>/dev/null
  fi
  rm -rf "$work"
}
trap cleanup EXIT

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
"$MOTO_VENV/bin/moto_server" -H 127.0.0.1 -p "$port" >"$work/moto.log" 2>&1 &
moto_pid=$!
for _ in $(seq 1 100); do
  curl --silent --max-time 1 "http://127.0.0.1:$port/" >/dev/null && break
  sleep 0.1
done

mkdir -p "$work/bin"
cat >"$work/bin/awslocal" <<EOF
#!/bin/sh
exec "$AWS" --endpoint-url "http://127.0.0.1:$port" "\$@"
EOF
chmod +x "$work/bin/awslocal"
export PATH="$work/bin:$PATH"
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL

bash "$HOOK" >"$work/run1.log" 2>&1
rc=$?
check "the hook succeeds on a fresh emulator" test "$rc" -eq 0
[[ "$rc" -eq 0 ]] || cat "$work/run1.log"
bash "$HOOK" >"$work/run2.log" 2>&1
rc=$?
check "the hook succeeds again on the same emulator (idempotent)" test "$rc" -eq 0
[[ "$rc" -eq 0 ]] || cat "$work/run2.log"

query() { awslocal "$@" --output text 2>/dev/null; }
check "stream flowscope-points exists" \
  test "$(query kinesis describe-stream-summary --stream-name flowscope-points --query StreamDescriptionSummary.StreamName)" = "flowscope-points"
check "buckets table keyed pk (S) + start (N)" \
  test "$(query dynamodb describe-table --table-name flowscope-buckets --query 'Table.KeySchema[].AttributeName' | tr '\t' ' ')" = "pk start"
check "buckets table streams NEW_IMAGE" \
  test "$(query dynamodb describe-table --table-name flowscope-buckets --query Table.StreamSpecification.StreamViewType)" = "NEW_IMAGE"
check "series table has GSI by_series_id" \
  test "$(query dynamodb describe-table --table-name flowscope-series --query 'Table.GlobalSecondaryIndexes[0].IndexName')" = "by_series_id"
check "live table streams NEW_IMAGE" \
  test "$(query dynamodb describe-table --table-name flowscope-live --query Table.StreamSpecification.StreamViewType)" = "NEW_IMAGE"
for table in buckets series state connections live; do
  check "$table table has TTL on expires_at" \
    test "$(query dynamodb describe-time-to-live --table-name "flowscope-$table" --query TimeToLiveDescription.AttributeName)" = "expires_at"
done
check "failure queue exists" grep -q flowscope-failures <<<"$(query sqs get-queue-url --queue-name flowscope-failures)"
expected_hash="$(printf %s flowscope-dev-key | sha256sum | cut -d' ' -f1)"
check "API key parameter holds the dev key's SHA-256, not the key" \
  test "$(query ssm get-parameter --name /flowscope/api-key-hashes --with-decryption --query Parameter.Value)" = "$expected_hash"
bucket_exists() { awslocal s3api head-bucket --bucket "$1" >/dev/null 2>&1; }
check "dashboard bucket exists" bucket_exists flowscope-dashboard

echo "$passed passed, $failed failed"
[[ "$failed" -eq 0 ]]
