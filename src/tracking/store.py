"""The MLflow store: where runs go, creating it once, and the run helpers every door uses.

Where MLflow logs: ``$MLFLOW_TRACKING_URI`` if set (a shared ``mlflow server``, say), otherwise
``sqlite:///<repo root>/mlflow.db`` with artifacts in ``<repo root>/mlartifacts`` (the repo root is
``$DVC_ROOT`` inside DVC's temporary copies: :func:`src.core.paths.repo_root`). MLflow takes
seconds to import, so it is imported where it is used.
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from src.core import atomic, errors, naming, paths
from src.core.errors import TunelabError

T = TypeVar("T")

EXPERIMENT = os.environ.get("MLFLOW_EXPERIMENT_NAME", "tunelab")
# MLflow 3's UI opens an experiment in its GenAI view (traces, judges) unless the experiment says it
# is about training models: this tag (the one the UI reads) opens it on its runs.
EXPERIMENT_KIND_TAG = ("mlflow.experimentKind", "custom_model_development")
HOST_TAG = "tunelab.host"    # the host a parent run's experiment ran on
TRIAL_TAG = "tunelab.trial"  # a shared study's trial, <study>#<number>


SQLITE = "sqlite:///"  # a SQLite store's URI: this, then the database's path


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"{SQLITE}{paths.repo_root() / paths.MLFLOW_DB}"


def client(uri: str | None = None):
    """An ``MlflowClient`` on ``uri`` (default: :func:`tracking_uri`). On a SQLite store each of its
    calls finishes before a SIGTERM or Ctrl-C takes effect (:func:`errors.signals_deferred`: an
    interrupt inside one leaves the database locked for the clean-up)."""
    from mlflow.tracking import (
        MlflowClient,  # mlflow takes seconds to import: only when used
    )
    uri = uri or tracking_uri()
    mlflow = MlflowClient(tracking_uri=uri)
    return _Uninterrupted(mlflow) if uri.startswith("sqlite:") else mlflow


class _Uninterrupted:
    """An ``MlflowClient`` whose method calls run under :func:`errors.signals_deferred`. Only for
    SQLite, whose calls end within its busy timeout: a call to an HTTP server that is down retries
    for minutes, and interrupting it leaves nothing locked."""

    def __init__(self, mlflow):
        self._mlflow = mlflow

    def __getattr__(self, name):
        attribute = getattr(self._mlflow, name)
        if not callable(attribute):
            return attribute

        def call(*args, **kwargs):
            with errors.signals_deferred():
                return attribute(*args, **kwargs)
        return call


# A busy SQLite store. MLflow (3.17, mlflow/store/db/utils.py) sets `PRAGMA busy_timeout = 20000`
# on every session, so a call waits up to 20 s for another connection's lock; SQLite still answers
# "database is locked" at once where waiting could deadlock (two writers that both read first), or
# after those 20 s. The clean-up that ends runs KILLED / FAILED tries such a call again a few times.
LOCKED = "database is locked"
ATTEMPTS = 3          # calls in all; worst case 3 x 20 s + 1.5 s, past which the runs stay RUNNING
FIRST_WAIT_S = 0.5    # before the second call; doubled before each next one


def is_locked(error: BaseException) -> bool:
    """Whether ``error``, or an error it was raised from, is SQLite's "database is locked" (MLflow
    wraps sqlite3's OperationalError in an MlflowException)."""
    seen = set()
    while error is not None and id(error) not in seen:
        if LOCKED in str(error):
            return True
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return False


def when_unlocked(call: Callable[[], T], attempts: int = ATTEMPTS,
                  first_wait: float = FIRST_WAIT_S, sleep: Callable[[float], None] = time.sleep) -> T:
    """``call()``, called again after 0.5 s, 1 s, ... while a busy SQLite store refuses it, at most
    ``attempts`` times in all; then (or on any other error) its error is raised."""
    for attempt in range(attempts):
        try:
            return call()
        except Exception as error:
            if attempt == attempts - 1 or not is_locked(error):
                raise
        sleep(first_wait * 2 ** attempt)
    raise ValueError(f"attempts must be at least 1, not {attempts}")


def end_runs(mlflow, run_ids: list[str], status: str) -> None:
    """End ``run_ids`` with ``status`` (KILLED, FAILED): the clean-up of every interrupted or
    failed run, through :func:`when_unlocked`."""
    for run_id in run_ids:
        when_unlocked(lambda run_id=run_id: mlflow.set_terminated(run_id, status=status),
                      ATTEMPTS, FIRST_WAIT_S)


def init_store(uri: str | None = None, experiment: str = EXPERIMENT) -> str:
    """Create the store (schema migration) and the experiment once; return the experiment id.

    Every process that opens the store calls this first (train, a sweep or search before its
    workers, log_run): it holds :func:`store_lock` while MLflow first touches the database, because
    several processes migrating a fresh SQLite database at once fail or corrupt it (measured: DVC's
    own queue, `dvc queue start -j 2` in a fresh clone, lost an experiment in `train` that way).
    """
    uri = uri or tracking_uri()
    try:
        with store_lock(uri):
            return _create_once(uri, experiment)
    except TunelabError:
        raise
    except Exception as error:
        raise TunelabError(f"MLflow tracking store {uri} is unusable: {error}") from error


def _create_once(uri: str, experiment: str) -> str:
    mlflow = client(uri)  # MLflow creates and migrates a SQLite store here, on first use
    found = mlflow.get_experiment_by_name(experiment)
    if found is not None:
        if found.tags.get(EXPERIMENT_KIND_TAG[0]) is None:  # a store made before the tag
            mlflow.set_experiment_tag(found.experiment_id, *EXPERIMENT_KIND_TAG)
        return found.experiment_id
    # Artifacts next to the database, not relative to whichever directory created the experiment.
    location = None if os.environ.get("MLFLOW_TRACKING_URI") else \
        (paths.repo_root() / paths.MLFLOW_ARTIFACTS).as_uri()
    try:
        return mlflow.create_experiment(experiment, artifact_location=location,
                                        tags=dict([EXPERIMENT_KIND_TAG]))
    except Exception:  # another host created it in between (a shared server)
        found = mlflow.get_experiment_by_name(experiment)
        if found is None:
            raise
        return found.experiment_id


def store_lock(uri: str | None = None):
    """The inter-process lock under which :func:`init_store` creates the store at ``uri`` (default
    :func:`tracking_uri`): ``.<name>.lock`` beside a SQLite database, or beside the default one
    for a server's URI. Not re-entrant: never call init_store while holding it."""
    from filelock import FileLock
    uri = uri or tracking_uri()
    db = Path(uri.removeprefix(SQLITE)) if uri.startswith(SQLITE) else \
        paths.repo_root() / paths.MLFLOW_DB
    return FileLock(str(db.with_name(f".{db.name}.lock")))


def trained_since(since: float, prefix: str, uri: str | None = None) -> set[str]:
    """Names of the DVC experiments starting with ``prefix`` whose `train` stage ran since
    ``since`` (seconds since the epoch): each opened an MLflow parent run. An experiment that DVC
    restored from its run cache (the same stage, params and inputs ran before) opened none."""
    mlflow = client(uri)
    found = mlflow.get_experiment_by_name(EXPERIMENT)
    if found is None:
        return set()
    runs = mlflow.search_runs(
        [found.experiment_id], max_results=50_000,  # the SQL store's limit per page
        filter_string=f"attributes.start_time >= {int(since * 1000)} "
                      f"and tags.`dvc.exp_name` LIKE '{prefix}%'")
    return {run.data.tags["dvc.exp_name"] for run in runs}


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def host() -> str:
    """The host an experiment ran on: $TUNELAB_HOST if set (two "hosts" on one machine, as in the
    tests), else the machine's hostname."""
    return os.environ.get("TUNELAB_HOST") or socket.gethostname()


def run_tags() -> dict[str, str]:
    """Tags linking an MLflow run to its DVC experiment, git commit and host, and, for a trial of
    a shared study, to that trial ($TUNELAB_TRIAL, set by its worker: ``<study>#<number>``, the
    key by which a live worker ends the runs of a trial whose host died)."""
    name = os.environ.get("DVC_EXP_NAME", "workspace")
    tags = {"dvc.exp_name": name, HOST_TAG: host()}
    if os.environ.get("TUNELAB_TRIAL"):
        tags[TRIAL_TAG] = os.environ["TUNELAB_TRIAL"]
    tags |= {f"sweep.{k}" if k != "sweep" else k: v
             for k, v in (naming.parse_name(name) or {}).items() if v}
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


def log_run(name: str, tags: dict[str, str], params: dict | None = None,
            metrics: dict[str, float] | None = None,
            artifacts: tuple[Path, str] | None = None) -> str:
    """One finished MLflow run in the project's store (created first if need be): a study, an LR
    range test. ``artifacts`` = (folder, artifact path); non-finite metrics are left out. Returns
    the run id."""
    from mlflow.entities import Metric, Param
    uri = tracking_uri()
    experiment_id = init_store(uri)
    mlflow = client(uri)
    tags = {"git.commit": git_commit() or ""} | tags
    run_id = mlflow.create_run(experiment_id, run_name=name, tags=tags).info.run_id
    now = int(time.time() * 1000)
    mlflow.log_batch(run_id, metrics=[Metric(k, float(v), now, 0) for k, v in (metrics or {}).items()
                                      if isinstance(v, (int, float)) and math.isfinite(v)],
                     params=[Param(k, str(v)) for k, v in (params or {}).items()])
    if artifacts:
        mlflow.log_artifacts(run_id, str(artifacts[0]), artifacts[1])
    mlflow.set_terminated(run_id, "FINISHED")
    return run_id


def end_trial_runs(trial_key: str, status: str = "KILLED", uri: str | None = None) -> list[str]:
    """End the runs of a shared study's trial that are still RUNNING (its host died mid-trial):
    the parent runs tagged ``tunelab.trial = trial_key`` and their fold runs. Returns their ids."""
    mlflow = client(uri)
    found = mlflow.get_experiment_by_name(EXPERIMENT)
    if found is None:
        return []
    ended = []
    parents = when_unlocked(lambda: mlflow.search_runs(
        [found.experiment_id], max_results=1000,
        filter_string=f"tags.`{TRIAL_TAG}` = '{trial_key}'"))
    for parent in parents:
        children = when_unlocked(lambda parent=parent: mlflow.search_runs(
            [found.experiment_id], max_results=1000, filter_string=(
                f"tags.`mlflow.parentRunId` = '{parent.info.run_id}' "
                f"and attributes.status = 'RUNNING'")))
        running = [run.info.run_id for run in [*children, parent] if run.info.status == "RUNNING"]
        end_runs(mlflow, running, status)
        ended += running
    return ended


class ParentRun:
    """The parent run that train created, reopened by plot to add the results."""

    def __init__(self, handle_file: Path):
        try:
            handle = json.loads(Path(handle_file).read_text())
        except FileNotFoundError:
            raise TunelabError(f"{handle_file} not found: run `dvc repro train` first") from None
        init_store()  # a no-op once train made the store, but never an unlocked first touch
        self.client = client()  # the same rule train used to find the store
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


def save_handle(path: Path, handle: dict) -> None:
    """The parent run's ids for `plot` (no URI: it is machine-specific; readers resolve it with
    :func:`tracking_uri` again)."""
    atomic.write_json(path, handle)
