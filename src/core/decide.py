"""Decisions for seed studies: better / worse / equivalent within a margin / undecided (and how many
seeds would decide it), with seeds added only where the answer is still open.

A comparison of a configuration with the baseline ends in one of four verdicts:
- "better" / "worse": the two-sided paired t-test of the difference (candidate - baseline, one pair
  per shared seed) rejects "no difference"; if TOST also shows the difference lies within ±margin,
  it is "better, by less than the margin" (`below_margin`).
- "equivalent": TOST (Schuirmann 1987; two one-sided t-tests of H0: |difference| >= margin, p =
  the larger of the two) rejects, and the difference test does not.
- "undecided": neither; the decision then says how many seeds per configuration would decide it
  at 80% power (`seeds_needed`, `needed_for`): the smaller of the n that detects the observed
  difference and the n that shows equivalence if the true difference is the observed one, from
  the observed sd, at the level this comparison had at this look (alpha_diff: its Holm share of
  the look's level; Bonferroni's is the same at every look, a spending boundary's grows from
  look to look). It is the n of a fixed test at that level, a guide rather than a promise.
  `mdd` is the minimum detectable difference at the current n, same level.
- "not tested": fewer than 2 pairs, or paired differences that are all equal, within TIE (t = 0/0).

Sequential design (`Design`): every configuration gets `first_seeds` seeds, then in rounds the
baseline and every configuration still open get the next seed, until each comparison is decided or
has `max_seeds` seeds: at most K = max_seeds - first_seeds + 1 looks. A decision made at a look is
final: the configuration gets no more seeds and is not tested again.

Error control over the looks and the configurations, for any dependence between them. The
design's `method` says how alpha is spent over the looks:
- "obrien_fleming" (new studies' default) or "pocock": a group-sequential boundary from an
  alpha-spending function (Lan & DeMets 1983; src/core/spending.py), at the looks a comparison
  actually reaches: information fraction n / max_seeds for its n pairs, so a failed seed only
  moves the look. O'Brien-Fleming-type spends almost nothing at the first looks and keeps the
  last look's level near alpha; Pocock-type spends about evenly. The boundaries are those of the
  sequential t statistics themselves (`spending.t_nominal_levels`: each look's threshold found
  on 2^19 Monte Carlo paths of the t statistics of normal differences under the null, so that
  the first crossing at look k has the spending function's share; look 1 exactly), held as
  nominal levels: look k rejects when the t-test's p-value is below the boundary's
  fixed-sample p-value (two-sided; each of TOST's one-sided tests at its own one-sided
  boundary). The z boundaries' levels applied to t were anti-conservative at 2-9 df when no
  study stops early as "equivalent" (0.057 and 0.063 at alpha 0.05; a test keeps that
  comparison). Reported p-values are then unadjusted; a
  comparison is rejected when p < alpha_diff, its boundary's level at its Holm share.
- "bonferroni" (designs recorded before the spending functions; they keep it, so a committed
  study decides as it did): a fixed nominal boundary from the Bonferroni inequality: every look
  tests at alpha / K (the difference test two-sided, each of TOST's one-sided tests alike).
  Whatever the correlation between the looks, P(any false rejection at any look) <= sum over
  looks of alpha / K = alpha, exactly for t statistics with any df and unequal looks, but
  conservative. Reported p-values are Holm-adjusted and rejected below look_alpha.
- Over the configurations of a look, Holm's (1979) step-down procedure at the look's level. The
  family of a look is every hypothesis not yet rejected, including those of configurations that
  were closed earlier for the other reason (an "equivalent" configuration still holds its share
  of the difference family, a plain "better" one its share of the TOST family; they count with
  p = 1). A rejected hypothesis passes its share on to the others, as in Holm's procedure.
  This is the group-sequential Holm procedure of the graphical approach (Maurer & Bretz 2013,
  with the boundary above at the hypothesis' share as its group-sequential test), so the
  family-wise error rate of each kind of claim, "differs from the baseline" and "is equivalent to
  the baseline", stays <= alpha over all looks and all configurations. Counting only the
  configurations still open would not be valid: closing true nulls as "equivalent" would shrink
  the family and loosen the test of the others.
tests/test_decide.py shows the error rates by simulation through `simulate_study`, which runs the
same loop (`run_sequential`) the sweep runs, and shows that with a boundary that ignores the looks
the false-difference and false-equivalence rates exceed alpha.

References: S. Holm (1979), A simple sequentially rejective multiple test procedure, Scand. J.
Statist. 6:65-70. S. J. Pocock (1977), Group sequential methods in the design and analysis of
clinical trials, Biometrika 64:191-199. D. J. Schuirmann (1987), A comparison of the two one-sided
tests procedure and the power approach for assessing the equivalence of average bioavailability,
J. Pharmacokin. Biopharm. 15:657-680. W. Maurer & F. Bretz (2013), Multiple testing in group
sequential trials using graphical approaches, Stat. Biopharm. Res. 5:311-320. K. K. G. Lan & D. L.
DeMets (1983), Discrete sequential boundaries for clinical trials, Biometrika 70:659-663. D. Lakens
(2017), Equivalence tests: a practical primer for t tests, correlations, and meta-analyses, Soc. Psychol.
Personal. Sci. 8:355-362.

Units: differences and the margin are in the metric's own units (accuracy fractions); labels print
them in points (x100). Pure functions, no I/O; "better" means a larger value.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from enum import StrEnum
from functools import lru_cache

import numpy as np
from scipy import optimize, special

from src.core import spending
from src.core.stats import holm


class Verdict(StrEnum):
    """A comparison's verdict (module docstring). A ``str``: ``Verdict.BETTER == "better"``, and
    CSV, JSON and report text write the plain word, as they did before it was an enum."""

    BETTER = "better"
    WORSE = "worse"
    EQUIVALENT = "equivalent"
    UNDECIDED = "undecided"
    NOT_TESTED = "not tested"

    @property
    def differs(self) -> bool:
        """Better or worse: the difference test rejected."""
        return self in (Verdict.BETTER, Verdict.WORSE)


VERDICTS = tuple(Verdict)
DECIDED = frozenset({Verdict.BETTER, Verdict.WORSE, Verdict.EQUIVALENT})
POWER = 0.8  # the power `seeds_needed` and `mdd` are computed for
SEEDS_CAP = 1_000_000  # a larger sample size is reported as not estimable (None)
# Values closer than this are equal. Accuracies arrive as float32 (torch) averaged over folds, so
# two equal accuracies may differ by ~1e-7; an accuracy's resolution is 1 / (validation images),
# far above this. Without it, two equal paired differences had an sd of ~1e-8 and a "decisive" t.
TIE = 1e-6
# How a design spends alpha over its looks (module docstring). A design recorded without a method
# ran before the spending functions existed: it keeps deciding by Bonferroni over the looks.
LEGACY_METHOD = "bonferroni"
DEFAULT_METHOD = "obrien_fleming"  # new studies (sweeps.yaml's default)
# A spending design claims "equivalent" only from this many pairs (or at max_seeds, if fewer):
# an occasional bad run makes the paired differences left-skewed, and a one-sided t-test of
# skewed data at 3-6 pairs rejects far more often than its level (the samples that miss the bad
# run have a mean too high and an sd too small). At skewness -1 (sd 0.43 points, margin 0.5,
# 3-10 seeds, alpha 0.05) the false "equivalent" rate was 0.060 (O'Brien-Fleming) and 0.080
# (Pocock); from 7 pairs, 0.045 and 0.035 (tests/test_decide.py). Bonferroni designs keep 2.
MIN_EQUIVALENCE_PAIRS = 7
METHODS = (LEGACY_METHOD, *spending.SPENDING)


# --- the design ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Design:
    """The adaptive-seed plan of a sweep; first_seeds == max_seeds is a fixed design (1 look)."""

    first_seeds: int  # seeds every configuration gets before the first look
    max_seeds: int  # the most seeds a configuration gets
    alpha: float = 0.05  # family-wise error rate of each kind of claim, over all looks
    method: str = LEGACY_METHOD  # one of METHODS: how alpha is spent over the looks
    # A study continued under another design: its first `continued_after` looks were decided
    # under `continues` (exactly as they were), and the later looks spend only the alpha those
    # looks left (`nominal`).
    continues: Design | None = None
    continued_after: int = 0

    def __post_init__(self):
        for name in ("first_seeds", "max_seeds"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer):
                raise ValueError(f"{name} must be an integer, got {value!r}")
        if self.first_seeds < 2:
            raise ValueError(f"first_seeds must be >= 2 (a t-test needs 2 pairs), got {self.first_seeds}")
        if self.max_seeds < self.first_seeds:
            raise ValueError(f"max_seeds ({self.max_seeds}) must be >= first_seeds ({self.first_seeds})")
        if not (isinstance(self.alpha, int | float) and 0.0 < self.alpha < 1.0):
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha!r}")
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.continues is not None:
            earlier = self.continues
            if earlier.continues is not None:
                raise ValueError("a design continues one design, not a chain (continue the "
                                 "earlier one)")
            if (earlier.first_seeds, earlier.alpha) != (self.first_seeds, self.alpha):
                raise ValueError(f"a continued design keeps first_seeds and alpha: "
                                 f"{earlier.first_seeds}, {earlier.alpha} != {self.first_seeds}, "
                                 f"{self.alpha}")
            if not 1 <= self.continued_after < min(earlier.looks, self.looks):
                raise ValueError(f"continued_after must be in 1..{min(earlier.looks, self.looks) - 1} "
                                 f"(looks taken under the earlier design, before its last), got "
                                 f"{self.continued_after}")
            if not self.spends:
                raise ValueError("a continued design spends what the earlier looks left: give it "
                                 f"a spending method ({', '.join(spending.SPENDING)})")
        elif self.continued_after:
            raise ValueError("continued_after without the design it continues")

    @property
    def looks(self) -> int:
        """The most looks the design takes: after first_seeds seeds, then after each added seed."""
        return self.max_seeds - self.first_seeds + 1

    @property
    def spends(self) -> bool:
        """Whether the looks' boundaries come from an alpha-spending function."""
        return self.method != LEGACY_METHOD

    @property
    def look_alpha(self) -> float:
        """The nominal alpha of each look: alpha / looks (Bonferroni over the looks); nan for a
        spending design, whose nominal level changes from look to look (`nominal`)."""
        return math.nan if self.spends else self.alpha / self.looks

    def nominal(self, level: float, counts: Sequence[int], sides: int = 2) -> float:
        """The nominal level of a comparison's latest look, for a hypothesis whose share of the
        family's alpha is `level` (Holm's alpha / m): the fixed-sample p-value (two-sided for
        `sides` = 2, one-sided for TOST's tests) below which this look rejects. `counts`: the
        comparison's pairs at each of its looks so far, the latest last. Bonferroni: level /
        looks at every look. Spending: the boundary at information fractions n / max_seeds."""
        if self.continues is not None:
            m = self.continued_after
            if len(counts) <= m:
                return self.continues.nominal(level, counts, sides)
            # Bonferroni over the two parts (each hypothesis): the earlier looks rejected at
            # most at their nominal levels; the later ones are a spending test of what is left.
            left = level - sum(self.continues.nominal(level, counts[:j], sides)
                               for j in range(1, m + 1))
            looks = tuple(n for n in look_counts(counts[m:], self.max_seeds) if n >= 2)
            if not looks or left <= 0.0:
                return 0.0
            return spending.t_nominal_levels(self.method, left / sides, looks, self.max_seeds,
                                             sides)[-1]
        if not self.spends:
            return level / self.looks
        looks = tuple(n for n in look_counts(counts, self.max_seeds) if n >= 2)
        if not looks:  # no t statistic yet: nothing can be rejected
            return 0.0
        return spending.t_nominal_levels(self.method, level / sides, looks, self.max_seeds, sides)[-1]

    @property
    def equivalence_from(self) -> int:
        """The fewest pairs at which TOST may claim "equivalent" (MIN_EQUIVALENCE_PAIRS for a
        spending design, capped at max_seeds; 2 for Bonferroni, as recorded studies decided)."""
        return min(MIN_EQUIVALENCE_PAIRS, self.max_seeds) if self.spends else 2

    def planned_levels(self) -> tuple[float, ...]:
        """The nominal two-sided level of each planned look (first_seeds, first_seeds + 1, ...
        pairs) of one comparison at the full alpha."""
        counts = list(range(self.first_seeds, self.max_seeds + 1))
        return tuple(self.nominal(self.alpha, counts[:k]) for k in range(1, self.looks + 1))


def look_counts(counts: Sequence[int], max_seeds: int) -> tuple[int, ...]:
    """The pairs of a comparison's looks that add information (`counts`: its pairs at each
    look). A look with no more pairs than the one before it (failed seeds) is the same point of
    the boundary, tested again at the current level. More pairs than max_seeds count as
    max_seeds (the full information)."""
    out: list[int] = []
    for n in counts:
        n = min(int(n), max_seeds)
        if n > (out[-1] if out else 0):
            out.append(n)
    return tuple(out)


def information(counts: Sequence[int], max_seeds: int) -> tuple[float, ...]:
    """The information fractions n / max_seeds of a comparison's looks (`look_counts`)."""
    return tuple(n / max_seeds for n in look_counts(counts, max_seeds))


# --- one decision ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    below_margin: bool  # better/worse, and TOST shows the difference is within ±margin
    diff: float  # mean paired difference candidate - baseline (Welch: difference of the means)
    ci_low: float  # the difference's two-sided (1 - alpha_diff) interval
    ci_high: float
    tost_low: float  # the (1 - 2 alpha_tost) interval TOST uses
    tost_high: float
    # Bonferroni designs: Holm-adjusted within the look's family, rejected below look_alpha.
    # Spending designs: unadjusted, rejected below alpha_diff / alpha_tost (the boundary's level).
    p_value: float  # two-sided p of the difference
    p_tost: float  # TOST p (the larger one-sided p)
    n: int  # pairs (seeds) used; Welch: the smaller group
    sd: float  # sd of the paired differences; Welch: sqrt(var_c + var_b), the sd of one seed's difference
    seeds_needed: int | None  # undecided only: seeds per configuration that would decide it at 80% power
    needed_for: str  # "difference" | "equivalence" | "": what seeds_needed is for
    mdd: float  # minimum detectable difference at the current n (80% power, level alpha_diff)
    margin: float
    look: int  # 1-based look at which the decision was made
    # The nominal level this comparison's difference test had at this look (its Holm share of
    # the look's level; for a spending design, its boundary's): rejected iff the unadjusted p <
    # alpha_diff iff the (1 - alpha_diff) interval excludes 0.
    alpha_diff: float = math.nan
    alpha_tost: float = math.nan  # the same for each of its one-sided TOST tests
    pooled: bool = False  # its sd and df pooled over the family (`family_t`), not its own pairs'

    def __post_init__(self):
        object.__setattr__(self, "verdict", Verdict(self.verdict))  # a plain word becomes a Verdict

    def label(self) -> str:
        """The verdict in words for a report, e.g. "equivalent within ±0.50 points"."""
        if self.verdict.differs:
            return f"{self.verdict}, by less than the margin" if self.below_margin else str(self.verdict)
        if self.verdict == Verdict.EQUIVALENT:
            return f"equivalent within ±{self.margin * 100:.2f} points"
        if self.verdict == Verdict.UNDECIDED:
            if self.seeds_needed is None:
                return "undecided (seeds needed not estimable)"
            return f"undecided (needs ≈ {self.seeds_needed} seeds)"
        if self.n < 2:
            return f"not tested (n = {self.n} < 2)"
        return "not tested (no variance in the paired differences)"

    def as_dict(self) -> dict:
        """JSON/CSV-safe: nan -> None, plus the label."""
        d = {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in asdict(self).items()}
        if not self.pooled:  # rows of a study that does not pool stay as they were
            del d["pooled"]
        d["label"] = self.label()
        return d


def is_final(decision: Decision, design: Design) -> bool:
    """Decided (better / worse / equivalent), or the design's last look reached."""
    return decision.verdict in DECIDED or decision.look >= design.looks


def needs_another_seed(decisions: Mapping[str, Decision], design: Design,
                       n_now: Mapping[str, int]) -> list[str]:
    """The configurations that get the next seed in the next round: those not final (undecided or
    not tested before the last look) with fewer than max_seeds seeds run (`n_now`)."""
    return [c for c, d in decisions.items() if not is_final(d, design) and n_now[c] < design.max_seeds]


# --- t statistics ----------------------------------------------------------------------------


@dataclass(frozen=True)
class TStat:
    """What every test here needs: an estimate, its standard error and the t distribution's df."""

    est: float
    se: float  # 0 when there is no variance
    df: float
    n: int  # pairs; Welch: the smaller group
    sd: float  # sd of one seed's difference, so that se = sd / sqrt(n) for n seeds each

    @property
    def testable(self) -> bool:
        return self.n >= 2 and self.se > 0.0


def _values(values, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=float).ravel()
    if not np.isfinite(arr).all():
        bad = np.flatnonzero(~np.isfinite(arr)).tolist()
        raise ValueError(f"{name} contains NaN or inf at positions {bad}")
    return arr


def paired_t(diffs) -> TStat:
    """One-sample t on the paired differences (= scipy.stats.ttest_rel on candidate, baseline)."""
    # Plain floats: at the 3-10 pairs of a seed study numpy's per-call overhead is most of the cost,
    # and the simulations call this tens of thousands of times. fsum is exactly rounded.
    d = _values(diffs, "paired differences").tolist()
    n = len(d)
    if n == 0:
        return TStat(math.nan, math.nan, math.nan, 0, math.nan)
    mean = math.fsum(d) / n
    if n == 1:
        return TStat(mean, math.nan, math.nan, 1, math.nan)
    # Equal differences (discrete accuracies make them possible) are t = 0/0: not tested.
    sd = 0.0 if max(d) - min(d) <= TIE else math.sqrt(math.fsum((x - mean) ** 2 for x in d) / (n - 1))
    return TStat(mean, sd / math.sqrt(n), float(n - 1), n, sd)


def welch_t(candidate, baseline) -> TStat:
    """Welch's t of mean(candidate) - mean(baseline), Welch-Satterthwaite df."""
    c, b = _values(candidate, "candidate"), _values(baseline, "baseline")
    n = int(min(c.size, b.size))
    if n == 0:
        return TStat(math.nan, math.nan, math.nan, 0, math.nan)
    est = float(c.mean() - b.mean())
    if n == 1:
        return TStat(est, math.nan, math.nan, 1, math.nan)
    vc = 0.0 if float(np.ptp(c)) <= TIE else float(c.var(ddof=1))
    vb = 0.0 if float(np.ptp(b)) <= TIE else float(b.var(ddof=1))
    qc, qb = vc / c.size, vb / b.size
    if qc + qb == 0.0:
        return TStat(est, 0.0, math.nan, n, 0.0)
    df = (qc + qb) ** 2 / (qc**2 / (c.size - 1) + qb**2 / (b.size - 1))
    return TStat(est, math.sqrt(qc + qb), float(df), n, math.sqrt(vc + vb))


# --- the pooled variance of a seed-blocked family (issue 31, item 2) ----------------------------

# The pre-test of equal variances before pooling: Bartlett's, at this level (liberal, for power
# at 3-10 seeds; rejecting only costs the pooled df).
EQUAL_VARIANCE_ALPHA = 0.10


def seed_blocked_variance(table) -> tuple[float, float]:
    """The error variance of one run under the seed-blocked two-way model without interaction,
    y[config, seed] = mu + config effect + seed effect + error: the residual mean square and its
    df (a - 1)(n - 1), for `table` with a rows (configurations, baseline included) and n columns
    (seeds, each run by every configuration): statsmodels' anova_lm of ols("y ~ C(config) +
    C(seed)"), residual row."""
    y = _values(table, "table").reshape(np.shape(table))
    if y.ndim != 2 or min(y.shape) < 2:
        raise ValueError(f"table must be configurations x seeds, at least 2 x 2, got shape {y.shape}")
    a, n = y.shape
    resid = y - y.mean(1, keepdims=True) - y.mean(0, keepdims=True) + y.mean()
    df = (a - 1) * (n - 1)
    return float(np.sum(resid * resid) / df), float(df)


def equal_variances(diffs: Mapping[str, Sequence[float]], level: float = EQUAL_VARIANCE_ALPHA) -> bool:
    """Whether Bartlett's test at `level` keeps equal variances of the comparisons' paired
    differences (True for fewer than 2 comparisons)."""
    groups = [np.asarray(d, dtype=float) for d in diffs.values()]
    if len(groups) < 2:
        return True
    if any(np.ptp(g) <= TIE for g in groups):
        return False
    from scipy.stats import bartlett

    return bool(bartlett(*groups).pvalue >= level)


def pooled_paired_t(diffs: Mapping[str, Sequence[float]]) -> dict[str, TStat] | None:
    """The comparisons' t statistics with the error variance pooled over the family
    (`seed_blocked_variance` of the table baseline = 0, configuration = its paired differences,
    which has the same residuals as the accuracies'): se = sqrt(2 s^2 / n), df (a - 1)(n - 1) for
    a - 1 comparisons. None when they cannot share it (fewer than 2 comparisons, unequal numbers
    of pairs, fewer than 2 pairs, or Bartlett's test rejects equal variances): then each
    comparison keeps its own (`paired_t`)."""
    if len(diffs) < 2:
        return None
    rows = {c: _values(d, "paired differences") for c, d in diffs.items()}
    n = {r.size for r in rows.values()}
    if len(n) != 1 or n.pop() < 2 or not equal_variances(rows):
        return None
    table = np.vstack([np.zeros(next(iter(rows.values())).size), *rows.values()])  # (a, n)
    ms, df = seed_blocked_variance(table)
    n_pairs = table.shape[1]
    sd = math.sqrt(2.0 * ms)
    return {c: TStat(float(r.mean()), sd / math.sqrt(n_pairs), df, n_pairs, sd) for c, r in rows.items()}


def family_t(diffs: Mapping[str, Sequence[float]], pool: bool = False) -> tuple[dict[str, TStat], bool]:
    """The t statistic of each comparison, pooled (`pooled_paired_t`) when `pool` and the family
    can share its variance, else each its own (`paired_t`); and whether it was pooled."""
    pooled = pooled_paired_t(diffs) if pool else None
    if pooled is not None:
        return pooled, True
    return {c: paired_t(d) for c, d in diffs.items()}, False


def _p_two_sided(t: TStat) -> float:
    return float(2.0 * special.stdtr(t.df, -abs(t.est) / t.se))


def _p_tost(t: TStat, margin: float) -> float:
    p_low = special.stdtr(t.df, -(t.est + margin) / t.se)  # H0: diff <= -margin
    p_high = special.stdtr(t.df, (t.est - margin) / t.se)  # H0: diff >= +margin
    return float(max(p_low, p_high))


def _interval(t: TStat, two_sided_alpha: float) -> tuple[float, float]:
    half = float(special.stdtrit(t.df, 1.0 - two_sided_alpha / 2.0)) * t.se
    return t.est - half, t.est + half


def _check_margin(margin: float) -> None:
    if not (isinstance(margin, int | float) and math.isfinite(margin) and margin > 0.0):
        raise ValueError(f"margin must be a positive number, got {margin!r}")


def _check_alpha(alpha: float, name: str = "alpha", upper: float = 1.0) -> None:
    if not (isinstance(alpha, int | float) and 0.0 < alpha < upper):
        raise ValueError(f"{name} must be in (0, {upper:g}), got {alpha!r}")


def tost_paired(diffs, margin: float, alpha: float) -> tuple[float, float, float]:
    """TOST of the paired differences against ±margin: (p, low, high) with p the larger one-sided p
    and (low, high) the (1 - 2 alpha) interval; equivalent at level alpha iff p < alpha iff the
    interval lies inside (-margin, margin). (nan, nan, nan) when not testable."""
    _check_margin(margin)
    _check_alpha(alpha, upper=0.5)
    return _tost(paired_t(diffs), margin, alpha)


def tost_welch(candidate, baseline, margin: float, alpha: float) -> tuple[float, float, float]:
    """TOST of mean(candidate) - mean(baseline) with Welch's t; as `tost_paired`."""
    _check_margin(margin)
    _check_alpha(alpha, upper=0.5)
    return _tost(welch_t(candidate, baseline), margin, alpha)


def _tost(t: TStat, margin: float, alpha: float) -> tuple[float, float, float]:
    if not t.testable:
        return math.nan, math.nan, math.nan
    return (_p_tost(t, margin), *_interval(t, 2.0 * alpha))


# --- sample sizes ----------------------------------------------------------------------------


@lru_cache(maxsize=4096)
def _noncentrality(df: float, alpha: float, power: float) -> float:
    """The noncentrality at which a two-sided t-test at level alpha with df has this power."""
    from scipy.stats import nct

    crit = float(special.stdtrit(df, 1.0 - alpha / 2.0))

    # Both tails as survival functions: scipy.special.nctdtr returns nan where the lower tail
    # underflows (scipy 1.17: e.g. df = 9, nc > 8.6 at alpha 0.05), nct.sf does not.
    def gap(nc: float) -> float:
        return float(nct.sf(crit, df, nc) + nct.sf(crit, df, -nc)) - power

    hi = 2.0 * crit + 10.0
    while gap(hi) < 0.0:
        hi *= 2.0
    return float(optimize.brentq(gap, 0.0, hi, xtol=1e-12, rtol=1e-12))


def _check_power(power: float) -> None:
    _check_alpha(power, "power")


def minimum_detectable_difference(n: int, sd: float, alpha: float, power: float = POWER) -> float:
    """The smallest |true difference| a two-sided paired t-test of n pairs at level alpha detects
    with this power (exact, noncentral t); nan when n < 2 or sd is not finite."""
    _check_alpha(alpha)
    _check_power(power)
    if n < 2 or not math.isfinite(sd):
        return math.nan
    return _noncentrality(float(n - 1), float(alpha), float(power)) * sd / math.sqrt(n)


def _smallest_n(ok: Callable[[int], bool], guess: float) -> int | None:
    """The smallest n in [2, SEEDS_CAP] with ok(n), for ok monotone in n (False ... False True ...),
    searched from a guess by galloping, then bisection; None when SEEDS_CAP is not enough."""
    g = int(min(max(math.ceil(guess), 2), SEEDS_CAP))
    if ok(g):
        hi, step = g, 1
        while True:  # gallop down to a failing n; n = 1 counts as failing
            lo = max(hi - step, 1)
            if lo == 1 or not ok(lo):
                break
            hi, step = lo, step * 2
    else:
        lo, step = g, 1
        while True:  # gallop up to a passing n
            if lo >= SEEDS_CAP:
                return None
            hi = min(lo + step, SEEDS_CAP)
            if ok(hi):
                break
            lo, step = hi, step * 2
    while hi - lo > 1:  # invariant: not ok(lo), ok(hi)
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if ok(mid) else (mid, hi)
    return hi


def seeds_for_difference(diff: float, sd: float, alpha: float, power: float = POWER) -> int | None:
    """Pairs a two-sided paired t-test at level alpha needs to detect a true difference `diff` with
    this power, for paired differences of this sd (exact, noncentral t; the n that
    statsmodels' TTestPower().solve_power gives, rounded up). None when diff is 0, sd is 0 or not
    finite, or more than SEEDS_CAP pairs would be needed."""
    _check_alpha(alpha)
    _check_power(power)
    if not (math.isfinite(diff) and math.isfinite(sd)) or diff == 0.0 or sd <= 0.0:
        return None
    effect = abs(diff) / sd
    z = special.ndtri(1.0 - alpha / 2.0) + special.ndtri(power)
    return _smallest_n(lambda n: minimum_detectable_difference(n, sd, alpha, power) <= abs(diff),
                       (z / effect) ** 2)


# Gauss-Legendre nodes for the TOST power integral over the sample sd.
_GL_X, _GL_W = np.polynomial.legendre.leggauss(64)
_TAIL = 1e-14  # the sample sd's tails left out of the integral, each side


def tost_power(n: int, diff: float, sd: float, margin: float, alpha: float) -> float:
    """Exact power of the paired TOST (each one-sided test at level alpha) with n pairs, true mean
    difference `diff` and sd of the differences `sd`.

    TOST rejects iff -margin + c s/sqrt(n) < mean < margin - c s/sqrt(n), c = t_(1-alpha, n-1):
    given the sample sd s, a normal probability. With u = s / sd, (n-1) u^2 is chi^2(n-1) and
    independent of the mean, so the power is the integral of that probability over u's density, from
    u's 1e-14 quantile to where the interval closes (u = margin sqrt(n) / (c sd)) or u's upper
    1e-14 quantile; Gauss-Legendre, 64 nodes (within 3e-11 of adaptive quadrature for n = 2 ..
    100,000; the tests check it against quadrature and Monte Carlo).
    """
    if n < 2 or not sd > 0.0:
        return math.nan
    df = n - 1
    crit = float(special.stdtrit(df, 1.0 - alpha))
    lo = math.sqrt(special.chdtri(df, 1.0 - _TAIL) / df)
    hi = min(margin * math.sqrt(n) / (crit * sd), math.sqrt(special.chdtri(df, _TAIL) / df))
    if hi <= lo:
        return 0.0
    u = lo + (_GL_X + 1.0) * ((hi - lo) / 2.0)
    v = df * u * u  # chi^2(df)
    density = 2.0 * df * u * np.exp(special.xlogy(df / 2.0 - 1.0, v) - v / 2.0
                                    - df / 2.0 * math.log(2.0) - special.gammaln(df / 2.0))
    se = sd / math.sqrt(n)
    half = np.maximum(margin - crit * sd * u / math.sqrt(n), 0.0)
    inside = special.ndtr((half - diff) / se) - special.ndtr((-half - diff) / se)
    power = float(np.dot(_GL_W, inside * density) * ((hi - lo) / 2.0))
    return min(max(power, 0.0), 1.0)  # the quadrature's last digits can step past 1


def seeds_for_equivalence(diff: float, sd: float, margin: float, alpha: float,
                          power: float = POWER) -> int | None:
    """Pairs a paired TOST at level alpha needs to show equivalence within ±margin with this power
    when the true difference is `diff` (exact power, `tost_power`). None when |diff| >= margin
    (equivalence is then false), sd is 0 or not finite, or more than SEEDS_CAP would be needed."""
    _check_margin(margin)
    _check_alpha(alpha, upper=0.5)
    _check_power(power)
    if not (math.isfinite(diff) and math.isfinite(sd)) or sd <= 0.0 or abs(diff) >= margin:
        return None
    # Normal approximation for the first guess: one tail matters unless diff is near 0.
    z_beta = special.ndtri(1.0 - (1.0 - power) / 2.0) if diff == 0.0 else special.ndtri(power)
    guess = ((special.ndtri(1.0 - alpha) + z_beta) * sd / (margin - abs(diff))) ** 2
    return _smallest_n(lambda n: tost_power(n, diff, sd, margin, alpha) >= power, guess)


# --- the decisions of a look -----------------------------------------------------------------


def _holm_step(p: list[float], held: int, level: float) -> tuple[list[float], list[bool], list[float]]:
    """Holm at `level` over p plus `held` hypotheses counted with p = 1: the adjusted p, which are
    rejected, and the level each one was tested at (its step's level; the first failing step's
    level for those not rejected, so the (1 - level) interval excludes 0 iff it is rejected)."""
    m = len(p) + held
    adjusted = holm(p + [1.0] * held)[: len(p)].tolist()
    rejected = [a < level for a in adjusted]
    stop = sum(rejected) + 1  # the first step that fails
    order = sorted(range(len(p)), key=p.__getitem__)  # the held p = 1 come after all of these
    levels = [0.0] * len(p)
    for rank, i in enumerate(order, start=1):
        levels[i] = level / (m - min(rank, stop) + 1)
    return adjusted, rejected, levels


def _spending_step(p: list[float], held: int, alpha: float,
                   nominal: Callable[[int, float], float]) -> tuple[list[bool], list[float]]:
    """Holm's step-down over group-sequential tests (Maurer & Bretz 2013 with Holm's weights):
    with r hypotheses rejected so far, each open one has the share alpha / (m - r) of the family
    (m = len(p) + held, the held ones never rejected), and its look rejects when its p is below
    `nominal(i, share)`, the nominal level of its boundary at that share. The one furthest below
    its level is rejected first and passes its share on; it stops at the first step with none.
    Which are rejected, and the level each one was tested at (the failing step's for the rest)."""
    m = len(p) + held
    rejected, levels = [False] * len(p), [0.0] * len(p)
    open_ = list(range(len(p)))
    while open_:
        share = alpha / (m - sum(rejected))
        at = {i: nominal(i, share) for i in open_}
        best = min(open_, key=lambda i: p[i] / at[i] if at[i] > 0.0 else math.inf)
        if not p[best] < at[best]:
            for i in open_:
                levels[i] = at[i]
            break
        rejected[best], levels[best] = True, at[best]
        open_.remove(best)
    return rejected, levels


def _plan(t: TStat, margin: float, alpha_diff: float, alpha_tost: float,
          equivalence_from: int = 2) -> tuple[int | None, str]:
    n_diff = seeds_for_difference(t.est, t.sd, alpha_diff)
    # before TOST tests (alpha_tost 0, equivalence_from), plan it at half the difference's level
    n_eq = seeds_for_equivalence(t.est, t.sd, margin, alpha_tost if alpha_tost > 0.0 else alpha_diff / 2)
    n_eq = None if n_eq is None else max(n_eq, equivalence_from)
    options = [(n, what) for n, what in ((n_diff, "difference"), (n_eq, "equivalence")) if n is not None]
    return min(options) if options else (None, "")


def decide_tests(tests: Mapping[str, TStat], margin: float, design: Design, look: int,
                 decided: Mapping[str, Decision] | None = None, plan: bool = True,
                 counts: Mapping[str, Sequence[int]] | None = None) -> dict[str, Decision]:
    """The decisions at look `look` of the comparisons in `tests` (the ones still open), each a
    `paired_t` or a `welch_t`. `decided`: the decisions made at earlier looks; those whose null was
    not rejected keep their share of its Holm family (module docstring). `plan=False` skips
    seeds_needed and mdd (the simulations do not need them; the decisions are the same).
    `counts` (spending designs): each comparison's pairs at its looks so far, this look's last;
    by default the planned first_seeds, first_seeds + 1, ... at the earlier looks."""
    _check_margin(margin)
    if not (isinstance(look, int) and 1 <= look <= design.looks):
        raise ValueError(f"look must be an integer in 1..{design.looks}, got {look!r}")
    if design.continues is not None and look <= design.continued_after:
        # the looks of a continued study that its earlier design took: decided as they were
        return decide_tests(tests, margin, design.continues, look, decided, plan, counts)
    decided = decided or {}
    both = sorted(set(tests) & set(decided))
    if both:
        raise ValueError(f"configurations both open and decided: {both}")
    names = list(tests)
    level = design.alpha if design.spends else design.look_alpha
    if level >= 0.5:  # TOST's one-sided tests at >= 0.5 would be meaningless
        raise ValueError(f"the look's alpha must be < 0.5, got {level}")
    stats = [tests[c] for c in names]
    testable = [t.testable for t in stats]
    p_diff = [_p_two_sided(t) if ok else 1.0 for t, ok in zip(stats, testable)]
    p_eq = [_p_tost(t, margin) if ok else 1.0 for t, ok in zip(stats, testable)]
    # Before design.equivalence_from pairs TOST does not test: p = 1 keeps its share, level 0.
    early = [t.n < design.equivalence_from for t in stats]
    p_eq_tested = [1.0 if e else p for p, e in zip(p_eq, early)]
    held_diff = sum(not d.verdict.differs for d in decided.values())
    held_eq = sum(not (d.verdict == Verdict.EQUIVALENT or d.below_margin) for d in decided.values())
    if design.spends:
        counts = counts or {}
        planned = [design.first_seeds + j for j in range(look - 1)]
        seen = [list(counts[c]) if c in counts else planned + [t.n] for c, t in zip(names, stats)]
        rej_diff, a_diff = _spending_step(p_diff, held_diff, level,
                                          lambda i, share: design.nominal(share, seen[i], 2))
        rej_eq, a_eq = _spending_step(p_eq_tested, held_eq, level,
                                      lambda i, share: design.nominal(share, seen[i], 1))
        adj_diff, adj_eq = p_diff, p_eq  # compared with the levels a_diff, a_eq
    else:
        adj_diff, rej_diff, a_diff = _holm_step(p_diff, held_diff, level)
        adj_eq, rej_eq, a_eq = _holm_step(p_eq_tested, held_eq, level)
    a_eq = [0.0 if e else a for a, e in zip(a_eq, early)]

    out = {}
    for i, (c, t) in enumerate(zip(names, stats)):
        if not testable[i]:
            out[c] = Decision(Verdict.NOT_TESTED, False, t.est, math.nan, math.nan, math.nan, math.nan,
                              math.nan, math.nan, t.n, t.sd, None, "", math.nan, margin, look)
            continue
        ci = _interval(t, a_diff[i])
        tost = _interval(t, 2.0 * a_eq[i]) if a_eq[i] > 0.0 else (math.nan, math.nan)
        if rej_diff[i]:
            verdict, below = (Verdict.BETTER if t.est > 0 else Verdict.WORSE), bool(rej_eq[i])
        else:
            verdict, below = (Verdict.EQUIVALENT if rej_eq[i] else Verdict.UNDECIDED), False
        needed, needed_for, mdd = None, "", math.nan
        if plan:
            mdd = minimum_detectable_difference(t.n, t.sd, a_diff[i])
            if verdict == Verdict.UNDECIDED:
                needed, needed_for = _plan(t, margin, a_diff[i], a_eq[i], design.equivalence_from)
        out[c] = Decision(verdict, below, t.est, ci[0], ci[1], tost[0], tost[1], adj_diff[i],
                          adj_eq[i], t.n, t.sd, needed, needed_for, mdd, margin, look,
                          a_diff[i], a_eq[i])
    return out


def decide_once(tests: Mapping[str, TStat], margin: float, design: Design) -> dict[str, Decision]:
    """The decisions of one family of comparisons taken once, from whatever seeds they have (a
    study's fixed design, a claim's parts): `decide_tests` at the look the most pairs reach
    (n - first_seeds + 1, between 1 and design.looks), so that a family read at whatever look a
    study stopped keeps its error rate (Bonferroni over the looks)."""
    most = max((t.n for t in tests.values()), default=0)
    look = min(max(most - design.first_seeds + 1, 1), design.looks)
    return decide_tests(tests, margin, design, look)


def pair_test(candidate: Mapping[int, float], baseline: Mapping[int, float]) -> tuple[TStat, bool]:
    """One comparison of two configurations' per-seed values ({seed: value}, finite): paired on
    their seeds when both have the same seeds (or either has none: then not testable), else
    Welch's (a configuration an adaptive study stopped early, a seed that diverged). The t
    statistic, and whether it is paired."""
    if candidate and baseline and set(candidate) != set(baseline):
        return welch_t(list(candidate.values()), list(baseline.values())), False
    seeds = sorted(set(candidate) & set(baseline))
    return paired_t([candidate[s] - baseline[s] for s in seeds]), True


def decide_family(diffs: Mapping[str, np.ndarray], margin: float, design: Design, look: int,
                  decided: Mapping[str, Decision] | None = None, plan: bool = True,
                  pool: bool = False) -> dict[str, Decision]:
    """Decisions at look `look` for the comparisons still open: each key a configuration, each value
    its paired differences with the baseline (one per shared seed). Holm over the comparisons at
    the look's alpha (design.look_alpha), for the difference test and TOST alike; `decided` as in
    `decide_tests`; `pool` as in `run_sequential`."""
    tests, pooled = family_t(diffs, pool)
    out = decide_tests(tests, margin, design, look, decided, plan)
    return {c: replace(d, pooled=True) for c, d in out.items()} if pooled else out


def decide_unpaired(candidate, baseline, margin: float, alpha: float) -> Decision:
    """One comparison by Welch's t (a fixed design whose seeds differ between the two): look 1 of 1
    at level alpha. For several such comparisons with Holm, use decide_tests with welch_t. Its
    seeds_needed and mdd are those of n seeds each with sd = sqrt(var_c + var_b) and df = n - 1
    (the smaller group's n; the df is conservative next to Welch's)."""
    design = Design(2, 2, alpha)
    return decide_tests({"": welch_t(candidate, baseline)}, margin, design, 1)[""]


# --- the sequential loop ---------------------------------------------------------------------

# draw(configs, seeds) runs seeds `seeds` (0-based indices) of the configurations `configs`, and of
# the baseline where it has not run them yet, and returns each configuration's paired differences
# (candidate - baseline), one per seed in that order; nan where the pair is missing (a failed run).
Draw = Callable[[list[str], list[int]], Mapping[str, Sequence[float]]]


def run_sequential(draw: Draw, configs: Sequence[str], margin: float, design: Design,
                   on_look: Callable[[int, dict[str, Decision]], None] | None = None,
                   plan: bool = True, pool: bool = False) -> dict[str, Decision]:
    """The adaptive-seed study: seeds 0 .. first_seeds-1 of every configuration, then look after
    look the next seed of every configuration still open, until all are decided or the last look
    is taken. Returns the final decision of every configuration (in `configs` order); `on_look(look,
    decisions)` sees the decisions of each look (e.g. to report progress). `pool`: estimate the
    error variance from all the comparisons still open at a look (`family_t`; the caller says
    so only when the configurations share one architecture and the seed blocks; off for
    recorded designs); each decision's `pooled` says whether its look pooled."""
    _check_margin(margin)
    configs = list(configs)
    if len(set(configs)) != len(configs):
        raise ValueError(f"duplicate configurations in {configs}")
    pairs: dict[str, list[float]] = {c: [] for c in configs}
    counts: dict[str, list[int]] = {c: [] for c in configs}  # pairs at each look
    seeds_run = dict.fromkeys(configs, 0)
    final: dict[str, Decision] = {}
    todo, seeds = configs, list(range(design.first_seeds))
    for look in range(1, design.looks + 1):
        got = draw(todo, seeds)
        for c in todo:
            values = list(got[c])
            if len(values) != len(seeds):
                raise ValueError(f"draw returned {len(values)} differences for {c!r}, expected {len(seeds)}")
            pairs[c].extend(v for v in values if not math.isnan(v))
            seeds_run[c] += len(seeds)
            counts[c].append(len(pairs[c]))
        tests, pooled = family_t({c: pairs[c] for c in todo}, pool)
        decisions = decide_tests(tests, margin, design, look, final, plan=plan, counts=counts)
        if pooled:
            decisions = {c: replace(d, pooled=True) for c, d in decisions.items()}
        if on_look is not None:
            on_look(look, decisions)
        final.update({c: d for c, d in decisions.items() if is_final(d, design)})
        todo = needs_another_seed(decisions, design, seeds_run)
        if not todo:
            break
        seeds = [design.first_seeds + look - 1]
    return {c: final[c] for c in configs}


def simulate_study(rng: np.random.Generator, true_diffs: Mapping[str, float], sd: float, margin: float,
                   design: Design, plan: bool = False, df: float = math.inf) -> dict[str, Decision]:
    """One simulated sequential study through `run_sequential`: independent paired differences
    with mean true_diffs[config] and this sd, normal, or Student's t with `df` > 2 degrees of
    freedom (heavy tails) scaled to this sd."""
    if not df > 2.0:
        raise ValueError(f"df must be > 2 (a finite variance), got {df!r}")
    scale = sd if math.isinf(df) else sd * math.sqrt((df - 2.0) / df)

    def draw(configs: list[str], seeds: list[int]) -> dict[str, np.ndarray]:
        if math.isinf(df):
            return {c: rng.normal(true_diffs[c], sd, len(seeds)) for c in configs}
        return {c: true_diffs[c] + scale * rng.standard_t(df, len(seeds)) for c in configs}

    return run_sequential(draw, list(true_diffs), margin, design, plan=plan)
