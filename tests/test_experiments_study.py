"""The study of DVC experiments however they were queued (`python -m src.study --experiments`): the
grouping on hand-written `dvc exp show --json`, each case it cannot study as one clear line or
error, the decisions against scipy directly, and one end-to-end run of DVC's own grid syntax on a
real queue."""

from __future__ import annotations

import json
import re
import sqlite3
import sys
import time

import pandas as pd
import pytest
import yaml
from scipy import stats as sps

from src import study
from src.core import params
from src.core.errors import TunelabError
from src.experiments import dvc_queue, exp_show, sweep_spec
from src.studies import experiments_study, outputs, sweep_report, sweep_study
from tests.conftest import REPO, TINY, make_project, sh

BASE = params.read_yaml(REPO / "params.yaml")  # train.dropout 0.3, train.epochs 10


def exp(name, overrides, cv=0.8, state="success", error=None, timestamp="2026-11-22T10:00:00"):
    """One experiment of `dvc exp show --json`: params.yaml with ``overrides``, its metrics."""
    rev = f"rev-{name}-{timestamp}"
    data = {"rev": rev, "timestamp": timestamp,
            "params": {"params.yaml": {"data": sweep_spec.apply(BASE, overrides)}}}
    if cv is not None:
        data["metrics"] = {"reports/evaluate/metrics.json": {"data": {
            "status": "completed", "test": {"accuracy": cv - 0.01},
            "cv": {"val_accuracy": {"mean": cv}, "train_val_gap": 0.04},
            "model": {"params": 1000}, "time": {"seconds_per_epoch": 1.0}}}}
    return {"name": name, "executor": {"state": state, "name": name},
            "revs": [{"rev": rev, "name": name, "error": error, "data": data}]}


def shown(*experiments):
    workspace = {"params": {"params.yaml": {"data": BASE}}}
    return [{"rev": "workspace", "data": workspace, "experiments": None},
            {"rev": "c0ffee", "name": "main", "data": workspace, "experiments": list(experiments)}]


ACC = {(0.0, 0): 0.80, (0.0, 1): 0.82, (0.0, 2): 0.81,
       (0.5, 0): 0.84, (0.5, 1): 0.85, (0.5, 2): 0.86}


def grid(prefix="grid", values=ACC, **fixed):
    """DVC's grid -S 'train.dropout=0.0,0.5' -S 'train.seed=range(0,3)', named prefix-1, ..."""
    return [exp(f"{prefix}-{i + 1}", {"train.dropout": d, "train.seed": s} | fixed, cv)
            for i, ((d, s), cv) in enumerate(values.items())]


def group(experiments, baseline=("train.dropout=0.0",), patterns=()):
    return experiments_study.group(shown(*experiments), "grid", list(patterns), BASE,
                                   list(baseline))


def test_a_dvc_grid_is_a_sweep_of_its_groups_decided_as_a_sweep_study():
    grouped = group(grid(**{"train.epochs": 2}))
    sweep = grouped.sweep
    assert (sweep.name, sweep.varied, sweep.baseline_label) == ("grid", ("train.dropout",),
                                                                "dropout=0.0")
    assert [sweep.label(c) for c in sweep.configs] == ["dropout=0.0", "dropout=0.5"]
    assert grouped.lines == ()
    # what every experiment shares is said where it is not the workspace's params.yaml
    assert sweep.description == ("DVC experiments of this commit (all), grouped by train.dropout; "
                                 "train.seed as replicates. Every experiment ran with "
                                 "train.epochs=2 (params.yaml: 10).")
    frame = grouped.frame.set_index("name")
    assert frame.loc["grid-5", ["config", "name_config", "seed"]].tolist() == [
        "dropout=0.5", "dropout=0.5", 1]
    files = sweep_study.build_study(sweep, grouped.frame)
    summary = files["summary.csv"].set_index("config")
    assert summary["n"].tolist() == [3, 3]
    expected = sps.ttest_rel([ACC[0.5, s] for s in range(3)], [ACC[0.0, s] for s in range(3)])
    assert summary.loc["dropout=0.5", "test_used"] == "paired"
    assert summary.loc["dropout=0.5", "p_value"] == pytest.approx(expected.pvalue)
    assert summary.loc["dropout=0.5", "diff"] == pytest.approx(0.04)
    assert summary.loc["dropout=0.0", "verdict"] == "baseline"
    report = files["report.md"]
    assert "# Study: grid" in report and "missing: " not in report  # DVC names: no sweep names


def test_the_default_baseline_is_the_workspace_params_and_a_glob_picks_experiments():
    values = {(d, s): 0.8 + d / 10 + s / 100 for d in (0.3, 0.7) for s in (0, 1)}
    other = [exp("lr-1", {"train.lr": 0.01, "train.seed": 0}),
             exp("lr-2", {"train.lr": 0.01, "train.seed": 1})]
    grouped = group(grid(values=values) + other, baseline=(), patterns=["grid-*"])
    assert grouped.sweep.baseline_label == "dropout=0.3"  # params.yaml's dropout
    assert sorted(grouped.frame["name"]) == ["grid-1", "grid-2", "grid-3", "grid-4"]
    assert grouped.sweep.description.startswith("DVC experiments of this commit (matching "
                                                "`grid-*`)")
    both = group(grid(values=values) + other, baseline=(), patterns=["grid-*", "lr-?"])
    assert both.sweep.varied == ("train.dropout", "train.lr")  # every param that varies
    assert [both.sweep.label(c) for c in both.sweep.configs] == [
        "dropout=0.3,lr=0.001", "dropout=0.3,lr=0.01", "dropout=0.7,lr=0.001"]


def test_two_keys_group_as_a_two_way_grid_ordered_by_value():
    values = {(lr, d, s): 0.8 for lr in (0.01, 0.001) for d in (0.5, 0.0) for s in (0, 1)}
    experiments = [exp(f"e{i}", {"train.lr": lr, "train.dropout": d, "train.seed": s}, cv)
                   for i, ((lr, d, s), cv) in enumerate(values.items())]
    grouped = group(experiments, baseline=("train.lr=0.001", "train.dropout=0.0"))
    assert [grouped.sweep.label(c) for c in grouped.sweep.configs] == [  # params.yaml's order
        "dropout=0.0,lr=0.001", "dropout=0.0,lr=0.01", "dropout=0.5,lr=0.001", "dropout=0.5,lr=0.01"]
    assert sweep_spec.grid_factors(grouped.sweep) is not None  # the ANOVA and its figures


@pytest.mark.parametrize("experiments, patterns, message", [
    ([], [], "no DVC experiments on the current commit: queue some, e.g. `dvc exp run --queue"),
    (grid(), ["nope-*", "x"], "no experiment of the current commit matches nope-*, x; its "
                              "experiments: grid-1, grid-2, grid-3, grid-4, grid-5, grid-6"),
    ([exp("a", {"train.seed": 0}), exp("b", {"train.seed": 1})], [],
     "the 2 experiment(s) differ in no param but train.seed: one group"),
])
def test_nothing_to_group_is_one_clear_error(experiments, patterns, message):
    with pytest.raises(TunelabError) as error:
        group(experiments, patterns=patterns)
    assert message in str(error.value)


@pytest.mark.parametrize("baseline, message", [
    (("train.dropout=0.2",), "no group matches the baseline dropout=0.2 (--baseline over "
                             "params.yaml); the groups: dropout=0.0, dropout=0.5; pass "
                             "--baseline KEY=VALUE (keys: train.dropout)"),
    ((), "no group matches the baseline dropout=0.3 (params.yaml's); the groups: dropout=0.0, "
         "dropout=0.5; pass --baseline KEY=VALUE (keys: train.dropout)"),
    (("train.lr=0.01",), "--baseline train.lr: not a param that varies among the experiments; "
                         "allowed: train.dropout"),
    (("dropout",), "--baseline 'dropout': expected KEY=VALUE, KEY one of train.dropout"),
])
def test_a_baseline_no_group_has_names_the_groups(baseline, message):
    with pytest.raises(TunelabError) as error:
        group(grid(), baseline=baseline)
    assert str(error.value) == message


def test_a_group_with_fewer_than_two_seeds_is_one_line_and_the_others_are_studied():
    lone = exp("grid-7", {"train.dropout": 0.7, "train.seed": 0})
    failed = exp("grid-8", {"train.dropout": 0.7, "train.seed": 1}, cv=None,
                 error={"msg": "Experiment run failed"})
    grouped = group(grid() + [lone, failed])
    assert grouped.lines == ("left out: group dropout=0.7 has 1 completed seed(s) [0]: a group "
                             "needs two or more",)
    assert [grouped.sweep.label(c) for c in grouped.sweep.configs] == ["dropout=0.0",
                                                                       "dropout=0.5"]
    assert set(grouped.frame["config"]) == {"dropout=0.0", "dropout=0.5"}
    summary = sweep_study.summary_table(grouped.frame, grouped.sweep)
    assert summary["n"].tolist() == [3, 3]

    short = {k: v for k, v in ACC.items() if k[0] == 0.5 or k[1] == 0}
    with pytest.raises(TunelabError, match=r"^the baseline group dropout=0.0 has 1 completed "
                                           r"seed\(s\) \[0\]: a comparison needs two or more"):
        group(grid(values=short))
    with pytest.raises(TunelabError, match=r"^no group besides the baseline dropout=0.5 has two "
                                           r"or more completed seeds \(dropout=0.0: 1\)"):
        group(grid(values=short), baseline=("train.dropout=0.5",))


def test_duplicates_pending_and_paramless_experiments_get_one_line_each():
    again = exp("grid-9", {"train.dropout": 0.5, "train.seed": 1}, 0.9,
                timestamp="2026-11-22T11:00:00")
    queued = exp("grid-10", {"train.dropout": 0.5, "train.seed": 3}, None, state="queued")
    running = exp("grid-11", {"train.dropout": 0.0, "train.seed": 3}, None, state="running")
    bare = exp("grid-12", {}, None, state="failed", error={"msg": "failed"})
    bare["revs"][0]["data"] = {}
    grouped = group(grid() + [again, queued, running, bare])
    assert grouped.lines == (
        "left out: 2 experiment(s) still queued or running (grid-10, grid-11); study again when "
        "`dvc queue status` shows them done",
        "left out: 1 experiment(s) with no params in `dvc exp show` (grid-12; failed before "
        "running? `dvc queue logs NAME`)",
        "duplicates: grid-5, grid-9 ran the same params (dropout=0.5, seed 1): only the newest, "
        "grid-9, counts")
    frame = grouped.frame.set_index("name")
    assert "grid-5" not in frame.index and frame.loc["grid-9", "cv_accuracy"] == 0.9
    assert len(frame) == 6


def test_a_param_outside_prepare_and_train_is_not_grouped_and_invalid_params_are_left_out():
    experiments = grid()
    experiments[0] = exp("grid-1", {"train.dropout": 0.0, "train.seed": 0, "plot.misclassified": 9})
    broken = exp("grid-7", {"train.dropout": 0.5, "train.seed": 3, "train.lr": -1.0})
    grouped = group(experiments + [broken])
    assert grouped.lines == (
        "left out: 1 experiment(s) whose params are not valid for this code (grid-7; "
        "src/core/params.py says why)",
        "not grouped: plot.misclassified varies but does not make the numbers (only the prepare "
        "and train params do)")
    assert grouped.sweep.varied == ("train.dropout",)  # not train.lr: only grid-7 had another
    assert sorted(grouped.frame["name"]) == [f"grid-{i}" for i in range(1, 7)]


@pytest.mark.parametrize("name, message", [
    ("dropout", "--name 'dropout' is a study of sweeps.yaml already: choose another, e.g. "
                "--name dropout_exps"),
    ("lr_dropout", "--name 'lr_dropout' is a study of searches.yaml already"),
    ("claims", "--name 'claims' is reserved"),
    ("my grid", "--name 'my grid': use letters, digits and _"),
])
def test_a_study_name_of_a_sweep_or_search_is_refused(name, message):
    with pytest.raises(TunelabError, match=re.escape(message)):
        experiments_study.check_name(name, {"sweeps.yaml": ["dropout"],
                                            "searches.yaml": ["lr_dropout"]})


def test_missing_seeds_of_dvc_named_experiments_are_said_by_group():
    grouped = group(grid(values={k: v for k, v in ACC.items() if k != (0.5, 2)}))
    assert sweep_report.missing(grouped.frame, grouped.sweep) == [
        "- missing: `dropout=0.5` with seed 2"]


def run_main(monkeypatch, tmp_path, argv, experiments, sweeps=""):
    """`python -m src.study ARGV` in ``tmp_path`` on ``experiments``; ``sweeps``: sweeps.yaml
    entries added to the repository's."""
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "params.yaml").write_text(json.dumps(BASE))
    for item in ("sweeps.yaml", "searches.yaml"):
        (tmp_path / item).write_text((REPO / item).read_text())
    with (tmp_path / "sweeps.yaml").open("a") as out:
        out.write(sweeps)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(dvc_queue, "dvc", lambda *a, **k: json.dumps(shown(*experiments)))
    monkeypatch.setattr(outputs, "log_to_mlflow", lambda *a, **k: None)
    monkeypatch.setattr(sys, "argv", ["study", *argv])
    study.main()


def test_the_door_writes_the_study_and_says_what_it_left_out(tmp_path, monkeypatch, capsys):
    lone = exp("grid-7", {"train.dropout": 0.7, "train.seed": 0})
    run_main(monkeypatch, tmp_path, ["--experiments", "grid-*", "--name", "grid", "--baseline",
                                     "train.dropout=0.0"], grid() + [lone])
    err = capsys.readouterr().err
    assert "study grid: left out: group dropout=0.7 has 1 completed seed(s) [0]" in err
    folder = tmp_path / "reports/study/grid"
    summary = pd.read_csv(folder / "summary.csv")
    assert summary["config"].tolist() == ["dropout=0.0", "dropout=0.5"]
    assert summary["verdict"].iloc[0] == "baseline" and summary["n"].tolist() == [3, 3]
    assert len(pd.read_csv(folder / "experiments.csv")) == 6


SEEDS4 = {(0.0, 0): 0.80, (0.0, 1): 0.82, (0.0, 2): 0.81, (0.0, 3): 0.83,
          (0.5, 0): 0.84, (0.5, 1): 0.85, (0.5, 2): 0.86, (0.5, 3): 0.85}
DROP = "\ndrop:\n  grid:\n    train.dropout: [0.0, 0.5]\n  baseline: {train.dropout: 0.0}\n"


def test_a_dvc_grid_and_the_same_experiments_as_a_named_sweep_reach_the_same_study(tmp_path,
                                                                                    monkeypatch):
    # One set of experiments (2 configurations x 4 seeds), named by DVC (`-n grid` -S ...) or by a
    # sweep (`drop--dropout=0.5--s3`): the two doors of `study` must decide them alike.
    run_main(monkeypatch, tmp_path / "dvc", ["--experiments", "grid-*", "--name", "grid",
                                             "--baseline", "train.dropout=0.0"], grid(values=SEEDS4))
    sweep = sweep_spec.parse_sweep("drop", yaml.safe_load(DROP)["drop"], BASE)
    named = [exp(e.name, e.overrides, SEEDS4[e.overrides["train.dropout"], e.seed])
             for e in sweep_spec.expand(sweep, 4, BASE)]
    assert named[-1]["name"] == "drop--dropout=0.5--s3"
    run_main(monkeypatch, tmp_path / "sweep", ["drop"], named, sweeps=DROP)
    by_dvc, by_sweep = (pd.read_csv(tmp_path / where / "reports/study" / name / "summary.csv")
                        for where, name in (("dvc", "grid"), ("sweep", "drop")))
    assert by_dvc["verdict"].tolist() == ["baseline", "better"]
    assert by_dvc["n"].tolist() == [4, 4]
    pd.testing.assert_frame_equal(by_dvc, by_sweep)


@pytest.mark.parametrize("argv, message", [
    (["dropout", "--experiments"], "--experiments studies the experiments of this commit"),
    (["--experiments", "--all-commits"], "--all, --all-commits and --set do not apply"),
    (["--experiments", "--name", "dropout"], "is a study of sweeps.yaml already"),
    (["dropout", "--baseline", "train.dropout=0.0"], "--name and --baseline go with --experiments"),
    (["--experiments"], "no group matches the baseline dropout=0.3 (params.yaml's)"),
])
def test_the_door_refuses_what_does_not_apply(tmp_path, monkeypatch, argv, message):
    with pytest.raises(TunelabError, match=re.escape(message)):
        run_main(monkeypatch, tmp_path, argv, grid())


# --- end to end ----------------------------------------------------------------------------------

QUEUE_WAIT_S = 900  # 4 tiny experiments on 2 workers take ~1-2 min; past this the queue hangs


@pytest.mark.slow  # 280 s on 2 cores busy with other training: four real experiments on DVC's queue
@pytest.mark.e2e
def test_a_grid_queued_with_dvcs_own_syntax_is_studied(tmp_path):
    (tmp_path / "project").mkdir()
    root, env = make_project(tmp_path / "project", TINY)
    sh("dvc", "exp", "run", "--queue", "-n", "grid", "-S", "train.dropout=0.0,0.5",
       "-S", "train.seed=range(0,2)", cwd=root, env=env)
    sh("dvc", "queue", "start", "-j", "2", cwd=root, env=env)
    deadline = time.monotonic() + QUEUE_WAIT_S
    while True:
        status = sh("dvc", "queue", "status", cwd=root, env=env).stdout
        tasks = dvc_queue.parse_queue_status(status)
        if len(tasks) == 4 and all(t.status not in ("Queued", "Running") for t in tasks):
            break
        assert time.monotonic() < deadline, f"the queue did not finish:\n{status}"
        time.sleep(2)
    assert [t.status for t in tasks] == ["Success"] * 4, status
    assert "Failed" not in status, status
    sh("dvc", "queue", "stop", cwd=root, env=env, ok=False)
    # every queued experiment succeeded: all four in `dvc exp show`, each with its metrics
    outcomes = exp_show.outcomes(json.loads(sh("dvc", "exp", "show", "--json", cwd=root,
                                               env=env).stdout))
    assert sorted(outcomes) == [f"grid-{i}" for i in range(1, 5)], outcomes
    assert all(o.state.usable and o.cv_accuracy is not None
               for o in outcomes.values()), outcomes
    # four trains on two workers created and wrote one fresh MLflow store without corrupting it
    with sqlite3.connect(root / "mlflow.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)

    done = sh(sys.executable, "-m", "src.study", "--experiments", "grid-*", "--name", "grid",
              "--baseline", "train.dropout=0.0", cwd=root, env=env)
    assert "study grid: 4 experiments" in done.stdout, done.stderr
    summary = pd.read_csv(root / "reports/study/grid/summary.csv")
    assert summary["config"].tolist() == ["dropout=0.0", "dropout=0.5"]
    assert summary["n"].tolist() == [2, 2]
    assert summary["verdict"].iloc[0] == "baseline"
    assert summary["verdict"].iloc[1].split()[0] in {"better", "worse", "equivalent", "undecided"}
    report = (root / "reports/study/grid/report.md").read_text()
    assert "grouped by train.dropout; train.seed as replicates" in report

    wrong = sh(sys.executable, "-m", "src.study", "--experiments", "--name", "grid",
               "--baseline", "train.dropout=0.3", cwd=root, env=env, ok=False)
    assert wrong.returncode == 2 and "Traceback" not in wrong.stderr
    assert "no group matches the baseline dropout=0.3" in wrong.stderr
