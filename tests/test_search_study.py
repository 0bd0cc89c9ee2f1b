"""The study of a search: trials from `dvc exp show --json`, ranking, best-so-far, the compute
pruning saved, fANOVA importance (against Optuna on the same trials), figures, the report and its
confirming sweep."""

from __future__ import annotations

import math

import numpy as np
import optuna
import pandas as pd
import pytest
import yaml

from src.experiments import search_spec, sweep_spec
from src.studies import search_report
from tests.test_search import BASE

optuna.logging.set_verbosity(optuna.logging.WARNING)

SEARCH = search_spec.parse_search("s", {
    "space": {"train.lr": {"type": "loguniform", "low": 0.0001, "high": 0.01},
              "train.dropout": {"type": "uniform", "low": 0.0, "high": 0.6},
              "train.conv_channels": {"type": "categorical", "choices": [[16, 32], [32, 64]]}},
    "fixed": {"train.optimizer": "adamw"}}, BASE)


def trial_entry(number, lr, dropout, channels, status="completed", cv=None, epochs=10,
                error=None, timestamp="2026-11-22T10:00:00"):
    name = f"s--t{number:03d}--s0"
    train = {"lr": lr, "dropout": dropout, "conv_channels": channels, "seed": 0, "epochs": 5}
    metrics = {"status": status, "test": {"accuracy": None if cv is None else cv - 0.01},
               "cv": {"val_accuracy": {"mean": cv, "ci95_low": None if cv is None else cv - 0.02,
                                       "ci95_high": None if cv is None else cv + 0.02}},
               "model": {"params": 1000}, "time": {"train_seconds": 2.0 * epochs,
                                                  "epochs": epochs}}
    if status != "completed":
        metrics["reason"] = "fold 0: pruned by the search's rule at fold 0, epoch 2"
    data = {"timestamp": timestamp, "params": {"params.yaml": {"data": {
        "prepare": {"cv_folds": 2}, "train": train}}},
        "metrics": {"reports/evaluate/metrics.json": {"data": metrics}}}
    return {"name": name, "revs": [{"rev": f"r{number}", "name": name, "error": error,
                                    "data": data if error is None else {}}]}


def objective(lr, dropout, channels) -> float:
    """The accuracy depends on the learning rate only (dropout and width do nothing)."""
    return 0.9 - 0.05 * (math.log10(lr) + 2.5) ** 2 + 0.0 * dropout + 0.0 * len(channels)


def shown_trials(n=16, seed=0) -> list:
    rng = np.random.default_rng(seed)
    entries = []
    for number in range(n):
        lr, dropout = float(10 ** rng.uniform(-4, -2)), float(rng.uniform(0, 0.6))
        channels = [[16, 32], [32, 64]][number % 2]
        entries.append(trial_entry(number, lr, dropout, channels,
                                   cv=objective(lr, dropout, channels)))
    return [{"rev": "workspace", "experiments": None},
            {"rev": "c1", "data": {}, "experiments": entries}]


def small_frame() -> pd.DataFrame:
    shown = [{"rev": "c1", "data": {}, "experiments": [
        trial_entry(0, 0.001, 0.1, [16, 32], cv=0.80),
        trial_entry(1, 0.003, 0.2, [32, 64], cv=0.85),
        trial_entry(2, 0.0001, 0.5, [16, 32], status="pruned", epochs=2),
        trial_entry(3, 0.002, 0.3, [32, 64], cv=0.83),
        trial_entry(4, 0.01, 0.0, [16, 32], error={"msg": "Experiment run failed"}),
        trial_entry(5, 0.005, 0.4, [32, 64], status="pruned", epochs=3),
        {"name": "other--t000--s0", "revs": [{"rev": "x", "name": "other--t000--s0",
                                              "error": None, "data": {}}]},
        {"name": "dropout--dropout=0.3--s0", "revs": [{"rev": "y", "error": None, "data": {}}]},
    ]}]
    return search_report.trials_frame(shown, SEARCH)


def test_trials_frame_reads_the_searchs_trials_only():
    frame = small_frame()
    assert frame["trial"].tolist() == [0, 1, 2, 3, 4, 5]
    assert frame["state"].tolist() == ["completed", "completed", "pruned", "completed", "failed",
                                       "pruned"]
    first = frame.iloc[0]
    assert (first["train.lr"], first["train.dropout"], first["train.conv_channels"]) == (
        0.001, 0.1, "[16, 32]")
    assert (first["cv_accuracy"], first["cv_ci_low"], first["test_accuracy"]) == pytest.approx(
        (0.80, 0.78, 0.79))
    assert (first["epochs"], first["full_epochs"]) == (10, 10)  # 2 folds x 5 epochs
    assert "pruned by the search's rule" in frame.iloc[2]["reason"]
    assert frame.iloc[4]["reason"] == "Experiment run failed"


def test_ranking_best_so_far_and_compute():
    frame = small_frame()
    assert search_report.ranked(frame)["trial"].tolist() == [1, 3, 0]
    best = search_report.best_so_far(frame)
    assert best.index.tolist() == [0, 1, 2, 3, 4, 5]
    assert best.tolist() == pytest.approx([0.80, 0.85, 0.85, 0.85, 0.85, 0.85])
    cost = search_report.compute(frame)
    # trained: 10 + 10 + 2 + 10 + 3 (the failed trial has no cost) = 35; without pruning the two
    # pruned trials would have run their 2 folds x 5 epochs: 10 + 10 + 10 + 10 + 10 = 50
    assert (cost["trials"], cost["pruned"], cost["epochs_trained"]) == (6, 2, 35)
    assert cost["epochs_without_pruning"] == 50
    assert cost["saved_share"] == pytest.approx(0.3)


def test_importance_finds_the_parameter_that_matters_as_optuna_does():
    frame = search_report.trials_frame(shown_trials(), SEARCH)
    importances, note = search_report.importance(frame, SEARCH)
    assert note == "" and set(importances) == {"train.lr", "train.dropout", "train.conv_channels"}
    assert max(importances, key=importances.get) == "train.lr"
    assert importances["train.lr"] > 0.8 and sum(importances.values()) == pytest.approx(1.0)
    # the oracle: Optuna's own study of the same trials
    study = optuna.create_study(direction="maximize")
    for row in frame.to_dict("records"):
        study.add_trial(optuna.trial.create_trial(
            params={"train.lr": row["train.lr"], "train.dropout": row["train.dropout"],
                    "train.conv_channels": row["train.conv_channels"]},
            distributions=SEARCH.distributions(), value=row["cv_accuracy"]))
    oracle = optuna.importance.get_param_importances(
        study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0))
    assert importances == pytest.approx(dict(oracle))


def test_importance_needs_two_different_results():
    frame = small_frame().head(1)
    importances, note = search_report.importance(frame, SEARCH)
    assert importances == {} and "at least 2 completed trials" in note


def test_figures_show_trials_best_so_far_and_stopped_ones():
    frame = small_frame()
    figures = search_report.build_figures(frame, SEARCH, {"train.lr": 0.7, "train.dropout": 0.3})
    assert set(figures) == {"optimization_history.png", "top_configurations.png",
                            "param_slices.png", "param_importance.png"}
    ax = figures["optimization_history.png"].axes[0]
    best = next(line for line in ax.get_lines() if line.get_gid() == "best-so-far")
    assert list(best.get_ydata()) == pytest.approx([0.80, 0.85, 0.85, 0.85, 0.85, 0.85])
    stopped = next(line for line in ax.get_lines() if line.get_gid() == "stopped")
    assert list(stopped.get_xdata()) == [2, 4, 5]
    top = figures["top_configurations.png"].axes[0]
    labels = [t.get_text() for t in top.get_yticklabels()]
    assert labels[-1].startswith("t001: lr=0.003") and len(labels) == 3  # best on top
    slices = figures["param_slices.png"].axes
    assert len(slices) == 3 + 1  # a panel per parameter + colour bar
    lr, dropout = slices[0], slices[1]  # each spans the whole searched range
    assert lr.get_xscale() == "log" and lr.get_xlim()[0] < 1e-4 and lr.get_xlim()[1] > 1e-2
    assert dropout.get_xscale() == "linear" and dropout.get_xlim()[0] < 0 < 0.6 < dropout.get_xlim()[1]
    bars = figures["param_importance.png"].axes[0].patches
    assert sorted(b.get_width() for b in bars) == [0.3, 0.7]


def test_report_says_one_seed_and_gives_a_valid_confirming_sweep():
    frame = small_frame()
    files = search_report.build(SEARCH, frame)
    report = files["report.md"]
    assert "One seed per trial" in report and "not used to rank" in report
    assert "6 trials (3 completed, 2 pruned, 1 failed)" in report
    assert "pruning saved 30%" in report
    assert "`s--t002--s0`: pruned" in report and "`s--t004--s0`: failed" in report
    snippet = report.split("```yaml\n")[1].split("```")[0]
    (name, spec), = yaml.safe_load(snippet).items()
    confirm = sweep_spec.parse_sweep(name, spec, BASE)
    assert name == "s_confirm"
    assert [c["train.lr"] for c in confirm.configs] == [0.003, 0.002, 0.001]  # the best 3
    assert confirm.configs[0]["train.conv_channels"] == [32, 64]
    assert confirm.baseline_label == confirm.label(confirm.configs[0])
    assert all(c["train.optimizer"] == "adamw" for c in confirm.configs)  # the fixed values


def test_importance_refuses_trials_outside_the_space():
    frame = search_report.trials_frame(shown_trials(4), SEARCH)
    frame.loc[0, "train.conv_channels"] = "[8, 16]"  # not a choice of the space any more
    importances, note = search_report.importance(frame, SEARCH)
    assert importances == {} and "s--t000--s0" in note


def test_a_search_without_completed_trials_still_reports():
    frame = small_frame()
    frame = frame[frame["state"] != "completed"]
    files = search_report.build(SEARCH, frame)
    assert set(files) == {"trials.csv", "report.md", "optimization_history.png"}
    assert "no completed trial" in files["report.md"] and "Confirm over seeds" not in files["report.md"]
    assert "parameter importance needs at least 2 completed trials" in files["report.md"]


def test_the_report_names_the_settings_every_trial_shared_beyond_params_yaml():
    shown = shown_trials(4)
    for entry in shown[1]["experiments"]:  # as after `--set train.epochs=5 --set prepare.cv_folds=2`
        data = entry["revs"][0]["data"]["params"]["params.yaml"]["data"]
        data["train"] |= {"optimizer": "adamw", "hidden_units": [64, 32]}
    entry["revs"][0]["data"]["params"]["params.yaml"]["data"]["prepare"]["cv_folds"] = 3
    base = sweep_spec.apply(BASE, {"train.epochs": 10})
    settings = search_report.shared_settings(shown, SEARCH, base)
    # not the searched keys, the seed, the search's own fixed optimizer, nor the cv_folds the
    # trials disagree on; params.yaml's epochs differ, its hidden_units too
    assert settings == {"train.epochs": 5, "train.hidden_units": [64, 32]}
    report = search_report.build(SEARCH, search_report.trials_frame(shown, SEARCH),
                                settings)["report.md"]
    assert "differ from params.yaml: `train.epochs=5`, `train.hidden_units=[64, 32]`." in report
    assert "--jobs 2 --set train.epochs=5 --set 'train.hidden_units=[64, 32]'`" in report
    assert "differ from params.yaml" not in search_report.build(SEARCH, small_frame())["report.md"]


def test_a_committed_search_study_rebuilds_from_its_record(tmp_path):
    """trials.csv and settings.json give the same files again (a clone without the trials)."""
    settings = {"prepare.cv_folds": 3, "train.epochs": 5}  # sorted, as shared_settings gives
    files = search_report.build(SEARCH, small_frame(), settings)
    files["trials.csv"].to_csv(tmp_path / search_report.TRIALS, index=False)
    (tmp_path / search_report.SETTINGS).write_text(files[search_report.SETTINGS])
    frame, read = search_report.recorded(tmp_path, SEARCH)
    assert read == settings
    again = search_report.build(SEARCH, frame, read)
    assert again["report.md"] == files["report.md"]
    assert again["trials.csv"].to_csv(index=False) == (tmp_path / "trials.csv").read_text()
    empty, none = search_report.recorded(tmp_path / "absent", SEARCH)
    assert empty.empty and none == {}
