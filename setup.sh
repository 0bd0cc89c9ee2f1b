#!/usr/bin/env bash
# One command from a fresh clone to a reproduced pipeline:
#   creates .venv, installs the pinned requirements, then runs `dvc repro` on the defaults.
# Fashion-MNIST is found (FASHION_MNIST_DIR, Debian's dataset-fashion-mnist, data/raw/) or
# downloaded; on a machine that has neither the data nor a route to the download hosts, Debian's
# package is installed where that can work (apt-get as root, or with passwordless sudo).
#
#   bash setup.sh          everything
#   bash setup.sh --data   only the data step, with $PYTHON (default .venv/bin/python)
set -euo pipefail
cd "$(dirname "$0")"

ensure_data() {
  local python=${PYTHON:-.venv/bin/python}
  "$python" -m src.prepare --check-data 2>/dev/null && return 0
  if command -v apt-get >/dev/null && { [ "$(id -u)" -eq 0 ] || sudo -n true 2>/dev/null; }; then
    echo "Fashion-MNIST not found and not downloadable: installing Debian's dataset-fashion-mnist"
    local as_root=""
    [ "$(id -u)" -eq 0 ] || as_root="sudo -n"
    $as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq || true
    $as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist || true
  fi
  "$python" -m src.prepare --check-data  # says where the data is, or how to get it (exit 2)
}

if [ "${1:-}" = "--data" ]; then
  ensure_data
  exit
fi

python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -r requirements.txt

# `dvc exp run` commits to git: a clone without an identity cannot run experiments.
if ! git config user.email >/dev/null; then
  git config user.email "tunelab@localhost"
  git config user.name "tunelab"
  echo "note: set a local git identity for DVC experiments (git config user.email/user.name)"
fi

ensure_data
source .venv/bin/activate
dvc repro
