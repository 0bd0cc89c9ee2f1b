"""Experiments carried over from a committed study (src/experiments/carried.py): which commits
count as the same pipeline, which committed rows count as run, and that `sweep run` (fixed and
--until-decided) and the study use them; end to end on a real DVC repository (slow)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from src.core import paths
from src.experiments import adaptive, carried, dvc_queue, sweep_runner, sweep_spec
from src.experiments.exp_show import Outcome
from src.studies import sweep_study
from src.tracking import store
from tests.conftest import TINY, make_project, sh
from tests.test_adaptive import BASE, BASELINE, FAR, NEAR, SWEEP, outcomes, truth

PIPELINE = """
stages:
  prepare: {cmd: python -m src.prepare, deps: [src/prepare.py, src/core.py]}
  train: {cmd: python -m src.train, deps: [data/prepared.npz, src/train.py, src/core.py],
          params: [train]}
  evaluate: {cmd: python -m src.evaluate, deps: [src/evaluate.py]}
  plot: {cmd: python -m src.plot, deps: [src/plot.py]}
"""
SWEEPS = """
s:
  description: dropout
  grid: {train.dropout: [0.0, 0.2, 0.5]}
  baseline: {train.dropout: 0.0}
other:
  grid: {train.lr: [0.001, 0.01]}
  baseline: {train.lr: 0.001}
"""
FILES = {"dvc.yaml": PIPELINE, "sweeps.yaml": SWEEPS, "requirements.txt": "torch==2.13.0\n",
         "params.yaml": "# defaults\ntrain: {dropout: 0.3, lr: 0.001}\n",
         **{f"src/{m}.py": f"# {m}\n" for m in ("prepare", "core", "train", "evaluate", "plot")}}


def git(*args: str) -> str:
    return subprocess.run(["git", *args], check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path, monkeypatch) -> str:
    """A git repository holding FILES, as the working directory; returns its commit."""
    monkeypatch.chdir(tmp_path)
    for name, text in FILES.items():
        Path(name).parent.mkdir(parents=True, exist_ok=True)
        Path(name).write_text(text)
    git("init", "-q")
    git("add", "-A")
    git("-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-qm", "init")
    return git("rev-parse", "HEAD")


def edit(name: str, old: str, new: str) -> None:
    path = Path(name)
    assert old in path.read_text()
    path.write_text(path.read_text().replace(old, new))


def test_the_commit_and_an_unchanged_working_tree_agree(repo):
    here = carried.fingerprint(carried.read_workspace, "s")
    assert here is not None and carried.fingerprint(carried.read_commit(repo), "s") == here
    assert carried.fingerprint(carried.read_commit(repo), "other") != here
    assert carried.fingerprint(carried.read_commit("0" * 40), "s") is None  # a commit not here
    assert carried.fingerprint(carried.read_workspace, "nosuch") is None


@pytest.mark.parametrize("name, old, new", [
    ("src/plot.py", "# plot", "# plot, restyled"),           # not a stage that makes metrics
    ("sweeps.yaml", "description: dropout", "description: dense dropout"),
    ("sweeps.yaml", "baseline: {train.dropout: 0.0}", "baseline: {train.dropout: 0.2}"),
    ("sweeps.yaml", "[0.001, 0.01]", "[0.001, 0.003]"),     # another sweep
    ("params.yaml", "# defaults", "# the defaults"),         # a comment
    ("README.md", "", ""),
])
def test_what_makes_no_experiment_keeps_the_fingerprint(repo, name, old, new):
    if Path(name).exists():
        edit(name, old, new)
    else:
        Path(name).write_text("docs\n")
    assert carried.fingerprint(carried.read_workspace, "s") == \
        carried.fingerprint(carried.read_commit(repo), "s")


@pytest.mark.parametrize("name, old, new", [
    ("src/train.py", "# train", "# train, changed"),
    ("src/core.py", "# core", "# core, changed"),           # a dep of two stages
    ("src/evaluate.py", "# evaluate", "# evaluate, changed"),
    ("params.yaml", "dropout: 0.3", "dropout: 0.4"),
    ("requirements.txt", "2.13.0", "2.12.0"),
    ("sweeps.yaml", "[0.0, 0.2, 0.5]", "[0.0, 0.2, 0.6]"),
    ("dvc.yaml", "[src/evaluate.py]", "[src/evaluate.py, src/metrics.py]"),
])
def test_what_makes_the_numbers_changes_the_fingerprint(repo, name, old, new):
    edit(name, old, new)
    assert carried.fingerprint(carried.read_workspace, "s") != \
        carried.fingerprint(carried.read_commit(repo), "s")


def commit_study(rows: list[tuple[str, int, str, float, str]]) -> None:
    """reports/study/s/experiments.csv with rows (config, seed, state, cv, baseline commit)."""
    folder = paths.STUDY_REPORTS / "s"
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame([{"name": f"s--{c}--s{seed}", "rev": f"exp{seed}{c}", "baseline": base,
                   "timestamp": "2026-12-01T10:00:00", "sweep": "s", "config": c,
                   "name_config": c, "seed": seed, "state": state, "reason": "", "host": "vm",
                   "cv_accuracy": cv, "test_accuracy": 0.8, "params": 1000.0,
                   "seconds_per_epoch": 1.0, "train_val_gap": 0.01, "fold_epochs": 10.0,
                   "train_seconds": 20.0} for c, seed, state, cv, base in rows]
                 ).to_csv(folder / "experiments.csv", index=False)


def test_only_usable_rows_of_a_same_pipeline_commit_are_carried(repo):
    commit_study([(BASELINE, 0, "completed", 0.88, repo), (BASELINE, 1, "diverged", float("nan"), repo),
                  (NEAR, 0, "failed", float("nan"), repo), (NEAR, 1, "completed", 0.87, repo),
                  (FAR, 0, "completed", 0.85, "f" * 40), (FAR, 1, "completed", 0.85, "")])
    rows = carried.carried_rows("s", live={f"s--{NEAR}--s1"})
    assert sorted(r["name"] for r in rows) == [f"s--{BASELINE}--s0", f"s--{BASELINE}--s1"]

    live = {f"s--{BASELINE}--s0": Outcome(f"s--{BASELINE}--s0", "failed", None),
            f"s--{NEAR}--s1": Outcome(f"s--{NEAR}--s1", "completed", 0.9)}
    merged = carried.outcomes("s", live)
    assert merged[f"s--{BASELINE}--s0"] == Outcome(f"s--{BASELINE}--s0", "completed", 0.88, 20.0)
    assert merged[f"s--{BASELINE}--s1"].state == "diverged"  # a result: not to be run again
    assert merged[f"s--{BASELINE}--s1"].cv_accuracy is None
    assert merged[f"s--{NEAR}--s1"].cv_accuracy == 0.9      # the current commit's wins
    assert f"s--{FAR}--s0" not in merged

    edit("src/train.py", "# train", "# train, changed")
    assert carried.outcomes("s", live) == live


def test_a_study_without_the_baseline_column_carries_nothing(repo):
    commit_study([(BASELINE, 0, "completed", 0.88, repo)])
    csv = paths.STUDY_REPORTS / "s" / "experiments.csv"
    pd.read_csv(csv).drop(columns="baseline").to_csv(csv, index=False)
    assert carried.carried_rows("s", live=set()) == []


def test_the_adaptive_runner_starts_from_the_carried_seeds(repo, monkeypatch):
    commit_study([(c, s, "completed", truth(c, s), repo) for c in (BASELINE, NEAR, FAR)
                  for s in range(3)])
    rounds = []

    def fake_run(name, todo, in_order, jobs, poll):
        rounds.append(sorted(e.name for e in todo))
        return sweep_runner.known_outcomes(name, outcomes((e.config, e.seed) for e in todo))

    monkeypatch.setattr(sweep_spec, "load_sweeps", lambda names: (BASE, {"s": SWEEP}))
    monkeypatch.setattr(dvc_queue, "experiment_outcomes", lambda: {})
    monkeypatch.setattr(sweep_runner, "run_experiments", fake_run)
    monkeypatch.setattr(sweep_runner, "report", lambda name, exps, found: 0)
    monkeypatch.setattr(adaptive, "record_design", lambda *a: None)
    adaptive.run("s", 3, 5, jobs=2, extra={})
    # FAR was decided at look 1 from the carried seeds: only NEAR and the baseline get seed 3
    assert rounds[0] == [f"s--{BASELINE}--s3", f"s--{NEAR}--s3"]


def test_a_fixed_run_queues_only_what_was_not_carried(repo, monkeypatch, capsys):
    commit_study([(BASELINE, 0, "completed", 0.88, repo), (NEAR, 0, "completed", 0.87, repo)])
    queued = []
    monkeypatch.setattr(dvc_queue, "queue_tasks", lambda: [])
    monkeypatch.setattr(dvc_queue, "experiment_outcomes", lambda: {})
    monkeypatch.setattr(dvc_queue, "enqueue", lambda todo, tasks: queued.extend(todo) or set())
    monkeypatch.setattr(store, "init_store", lambda: None)
    experiments = sweep_spec.expand(SWEEP, 1, BASE, {})
    found = sweep_runner.run_experiments("s", experiments, experiments, 2, 0.1)
    assert [e.name for e in queued] == [f"s--{FAR}--s0"]
    assert "2 already succeeded on this commit or carried over from the committed study (2)" in \
        capsys.readouterr().out
    assert sorted(found) == [f"s--{BASELINE}--s0", f"s--{NEAR}--s0"]


def test_the_study_reports_carried_rows_where_the_commit_has_none(repo):
    commit_study([(BASELINE, 0, "completed", 0.88, repo), (NEAR, 0, "completed", 0.87, repo)])
    live = pd.DataFrame([{"name": f"s--{NEAR}--s0", "rev": "x", "baseline": "f" * 40, "config": NEAR,
                          "name_config": NEAR,
                          "seed": 0, "state": "completed", "host": "here", "others": "",
                          "cv_accuracy": 0.9}]).reindex(columns=sweep_study.COLUMNS)
    frame = sweep_study.with_carried(live, SWEEP).set_index("name")
    assert sorted(frame.index) == [f"s--{BASELINE}--s0", f"s--{NEAR}--s0"]
    assert frame.loc[f"s--{NEAR}--s0", "cv_accuracy"] == 0.9  # the commit's own run
    row = frame.loc[f"s--{BASELINE}--s0"]
    assert (row["cv_accuracy"], row["seed"], row["host"], row["baseline"]) == (0.88, 0, "vm", repo)
    assert row["others"] == ""

    from src.studies.sweep_report import render_report
    frame = frame.reset_index()
    summary = sweep_study.summary_table(frame, SWEEP)
    report = render_report(SWEEP, frame, summary, None, "", [])
    assert f"They ran from 2 commits with the same sources and params (src/experiments/" \
           f"carried.py): {repo[:7]} (1), fffffff (1)." in report
    assert "is named" not in report


CARRY = """
tiny:
  description: BatchNorm or not, on synthetic data
  grid: {train.norm: [batch, none]}
  baseline: {train.norm: batch}
"""


@pytest.mark.slow  # ~2 min: 4 + 2 experiments of the tiny pipeline on 2 workers
@pytest.mark.e2e
def test_a_committed_study_spares_a_new_commit_its_experiments(tmp_path):
    """Run, study, commit the report and an unrelated change: `sweep run` trains nothing again
    and the study still has every experiment; a changed param default trains them again."""
    (tmp_path / "project").mkdir()
    root, env = make_project(tmp_path / "project", TINY, {"sweeps.yaml": CARRY})
    run = (sys.executable, "-m", "src.sweep", "run", "tiny", "--seeds", "2", "--jobs", "2",
           "--poll", "1")
    sh(*run, cwd=root, env=env)
    sh(sys.executable, "-m", "src.study", "tiny", cwd=root, env=env)
    first = pd.read_csv(root / "reports/study/tiny/experiments.csv")
    assert len(first) == 4 and set(first["baseline"]) == {
        sh("git", "rev-parse", "HEAD", cwd=root, env=env).stdout.strip()}
    (root / "NOTES.md").write_text("the study above\n")
    sh("git", "add", "-A", cwd=root, env=env)
    sh("git", "commit", "-qm", "study", cwd=root, env=env)

    again = sh(*run, cwd=root, env=env)
    assert "4 already succeeded on this commit or carried over from the committed study (4)" in \
        again.stdout and "nothing to run" in again.stdout
    sh(sys.executable, "-m", "src.study", "tiny", cwd=root, env=env)
    second = pd.read_csv(root / "reports/study/tiny/experiments.csv")
    assert sorted(second["name"]) == sorted(first["name"])
    assert second.set_index("name")["cv_accuracy"].to_dict() == \
        first.set_index("name")["cv_accuracy"].to_dict()

    params = yaml.safe_load((root / "params.yaml").read_text())
    params["train"]["epochs"] = 1
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    sh("git", "commit", "-qam", "one epoch", cwd=root, env=env)
    known = sh(sys.executable, "-c", "from src.experiments import sweep_runner; "
               "print(sorted(sweep_runner.known_outcomes('tiny')))", cwd=root, env=env)
    assert known.stdout.strip() == "[]"  # another default: every experiment runs again
