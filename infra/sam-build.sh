#!/usr/bin/env bash
# `make build`: the three Lambda bootstraps through `sam build`, offline, then checked: each
# is an ELF for the architecture, needs no glibc newer than provided.al2023's, and starts
# (`cargo xtask check-bootstraps`; arm64 ones under qemu-user on an x86_64 machine).
#
#   infra/sam-build.sh arm64    # the template's default: cross-compiled with zig (ziglang from PyPI)
#                               # and the aarch64-unknown-linux-gnu target (rustup)
#   infra/sam-build.sh x86_64   # the fallback: a native build with plain cargo, no zig
#
# The architecture built is recorded in .aws-sam/architecture; `make deploy` refuses to
# deploy a stack whose Architecture parameter differs from it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/infra/tools.sh"
arch=${1:-arm64}
die() { echo "[build] ERROR: $*" >&2; exit 1; }

need_tool sam cargo-lambda
case "$arch" in
  arm64)
    need_tool zig
    if ! rustup target list --installed | grep -qx aarch64-unknown-linux-gnu; then
      echo "[build] adding the Rust target aarch64-unknown-linux-gnu" >&2
      rustup target add aarch64-unknown-linux-gnu >&2 ||
        die "cannot add the aarch64 Rust target; build for x86_64 instead: make build ARCH=x86_64"
    fi
    unset CARGO_LAMBDA_COMPILER # cargo-lambda's default: cargo-zigbuild
    if [ "$(uname -m)" != aarch64 ]; then
      # `cargo xtask check-bootstraps` starts the arm64 bootstraps under qemu-user, with Debian's aarch64 glibc.
      need_debian_package qemu-aarch64 qemu-user
      need_debian_package /usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1 libc6-arm64-cross
    fi
    ;;
  x86_64)
    [ "$(uname -m)" = x86_64 ] || die "the x86_64 fallback builds natively, on an x86_64 machine"
    # Native build, no zig. The binary links this machine's glibc: `cargo xtask check-bootstraps` checks
    # it needs nothing newer than provided.al2023's 2.34.
    export CARGO_LAMBDA_COMPILER=cargo
    ;;
  *) die "ARCH must be arm64 or x86_64, not '$arch'" ;;
esac

cd "$root"
# rust-cargolambda is a SAM beta build method. The build runs in the source tree (cargo's own
# cache does the caching; samconfig.toml turns SAM's off: it would hash all of target/).
export SAM_CLI_BETA_RUST_CARGO_LAMBDA=1 SAM_CLI_TELEMETRY=0
AWS_DEFAULT_REGION=${AWS_DEFAULT_REGION:-us-east-1} \
  sam build --beta-features --parameter-overrides "Architecture=$arch"
echo "$arch" >.aws-sam/architecture
cargo xtask check-bootstraps "$arch"
