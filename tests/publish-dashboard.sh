#!/usr/bin/env bash
# Checks scripts/publish-dashboard.sh end to end against moto's S3 server on 127.0.0.1 (CloudFormation
# is replaced by --outputs-json files): it builds a small stand-in dashboard project with npm, writes
# config.json from the stack outputs, uploads with the right cache headers, removes stale files, and
# refuses to publish when an output is missing. Last line: "N passed, N failed".
#
# Needs: python3, node/npm, the deploy venv (scripts/deploy-tools.sh; installed if missing).
# moto[server] goes into its own venv under .emulators/ (git-ignored) so it cannot disturb the
# deploy tools' pinned botocore.
set -uo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
EMU_DIR="${FLOWSCOPE_EMULATORS_DIR:-$REPO_ROOT/.emulators}"
MOTO_VENV="$EMU_DIR/moto-venv"
MOTO_VERSION="5.2.5"

passed=0
failed=0
check() { # description, then a command that succeeds when the behaviour holds
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
  echo "deploy tools could not be installed"
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

export AWS_ENDPOINT_URL="http://127.0.0.1:$port"
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
unset AWS_PROFILE AWS_SESSION_TOKEN
s3api() { "$AWS" --endpoint-url "$AWS_ENDPOINT_URL" s3api "$@"; }

# A stand-in dashboard project: no dependencies, so `npm ci` works offline; its build writes a
# marker we look for in the bucket, which proves the build ran and its output was published.
project="$work/dashboard"
mkdir -p "$project"
cat >"$project/package.json" <<'EOF'
{ "name": "fake-dashboard", "version": "1.0.0", "private": true, "scripts": { "build": "node build.mjs" } }
EOF
cat >"$project/package-lock.json" <<'EOF'
{ "name": "fake-dashboard", "version": "1.0.0", "lockfileVersion": 3, "requires": true,
  "packages": { "": { "name": "fake-dashboard", "version": "1.0.0" } } }
EOF
cat >"$project/build.mjs" <<'EOF'
import { mkdirSync, writeFileSync, rmSync } from "node:fs";
rmSync("dist", { recursive: true, force: true });
mkdirSync("dist/assets", { recursive: true });
writeFileSync("dist/index.html", `<!doctype html><title>fake</title><!-- ${process.env.BUILD_MARK} -->\n`);
writeFileSync("dist/assets/app-1a2b3c.js", "console.log('app');\n");
writeFileSync("dist/favicon.svg", "<svg xmlns='http://www.w3.org/2000/svg'/>\n");
EOF

bucket="flowscope-dashboard-test"
s3api create-bucket --bucket "$bucket" >/dev/null
# Left over from an older release: must disappear.
echo stale >"$work/stale.js"
s3api put-object --bucket "$bucket" --key assets/app-old999.js --body "$work/stale.js" >/dev/null
s3api put-object --bucket "$bucket" --key stale.html --body "$work/stale.js" >/dev/null

# describe-stacks form.
cat >"$work/outputs.json" <<EOF
{ "Stacks": [ { "StackName": "flowscope", "Outputs": [
  { "OutputKey": "DashboardBucketName", "OutputValue": "$bucket" },
  { "OutputKey": "HttpApiUrl", "OutputValue": "https://abc123.execute-api.us-east-1.amazonaws.com/" },
  { "OutputKey": "WebSocketUrl", "OutputValue": "wss://ws456.execute-api.us-east-1.amazonaws.com/prod" },
  { "OutputKey": "DashboardUrl", "OutputValue": "https://d111.cloudfront.net" } ] } ] }
EOF

mark="build-$RANDOM$RANDOM"
BUILD_MARK="$mark" "$REPO_ROOT/scripts/publish-dashboard.sh" flowscope --outputs-json "$work/outputs.json" \
  --dashboard-dir "$project" >"$work/publish.log" 2>&1
rc=$?
check "publish succeeds against the S3 emulator" test "$rc" -eq 0
[[ "$rc" -eq 0 ]] || cat "$work/publish.log"

keys="$(s3api list-objects-v2 --bucket "$bucket" --query 'Contents[].Key' --output text | tr '\t' '\n' | sort | tr '\n' ' ')"
check "bucket holds exactly the build plus config.json (stale files removed): $keys" \
  test "$keys" = "assets/app-1a2b3c.js config.json favicon.svg index.html "

s3api get-object --bucket "$bucket" --key index.html "$work/index.html" >/dev/null 2>&1
check "the uploaded index.html is the fresh build's output" grep -q "$mark" "$work/index.html"

s3api get-object --bucket "$bucket" --key config.json "$work/config.json" >/dev/null 2>&1
config_is() { # key expected
  python3 -c 'import json, sys; sys.exit(json.load(open(sys.argv[1])).get(sys.argv[2]) != sys.argv[3])' \
    "$work/config.json" "$1" "$2"
}
check "config.json apiBaseUrl is the HTTP API base without trailing slash" \
  config_is apiBaseUrl "https://abc123.execute-api.us-east-1.amazonaws.com"
check "config.json wsUrl is the WebSocket URL" config_is wsUrl "wss://ws456.execute-api.us-east-1.amazonaws.com/prod"
config_has_no_key() {
  python3 -c 'import json, sys; c = json.load(open(sys.argv[1])); sys.exit(any(k in c for k in ("token", "key", "apiKey")) or c.get("auth") != "key")' \
    "$work/config.json"
}
check "config.json carries no token or key, and says one is needed" config_has_no_key
check "config.json mode is aws" config_is mode "aws"

head_field() { # key field
  s3api head-object --bucket "$bucket" --key "$1" --query "$2" --output text 2>/dev/null
}
check "hashed assets are cached as immutable" \
  grep -q immutable <<<"$(head_field assets/app-1a2b3c.js CacheControl)"
check "index.html is revalidated on every load" test "$(head_field index.html CacheControl)" = "no-cache"
check "config.json is revalidated on every load" test "$(head_field config.json CacheControl)" = "no-cache"
check "index.html is served as text/html" grep -q "^text/html" <<<"$(head_field index.html ContentType)"

# Plain Outputs-list form and a prebuilt dist.
python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); json.dump(d["Stacks"][0]["Outputs"], open(sys.argv[2], "w"))' \
  "$work/outputs.json" "$work/outputs-list.json"
"$REPO_ROOT/scripts/publish-dashboard.sh" flowscope --outputs-json "$work/outputs-list.json" \
  --dashboard-dir "$project" --skip-build >"$work/publish2.log" 2>&1
rc=$?
check "an Outputs list is accepted" test "$rc" -eq 0

# A key must never reach the public bucket: --token is refused before anything is uploaded.
"$REPO_ROOT/scripts/publish-dashboard.sh" flowscope --outputs-json "$work/outputs-list.json" \
  --dashboard-dir "$project" --skip-build --token s3cret >"$work/publish-token.log" 2>&1
rc=$?
s3api get-object --bucket "$bucket" --key config.json "$work/config.json" >/dev/null 2>&1
check "--token is refused" test "$rc" -ne 0
check "the refusal says why" grep -q "config.json is public" "$work/publish-token.log"
check "the published config.json still carries no key" bash -c "! grep -q s3cret '$work/config.json'"

# A stack without the dashboard bucket output must not publish anywhere.
s3api create-bucket --bucket flowscope-untouched >/dev/null
cat >"$work/outputs-missing.json" <<'EOF'
[ { "OutputKey": "HttpApiUrl", "OutputValue": "https://abc123.execute-api.us-east-1.amazonaws.com" },
  { "OutputKey": "WebSocketUrl", "OutputValue": "wss://ws456.execute-api.us-east-1.amazonaws.com/prod" } ]
EOF
"$REPO_ROOT/scripts/publish-dashboard.sh" flowscope --outputs-json "$work/outputs-missing.json" \
  --dashboard-dir "$project" --skip-build >"$work/publish3.log" 2>&1
rc=$?
check "a missing DashboardBucketName output fails" test "$rc" -ne 0
check "the failure names the missing output" grep -q DashboardBucketName "$work/publish3.log"
# shellcheck disable=SC2016 # backticks are a JMESPath literal, not a command substitution
check "nothing was uploaded on failure" \
  test "$(s3api list-objects-v2 --bucket flowscope-untouched --query 'length(Contents || `[]`)' --output text)" = "0"

echo "$passed passed, $failed failed"
[[ "$failed" -eq 0 ]]
