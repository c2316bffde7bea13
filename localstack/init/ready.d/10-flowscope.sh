#!/bin/bash
# Creates Flowscope's resources in LocalStack once it is ready, with the names README.md exports:
# the Kinesis stream, the DynamoDB tables (key design and TTL per infra/dynamodb.md, streams on
# buckets and live), the failure/poison SQS queue, the API key hashes parameter and the dashboard bucket.
# Idempotent: re-running it on a live container changes nothing that exists.
set -euo pipefail

PREFIX="${FLOWSCOPE_PREFIX:-flowscope}"
# SHA-256 of the development key "flowscope-dev-key" (printf %s flowscope-dev-key | sha256sum).
DEV_KEY_HASH="${FLOWSCOPE_DEV_KEY_HASH:-$(printf %s flowscope-dev-key | sha256sum | cut -d' ' -f1)}"

table_exists() { awslocal dynamodb describe-table --table-name "$1" >/dev/null 2>&1; }

create_table() { # name, then create-table arguments
  local name="$1"
  shift
  if table_exists "$name"; then
    echo "flowscope: table $name exists"
  else
    awslocal dynamodb create-table --table-name "$name" --billing-mode PAY_PER_REQUEST "$@" >/dev/null
    awslocal dynamodb wait table-exists --table-name "$name"
    echo "flowscope: created table $name"
  fi
  awslocal dynamodb update-time-to-live --table-name "$name" \
    --time-to-live-specification Enabled=true,AttributeName=expires_at >/dev/null 2>&1 || true
}

if ! awslocal kinesis describe-stream-summary --stream-name "$PREFIX-points" >/dev/null 2>&1; then
  awslocal kinesis create-stream --stream-name "$PREFIX-points" --shard-count 1
  awslocal kinesis wait stream-exists --stream-name "$PREFIX-points"
  echo "flowscope: created stream $PREFIX-points"
fi

create_table "$PREFIX-buckets" \
  --attribute-definitions AttributeName=pk,AttributeType=S AttributeName=start,AttributeType=N \
  --key-schema AttributeName=pk,KeyType=HASH AttributeName=start,KeyType=RANGE \
  --stream-specification StreamEnabled=true,StreamViewType=NEW_IMAGE

create_table "$PREFIX-series" \
  --attribute-definitions AttributeName=pk,AttributeType=S AttributeName=sk,AttributeType=S \
  AttributeName=series_id,AttributeType=S \
  --key-schema AttributeName=pk,KeyType=HASH AttributeName=sk,KeyType=RANGE \
  --global-secondary-indexes \
  'IndexName=by_series_id,KeySchema=[{AttributeName=series_id,KeyType=HASH}],Projection={ProjectionType=ALL}'

create_table "$PREFIX-state" \
  --attribute-definitions AttributeName=pk,AttributeType=S \
  --key-schema AttributeName=pk,KeyType=HASH

create_table "$PREFIX-connections" \
  --attribute-definitions AttributeName=pk,AttributeType=S AttributeName=sk,AttributeType=S \
  --key-schema AttributeName=pk,KeyType=HASH AttributeName=sk,KeyType=RANGE

# Kept traces' live `trace` events: written by the aggregator, read by the fan-out from the stream.
create_table "$PREFIX-live" \
  --attribute-definitions AttributeName=pk,AttributeType=S \
  --key-schema AttributeName=pk,KeyType=HASH \
  --stream-specification StreamEnabled=true,StreamViewType=NEW_IMAGE

awslocal sqs create-queue --queue-name "$PREFIX-failures" >/dev/null
echo "flowscope: queue $PREFIX-failures"

awslocal ssm put-parameter --name "/$PREFIX/api-key-hashes" --type SecureString \
  --value "$DEV_KEY_HASH" --overwrite >/dev/null
echo "flowscope: parameter /$PREFIX/api-key-hashes"

awslocal s3 mb "s3://$PREFIX-dashboard" >/dev/null 2>&1 || true
echo "flowscope: bucket $PREFIX-dashboard"
echo "flowscope: LocalStack resources ready"
