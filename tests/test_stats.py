"""Oracle tests for src/core/stats.py: every number is checked against scipy/statsmodels or by hand."""

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from scipy import stats as sps
from statsmodels.stats.anova import anova_lm

from src.core.stats import Comparison, compare, holm, summarize, two_way_anova, verdict

ACC = [0.912, 0.905, 0.918, 0.909, 0.915, 0.907]
BASE = [0.901, 0.899, 0.906, 0.895, 0.903]


# --- summarize -------------------------------------------------------------------------------


def test_summarize_matches_numpy_and_scipy():
    s = summarize(ACC)
    x = np.array(ACC)
    low, high = sps.t.interval(0.95, df=len(x) - 1, loc=x.mean(), scale=x.std(ddof=1) / np.sqrt(len(x)))
    assert s.n == 6
    assert s.mean == pytest.approx(x.mean(), abs=1e-15)
    assert s.std == pytest.approx(x.std(ddof=1), rel=1e-12)
    assert (s.ci95_low, s.ci95_high) == pytest.approx((low, high), rel=1e-12)


def test_summarize_other_confidence_and_generator_input():
    s = summarize((v for v in ACC), confidence=0.99)
    x = np.array(ACC)
    low, high = sps.t.interval(0.99, df=5, loc=x.mean(), scale=sps.sem(x))
    assert (s.ci95_low, s.ci95_high) == pytest.approx((low, high), rel=1e-12)


def test_summarize_interval_is_scipys_bit_for_bit():
    # summarize computes the t-interval without importing scipy.stats (2 s per `evaluate`); the
    # committed metrics must not move by a bit.
    rng = np.random.default_rng(0)
    for n in (2, 3, 5, 10, 31):
        for confidence in (0.9, 0.95, 0.99):
            x = rng.normal(0.9, 0.02, n)
            s = summarize(x, confidence=confidence)
            assert (s.ci95_low, s.ci95_high) == sps.t.interval(
                confidence, df=n - 1, loc=float(x.mean()), scale=sps.sem(x))


def test_evaluate_imports_neither_scipy_stats_nor_statsmodels():
    code = ("import sys, src.evaluate; "
            "print(sorted(m for m in ('scipy.stats', 'statsmodels') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.strip() == "[]"


def test_summarize_single_value_has_nan_spread_and_json_nulls():
    s = summarize([0.9])
    assert s.mean == 0.9 and s.n == 1
    assert math.isnan(s.std) and math.isnan(s.ci95_low) and math.isnan(s.ci95_high)
    d = s.as_dict()
    assert d == {"mean": 0.9, "std": None, "n": 1, "ci95_low": None, "ci95_high": None}
    json.dumps(d, allow_nan=False)  # must be strict JSON


def test_summarize_constant_values_give_point_interval():
    s = summarize([0.1, 0.1, 0.1])
    assert (s.mean, s.std, s.n, s.ci95_low, s.ci95_high) == (0.1, 0.0, 3, 0.1, 0.1)


@pytest.mark.parametrize("bad, word", [([0.9, float("nan")], "NaN"), ([], "empty"), ([1.0, np.inf], "inf")])
def test_summarize_rejects_bad_input(bad, word):
    with pytest.raises(ValueError, match=word):
        summarize(bad)


# --- compare ---------------------------------------------------------------------------------


def test_compare_welch_matches_scipy():
    c = compare(ACC, BASE)
    ref = sps.ttest_ind(ACC, BASE, equal_var=False)
    ci = ref.confidence_interval(0.95)
    assert c.test == "welch"
    assert c.diff == pytest.approx(np.mean(ACC) - np.mean(BASE), rel=1e-12)
    assert c.p_value == pytest.approx(ref.pvalue, rel=1e-10)
    assert (c.ci95_low, c.ci95_high) == pytest.approx((ci.low, ci.high), rel=1e-10)
    assert (c.n_candidate, c.n_baseline) == (6, 5)
    # Welch CI is not the pooled-variance CI: guard against equal_var=True sneaking in.
    pooled = sps.ttest_ind(ACC, BASE, equal_var=True).confidence_interval(0.95)
    assert c.ci95_low != pytest.approx(pooled.low, rel=1e-6)


def test_compare_paired_matches_ttest_rel_and_dz():
    cand, base = ACC[:5], BASE
    c = compare(cand, base, paired=True, confidence=0.9)
    ref = sps.ttest_rel(cand, base)
    ci = ref.confidence_interval(0.9)
    d = np.array(cand) - np.array(base)
    assert c.test == "paired"
    assert c.p_value == pytest.approx(ref.pvalue, rel=1e-10)
    assert (c.ci95_low, c.ci95_high) == pytest.approx((ci.low, ci.high), rel=1e-10)
    assert c.effect_size == pytest.approx(d.mean() / d.std(ddof=1), rel=1e-12)


def test_hedges_g_hand_computed():
    # candidate [2, 4, 6]: mean 4, var 4;  baseline [1, 2, 3, 4, 5]: mean 3, var 2.5
    # pooled var = (2*4 + 4*2.5) / (3 + 5 - 2) = 18 / 6 = 3  ->  d = (4 - 3) / sqrt(3)
    # J = 1 - 3 / (4*6 - 1) = 20/23  ->  g = 20 / (23 * sqrt(3)) = 0.502043...
    c = compare([2, 4, 6], [1, 2, 3, 4, 5])
    assert c.effect_size == pytest.approx(20 / (23 * math.sqrt(3)), rel=1e-12)
    assert c.effect_size == pytest.approx(0.502043, abs=1e-6)


def test_compare_paired_unequal_lengths_raises():
    with pytest.raises(ValueError, match="equal lengths"):
        compare([1.0, 2.0, 3.0], [1.0, 2.0], paired=True)


def test_compare_untestable_cases():
    one = compare([0.9], BASE)
    assert one.test == "none" and math.isnan(one.p_value) and math.isnan(one.ci95_low)
    assert one.diff == pytest.approx(0.9 - np.mean(BASE))
    flat = compare([0.9, 0.9, 0.9], [0.8, 0.8])
    assert flat.test == "none" and math.isnan(flat.p_value) and math.isnan(flat.effect_size)
    assert flat.ci95_low == flat.ci95_high == flat.diff == pytest.approx(0.1)
    json.dumps(one.as_dict(), allow_nan=False)


# --- holm ------------------------------------------------------------------------------------


def test_holm_worked_example():
    # sorted: 0.005 (x4) = 0.02, 0.01 (x3) = 0.03, 0.03 (x2) = 0.06, 0.04 (x1) = 0.04
    # then running max enforces monotonicity: 0.02, 0.03, 0.06, 0.06
    # back in input order [0.01, 0.04, 0.03, 0.005] -> [0.03, 0.06, 0.06, 0.02]
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02], rtol=1e-12)


def test_holm_nan_passthrough_shrinks_family():
    # family is {0.01, 0.04}: 0.01*2 = 0.02, 0.04*1 = 0.04
    out = holm([0.01, np.nan, 0.04])
    assert math.isnan(out[1])
    np.testing.assert_allclose(out[[0, 2]], [0.02, 0.04], rtol=1e-12)
    assert np.isnan(holm([np.nan, np.nan])).all()


def test_holm_is_statsmodels_bit_for_bit(monkeypatch):
    # stats.holm does multipletests' arithmetic itself. multipletests runs gc.collect() per call,
    # which in a full test session's heap took 95 s for these 250 calls: the oracle's numbers do
    # not depend on it, so the test skips it.
    import gc

    from statsmodels.stats.multitest import multipletests
    monkeypatch.setattr(gc, "collect", lambda *a, **k: 0)
    rng = np.random.default_rng(3)
    for m in (1, 2, 3, 7, 20):
        for _ in range(50):
            p = rng.uniform(0, 1, m) ** 3
            p[rng.uniform(size=m) < 0.2] = p[0]  # ties
            assert np.array_equal(holm(p), multipletests(p, method="holm")[1])


# --- verdict ---------------------------------------------------------------------------------


def _cmp(diff, p, n_c=5, n_b=5):
    return Comparison(diff, diff - 1, diff + 1, p, "welch", 0.5, n_c, n_b)


def test_verdict_wording():
    assert verdict(_cmp(0.01, 0.01), 0.01) == "better"
    assert verdict(_cmp(-0.01, 0.01), 0.01) == "worse"
    assert verdict(_cmp(0.01, 0.01), 0.2) == "no detectable difference at n = 5 vs 5"
    assert verdict(_cmp(0.01, 0.01), 0.05) == "no detectable difference at n = 5 vs 5"  # strict <
    assert verdict(_cmp(0.01, 0.04, 3, 4), 0.04, alpha=0.01) == "no detectable difference at n = 3 vs 4"
    untested = compare([0.9], BASE)
    assert verdict(untested, untested.p_value).startswith("not tested (n < 2")


# --- two_way_anova ---------------------------------------------------------------------------


@pytest.fixture
def design():
    # 3 x 2 balanced design, 4 seeds per cell, with a dropout x norm interaction built in:
    # dropout only helps when there is no normalisation.
    rng = np.random.default_rng(0)
    rows = []
    for dropout in (0.0, 0.25, 0.5):
        for norm in ("batch", "none"):
            mu = 0.90 + (0.02 * dropout if norm == "none" else -0.01 * dropout) + \
                (0.005 if norm == "batch" else 0)
            rows += [(dropout, norm, mu + rng.normal(0, 0.002)) for _ in range(4)]
    return pd.DataFrame(rows, columns=["dropout", "norm", "acc"])


def test_two_way_anova_matches_statsmodels(design):
    got = two_way_anova(design, "dropout", "norm", "acc")
    ref = anova_lm(smf.ols("acc ~ C(dropout) * C(norm)", data=design).fit(), typ=2)
    assert list(got.index) == ["dropout", "norm", "dropout:norm", "Residual"]
    assert list(got.columns) == ["sum_sq", "df", "F", "p_value", "partial_eta_sq"]
    for ours, theirs in [("dropout", "C(dropout)"), ("norm", "C(norm)"),
                         ("dropout:norm", "C(dropout):C(norm)")]:
        assert got.loc[ours, "F"] == pytest.approx(ref.loc[theirs, "F"], rel=1e-9)
        assert got.loc[ours, "p_value"] == pytest.approx(ref.loc[theirs, "PR(>F)"], rel=1e-9)
    assert tuple(got["df"]) == (2.0, 1.0, 2.0, 18.0)
    assert got.loc["dropout:norm", "p_value"] < 1e-3  # the built-in interaction is found
    ss_res = ref.loc["Residual", "sum_sq"]
    ss_int = ref.loc["C(dropout):C(norm)", "sum_sq"]
    assert got.loc["dropout:norm", "partial_eta_sq"] == pytest.approx(ss_int / (ss_int + ss_res), rel=1e-9)
    assert math.isnan(got.loc["Residual", "partial_eta_sq"])


def test_two_way_anova_unbalanced_is_type_ii(design):
    # Type I and II coincide on a balanced design; drop rows so only Type II matches.
    unbalanced = design.drop(index=[0, 1, 4, 9, 13])
    got = two_way_anova(unbalanced, "dropout", "norm", "acc")
    ref = anova_lm(smf.ols("acc ~ C(dropout) * C(norm)", data=unbalanced).fit(), typ=2)
    np.testing.assert_allclose(got["F"].to_numpy()[:3], ref["F"].to_numpy()[:3], rtol=1e-9)
    np.testing.assert_allclose(got["sum_sq"].to_numpy(), ref["sum_sq"].to_numpy(), rtol=1e-9)


def test_two_way_anova_odd_column_names(design):
    odd = design.rename(columns={"dropout": "drop out", "norm": 'norm-"type"', "acc": "val/acc"})
    got = two_way_anova(odd, "drop out", 'norm-"type"', "val/acc")
    plain = two_way_anova(design, "dropout", "norm", "acc")
    assert list(got.index) == ["drop out", 'norm-"type"', 'drop out:norm-"type"', "Residual"]
    np.testing.assert_allclose(got.to_numpy(), plain.to_numpy(), rtol=1e-12)


def test_two_way_anova_rejects_empty_cell_and_no_residual_df(design):
    holey = design[~((design["dropout"] == 0.5) & (design["norm"] == "none"))]
    with pytest.raises(ValueError, match="empty cells.*0.5, 'none'"):
        two_way_anova(holey, "dropout", "norm", "acc")
    single = design.groupby(["dropout", "norm"], as_index=False).first()
    with pytest.raises(ValueError, match="no residual degrees of freedom"):
        two_way_anova(single, "dropout", "norm", "acc")
