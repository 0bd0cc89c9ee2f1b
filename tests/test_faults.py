"""Faults a user will cause: interrupting a run, and the run that follows it."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import yaml
from mlflow.tracking import MlflowClient

from tests.conftest import TINY, make_project, sh


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
