"""Group-sequential boundaries from an alpha-spending function (Lan & DeMets 1983).

A test that looks at its data K times, at information fractions 0 < t_1 < ... < t_K <= 1 (here
t = seeds / max_seeds), spends its level a bit by bit: by fraction t it may have rejected a true
null with probability at most a*(t), a non-decreasing spending function with a*(1) = a. The
boundary c_k of look k (on the z scale) is the one whose first crossing at look k has
probability a*(t_k) - a*(t_{k-1}) under the null, given no crossing before; the looks need not
be planned in advance nor equally spaced, only their fractions known when they come.

Spending functions, each side of the test spending its own level a (Lan & DeMets 1983; Kim &
DeMets 1987; the forms of R's ldbounds and gsDesign's sfLDOF / sfLDPocock):
- "obrien_fleming": a*(t) = 2 - 2 Phi(z_(1 - a/2) / sqrt(t)): almost nothing early, close to the
  fixed test's level at the end.
- "pocock": a*(t) = a ln(1 + (e - 1) t): nearly the same nominal level at every look.
A two-sided test at level alpha spends a = alpha / 2 on each side with symmetric boundaries
(K = 5 equal looks, alpha 0.05, O'Brien-Fleming type: 4.877, 3.357, 2.680, 2.290, 2.031); a
one-sided test at level a spends a on its one side (each of TOST's two tests).

The crossing probabilities come from the recursive numerical integration of Armitage, McPherson
& Rowe (1969) in the form of Jennison & Turnbull (2000, ch. 19): the density of Z_k on the
continuation region, carried from look to look on their grid of 6r - 1 points (r = 18; denser in
the middle, logarithmically spaced tails) with Simpson's rule, accurate to about 1e-6 in a
probability. tests/test_decide.py checks it against the published classical boundaries (Pocock
2.413 at every look, O'Brien-Fleming 2.040 at the last, K = 5, alpha 0.05; Jennison & Turnbull
Tables 2.1 and 2.3), the Lan-DeMets values above and a Monte Carlo of Brownian motion.

Why not a library: in Python, gsdesign (0.1.x, alpha status) has only the integration grid, no
spending functions or boundary search; spotify-confidence's solver knows only power-family
spending and pins pandas < 3, chartify and ipywidgets. R's gsDesign and rpact are the reference.

References: K. K. G. Lan & D. L. DeMets (1983), Discrete sequential boundaries for clinical
trials, Biometrika 70:659-663. K. Kim & D. L. DeMets (1987), Design and analysis of group
sequential tests based on the type I error spending rate function, Biometrika 74:149-154.
P. Armitage, C. K. McPherson & B. C. Rowe (1969), Repeated significance tests on accumulating
data, J. R. Statist. Soc. A 132:235-244. C. Jennison & B. W. Turnbull (2000), Group Sequential
Methods with Applications to Clinical Trials, Chapman & Hall.

Pure functions, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from scipy import optimize, special

SPENDING = ("obrien_fleming", "pocock")
R = 18  # Jennison & Turnbull's grid parameter: 6r - 1 points per look
_BIG = 40.0  # a boundary beyond this many sd spends nothing a float can hold


def spent(method: str, a: float, t: float) -> float:
    """The level one side of the test has spent by information fraction t (0 < t <= 1)."""
    if not 0.0 < t <= 1.0:
        raise ValueError(f"information fraction must be in (0, 1], got {t!r}")
    if t == 1.0:
        return a  # exactly, so that a single look at the full information is the fixed test
    if method == "obrien_fleming":
        return float(2.0 * special.ndtr(-special.ndtri(1.0 - a / 2.0) / math.sqrt(t)))
    if method == "pocock":
        return a * math.log1p((math.e - 1.0) * t)
    raise ValueError(f"spending method must be one of {', '.join(SPENDING)}, got {method!r}")


def _grid(lo: float, hi: float, r: int = R) -> tuple[np.ndarray, np.ndarray]:
    """Jennison & Turnbull's (2000, sec. 19.2) points and Simpson weights on (lo, hi), z scale."""
    i = np.arange(1, 6 * r, dtype=float)
    x = np.where(i < r, -3.0 - 4.0 * np.log(r / i),
                 np.where(i <= 5 * r, -3.0 + 3.0 * (i - r) / (2.0 * r),
                          3.0 + 4.0 * np.log(r / np.maximum(6.0 * r - i, 1.0))))
    inner = x[(x > lo) & (x < hi)]
    x = np.r_[[lo] if lo > x[0] else [], inner, [hi] if hi < x[-1] else []]
    z = np.empty(2 * x.size - 1)
    z[0::2], z[1::2] = x, (x[:-1] + x[1:]) / 2.0
    d = np.diff(x)
    w = np.zeros(z.size)
    w[0::2][:-1] += d / 6.0
    w[0::2][1:] += d / 6.0
    w[1::2] = 4.0 * d / 6.0
    return z, w


def _region(c: float, sides: int) -> tuple[float, float]:
    return (-c if sides == 2 else -math.inf), c


class _Density:
    """The sub-density of Z_k on the continuation region of looks 1..k (no crossing yet), on a
    grid: `mass` = weight x density at each point `z`."""

    def __init__(self, z: np.ndarray, mass: np.ndarray, t: float, r: int):
        self.z, self.mass, self.t, self.r = z, mass, t, r

    @classmethod
    def first(cls, c: float, t: float, sides: int, r: int) -> _Density:
        z, w = _grid(*_region(c, sides), r)
        return cls(z, w * np.exp(-z * z / 2.0) / math.sqrt(2.0 * math.pi), t, r)

    def crossing(self, c: float, t: float, sides: int) -> float:
        """P(no crossing at the earlier looks, then |Z| > c at fraction t) (Z > c one-sided)."""
        s = math.sqrt(t - self.t)
        at = self.z * math.sqrt(self.t)
        p = np.dot(self.mass, special.ndtr((at - c * math.sqrt(t)) / s))
        if sides == 2:
            p += np.dot(self.mass, special.ndtr((-c * math.sqrt(t) - at) / s))
        return float(p)

    def next(self, c: float, t: float, sides: int) -> _Density:
        """The density at fraction t on the continuation region of boundary c."""
        z, w = _grid(*_region(c, sides), self.r)
        s = math.sqrt(t - self.t)
        kernel = np.exp(-((z[:, None] * math.sqrt(t) - self.z[None, :] * math.sqrt(self.t)) / s) ** 2
                        / 2.0) * (math.sqrt(t) / (s * math.sqrt(2.0 * math.pi)))
        return _Density(z, w * (kernel @ self.mass), t, self.r)


def _check_fractions(fractions: Sequence[float]) -> tuple[float, ...]:
    t = tuple(float(f) for f in fractions)
    if not t or not all(0.0 < f <= 1.0 for f in t) or any(b <= a for a, b in zip(t, t[1:])):
        raise ValueError(f"information fractions must increase within (0, 1], got {list(t)}")
    return t


def _check_sides(sides: int) -> None:
    if sides not in (1, 2):
        raise ValueError(f"sides must be 1 or 2, got {sides!r}")


def exit_probabilities(bounds: Sequence[float], fractions: Sequence[float], sides: int = 2,
                       r: int = R) -> np.ndarray:
    """Under the null, the probability that the first crossing of the z boundaries `bounds` is at
    each look (|Z_k| > c_k two-sided, Z_k > c_k one-sided); their sum is the test's level."""
    t = _check_fractions(fractions)
    _check_sides(sides)
    if len(bounds) != len(t):
        raise ValueError(f"{len(bounds)} boundaries for {len(t)} looks")
    out = [sides * float(special.ndtr(-bounds[0]))]
    density = _Density.first(bounds[0], t[0], sides, r)
    for k in range(1, len(t)):
        out.append(density.crossing(bounds[k], t[k], sides))
        if k + 1 < len(t):
            density = density.next(bounds[k], t[k], sides)
    return np.array(out)


def _solve(density: _Density, t: float, sides: int, target: float) -> float:
    """The boundary at fraction t whose crossing probability (after `density`) is `target`."""
    if target <= 0.0:
        return math.inf
    lo = 0.0 if sides == 2 else -_BIG

    def gap(c: float) -> float:
        return density.crossing(c, t, sides) - target

    if gap(lo) <= 0.0:  # more to spend than the paths still open: reject them all
        return lo
    if gap(_BIG) >= 0.0:
        return _BIG
    return float(optimize.brentq(gap, lo, _BIG, xtol=1e-12, rtol=1e-12))


@lru_cache(maxsize=65536)
def boundaries(method: str, a: float, fractions: tuple[float, ...], sides: int = 2,
               r: int = R) -> tuple[float, ...]:
    """The z boundary of each look for spending function `method` at level `a` per side, looks at
    these information fractions: c_k with P(first crossing at look k) = sides x (a*(t_k) -
    a*(t_(k-1))). inf where a look spends nothing. `r`: the grid's density (module docstring)."""
    t = _check_fractions(fractions)
    _check_sides(sides)
    if not 0.0 < a < 0.5:
        raise ValueError(f"the level per side must be in (0, 0.5), got {a!r}")
    spend = [spent(method, a, f) for f in t]
    c = [float(-special.ndtri(spend[0]))]
    density = _Density.first(c[0], t[0], sides, r)
    for k in range(1, len(t)):
        c.append(_solve(density, t[k], sides, sides * (spend[k] - spend[k - 1])))
        if k + 1 < len(t):
            density = density.next(min(c[k], _BIG), t[k], sides)
    return tuple(c)


def nominal_levels(method: str, a: float, fractions: tuple[float, ...], sides: int = 2) -> tuple[float, ...]:
    """The nominal level of each look: the fixed-sample p-value (two-sided, or one-sided) at which
    look k's boundary rejects. Look 1's is exactly what it spends (sides x a*(t_1))."""
    c = boundaries(method, a, fractions, sides)
    first = sides * spent(method, a, fractions[0])
    return (first, *(sides * float(special.ndtr(-x)) for x in c[1:]))


# --- the boundaries of the t statistics themselves ---------------------------------------------
#
# The z boundaries above assume a known variance. A seed study estimates it afresh at every look
# from its 2-9 df, and the joint law of its sequential t statistics is not that of the z's:
# holding the t statistics to the z boundaries' nominal levels lets through more than a
# (0.057 and 0.063 for O'Brien-Fleming and Pocock at alpha 0.05 over 3-10 seeds). Under the
# null, the sequential t statistics of normal differences have a joint law free of the mean
# and the sd, fixed by the counts of the looks alone, so the boundaries can be found for them
# directly: T_PATHS paths of the sequential t statistics of max_seeds standard normal values
# (a fixed seed, so the boundaries are reproducible), and at each look the threshold that the
# paths still open cross with the look's share of the spending function, a*(t_k) - a*(t_(k-1)),
# counted on the cumulative spend so nothing is lost to rounding. The first look needs no
# simulation: its t has exactly Student's law, so its nominal level is exactly what it spends.
# The Monte Carlo error of a boundary's cumulative level is sqrt(a (1 - a) / T_PATHS), 0.0003 at
# a = 0.05; tests/test_spending.py checks the levels on fresh paths.
T_PATHS = 2**19
T_SEED = 31  # issue 31


def _check_counts(counts: Sequence[int], max_seeds: int) -> tuple[int, ...]:
    c = tuple(int(n) for n in counts)
    if not c or c[0] < 2 or c[-1] > max_seeds or any(b <= a for a, b in zip(c, c[1:])):
        raise ValueError(f"look counts must increase within 2..max_seeds ({max_seeds}), got {list(c)}")
    return c


@lru_cache(maxsize=4)
def t_paths(max_seeds: int, paths: int = T_PATHS, seed: int = T_SEED) -> np.ndarray:
    """(paths, max_seeds) float32: column n - 1 is the one-sample t statistic of the first n of
    max_seeds independent standard normal values (column 0, n = 1, is nan): paths of the
    sequential t statistics of a seed study under the null."""
    rng = np.random.default_rng(seed)
    out = np.empty((paths, max_seeds), np.float32)
    n = np.arange(1, max_seeds + 1, dtype=float)
    chunk = 2**15
    for start in range(0, paths, chunk):
        x = rng.standard_normal((min(chunk, paths - start), max_seeds))  # (chunk, max_seeds)
        mean = np.cumsum(x, axis=1) / n
        with np.errstate(invalid="ignore", divide="ignore"):
            var = (np.cumsum(x * x, axis=1) - n * mean * mean) / (n - 1.0)
            out[start:start + x.shape[0]] = mean / np.sqrt(var / n)
    return out


@lru_cache(maxsize=64)
def _t_looks(method: str, a: float, counts: tuple[int, ...], max_seeds: int,
             sides: int) -> tuple[tuple[float, ...], np.ndarray, int]:
    """The boundaries (|t| or t) of the looks `counts`, the paths still open after the last,
    and how many paths have crossed: built look by look on the boundaries of the looks before."""
    spend = sides * spent(method, a, counts[-1] / max_seeds)
    paths = t_paths(max_seeds)
    column = paths[:, counts[-1] - 1]
    stat = np.abs(column) if sides == 2 else column
    if len(counts) == 1:  # exactly Student's t
        c = float(special.stdtrit(counts[0] - 1, 1.0 - spend / sides))
        open_ = stat <= c
        return (c,), open_, int(paths.shape[0] - open_.sum())
    bounds, open_, crossed = _t_looks(method, a, counts[:-1], max_seeds, sides)
    m = int(round(spend * paths.shape[0])) - crossed  # paths this look rejects
    alive = np.sort(stat[open_])[::-1]
    if m <= 0:  # none: at the largest open path (a level just above 0, so intervals stay finite)
        c = float(alive[0]) if alive.size else math.inf
    elif m >= alive.size:
        c = -math.inf
    else:  # between the m-th and the (m+1)-th largest: exactly m of the open paths cross
        c = (float(alive[m - 1]) + float(alive[m])) / 2.0
    still = open_ & (stat <= c)
    return (*bounds, c), still, int(paths.shape[0] - still.sum())


@lru_cache(maxsize=65536)
def t_nominal_levels(method: str, a: float, counts: tuple[int, ...], max_seeds: int,
                     sides: int = 2) -> tuple[float, ...]:
    """The nominal level of each look of a sequential t-test whose looks have `counts` pairs
    (df = count - 1) of at most max_seeds, for spending function `method` at level `a` per side:
    the fixed-sample p-value (two-sided, or one-sided) below which look k rejects, found for the
    sequential t statistics themselves (above). Look 1's is exactly what it spends."""
    _check_sides(sides)
    c = _check_counts(counts, max_seeds)
    if not 0.0 < a < 0.5:
        raise ValueError(f"the level per side must be in (0, 0.5), got {a!r}")
    bounds = _t_looks(method, a, c, max_seeds, sides)[0]
    first = sides * spent(method, a, c[0] / max_seeds)
    rest = (min(1.0, sides * float(special.stdtr(n - 1, -b))) for n, b in zip(c[1:], bounds[1:]))
    return (first, *rest)
