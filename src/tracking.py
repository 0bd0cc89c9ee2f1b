"""Experiment tracking behind one seam: the training loop talks to a :class:`Tracker`, which fans
out to DVCLive (per-fold folders next to the stage's outputs) and MLflow (a parent run per pipeline
run, a child run per fold, a metric per epoch). Tests pass :class:`NullTracker`.

Where MLflow logs: ``$MLFLOW_TRACKING_URI`` if set (a shared ``mlflow server``, say), otherwise
``sqlite:///<repo root>/mlflow.db`` with artifacts in ``<repo root>/mlartifacts``. The repo root is
``$DVC_ROOT`` when DVC runs the stage: queued experiments run in throw-away copies under
``.dvc/tmp/exps``, and a path relative to the working directory would log into the copy.
"""

from __future__ import annotations

import math
import os
import subprocess
import time
from pathlib import Path
from typing import Protocol

from src import atomic
from src.errors import TunelabError

EXPERIMENT = os.environ.get("MLFLOW_EXPERIMENT_NAME", "tunelab")


def repo_root() -> Path:
    return Path(os.environ.get("DVC_ROOT") or Path.cwd()).resolve()


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{repo_root() / 'mlflow.db'}"


def _client(uri: str):
    from mlflow.tracking import MlflowClient  # mlflow takes seconds to import: only when used
    return MlflowClient(tracking_uri=uri)


def init_store(uri: str | None = None, experiment: str = EXPERIMENT) -> str:
    """Create the store (schema migration) and the experiment once; return the experiment id.

    Run this before parallel workers start: several processes migrating a fresh SQLite database at
    once corrupt it.
    """
    uri = uri or tracking_uri()
    try:
        client = _client(uri)
        found = client.get_experiment_by_name(experiment)
        if found is not None:
            return found.experiment_id
        # Artifacts next to the database, not relative to whichever directory created the experiment.
        location = None if os.environ.get("MLFLOW_TRACKING_URI") else \
            (repo_root() / "mlartifacts").as_uri()
        try:
            return client.create_experiment(experiment, artifact_location=location)
        except Exception:  # another process created it in between
            found = client.get_experiment_by_name(experiment)
            if found is None:
                raise
            return found.experiment_id
    except TunelabError:
        raise
    except Exception as error:
        raise TunelabError(f"MLflow tracking store {uri} is unusable: {error}") from error


def trained_since(since: float, prefix: str, uri: str | None = None) -> set[str]:
    """Names of the DVC experiments starting with ``prefix`` whose `train` stage ran since
    ``since`` (seconds since the epoch): each opened an MLflow parent run. An experiment that DVC
    restored from its run cache (the same stage, params and inputs ran before) opened none."""
    client = _client(uri or tracking_uri())
    found = client.get_experiment_by_name(EXPERIMENT)
    if found is None:
        return set()
    runs = client.search_runs(
        [found.experiment_id], max_results=50_000,  # the SQL store's limit per page
        filter_string=f"attributes.start_time >= {int(since * 1000)} "
                      f"and tags.`dvc.exp_name` LIKE '{prefix}%'")
    return {run.data.tags["dvc.exp_name"] for run in runs}


def store_lock():
    """An inter-process lock beside the default store, held while a sweep creates it."""
    from filelock import FileLock
    return FileLock(str(repo_root() / ".mlflow.db.lock"))


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def run_tags() -> dict[str, str]:
    """Tags linking an MLflow run to its DVC experiment and git commit."""
    from src.sweeps import parse_name
    name = os.environ.get("DVC_EXP_NAME", "workspace")
    tags = {"dvc.exp_name": name}
    tags |= {f"sweep.{k}" if k != "sweep" else k: v for k, v in (parse_name(name) or {}).items()}
    if os.environ.get("DVC_EXP_BASELINE_REV"):
        tags["dvc.baseline_rev"] = os.environ["DVC_EXP_BASELINE_REV"]
    commit = git_commit()
    if commit:
        tags["git.commit"] = tags["mlflow.source.git.commit"] = commit
    return tags


def flatten(data: dict, prefix: str = "") -> dict[str, float]:
    """``{"cv": {"val_accuracy": {"mean": x}}}`` -> ``{"cv.val_accuracy.mean": x}`` (numbers only)."""
    flat = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            flat[name] = float(value)
    return flat


class Tracker(Protocol):
    def start_fold(self, fold: int) -> None: ...
    def log_epoch(self, fold: int, metrics: dict[str, float]) -> None: ...
    def end_fold(self, fold: int, status: str) -> None: ...


class NullTracker:
    def start_fold(self, fold: int) -> None:
        pass

    def log_epoch(self, fold: int, metrics: dict[str, float]) -> None:
        pass

    def end_fold(self, fold: int, status: str) -> None:
        pass


def metric_name(key: str) -> str:
    """``val_acc`` -> ``val/acc``: the names DVCLive and MLflow show grouped by split."""
    split, _, name = key.partition("_")
    return f"{split}/{name}" if name else key


class DVCLiveTracker:
    """One DVCLive folder per fold (``<root>/fold_<k>``), step = epoch."""

    def __init__(self, root: Path):
        self.root = root
        self.live = None

    def start_fold(self, fold: int) -> None:
        from dvclive import Live
        # dvcyaml=False: plots are declared in dvc.yaml by hand; Live would rewrite it otherwise.
        self.live = Live(str(self.root / f"fold_{fold}"), dvcyaml=False, save_dvc_exp=False,
                         report=None)

    def log_epoch(self, fold: int, metrics: dict[str, float]) -> None:
        self.live.step = int(metrics["epoch"])
        for key, value in metrics.items():
            if key != "epoch":
                self.live.log_metric(metric_name(key), value)
        self.live.next_step()

    def end_fold(self, fold: int, status: str) -> None:
        self.live.end()
        self.live = None


class MLflowTracker:
    """A parent run for the pipeline run, a child run per fold with per-epoch metrics."""

    def __init__(self, uri: str, experiment_id: str, run_name: str, params: dict, tags: dict):
        from mlflow.entities import Param
        self.client = _client(uri)
        self.uri, self.experiment_id = uri, experiment_id
        self.parent = self.client.create_run(experiment_id, run_name=run_name, tags=tags).info.run_id
        self.client.log_batch(self.parent, params=[Param(k, str(v)) for k, v in params.items()])
        self.children: dict[int, str] = {}

    def start_fold(self, fold: int) -> None:
        run = self.client.create_run(self.experiment_id, run_name=f"fold-{fold}",
                                     tags={"mlflow.parentRunId": self.parent, "fold": str(fold)})
        self.children[fold] = run.info.run_id

    def log_epoch(self, fold: int, metrics: dict[str, float]) -> None:
        from mlflow.entities import Metric
        now = int(time.time() * 1000)
        step = int(metrics["epoch"])
        batch = [Metric(metric_name(k), float(v), now, step) for k, v in metrics.items()
                 if k != "epoch" and math.isfinite(v)]  # MLflow refuses NaN in some stores
        self.client.log_batch(self.children[fold], metrics=batch)

    def end_fold(self, fold: int, status: str) -> None:
        self.client.set_terminated(self.children.pop(fold), status=_mlflow_status(status))

    def abort(self, status: str) -> None:
        """End every open run with ``status`` (FAILED or KILLED)."""
        for run_id in [*self.children.values(), self.parent]:
            self.client.set_terminated(run_id, status=status)
        self.children.clear()

    def handle(self) -> dict:
        # No URI here: it is machine-specific; readers resolve it with tracking_uri() again.
        return {"experiment_id": self.experiment_id, "run_id": self.parent}


def _mlflow_status(status: str) -> str:
    return "FAILED" if status == "diverged" else "FINISHED"


class FanOut:
    def __init__(self, *trackers: Tracker):
        self.trackers = trackers

    def start_fold(self, fold: int) -> None:
        for t in self.trackers:
            t.start_fold(fold)

    def log_epoch(self, fold: int, metrics: dict[str, float]) -> None:
        for t in self.trackers:
            t.log_epoch(fold, metrics)

    def end_fold(self, fold: int, status: str) -> None:
        for t in self.trackers:
            t.end_fold(fold, status)


class ParentRun:
    """The parent run that train created, reopened by plot to add the results."""

    def __init__(self, handle_file: Path):
        import json
        try:
            handle = json.loads(Path(handle_file).read_text())
        except FileNotFoundError:
            raise TunelabError(f"{handle_file} not found: run `dvc repro train` first") from None
        self.client = _client(tracking_uri())  # the same rule train used to find the store
        self.run_id = handle["run_id"]

    def log_metrics(self, metrics: dict) -> None:
        from mlflow.entities import Metric
        now = int(time.time() * 1000)
        items = [Metric(k, v, now, 0) for k, v in flatten(metrics).items()]
        for i in range(0, len(items), 900):  # log_batch takes at most 1000 metrics
            self.client.log_batch(self.run_id, metrics=items[i:i + 900])

    def log_artifacts(self, folder: Path, artifact_path: str) -> None:
        self.client.log_artifacts(self.run_id, str(folder), artifact_path)

    def set_tags(self, tags: dict[str, str]) -> None:
        for key, value in tags.items():
            self.client.set_tag(self.run_id, key, value)

    def finish(self, status: str = "FINISHED") -> None:
        self.client.set_terminated(self.run_id, status=status)


def save_handle(path: Path, tracker: MLflowTracker) -> None:
    atomic.write_json(path, tracker.handle())
