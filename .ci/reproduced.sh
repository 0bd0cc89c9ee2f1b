#!/usr/bin/env bash
# After `bash setup.sh` (its `dvc repro`): is the pipeline reproduced? `dvc status` must be clean,
# and the reproduced metrics must match the committed ones (.ci/check_reproduction.py says how
# closely). Run by .ci/run and by the forge's workflows (.github/workflows/ci.yml, .gitlab-ci.yml).
set -euo pipefail
cd "$(dirname "$0")/.."

committed=$(mktemp)
trap 'rm -f "$committed"' EXIT
git show HEAD:reports/evaluate/metrics.json > "$committed"
.venv/bin/dvc status -q || { echo "dvc status is not clean after dvc repro:"; .venv/bin/dvc status; exit 1; }
.venv/bin/python .ci/check_reproduction.py "$committed" reports/evaluate/metrics.json
