#!/usr/bin/env bash
# Validates template.yaml and infra/watch-server.yaml offline: renders template.yaml for every
# parameter combination (infra/render-template.py: the SAM transform, conditions decided) into
# target/rendered, which crates/deploy-check also reads, and runs cfn-lint on the sources and
# each rendering. Installs the tools once into .tools/venv (git-ignored).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/infra/tools.sh"
need_tool cfn-lint sam
cd "$root"
# The renderings go through the same SAM transform `sam validate` runs (samtranslator
# refuses an invalid SAM document), so `sam validate --lint` would only lint again.
"$venv/bin/python" infra/render-template.py target/rendered
# The sources, then the renderings in two processes (cfn-lint is single-threaded). W2001: a
# parameter that only fed a condition is unused once the condition is decided.
cfn-lint template.yaml infra/watch-server.yaml
if ! findings=$(printf '%s\n' target/rendered/*.json |
  xargs -P 2 -n 8 cfn-lint --ignore-checks W2001 -- 2>&1); then
  grep -v "unpublished metrics" <<<"$findings" >&2
  echo "[validate] cfn-lint found problems in a rendering (above)" >&2
  exit 1
fi
echo "[validate] template.yaml, infra/watch-server.yaml and $(ls target/rendered/*.json | wc -l) renderings pass"
