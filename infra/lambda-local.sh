#!/usr/bin/env bash
# Runs config-api under `cargo lambda watch` against the emulators and invokes it with the
# sample events of events/api/ (all of them, in a meaningful order, or the ones named).
# Run it through infra/with-emulators.sh (what `make lambda-invoke` does).
#
#   infra/with-emulators.sh infra/lambda-local.sh [EVENT ...]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tools="$root/.tools"
export PATH="$tools/venv/bin:$PATH"
export CARGO_LAMBDA_COMPILER=cargo

[ -n "${AWS_ENDPOINT_URL_DYNAMODB:-}" ] || { echo "run me through infra/with-emulators.sh" >&2; exit 1; }
if ! command -v cargo-lambda >/dev/null; then
  echo "[lambda] installing cargo-lambda from PyPI (no zig needed for host builds)" >&2
  "$tools/venv/bin/pip" install -q --no-deps "cargo-lambda==1.9.2" >&2
fi

table="tagcfg-local"
"$tools/venv/bin/python" "$root/infra/create-table.py" "$table" >&2

env_file=$(mktemp)
cat >"$env_file" <<ENV
TAGCFG_TABLE=$table
TAGCFG_SSM_ROOT=tagcfg-local
TAGCFG_JWKS_FILE=$root/crates/tenant-auth/tests/fixtures/jwks.json
TAGCFG_ISSUER=https://cognito-idp.us-east-1.amazonaws.com/us-east-1_tagcfgEvents
TAGCFG_AUDIENCES=tagcfg-events-client
AWS_ENDPOINT_URL_DYNAMODB=$AWS_ENDPOINT_URL_DYNAMODB
AWS_ENDPOINT_URL_SSM=$AWS_ENDPOINT_URL_SSM
AWS_REGION=$AWS_REGION
AWS_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID
AWS_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY
RUST_LOG=info
ENV

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
log="$tools/logs/cargo-lambda-watch.log"
mkdir -p "$tools/logs"
# Its own process group, so everything it starts (the function process too) stops with it.
setsid bash -c "cd '$root' && exec cargo lambda watch --invoke-address 127.0.0.1 --invoke-port $port --ignore-changes \
  --env-file '$env_file' -p config-api --bin config-api" >"$log" 2>&1 &
watch_pid=$!
trap 'kill -- -$watch_pid 2>/dev/null || true; rm -f "$env_file"' EXIT
for _ in $(seq 1 120); do
  curl -s -o /dev/null "http://127.0.0.1:$port/" && break
  kill -0 $watch_pid 2>/dev/null || { echo "cargo lambda watch exited: $(tail -5 "$log")" >&2; exit 1; }
  sleep 1
done

events=("$@")
if [ ${#events[@]} -eq 0 ]; then
  events=(put-flag get-flag get-flag-not-modified put-flag-if-match put-param get-param get-param-min-revision
          put-shared-region get-shared-fallback-globex get-flag-other-tenant list batch-get changes history
          delete-flag healthz openapi error-no-token error-bad-token error-expired-token error-read-only-write
          error-bad-key error-unknown-tag error-stale-if-match error-oversize-value error-malformed-json
          error-tenant-in-query)
fi
for name in "${events[@]}"; do
  out=$(cargo lambda invoke config-api --invoke-address 127.0.0.1 --invoke-port "$port" \
        --data-file "$root/events/api/$name.json" 2>&1) || { echo "$name: invoke failed: $out" >&2; exit 1; }
  status=$(python3 -c 'import json,sys; print(json.loads(sys.stdin.read())["statusCode"])' <<<"$out" 2>/dev/null || echo "?")
  printf '%-28s %s\n' "$name" "$status"
done
