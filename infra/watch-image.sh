#!/usr/bin/env bash
# `make watch-image`: the watch-server container image, built without a container engine.
# `tagcfg` is cross-compiled as a static musl binary with cargo-lambda's zig toolchain, then
# infra/oci-image.py writes it as an OCI image layout in target/watch-server-image. Push it
# with skopeo (docs/DEPLOY.md, step 4).
#
#   infra/watch-image.sh arm64     # the default: what infra/watch-server.yaml runs (ARM64 Fargate)
#   infra/watch-image.sh x86_64    # also started here, as a check, when the machine is x86_64
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/infra/tools.sh"
die() { echo "[watch-image] ERROR: $*" >&2; exit 1; }
arch=${1:-arm64}
case "$arch" in
  arm64) triple=aarch64-unknown-linux-musl ;;
  x86_64) triple=x86_64-unknown-linux-musl ;;
  *) die "ARCH must be arm64 or x86_64, not '$arch'" ;;
esac

need_tool cargo-lambda zig
if ! rustup target list --installed | grep -qx "$triple"; then
  echo "[watch-image] adding the Rust target $triple" >&2
  rustup target add "$triple" >&2 || die "cannot add the Rust target $triple"
fi
cd "$root"
unset CARGO_LAMBDA_COMPILER # zig: a static musl binary needs no libc in the image
cargo lambda build --release -p tagcfg --bin tagcfg --target "$triple" --lambda-dir "${CARGO_TARGET_DIR:-target}/watch-image"
binary="${CARGO_TARGET_DIR:-target}/watch-image/tagcfg/bootstrap"
out="$root/target/watch-server-image"
python3 infra/oci-image.py "$binary" "$arch" "$out" "${TAG:-latest}"

# A static binary for this machine's architecture can be started as it is: it must answer.
if [ "$arch" = "$(uname -m)" ] || { [ "$arch" = arm64 ] && [ "$(uname -m)" = aarch64 ]; }; then
  version=$("$binary" --version) || die "the image's binary does not start"
  echo "[watch-image] started: $version"
fi
