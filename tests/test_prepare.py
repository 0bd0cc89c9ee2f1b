"""Stratified subsets and folds, and the prepare stage on synthetic data."""

import dataclasses
import json

import numpy as np
import pytest

from src import prepare
from src.core import data, paths
from src.core.errors import ParamError
from src.core.params import PrepareParams


@pytest.fixture
def labels():
    return np.repeat(np.arange(10), 100)[np.random.default_rng(0).permutation(1000)]


def test_subset_is_stratified_unique_and_seeded(labels):
    chosen = prepare.stratified_subset(labels, 200, seed=3)
    assert len(chosen) == len(set(chosen)) == 200
    assert np.bincount(labels[chosen], minlength=10).tolist() == [20] * 10
    np.testing.assert_array_equal(chosen, prepare.stratified_subset(labels, 200, seed=3))
    assert not np.array_equal(chosen, prepare.stratified_subset(labels, 200, seed=4))


def test_subset_of_everything_is_a_permutation(labels):
    chosen = prepare.stratified_subset(labels, len(labels), seed=0)
    assert sorted(chosen) == list(range(len(labels)))


def test_folds_are_disjoint_complete_and_stratified(labels):
    fold = prepare.stratified_folds(labels, 5, seed=0)
    assert sorted(set(fold)) == [0, 1, 2, 3, 4]  # every item in exactly one fold
    for k in range(5):
        assert np.bincount(labels[fold == k], minlength=10).tolist() == [20] * 10


def test_normalisation_uses_the_training_subset_only(labels):
    images = np.zeros((1000, 28, 28), dtype=np.uint8)
    arrays = {"train_images": images, "train_labels": labels,
              "test_images": np.full((1000, 28, 28), 255, dtype=np.uint8), "test_labels": labels}
    out = prepare.prepare(arrays, PrepareParams(train_size=100, test_size=50, cv_folds=2))
    assert out["mean"] == 0.0  # the all-white test images must not leak into the statistics
    assert out["x_train"].shape == (100, 28, 28) and out["x_test"].shape == (50, 28, 28)


def test_stage_writes_reproducible_outputs(synthetic_dataset, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text("prepare: {train_size: 300, test_size: 100, cv_folds: 3, "
                                          "selection_size: 200}\n")
    prepare.main()
    first = paths.PREPARED.read_bytes()
    summary = json.loads(paths.PREPARE_REPORT.read_text())
    assert summary["train_size"] == 300 and summary["fold_sizes"] == [100, 100, 100]
    assert set(summary["train_counts"].values()) == {30}
    assert summary["selection_size"] == 200 and set(summary["selection_counts"].values()) == {20}
    prepare.main()
    assert paths.PREPARED.read_bytes() == first  # byte-identical: DVC sees the same hash
    loaded = data.load_prepared(paths.PREPARED)
    assert loaded["x_train"].dtype == np.uint8 and loaded["fold"].max() == 2


def selection_arrays():
    """1,000 training images (100 per class; pixel value = index mod 256 to trace them) and 300
    test images."""
    labels = np.repeat(np.arange(10), 100)[np.random.default_rng(1).permutation(1000)]
    images = (np.arange(1000) % 256).astype(np.uint8)[:, None, None] * np.ones((1, 28, 28), np.uint8)
    test_labels = np.repeat(np.arange(10), 30)
    return {"train_images": images, "train_labels": labels,
            "test_images": np.zeros((300, 28, 28), np.uint8), "test_labels": test_labels}


def test_selection_set_is_left_out_stratified_seeded_and_leaves_the_subset_alone():
    arrays = selection_arrays()
    cfg = PrepareParams(train_size=200, test_size=100, cv_folds=2, selection_size=300)
    out = prepare.prepare(arrays, cfg)
    chosen = out["select_index"]
    assert len(chosen) == len(set(chosen)) == 300
    assert not set(chosen) & set(out["train_index"])  # never a training or validation image
    assert np.bincount(out["y_select"], minlength=10).tolist() == [30] * 10
    np.testing.assert_array_equal(out["y_select"], arrays["train_labels"][chosen])
    np.testing.assert_array_equal(out["x_select"], arrays["train_images"][chosen])
    # fixed by prepare.seed, another seed draws another set
    again = prepare.prepare(arrays, cfg)["select_index"]
    np.testing.assert_array_equal(chosen, again)
    other = prepare.prepare(arrays, dataclasses.replace(cfg, seed=1))
    assert not np.array_equal(np.sort(chosen), np.sort(other["select_index"]))
    # the oracle: the subset, folds and test set of a run without a selection set
    without = prepare.prepare(arrays, dataclasses.replace(cfg, selection_size=0))
    for key in ("train_index", "fold", "test_index", "x_train", "mean", "std"):
        np.testing.assert_array_equal(out[key], without[key])
    assert without["x_select"].shape == (0, 28, 28) and len(without["y_select"]) == 0


def test_a_selection_set_the_dataset_cannot_hold_is_refused(synthetic_dataset, tmp_path,
                                                            monkeypatch):
    monkeypatch.chdir(tmp_path)  # the synthetic dataset has 600 training images
    (tmp_path / "params.yaml").write_text(
        "prepare: {train_size: 300, test_size: 100, selection_size: 301}\n")
    with pytest.raises(ParamError, match=r"prepare.selection_size = 301 is more than the 300 "):
        prepare.main()
