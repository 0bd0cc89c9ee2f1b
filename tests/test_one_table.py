"""One table, one set of verdicts: the same experiments (a diverged seed, a failed run and its
rerun, a failed run nobody asked for again) fed to the runner's replay (`sweep run
--until-decided`), to a sweep's study (adaptive and fixed plans) and to the claims give the same
per-seed table (src/core/seed_table.py) and the same verdicts. If one of them read its
experiments by another rule (a diverged run as absent or as chance, a failed run as run), the
tables or the verdicts would part."""

from __future__ import annotations

import copy
import math
import zlib

import numpy as np
import pandas as pd
import pytest

from src.core import decide, params, seed_table
from src.core.decide import Verdict
from src.experiments import adaptive, claim_spec, sweep_spec
from src.experiments.exp_show import Outcome
from src.studies import claim_decisions, sweep_study
from tests.conftest import REPO

BASE = params.read_yaml(REPO / "params.yaml")
SEEDS = 5
SPEC = {"grid": {"train.dropout": [0.0, 0.2, 0.5]}, "baseline": {"train.dropout": 0.0},
        "margin": 0.005, "seeds": SEEDS, "max_seeds": SEEDS, "method": "bonferroni"}
SWEEP = sweep_spec.parse_sweep("s", SPEC, BASE)
BASELINE, NEAR, FAR = "dropout=0.0", "dropout=0.2", "dropout=0.5"
DESIGN = decide.Design(SEEDS, SEEDS)  # one look, Bonferroni: the claims' boundary too


def accuracy(config: str, seed: int) -> float:
    """NEAR differs from the baseline by noise alone (equivalent); FAR is 3 points worse."""
    noise = np.random.default_rng([seed, zlib.crc32(config.encode())]).normal(0, 0.0005)
    return 0.88 + 0.004 * np.sin(seed) + noise + {BASELINE: 0.0, NEAR: 0.0, FAR: -0.03}[config]


# (config, seed, state, timestamp): every configuration at seeds 0-4, and
RUNS = [(c, s, "completed", f"2026-01-01T00:0{s}") for c in (BASELINE, NEAR, FAR)
        for s in range(SEEDS) if (c, s) not in {(NEAR, 1), (FAR, 3)}]
RUNS += [(NEAR, 1, "diverged", "2026-01-01T00:01"),  # a diverged seed: NaN, and the seed ran
         (FAR, 3, "completed", "2026-01-02T00:03"),  # a rerun (listed first) of ...
         (FAR, 3, "failed", "2026-01-01T00:03"),     # ... a failed run: the rerun counts
         (BASELINE, SEEDS, "failed", "2026-01-01T00:09")]  # failed, not run again: not there


def frame() -> pd.DataFrame:
    """The experiments table a study builds and commits (experiments.csv's columns that count)."""
    return pd.DataFrame([{"name": f"s--{c}--s{s}", "timestamp": t, "sweep": "s", "config": c,
                          "seed": s, "state": state,
                          "cv_accuracy": accuracy(c, s) if state == "completed" else math.nan,
                          "test_accuracy": math.nan, "params": 1000.0, "seconds_per_epoch": 1.0,
                          "train_val_gap": 0.01, "fold_epochs": 5.0, "train_seconds": 1.0}
                         for c, s, state, t in RUNS])


def outcomes() -> dict[str, Outcome]:
    """The same experiments as the runner's exp show reads them: the newest run of each name."""
    found = {}
    for c, s, state, _ in sorted(RUNS, key=lambda r: r[3]):
        name = f"s--{c}--s{s}"
        found[name] = Outcome(name, state, accuracy(c, s) if state == "completed" else None)
    return found


def claims() -> claim_spec.Claims:
    data = {"defaults": {"alpha": 0.05, "margin": 0.005}, "sources": {"src": "a source"},
            "claims": [{"id": 1, "claim": "dropout", "source": "src", "figure": "f", "study": "s",
                        "test": [{"a": NEAR, "b": BASELINE, "expect": "equivalent"},
                                 {"a": FAR, "b": BASELINE, "expect": "worse"}]}]}
    return claim_spec.parse(copy.deepcopy(data), {"s": SWEEP}, {}, BASE)


def same_table(a: dict, b: dict) -> bool:
    """Equal {config: {seed: value}}, NaN equal to NaN."""
    return {c: set(v) for c, v in a.items()} == {c: set(v) for c, v in b.items()} and all(
        a[c][s] == b[c][s] or (math.isnan(a[c][s]) and math.isnan(b[c][s])) for c in a for s in a[c])


def test_the_runner_the_study_and_the_claims_read_one_table():
    expected = {c: {s: accuracy(c, s) for s in range(SEEDS)} for c in (BASELINE, NEAR, FAR)}
    expected[NEAR][1] = math.nan
    runner = adaptive.cv_by_seed(outcomes(), "s")
    study = sweep_study.values_by_seed(frame())
    claims_table = claim_decisions._table(frame(), False)
    for table in (runner, study, claims_table):
        assert same_table(table, expected)
    # the claims' statistics read its finite values: the diverged seed left out
    assert claim_decisions._values(frame(), False) == seed_table.finite(expected)
    # `diverged: chance` (a claim's option) puts the diverged run at chance, nothing else moves
    chance = claim_decisions._table(frame(), True)
    assert chance[NEAR][1] == seed_table.CHANCE and same_table(
        {c: {s: v for s, v in seeds.items() if (c, s) != (NEAR, 1)} for c, seeds in chance.items()},
        {c: {s: v for s, v in seeds.items() if (c, s) != (NEAR, 1)} for c, seeds in expected.items()})


def test_one_table_gives_one_set_of_verdicts(monkeypatch):
    calls = []
    real = seed_table.by_seed
    monkeypatch.setattr(seed_table, "by_seed", lambda *a, **k: calls.append(1) or real(*a, **k))
    labels = [SWEEP.label(c) for c in SWEEP.configs]

    state = adaptive.replay(adaptive.cv_by_seed(outcomes(), "s"), BASELINE, labels, 0.005, DESIGN)
    assert state.over and state.looks == 1
    runner = {c: d.verdict for c, d in state.decisions.items()}

    plans = {"adaptive": sweep_study.Plan(DESIGN, 0.005, "", True),
             "fixed": sweep_study.Plan(decide.Design(2, 2), 0.005, "", False)}
    study = {how: dict(zip(table["config"], table["decision"])) for how, table in
             ((how, sweep_study.summary_table(frame(), SWEEP, plan)) for how, plan in plans.items())}

    result = claim_decisions.decide_claim(claims().claims[0], claims(),
                                          claim_decisions.Studies({"s": frame()}))
    by_claims = {pr.part.name.split(" vs ")[0]: pr.decision.verdict for pr in result.parts}

    verdicts = {NEAR: Verdict.EQUIVALENT, FAR: Verdict.WORSE}
    assert runner == verdicts
    for how, got in study.items():
        assert {c: got[c] for c in verdicts} == verdicts, how
    assert {c: v for c, v in by_claims.items()} == verdicts, by_claims
    assert result.outcome == claim_decisions.ClaimOutcome.HOLDS == "holds"
    assert len(calls) >= 4  # each of them built its table with the one function


@pytest.mark.parametrize("verdict", list(Verdict))
def test_a_verdict_is_its_word(verdict):
    assert str(verdict) == verdict.value == f"{verdict}" and verdict == verdict.value
    assert pd.Series([verdict]).to_csv(index=False, header=False).strip() == verdict.value
