#!/usr/bin/env bash
# Validates template.yaml and infra/watch-server.yaml offline: cfn-lint, then `sam validate --lint`. Installs both once
# into .tools/venv (git-ignored).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.tools/venv"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
if [ ! -x "$venv/bin/cfn-lint" ] || [ ! -x "$venv/bin/sam" ]; then
  echo "[validate] installing cfn-lint and the SAM CLI into .tools/venv" >&2
  "$venv/bin/pip" install -q "cfn-lint==1.58.0" "aws-sam-cli==1.170.0" >&2
fi
cd "$root"
"$venv/bin/cfn-lint" template.yaml infra/watch-server.yaml
# Offline: no telemetry, and a region/credentials that are never used.
SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION=us-east-1 AWS_ACCESS_KEY_ID=offline AWS_SECRET_ACCESS_KEY=offline \
  "$venv/bin/sam" validate --lint -t template.yaml
