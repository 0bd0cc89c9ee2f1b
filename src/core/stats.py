"""Statistics for hyperparameter studies: summaries, pairwise comparisons, Holm correction, ANOVA.

Every result is measured over several seeds or folds, so we never report a bare number: a
`Summary` carries mean, std, n and a t-interval; a `Comparison` carries the difference, its
interval, a p-value and an effect size. All distributions, tests and corrections come from
scipy / statsmodels; this module only validates inputs, handles the degenerate cases (n < 2,
zero variance) explicitly, and packs results into frozen dataclasses. No I/O: stages call
`as_dict()` and write the JSON themselves.

"Better" means a larger value (accuracy-like metrics); pass `-loss` to compare losses.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy import special

# scipy.stats and statsmodels are imported where they are used: together they take ~2 s to import,
# and `evaluate`, which runs once per experiment of a sweep, needs only `summarize`.


def _json_safe(d: dict) -> dict:
    # nan is not valid JSON; None (-> null) is.
    return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in d.items()}


def _as_array(values, name: str = "values") -> np.ndarray:
    # Generators have no len(); materialise them so numpy sees a sequence, not an object.
    arr = np.asarray(values if hasattr(values, "__len__") else list(values), dtype=float)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty: need at least one value")
    if np.isnan(arr).any():
        raise ValueError(f"{name} contains NaN at positions {np.flatnonzero(np.isnan(arr)).tolist()}")
    if np.isinf(arr).any():
        raise ValueError(f"{name} contains inf at positions {np.flatnonzero(np.isinf(arr)).tolist()}")
    return arr


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")


def _all_equal(arr: np.ndarray) -> bool:
    # Exact equality, not var == 0: the mean of [0.1, 0.1, 0.1] is not exactly 0.1, so the
    # computed variance can be a tiny positive number for values that are in fact identical.
    return bool(np.all(arr == arr[0]))


@dataclass(frozen=True)
class Summary:
    mean: float
    std: float  # sample std, ddof=1; nan when n < 2
    n: int
    ci95_low: float  # t-interval for the mean; nan when n < 2
    ci95_high: float

    def as_dict(self) -> dict[str, float | int | None]:
        return _json_safe(asdict(self))


def summarize(values, confidence: float = 0.95) -> Summary:
    """Mean, sample std and a Student-t confidence interval for the mean of `values`."""
    _check_confidence(confidence)
    arr = _as_array(values)
    n = int(arr.size)
    if n == 1:
        return Summary(float(arr[0]), math.nan, 1, math.nan, math.nan)
    if _all_equal(arr):
        # scale 0 is invalid for scipy's t; the interval of a constant sample is the point itself.
        m = float(arr[0])
        return Summary(m, 0.0, n, m, m)
    mean, std = float(arr.mean()), arr.std(ddof=1)
    sem = std / np.sqrt(n)
    # Student's t quantiles, as scipy.stats.t.interval computes them (its ppf is stdtrit).
    low, high = (special.stdtrit(n - 1, q) * sem + mean for q in ((1 - confidence) / 2,
                                                                   (1 + confidence) / 2))
    return Summary(mean, float(std), n, float(low), float(high))


@dataclass(frozen=True)
class Comparison:
    diff: float  # mean(candidate) - mean(baseline)
    ci95_low: float  # interval of the difference
    ci95_high: float
    p_value: float  # two-sided; nan when no test was possible
    test: str  # "welch" | "paired" | "none"
    effect_size: float  # Hedges' g (unpaired) or d_z (paired); nan when undefined
    n_candidate: int
    n_baseline: int

    def as_dict(self) -> dict[str, float | int | str | None]:
        return _json_safe(asdict(self))


def _hedges_g(c: np.ndarray, b: np.ndarray) -> float:
    n1, n2 = c.size, b.size
    dof = n1 + n2 - 2
    pooled_sd = math.sqrt(((n1 - 1) * c.var(ddof=1) + (n2 - 1) * b.var(ddof=1)) / dof)
    if pooled_sd == 0.0:
        return math.nan
    # Hedges' small-sample correction J = 1 - 3 / (4 df - 1): Cohen's d is biased upward at the
    # n of a seed sweep (5-10 per arm), which is exactly where we use it.
    return float((c.mean() - b.mean()) / pooled_sd * (1.0 - 3.0 / (4.0 * dof - 1.0)))


def compare(candidate, baseline, paired: bool = False, confidence: float = 0.95) -> Comparison:
    """Candidate minus baseline: Welch t-test (default) or paired t-test (same seeds/folds).

    Use `paired=True` only when element i of both arrays shares its seed or fold; it is then
    far more sensitive because seed-to-seed variation cancels.
    """
    _check_confidence(confidence)
    c, b = _as_array(candidate, "candidate"), _as_array(baseline, "baseline")
    if paired and c.size != b.size:
        raise ValueError(f"paired comparison needs equal lengths, got {c.size} vs {b.size}")
    diff = float(c.mean() - b.mean())
    sizes = dict(n_candidate=int(c.size), n_baseline=int(b.size))

    if c.size < 2 or b.size < 2:
        return Comparison(diff, math.nan, math.nan, math.nan, "none", math.nan, **sizes)
    # With no variance at all the t statistic is 0/0; report the exact difference, untested,
    # rather than let scipy return nan with a RuntimeWarning.
    no_variance = _all_equal(c - b) if paired else (_all_equal(c) and _all_equal(b))
    if no_variance:
        return Comparison(diff, diff, diff, math.nan, "none", math.nan, **sizes)

    from scipy import stats as sps

    if paired:
        res = sps.ttest_rel(c, b)
        d = c - b
        effect, test = float(d.mean() / d.std(ddof=1)), "paired"
    else:
        res = sps.ttest_ind(c, b, equal_var=False)  # Welch-Satterthwaite df
        effect, test = _hedges_g(c, b), "welch"
    ci = res.confidence_interval(confidence_level=confidence)
    return Comparison(
        diff, float(ci.low), float(ci.high), float(res.pvalue), test, effect, **sizes
    )


def holm(p_values) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values, in input order; NaN entries stay NaN and do not count."""
    p = np.asarray(p_values, dtype=float).ravel()
    out = np.full(p.shape, np.nan)
    finite = np.isfinite(p)
    if finite.any():
        if ((p[finite] < 0) | (p[finite] > 1)).any():
            raise ValueError("p-values must lie in [0, 1]")
        # statsmodels' multipletests(method="holm") arithmetic, step for step (tests check it bit for
        # bit), without its gc.collect() on every call: 20 ms a call, and the sequential decisions
        # of src/core/decide.py call Holm once a look, tens of thousands of times in a simulation.
        q = p[finite]
        order = np.argsort(q)
        adjusted = np.maximum.accumulate(q[order] * np.arange(q.size, 0, -1))
        adjusted[adjusted > 1] = 1
        out[np.flatnonzero(finite)[order]] = adjusted
    return out


def verdict(comparison: Comparison, adjusted_p: float, alpha: float = 0.05) -> str:
    """One plain-words line for a report: better / worse / no detectable difference / not tested."""
    n_c, n_b = comparison.n_candidate, comparison.n_baseline
    if adjusted_p is None or math.isnan(adjusted_p):
        if min(n_c, n_b) < 2:
            return f"not tested (n < 2: n = {n_c} vs {n_b})"
        return "not tested (no variance in either group)"
    if adjusted_p < alpha:
        return "better" if comparison.diff > 0 else "worse"
    return f"no detectable difference at n = {n_c} vs {n_b}"


def two_way_anova(frame: pd.DataFrame, factor_a: str, factor_b: str, response: str) -> pd.DataFrame:
    """Type-II two-way ANOVA with interaction; factors are categorical.

    Returns one row per term (index "term": factor_a, factor_b, "factor_a:factor_b", "Residual")
    with columns sum_sq, df, F, p_value, partial_eta_sq.
    """
    for col in (factor_a, factor_b, response):
        if col not in frame.columns:
            raise ValueError(f"column {col!r} not in frame (have {list(frame.columns)})")
    if factor_a == factor_b:
        raise ValueError(f"the two factors must differ, got {factor_a!r} twice")
    # Copy into fixed safe names: no formula quoting can then break on odd column names
    # ("lr-1e3", names containing quotes), and levels are categorical via C() whatever their dtype.
    data = pd.DataFrame({"a": frame[factor_a], "b": frame[factor_b], "y": frame[response]})
    if data.isna().any().any():
        # patsy would silently drop such rows and change the design.
        raise ValueError("missing values in the factor or response columns")
    data["y"] = data["y"].astype(float)
    for col, name in (("a", factor_a), ("b", factor_b)):
        if data[col].nunique() < 2:
            raise ValueError(f"factor {name!r} needs at least 2 levels")

    counts = pd.crosstab(data["a"], data["b"])
    empty = [(i, j) for i in counts.index for j in counts.columns if counts.loc[i, j] == 0]
    if empty:
        raise ValueError(f"empty cells in the {factor_a} x {factor_b} design: {empty}")
    resid_df = len(data) - counts.size
    if resid_df <= 0:
        raise ValueError(
            f"no residual degrees of freedom ({len(data)} rows for {counts.size} cells); "
            "need at least 2 observations in some cell, ideally in each"
        )

    import statsmodels.formula.api as smf
    from statsmodels.stats.anova import anova_lm
    table = anova_lm(smf.ols("y ~ C(a) * C(b)", data=data).fit(), typ=2)
    table = table.rename(
        index={"C(a)": factor_a, "C(b)": factor_b, "C(a):C(b)": f"{factor_a}:{factor_b}"},
        columns={"PR(>F)": "p_value"},
    )
    table = table.loc[[factor_a, factor_b, f"{factor_a}:{factor_b}", "Residual"]]
    ss_resid = table.loc["Residual", "sum_sq"]
    table["partial_eta_sq"] = table["sum_sq"] / (table["sum_sq"] + ss_resid)
    table.loc["Residual", "partial_eta_sq"] = np.nan
    table.index.name = "term"
    return table[["sum_sq", "df", "F", "p_value", "partial_eta_sq"]]
