"""The LR range test: EMA smoothing against a hand computation, the suggestion rules on a curve
whose answer is known, the real test on the synthetic problem (falls, then explodes, stops early),
the figure, the missing-data error, and the stage in a temporary project (PNG, JSON, MLflow run)."""

from __future__ import annotations

import json
import sys

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from mlflow.tracking import MlflowClient

from src import lr_find
from src.core import engine, errors, models, params
from src.core.checkpoints import model_args
from tests.conftest import TINY, make_images, make_project, sh


def test_smoothing_matches_a_hand_computed_ema():
    # beta 0.5: avg = 0.5, 1.25, 2.125; bias correction divides by 0.5, 0.75, 0.875
    assert lr_find.smooth([1.0, 2.0, 3.0], beta=0.5) == pytest.approx([1.0, 5 / 3, 2.125 / 0.875])
    assert lr_find.smooth([2.5], beta=0.98)[0] == pytest.approx(2.5)  # corrected: not 0.05


def test_suggestions_on_a_known_curve():
    lr = np.logspace(-7, 1, 161)  # 20 points per decade
    x = np.log10(lr)
    # Falls fastest at 1e-3 (the logistic's midpoint), lowest at 1e-1, explodes after.
    smoothed = 2.3 - 1.0 / (1 + np.exp(-3 * (x + 3))) + np.where(x > -1, 5 * (x + 1) ** 2, 0)
    df = pd.DataFrame({"lr": lr, "loss": smoothed, "smoothed": smoothed})
    s = lr_find.suggest(df)
    assert s["steepest_lr"] == pytest.approx(1e-3, rel=0.13)  # within one grid step
    assert s["min_loss_lr"] == pytest.approx(1e-1, rel=0.13)
    assert s["max_lr_onecycle"] == pytest.approx(s["min_loss_lr"] / 10)
    assert s["steps"] == 161


def test_suggest_needs_finite_points():
    df = pd.DataFrame({"lr": [1e-3, 1e-2], "loss": [1.0, np.nan], "smoothed": [1.0, np.nan]})
    with pytest.raises(errors.TunelabError, match="finite points"):
        lr_find.suggest(df)


@pytest.fixture(scope="module")
def synthetic_run():
    x, y = make_images(512, seed=0)
    pixels = x / 255.0
    xt = engine.to_tensor(x, float(pixels.mean()), float(pixels.std()))
    cfg = params.TrainParams.from_dict(TINY["train"] | {"norm": "none"})  # Adam 1e-3 defaults
    torch.manual_seed(0)
    model = models.build(cfg.model, **model_args(cfg))
    return lr_find.lr_range_test(model, xt, torch.as_tensor(y.astype(np.int64)), cfg, steps=100,
                                 seed=0)


def test_loss_first_falls_then_explodes_and_the_test_stops(synthetic_run):
    df = synthetic_run
    assert list(df.columns) == ["lr", "loss", "smoothed"]
    assert df["lr"].iloc[0] == pytest.approx(1e-7)
    assert np.all(np.diff(np.log(df["lr"])) == pytest.approx(np.log(1e8) / 99))  # exponential
    lowest = df["smoothed"].idxmin()
    assert df["smoothed"].min() < 0.85 * df["smoothed"].iloc[0]  # it learned
    assert 10 < lowest < len(df) - 1                              # ... then got worse
    assert len(df) < 100                                          # stopped early
    assert df["smoothed"].iloc[-1] > 4 * df["smoothed"].min()     # because it exploded
    assert df["smoothed"].iloc[:-1].max() <= 4 * df["smoothed"].min()  # not sooner
    assert df["smoothed"].to_numpy() == pytest.approx(lr_find.smooth(df["loss"]))


def test_suggestion_is_in_a_sensible_range(synthetic_run):
    s = lr_find.suggest(synthetic_run)
    assert 1e-4 <= s["steepest_lr"] <= 1.0
    assert s["steepest_lr"] < s["min_loss_lr"] <= 1.0


def test_figure_marks_the_suggestions(synthetic_run):
    s = lr_find.suggest(synthetic_run)
    ax = lr_find.lr_find_figure(synthetic_run, s).axes[0]
    assert ax.get_xscale() == "log" and ax.get_xlabel() == "learning rate"
    vertical = [line for line in ax.lines if len(set(line.get_xdata())) == 1]
    assert sorted(line.get_xdata()[0] for line in vertical) == sorted(
        [s["steepest_lr"], s["min_loss_lr"], s["max_lr_onecycle"]])


def test_missing_prepared_data_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"train": TINY["train"]}))
    with pytest.raises(errors.DataError, match=r"run `dvc repro prepare` first"):
        lr_find.main()
    assert not (tmp_path / "reports").exists()


@pytest.mark.e2e
def test_stage_writes_png_json_and_mlflow_run(tmp_path):
    (tmp_path / "repo").mkdir()
    root, env = make_project(tmp_path / "repo", TINY)
    sh("dvc", "repro", "prepare", cwd=root, env=env)
    done = sh(sys.executable, "-m", "src.lr_find", cwd=root, env=env)
    assert "LR range test:" in done.stdout
    png = root / "reports/lr_find/lr_find.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    suggestion = json.loads((root / "reports/lr_find/suggestion.json").read_text())
    assert {"steepest_lr", "min_loss_lr", "max_lr_onecycle", "steps"} <= set(suggestion)
    assert suggestion["max_lr_onecycle"] == pytest.approx(suggestion["min_loss_lr"] / 10)
    client = MlflowClient(f"sqlite:///{root}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("tunelab").experiment_id])
    assert [r.info.run_name for r in runs] == ["lr_find"]
    run = runs[0]
    assert run.info.status == "FINISHED" and run.data.tags["tunelab.kind"] == "lr_find"
    assert run.data.metrics["steepest_lr"] == pytest.approx(suggestion["steepest_lr"])
    assert run.data.params["train.batch_size"] == "32" and run.data.params["threads"] == "1"
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "lr_find")}
    assert artifacts == {"lr_find/lr_find.png", "lr_find/suggestion.json"}
