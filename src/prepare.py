"""Stage `prepare`: Fashion-MNIST -> a verified, stratified subset with cross-validation folds.

Reads  params.yaml `prepare:` and the four IDX files (see src/core/data.py for where they come from).
Writes data/prepared/fashion_mnist.npz   x_train (N, 28, 28) uint8, y_train, fold (N,) int8,
                                         x_test, y_test, x_select, y_select (the selection set:
                                         training images the subset leaves out), the source
                                         indices, and the normalisation mean/std of the
                                         training subset;
       reports/prepare/summary.json      checksums, class counts per split and fold.
Run    python -m src.prepare   (or `dvc repro prepare`)
       python -m src.prepare --check-data   only find (or download) the dataset and say where
"""

from __future__ import annotations

import sys

import numpy as np

from src.core import atomic, data, errors, params, paths


def stratified_subset(labels: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Indices of a class-stratified random subset of ``size`` items, in shuffled order."""
    from sklearn.model_selection import (
        train_test_split,  # 1.2 s to import: only when used
    )
    everything = np.arange(len(labels))
    if size >= len(labels):
        return np.random.default_rng(seed).permutation(everything)
    chosen, _ = train_test_split(everything, train_size=size, stratify=labels, random_state=seed)
    return chosen


def stratified_folds(labels: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Fold id (0..k-1) of each item, class-stratified."""
    from sklearn.model_selection import (
        StratifiedKFold,  # train, evaluate and plot never split
    )
    fold = np.empty(len(labels), dtype=np.int8)
    splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    for i, (_, held_out) in enumerate(splitter.split(np.zeros(len(labels)), labels)):
        fold[held_out] = i
    return fold


def selection_subset(labels: np.ndarray, train_idx: np.ndarray, size: int,
                     seed: int) -> np.ndarray:
    """Indices (into ``labels``) of a stratified ``size`` of the training images that the subset
    ``train_idx`` leaves out: never a training, validation or test image. Drawn after the subset,
    by a call of its own, so the subset and the folds are those a run without it has."""
    if size == 0:
        return np.zeros(0, dtype=np.int64)
    left = np.setdiff1d(np.arange(len(labels)), train_idx)  # sorted: independent of draw order
    return left[stratified_subset(labels[left], size, seed)]


def prepare(arrays: dict[str, np.ndarray], cfg: params.PrepareParams) -> dict[str, np.ndarray]:
    """The prepared dataset (pure): subsets, folds, selection set and training-subset statistics."""
    train_idx = stratified_subset(arrays["train_labels"], cfg.train_size, cfg.seed)
    test_idx = stratified_subset(arrays["test_labels"], cfg.test_size, cfg.seed)
    select_idx = selection_subset(arrays["train_labels"], train_idx, cfg.selection_size, cfg.seed)
    x_train, y_train = arrays["train_images"][train_idx], arrays["train_labels"][train_idx]
    pixels = x_train.astype(np.float64) / 255.0  # statistics of the training subset only
    return {
        "x_train": x_train, "y_train": y_train.astype(np.int64),
        "fold": stratified_folds(y_train, cfg.cv_folds, cfg.seed),
        "x_test": arrays["test_images"][test_idx],
        "y_test": arrays["test_labels"][test_idx].astype(np.int64),
        "train_index": train_idx, "test_index": test_idx,
        "mean": np.float32(pixels.mean()), "std": np.float32(pixels.std()),
        "x_select": arrays["train_images"][select_idx],
        "y_select": arrays["train_labels"][select_idx].astype(np.int64),
        "select_index": select_idx,
    }


def summary(prepared: dict[str, np.ndarray]) -> dict:
    def counts(labels):
        return {name: int((labels == c).sum()) for c, name in enumerate(data.CLASS_NAMES)}
    folds = prepared["fold"]
    return {
        "sha256": data.expected_checksums(),
        "train_size": int(len(prepared["y_train"])), "test_size": int(len(prepared["y_test"])),
        "cv_folds": int(folds.max()) + 1,
        "mean": float(prepared["mean"]), "std": float(prepared["std"]),
        "train_counts": counts(prepared["y_train"]), "test_counts": counts(prepared["y_test"]),
        "selection_size": int(len(prepared["y_select"])),
        "selection_counts": counts(prepared["y_select"]),
        "fold_sizes": [int((folds == k).sum()) for k in range(int(folds.max()) + 1)],
    }


def main() -> None:
    if sys.argv[1:] == ["--check-data"]:  # setup.sh: is the dataset here or fetchable?
        print(f"Fashion-MNIST: {data.locate(paths.RAW)}")
        return
    cfg = params.load("prepare", paths.PARAMS)
    folder = data.locate(paths.RAW)
    arrays = data.load(folder)
    n_train, n_test = len(arrays["train_labels"]), len(arrays["test_labels"])
    if cfg.train_size > n_train or cfg.test_size > n_test:
        raise errors.ParamError(
            f"prepare.train_size = {cfg.train_size} / test_size = {cfg.test_size} exceed the "
            f"dataset ({n_train} / {n_test} images)")
    if cfg.train_size + cfg.selection_size > n_train:
        raise errors.ParamError(
            f"prepare.selection_size = {cfg.selection_size} is more than the "
            f"{n_train - cfg.train_size} training images prepare.train_size = {cfg.train_size} "
            f"leaves out of this dataset")
    prepared = prepare(arrays, cfg)
    atomic.write_npz(paths.PREPARED, prepared)
    atomic.write_json(paths.PREPARE_REPORT, summary(prepared))
    print(f"prepared {len(prepared['y_train'])} train / {len(prepared['y_test'])} test / "
          f"{len(prepared['y_select'])} selection images in {cfg.cv_folds} folds from {folder}")


if __name__ == "__main__":
    errors.run(main, teardown=False)  # DVC waits for the process: no teardown (errors.exit_now)
