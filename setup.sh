#!/usr/bin/env bash
# One command from a fresh clone to a reproduced pipeline:
#   creates .venv, installs the pinned requirements, then runs `dvc repro` on the defaults.
# Fashion-MNIST is found (FASHION_MNIST_DIR, Debian's dataset-fashion-mnist) or downloaded.
set -euo pipefail
cd "$(dirname "$0")"

python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -r requirements.txt

# `dvc exp run` commits to git: a clone without an identity cannot run experiments.
if ! git config user.email >/dev/null; then
  git config user.email "tunelab@localhost"
  git config user.name "tunelab"
  echo "note: set a local git identity for DVC experiments (git config user.email/user.name)"
fi

source .venv/bin/activate
dvc repro
