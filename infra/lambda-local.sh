#!/usr/bin/env bash
# Runs one Lambda of the workspace under `cargo lambda watch` against the emulators and
# invokes it with its sample events (all of them, in a meaningful order, or those named).
# Run it through infra/with-emulators.sh (what the Makefile's invoke targets do).
#
#   infra/with-emulators.sh infra/lambda-local.sh config-api [EVENT ...]
#   infra/with-emulators.sh infra/lambda-local.sh stream-publisher
#   infra/with-emulators.sh infra/lambda-local.sh cache-refresher
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/infra/tools.sh"
export CARGO_LAMBDA_COMPILER=cargo
function=${1:?usage: lambda-local.sh config-api|stream-publisher|cache-refresher [EVENT ...]}
shift

[ -n "${AWS_ENDPOINT_URL_DYNAMODB:-}" ] || { echo "run me through infra/with-emulators.sh" >&2; exit 1; }
need_tool cargo-lambda # host builds only: no zig needed

table="tagcfg-local"
(cd "$root" && cargo run -q -p xtask --features aws -- create-table "$table" >&2)
service_secret="local-service-secret-0123456789abcdef"
pids=()
env_file=$(mktemp)
cleanup() {
  for pid in "${pids[@]}"; do kill -- "-$pid" 2>/dev/null || true; done
  rm -f "$env_file"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

cat >"$env_file" <<ENV
TAGCFG_TABLE=$table
AWS_ENDPOINT_URL_DYNAMODB=$AWS_ENDPOINT_URL_DYNAMODB
AWS_ENDPOINT_URL_SSM=$AWS_ENDPOINT_URL_SSM
AWS_ENDPOINT_URL_EVENTBRIDGE=$AWS_ENDPOINT_URL_EVENTBRIDGE
AWS_REGION=$AWS_REGION
AWS_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID
AWS_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY
RUST_LOG=info
ENV

case "$function" in
  config-api)
    dir=events/api
    defaults=(put-flag get-flag get-flag-not-modified put-flag-if-match put-param get-param get-param-min-revision
              put-shared-region put-tenant-tier get-shared-fallback-globex get-flag-other-tenant list batch-get changes
              history delete-flag healthz openapi error-no-token error-bad-token error-expired-token
              error-admin-writes-shared error-read-only-write
              error-bad-key error-unknown-tag error-stale-if-match error-oversize-value error-malformed-json
              error-tenant-in-query)
    cat >>"$env_file" <<ENV
TAGCFG_SSM_ROOT=tagcfg-local
TAGCFG_JWKS_FILE=$root/crates/tenant-auth/tests/fixtures/jwks.json
TAGCFG_ISSUER=https://cognito-idp.us-east-1.amazonaws.com/us-east-1_tagcfgEvents
TAGCFG_AUDIENCES=tagcfg-events-client
ENV
    ;;
  stream-publisher)
    dir=events/stream
    defaults=(changes ignored-items malformed)
    "$tools/venv/bin/python" -c "import boto3,os; boto3.client('events', endpoint_url=os.environ['AWS_ENDPOINT_URL_EVENTBRIDGE']).create_event_bus(Name='tagcfg-local')" >&2
    echo "TAGCFG_EVENT_BUS=tagcfg-local" >>"$env_file"
    ;;
  cache-refresher)
    dir=events/eventbridge
    defaults=(config-changed config-changed-secret ssm-outside-root config-changed-malformed)
    # A watch server for the refresher to push to.
    grpc_port=$(free_port)
    (cd "$root" && cargo build -q -p watch-server >&2)
    setsid env TAGCFG_WATCH_ADDR="127.0.0.1:$grpc_port" TAGCFG_SERVICE_SECRET="$service_secret" TAGCFG_TABLE="$table" \
      TAGCFG_DEV_SECRET="local-dev-secret-0123456789abcdef0123" TAGCFG_DEV=1 TAGCFG_ISSUER=tagcfg-dev TAGCFG_AUDIENCES=tagcfg TAGCFG_LOG=warn \
      "${CARGO_TARGET_DIR:-$root/target}/debug/watch-server" >"$tools/logs/watch-server.log" 2>&1 &
    pids+=($!)
    cat >>"$env_file" <<ENV
TAGCFG_SSM_ROOT=tagcfg
TAGCFG_WATCH_ENDPOINTS=http://127.0.0.1:$grpc_port
TAGCFG_SERVICE_SECRET=$service_secret
ENV
    ;;
  *) echo "unknown function $function" >&2; exit 2 ;;
esac

port=$(free_port)
log="$tools/logs/cargo-lambda-watch.log"
mkdir -p "$tools/logs"
# Its own process group, so everything it starts (the function process too) stops with it.
setsid bash -c "cd '$root' && exec cargo lambda watch --invoke-address 127.0.0.1 --invoke-port $port --ignore-changes \
  --env-file '$env_file' -p $function --bin $function" >"$log" 2>&1 &
pids+=($!)
for _ in $(seq 1 180); do
  curl -s -o /dev/null "http://127.0.0.1:$port/" && break
  kill -0 "${pids[-1]}" 2>/dev/null || { echo "cargo lambda watch exited: $(tail -5 "$log")" >&2; exit 1; }
  sleep 1
done

events=("$@")
[ ${#events[@]} -gt 0 ] || events=("${defaults[@]}")
for name in "${events[@]}"; do
  if out=$(cargo lambda invoke "$function" --invoke-address 127.0.0.1 --invoke-port "$port" \
           --data-file "$root/$dir/$name.json" 2>&1); then
    summary=$(python3 -c 'import json,sys; d=json.loads(sys.stdin.read()); print(d.get("statusCode", json.dumps(d)))' <<<"$out" 2>/dev/null || echo "$out")
  else
    summary="error: $(echo "$out" | grep -m1 -iE 'error|message' || echo "$out" | tail -1)"
  fi
  printf '%-28s %s\n' "$name" "$summary"
done
