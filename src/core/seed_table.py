"""One table of per-seed values, {configuration: {seed: value}}, read by every decision: the
runner's `sweep run --until-decided` (src/experiments/adaptive.py), a sweep's study
(src/studies/sweep_study.py) and the claims (src/studies/claim_decisions.py). Three builders of
"the same" table are three chances to disagree (docs/STYLE lesson 21); this is the one.

An experiment comes in as a :class:`Run` (the runner's exp-show outcomes and a study's
experiments table alike: :func:`runs_of_frame` here, the outcomes' adapter in adaptive.py). The
one rule, per (configuration, seed):

    failed               left out: no result; it is queued again, so the seed counts as not run
    diverged, pruned     NaN: it ran, and has no value (the sequential design does not wait for
                         it, and no statistic uses it); a diverged run is chance accuracy
                         (CHANCE) instead where a claim says `diverged: chance`
    usable               its value of the metric (NaN if it has none)
    not there            absent
    several runs         the newest (by timestamp; in the order given where they tie) wins

The metric (:func:`chosen_metric`): the one asked for, but CV accuracy where a usable experiment
lacks it (one that ran before the selection set existed): one table compares one metric.
Statistics read :func:`finite` of the table (the NaN of the diverged and pruned left out).
Pure functions, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from src.core.params import N_CLASSES
from src.core.status import Status, parse

CV_METRIC = "cv_accuracy"  # what every experiment has: CV validation accuracy, mean over folds
CHANCE = 1.0 / N_CLASSES  # the accuracy of a guess: a diverged run's value where a claim asks


@dataclass(frozen=True)
class Run:
    """One experiment as the table reads it."""

    config: str
    seed: int
    state: Status
    values: Mapping[str, float | None] = field(default_factory=dict)  # metric -> value
    timestamp: str = ""  # orders several runs of one (config, seed): the newest wins

    def __post_init__(self):
        object.__setattr__(self, "state", parse(self.state))  # a plain word becomes a Status

    def value(self, metric: str) -> float:
        """Its value of ``metric``; NaN where it has none."""
        v = self.values.get(metric)
        return float(v) if v is not None and math.isfinite(float(v)) else math.nan

    @property
    def usable(self) -> bool:
        """A usable state with a CV accuracy (src.core.status.usable's rule)."""
        return self.state.usable and math.isfinite(self.value(CV_METRIC))


def runs_of_frame(frame, metrics: Iterable[str] = (CV_METRIC,)) -> list[Run]:
    """The rows of an experiments table (columns ``config``, ``seed``, ``state``, the metrics,
    optionally ``timestamp``) as runs; an unknown state word counts as failed."""
    if frame is None or len(frame) == 0:
        return []
    metrics = [m for m in dict.fromkeys([CV_METRIC, *metrics]) if m in frame]
    stamps = frame["timestamp"].fillna("").astype(str).tolist() if "timestamp" in frame \
        else [""] * len(frame)
    columns = [frame[m].tolist() for m in metrics]
    return [Run(str(config), int(seed), parse(state),
                {m: _number(col[i]) for m, col in zip(metrics, columns)}, stamps[i])
            for i, (config, seed, state) in enumerate(zip(frame["config"], frame["seed"],
                                                          frame["state"]))]


def _number(value) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def chosen_metric(runs: Iterable[Run], wanted: str = CV_METRIC) -> str:
    """``wanted``, but CV accuracy where some usable run lacks it, or none is usable."""
    ok = [r for r in runs if r.usable]
    has_all = bool(ok) and all(math.isfinite(r.value(wanted)) for r in ok)
    return wanted if wanted == CV_METRIC or has_all else CV_METRIC


def by_seed(runs: Iterable[Run], metric: str = CV_METRIC,
            diverged_as_chance: bool = False) -> dict[str, dict[int, float]]:
    """{config: {seed: value}} by the module's rule (failed left out, diverged or pruned NaN, or
    a diverged run at CHANCE with ``diverged_as_chance``; the newest run of a seed wins), of
    ``metric`` (:func:`chosen_metric`)."""
    runs = list(runs)
    metric = chosen_metric(runs, metric)
    out: dict[str, dict[int, float]] = {}
    for run in sorted(runs, key=lambda r: r.timestamp):  # stable: ties keep their order
        if run.state == Status.FAILED:
            continue
        if diverged_as_chance and run.state == Status.DIVERGED:
            value = CHANCE
        else:
            value = run.value(metric) if run.state.usable else math.nan
        out.setdefault(run.config, {})[run.seed] = value
    return out


def finite(values: Mapping[str, Mapping[int, float]]) -> dict[str, dict[int, float]]:
    """The table without its NaN (diverged and pruned runs): the values statistics use."""
    return {c: {s: v for s, v in seeds.items() if math.isfinite(v)} for c, seeds in values.items()}
