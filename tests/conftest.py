"""Shared fixtures: a tiny synthetic Fashion-MNIST look-alike in IDX format.

Each class draws a bright 6x6 square at its own position over noise, so a small model learns it in
an epoch or two. ``synthetic_dataset`` writes the four .gz files and a checksums JSON; point
``FASHION_MNIST_DIR`` and ``TUNELAB_CHECKSUMS`` at them to run the real stages on it.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from src import data

REPO = Path(__file__).resolve().parents[1]


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
