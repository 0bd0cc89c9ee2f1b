"""src/core/decide.py: each test and sample size against an oracle (scipy, statsmodels, quadrature,
Monte Carlo), the verdict rules on constructed data, the sequential loop's bookkeeping, and the
error rates of the whole sequential procedure by simulation through the code the sweep runs."""

import json
import math

import numpy as np
import pytest
from scipy import integrate
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestPower
from statsmodels.stats.weightstats import ttost_ind, ttost_paired

from src.core import decide, spending
from src.core.decide import (
    METHODS,
    Decision,
    Design,
    decide_family,
    decide_tests,
    decide_unpaired,
    information,
    is_final,
    minimum_detectable_difference,
    needs_another_seed,
    paired_t,
    run_sequential,
    seeds_for_difference,
    seeds_for_equivalence,
    simulate_study,
    tost_paired,
    tost_power,
    tost_welch,
    welch_t,
)

# The scenario, in accuracy fractions: sd 0.4 points, margin 0.5 points.
SD, MARGIN, ALPHA = 0.004, 0.005, 0.05
DESIGN = Design(first_seeds=3, max_seeds=10, alpha=ALPHA)
STUDIES = 5000
MC_SE = math.sqrt(ALPHA * (1 - ALPHA) / STUDIES)  # the Monte Carlo standard error of a rate of alpha


# --- the design ------------------------------------------------------------------------------


def test_design_looks_and_bonferroni_level():
    assert (DESIGN.looks, DESIGN.look_alpha) == (8, pytest.approx(0.05 / 8))
    fixed = Design(5, 5, 0.01)
    assert (fixed.looks, fixed.look_alpha) == (1, 0.01)


@pytest.mark.parametrize("args, word", [((1, 10), "first_seeds must be >= 2"),
                                        ((4, 3), r"max_seeds \(3\) must be >= first_seeds \(4\)"),
                                        ((3, 10, 0.0), "alpha must be in"),
                                        ((3, 10, 1.5), "alpha must be in"),
                                        ((3.0, 10), "first_seeds must be an integer"),
                                        ((3, 10, 0.05, "obf"), "method must be one of bonferroni, "
                                         "obrien_fleming, pocock, got 'obf'")])
def test_design_rejects_bad_values(args, word):
    with pytest.raises(ValueError, match=word):
        Design(*args)


# --- the tests against their oracles ---------------------------------------------------------


@pytest.mark.parametrize("n", [3, 5, 10, 30])
@pytest.mark.parametrize("alpha", [0.05, 0.00625])
def test_tost_paired_matches_statsmodels(n, alpha):
    rng = np.random.default_rng(n)
    for margin in (0.002, 0.005, 0.02):
        b = rng.normal(0.9, 0.01, n)
        c = b + rng.normal(0.001, 0.004, n)
        p, low, high = tost_paired(c - b, margin, alpha)
        assert p == pytest.approx(ttost_paired(c, b, -margin, margin)[0], rel=1e-9)
        ci = sps.ttest_rel(c, b).confidence_interval(1 - 2 * alpha)
        assert (low, high) == pytest.approx((ci.low, ci.high), rel=1e-9)
        assert (p < alpha) == (-margin < low and high < margin)


@pytest.mark.parametrize("sizes", [(3, 3), (4, 7), (10, 5)])
@pytest.mark.parametrize("alpha", [0.05, 0.01])
def test_tost_welch_matches_statsmodels_unequal_variances(sizes, alpha):
    rng = np.random.default_rng(sum(sizes))
    for margin in (0.003, 0.01):
        c, b = rng.normal(0.902, 0.004, sizes[0]), rng.normal(0.9, 0.008, sizes[1])
        p, low, high = tost_welch(c, b, margin, alpha)
        assert p == pytest.approx(ttost_ind(c, b, -margin, margin, usevar="unequal")[0], rel=1e-9)
        ci = sps.ttest_ind(c, b, equal_var=False).confidence_interval(1 - 2 * alpha)
        assert (low, high) == pytest.approx((ci.low, ci.high), rel=1e-9)


def test_tost_untestable_is_nan_and_bad_arguments_raise():
    assert all(math.isnan(v) for v in tost_paired([0.01], MARGIN, ALPHA))
    assert all(math.isnan(v) for v in tost_paired([0.01, 0.01, 0.01], MARGIN, ALPHA))
    with pytest.raises(ValueError, match="margin must be a positive number"):
        tost_paired([0.0, 0.01], 0.0, ALPHA)
    with pytest.raises(ValueError, match=r"alpha must be in \(0, 0.5\)"):
        tost_paired([0.0, 0.01], MARGIN, 0.5)
    with pytest.raises(ValueError, match="NaN or inf at positions \\[1\\]"):
        tost_paired([0.0, float("nan")], MARGIN, ALPHA)


def test_single_comparison_is_scipys_paired_t_test_at_the_look_level():
    rng = np.random.default_rng(1)
    b = rng.normal(0.9, 0.01, 6)
    c = b + rng.normal(0.003, 0.004, 6)
    d = decide_family({"x": c - b}, MARGIN, DESIGN, look=4)["x"]
    ref = sps.ttest_rel(c, b)
    ci = ref.confidence_interval(1 - DESIGN.look_alpha)
    assert d.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    assert (d.ci_low, d.ci_high) == pytest.approx((ci.low, ci.high), rel=1e-9)
    assert d.p_tost == pytest.approx(ttost_paired(c, b, -MARGIN, MARGIN)[0], rel=1e-9)
    tost = ref.confidence_interval(1 - 2 * DESIGN.look_alpha)
    assert (d.tost_low, d.tost_high) == pytest.approx((tost.low, tost.high), rel=1e-9)
    assert (d.n, d.look, d.margin) == (6, 4, MARGIN)
    assert d.diff == pytest.approx(np.mean(c - b), rel=1e-12)
    assert d.sd == pytest.approx(np.std(c - b, ddof=1), rel=1e-12)


def test_holm_over_the_family_with_held_shares_matches_statsmodels():
    rng = np.random.default_rng(2)
    # Closed earlier: "q" equivalent (holds its share of the difference family), "r" better but not
    # within the margin (holds its share of the TOST family).
    held = {"q": _decision("equivalent"), "r": _decision("better")}
    for i in range(300):
        diffs = {k: rng.normal(rng.choice([0.0, 0.004, 0.01]), SD, 6) for k in "abc"}
        got = decide_family(diffs, MARGIN, DESIGN, 3, decided=held, plan=False)
        if i < 5:  # the oracle (multipletests runs gc.collect() on every call: 20 ms)
            p = [sps.ttest_1samp(d, 0.0).pvalue for d in diffs.values()]
            p_eq = [ttost_paired(d, np.zeros_like(d), -MARGIN, MARGIN)[0] for d in diffs.values()]
            ref = multipletests(np.r_[p, 1.0], method="holm")[1][:3]
            ref_eq = multipletests(np.r_[p_eq, 1.0], method="holm")[1][:3]
            np.testing.assert_allclose([g.p_value for g in got.values()], ref, rtol=1e-9)
            np.testing.assert_allclose([g.p_tost for g in got.values()], ref_eq, rtol=1e-9)
        for g in got.values():
            # The verdict, the interval and the adjusted p tell one story.
            differs = g.verdict in ("better", "worse")
            assert differs == (g.p_value < DESIGN.look_alpha) == (g.ci_low > 0 or g.ci_high < 0)
            shown_within = g.verdict == "equivalent" or g.below_margin
            assert shown_within == (g.p_tost < DESIGN.look_alpha) == (
                -MARGIN < g.tost_low and g.tost_high < MARGIN)
            assert DESIGN.look_alpha / 4 <= g.alpha_diff <= DESIGN.look_alpha / 2
            assert DESIGN.look_alpha / 4 <= g.alpha_tost <= DESIGN.look_alpha / 2


def test_a_rejected_hypothesis_passes_its_share_on():
    # "r" was better and shown within the margin: it holds no share of either family, and the one
    # open comparison is tested at the full look level. "q" was equivalent: it holds its share of
    # the difference family (p = 1), not of the TOST family.
    d = np.array([0.001, 0.004, 0.002, 0.005, 0.003])
    alone = decide_family({"a": d}, MARGIN, DESIGN, 2)["a"]
    recycled = decide_family({"a": d}, MARGIN, DESIGN, 2, decided={"r": _decision("better", True)})["a"]
    held = decide_family({"a": d}, MARGIN, DESIGN, 2, decided={"q": _decision("equivalent")})["a"]
    assert recycled.p_value == alone.p_value == pytest.approx(sps.ttest_1samp(d, 0).pvalue, rel=1e-9)
    assert held.p_value == pytest.approx(min(1.0, 2 * alone.p_value), rel=1e-12)
    assert held.alpha_diff == pytest.approx(DESIGN.look_alpha / 2)
    assert held.p_tost == alone.p_tost  # "q" was equivalent: its TOST share was passed on


def test_decide_unpaired_is_welch():
    c, b = [0.912, 0.905, 0.918, 0.909, 0.915, 0.907], [0.901, 0.899, 0.906, 0.895, 0.903]
    d = decide_unpaired(c, b, 0.005, 0.05)
    ref = sps.ttest_ind(c, b, equal_var=False)
    assert d.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    ci = ref.confidence_interval(0.95)
    assert (d.ci_low, d.ci_high) == pytest.approx((ci.low, ci.high), rel=1e-9)
    assert d.p_tost == pytest.approx(ttost_ind(c, b, -0.005, 0.005, usevar="unequal")[0], rel=1e-9)
    assert (d.verdict, d.look, d.n) == ("better", 1, 5)
    assert d.sd == pytest.approx(math.sqrt(np.var(c, ddof=1) + np.var(b, ddof=1)), rel=1e-12)
    t = welch_t(c, b)
    assert t.se == pytest.approx(math.sqrt(np.var(c, ddof=1) / 6 + np.var(b, ddof=1) / 5), rel=1e-12)


def test_a_family_can_mix_paired_and_welch_comparisons():
    rng = np.random.default_rng(4)
    b = rng.normal(0.9, 0.004, 6)
    c1, c2 = b + rng.normal(0.004, 0.002, 6), rng.normal(0.905, 0.004, 4)
    got = decide_tests({"paired": paired_t(c1 - b), "welch": welch_t(c2, b)}, MARGIN, Design(3, 3), 1)
    p = [sps.ttest_rel(c1, b).pvalue, sps.ttest_ind(c2, b, equal_var=False).pvalue]
    np.testing.assert_allclose([d.p_value for d in got.values()], multipletests(p, method="holm")[1],
                               rtol=1e-9)


# --- sample sizes ----------------------------------------------------------------------------


@pytest.mark.parametrize("alpha", [0.05, 0.01, 0.00625])
@pytest.mark.parametrize("effect", [0.2, 0.5, 1.0, 1.25, 2.5])
def test_seeds_for_difference_is_statsmodels_solve_power_rounded_up(alpha, effect):
    sd = 0.004
    n = seeds_for_difference(effect * sd, sd, alpha)
    power = TTestPower()
    assert n == math.ceil(power.solve_power(effect_size=effect, alpha=alpha, power=0.8))
    assert power.power(effect, n, alpha) >= 0.8 > power.power(effect, n - 1, alpha)
    assert seeds_for_difference(-effect * sd, sd, alpha) == n  # two-sided


@pytest.mark.parametrize("n", [5, 10, 50, 1000])
@pytest.mark.parametrize("alpha", [0.05, 0.00625])
def test_mdd_matches_statsmodels(n, alpha):
    power = TTestPower()
    mdd = minimum_detectable_difference(n, 0.004, alpha)
    assert power.power(mdd / 0.004, n, alpha) == pytest.approx(0.8, abs=1e-9)
    # solve_power's own root is looser (2e-5 relative at n = 1000).
    assert mdd == pytest.approx(power.solve_power(nobs=n, alpha=alpha, power=0.8) * 0.004, rel=1e-4)


@pytest.mark.parametrize("n, alpha", [(2, 0.05), (3, 0.00625), (4, 0.00625 / 3)])
def test_mdd_at_small_n_by_monte_carlo(n, alpha):
    # statsmodels' power is nan here (scipy's nctdtr underflows in the lower tail), so simulate.
    mdd = minimum_detectable_difference(n, 1.0, alpha)
    x = np.random.default_rng(n).normal(mdd, 1.0, (200_000, n))
    t = x.mean(1) / (x.std(1, ddof=1) / math.sqrt(n))
    power = np.mean(np.abs(t) > sps.t.ppf(1 - alpha / 2, n - 1))
    assert power == pytest.approx(0.8, abs=4 * math.sqrt(0.16 / 200_000))


def _tost_power_by_quadrature(n, diff, sd, margin, alpha):
    # An independent formulation: integrate over the chi^2(n-1) variable itself, adaptively, over
    # its central 1 - 2e-15 (where the interval is open).
    df, se = n - 1, sd / math.sqrt(n)
    crit = sps.t.ppf(1 - alpha, df)

    def inside(v):
        half = max(margin - crit * sd * math.sqrt(v / df) / math.sqrt(n), 0.0)
        return (sps.norm.cdf((half - diff) / se) - sps.norm.cdf((-half - diff) / se)) * sps.chi2.pdf(v, df)

    v_max = min(df * (margin * math.sqrt(n) / (crit * sd)) ** 2, sps.chi2.isf(1e-15, df))
    v_min = sps.chi2.ppf(1e-15, df)
    points = [df] if v_min < df < v_max else None
    return integrate.quad(inside, v_min, v_max, limit=200, epsabs=1e-12, points=points)[0]


def _tost_power_by_monte_carlo(rng, n, diff, sd, margin, alpha, reps):
    x = rng.normal(diff, sd, (reps, n))
    mean, se = x.mean(1), x.std(1, ddof=1) / math.sqrt(n)
    crit = sps.t.ppf(1 - alpha, n - 1)
    return np.mean((mean - crit * se > -margin) & (mean + crit * se < margin))


@pytest.mark.parametrize("n, diff", [(2, 0.0), (3, 0.0), (5, 0.001), (10, 0.0), (10, 0.003), (40, 0.004),
                                     (1000, 0.0045), (10_000, 0.00499)])
def test_tost_power_against_quadrature_and_monte_carlo(n, diff):
    for alpha in (0.05, 0.00625):
        exact = tost_power(n, diff, SD, MARGIN, alpha)
        assert exact == pytest.approx(_tost_power_by_quadrature(n, diff, SD, MARGIN, alpha), abs=1e-8)
    if n > 100:
        return
    mc = _tost_power_by_monte_carlo(np.random.default_rng(n), n, diff, SD, MARGIN, 0.05, 100_000)
    exact = tost_power(n, diff, SD, MARGIN, 0.05)
    assert mc == pytest.approx(exact, abs=4 * math.sqrt(max(exact * (1 - exact), 1e-4) / 100_000))


@pytest.mark.parametrize("diff", [0.0, 0.001, 0.002, -0.003])
@pytest.mark.parametrize("alpha", [0.05, 0.00625])
def test_seeds_for_equivalence_reaches_80_percent_power_and_one_fewer_does_not(diff, alpha):
    n = seeds_for_equivalence(diff, SD, MARGIN, alpha)
    assert tost_power(n, diff, SD, MARGIN, alpha) >= 0.8 > tost_power(n - 1, diff, SD, MARGIN, alpha)
    reps = 40_000
    rng = np.random.default_rng(abs(int(diff * 1e4)))
    err = 3 * math.sqrt(0.16 / reps)
    assert _tost_power_by_monte_carlo(rng, n, diff, SD, MARGIN, alpha, reps) >= 0.8 - err
    assert _tost_power_by_monte_carlo(rng, n - 1, diff, SD, MARGIN, alpha, reps) < 0.8 + err


def test_sample_sizes_not_estimable():
    assert seeds_for_difference(0.0, SD, ALPHA) is None
    assert seeds_for_difference(0.001, 0.0, ALPHA) is None
    assert seeds_for_difference(float("nan"), SD, ALPHA) is None
    assert seeds_for_difference(1e-9, SD, ALPHA) is None  # beyond a million seeds
    assert seeds_for_equivalence(MARGIN, SD, MARGIN, ALPHA) is None  # |diff| >= margin
    assert seeds_for_equivalence(0.0, 0.0, MARGIN, ALPHA) is None
    assert math.isnan(minimum_detectable_difference(1, SD, ALPHA))
    assert seeds_for_difference(50 * SD, SD, ALPHA) == 2  # never fewer than 2 pairs


# --- the verdicts ----------------------------------------------------------------------------


def _decision(verdict, below=False, look=1):
    nan = math.nan
    return Decision(verdict, below, 0.0, nan, nan, nan, nan, nan, nan, 5, SD, None, "", nan, MARGIN, look)


def _pairs(mean, spread, n):
    # n paired differences with exactly this mean and sample sd `spread`.
    z = np.linspace(-1, 1, n)
    return mean + spread * z / z.std(ddof=1)


def test_verdicts_and_labels():
    got = decide_family({"big": _pairs(0.02, 0.002, 6), "small": _pairs(0.002, 0.0005, 6),
                         "same": _pairs(0.0002, 0.001, 10), "open": _pairs(0.002, 0.004, 3),
                         "worse": _pairs(-0.03, 0.002, 6)}, MARGIN, Design(3, 10), 5)
    assert got["big"].label() == "better"
    assert (got["small"].verdict, got["small"].below_margin) == ("better", True)
    assert got["small"].label() == "better, by less than the margin"
    assert got["same"].label() == "equivalent within ±0.50 points"
    assert got["worse"].label() == "worse"
    o = got["open"]
    assert o.verdict == "undecided" and o.seeds_needed > 3 and o.needed_for in ("difference", "equivalence")
    assert o.label() == f"undecided (needs ≈ {o.seeds_needed} seeds)"
    for d in got.values():
        assert d.mdd == pytest.approx(minimum_detectable_difference(d.n, d.sd, d.alpha_diff))
        assert (d.seeds_needed is None) == (d.verdict != "undecided")


def test_seeds_needed_is_the_smaller_of_difference_and_equivalence_at_the_comparisons_level():
    for mean in (0.0005, 0.002, 0.004, 0.006):
        d = decide_family({"x": _pairs(mean, 0.004, 3)}, MARGIN, DESIGN, 1)["x"]
        assert d.verdict == "undecided"
        options = {"difference": seeds_for_difference(mean, 0.004, DESIGN.look_alpha),
                   "equivalence": seeds_for_equivalence(mean, 0.004, MARGIN, DESIGN.look_alpha)}
        best = min((n, k) for k, n in options.items() if n is not None)
        assert (d.seeds_needed, d.needed_for) == best
    assert d.needed_for == "difference"  # 0.006 is beyond the margin: equivalence is not possible


def test_equal_accuracies_with_float32_noise_are_ties_not_a_decision():
    # Claim 23's first two replicates (2026-12-07): random search - grid was -0.25 points at both
    # seeds, from accuracies averaged over folds in float32 (reports/study/claims_*/): the float64
    # differences differ by ~1e-8, which gave an sd of ~1e-8 and a "worse" with the interval
    # [-0.25, -0.25].
    diffs = [0.8180000066757203 - 0.8204999923706054, 0.8159999966621398 - 0.8184999942779541]
    assert 0 < abs(diffs[0] - diffs[1]) < 1e-7
    got = decide_family({"x": diffs}, MARGIN, DESIGN, 1)["x"]
    assert got.verdict == "not tested" and got.sd == 0.0
    flat = [0.8185, 0.8185 + 1e-7, 0.8184999942779541]
    assert welch_t(flat, [0.80, 0.81, 0.82]).sd == pytest.approx(0.01)  # b's variance only
    assert welch_t(flat, flat).se == 0.0
    # a real spread of a few validation images is still a spread
    assert paired_t([-0.0025, -0.0025, -0.0030]).sd > 0.0


def test_not_tested_and_json():
    got = decide_family({"one": [0.01], "flat": [0.01, 0.01, 0.01], "none": []}, MARGIN, DESIGN, 1)
    assert [d.verdict for d in got.values()] == ["not tested"] * 3
    assert got["one"].label() == "not tested (n = 1 < 2)"
    assert got["flat"].label() == "not tested (no variance in the paired differences)"
    assert got["flat"].diff == pytest.approx(0.01) and got["flat"].sd == 0.0
    for d in got.values():
        row = d.as_dict()
        json.dumps(row, allow_nan=False)
        assert row["p_value"] is None and row["label"] == d.label()
    assert not is_final(got["flat"], DESIGN) and is_final(got["flat"], Design(3, 3))


def test_untestable_comparisons_count_in_the_family():
    d = _pairs(0.003, 0.001, 5)
    alone = decide_family({"a": d}, MARGIN, DESIGN, 3)["a"]
    with_flat = decide_family({"a": d, "flat": [0.0] * 5}, MARGIN, DESIGN, 3)["a"]
    assert with_flat.p_value == pytest.approx(min(1.0, 2 * alone.p_value), rel=1e-12)


def test_decide_family_rejects_bad_calls():
    with pytest.raises(ValueError, match="look must be an integer in 1..8"):
        decide_family({"a": [0.0, 0.1]}, MARGIN, DESIGN, 9)
    with pytest.raises(ValueError, match=r"both open and decided: \['a'\]"):
        decide_family({"a": [0.0, 0.1]}, MARGIN, DESIGN, 2, decided={"a": _decision("equivalent")})
    with pytest.raises(ValueError, match="margin must be a positive number"):
        decide_family({"a": [0.0, 0.1]}, -0.01, DESIGN, 1)


def test_is_final_and_needs_another_seed():
    decisions = {"b": _decision("better", look=2), "e": _decision("equivalent", look=2),
                 "u": _decision("undecided", look=2), "t": _decision("not tested", look=2),
                 "u_max": _decision("undecided", look=2)}
    n_now = {"b": 4, "e": 4, "u": 4, "t": 4, "u_max": 10}
    assert needs_another_seed(decisions, DESIGN, n_now) == ["u", "t"]
    assert is_final(_decision("undecided", look=8), DESIGN)
    assert not is_final(_decision("undecided", look=7), DESIGN)
    assert is_final(_decision("worse", look=1), DESIGN)


# --- the sequential loop ---------------------------------------------------------------------


def test_run_sequential_adds_seeds_only_where_open():
    calls = []
    values = {"decided": [0.03, 0.031, 0.029, 0.03], "open": [0.0, 0.01, -0.01, 0.02, -0.02, 0.0, 0.01]}

    def draw(configs, seeds):
        calls.append((list(configs), list(seeds)))
        return {c: [values[c][s] for s in seeds] for c in configs}

    looks = []
    got = run_sequential(draw, ["decided", "open"], MARGIN, Design(3, 7),
                         on_look=lambda look, d: looks.append((look, sorted(d))))
    assert calls[0] == (["decided", "open"], [0, 1, 2])
    assert calls[1:] == [(["open"], [s]) for s in (3, 4, 5, 6)]
    assert looks == [(1, ["decided", "open"])] + [(k, ["open"]) for k in (2, 3, 4, 5)]
    assert (got["decided"].verdict, got["decided"].look, got["decided"].n) == ("better", 1, 3)
    assert (got["open"].verdict, got["open"].look, got["open"].n) == ("undecided", 5, 7)
    assert got["open"].seeds_needed is not None
    assert list(got) == ["decided", "open"]


def test_run_sequential_skips_missing_pairs_and_checks_draw():
    def draw(configs, seeds):
        return {c: [math.nan if s == 1 else 0.001 * s for s in seeds] for c in configs}

    got = run_sequential(draw, ["a"], MARGIN, Design(3, 5))["a"]
    assert got.n == 4 and got.look == 3  # 5 seeds run, seed 1's pair missing
    with pytest.raises(ValueError, match="draw returned 1 differences for 'a', expected 3"):
        run_sequential(lambda configs, seeds: {"a": [0.0]}, ["a"], MARGIN, DESIGN)


def test_a_fixed_design_takes_one_look_at_the_full_alpha():
    got = simulate_study(np.random.default_rng(0), {"a": 0.002}, SD, MARGIN, Design(5, 5))["a"]
    assert (got.look, got.n, got.alpha_diff, got.alpha_tost) == (1, 5, 0.05, 0.05)


def test_planning_does_not_change_the_decisions():
    def verdicts(plan):
        rng = np.random.default_rng(9)
        return [[d.verdict for d in simulate_study(rng, {"a": 0.004, "b": 0.0}, SD, MARGIN, DESIGN,
                                                   plan=plan).values()] for _ in range(30)]

    assert verdicts(True) == verdicts(False)


# --- the error rates of the sequential procedure, by simulation (issue 18, item 4) ----------


class Uncorrected(Design):
    """The same procedure without the correction over the looks: every look at the full alpha."""

    @property
    def look_alpha(self) -> float:
        return self.alpha


def _rates(design, true_diffs, studies=STUDIES, seed=18):
    rng = np.random.default_rng(seed)
    results = [simulate_study(rng, true_diffs, SD, MARGIN, design) for _ in range(studies)]
    return results


def _any(results, verdicts, configs=None):
    return np.mean([any(d.verdict in verdicts for c, d in r.items() if configs is None or c in configs)
                    for r in results])


DIFFERS = ("better", "worse")


@pytest.mark.parametrize("design, ok", [(DESIGN, True), (Uncorrected(3, 10, ALPHA), False)],
                         ids=["bonferroni-over-looks", "uncorrected"])
def test_no_true_difference_false_better_or_worse_at_most_alpha(design, ok):
    rate = _any(_rates(design, {"a": 0.0}), DIFFERS)
    assert (rate <= ALPHA + 3 * MC_SE) == ok, f"false better/worse rate {rate:.4f}"


@pytest.mark.parametrize("design, ok", [(DESIGN, True), (Uncorrected(3, 10, ALPHA), False)],
                         ids=["bonferroni-over-looks", "uncorrected"])
def test_true_difference_at_the_margin_false_equivalent_at_most_alpha(design, ok):
    rate = _any(_rates(design, {"a": MARGIN}), ("equivalent",))
    assert (rate <= ALPHA + 3 * MC_SE) == ok, f"false equivalent rate {rate:.4f}"


def test_twice_the_margin_is_found_better_in_80_percent_by_max_seeds():
    results = _rates(DESIGN, {"a": 2 * MARGIN})
    assert np.mean([r["a"].verdict == "better" for r in results]) >= 0.8
    assert max(r["a"].n for r in results) <= DESIGN.max_seeds


def test_family_of_three_null_configurations_false_better_or_worse_at_most_alpha():
    rate = _any(_rates(DESIGN, {"a": 0.0, "b": 0.0, "c": 0.0}), DIFFERS)
    assert rate <= ALPHA + 3 * MC_SE, f"family-wise false better/worse rate {rate:.4f}"


def test_a_true_difference_in_the_family_does_not_raise_the_nulls_error_rate():
    # The configuration that differs is found and closed early and passes its share of alpha to
    # the two null ones (Holm's recycling, over the looks): their false better/worse rate stays <= alpha.
    studies = 2000
    results = _rates(DESIGN, {"differs": 2 * MARGIN, "null1": 0.0, "null2": 0.0}, studies)
    rate = _any(results, DIFFERS, configs=("null1", "null2"))
    assert rate <= ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / studies), f"rate {rate:.4f}"
    assert np.mean([r["differs"].verdict == "better" for r in results]) >= 0.8


# --- alpha-spending designs (issue 31) -------------------------------------------------------

OBF = Design(first_seeds=3, max_seeds=10, alpha=ALPHA, method="obrien_fleming")
POCOCK = Design(first_seeds=3, max_seeds=10, alpha=ALPHA, method="pocock")
MC_2SE = 2 * MC_SE


class IgnoresLooks(Design):
    """A spending design's code path with a boundary that ignores the looks: every look at the
    fixed test's level (the hypothesis' Holm share)."""

    def nominal(self, level, counts, sides=2):
        return level

    @property
    def equivalence_from(self):  # and TOST at every look, as before the skew guard
        return 2


class ZLevels(Design):
    """The spending design as first written (issue 31): the z boundaries' nominal levels applied to
    the t statistics, which is anti-conservative at 2-9 df."""

    def nominal(self, level, counts, sides=2):
        fractions = information(counts, self.max_seeds)
        return spending.nominal_levels(self.method, level / sides, fractions, sides)[-1]


def test_a_design_without_a_method_is_bonferroni_and_a_one_look_spending_design_is_the_fixed_test():
    assert Design(3, 10).method == "bonferroni" and METHODS == ("bonferroni", "obrien_fleming", "pocock")
    assert math.isnan(OBF.look_alpha)
    rng = np.random.default_rng(3)
    for _ in range(20):
        diffs = {k: rng.normal(0.002, SD, 5) for k in "abc"}
        legacy = decide_family(diffs, MARGIN, Design(5, 5), 1)
        for method in ("obrien_fleming", "pocock"):
            got = decide_family(diffs, MARGIN, Design(5, 5, method=method), 1)
            assert [d.verdict for d in got.values()] == [d.verdict for d in legacy.values()]
            assert [d.alpha_diff for d in got.values()] == [d.alpha_diff for d in legacy.values()]


def test_information_fractions_of_the_looks_reached():
    assert information([3, 4, 5], 10) == (0.3, 0.4, 0.5)
    assert information([2, 2, 3], 10) == (0.2, 0.3)  # a failed seed: no new information
    assert information([0, 1, 12], 10) == (0.1, 1.0)
    # O'Brien-Fleming's levels grow look by look and stay below alpha; Bonferroni's are alpha / K
    levels = OBF.planned_levels()
    assert len(levels) == 8 and list(levels) == sorted(levels) and levels[-1] < ALPHA
    assert levels[-1] > 3 * DESIGN.look_alpha
    assert DESIGN.planned_levels() == (ALPHA / 8,) * 8


@pytest.mark.parametrize("design", [OBF, POCOCK], ids=["obrien_fleming", "pocock"])
def test_spending_verdicts_p_levels_and_intervals_tell_one_story(design):
    rng = np.random.default_rng(5)
    held = {"q": _decision("equivalent"), "r": _decision("better")}
    seen = set()
    for i in range(200):
        look = 1 + i % design.looks
        diffs = {k: rng.normal(rng.choice([0.0, 0.004, 0.01]), SD, 2 + look) for k in "abc"}
        got = decide_family(diffs, MARGIN, design, look, decided=held, plan=False)
        for c, g in got.items():
            assert g.p_value == pytest.approx(sps.ttest_1samp(diffs[c], 0.0).pvalue, rel=1e-9)  # raw
            differs = g.verdict in ("better", "worse")
            assert differs == (g.p_value < g.alpha_diff) == (g.ci_low > 0 or g.ci_high < 0)
            within = g.verdict == "equivalent" or g.below_margin
            assert within == (g.p_tost < g.alpha_tost) == (-MARGIN < g.tost_low and g.tost_high < MARGIN)
            # its level is the boundary's at a Holm share between alpha / 4 (4 in the family) and alpha / 2
            counts = list(range(3, 3 + look))
            assert design.nominal(ALPHA / 4, counts) <= g.alpha_diff <= design.nominal(ALPHA / 2, counts)
            low, high = (design.nominal(ALPHA / m, counts, 1) for m in (4, 2))
            if g.n >= design.equivalence_from:
                assert low <= g.alpha_tost <= high
            else:  # too few pairs for TOST (the skew guard): not tested
                assert g.alpha_tost == 0.0 and not within and math.isnan(g.tost_low)
            seen.add(g.verdict)
    assert {"better", "equivalent", "undecided"} <= seen


def test_spending_holm_is_holms_step_down_when_the_looks_are_alike():
    # Same fractions for every comparison: reject the k smallest p while p_(j) < the boundary's
    # level at share alpha / (m - j + 1), as Holm's procedure does with alpha / (m - j + 1).
    rng = np.random.default_rng(6)
    for _ in range(100):
        diffs = {k: rng.normal(rng.choice([0.0, 0.003, 0.006]), SD, 6) for k in "abcd"}
        got = decide_family(diffs, MARGIN, OBF, 4, plan=False)
        p = sorted((d.p_value, c) for c, d in got.items())
        expect = set()
        for j, (pj, c) in enumerate(p):
            if not pj < OBF.nominal(ALPHA / (4 - j), [3, 4, 5, 6]):
                break
            expect.add(c)
        assert {c for c, d in got.items() if d.verdict in ("better", "worse")} == expect


def test_a_failed_seed_moves_the_look_of_a_spending_design():
    def draw(configs, seeds):
        return {c: [math.nan if s == 1 else 0.001 * s for s in seeds] for c in configs}

    got = run_sequential(draw, ["a"], MARGIN, Design(3, 5, method="obrien_fleming"))["a"]
    assert (got.n, got.look) == (4, 3)
    assert got.alpha_diff == Design(3, 5, method="obrien_fleming").nominal(ALPHA, [2, 3, 4])


# The Pocock-type option's simulations run in the slow tier (CI runs both): ~8 s together.
SPENDING_DESIGNS = [pytest.param(OBF, id="obrien_fleming"),
                    pytest.param(POCOCK, id="pocock", marks=pytest.mark.slow),
                    pytest.param(IgnoresLooks(3, 10, ALPHA, "obrien_fleming"), id="ignores-looks")]


def _rate(design, diff, verdicts, df=math.inf, studies=STUDIES, seed=31):
    rng = np.random.default_rng(seed)
    return np.mean([simulate_study(rng, {"a": diff}, SD, MARGIN, design, df=df)["a"].verdict in verdicts
                    for _ in range(studies)])


@pytest.mark.parametrize("df", [math.inf, 3.0], ids=["normal", "t3"])
@pytest.mark.parametrize("design", SPENDING_DESIGNS)
def test_spending_no_true_difference_false_better_or_worse_at_most_alpha(design, df):
    rate = _rate(design, 0.0, DIFFERS, df)
    ok = not isinstance(design, IgnoresLooks)
    assert (rate <= ALPHA + MC_2SE) == ok, f"false better/worse rate {rate:.4f}"


@pytest.mark.parametrize("design", SPENDING_DESIGNS)
def test_spending_difference_of_the_margin_false_equivalent_at_most_alpha(design):
    rate = _rate(design, MARGIN, ("equivalent",))
    ok = not isinstance(design, IgnoresLooks)
    assert (rate <= ALPHA + MC_2SE) == ok, f"false equivalent rate {rate:.4f}"


# With a margin so narrow that no study stops early as "equivalent" (0.125 sd), every null study
# reaches the late looks, where O'Brien-Fleming keeps its alpha. The z boundaries' nominal levels
# applied to t at 2-9 df let through 0.057 (O'Brien-Fleming) and 0.063 (Pocock) here (issue 31);
# the boundaries found for the t statistics themselves (spending.t_nominal_levels) hold alpha.
@pytest.mark.parametrize("design", [pytest.param(OBF, id="obrien_fleming"),
                                    pytest.param(POCOCK, id="pocock", marks=pytest.mark.slow),
                                    pytest.param(ZLevels(3, 10, ALPHA, "pocock"), id="z-levels-pocock",
                                                 marks=pytest.mark.slow)])
def test_spending_without_equivalence_stops_false_better_or_worse_at_most_alpha(design):
    rng = np.random.default_rng(31)
    rate = np.mean([simulate_study(rng, {"a": 0.0}, SD, SD / 8, design)["a"].verdict in DIFFERS
                    for _ in range(STUDIES)])
    ok = not isinstance(design, ZLevels)
    assert (rate <= ALPHA + MC_2SE) == ok, f"false better/worse rate {rate:.4f}"


def test_obrien_fleming_finds_a_true_difference_more_often_than_bonferroni():
    # a difference of one sd, by 10 seeds: about 0.73 against 0.49 (1,000 studies each)
    obf, bonferroni = (_rate(d, SD, ("better",), studies=1000) for d in (OBF, DESIGN))
    assert obf > bonferroni + 0.1, (obf, bonferroni)
    assert _rate(OBF, 2 * MARGIN, ("better",), studies=500) >= 0.8


def test_spending_family_of_three_nulls_false_better_or_worse_at_most_alpha():
    results = _rates(OBF, {"a": 0.0, "b": 0.0, "c": 0.0}, studies=3000)
    rate = _any(results, DIFFERS)
    assert rate <= ALPHA + 2 * math.sqrt(ALPHA * (1 - ALPHA) / 3000), f"family-wise rate {rate:.4f}"


# --- skewed seed noise (issue 31, item 4) ----------------------------------------------------

SKEW_SD = 0.0043  # the scenario: paired sd 0.43 points, margin 0.5 points


class NoEquivalenceGuard(Design):
    """A spending design that claims "equivalent" from 2 pairs, as before the guard."""

    @property
    def equivalence_from(self):
        return 2


def _left_skewed(rng, skewness, shape):
    """Noise of mean 0, sd 1 and this (negative) skewness: a shifted, negated gamma (shape
    4 / skewness^2): most runs a little above the mean, an occasional one far below it."""
    k = 4.0 / skewness**2
    return -(rng.gamma(k, 1.0, shape) - k) / math.sqrt(k)


def _false_equivalent_when_skewed(design, skewness, studies=STUDIES, seed=4):
    # True difference -margin (the candidate worse by the margin), left-skewed differences: the
    # samples that miss the bad run look tight and too high, so TOST's lower test rejects too often.
    rng = np.random.default_rng(seed)
    x = -MARGIN + SKEW_SD * _left_skewed(rng, skewness, (studies, design.max_seeds))  # (studies, seeds)
    equivalent = 0
    for row in x:
        got = run_sequential(lambda configs, seeds, row=row: {c: row[seeds] for c in configs},
                             ["a"], MARGIN, design, plan=False)["a"]
        equivalent += got.verdict == "equivalent"
    return equivalent / studies


def test_left_skewed_noise_sample_moments():
    z = _left_skewed(np.random.default_rng(0), -1.0, 1_000_000)
    assert (z.mean(), z.std(), sps.skew(z)) == pytest.approx((0.0, 1.0, -1.0), abs=0.02)


@pytest.mark.parametrize("design, ok", [(Design(3, 10, ALPHA, "obrien_fleming"), True),
                                        (NoEquivalenceGuard(3, 10, ALPHA, "obrien_fleming"), False)],
                         ids=["guarded", "no-guard"])
def test_skewed_noise_false_equivalent_at_most_alpha(design, ok):
    rate = _false_equivalent_when_skewed(design, -1.0)
    assert (rate <= ALPHA) == ok, f"false equivalent rate {rate:.4f} at skewness -1"


# --- the pooled variance of a seed-blocked family (issue 31, item 2) ------------------------


@pytest.mark.parametrize("shape", [(2, 3), (5, 3), (4, 10)])
def test_seed_blocked_variance_is_statsmodels_two_way_anova_residual(shape):
    import pandas as pd
    from statsmodels.formula.api import ols
    from statsmodels.stats.anova import anova_lm

    rng = np.random.default_rng(sum(shape))
    y = 0.9 + rng.normal(0, 0.01, (shape[0], 1)) + rng.normal(0, 0.005, (1, shape[1])) \
        + rng.normal(0, 0.004, shape)  # (configs, seeds)
    frame = pd.DataFrame([(f"c{i}", f"s{j}", y[i, j]) for i in range(shape[0]) for j in range(shape[1])],
                         columns=["config", "seed", "y"])
    ref = anova_lm(ols("y ~ C(config) + C(seed)", frame).fit()).loc["Residual"]
    ms, df = decide.seed_blocked_variance(y)
    assert (ms, df) == (pytest.approx(ref["mean_sq"], rel=1e-9), ref["df"])
    # the paired differences with the baseline have the same residuals
    d = y[1:] - y[0]
    assert decide.seed_blocked_variance(np.vstack([np.zeros(shape[1]), d]))[0] == pytest.approx(ms, rel=1e-9)
    with pytest.raises(ValueError, match="table must be configurations x seeds"):
        decide.seed_blocked_variance(y[:1])


def test_pooled_t_with_one_comparison_is_the_paired_t_and_falls_back_when_it_must():
    rng = np.random.default_rng(8)
    d = rng.normal(0.001, SD, (4, 6))
    tests, pooled = decide.family_t({"a": d[0]}, pool=True)
    assert not pooled and tests["a"] == paired_t(d[0])
    tests, pooled = decide.family_t({k: row for k, row in zip("abcd", d)}, pool=True)
    assert pooled and {t.df for t in tests.values()} == {4 * 5}
    assert tests["a"].est == pytest.approx(d[0].mean()) and tests["a"].n == 6
    assert decide.family_t({"a": d[0], "b": d[1][:5]}, pool=True)[1] is False  # unequal n
    wide = {"a": d[0], "b": d[1], "c": d[2] * 6}  # one sd 6x the others': Bartlett rejects
    assert not decide.equal_variances(wide) and decide.family_t(wide, pool=True)[1] is False
    got = decide_family({k: row for k, row in zip("abcd", d)}, MARGIN, OBF, 4, pool=True)
    assert all(g.pooled for g in got.values()) and "pooled" in got["a"].as_dict()
    assert "pooled" not in decide_family({"a": d[0]}, MARGIN, OBF, 4)["a"].as_dict()


def _pooled_family_rate(design, sds, studies, pool, seed=5):
    # a configurations share the baseline's runs and seed blocks: y = seed effect + error, every
    # true difference 0; paired differences y_c - y_b. sds: each configuration's run sd.
    rng = np.random.default_rng(seed)
    names = [f"c{i}" for i in range(len(sds))]
    base = rng.normal(0.0, SKEW_SD / math.sqrt(2), (studies, design.max_seeds))  # (studies, seeds)
    runs = rng.normal(0.0, 1.0, (len(sds), studies, design.max_seeds)) * np.asarray(sds)[:, None, None]
    wrong = 0
    for i in range(studies):
        def draw(configs, seeds, i=i):
            return {c: runs[names.index(c), i, seeds] - base[i, seeds] for c in configs}

        got = run_sequential(draw, names, MARGIN, design, plan=False, pool=pool)
        wrong += any(d.verdict in DIFFERS for d in got.values())
    return wrong / studies


# KNOWN LIMIT (issue 31, item 2): with one configuration's sd twice the others', Bartlett's
# pre-test at 3-5 pairs misses it too often and the pooled variance understates that one's:
# 0.069 (5,000 studies) against a bound of 0.056; each comparison's own variance holds.
# strict: the test says so when a better fallback fixes it.
@pytest.mark.slow  # 2 x 5,000 studies of 4 comparisons: about a minute each on a quiet machine
@pytest.mark.parametrize("pool", [pytest.param(True, marks=pytest.mark.xfail(
    strict=True, reason="Bartlett's pre-test misses a 2x sd at 3-5 pairs")), False], ids=["pooled", "own"])
def test_pooled_family_with_one_noisier_configuration_false_better_or_worse_at_most_alpha(pool):
    sigma = SKEW_SD / math.sqrt(2)  # a run's sd: paired sd 0.43 points
    studies = STUDIES
    rate = _pooled_family_rate(OBF, [sigma, sigma, sigma, 2 * sigma], studies, pool)
    assert rate <= ALPHA + 2 * math.sqrt(ALPHA * (1 - ALPHA) / studies), f"rate {rate:.4f}"


# --- a committed study continued under a spending design (issue 31, item 8) -----------------------
# A Bonferroni study of 3-10 seeds that took 4 looks (n = 3..6), continued with O'Brien-Fleming
# spending up to 16 seeds: the later looks spend only what the 4 looks left (alpha x 4/8 of each
# hypothesis's share).
EARLIER = Design(3, 10, ALPHA)
CONTINUED = Design(3, 16, ALPHA, "obrien_fleming", continues=EARLIER, continued_after=4)


class ForgetsEarlierLooks(Design):
    """The wrong continuation: the later looks spend the whole alpha again."""

    def nominal(self, level, counts, sides=2):
        if len(counts) <= self.continued_after:
            return self.continues.nominal(level, counts, sides)
        looks = tuple(n for n in counts[self.continued_after:] if n >= 2)
        return spending.t_nominal_levels(self.method, level / sides, looks, self.max_seeds,
                                         sides)[-1]


FORGETS = ForgetsEarlierLooks(3, 16, ALPHA, "obrien_fleming", continues=EARLIER, continued_after=4)


def test_a_continued_design_spends_only_what_the_earlier_looks_left():
    counts = [3, 4, 5, 6, 7, 8]
    assert [CONTINUED.nominal(ALPHA, counts[:k]) for k in range(1, 5)] == [ALPHA / 8] * 4
    after = CONTINUED.nominal(ALPHA, counts)  # look 6: the second of the continuation
    assert after == spending.t_nominal_levels("obrien_fleming", ALPHA / 2 / 2, (7, 8), 16, 2)[-1]
    assert 0.0 < after < FORGETS.nominal(ALPHA, counts)
    with pytest.raises(ValueError, match="continued_after"):
        Design(3, 16, ALPHA, "obrien_fleming", continues=EARLIER, continued_after=8)
    with pytest.raises(ValueError, match="spending method"):
        Design(3, 16, ALPHA, continues=EARLIER, continued_after=2)
    with pytest.raises(ValueError, match="keeps first_seeds"):
        Design(4, 16, ALPHA, "obrien_fleming", continues=EARLIER, continued_after=2)


def test_a_continued_study_decides_its_earlier_looks_as_they_were():
    for seed in range(40):
        earlier, continued = [], []
        for design, seen in ((EARLIER, earlier), (CONTINUED, continued)):
            rng = np.random.default_rng(seed)

            def draw(configs, seeds, rng=rng):
                return {c: rng.normal(0.003, SD, len(seeds)) for c in configs}
            run_sequential(draw, ["a", "b"], MARGIN, design, plan=False,
                           on_look=lambda look, d, seen=seen: seen.append(
                               (look, {c: x.verdict for c, x in d.items()})))
        assert continued[:4] == earlier[:4]


@pytest.mark.parametrize("design, ok, df", [
    pytest.param(CONTINUED, True, math.inf, id="continued-normal"),
    pytest.param(CONTINUED, True, 3.0, id="continued-t3", marks=pytest.mark.slow),
    pytest.param(FORGETS, False, math.inf, id="forgets-earlier-looks-normal", marks=pytest.mark.slow)])
def test_a_continued_study_false_better_or_worse_at_most_alpha(design, ok, df):
    rng = np.random.default_rng(8)
    # a narrow margin keeps every null study open to the last looks, where the two differ
    rate = np.mean([simulate_study(rng, {"a": 0.0}, SD, SD / 8, design, df=df)["a"].verdict
                    in DIFFERS for _ in range(STUDIES)])
    assert (rate <= ALPHA + MC_2SE) == ok, f"false better/worse rate {rate:.4f}"


def test_a_continued_study_false_equivalent_at_most_alpha():
    assert _rate(CONTINUED, MARGIN, ("equivalent",)) <= ALPHA + MC_2SE


def test_continuing_decides_more_than_staying_bonferroni():
    # a difference of one sd: found by 16 seeds under the continuation, by 10 under Bonferroni
    continued, stayed = (_rate(d, SD, ("better",), studies=1000) for d in (CONTINUED, EARLIER))
    assert continued > stayed + 0.1, (continued, stayed)
