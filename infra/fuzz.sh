#!/usr/bin/env bash
# `make fuzz`: every cargo-fuzz target (fuzz/fuzz_targets) for FUZZ_SECS seconds each
# (default 60), starting from fuzz/corpus; a crash stops the run and leaves its input in
# fuzz/artifacts/<target>/ (copy it to fuzz/regressions/<target>/: `make test` replays it).
#
# Runs on the stable toolchain without a sanitizer (`-s none`: libFuzzer's coverage
# instrumentation needs no nightly flag); FUZZ_SANITIZER=address switches to AddressSanitizer,
# which needs a nightly toolchain (`rustup toolchain install nightly`, then
# FUZZ_TOOLCHAIN=+nightly). Never part of `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."

secs="${FUZZ_SECS:-60}"
sanitizer="${FUZZ_SANITIZER:-none}"
toolchain="${FUZZ_TOOLCHAIN:-}"
targets="${FUZZ_TARGETS:-key_parser routing_table json_text jwt stream_record eventbridge_event http_router}"

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz into .tools" >&2
  cargo install cargo-fuzz --locked --root .tools
  export PATH="$PWD/.tools/bin:$PATH"
fi

# The workspace's release profile (fat LTO, one codegen unit, stripped) is for shipped
# binaries; fuzzing wants a quick build that keeps symbols for its reports.
export CARGO_PROFILE_RELEASE_LTO=false
export CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16
export CARGO_PROFILE_RELEASE_OPT_LEVEL=3
export CARGO_PROFILE_RELEASE_STRIP=false
export CARGO_PROFILE_RELEASE_DEBUG=line-tables-only

report="${FUZZ_REPORT:-target/fuzz-report.txt}"
mkdir -p "$(dirname "$report")"
: > "$report"
for target in $targets; do
  work="target/fuzz-corpus/$target"
  mkdir -p "$work"
  echo "== $target: ${secs}s" >&2
  # New inputs go to a scratch corpus in target/: fuzz/corpus stays small and reviewed.
  # shellcheck disable=SC2086
  cargo $toolchain fuzz run --features libfuzzer -s "$sanitizer" "$target" "$work" "fuzz/corpus/$target" -- \
    -max_total_time="$secs" -rss_limit_mb=4096 -print_final_stats=1 2>"target/fuzz-$target.log" || {
      tail -40 "target/fuzz-$target.log" >&2
      echo "FAILED: $target crashed; its input is in fuzz/artifacts/$target/" >&2
      exit 1
    }
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "target/fuzz-$target.log" | grep -o '[0-9]*$' || echo "?")
  cov=$(grep -o 'cov: [0-9]*' "target/fuzz-$target.log" | tail -1 | grep -o '[0-9]*' || echo "?")
  echo "$target: $runs executions in ${secs}s, coverage $cov, no crash" | tee -a "$report" >&2
done
echo "fuzz report: $report" >&2
cat "$report"
