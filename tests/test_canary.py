"""Canary runs (src/experiments/canary.py): the comparison of two runs' numbers (pure), the canary
params and cache key, and end to end in a clone of this project: a comment and a new metric keep a
commit's numbers, a changed seed rule does not."""

from __future__ import annotations

import copy
import math
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml

from src.core.errors import TunelabError
from src.experiments import canary
from tests.conftest import REPO

METRICS = {
    "status": "completed",
    "test": {"accuracy": 0.38, "accuracy_std": 0.0282842712474619, "loss": 2.078178882598877,
             "per_class_accuracy": {"Trouser": 0.9, "Coat": 0.0}},
    "cv": {"val_accuracy": {"mean": 0.4000000059604645, "std": 0.047, "n": 2, "ci95_low": -0.02},
           "train_val_gap": 0.036666661500930786},
    "model": {"params": 421834},
    "time": {"seconds_per_epoch": 0.15, "train_seconds": 0.30, "epochs": 2},
    "device": {"train": "cpu", "evaluate": "cpu", "gpus": 0},
}
HISTORY = [{"fold": "0", "epoch": "1", "train_loss": "2.3418485514322915", "val_acc": "0.36666667461395264",
            "lr": "0.001", "seconds": "0.16"},
           {"fold": "1", "epoch": "1", "train_loss": "2.265544637044271", "val_acc": "0.4333333373069763",
            "lr": "0.001", "seconds": "0.11"}]
FOLDS = [{"fold": "0", "status": "completed", "final_val_accuracy": "0.36666667461395264",
          "seconds_per_epoch": "0.17"}]
OUTPUTS = {"metrics": METRICS, "reports/train/history.csv": HISTORY, "reports/evaluate/cv_folds.csv": FOLDS}


def changed(outputs: dict, where: tuple, value) -> dict:
    out = copy.deepcopy(outputs)
    node = out
    for key in where[:-1]:
        node = node[key]
    node[where[-1]] = value
    return out


def test_the_same_outputs_are_the_same():
    assert canary.differences(OUTPUTS, copy.deepcopy(OUTPUTS)) == []


def test_a_metric_in_one_run_only_is_no_difference():
    # `evaluate` gaining a metric (or losing one) changes no number that both runs make.
    new = changed(OUTPUTS, ("metrics", "test", "top2_accuracy"), 0.61)
    new = changed(new, ("metrics", "calibration"), {"ece": 0.12})
    assert canary.differences(OUTPUTS, new) == []
    assert canary.differences(new, OUTPUTS) == []


def test_a_changed_accuracy_differs_and_is_named():
    new = changed(OUTPUTS, ("metrics", "test", "accuracy"), 0.39)
    assert canary.differences(OUTPUTS, new) == ["metrics.json test.accuracy: 0.38 -> 0.39"]


def test_numbers_are_compared_bit_for_bit():
    mean = METRICS["cv"]["val_accuracy"]["mean"]
    new = changed(OUTPUTS, ("metrics", "cv", "val_accuracy", "mean"), float(np.nextafter(mean, 1)))
    assert len(canary.differences(OUTPUTS, new)) == 1
    new = changed(OUTPUTS, ("metrics", "model", "params"), 421835)
    assert canary.differences(OUTPUTS, new) == ["metrics.json model.params: 421834 -> 421835"]
    new = changed(OUTPUTS, ("metrics", "test", "accuracy_std"), None)  # a number became null
    assert len(canary.differences(OUTPUTS, new)) == 1
    assert canary.same_bits(math.nan, math.nan) and canary.same_bits(None, None)
    assert not canary.same_bits(0.0, -0.0) and not canary.same_bits(0.0, None)


def test_times_and_devices_are_ignored():
    new = changed(OUTPUTS, ("metrics", "time"), {"seconds_per_epoch": 9.0, "train_seconds": 18.0,
                                                 "epochs": 3})
    new = changed(new, ("metrics", "device"), {"train": "cuda:0 (H100)", "evaluate": "cpu", "gpus": 1})
    new = changed(new, ("metrics", "test", "seconds"), 3.0)
    new = changed(new, ("reports/train/history.csv", 0, "seconds"), "0.99")
    new = changed(new, ("reports/evaluate/cv_folds.csv", 0, "seconds_per_epoch"), "0.5")
    assert canary.differences(OUTPUTS, new) == []


def test_an_intervals_bounds_are_not_compared_its_mean_and_sd_are():
    # the committed pooling study's commit and today's code: the same folds, mean and sd; the
    # t quantile of the interval computed another way (1e-7 relative)
    new = changed(OUTPUTS, ("metrics", "cv", "val_accuracy", "ci95_low"), -0.0200000001)
    new = changed(new, ("metrics", "cv", "val_accuracy", "ci95_high"), 0.82)
    assert canary.differences(OUTPUTS, new) == []
    new = changed(new, ("metrics", "cv", "val_accuracy", "std"), 0.048)
    assert canary.differences(OUTPUTS, new) == ["metrics.json cv.val_accuracy.std: 0.047 -> 0.048"]


def test_an_evaluation_loss_is_compared_within_float32_ulps_and_nothing_else_is():
    # 9c9486c's larger evaluation batches: one fold's validation loss one float32 ulp apart
    a, b = 1.8297780752182007, 1.8297781944274902
    rows = [dict(HISTORY[1], val_loss=str(a))]
    old = changed(OUTPUTS, ("reports/train/history.csv",), rows)
    old = changed(old, ("metrics", "cv", "val_loss"), {"mean": 2.249501407146454})
    new = changed(old, ("reports/train/history.csv", 0, "val_loss"), str(b))
    new = changed(new, ("metrics", "cv", "val_loss", "mean"), 2.2495014667510986)
    new = changed(new, ("metrics", "test", "loss"), METRICS["test"]["loss"] * (1 + 5e-7))
    assert canary.differences(old, new) == []
    far = changed(new, ("metrics", "test", "loss"), METRICS["test"]["loss"] * (1 + 1e-5))
    assert canary.differences(old, far) == [
        f"metrics.json test.loss: {METRICS['test']['loss']!r} -> {METRICS['test']['loss'] * (1 + 1e-5)!r}"]
    train = changed(old, ("reports/train/history.csv", 0, "train_loss"),
                    str(float(HISTORY[1]["train_loss"]) * (1 + 1e-7)))
    assert len(canary.differences(old, train)) == 1  # a training loss: bit for bit
    acc = changed(old, ("metrics", "test", "accuracy"), 0.38 * (1 + 1e-9))
    assert len(canary.differences(old, acc)) == 1


def test_tables_differ_in_a_number_or_the_row_count_not_in_a_column_of_one():
    history = ("reports/train/history.csv", 1, "val_acc")
    assert canary.differences(OUTPUTS, changed(OUTPUTS, history, "0.4333333373069764")) == [
        "reports/train/history.csv row 1 val_acc: 0.4333333373069763 -> 0.4333333373069764"]
    shorter = changed(OUTPUTS, ("reports/train/history.csv",), HISTORY[:1])
    assert canary.differences(OUTPUTS, shorter) == ["reports/train/history.csv: 2 rows -> 1"]
    extra = changed(OUTPUTS, ("reports/train/history.csv", 0, "grad_norm"), "1.5")
    assert canary.differences(OUTPUTS, extra) == []
    status = changed(OUTPUTS, ("reports/evaluate/cv_folds.csv", 0, "status"), "early_stopped")
    assert canary.differences(OUTPUTS, status) == []  # text, not a number: what it says is in numbers
    gone = {k: v for k, v in OUTPUTS.items() if k != "reports/evaluate/cv_folds.csv"}
    assert canary.differences(OUTPUTS, gone) == []


def test_canary_params_shrink_the_run_and_keep_everything_else():
    config = yaml.safe_load((REPO / "params.yaml").read_text())
    config["train"] |= {"lr": 0.01, "seed": 3, "patience": 2}
    params = canary.canary_params(config)
    assert params["prepare"] | {"seed": 0} == {"train_size": 300, "test_size": 100, "cv_folds": 2,
                                               "seed": config["prepare"]["seed"],
                                               "selection_size": 100}
    assert params["train"] == config["train"] | {"epochs": 1, "patience": 0}
    assert params["plot"] == config["plot"] and config["train"]["epochs"] == 10  # not modified
    old = copy.deepcopy(config)
    del old["train"]["patience"]  # a commit before the key existed gets no such key
    assert "patience" not in canary.canary_params(old)["train"]
    del old["prepare"]["selection_size"]  # nor before the selection set existed
    assert "selection_size" not in canary.canary_params(old)["prepare"]
    with pytest.raises(TunelabError, match="`train:`"):
        canary.canary_params({"prepare": {}})


def test_the_cache_key_changes_with_each_of_its_parts():
    params = canary.canary_params(yaml.safe_load((REPO / "params.yaml").read_text()))
    key = canary.cache_key("a" * 40, "d1", params)
    assert key == canary.cache_key("a" * 40, "d1", copy.deepcopy(params))
    other = changed(params, ("train", "lr"), 0.01)
    assert len({key, canary.cache_key("b" * 40, "d1", params), canary.cache_key("a" * 40, "d2", params),
                canary.cache_key("a" * 40, "d1", other)}) == 4


def test_a_config_is_labelled_by_what_differs_from_the_defaults():
    defaults = {"train": {"lr": 0.001, "seed": 0}, "prepare": {"seed": 0}}
    assert canary.label(defaults, defaults) == "defaults"
    assert canary.label(changed(defaults, ("train", "lr"), 0.01), defaults) == "train.lr=0.01"
    assert len(canary.label({"train": {"x": "y" * 200}}, defaults)) == 80


# -- git and real stages ----------------------------------------------------------------------------

def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True,
                          text=True).stdout.strip()


def commit_all(root: Path, message: str) -> str:
    git(root, "add", "-A")
    git(root, "commit", "-qm", message)
    return git(root, "rev-parse", "HEAD")


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, f"{path}: the test's anchor {old!r} moved; update the test"
    path.write_text(text.replace(old, new))


@pytest.fixture
def clone(tmp_path) -> Path:
    """A clone of this project (its committed HEAD) with a git identity."""
    root = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(REPO), str(root)], check=True)
    git(root, "config", "user.email", "test@example.com")
    git(root, "config", "user.name", "test")
    return root


@pytest.mark.e2e
def test_the_code_digest_follows_the_code_not_the_docs(clone):
    digest = canary.code_digest(clone, canary.code_files(clone))
    (clone / "README.md").write_text("edited\n")
    (clone / "reports" / "note.txt").write_text("new\n")
    assert canary.code_digest(clone, canary.code_files(clone)) == digest
    (clone / "src" / "core" / "new_module.py").write_text("X = 1\n")  # untracked code counts
    with_new = canary.code_digest(clone, canary.code_files(clone))
    assert with_new != digest
    edit(clone / "src" / "core" / "engine.py", "return seed * 1000 + fold", "return seed * 1000 + fold ")
    assert canary.code_digest(clone, canary.code_files(clone)) not in (digest, with_new)


@pytest.mark.e2e
def test_a_comment_and_a_new_metric_keep_the_numbers_a_seed_rule_does_not(clone, synthetic_dataset,
                                                                           capsys):
    a = git(clone, "rev-parse", "HEAD")
    config = yaml.safe_load((clone / "params.yaml").read_text())
    # B: a comment in train, and evaluate gains a metric.
    edit(clone / "src" / "train.py", "def mean_curve(",
         "# A comment that changes no number.\ndef mean_curve(")
    edit(clone / "src" / "evaluate.py", '"status": Status.COMPLETED,',
         '"status": Status.COMPLETED, "canary_extra": {"answer": 42.0},')
    b = commit_all(clone, "B: a comment and a new metric")
    assert canary.same_numbers(a, [config], root=clone) is True
    assert f"canary {a[:8]} defaults: same (key" in capsys.readouterr().err
    assert canary.same_numbers(a, [config], root=clone) is True
    assert f"canary {a[:8]} defaults: same (cached, key" in capsys.readouterr().err
    # C: the per-fold seed rule changes the initial weights: every number moves. The cache holds B's
    # "same" for A; it must not answer for C's tree.
    edit(clone / "src" / "core" / "engine.py", "return seed * 1000 + fold", "return seed * 1000 + fold + 7")
    commit_all(clone, "C: another seed per fold")
    assert canary.same_numbers(a, [config], root=clone) is False
    assert canary.same_numbers(b, [config], root=clone) is False
    err = capsys.readouterr().err
    assert f"canary {a[:8]} defaults: differs (key" in err and "metrics.json" in err
    assert git(clone, "worktree", "list").count("\n") == 0  # only the clone itself: temp trees gone


@pytest.mark.e2e
def test_it_cannot_tell_without_the_commit_or_when_the_old_code_fails(tmp_path, capsys):
    root = tmp_path / "repo"
    (root / "src").mkdir(parents=True)
    (root / "src" / "__init__.py").write_text("")
    (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": {
        stage: {"cmd": "python -c \"import sys; sys.exit('broken stage')\""}
        for stage in canary.STAGES}}))
    git(tmp_path, "init", "-q", str(root))
    git(root, "config", "user.email", "test@example.com")
    git(root, "config", "user.name", "test")
    a = commit_all(root, "A: stages that fail")
    config = {"prepare": {"seed": 0}, "train": {"seed": 0}}
    assert canary.same_numbers("0" * 40, [config], root=root) is None
    assert "cannot tell (commit not in this clone)" in capsys.readouterr().err
    assert canary.same_numbers(a, [config], root=root) is None
    err = capsys.readouterr().err
    assert "cannot tell (commit: `python -c" in err and err.rstrip().endswith("broken stage)")
    assert git(root, "worktree", "list").count("\n") == 0
    assert not (root / canary.CACHE).exists()  # "cannot tell" is not cached
    assert canary.same_numbers(a, [], root=root) is True  # nothing to compare
