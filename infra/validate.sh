#!/usr/bin/env bash
# Validates template.yaml and infra/watch-server.yaml offline: cfn-lint, then `sam validate --lint`;
# then renders template.yaml for every parameter combination (infra/render-template.py: the SAM
# transform, conditions decided) into target/rendered and lints each rendering, which
# crates/deploy-check also reads. Installs the tools once into .tools/venv (git-ignored).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/infra/tools.sh"
need_tool cfn-lint sam
cd "$root"
cfn-lint template.yaml infra/watch-server.yaml
# Offline: no telemetry, and a region/credentials that are never used.
SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION=us-east-1 AWS_ACCESS_KEY_ID=offline AWS_SECRET_ACCESS_KEY=offline \
  sam validate --lint -t template.yaml
"$venv/bin/python" infra/render-template.py target/rendered
# W2001: a parameter that only fed a condition is unused once the condition is decided.
if ! findings=$(cfn-lint --ignore-checks W2001 -- target/rendered/*.json 2>&1); then
  grep -v "unpublished metrics" <<<"$findings" >&2
  echo "[validate] cfn-lint found problems in a rendering (above)" >&2
  exit 1
fi
echo "[validate] template.yaml, infra/watch-server.yaml and $(ls target/rendered/*.json | wc -l) renderings pass"
