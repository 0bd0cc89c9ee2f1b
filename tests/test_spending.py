"""src/core/spending.py: group-sequential boundaries against published tables and a Monte Carlo of
Brownian motion."""

import math

import numpy as np
import pytest
from scipy import optimize
from scipy import stats as sps

from src.core import spending

EQUAL5 = tuple(k / 5 for k in range(1, 6))  # K = 5 equally spaced looks
SEEDS = tuple(n / 10 for n in range(3, 11))  # a study of 3 .. 10 seeds: its 8 looks


def _solve_constant(shape):
    """The C for which boundaries C x shape have two-sided level 0.05 at EQUAL5."""
    return optimize.brentq(lambda c: spending.exit_probabilities(c * np.asarray(shape), EQUAL5).sum()
                           - 0.05, 1.0, 4.0, xtol=1e-10)


def test_the_integration_gives_the_classical_pocock_and_obrien_fleming_boundaries():
    # Jennison & Turnbull (2000) Table 2.1 (Pocock, C_P(5, 0.05) = 2.413) and Table 2.3
    # (O'Brien & Fleming, C_B(5, 0.05) = 2.040, the last look's boundary; look k: C sqrt(5 / k)).
    assert _solve_constant([1.0] * 5) == pytest.approx(2.413, abs=5e-4)
    assert _solve_constant([math.sqrt(5 / k) for k in range(1, 6)]) == pytest.approx(2.040, abs=5e-4)


@pytest.mark.parametrize("method, table", [
    # R: gsDesign::gsDesign(k = 5, test.type = 2, alpha = 0.025, sfu = sfLDOF)$upper$bound
    # (= ldbounds::ldBounds(t = (1:5) / 5, iuse = 1, alpha = 0.05)$upper.bounds).
    ("obrien_fleming", (4.877, 3.357, 2.680, 2.290, 2.031)),
    # Pocock type (sfLDPocock, iuse = 2): not from a table we could open here; the values of this
    # integration at r = 60, which the Monte Carlo below checks independently.
    ("pocock", (2.438, 2.427, 2.410, 2.397, 2.386)),
])
def test_lan_demets_boundaries_match_the_published_tables(method, table):
    got = spending.boundaries(method, 0.025, EQUAL5)
    assert got == pytest.approx(table, abs=5e-4)
    # a denser grid agrees to far more digits than the table gives
    assert got == pytest.approx(spending.boundaries(method, 0.025, EQUAL5, r=60), abs=1e-5)


@pytest.mark.parametrize("method", spending.SPENDING)
@pytest.mark.parametrize("sides", [1, 2])
def test_each_look_spends_what_the_function_says_by_monte_carlo_of_brownian_motion(method, sides):
    # Z_k = B(t_k) / sqrt(t_k) for a standard Brownian motion B: simulate its paths at the looks
    # of a 3..10-seed study and count where each path first crosses.
    a, paths = 0.025, 400_000
    c = np.asarray(spending.boundaries(method, a, SEEDS, sides))
    t = np.asarray(SEEDS)
    rng = np.random.default_rng(7)
    b = np.cumsum(rng.normal(0.0, 1.0, (paths, t.size)) * np.sqrt(np.diff(t, prepend=0.0)), axis=1)
    z = b / np.sqrt(t)
    crossed = (np.abs(z) if sides == 2 else z) > c
    first = np.where(crossed.any(1), crossed.argmax(1), -1)
    observed = np.array([np.mean(first == k) for k in range(t.size)])
    spent = sides * np.diff([0.0] + [spending.spent(method, a, f) for f in SEEDS])
    np.testing.assert_allclose(spending.exit_probabilities(c, SEEDS, sides), spent, atol=1e-7)
    se = np.sqrt(spent * (1 - spent) / paths)
    assert np.all(np.abs(observed - spent) <= 4 * se + 1e-6), (observed, spent)
    assert observed.sum() == pytest.approx(sides * a, abs=4 * math.sqrt(sides * a / paths))


def test_nominal_levels_and_the_one_look_design():
    levels = spending.nominal_levels("obrien_fleming", 0.025, EQUAL5)
    assert levels == pytest.approx([2 * sps.norm.sf(c) for c in spending.boundaries(
        "obrien_fleming", 0.025, EQUAL5)], rel=1e-9)
    assert levels[0] == 2 * spending.spent("obrien_fleming", 0.025, 0.2)
    for method in spending.SPENDING:  # one look at the full information is the fixed test, exactly
        assert spending.nominal_levels(method, 0.025, (1.0,)) == (0.05,)
        assert spending.nominal_levels(method, 0.05, (1.0,), sides=1) == (0.05,)
    # O'Brien-Fleming spends little early; Pocock's levels are nearly flat
    assert levels[0] < 1e-5 and 0.04 < levels[-1] < 0.05
    pocock = spending.nominal_levels("pocock", 0.025, EQUAL5)
    assert max(pocock) / min(pocock) < 1.2


def test_bad_arguments():
    with pytest.raises(ValueError, match="spending method must be one of obrien_fleming, pocock"):
        spending.spent("linear", 0.025, 0.5)
    with pytest.raises(ValueError, match="fractions must increase"):
        spending.boundaries("pocock", 0.025, (0.5, 0.5))
    with pytest.raises(ValueError, match="sides must be 1 or 2"):
        spending.boundaries("pocock", 0.025, (0.5, 1.0), 3)


COUNTS = tuple(range(3, 11))  # the pairs at the 8 looks of a 3..10-seed study


@pytest.mark.parametrize("method", spending.SPENDING)
@pytest.mark.parametrize("sides", [1, 2])
def test_t_boundaries_spend_what_the_function_says_on_fresh_paths(method, sides):
    # The levels are found on the fixed paths; paths from another seed, through the same t
    # statistics, must cross them with the spending function's shares (Monte Carlo error).
    a, paths = 0.025, 400_000
    levels = spending.t_nominal_levels(method, a, COUNTS, 10, sides)
    t = spending.t_paths(10, paths, seed=7)[:, [n - 1 for n in COUNTS]].astype(float)
    bounds = np.array([sps.t.isf(p / sides, n - 1) for p, n in zip(levels, COUNTS)])
    crossed = (np.abs(t) if sides == 2 else t) > bounds
    first = np.where(crossed.any(1), crossed.argmax(1), -1)
    cumulative = np.cumsum([np.mean(first == k) for k in range(len(COUNTS))])
    spent = np.array([sides * spending.spent(method, a, n / 10) for n in COUNTS])
    se = np.sqrt(spent * (1 - spent) / paths) + np.sqrt(spent * (1 - spent) / spending.T_PATHS)
    assert np.all(np.abs(cumulative - spent) <= 4 * se + 1e-6), (cumulative, spent)


def test_t_levels_first_look_exact_and_below_the_z_levels_later():
    for method in spending.SPENDING:
        one = spending.t_nominal_levels(method, 0.025, (10,), 10)
        assert one == (0.05,)  # one look at the full information: the fixed t-test
        t = spending.t_nominal_levels(method, 0.025, COUNTS, 10)
        z = spending.nominal_levels(method, 0.025, tuple(n / 10 for n in COUNTS))
        assert t[0] == z[0]
        # the t statistics with few df are less correlated look to look than the z's: a
        # valid boundary for them spends less at the later looks
        assert all(a < b for a, b in zip(t[1:], z[1:]))
    # a look after failed seeds (counts 3, 5) differs from the planned 3, 4, 5
    assert spending.t_nominal_levels("pocock", 0.025, (3, 5), 10)[-1] != \
        spending.t_nominal_levels("pocock", 0.025, (3, 4, 5), 10)[-1]
    with pytest.raises(ValueError, match=r"look counts must increase within 2..max_seeds \(10\)"):
        spending.t_nominal_levels("pocock", 0.025, (3, 3), 10)
