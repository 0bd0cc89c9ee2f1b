"""End to end: sweeps on DVC's real queue with 2 parallel workers, on tiny synthetic data.

Checks that N queued experiments give N DVC experiments and N MLflow parent runs (each with its
fold children) in the repo-root store, none in DVC's throw-away workspaces; that failures are
reported by name with their log; that a re-run only runs what is missing; and, against a real
`mlflow server` on 127.0.0.1, that every run arrives.
"""

from __future__ import annotations

import json
import sys
from collections import Counter

import pytest
from mlflow.tracking import MlflowClient

from src.experiments.dvc_queue import parse_queue_status
from tests.conftest import TINY, make_project, sh
from tests.servers import mlflow_server

pytestmark = pytest.mark.e2e  # real git/DVC repositories, queues and servers

SWEEPS = """
tiny:
  grid: {train.dropout: [0.0, 0.5]}
  baseline: {train.dropout: 0.0}
broken:
  description: the second configuration asks for more images than the synthetic data has
  configs: [{}, {prepare.train_size: 1000}]
  baseline: {}
"""


def sweep(root, env, *args, ok=True):
    return sh(sys.executable, "-m", "src.sweep", *args, "--poll", "1", cwd=root, env=env, ok=ok) \
        if args[0] == "run" else sh(sys.executable, "-m", "src.sweep", *args, cwd=root, env=env, ok=ok)


def parent_runs(uri: str) -> list:
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("tunelab")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    return runs


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    root, env = make_project(tmp_path_factory.mktemp("sweep"), TINY, {"sweeps.yaml": SWEEPS})
    done = sweep(root, env, "run", "tiny", "--seeds", "2", "--jobs", "2")
    return root, env, done


def test_two_workers_give_every_experiment_and_mlflow_run(swept):
    root, env, done = swept
    assert "tiny: 4 completed (of 4)" in done.stdout
    shown = json.loads(sh("dvc", "exp", "show", "--json", cwd=root, env=env).stdout)
    names = {e["name"] for rev in shown for e in rev.get("experiments") or []}
    assert names == {f"tiny--dropout={d}--s{s}" for d in ("0.0", "0.5") for s in (0, 1)}
    runs = parent_runs(f"sqlite:///{root}/mlflow.db")
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 4
    assert Counter(r.data.tags["sweep"] for r in parents) == {"tiny": 4}
    assert {(r.data.tags["sweep.config"], r.data.tags["sweep.seed"]) for r in parents} == {
        (f"dropout={d}", str(s)) for d in ("0.0", "0.5") for s in (0, 1)}
    assert all(r.info.status == "FINISHED" and r.data.params["threads"] == "1" for r in parents)
    children = Counter(r.data.tags["mlflow.parentRunId"] for r in runs
                       if "mlflow.parentRunId" in r.data.tags)
    assert sorted(children.values()) == [2, 2, 2, 2]  # 2 folds each
    assert not list((root / ".dvc").rglob("mlflow.db"))  # nothing logged into throw-away copies
    # The sweep's efficiency: printed, and recorded for benchmarks/train_speed.py.
    assert "sweep tiny: 4 experiments in" in done.stdout
    record = json.loads((root / ".tunelab" / "sweeps" / "tiny.json").read_text())
    assert (record["experiments"], record["workers"]) == (4, 2)
    assert 0 < record["training_share"] < 1 and record["train_samples"] > 0


def test_rerun_runs_only_what_is_missing(swept):
    root, env, _ = swept
    again = sweep(root, env, "run", "tiny", "--seeds", "2", "--jobs", "2")
    assert "4 already succeeded" in again.stdout and "nothing to run" in again.stdout
    more = sweep(root, env, "run", "tiny", "--seeds", "3", "--jobs", "2", "--dry-run")
    assert more.stdout.count("dvc exp run --queue") == 2  # only seed 2 of each configuration
    assert "2 experiments (of 6: 2 configurations x 3 seeds; 4 already succeeded" in more.stdout


def test_failed_experiments_are_named_with_their_log(swept):
    root, env, _ = swept
    failed = sweep(root, env, "run", "broken", "--jobs", "2", ok=False)
    assert failed.returncode == 1
    assert "FAILED broken--train_size=1000--s0" in failed.stdout
    assert "exceed the dataset" in failed.stdout  # the tail of its log says why
    assert "1 completed, 1 failed" in failed.stdout
    status = sweep(root, env, "status").stdout
    # columns: sweep, done, diverged, pruned, failed, running, queued
    assert any(line.split()[:5] == ["broken", "1", "0", "0", "1"] for line in status.splitlines())
    # Run again: the failed task is removed from DVC's queue and its name queued anew.
    again = sweep(root, env, "run", "broken", "--jobs", "2", ok=False)
    assert "1 already succeeded on this commit, 0 still queued, 1 to queue" in again.stdout
    assert "FAILED broken--train_size=1000--s0" in again.stdout
    queue = sh("dvc", "queue", "status", cwd=root, env=env).stdout
    failed_tasks = [t for t in parse_queue_status(queue) if t.status == "Failed"]
    assert [t.name for t in failed_tasks] == ["broken--train_size=1000--s0"]  # the new attempt only


def test_invalid_set_is_refused_before_queueing(swept):
    root, env, _ = swept
    refused = sweep(root, env, "run", "tiny", "--seeds", "2", "--set", "train.dropout=1.5", ok=False)
    assert refused.returncode == 2
    assert "tiny--dropout=0.5--s1: train.dropout = 1.5 is out of range" in refused.stderr
    assert "Traceback" not in refused.stderr
    unknown = sweep(root, env, "run", "nope", ok=False)
    assert unknown.returncode == 2 and "unknown sweep 'nope'" in unknown.stderr


def test_sweep_logs_to_a_real_mlflow_server(tmp_path_factory):
    root, env = make_project(tmp_path_factory.mktemp("served"), TINY, {"sweeps.yaml": SWEEPS})
    store = tmp_path_factory.mktemp("server")
    with mlflow_server(f"sqlite:///{store}/mlflow.db", store / "artifacts", env) as uri:
        env = env | {"MLFLOW_TRACKING_URI": uri}
        sweep(root, env, "run", "tiny", "--seeds", "1", "--jobs", "2")
        runs = parent_runs(uri)
        parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
        assert sorted(r.data.tags["dvc.exp_name"] for r in parents) == [
            "tiny--dropout=0.0--s0", "tiny--dropout=0.5--s0"]
        assert len(runs) == 2 + 2 * 2  # parents + fold children
        assert all(r.info.status == "FINISHED" for r in runs)
        assert not (root / "mlflow.db").exists()  # the explicit URI won
