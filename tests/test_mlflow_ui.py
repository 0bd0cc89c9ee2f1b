"""The MLflow UI opens on tunelab's runs: a real `mlflow server` on 127.0.0.1 over a store that
tunelab's trackers wrote, read by headless Chromium (Debian's `chromium`): a screenshot and the
page's text after its JavaScript ran.

MLflow 3.17's UI shows an experiment in its GenAI view (traces, judges, an assistant) unless it is
in its "Model training" mode: `?workflowType=machine_learning` in the URL, or the toggle, which the
browser remembers. The experiment also carries the tag `mlflow.experimentKind =
custom_model_development`, which MLflow's API and older UIs read.
"""

from __future__ import annotations

import html
import re
import shutil
import subprocess

import pytest
from mlflow.tracking import MlflowClient

from src.core.status import Status
from src.tracking import store, trackers
from tests.servers import mlflow_server

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(CHROMIUM is None, reason="needs headless Chromium "
                                 "(`apt-get install chromium`; .ci/run installs it)")]
FOLDS = 3


def page_text(dom: str) -> str:
    """The visible words of a dumped DOM: scripts and styles dropped, tags stripped."""
    body = re.sub(r"<(script|style)\b.*?</\1>", " ", dom, flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", body)).split())


def chromium(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                           "--virtual-time-budget=20000", "--window-size=1400,900", *args],
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def served_store(tmp_path, monkeypatch):
    """A store holding one pipeline run as train writes it (a parent, a child per fold), served."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    uri = store.tracking_uri()
    experiment = store.init_store(uri)
    run = trackers.MLflowTracker(uri, experiment, "workspace", {"train.lr": 0.001},
                                 {"dvc.exp_name": "workspace"})
    for fold in range(FOLDS):
        run.start_fold(fold)
        run.log_epoch(fold, {"epoch": 1, "val_acc": 0.8, "train_loss": 0.5})
        run.end_fold(fold, Status.COMPLETED)
    run.finish(Status.COMPLETED)
    with mlflow_server(uri, tmp_path / "mlartifacts") as server:
        yield server, experiment, uri


def test_the_experiment_is_tagged_as_model_training(served_store):
    _, experiment, uri = served_store
    tags = MlflowClient(uri).get_experiment(experiment).tags
    assert tags["mlflow.experimentKind"] == "custom_model_development"


def test_the_experiment_page_lists_the_parent_run_and_its_fold_runs(served_store, tmp_path):
    server, experiment, _ = served_store
    url = f"{server}/#/experiments/{experiment}/runs?workflowType=machine_learning"
    shot = tmp_path / "experiment.png"
    assert chromium(f"--screenshot={shot}", url).returncode == 0
    assert shot.stat().st_size > 10_000  # a rendered page, not a blank one
    dumped = chromium("--dump-dom", url)
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    text = page_text(dumped.stdout)
    assert "Runs" in text and "workspace" in text, text[:2000]
    assert f"{1 + FOLDS} matching runs" in text, text[:2000]  # the parent and its fold runs
    assert "Detect Issues" not in text  # not the GenAI overview


CONFIGS = ({"train": {"dropout": 0.5}}, {"train": {"dropout": 0.3, "lr": 0.003}})
SEEDS = (0, 1)
CV_ACCURACY = ((0.8, 0.81), (0.9, 0.93))  # by configuration, then seed: means 0.805 and 0.915


@pytest.fixture
def grouped_store(tmp_path, monkeypatch):
    """Two configurations x two seeds of pipeline runs as train and plot write them (a parent
    tagged with its configuration, a fold run, the results on the parent), and the view grouped
    by configuration, served."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    uri = store.tracking_uri()
    experiment = store.init_store(uri)
    for c, config in enumerate(CONFIGS):
        for seed in SEEDS:
            merged = {"train": config["train"] | {"seed": seed}}
            run = trackers.MLflowTracker(uri, experiment, f"run-c{c}-s{seed}", {},
                                         {"sweep": "demo", **trackers.config_tags(merged)})
            run.start_fold(0)
            run.end_fold(0, Status.COMPLETED)
            MlflowClient(uri).log_metric(run.parent, "cv.val_accuracy.mean", CV_ACCURACY[c][seed])
            run.finish(Status.COMPLETED)
    view = trackers.grouped_view(MlflowClient(uri), experiment, "tags.sweep = 'demo'")
    with mlflow_server(uri, tmp_path / "mlartifacts") as server:
        yield f"{server}/{view}"


def test_the_grouped_view_shows_each_configurations_seeds_together(grouped_store):
    dumped = chromium("--dump-dom", grouped_store)
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    text = page_text(dumped.stdout)
    assert "Group by: tunelab.config" in text, text[:3000]
    assert f"{len(CONFIGS) * len(SEEDS)} matching runs" in text, text[:3000]  # no fold runs
    for c, config in enumerate(CONFIGS):
        label = trackers.config_tags(config)[trackers.CONFIG_TAG]
        # The group's row, its size, then its runs (newest first) before any other group.
        group = re.search(rf"Group: {re.escape(label)} {len(SEEDS)} (.*?)(Group: |$)", text)
        assert group, (label, text[:3000])
        shown = re.findall(r"run-c\d-s\d", group[1])
        assert sorted(shown) == [f"run-c{c}-s{seed}" for seed in SEEDS], group[1]
        # The group's mean over its seeds, in the CV accuracy column the view opens with.
        assert f"{sum(CV_ACCURACY[c]) / len(SEEDS):.3f} (average)" in text, text[:3000]
