"""Searches: space parsing and validation, names, reproducible random / TPE proposals, journal
resume, telling outcomes; the pruning rules (against Optuna's MedianPruner as an oracle) and the
hook train calls, on a real journal; one slow end-to-end search on DVC's queue."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from src.core import naming, params
from src.core.errors import ParamError, TunelabError
from src.experiments import (
    dvc_queue,
    exp_show,
    optuna_search,
    pruning,
    search_spec,
    sweep_spec,
)
from tests.conftest import REPO, TINY, make_project, sh

optuna.logging.set_verbosity(optuna.logging.WARNING)
BASE = {"prepare": {}, "train": {}, "plot": {}}  # every default of src/core/params.py
SPACE = {"train.lr": {"type": "loguniform", "low": 0.0001, "high": 0.01},
         "train.dropout": {"type": "uniform", "low": 0.0, "high": 0.6},
         "train.epochs": {"type": "int", "low": 1, "high": 4},
         "train.norm": {"type": "categorical", "choices": ["none", "batch"]},
         "train.conv_channels": {"type": "categorical", "choices": [[16, 32], [32, 64]]}}


def make_search(space=None, **fields) -> search_spec.Search:
    return search_spec.parse_search("s", {"space": space or SPACE, **fields}, BASE)


def score(exp: sweep_spec.Experiment) -> float:
    """A smooth fake objective: best near lr 3e-3, dropout 0.2, batch norm."""
    o = exp.overrides
    return (0.9 - 0.05 * (math.log10(o["train.lr"]) + 2.5) ** 2
            - 0.1 * (o["train.dropout"] - 0.2) ** 2 + 0.01 * (o["train.norm"] == "batch"))


def fake_runner(state="completed", log=None):
    def run(exps):
        if log is not None:
            log.append([e.name for e in exps])
        return {e.name: exp_show.Outcome(e.name, state, score(e)) for e in exps}
    return run


def run_search(journal: Path, n: int, jobs: int = 1, seed: int = 0, sampler: str = "tpe",
               runner=None, s: search_spec.Search | None = None):
    s = s or make_search(startup_trials=3)
    study = optuna_search.open_study(s, pruning.open_journal(journal), {})
    optuna_search.optimize(study, s, n, jobs, seed, sampler, runner or fake_runner(), BASE, {},
                    log=lambda line: None)
    return study


def proposals(study) -> list[tuple[int, dict]]:
    return [(t.number, t.params) for t in study.get_trials(deepcopy=False)]


# --- spaces ----------------------------------------------------------------------------------------

def test_the_repo_searches_are_valid():
    base = params.read_yaml(REPO / "params.yaml")
    found = search_spec.load(REPO / "searches.yaml", base, params.read_yaml(REPO / "sweeps.yaml"))
    assert "lr_dropout" in found and all(s.description for s in found.values())
    lr = {d.key: d for d in found["lr_dropout"].space}
    assert lr["train.lr"] == search_spec.Dimension("train.lr", "loguniform", 0.0001, 0.01)
    assert lr["train.conv_channels"].choices == ([16, 32], [32, 64])


def test_space_parsing_and_list_choices_round_trip():
    s = make_search(fixed={"train.batch_size": 32}, pruner={"type": "median"})
    dims = s.distributions()
    assert dims["train.lr"].log and not dims["train.dropout"].log
    assert isinstance(dims["train.epochs"], optuna.distributions.IntDistribution)
    assert dims["train.conv_channels"].choices == ("[16, 32]", "[32, 64]")
    assert s.decode({"train.lr": 0.001, "train.dropout": 0.1, "train.epochs": 2,
                     "train.norm": "none", "train.conv_channels": "[32, 64]"})[
        "train.conv_channels"] == [32, 64]
    assert s.pruner == {"type": "median", "warmup_epochs": 0, "min_trials": 1}


@pytest.mark.parametrize("change, message", [
    ({"train.lr": {"type": "normal", "low": 0.1, "high": 1}}, "train.lr needs type: uniform"),
    ({"train.lr": {"type": "uniform", "low": 0.1, "high": 1, "step": 0.1}}, "takes high, low"),
    ({"train.lr": {"type": "uniform", "low": 0.1}}, "takes high, low"),
    ({"train.dropout": {"type": "uniform", "low": 0.5, "high": 0.1}},
     "train.dropout low = 0.5 must be below high = 0.1"),
    ({"train.lr": {"type": "loguniform", "low": 0.0, "high": 0.1}}, "log scale: low = 0.0"),
    ({"train.dropuot": {"type": "uniform", "low": 0.0, "high": 0.5}},
     r"unknown key train.dropuot \(did you mean train.dropout\?\)"),
    ({"dropout": {"type": "uniform", "low": 0.0, "high": 0.5}}, "dropout is not a params key"),
    ({"train.dropout": {"type": "uniform", "low": 0.0, "high": 1.5}},
     "at .*train.dropout=1.5.*: train.dropout = 1.5 is out of range"),
    ({"train.norm": {"type": "categorical", "choices": ["none", "bogus"]}},
     "train.norm=bogus.*: train.norm = 'bogus' is not allowed"),
    ({"train.norm": {"type": "categorical", "choices": []}}, "non-empty list"),
    ({"train.norm": {"type": "categorical", "choices": ["none", "none"]}}, "a choice twice"),
    ({"train.epochs": {"type": "uniform", "low": 1, "high": 5}}, "train.epochs takes int values"),
    ({"train.epochs": {"type": "int", "low": 1.5, "high": 5}}, "must be integers"),
    ({"train.lr": {"type": "loguniform", "low": 1e-4, "high": "big"}}, "must be numbers"),
    # A combination of choices that is invalid although every choice alone is fine.
    ({"train.norm": {"type": "categorical", "choices": ["batch", "group"]},
      "train.conv_channels": {"type": "categorical", "choices": [[32, 64], [12, 24]]}},
     "norm=group, train.conv_channels=\\[12, 24\\].*must divide every conv channel"),
])
def test_bad_spaces_are_refused_naming_search_and_key(change, message):
    with pytest.raises(ParamError, match=f"^search s.*{message}"):
        make_search({**SPACE, **change})


@pytest.mark.parametrize("spec, message", [
    ({"space": SPACE, "grid": {}}, r"unknown field\(s\) \['grid'\]"),
    ({"space": {}}, "non-empty `space:`"),
    ({"space": SPACE, "fixed": {"train.lr": 0.1}}, "train.lr both fixed and searched"),
    ({"space": SPACE, "fixed": {"train.batch_size": 0}}, "train.batch_size = 0 is out of range"),
    ({"space": SPACE, "startup_trials": 0}, "startup_trials = 0"),
    ({"space": SPACE, "pruner": {"type": "bogus"}}, "pruner must be a mapping with type"),
    ({"space": SPACE, "pruner": {"type": "median", "warmup": 2}}, "unknown pruner key"),
    ({"space": SPACE, "pruner": {"type": "halving", "eta": 1}}, "eta = 1 must be an integer >= 2"),
])
def test_bad_searches_are_refused(spec, message):
    with pytest.raises(ParamError, match=f"^search s: .*{message}"):
        search_spec.parse_search("s", spec, BASE)


def test_bad_names_and_set_values():
    with pytest.raises(ParamError, match="letters, digits and _"):
        search_spec.parse_search("a-b", {"space": SPACE}, BASE)
    with pytest.raises(ParamError, match="sweep of that name"):
        search_spec.parse_search("dropout", {"space": SPACE}, BASE, sweep_names={"dropout": {}})
    s = make_search()
    with pytest.raises(ParamError, match="--set train.lr is searched over"):
        search_spec.check_values(s, BASE, {"train.lr": 0.1})
    with pytest.raises(ParamError, match="train.crop_pad = 9 is out of range"):
        search_spec.check_values(s, BASE, {"train.crop_pad": 9})


def test_a_search_may_declare_its_sampler_and_seed_and_the_flags_only_repeat_them():
    plain = make_search()
    assert plain.run_settings(None, None) == ("tpe", 0)
    assert plain.run_settings("random", 3) == ("random", 3)
    replicate = make_search(sampler="random", seed=2)
    assert replicate.run_settings(None, None) == replicate.run_settings("random", 2) == ("random", 2)
    with pytest.raises(ParamError, match="runs with seed 2 .*drop --seed 0"):
        replicate.run_settings(None, 0)
    with pytest.raises(ParamError, match="runs with sampler random .*drop --sampler tpe"):
        replicate.run_settings("tpe", None)
    for bad, message in (({"sampler": "grid"}, "sampler = 'grid'; allowed: tpe, random"),
                         ({"seed": -1}, "seed = -1 must be an integer >= 0"),
                         ({"seed": True}, "seed = True")):
        with pytest.raises(ParamError, match=f"^search s: {message}"):
            make_search(**bad)
    with pytest.raises(ParamError, match="reserved"):
        search_spec.parse_search("claims", {"space": SPACE}, BASE)


def test_trial_names_carry_search_trial_and_seed():
    s = make_search(fixed={"train.seed": 3})
    sampled = {"train.lr": 0.001, "train.dropout": 0.25, "train.epochs": 2, "train.norm": "batch",
               "train.conv_channels": "[16, 32]"}
    exp = optuna_search.experiment(s, 7, sampled, BASE, {"train.batch_size": 16})
    assert exp.name == "s--t007--s3"
    assert naming.parse_name(exp.name) == {"sweep": "s", "config": "t007", "seed": "3",
                                           "variant": ""}  # MLflow tags
    assert naming.parse_trial_name(exp.name) == ("s", 7)
    assert {"train.conv_channels=[16, 32]", "train.batch_size=16"} <= set(exp.set_args())
    assert optuna_search.experiment(make_search(), 12, sampled, BASE, {}).name == "s--t012--s0"
    assert naming.parse_trial_name("dropout--dropout=0.3--s0") is None


# --- the study -------------------------------------------------------------------------------------

@pytest.mark.parametrize("sampler", ["random", "tpe"])
def test_samplers_are_reproducible_with_a_fixed_seed(tmp_path, sampler):
    a = run_search(tmp_path / "a.journal", 8, sampler=sampler, seed=5)
    b = run_search(tmp_path / "b.journal", 8, sampler=sampler, seed=5)
    c = run_search(tmp_path / "c.journal", 8, sampler=sampler, seed=6)
    assert proposals(a) == proposals(b) and proposals(a) != proposals(c)
    assert len({json.dumps(t.params, sort_keys=True) for t in a.trials}) == 8  # all different
    assert [t.state for t in a.trials] == [TrialState.COMPLETE] * 8


def test_tpe_learns_from_the_results(tmp_path):
    tpe = run_search(tmp_path / "tpe.journal", 24, seed=1)
    rnd = run_search(tmp_path / "rnd.journal", 24, seed=1, sampler="random")
    late = lambda study: np.mean([t.value for t in study.trials[12:]])  # noqa: E731
    assert late(tpe) > late(rnd)


def test_resume_continues_numbering_and_proposes_the_same(tmp_path):
    run_search(tmp_path / "parts.journal", 3, jobs=2)  # batches of 2, then 1
    parts = run_search(tmp_path / "parts.journal", 6, jobs=2)
    assert [t.user_attrs["experiment"] for t in parts.trials] == [
        f"s--t{n:03d}--s0" for n in range(6)]
    again = run_search(tmp_path / "parts.journal", 6, jobs=2, runner=lambda exps: pytest.fail())
    assert len(again.trials) == 6  # nothing left to run


@pytest.mark.parametrize("sampler", ["random", "tpe"])
def test_a_resumed_search_proposes_what_an_uninterrupted_one_does(tmp_path, sampler):
    # --jobs 1, stopped inside TPE's random start (3 trials): a sampler re-created with the bare
    # seed would propose trial 0's values again as trial 2.
    whole = run_search(tmp_path / "whole.journal", 6, sampler=sampler)
    run_search(tmp_path / "parts.journal", 2, sampler=sampler)
    assert proposals(run_search(tmp_path / "parts.journal", 6, sampler=sampler)) == proposals(whole)


def test_interrupted_batch_is_resumed_with_the_same_trials(tmp_path):
    calls = []

    def interrupted(exps):
        calls.append([e.name for e in exps])
        if len(calls) == 2:
            raise KeyboardInterrupt
        return fake_runner()(exps)
    with pytest.raises(KeyboardInterrupt):
        run_search(tmp_path / "j.journal", 6, jobs=2, runner=interrupted)
    lost = calls[1]
    resumed = []
    study = run_search(tmp_path / "j.journal", 6, jobs=2, runner=fake_runner(log=resumed))
    assert resumed[0] == lost == ["s--t002--s0", "s--t003--s0"]
    assert [len(b) for b in resumed] == [2, 2] and len(study.trials) == 6
    assert all(t.state == TrialState.COMPLETE for t in study.trials)


@pytest.mark.parametrize("state, told", [("completed", "COMPLETE"), ("early_stopped", "COMPLETE"),
                                         ("diverged", "FAIL"), ("failed", "FAIL"),
                                         ("pruned", "PRUNED")])
def test_outcomes_are_told(tmp_path, state, told):
    study = run_search(tmp_path / "j.journal", 2, runner=fake_runner(state))
    assert [t.state.name for t in study.trials] == [told] * 2
    if told == "COMPLETE":
        assert study.trials[0].value == pytest.approx(
            score(optuna_search.experiment(make_search(), 0, study.trials[0].params, BASE, {})))


def test_trials_print_trains_warnings_before_they_are_queued(tmp_path):
    # tta_hflip without hflip: train would warn only in a queue worker's log.
    s = make_search(fixed={"train.tta_hflip": True}, startup_trials=3)
    lines, runner_saw = [], []
    study = optuna_search.open_study(s, pruning.open_journal(tmp_path / "j.journal"), {})
    optuna_search.optimize(study, s, 2, 2, 0, "random",
                    lambda exps: runner_saw.append(len(lines)) or fake_runner()(exps),
                    BASE, {}, log=lines.append)
    warned = [line for line in lines if "train.tta_hflip=true" in line]
    assert [w.split(":")[0] for w in warned] == ["s--t000", "s--t001"]
    assert runner_saw == [2]  # both warnings were printed before the batch was run


def test_dry_run_prints_trains_warnings_too(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    s = make_search(fixed={"train.tta_hflip": True}, startup_trials=3)
    optuna_search.dry_run(s, trials=2, jobs=2, sampler="random", seed=0, base=BASE, extra={})
    err = capsys.readouterr().err
    assert err.count("train.tta_hflip=true") == 2 and "s--t001: warning" in err


def test_missing_outcome_fails_and_a_changed_space_is_refused(tmp_path):
    study = run_search(tmp_path / "j.journal", 1, runner=lambda exps: {})
    assert study.trials[0].state == TrialState.FAIL
    other = make_search({**SPACE, "train.dropout": {"type": "uniform", "low": 0.0, "high": 0.5}})
    with pytest.raises(TunelabError, match="differ from those of the trials"):
        optuna_search.open_study(other, pruning.open_journal(tmp_path / "j.journal"), {})
    with pytest.raises(TunelabError, match="differ"):  # --set is part of the definition
        optuna_search.open_study(make_search(), pruning.open_journal(tmp_path / "j.journal"),
                          {"train.epochs": 3})


def test_dry_run_shows_the_batch_the_real_run_queues(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the journal lives under the repo root: here, the cwd
    monkeypatch.delenv("DVC_ROOT", raising=False)
    s = make_search(startup_trials=3)
    dry = dict(trials=6, jobs=2, sampler="tpe", seed=0, base=BASE, extra={})
    optuna_search.dry_run(s, **dry)
    shown = [line for line in capsys.readouterr().out.splitlines() if line.startswith("dvc exp")]
    assert not pruning.journal_path("s").exists()
    pruning.journal_path("s").parent.mkdir(parents=True)
    run_search(pruning.journal_path("s"), 2, jobs=2, s=s)
    study = optuna_search.open_study(s, pruning.open_journal(pruning.journal_path("s")), {})
    real = [optuna_search.experiment(s, t.number, t.params, BASE, {}) for t in study.trials]
    assert shown == [f"dvc exp run --queue -n {e.name} {' '.join(e.set_args())}" for e in real]
    optuna_search.dry_run(s, **dry)  # a copy of the journal continues: trials 2 and 3
    assert "-n s--t002--s0" in capsys.readouterr().out


def test_queue_and_wait_queues_only_what_is_new(monkeypatch):
    """The DVC runner against a fake queue: a done experiment is read back, a queued one waited
    for, a new one queued (its failed attempt removed first); idle workers of the last batch are
    let go first."""
    exps = [sweep_spec.Experiment("s", f"t00{n}", 0, {"train.lr": 0.001}) for n in range(3)]
    done, pending, new = (e.name for e in exps)
    states = iter([([], 2), ([dvc_queue.Task("tb", pending, "Queued"),  # 2 idle workers, then 0
                              dvc_queue.Task("ta", new, "Failed")], 0)])  # a failed attempt at `new`
    queued, calls = [dvc_queue.Task("tb", pending, "Queued")], []
    outcomes = [{done: exp_show.Outcome(done, "completed", 0.5)},
                {e.name: exp_show.Outcome(e.name, "completed", 0.5) for e in exps}]

    def dvc(*args, check=True):
        calls.append(args)
        if args[:2] == ("exp", "run"):
            queued.append(dvc_queue.Task("tc", args[4], "Queued"))
    monkeypatch.setattr(dvc_queue, "queue_state", lambda: next(states))
    monkeypatch.setattr(dvc_queue, "queue_tasks", lambda: list(queued))
    monkeypatch.setattr(dvc_queue, "experiment_outcomes", lambda: outcomes.pop(0))
    monkeypatch.setattr(dvc_queue, "dvc", dvc)
    monkeypatch.setattr(dvc_queue, "start_workers", lambda jobs: calls.append(("start", jobs)))
    monkeypatch.setattr(dvc_queue, "wait_for",
                        lambda ids, total, poll, jobs: calls.append(("wait", ids)) or {})
    monkeypatch.setenv("TUNELAB_THREADS", "?")  # restored afterwards
    monkeypatch.setenv("TUNELAB_MEMORY_FRACTION", "?")
    got = optuna_search.queue_and_wait(exps, jobs=2, poll=0.0)
    assert calls == [("queue", "remove", new),
                     ("exp", "run", "--queue", "-n", new, "-S", "train.lr=0.001"),
                     ("start", 2), ("wait", {"tb", "tc"})]
    assert set(got) == {done, pending, new}


# --- pruning ---------------------------------------------------------------------------------------

def test_median_rule_on_hand_made_curves():
    completed = [0.80, 0.85, 0.90]  # the completed trials' val acc at this epoch: median 0.85
    assert pruning.median_rule(0.84, completed, epoch=3, warmup_epochs=2, min_trials=3)
    assert not pruning.median_rule(0.86, completed, 3, 2, 3)
    assert not pruning.median_rule(0.85, completed, 3, 2, 3)  # at the median: goes on
    assert not pruning.median_rule(0.10, completed, 2, 2, 3)  # still warming up
    assert not pruning.median_rule(0.10, completed, 3, 2, 4)  # too few completed trials
    assert pruning.median_rule(0.85, [0.8, 0.82, 0.9, 0.95], 1, 0, 1)  # even n: median 0.86


def test_median_rule_agrees_with_optunas_median_pruner():
    rng = np.random.default_rng(0)
    verdicts = []
    for _ in range(60):
        warmup, k, epochs = int(rng.integers(0, 3)), int(rng.integers(1, 4)), 6
        curves = [0.6 + np.cumsum(rng.uniform(-0.02, 0.1, epochs)) for _ in range(rng.integers(0, 6))]
        mine = 0.6 + np.cumsum(rng.uniform(-0.05, 0.1, epochs))
        study = optuna.create_study(direction="maximize")
        for curve in curves:
            study.add_trial(optuna.trial.create_trial(
                value=curve[-1], intermediate_values={e + 1: v for e, v in enumerate(curve)}))
        # Optuna's steps here are epochs (1-based); its warm-up counts steps below n_warmup_steps.
        oracle = optuna.pruners.MedianPruner(n_startup_trials=k, n_warmup_steps=warmup + 1,
                                             n_min_trials=k)
        for epoch in range(1, epochs + 1):
            running = optuna.trial.create_trial(
                state=TrialState.RUNNING,
                intermediate_values={e + 1: v for e, v in enumerate(mine[:epoch])})
            got = pruning.median_rule(max(mine[:epoch]), [c[epoch - 1] for c in curves], epoch,
                                      warmup, k)
            assert got == oracle.prune(study, running)
            verdicts.append(got)
    assert 0 < sum(verdicts) < len(verdicts)  # both verdicts were exercised


def test_successive_halving_rule():
    # min_epochs 1, eta 3: rungs at epochs 1, 3, 9; the top third of a rung goes on
    assert not pruning.halving_rule(0.1, [0.9, 0.8], epoch=2, min_epochs=1, eta=3, min_trials=1)
    assert pruning.halving_rule(0.7, [0.9, 0.8], 3, 1, 3, 1)      # 3 at the rung: only the best
    assert not pruning.halving_rule(0.95, [0.9, 0.8], 3, 1, 3, 1)
    others = [0.9, 0.8, 0.7, 0.6, 0.5]
    assert not pruning.halving_rule(0.85, others, 9, 1, 3, 1)    # 2nd of 6: top 2 go on
    assert pruning.halving_rule(0.75, others, 9, 1, 3, 1)        # 3rd of 6
    assert not pruning.halving_rule(0.1, [], 1, 1, 3, 1)         # first at the rung
    assert not pruning.halving_rule(0.1, [0.9], 1, 1, 3, 2)      # fewer than min_trials others


def test_should_prune_reports_to_the_journal_and_applies_the_rule(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))  # as in DVC's temporary experiment copies
    monkeypatch.delenv("TUNELAB_PRUNE", raising=False)
    s = make_search(pruner={"type": "median", "warmup_epochs": 1, "min_trials": 2})
    path = pruning.journal_path("s")
    path.parent.mkdir(parents=True)
    study = optuna_search.open_study(s, pruning.open_journal(path), {})
    for _ in range(4):
        trial = study.ask(s.distributions())
        trial.set_user_attr("experiment", f"s--t{trial.number:03d}--s0")
    for number, curve in {0: [0.6, 0.7, 0.8], 1: [0.5, 0.6, 0.7]}.items():
        for epoch, acc in enumerate(curve, 1):  # nothing completed yet: never pruned
            assert not pruning.should_prune(f"s--t{number:03d}--s0", epoch, acc)
        study.tell(number, curve[-1])
    # Completed trials at epoch 2: 0.7 and 0.6, median 0.65.
    assert not pruning.should_prune("s--t002--s0", 1, 0.1)           # warm-up
    assert pruning.should_prune("s--t002--s0", 2, 0.6)                # best so far 0.6 < 0.65
    assert not pruning.should_prune("s--t003--s0", 2, 0.66)
    assert not pruning.should_prune("s--t002--s0", 2, 0.1, fold=1)   # no completed fold-1 values
    assert study.trials[2].intermediate_values == {1: 0.1, 2: 0.6, 10_002: 0.1}
    for name in ("s--t000--s0",               # told already
                 "s--t009--s0",               # not in the journal
                 "other--t000--s0",           # no journal
                 "dropout--dropout=0.3--s0",  # a sweep experiment
                 "workspace", None):
        assert not pruning.should_prune(name, 3, 0.0)
    assert study.trials[0].intermediate_values == {1: 0.6, 2: 0.7, 3: 0.8}
    monkeypatch.setenv("TUNELAB_PRUNE", "0")
    assert not pruning.should_prune("s--t002--s0", 3, 0.0)
    monkeypatch.delenv("TUNELAB_PRUNE")
    pruning.journal_path("bad").write_text("")

    def unreadable(path):
        raise OSError(f"cannot read {path}")
    monkeypatch.setattr(pruning, "open_journal", unreadable)
    assert not pruning.should_prune("bad--t000--s0", 2, 0.5)  # training goes on
    assert "warning: pruning check for bad--t000--s0 failed" in capsys.readouterr().err


def test_the_queue_workers_epoch_hook_is_the_pruning_rule(monkeypatch):
    # train imports nothing from src.experiments: it finds should_prune through $TUNELAB_EPOCH_HOOK,
    # which every worker and `dvc` command the search machinery starts inherits from tool_env
    from src.core import hooks
    monkeypatch.delenv(hooks.ENV, raising=False)
    assert hooks.load(dvc_queue.tool_env()[hooks.ENV]) is pruning.should_prune
    monkeypatch.setenv(hooks.ENV, "math:isfinite")  # one set by hand wins
    assert dvc_queue.tool_env()[hooks.ENV] == "math:isfinite"


# --- end to end ------------------------------------------------------------------------------------

TINY_SEARCHES = """
tiny:
  description: two dimensions on the synthetic data
  space:
    train.lr: {type: loguniform, low: 0.001, high: 0.01}
    train.dropout: {type: uniform, low: 0.0, high: 0.5}
  pruner: {type: median, warmup_epochs: 1, min_trials: 2}
"""


@pytest.mark.slow
@pytest.mark.e2e
def test_search_on_the_queue_gives_experiments_mlflow_runs_and_a_study(tmp_path):
    ignore = (REPO / ".gitignore").read_text() + "/.tunelab/\n"
    root, env = make_project(tmp_path, TINY, {"searches.yaml": TINY_SEARCHES, ".gitignore": ignore})
    run = [sys.executable, "-m", "src.search", "tiny", "--trials", "4", "--jobs", "2",
           "--sampler", "tpe", "--poll", "1"]
    done = sh(*run, cwd=root, env=env)
    assert "search tiny: 4 trials (4 complete)" in done.stdout
    shown = json.loads(sh("dvc", "exp", "show", "--json", cwd=root, env=env).stdout)
    outcomes = exp_show.outcomes(shown)
    names = {f"tiny--t{n:03d}--s0" for n in range(4)}
    assert set(outcomes) == names and all(outcomes[n].state == "completed" for n in names)
    exp_params = {e["name"]: e["revs"][0]["data"]["params"]["params.yaml"]["data"]["train"]
                  for rev in shown for e in rev.get("experiments") or []}
    journal = pruning.open_journal(root / ".tunelab/search/tiny.journal")
    study = optuna.load_study(study_name="tiny", storage=journal)
    for trial in study.trials:  # Optuna holds each experiment's params and its CV accuracy
        name = trial.user_attrs["experiment"]
        assert trial.value == pytest.approx(outcomes[name].cv_accuracy)
        assert exp_params[name]["lr"] == trial.params["train.lr"]  # exactly: -S round-trips
        assert exp_params[name]["dropout"] == trial.params["train.dropout"]
    from mlflow.tracking import MlflowClient
    client = MlflowClient(f"sqlite:///{root}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("tunelab").experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert sorted((r.data.tags["sweep"], r.data.tags["sweep.config"]) for r in parents) == [
        ("tiny", f"t{n:03d}") for n in range(4)]
    again = sh(*run, cwd=root, env=env)  # resumable: nothing is left to run
    assert "search tiny: 4 trials (4 complete)" in again.stdout and "trial 0" not in again.stdout
    # the study ranks the trials by the same CV accuracies Optuna was told, and logs itself
    studied = sh(sys.executable, "-m", "src.study", "tiny", cwd=root, env=env)
    assert "study tiny: 4 trials" in studied.stdout
    folder = root / "reports/study/tiny"
    assert {"trials.csv", "report.md", "optimization_history.png",
            "top_configurations.png"} <= {p.name for p in folder.iterdir()}
    import pandas as pd
    trials = pd.read_csv(folder / "trials.csv").set_index("name")
    for trial in study.trials:
        assert trials.loc[trial.user_attrs["experiment"], "cv_accuracy"] == pytest.approx(trial.value)
    assert "# Search: tiny" in (folder / "report.md").read_text()
    studies = client.search_runs([client.get_experiment_by_name("tunelab").experiment_id],
                                 "tags.`tunelab.kind` = 'search-study'")
    assert [r.info.run_name for r in studies] == ["study-tiny"]
