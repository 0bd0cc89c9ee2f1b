"""Adaptive seeds (`sweep run --until-decided`): the sequential procedure replayed over the
experiments that exist, the rounds it asks for, and the runner's loop with a fake queue."""

from __future__ import annotations

import dataclasses
import math
import zlib

import numpy as np
import pytest

from src.core import decide, identity, params
from src.experiments import adaptive, dvc_queue, grid, sweep_runner, sweep_spec
from src.experiments.exp_show import Outcome
from tests.conftest import REPO

BASE = params.read_yaml(REPO / "params.yaml")
# Bonferroni over the looks, as DESIGN: FAR is decided at look 1 (the runner's tests count on it).
SWEEP = sweep_spec.parse_sweep("s", {"grid": {"train.dropout": [0.0, 0.2, 0.5]},
                                     "baseline": {"train.dropout": 0.0}, "margin": 0.005,
                                     "method": "bonferroni"}, BASE)
DESIGN = decide.Design(3, 5)
BASELINE, FAR, NEAR = "dropout=0.0", "dropout=0.5", "dropout=0.2"


def truth(config: str, seed: int) -> float:
    """CV accuracies: `far` is 3 points worse, clearly; `near` differs by noise alone."""
    noise = np.random.default_rng([seed, zlib.crc32(config.encode())]).normal(0, 0.003)
    return 0.88 + noise + {BASELINE: 0.0, FAR: -0.03, NEAR: 0.0}[config]


def identity_of(config: str, seed: int, base: dict = BASE, extra: dict | None = None) -> str:
    """The identity of SWEEP's configuration ``config`` at ``seed`` on ``base`` with ``extra``."""
    spec = {SWEEP.label(c): c for c in SWEEP.configs}[config]
    return identity.of(sweep_spec.apply(base, spec | (extra or {}) | {"train.seed": seed}))


def outcomes(pairs, extra: dict | None = None) -> dict[str, Outcome]:
    """Completed experiments of SWEEP (config, seed) on params.yaml with ``extra``, by name."""
    found = {}
    for c, seed in pairs:
        ident = identity_of(c, seed, extra=extra)
        name = f"s--{c}--s{seed}" + (f"--v{ident[:8]}" if extra else "")
        found[name] = Outcome(name, "completed", truth(c, seed), identity=ident)
    return found


def test_replay_asks_for_the_first_seeds_of_everyone_first():
    state = adaptive.replay({}, BASELINE, [BASELINE, NEAR, FAR], 0.005, DESIGN)
    assert state.looks == 0 and state.pending == {NEAR: [0, 1, 2], FAR: [0, 1, 2]}
    round1 = adaptive.round_experiments(SWEEP, BASE, {}, state.pending)
    assert sorted(e.name for e in round1) == sorted(
        f"s--{c}--s{s}" for c in (BASELINE, NEAR, FAR) for s in range(3))


def test_only_the_undecided_get_the_next_seed_and_decisions_stay_final():
    values = adaptive.cv_by_seed(outcomes((c, s) for c in (BASELINE, NEAR, FAR) for s in range(3)),
                                 "s")
    state = adaptive.replay(values, BASELINE, [BASELINE, NEAR, FAR], 0.005, DESIGN)
    assert state.looks == 1
    assert state.decisions[FAR].verdict == "worse" and state.decisions[FAR].look == 1
    assert state.decisions[NEAR].verdict == "undecided"
    assert state.pending == {NEAR: [3]}  # the baseline's seed 3 comes with it
    assert sorted(e.name for e in adaptive.round_experiments(SWEEP, BASE, {}, state.pending)) == \
        ["s--dropout=0.0--s3", "s--dropout=0.2--s3"]


def test_the_replay_is_the_simulated_procedure():
    """Fed every seed at once, the replay reaches what run_sequential reaches when it draws them."""
    everything = outcomes((c, s) for c in (BASELINE, NEAR, FAR) for s in range(DESIGN.max_seeds))
    replayed = adaptive.replay(adaptive.cv_by_seed(everything, "s"), BASELINE,
                               [BASELINE, NEAR, FAR], 0.005, DESIGN)
    drawn = decide.run_sequential(
        lambda todo, seeds: {c: [truth(c, s) - truth(BASELINE, s) for s in seeds] for c in todo},
        [NEAR, FAR], 0.005, DESIGN)
    assert replayed.over and replayed.decisions == drawn


def test_a_diverged_run_is_a_missing_pair_not_a_seed_to_wait_for():
    pairs = [(c, s) for c in (BASELINE, NEAR, FAR) for s in range(3)]
    found = outcomes(pairs)
    found["s--dropout=0.2--s1"] = Outcome("s--dropout=0.2--s1", "diverged", None)
    found["s--dropout=0.5--s2"] = Outcome("s--dropout=0.5--s2", "failed", None)
    values = adaptive.cv_by_seed(found, "s")
    assert math.isnan(values[NEAR][1]) and 2 not in values[FAR]
    state = adaptive.replay(values, BASELINE, [BASELINE, NEAR, FAR], 0.005, DESIGN)
    assert state.looks == 0 and state.pending[FAR] == [0, 1, 2]  # the failed one runs again


def test_the_runner_loops_until_decided_and_stops_on_a_seed_that_keeps_failing(monkeypatch,
                                                                                 capsys):
    done: dict[str, Outcome] = {}
    rounds = []

    def fake_run(name, todo, in_order, jobs, poll):
        rounds.append(sorted(e.name for e in todo))
        done.update(outcomes((e.config, e.seed) for e in todo))
        return dict(done)

    monkeypatch.setattr(sweep_spec, "load_sweeps", lambda names: (BASE, {"s": SWEEP}))
    monkeypatch.setattr(dvc_queue, "experiment_outcomes", lambda: dict(done))
    monkeypatch.setattr(sweep_runner, "run_experiments", fake_run)
    monkeypatch.setattr(sweep_runner, "report", lambda name, exps, found: 0)
    monkeypatch.setattr(adaptive, "record_design", lambda *a: None)
    looks = []
    assert adaptive.run("s", 3, 5, jobs=2, extra={},
                        after_look=lambda look, line: looks.append((look, line))) == 0
    assert [look for look, _ in looks] == list(range(1, len(rounds) + 1))  # one per round run
    assert looks[0][1].startswith("look 1 of 3:")
    assert len(rounds[0]) == 9 and all("dropout=0.5" not in n for r in rounds[1:] for n in r)
    assert all(n.endswith(f"--s{2 + i}") for i, r in enumerate(rounds[1:], 1) for n in r)
    out = capsys.readouterr().out
    assert "look 1 of 3:" in out and "next: python -m src.study s" in out

    done.clear()
    rounds.clear()
    monkeypatch.setattr(sweep_runner, "run_experiments", lambda name, todo, *a: {
        n: o for n, o in outcomes((e.config, e.seed) for e in todo).items()
        if n != "s--dropout=0.2--s1"})  # this one never gives a result
    monkeypatch.setattr(dvc_queue, "experiment_outcomes", lambda: {})
    adaptive.run("s", 3, 5, jobs=2, extra={})
    assert "stopping: s--dropout=0.2--s1" in capsys.readouterr().out


def test_the_runner_uses_and_records_the_sweeps_method(monkeypatch):
    recorded = []
    spending = sweep_spec.parse_sweep("s", {"grid": {"train.dropout": [0.0, 0.2, 0.5]},
                                            "baseline": {"train.dropout": 0.0}}, BASE)
    assert spending.design.method == "obrien_fleming"  # the default of a new sweep
    monkeypatch.setattr(sweep_spec, "load_sweeps", lambda names: (BASE, {"s": spending}))
    monkeypatch.setattr(dvc_queue, "experiment_outcomes", lambda: outcomes(
        (c, s) for c in (BASELINE, NEAR, FAR) for s in range(5)))
    monkeypatch.setattr(sweep_runner, "report", lambda name, exps, found: 0)
    monkeypatch.setattr(adaptive, "record_design", lambda name, design, margin, metric:
                        recorded.append(adaptive.design_fields(design, margin, metric)))
    adaptive.run("s", 3, 5, jobs=2, extra={})
    assert recorded == [{"seeds": 3, "max_seeds": 5, "margin": 0.005, "alpha": 0.05,
                         "method": "obrien_fleming"}]
    # a Bonferroni design is recorded as before there were methods (committed design.json files)
    assert adaptive.design_fields(DESIGN, 0.005) == {"seeds": 3, "max_seeds": 5, "margin": 0.005,
                                                     "alpha": 0.05}


def dry_run(monkeypatch, capsys, live: dict[str, Outcome], sweep=SWEEP) -> str:
    """`sweep run s --seeds 3 --max-seeds 5 --until-decided --dry-run`'s output (and what it
    says on stderr), with ``live`` experiments on this commit (the committed study's carried
    ones: tests/test_carried.py)."""
    monkeypatch.setattr(sweep_spec, "load_sweeps", lambda names: (BASE, {"s": sweep}))
    monkeypatch.setattr(dvc_queue, "experiment_outcomes", lambda: dict(live))
    monkeypatch.setattr(sweep_runner, "estimated_wall", lambda todo, *a: 60.0 * len(todo))
    assert adaptive.run("s", 3, 5, jobs=2, extra={}, dry_run=True) == 0
    captured = capsys.readouterr()
    return captured.out + captured.err


def test_the_dry_run_plans_from_what_ran_here(monkeypatch, capsys):
    round1 = outcomes((c, s) for c in (BASELINE, NEAR, FAR) for s in range(3))
    fresh = dry_run(monkeypatch, capsys, {})
    assert fresh.count("dvc exp run --queue") == 9 and "look 1 of 3" in fresh
    later = dry_run(monkeypatch, capsys, round1)  # only the next round is left to plan
    queued = sorted(line.split()[5] for line in later.splitlines()
                    if line.startswith("dvc exp run"))
    assert queued == ["s--dropout=0.0--s3", "s--dropout=0.2--s3"]
    assert "look 1 of 3: 1 decided (worse 1), 1 open: dropout=0.2" in later
    assert "9 already succeeded on this commit;" in later
    assert "this round 2 min" in later  # 2 experiments, not the 9 of round 1
    assert "at most 6 more experiments" in later  # 15 in all at 5 seeds, 9 done
    # Every comparison decided: nothing left to run.
    everything = outcomes((c, s) for c in (BASELINE, NEAR, FAR) for s in range(5))
    over = dry_run(monkeypatch, capsys, everything)
    assert "nothing to run (--dry-run)" in over and "dvc exp run" not in over


def test_a_fixed_dry_run_lists_only_what_is_missing(monkeypatch, capsys):
    done = outcomes((c, s) for c in (BASELINE, NEAR, FAR) for s in range(2))
    monkeypatch.setattr(sweep_spec, "load_sweeps", lambda names: (BASE, {"s": SWEEP}))
    monkeypatch.setattr(dvc_queue, "experiment_outcomes", lambda: done)
    monkeypatch.setattr(sweep_runner, "estimated_wall", lambda todo, *a: 60.0 * len(todo))
    assert grid.run("s", 3, jobs=2, extra={}, dry_run=True) == 0
    out = capsys.readouterr().out
    assert out.count("dvc exp run --queue") == 3 and out.count("--s2 ") == 3
    assert "3 experiments (of 9: 3 configurations x 3 seeds; 6 already succeeded" in out
    assert "estimated wall time on 2 worker(s): 3 min" in out


def test_bad_seeds_are_refused(monkeypatch):
    monkeypatch.setattr(sweep_spec, "load_sweeps", lambda names: (BASE, {"s": SWEEP}))
    with pytest.raises(Exception, match="need 2 <= --seeds <= --max-seeds"):
        adaptive.run("s", 4, 3, jobs=1, extra={})


ADAPTIVE = """
adaptive:
  description: one configuration that cannot learn, one that differs by noise alone
  fixed: {prepare.train_size: 600, prepare.selection_size: 0, train.epochs: 3}  # steps to learn
  configs: [{}, {train.lr: 0.0000001}, {train.dropout: 0.1}]
  baseline: {}
  margin: 0.001
"""


@pytest.mark.slow  # ~2-4 min: 11 experiments of the tiny pipeline in two rounds on 2 workers
@pytest.mark.e2e
def test_an_adaptive_sweep_on_the_real_queue_gives_seeds_only_to_the_undecided(tmp_path):
    import json
    import sys

    from tests.conftest import TINY, make_project, sh
    root, env = make_project(tmp_path / "project", TINY, {"sweeps.yaml": ADAPTIVE})
    run = sh(sys.executable, "-m", "src.sweep", "run", "adaptive", "--seeds", "3",
             "--until-decided", "--max-seeds", "4", "--jobs", "2", "--poll", "1", cwd=root, env=env)
    assert "look 1 of 2: 1 decided (worse 1), 1 open: dropout=0.1" in run.stdout, run.stdout
    shown = json.loads(sh("dvc", "exp", "show", "--json", cwd=root, env=env).stdout)
    names = {e["name"] for rev in shown for e in rev.get("experiments") or []}
    seeds = {c: sorted(int(n.rsplit("--s", 1)[1]) for n in names if f"--{c}--" in n)
             for c in ("base", "lr=0.0000001", "dropout=0.1")}
    assert seeds == {"base": [0, 1, 2, 3], "lr=0.0000001": [0, 1, 2], "dropout=0.1": [0, 1, 2, 3]}
    study = sh(sys.executable, "-m", "src.study", "adaptive", cwd=root, env=env)
    assert "11 experiments" in study.stdout
    report = (root / "reports/study/adaptive/report.md").read_text()
    assert "lr=0.0000001: worse than base" in report
    assert "(decided at look 1)" in report and "2 look(s)" in report
    assert (root / "reports/study/adaptive/forest.png").stat().st_size > 10_000


def test_the_runner_reads_the_designs_metric_and_cv_where_an_experiment_lacks_it():
    found = {name: dataclasses.replace(o, selection_accuracy=o.cv_accuracy + 0.01)
             for name, o in outcomes((c, s) for c in (BASELINE, FAR) for s in range(3)).items()}
    chosen = adaptive.cv_by_seed(found, "s", "selection_accuracy")
    assert chosen[FAR][2] == pytest.approx(truth(FAR, 2) + 0.01)
    assert adaptive.cv_by_seed(found, "s")[FAR][2] == truth(FAR, 2)
    older = found | {"s--dropout=0.5--s2": dataclasses.replace(found["s--dropout=0.5--s2"],
                                                                selection_accuracy=None)}
    assert adaptive.cv_by_seed(older, "s", "selection_accuracy")[BASELINE][0] == truth(BASELINE, 0)
