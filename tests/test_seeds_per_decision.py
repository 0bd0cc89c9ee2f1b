"""benchmarks/seeds_per_decision.py on a few studies: sane numbers, both procedures on the same
noise, and the new procedure really is the spending design (a bare Design(3, 10) is Bonferroni)."""

import math

import numpy as np
import pytest

from benchmarks.seeds_per_decision import FIRST, MARGINS, MAX, Result, compare, noise, simulate, summary
from src.core import decide

SD, MARGIN = 0.0043, 0.005  # accuracy fractions: 0.43 and 0.5 points


def test_twice_the_margin_is_nearly_always_decided_better_within_the_seed_range():
    z = noise(20, 1)
    for design in (decide.Design(FIRST, MAX, method="bonferroni"),
                   decide.Design(FIRST, MAX, method=decide.DEFAULT_METHOD)):
        r = simulate(z, 2 * MARGIN, SD, MARGIN, design)
        assert r.decided >= 0.95 and r.better >= 0.95
        assert FIRST <= r.seeds <= MAX
        assert r.per_decision == pytest.approx(r.seeds / r.decided)


def test_the_same_noise_gives_the_same_decisions_and_no_decision_costs_infinite_seeds():
    z = noise(10, 2)
    design = decide.Design(FIRST, MAX, method=decide.DEFAULT_METHOD)
    assert simulate(z, 0.0, SD, MARGIN, design) == simulate(z.copy(), 0.0, SD, MARGIN, design)
    assert np.array_equal(noise(3, 4), noise(3, 4))
    assert Result(seeds=10.0, decided=0.0, better=0.0).per_decision == math.inf


def test_compare_runs_every_scenario_and_the_new_procedure_spends_alpha():
    results = compare(studies=8, old_sd=0.43, new_sd=0.43)
    assert set(results) == {(f, m) for f in ("single", "family4") for m in MARGINS}
    lines = summary(results)
    for name in ("0", "half", "1", "2"):
        assert 0.0 < lines[f"ratio_{name}"] < math.inf
    assert isinstance(lines["target_met"], bool)
    # At no true difference, O'Brien-Fleming's last look (and TOST from 7 pairs) decides more
    # comparisons by 10 seeds than Bonferroni's alpha/8 on the same noise; equal shares would
    # mean both ran the same design.
    old, new = results["single", "0"]
    assert new.decided > old.decided
