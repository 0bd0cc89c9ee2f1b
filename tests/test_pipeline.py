"""End to end: the real `dvc repro` and `dvc exp run` on tiny synthetic data in a temporary repo.

Checks what a user sees: every stage's outputs, a clean `dvc status`, the experiment in
`dvc exp show --json` with its own metrics, an MLflow parent run per pipeline run with one child
per fold (in the repo-root store, also for the experiment DVC runs in a temporary copy), and
identical metrics when the same params and seed run again.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import TINY, make_project, sh

pytestmark = pytest.mark.e2e  # real git/DVC repositories, queues and servers

FIGURES = {"learning_curves.png", "confusion_matrix.png", "per_class_accuracy.png",
           "cv_folds.png", "misclassified.png"}


def without_timing(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k != "time"}


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return make_project(tmp_path_factory.mktemp("project"), TINY)


@pytest.fixture(scope="module")
def reproduced(project):
    root, env = project
    sh("dvc", "repro", cwd=root, env=env)
    return root, env


def test_repro_writes_every_output(reproduced):
    root, env = reproduced
    assert (root / "data/prepared/fashion_mnist.npz").is_file()
    assert sorted(p.name for p in (root / "models").iterdir()) == ["fold_0.pt", "fold_1.pt"]
    metrics = json.loads((root / "reports/evaluate/metrics.json").read_text())
    assert metrics["status"] == "completed"
    assert 0 <= metrics["test"]["accuracy"] <= 1
    assert set(metrics["cv"]["val_accuracy"]) == {"mean", "std", "n", "ci95_low", "ci95_high"}
    assert metrics["cv"]["val_accuracy"]["n"] == 2
    # each fold model on the same selection set (TINY: 100 images the 200-image subset leaves out)
    assert metrics["selection"]["size"] == 100 and metrics["selection"]["accuracy"]["n"] == 2
    assert 0 <= metrics["selection"]["accuracy"]["mean"] <= 1 and metrics["selection"]["loss"]["n"] == 2
    assert metrics["model"]["params"] > 0 and metrics["time"]["seconds_per_epoch"] > 0
    assert len((root / "reports/evaluate/cv_folds.csv").read_text().splitlines()) == 3
    assert {p.name for p in (root / "reports/figures").glob("*.png")} == FIGURES
    assert (root / "reports/train/live/plots/metrics/val/acc.tsv").is_file()
    assert "up to date" in sh("dvc", "status", cwd=root, env=env).stdout


def test_dvc_plots_render(reproduced, tmp_path):
    root, env = reproduced
    sh("dvc", "plots", "show", "-o", str(tmp_path / "plots"), cwd=root, env=env)
    html = (tmp_path / "plots" / "index.html").read_text()
    assert "Accuracy (mean over folds)" in html and "confusion" in html.lower()


def mlflow_parents(root: Path) -> tuple[MlflowClient, list]:
    client = MlflowClient(f"sqlite:///{root}/mlflow.db")
    experiment = client.get_experiment_by_name("tunelab")
    runs = client.search_runs([experiment.experiment_id])
    return client, [r for r in runs if "mlflow.parentRunId" not in r.data.tags], runs


def test_mlflow_parent_run_with_a_child_per_fold(reproduced):
    root, _ = reproduced
    client, parents, runs = mlflow_parents(root)
    assert len(parents) == 1
    parent = parents[0]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert sorted(c.info.run_name for c in children) == ["fold-0", "fold-1"]
    assert len(client.get_metric_history(children[0].info.run_id, "val/acc")) == 2  # per epoch
    assert parent.info.status == "FINISHED" and parent.data.tags["dvc.exp_name"] == "workspace"
    assert parent.data.params["train.epochs"] == "2"
    assert "test.accuracy" in parent.data.metrics and "cv.val_accuracy.mean" in parent.data.metrics
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id, "figures")}
    assert artifacts == {f"figures/{name}" for name in FIGURES}


def test_same_params_and_seed_give_identical_metrics(reproduced):
    root, env = reproduced
    first = json.loads((root / "reports/evaluate/metrics.json").read_text())
    sh("dvc", "repro", "--force", "train", cwd=root, env=env)
    second = json.loads((root / "reports/evaluate/metrics.json").read_text())
    assert without_timing(first) == without_timing(second)


def test_exp_run_with_a_param_override(reproduced):
    root, env = reproduced
    sh("git", "add", "-A", cwd=root, env=env)
    sh("git", "commit", "-qm", "baseline", cwd=root, env=env)
    sh("dvc", "exp", "run", "-n", "drop5", "-S", "train.dropout=0.5", cwd=root, env=env)
    shown = json.loads(sh("dvc", "exp", "show", "--json", cwd=root, env=env).stdout)
    experiments = [exp for rev in shown for exp in (rev.get("experiments") or [])]
    drop5 = next(e for e in experiments if e["name"] == "drop5")
    data = drop5["revs"][0]["data"]
    assert data["params"]["params.yaml"]["data"]["train"]["dropout"] == 0.5
    metrics = data["metrics"]["reports/evaluate/metrics.json"]["data"]
    assert metrics["status"] == "completed" and "accuracy" in metrics["test"]
    _, parents, _ = mlflow_parents(root)
    names = {p.data.tags["dvc.exp_name"] for p in parents}
    assert "drop5" in names
    run = next(p for p in parents if p.data.tags["dvc.exp_name"] == "drop5")
    assert run.data.params["train.dropout"] == "0.5"
    assert "dvc.baseline_rev" in run.data.tags


def test_divergence_is_recorded_not_crashed(reproduced):
    root, env = reproduced
    sh("dvc", "exp", "run", "-n", "boom", "-S", "train.lr=100", cwd=root, env=env)
    shown = json.loads(sh("dvc", "exp", "show", "--json", cwd=root, env=env).stdout)
    boom = next(e for rev in shown for e in rev.get("experiments") or [] if e["name"] == "boom")
    metrics = boom["revs"][0]["data"]["metrics"]["reports/evaluate/metrics.json"]["data"]
    assert metrics["status"] == "diverged" and "lower train.lr" in metrics["reason"]
    _, parents, _ = mlflow_parents(root)
    run = next(p for p in parents if p.data.tags["dvc.exp_name"] == "boom")
    assert run.info.status == "FAILED" and "diverged" in run.data.tags["status_reason"]


def test_refused_override_leaves_the_last_results(reproduced):
    root, env = reproduced
    metrics = (root / "reports/evaluate/metrics.json").read_text()
    checkpoints = sorted(p.name for p in (root / "models").iterdir())
    failed = sh("dvc", "exp", "run", "-S", "train.dropout=1.5", cwd=root, env=env, ok=False)
    assert failed.returncode != 0
    assert "train.dropout = 1.5 is out of range: must be in [0.0, 1.0)" in failed.stdout + failed.stderr
    assert "Traceback" not in failed.stdout + failed.stderr
    assert (root / "reports/evaluate/metrics.json").read_text() == metrics
    assert sorted(p.name for p in (root / "models").iterdir()) == checkpoints
    assert (root / "reports/train/history.csv").is_file()
    sh("git", "checkout", "params.yaml", cwd=root, env=env)
