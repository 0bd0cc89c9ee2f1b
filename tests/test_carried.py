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
from tests.conftest import REPO, TINY, make_project, sh
from tests.test_adaptive import BASE, BASELINE, FAR, NEAR, SWEEP, identity_of, outcomes, truth

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
         "params.yaml": "# defaults\n" + (REPO / "params.yaml").read_text(),
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
    here = carried.fingerprint(carried.read_workspace)
    assert here is not None and carried.fingerprint(carried.read_commit(repo)) == here
    assert carried.fingerprint(carried.read_commit("0" * 40)) is None  # a commit not here


@pytest.mark.parametrize("name, old, new", [
    ("src/plot.py", "# plot", "# plot, restyled"),           # not a stage that makes metrics
    ("sweeps.yaml", "description: dropout", "description: dense dropout"),
    # params make the identity of each experiment, not the code's fingerprint: a changed default
    # or grid changes the experiments asked, which then match no committed row (tests below)
    ("sweeps.yaml", "[0.0, 0.2, 0.5]", "[0.0, 0.2, 0.6]"),
    ("params.yaml", "dropout: 0.3", "dropout: 0.4"),
    ("params.yaml", "# defaults", "# the defaults"),         # a comment
    ("README.md", "", ""),
])
def test_what_is_not_code_keeps_the_fingerprint(repo, name, old, new):
    if Path(name).exists():
        edit(name, old, new)
    else:
        Path(name).write_text("docs\n")
    assert carried.fingerprint(carried.read_workspace) == \
        carried.fingerprint(carried.read_commit(repo))


@pytest.mark.parametrize("name, old, new", [
    ("src/train.py", "# train", "# train, changed"),
    ("src/core.py", "# core", "# core, changed"),           # a dep of two stages
    ("src/evaluate.py", "# evaluate", "# evaluate, changed"),
    ("requirements.txt", "2.13.0", "2.12.0"),
    ("dvc.yaml", "[src/evaluate.py]", "[src/evaluate.py, src/metrics.py]"),
])
def test_what_makes_the_numbers_changes_the_fingerprint(repo, name, old, new):
    edit(name, old, new)
    assert carried.fingerprint(carried.read_workspace) != \
        carried.fingerprint(carried.read_commit(repo))


def commit_study(rows: list[tuple[str, int, str, float, str]], extra: dict | None = None,
                 legacy: bool = False) -> None:
    """reports/study/s/experiments.csv with rows (config, seed, state, cv, baseline commit) that
    ran with ``extra`` (``--set``); ``legacy``: without the identity column (a study written
    before it existed)."""
    folder = paths.STUDY_REPORTS / "s"
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame([{"name": f"s--{c}--s{seed}", "rev": f"exp{seed}{c}", "baseline": base,
                   **({} if legacy else {"identity": identity_of(c, seed, extra=extra)}),
                   "timestamp": "2026-12-01T10:00:00", "sweep": "s", "config": c,
                   "name_config": c, "seed": seed, "state": state, "reason": "", "host": "vm",
                   "cv_accuracy": cv, "test_accuracy": 0.8, "params": 1000.0,
                   "seconds_per_epoch": 1.0, "train_val_gap": 0.01, "fold_epochs": 10.0,
                   "train_seconds": 20.0} for c, seed, state, cv, base in rows]
                 ).to_csv(folder / "experiments.csv", index=False)


@pytest.mark.parametrize("legacy", [False, True])
def test_only_usable_rows_of_a_same_pipeline_commit_are_carried(repo, legacy):
    commit_study([(BASELINE, 0, "completed", 0.88, repo), (BASELINE, 1, "diverged", float("nan"), repo),
                  (NEAR, 0, "failed", float("nan"), repo), (NEAR, 1, "completed", 0.87, repo),
                  (FAR, 0, "completed", 0.85, "f" * 40), (FAR, 1, "completed", 0.85, "")],
                 legacy=legacy)
    rows = carried.carried_rows("s", live={identity_of(NEAR, 1)})
    assert sorted(r["name"] for r in rows) == [f"s--{BASELINE}--s0", f"s--{BASELINE}--s1"]
    assert [r["identity"] for r in rows] == [identity_of(BASELINE, 0), identity_of(BASELINE, 1)]

    live = {f"s--{BASELINE}--s0": Outcome(f"s--{BASELINE}--s0", "failed", None,
                                          identity=identity_of(BASELINE, 0)),
            f"s--{NEAR}--s1": Outcome(f"s--{NEAR}--s1", "completed", 0.9,
                                      identity=identity_of(NEAR, 1))}
    merged = carried.outcomes("s", live)
    experiments = {e.name: e for e in sweep_spec.expand(SWEEP, 2, BASE)}
    found = sweep_runner.matched(list(experiments.values()), merged)
    assert found[f"s--{BASELINE}--s0"] == Outcome(f"s--{BASELINE}--s0", "completed", 0.88, 20.0,
                                                  identity=identity_of(BASELINE, 0))
    assert found[f"s--{BASELINE}--s1"].state == "diverged"  # a result: not to be run again
    assert found[f"s--{BASELINE}--s1"].cv_accuracy is None
    assert found[f"s--{NEAR}--s1"].cv_accuracy == 0.9      # the current commit's wins
    assert f"s--{FAR}--s0" not in found

    edit("src/train.py", "# train", "# train, changed")  # the text differs: a canary decides
    asked = []
    assert carried.outcomes("s", live, run_canary=lambda c, cfg: asked.append((c, cfg))) == live
    # one canary per configuration of the commit (its first usable seed), on the commit's params
    configs = {SWEEP.label(c): c for c in SWEEP.configs}
    assert asked == [(repo, [sweep_spec.apply(BASE, configs[BASELINE] | {"train.seed": 0}),
                             sweep_spec.apply(BASE, configs[NEAR] | {"train.seed": 1})])]
    same = carried.outcomes("s", live, run_canary=lambda c, cfg: True)
    assert same == merged  # the same numbers on both codes: the evidence survives the edit
    assert carried.outcomes("s", live, run_canary=lambda c, cfg: None) == live  # cannot tell


def test_rows_count_for_the_experiments_of_their_params_only(repo):
    """Matching is by identity: committed rows of the plain params do not count for a `--set`
    sweep, nor for an edited params.yaml; rows that ran with an override count for it."""
    commit_study([(c, 0, "completed", 0.88, repo) for c in (BASELINE, NEAR, FAR)])
    plain = sweep_spec.expand(SWEEP, 1, BASE)
    known = carried.outcomes("s", {})
    assert sweep_runner.already_run(plain, known, {}) == ({e.name for e in plain}, 3)
    overridden = sweep_spec.expand(SWEEP, 1, BASE, {"prepare.train_size": 2000})
    assert sweep_runner.already_run(overridden, known, {}) == (set(), 0)
    edited = sweep_spec.apply(BASE, {"train.epochs": 2})
    assert sweep_runner.already_run(sweep_spec.expand(SWEEP, 1, edited, reference=BASE), known,
                                    {}) == (set(), 0)

    commit_study([(c, 0, "completed", 0.88, repo) for c in (BASELINE, NEAR, FAR)],
                 extra={"prepare.train_size": 2000})
    known = carried.outcomes("s", {})
    assert sweep_runner.already_run(overridden, known, {}) == ({e.name for e in overridden}, 3)
    assert sweep_runner.already_run(plain, known, {}) == (set(), 0)


def test_two_overrides_on_one_commit_are_two_sets_of_experiments():
    """The current commit's experiments of one `--set` do not count for another."""
    live = outcomes([(c, 0) for c in (BASELINE, NEAR, FAR)], extra={"train.epochs": 1})
    one = sweep_spec.expand(SWEEP, 1, BASE, {"train.epochs": 1})
    two = sweep_spec.expand(SWEEP, 1, BASE, {"train.epochs": 2})
    assert sweep_runner.already_run(one, live, live) == ({e.name for e in one}, 0)
    assert sweep_runner.already_run(two, live, live) == (set(), 0)
    assert not {e.name for e in one} & {e.name for e in two}  # DVC holds both on one commit
    # and a live experiment named as asked but of other params does not count either
    renamed = {e.name: Outcome(e.name, "completed", 0.9, identity=o.identity)
               for e, o in zip(two, live.values())}
    assert sweep_runner.already_run(two, renamed, renamed) == (set(), 0)


def test_a_commit_from_before_the_selection_set_keeps_its_full_data_experiments(repo):
    """A commit whose params.yaml predates ``prepare.selection_size`` drew no selection set: its
    sweep of all 60,000 training images is read as it ran (selection_size 0), not with today's
    default (10,000 images, which cannot fit beside 60,000 and made every such row unreadable)."""
    before = yaml.safe_load(Path("params.yaml").read_text())
    del before["prepare"]["selection_size"]
    Path("params.yaml").write_text(yaml.safe_dump(before))
    Path("sweeps.yaml").write_text(SWEEPS.replace("description: dropout",
                                                  "fixed: {prepare.train_size: 60000}"))
    git("commit", "-qam", "a sweep of every training image, before the selection set")
    commit = git("rev-parse", "HEAD")
    merged = carried.configurations(carried.read_commit(commit), "s")(BASELINE, 0)
    assert merged is not None and merged["prepare"]["train_size"] == 60000
    assert merged["prepare"]["selection_size"] == 0
    commit_study([(BASELINE, 0, "completed", 0.88, commit)], legacy=True)
    assert [r["name"] for r in carried.carried_rows("s")] == [f"s--{BASELINE}--s0"]


def test_rows_with_an_empty_baseline_ran_from_the_commit_that_was_head_then(repo):
    """Nine studies were committed with an empty baseline column: their rows count as run from
    the newest commit older than their earliest experiment, once its code is checked."""
    commit_study([(BASELINE, 0, "completed", 0.88, ""), (NEAR, 0, "completed", 0.87, "")])
    csv = paths.STUDY_REPORTS / "s" / "experiments.csv"
    frame = pd.read_csv(csv)
    frame["timestamp"] = ["2099-01-01T00:00:00", "2099-01-02T00:00:00"]
    frame.to_csv(csv, index=False)
    assert carried.inferred_baseline(pd.read_csv(csv, dtype=str, keep_default_na=False)
                                     .to_dict("records")) == repo
    assert sorted(r["name"] for r in carried.carried_rows("s")) == [f"s--{BASELINE}--s0",
                                                                     f"s--{NEAR}--s0"]
    edit("src/train.py", "# train", "# train, changed")  # a canary decides, on that commit
    asked = []
    assert carried.carried_rows("s", run_canary=lambda c, cfg: asked.append(c)) == []
    assert asked == [repo]
    frame["timestamp"] = "2000-01-01T00:00:00"  # before any commit: nothing to carry
    frame.to_csv(csv, index=False)
    assert carried.carried_rows("s", run_canary=lambda c, cfg: True) == []


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


def test_the_dry_run_plans_from_what_ran_here_or_was_carried_over(repo, monkeypatch, capsys):
    """Round 1 carried over from the committed study (5 of it) or run here (4): only the next
    round is left to plan; through the real carry-over, not a stand-in for it."""
    from tests.test_adaptive import dry_run
    round1 = sorted((c, s) for c in (BASELINE, NEAR, FAR) for s in range(3))
    commit_study([(c, s, "completed", truth(c, s), repo) for c, s in round1[4:]])
    git("add", "-A")
    git("-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-qm", "study")
    later = dry_run(monkeypatch, capsys, outcomes(round1[:4]))
    queued = sorted(line.split()[5] for line in later.splitlines()
                    if line.startswith("dvc exp run"))
    assert queued == ["s--dropout=0.0--s3", "s--dropout=0.2--s3"]
    assert "look 1 of 3: 1 decided (worse 1), 1 open: dropout=0.2" in later
    assert "9 already succeeded on this commit or carried over from the committed study (5)" \
        in later


def test_continuing_a_committed_study_spends_only_what_its_looks_left(repo, monkeypatch, capsys):
    """A committed Bonferroni study (design.json without a method, 3-5 seeds, 1 look taken)
    continued by a sweep whose sweeps.yaml method is O'Brien-Fleming: its look is decided as it
    was, and the later looks spend the alpha it left; a study that took its last look keeps its
    design (nothing is left to spend)."""
    from tests.test_adaptive import dry_run
    spending = sweep_spec.parse_sweep("s", {"grid": {"train.dropout": [0.0, 0.2, 0.5]},
                                            "baseline": {"train.dropout": 0.0}}, BASE)
    assert spending.design.method == "obrien_fleming"
    round1 = sorted((c, s) for c in (BASELINE, NEAR, FAR) for s in range(3))
    commit_study([(c, s, "completed", truth(c, s), repo) for c, s in round1])
    (paths.STUDY_REPORTS / "s" / "design.json").write_text(
        '{"seeds": 3, "max_seeds": 5, "margin": 0.005, "alpha": 0.05}\n')
    git("add", "-A")
    git("-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-qm", "study")
    out = dry_run(monkeypatch, capsys, {}, sweep=spending)
    assert ("continues its committed study (bonferroni, 1 of 3 looks taken, as they were "
            "decided); the later looks spend what they left (67% of alpha) by obrien_fleming") in out
    assert "look 1 of 3: 1 decided (worse 1)" in out  # as the committed study decided it
    design = adaptive.continued_design(spending, sweep_spec.expand(spending, 10, BASE),
                                       adaptive.backends.LocalQueue("s", 1, 0.0), 3, 10)
    assert (design.continues, design.continued_after) == (adaptive.decide.Design(3, 5), 1)
    assert adaptive.design_of(adaptive.design_fields(design, 0.005)) == design  # recorded as is

    last = sorted((c, s) for c in (BASELINE, NEAR, FAR) for s in range(5))  # its last look
    commit_study([(c, s, "completed", truth(c, s), repo) for c, s in last])
    assert "no alpha left to spend otherwise" in dry_run(monkeypatch, capsys, {}, sweep=spending)
    # without the committed study's experiments, the sweep's own method
    (paths.STUDY_REPORTS / "s" / "experiments.csv").unlink()
    out = dry_run(monkeypatch, capsys, {}, sweep=spending)
    assert "obrien_fleming alpha spending" in out and "continues" not in out


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
                          "name_config": NEAR, "identity": identity_of(NEAR, 0),
                          "seed": 0, "state": "completed", "host": "here", "others": "",
                          "cv_accuracy": 0.9, "timestamp": "2026-12-02T10:00:00"},
                         {"name": f"s--{FAR}--s0--vabcdef12", "rev": "y", "baseline": "f" * 40,
                          "config": FAR, "name_config": FAR, "seed": 0, "state": "completed",
                          "identity": identity_of(FAR, 0, extra={"train.epochs": 1}),
                          "host": "here", "others": "", "cv_accuracy": 0.5,
                          "timestamp": "2026-12-02T10:00:00"}]
                        ).reindex(columns=sweep_study.COLUMNS)
    frame, others = sweep_study.select(sweep_study.with_carried(live, SWEEP), SWEEP, BASE)
    assert list(others["name"]) == [f"s--{FAR}--s0--vabcdef12"]  # another --set: not this study
    _, just_far = sweep_study.select(live, SWEEP, BASE, {"train.epochs": 1})
    assert list(just_far["name"]) == [f"s--{NEAR}--s0"]
    frame = frame.set_index("name")
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
    planned = sh(*run, "--dry-run", cwd=root, env=env)
    assert "4 experiments (of 4: 2 configurations x 2 seeds; 0 already succeeded" in \
        planned.stdout  # another default: other identities, every experiment runs again


@pytest.mark.slow  # ~1-2 min: 2 + 2 experiments of the tiny pipeline on 2 workers
@pytest.mark.e2e
def test_an_override_queues_its_own_experiments_and_its_own_study(tmp_path):
    """On the real queue: `--set train.epochs=1` runs the sweep's 2 experiments, `--set
    train.epochs=2` 2 more (not 'already succeeded'), and `study --set` reports each set alone.
    TINY's params.yaml has 2 epochs: those are the plain experiments, a bare study's."""
    (tmp_path / "project").mkdir()
    root, env = make_project(tmp_path / "project", TINY, {"sweeps.yaml": CARRY})
    run = (sys.executable, "-m", "src.sweep", "run", "tiny", "--seeds", "1", "--jobs", "2",
           "--poll", "1")
    one = sh(*run, "--set", "train.epochs=1", cwd=root, env=env)
    assert "0 already succeeded" in one.stdout and "2 to queue" in one.stdout
    two = sh(*run, "--set", "train.epochs=2", cwd=root, env=env)
    assert "0 already succeeded" in two.stdout and "2 to queue" in two.stdout
    again = sh(*run, "--set", "train.epochs=1", cwd=root, env=env)
    assert "2 already succeeded" in again.stdout and "nothing to run" in again.stdout
    epochs = {}
    for value in (1, 2):
        done = sh(sys.executable, "-m", "src.study", "tiny", "--set", f"train.epochs={value}",
                  cwd=root, env=env)
        assert "2 experiment(s) of other params left out" in done.stderr
        table = pd.read_csv(root / "reports/study/tiny/experiments.csv")
        assert len(table) == 2 and table["name"].str.contains("--v").all() == (value == 1)
        epochs[value] = set(table["fold_epochs"])
        report = (root / "reports/study/tiny/report.md").read_text()
        assert f"`--set train.epochs={value}`" in report
    assert epochs == {1: {2.0}, 2: {4.0}}  # 2 folds x 1 epoch, 2 folds x 2 epochs
    sh(sys.executable, "-m", "src.study", "tiny", cwd=root, env=env)
    plain = pd.read_csv(root / "reports/study/tiny/experiments.csv")
    assert set(plain["fold_epochs"]) == {4.0} and not plain["name"].str.contains("--v").any()
