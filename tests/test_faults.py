"""Faults a user will cause: interrupting a run, and the run that follows it."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
import yaml
from mlflow.tracking import MlflowClient

from tests.conftest import TINY, make_project, sh

pytestmark = pytest.mark.e2e  # real git/DVC repositories, queues and servers


FIRST_FOLD_LIVE = "reports/train/folds/fold_0/metrics.json"  # DVCLive's, rewritten every epoch


def start_training(root, env) -> subprocess.Popen:
    """`python -m src.train` for 500 epochs (long enough to be interrupted mid-fold), once its first
    epoch is logged. Its output goes to train.log (a pipe nobody reads while the test waits could
    fill up and stop it)."""
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["train"]["epochs"] = 500
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    with open(root.parent / "train.log", "w") as log:
        train = subprocess.Popen([sys.executable, "-m", "src.train"], cwd=root, env=env,
                                 stdout=log, stderr=log)
    first_epoch = root / FIRST_FOLD_LIVE
    deadline = time.monotonic() + 300
    while not first_epoch.exists() and time.monotonic() < deadline and train.poll() is None:
        time.sleep(0.2)
    assert first_epoch.exists(), (root.parent / "train.log").read_text()
    return train


def assert_stopped_cleanly(train: subprocess.Popen, root) -> None:
    """Exit 130 with one line, every MLflow run (the parent and the open fold) ended KILLED."""
    train.wait(timeout=180)
    output = (root.parent / "train.log").read_text()
    assert train.returncode == 130, output
    assert "interrupted" in output and "Traceback" not in output
    client = MlflowClient(f"sqlite:///{root}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("tunelab").experiment_id])
    assert runs and {r.info.status for r in runs} == {"KILLED"}


def test_sigterm_mid_training_kills_runs_cleanly_and_repro_recovers(tmp_path):
    root, env = make_project(tmp_path / "project", TINY)
    sh("dvc", "repro", "prepare", cwd=root, env=env)
    train = start_training(root, env)
    train.send_signal(signal.SIGTERM)
    assert_stopped_cleanly(train, root)
    leftovers = [p for p in root.rglob("*.tmp*") if ".dvc" not in p.parts]
    assert leftovers == []  # atomic writes: no half-written file anywhere

    params = yaml.safe_load((root / "params.yaml").read_text())
    params["train"]["epochs"] = 2
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    sh("dvc", "repro", cwd=root, env=env)
    assert "up to date" in sh("dvc", "status", cwd=root, env=env).stdout


def sigterm_on_a_locked_store(tmp_path) -> None:
    """SIGTERM while train's MLflow call waits on a store another process holds locked (~2.5 s):
    the call finishes once the lock goes, then the clean-up ends the runs KILLED and exits 130.
    (Before: the interrupt landed inside SQLAlchemy mid-transaction, its connection kept the
    database locked, and the clean-up's set_terminated failed after MLflow's 20 s busy timeout
    with "database is locked", exit 1.)"""
    root, env = make_project(tmp_path / "project", TINY)
    sh(sys.executable, "-m", "src.prepare", cwd=root, env=env)
    train = start_training(root, env)
    other = sqlite3.connect(root / "mlflow.db", isolation_level=None)
    try:
        other.execute("BEGIN EXCLUSIVE")  # no reader, no writer until the rollback
        time.sleep(1.0)  # an epoch logs to MLflow every ~0.1 s: train now waits on the lock
        train.send_signal(signal.SIGTERM)
        time.sleep(2.0)  # the clean-up starts while the store is still locked
    finally:
        other.rollback()
        other.close()
    assert_stopped_cleanly(train, root)


def test_sigterm_on_a_locked_store_still_ends_runs_killed(tmp_path):
    sigterm_on_a_locked_store(tmp_path)


STOPPING = """
import os, pathlib, select, signal, sys, time
from src.core import errors

received, wakeup = os.pipe()
os.set_blocking(wakeup, False)
signal.set_wakeup_fd(wakeup)  # a byte per signal received, whatever its Python handler does

def main():
    try:
        print("ready", flush=True)
        time.sleep(60)
    finally:  # a stage's clean-up: ending runs, writing files
        os.read(received, 64)  # the first SIGTERM's byte
        print("cleaning", flush=True)
        second = select.select([received], [], [], 60)[0]  # the second SIGTERM arrived
        pathlib.Path(sys.argv[1]).write_text("done after the second" if second else "no second")

errors.run(main)
"""


def a_second_sigterm(tmp_path) -> None:
    """`pkill -f` plus `timeout` deliver SIGTERM twice: the first starts the clean-up, the second
    (sent once the clean-up says it started, and waited for by the clean-up) must let it finish,
    and the exit print no traceback."""
    from tests.conftest import REPO
    marker = tmp_path / "cleaned"
    proc = subprocess.Popen([sys.executable, "-c", STOPPING, str(marker)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "ready\n"
    proc.send_signal(signal.SIGTERM)
    assert proc.stdout.readline() == "cleaning\n"
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert marker.read_text() == "done after the second"
    assert "interrupted" in stderr and "Traceback" not in stderr


def test_a_second_sigterm_does_not_cut_the_clean_up_short(tmp_path):
    a_second_sigterm(tmp_path)


@pytest.fixture
def busy_cores():
    """Every core kept busy by a spinning process of its own (killed afterwards): the load under
    which the clean-up once failed."""
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
                for _ in range(os.cpu_count() or 2)]
    try:
        yield len(spinners)
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


@pytest.mark.slow
def test_sigterm_clean_up_with_every_core_busy(tmp_path, busy_cores):
    assert busy_cores >= 2
    for case in ("second", "locked"):
        (tmp_path / case).mkdir()
    a_second_sigterm(tmp_path / "second")
    sigterm_on_a_locked_store(tmp_path / "locked")


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
