#!/usr/bin/env bash
# Validates template.yaml and infra/watch-server.yaml offline: cfn-lint, then `sam validate --lint`. Installs both once
# into .tools/venv (git-ignored).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/infra/tools.sh"
need_tool cfn-lint sam
cd "$root"
cfn-lint template.yaml infra/watch-server.yaml
# Offline: no telemetry, and a region/credentials that are never used.
SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION=us-east-1 AWS_ACCESS_KEY_ID=offline AWS_SECRET_ACCESS_KEY=offline \
  sam validate --lint -t template.yaml
