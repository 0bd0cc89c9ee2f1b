"""Experiment tracking behind one seam: the training loop talks to a :class:`Tracker`, which fans
out to DVCLive (per-fold folders next to the stage's outputs) and MLflow (a parent run per pipeline
run, a child run per fold, a metric per epoch). Tests pass :class:`NullTracker`.

Each parent run carries its configuration (:func:`config_tags`), so the MLflow UI's "Group by"
shows a configuration's seeds together with their mean, min or max; :func:`grouped_view` saves
that view (MLflow's shared view state) and returns the link that opens it.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Protocol

from src.core import identity
from src.core.status import Status
from src.tracking import store

CONFIG_TAG = "tunelab.config"        # the configuration in words: identity.describe
CONFIG_ID_TAG = "tunelab.config_id"  # its digest: identity.configuration
# MLflow's UI opens a view saved as this experiment tag's JSON when the URL names its key
# (`viewStateShareKey`; its "Share" button saves one the same way).
SHARED_VIEW_TAG = "mlflow.sharedViewState."
SHOWN_METRICS = ("cv.val_accuracy.mean", "test.accuracy")  # the columns a grouped view opens with


def config_tags(merged: dict) -> dict[str, str]:
    """The tags that name the configuration of params.yaml content ``merged`` (every seed of a
    configuration gets the same; raises ParamError if the params are invalid)."""
    return {CONFIG_TAG: identity.describe(merged), CONFIG_ID_TAG: identity.configuration(merged)}


def grouped_view(client, experiment_id: str, search_filter: str = "") -> str:
    """Save a view of the experiment's runs grouped by :data:`CONFIG_TAG` (parent runs only,
    narrowed by ``search_filter`` if given; each group with the average of :data:`SHOWN_METRICS`)
    and return the UI path that opens it. The same view is saved once, under a key from its
    content."""
    only_parents = f"tags.`{CONFIG_TAG}` LIKE '%'"
    state = {"searchFilter": f"{search_filter} and {only_parents}" if search_filter else
             only_parents,
             "selectedColumns": [f"metrics.`{name}`" for name in SHOWN_METRICS],
             "groupBy": {"aggregateFunction": "average",
                         "groupByKeys": [{"mode": "tag", "groupByData": CONFIG_TAG}]}}
    text = json.dumps(state, sort_keys=True)
    key = "tunelab-" + hashlib.sha256(text.encode()).hexdigest()[:12]
    client.set_experiment_tag(experiment_id, SHARED_VIEW_TAG + key, text)
    return (f"#/experiments/{experiment_id}/runs?workflowType=machine_learning"
            f"&viewStateShareKey={key}")


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


STEP_SIGNAL = "DVCLIVE_STEP_COMPLETED"  # DVCLive's signal file for VS Code, one per repository


def live(folder: Path):
    """A DVCLive logger that leaves dvc.yaml alone (the plots are declared there by hand; Live
    would rewrite it otherwise) and makes no DVC experiment of its own.

    It opens no DVC repository: DVCLive's own start-up imports DVC and opens the repository (and
    its git) for each logger: 3.8 s of a queued experiment's `train` and 1.4 s of its `evaluate`
    on a loaded 2-core machine (benchmarks/fixed_cost.py), for what only its `dvcyaml`,
    `save_dvc_exp` and Studio options use; this logger uses none of them (tunelab sends nothing to
    Studio). Whether it runs inside `dvc exp run` is still read from DVC's environment variables,
    as DVCLive does, and what it writes is the same.

    Its ``end()`` tolerates one race: every queued experiment's DVCLive removes the same signal
    file, <repo>/.dvc/tmp/exps/run/DVCLIVE_STEP_COMPLETED, as its last act, by checking that it
    exists and then removing it; two workers ending at once make the second fail with
    FileNotFoundError after everything else was written (seen once in 20 experiments on 2
    workers)."""
    from dvclive import Live

    class _Live(Live):
        def _init_dvc(self):  # DVCLive 3.49's start-up less get_dvc_repo(): see above
            if os.getenv("DVC_ROOT"):
                self._inside_dvc_pipeline = True
                self._init_dvc_pipeline()

        def end(self):
            try:
                super().end()
            except FileNotFoundError as error:
                if STEP_SIGNAL not in str(error):
                    raise

    return _Live(str(folder), dvcyaml=False, save_dvc_exp=False, report=None)


class DVCLiveTracker:
    """One DVCLive folder per fold (``<root>/fold_<k>``), step = epoch."""

    def __init__(self, root: Path):
        self.root = root
        self.live = None

    def start_fold(self, fold: int) -> None:
        self.live = live(self.root / f"fold_{fold}")

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
        self.client = store.client(uri)
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
        self.client.set_terminated(self.children.pop(fold), status=Status(status).mlflow)

    def finish(self, status: Status) -> None:
        """End the parent run of a pipeline run whose training ended with ``status``."""
        self.client.set_tag(self.parent, "status", str(status))
        self.client.set_terminated(self.parent, status=status.mlflow)

    def abort(self, status: str) -> None:
        """End every open run with ``status`` (FAILED or KILLED): the clean-up of an interrupted
        or failed training. A store that stays unusable leaves them RUNNING, said in one line on
        stderr, so that the process still ends as what stopped it (130 for an interruption)."""
        open_runs = [*self.children.values(), self.parent]
        self.children.clear()
        try:
            store.end_runs(self.client, open_runs, status)
        except Exception as error:  # noqa: BLE001 - the cause of the stop matters more
            reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
            print(f"warning: MLflow runs {', '.join(open_runs)} not ended {status}: {reason}",
                  file=sys.stderr)

    def handle(self) -> dict:
        return {"experiment_id": self.experiment_id, "run_id": self.parent}


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
