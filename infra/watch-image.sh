#!/usr/bin/env bash
# `make watch-image`: the watch-server container image, built without a container engine.
# `watch-server` is cross-compiled as a static musl binary with cargo-lambda's zig toolchain
# and staged with the CA bundle as the build context of crates/watch-server/Dockerfile;
# infra/oci-image.py builds that Dockerfile into an OCI image layout in
# target/watch-server-image. Push it with skopeo (docs/DEPLOY.md, step 4).
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
cargo lambda build --release -p watch-server --bin watch-server --target "$triple" --lambda-dir "${CARGO_TARGET_DIR:-target}/watch-image/$arch"
context="$root/target/watch-image/context"
rm -rf "$context" && mkdir -p "$context"
cp "${CARGO_TARGET_DIR:-target}/watch-image/$arch/watch-server/bootstrap" "$context/watch-server"
cp /etc/ssl/certs/ca-certificates.crt "$context/ca-certificates.crt"
out="$root/target/watch-server-image"
python3 infra/oci-image.py crates/watch-server/Dockerfile "$context" "$arch" "$out" "${TAG:-latest}"

# The image must start: its layer unpacked, `/watch-server` (what the task runs) from
# it, with the image's CA bundle, must listen. An arm64 binary runs under qemu-user here.
runner=()
case "$arch/$(uname -m)" in
  arm64/aarch64 | x86_64/x86_64) ;;
  arm64/*) need_debian_package qemu-aarch64 qemu-user; runner=(qemu-aarch64) ;;
  *) die "cannot start an $arch binary on $(uname -m)" ;;
esac
rootfs=$(mktemp -d)
trap 'kill "${server:-}" 2>/dev/null || true; rm -rf "$rootfs"' EXIT
layer=$(python3 -c 'import json,sys; m=json.load(open(sys.argv[1]+"/index.json"))["manifests"][0]["digest"].split(":")[1]; print(json.load(open(sys.argv[1]+"/blobs/sha256/"+m))["layers"][0]["digest"].split(":")[1])' "$out")
tar -xzf "$out/blobs/sha256/$layer" -C "$rootfs"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
env -i TAGCFG_WATCH_ADDR="127.0.0.1:$port" TAGCFG_TABLE=image-check TAGCFG_COGNITO_USER_POOL_ID=us-east-1_ImageCheck \
  TAGCFG_AUDIENCES=image-check TAGCFG_SERVICE_SECRET=image-check-service-secret-0123456789 AWS_REGION=us-east-1 \
  SSL_CERT_FILE="$rootfs/etc/ssl/certs/ca-certificates.crt" "${runner[@]}" "$rootfs/watch-server" \
  >"$rootfs/server.log" 2>&1 &
server=$!
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }
for _ in $(seq 1 100); do
  listening && break
  kill -0 "$server" 2>/dev/null || die "the image's watch server exited: $(tail -3 "$rootfs/server.log")"
  sleep 0.1
done
listening || die "the image's watch server does not listen after 10 s: $(tail -3 "$rootfs/server.log")"
echo "[watch-image] the image's /watch-server starts and listens (${runner[*]:-native})"
