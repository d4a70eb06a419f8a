#!/usr/bin/env bash
# `make deploy`: deploys what `make build` built. The first time (no region saved in
# samconfig.toml yet) it runs `sam deploy --guided`, which asks for the stack's parameters and
# saves the answers to samconfig.toml; later runs deploy with the saved answers.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/infra/tools.sh"
die() { echo "[deploy] ERROR: $*" >&2; exit 1; }
cd "$root"

[ -f .aws-sam/build/template.yaml ] && [ -f .aws-sam/architecture ] || die "nothing built yet: run make build first"
arch=$(cat .aws-sam/architecture)
need_tool sam
export SAM_CLI_TELEMETRY=0

deploy_section=$(sed -n '/^\[default\.deploy\.parameters\]/,/^\[/p' samconfig.toml)
if ! grep -q '^region *=' <<<"$deploy_section"; then
  echo "[deploy] first deployment: sam deploy --guided (answers are saved to samconfig.toml)" >&2
  exec sam deploy --guided --parameter-overrides "Architecture=$arch"
fi

# The functions' Architecture parameter must match the binaries: an x86_64 bootstrap on an
# arm64 function fails every invocation with Runtime.InvalidEntrypoint.
# (sam saves it as parameter_overrides = "... Architecture=\"x86_64\" ...")
deployed_arch=$(grep -o 'Architecture=[^ ]*' <<<"$deploy_section" | head -1 | cut -d= -f2 | tr -d '\\"' || true)
[ "${deployed_arch:-arm64}" = "$arch" ] || die "built for $arch, but samconfig.toml deploys Architecture=${deployed_arch:-arm64 (the template default)}: rebuild with make build ARCH=${deployed_arch:-arm64}, or set Architecture=$arch in parameter_overrides"
exec sam deploy
