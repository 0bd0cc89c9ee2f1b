"""Shared fixtures: a tiny synthetic Fashion-MNIST look-alike in IDX format.

Each class draws a bright 6x6 square at its own position over noise, so a small model learns it in
an epoch or two. ``synthetic_dataset`` writes the four .gz files and a checksums JSON; point
``FASHION_MNIST_DIR`` and ``TUNELAB_CHECKSUMS`` at them to run the real stages on it.
"""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml

from src.core import data
from src.experiments import dvc_queue

REPO = Path(__file__).resolve().parents[1]

# Params small enough that a whole pipeline run is import time plus a second of training.
TINY = {
    "prepare": {"train_size": 200, "test_size": 100, "cv_folds": 2, "seed": 0,
                "selection_size": 100},
    "train": {"conv_channels": [4, 8], "hidden_units": [16], "epochs": 2, "batch_size": 32},
    "plot": {"misclassified": 9},
}


def make_images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.tile(np.arange(10), n // 10 + 1)[:n]
    rng.shuffle(labels)
    images = rng.integers(0, 60, size=(n, 28, 28), dtype=np.uint8)
    for i, c in enumerate(labels):
        row, col = 2 + 8 * (c // 4), 2 + 6 * (c % 4)
        images[i, row:row + 6, col:col + 6] = 250
    return images, labels.astype(np.uint8)


def write_dataset(folder: Path, n_train: int = 600, n_test: int = 200) -> Path:
    """Write the four IDX .gz files into ``folder``; return the path of their checksums JSON."""
    folder.mkdir(parents=True, exist_ok=True)
    x_train, y_train = make_images(n_train, seed=1)
    x_test, y_test = make_images(n_test, seed=2)
    arrays = {"train_images": x_train, "train_labels": y_train,
              "test_images": x_test, "test_labels": y_test}
    sums = {}
    for role, stem in data.FILES.items():
        raw = data.encode_idx(arrays[role])
        (folder / f"{stem}.gz").write_bytes(gzip.compress(raw, mtime=0))
        sums[stem] = data.sha256(raw)
    checksums = folder / "checksums.json"
    checksums.write_text(json.dumps(sums))
    return checksums


@pytest.fixture
def synthetic_dataset(tmp_path, monkeypatch) -> Path:
    """A synthetic dataset folder, with the env vars set so the stages read it."""
    folder = tmp_path / "fashion"
    checksums = write_dataset(folder)
    monkeypatch.setenv("FASHION_MNIST_DIR", str(folder))
    monkeypatch.setenv("TUNELAB_CHECKSUMS", str(checksums))
    return folder


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    # The test models are tiny: one thread is faster than two, and never oversubscribes the CPU
    # when a test starts a subprocess that trains too.
    import torch
    torch.set_num_threads(1)


SH_TIMEOUT_S = 1800  # no single command of the suite takes near this; past it, it hangs


def sh(*args: str, cwd: Path, env: dict, ok: bool = True,
       timeout: float = SH_TIMEOUT_S) -> subprocess.CompletedProcess:
    """Run a command, capturing its output; a failure (unless ``ok`` is False) or a command still
    running after ``timeout`` seconds fails the test with the command's output."""
    try:
        done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{' '.join(args)} still running after {timeout:.0f} s:\n"
                    f"{exc.stdout or ''}\n{exc.stderr or ''}")
    if ok:
        assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done


def make_project(root: Path, overrides: dict, extra_files: dict | None = None) -> tuple[Path, dict]:
    """A fresh git + DVC repo holding this project's code, params.yaml with ``overrides``, and a
    synthetic dataset; returns the root and the environment to run commands in."""
    for item in ("src", "dvc.yaml", ".gitignore", "sweeps.yaml"):
        source = REPO / item
        if source.is_dir():
            shutil.copytree(source, root / item, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, root / item)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for section, values in overrides.items():
        params[section].update(values)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for name, text in (extra_files or {}).items():
        (root / name).write_text(text)
    checksums = write_dataset(root.parent / f"{root.name}-fashion")
    env = dvc_queue.tool_env() | {  # this interpreter's dvc and python first on PATH
        "FASHION_MNIST_DIR": str(checksums.parent), "TUNELAB_CHECKSUMS": str(checksums),
        "TUNELAB_THREADS": "1", "DVC_NO_ANALYTICS": "1", "GIT_CONFIG_NOSYSTEM": "1",
    }
    for inherited in ("MLFLOW_TRACKING_URI", "DVC_ROOT", "DVC_EXP_NAME"):
        env.pop(inherited, None)
    for command in (("git", "init", "-q", "-b", "main"),
                    ("git", "config", "user.email", "test@example.com"),
                    ("git", "config", "user.name", "test"), ("dvc", "init", "-q"),
                    ("git", "add", "-A"), ("git", "commit", "-qm", "init")):
        sh(*command, cwd=root, env=env)
    return root, env
