#!/usr/bin/env bash
# make bench-compare: tagcfg beside etcd, measured by one load generator (crates/bench).
#
# Unpacks etcd from Debian into .tools/etcd unless one is on PATH (ETCD=/path/to/etcd to
# choose another), builds release `tagcfg` and the load generator, then `tagcfg-bench compare`
# starts both servers on 127.0.0.1 with their data in temporary directories, runs every
# scenario in alternating rounds and writes the tables into docs/BENCHMARKS.md (between the
# bench-compare markers). QUICK=1 runs every scenario briefly (a check, not a measurement)
# and writes into target/bench-compare-quick.md instead.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
. infra/tools.sh

need_debian_package protoc protobuf-compiler
etcd=${ETCD:-$(etcd_binary)}
target=${CARGO_TARGET_DIR:-$root/target}

echo "[bench-compare] building release tagcfg and the load generator" >&2
cargo build --release -p tagcfg
cargo build --profile bench -p bench

args=(compare --tagcfg "$target/release/tagcfg" --etcd "$etcd")
if [ "${QUICK:-0}" = 1 ]; then
  mkdir -p "$target"
  args+=(--quick --out "$target/bench-compare-quick.md" --command "QUICK=1 make bench-compare")
else
  args+=(--out docs/BENCHMARKS.md --command "make bench-compare")
fi
# The bench profile builds into target/release too.
exec "$target/release/tagcfg-bench" "${args[@]}"
