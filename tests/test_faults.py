"""Faults a user will cause: interrupting a run, and the run that follows it."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
import yaml
from mlflow.tracking import MlflowClient

from tests.conftest import TINY, make_project, sh

pytestmark = pytest.mark.e2e  # real git/DVC repositories, queues and servers


def test_sigterm_mid_training_kills_runs_cleanly_and_repro_recovers(tmp_path):
    root, env = make_project(tmp_path / "project", TINY)
    sh("dvc", "repro", "prepare", cwd=root, env=env)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["train"]["epochs"] = 500  # long enough to be interrupted mid-fold
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    train = subprocess.Popen([sys.executable, "-m", "src.train"], cwd=root, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first_epoch = root / "reports/train/folds/fold_0/metrics.json"
    deadline = time.monotonic() + 120
    while not first_epoch.exists() and time.monotonic() < deadline and train.poll() is None:
        time.sleep(0.2)
    assert first_epoch.exists(), train.communicate()
    train.send_signal(signal.SIGTERM)
    _, stderr = train.communicate(timeout=60)
    assert train.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr

    client = MlflowClient(f"sqlite:///{root}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("tunelab").experiment_id])
    assert runs and {r.info.status for r in runs} == {"KILLED"}  # parent and the open fold
    leftovers = [p for p in root.rglob("*.tmp*") if ".dvc" not in p.parts]
    assert leftovers == []  # atomic writes: no half-written file anywhere

    params["train"]["epochs"] = 2
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    sh("dvc", "repro", cwd=root, env=env)
    assert "up to date" in sh("dvc", "status", cwd=root, env=env).stdout


STOPPING = """
import pathlib, sys, time
from src.core import errors

def main():
    try:
        print("ready", flush=True)
        time.sleep(60)
    finally:  # a stage's clean-up: ending runs, writing files
        print("cleaning", flush=True)
        time.sleep(1.0)
        pathlib.Path(sys.argv[1]).write_text("done")

errors.run(main)
"""


def test_a_second_sigterm_does_not_cut_the_clean_up_short(tmp_path):
    """`pkill -f` plus `timeout` deliver SIGTERM twice: the first starts the clean-up, the second
    must let it finish (and the exit print no traceback)."""
    from tests.conftest import REPO
    marker = tmp_path / "cleaned"
    proc = subprocess.Popen([sys.executable, "-c", STOPPING, str(marker)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "ready\n"
    proc.send_signal(signal.SIGTERM)
    assert proc.stdout.readline() == "cleaning\n"
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    assert marker.read_text() == "done"
    assert "interrupted" in stderr and "Traceback" not in stderr


# --- the queue under stress (slow: real sweeps; CI runs them with `pytest -m slow`) ---------------

SWEEPS = """
tiny:
  grid: {train.dropout: [0.0, 0.5]}
  baseline: {train.dropout: 0.0}
other:
  grid: {train.dropout: [0.1, 0.2]}
  baseline: {train.dropout: 0.1}
twenty:
  grid: {train.dropout: [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]}
  baseline: {train.dropout: 0.0}
"""


def start_sweep(root, env, *args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "src.sweep", "run", *args, "--poll", "1"],
                            cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def parents(root) -> list:
    client = MlflowClient(f"sqlite:///{root}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("tunelab").experiment_id],
                              max_results=1000)
    return [r for r in runs if "mlflow.parentRunId" not in r.data.tags]


def queue_status(root, env) -> str:
    """`dvc queue status`, retried as src.sweep does: it fails now and then while a worker
    rewrites its infofile (DVC writes it in place)."""
    for _ in range(10):
        done = sh("dvc", "queue", "status", cwd=root, env=env, ok=False)
        if done.returncode == 0:
            return done.stdout
        assert "unexpected error" in done.stderr, done.stderr
        time.sleep(0.5)
    raise AssertionError(f"dvc queue status kept failing:\n{done.stderr}")


@pytest.mark.slow
def test_sigkilled_worker_leaves_no_orphans_and_a_rerun_finishes(tmp_path):
    import psutil
    root, env = make_project(tmp_path / "project", TINY | {"train": TINY["train"] | {"epochs": 20}},
                             {"sweeps.yaml": SWEEPS})
    sweep = start_sweep(root, env, "tiny", "--jobs", "1")
    deadline = time.monotonic() + 180
    while "Running" not in queue_status(root, env) and time.monotonic() < deadline:
        time.sleep(1)
    workers = [p for p in psutil.process_iter(["cmdline", "cwd"])
               if "queue-worker" in " ".join(p.info["cmdline"] or []) and p.info["cwd"] == str(root)]
    assert workers, "no queue worker found"
    for worker in workers:
        worker.kill()  # SIGKILL
    out, _ = sweep.communicate(timeout=600)  # must not hang on the orphaned Running entry
    assert "no queue worker is alive" in out or "no process runs it" in out, out
    rerun = start_sweep(root, env, "tiny", "--jobs", "1")
    out, _ = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, out
    assert "tiny: 2 completed (of 2)" in out
    assert "Running" not in queue_status(root, env)
    assert len(parents(root)) >= 2


@pytest.mark.slow
def test_two_sweeps_at_once_on_a_fresh_store(tmp_path):
    root, env = make_project(tmp_path / "project", TINY, {"sweeps.yaml": SWEEPS})
    first = start_sweep(root, env, "tiny", "--jobs", "1")
    second = start_sweep(root, env, "other", "--jobs", "1")
    outputs = [p.communicate(timeout=900)[0] for p in (first, second)]
    assert [first.returncode, second.returncode] == [0, 0], outputs
    assert "tiny: 2 completed" in outputs[0] and "other: 2 completed" in outputs[1]
    names = sorted(r.data.tags["dvc.exp_name"] for r in parents(root))
    assert names == ["other--dropout=0.1--s0", "other--dropout=0.2--s0",
                     "tiny--dropout=0.0--s0", "tiny--dropout=0.5--s0"]


@pytest.mark.slow
def test_twenty_experiments_two_workers_no_lock_errors(tmp_path):
    root, env = make_project(tmp_path / "project", TINY, {"sweeps.yaml": SWEEPS})
    sweep = start_sweep(root, env, "twenty", "--seeds", "2", "--jobs", "2")
    out, _ = sweep.communicate(timeout=2400)
    assert sweep.returncode == 0, out
    assert "twenty: 20 completed (of 20)" in out
    found = parents(root)
    assert len(found) == 20 and {r.info.status for r in found} == {"FINISHED"}
    logs = "".join(sh("dvc", "queue", "logs", r.data.tags["dvc.exp_name"], cwd=root,
                      env=env).stdout for r in found)
    assert "database is locked" not in logs
