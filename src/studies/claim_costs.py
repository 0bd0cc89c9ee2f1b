"""What each claim's verdict cost (pure: the studies' tables come in as DataFrames): the
experiments its parts read, their fold-epochs and training hours, per claim and over all claims
(an experiment read by several claims counted once). src/studies/claims_report.py shows them.

An experiment is read by a claim when it ran a configuration one of its parts compares (every run
of it: failed and diverged ones cost compute too); an ANOVA term, an LR range test or a grid arm
reads every configuration of its sweep; a search arm reads the first N trials of each replicate
search. Fold-epochs are experiments.csv's `fold_epochs` (trials.csv's `epochs`): the epochs
trained, summed over the folds. Training hours are `train_seconds` / 3600: the wall time of the
training loops (epochs with their validation), summed over folds and experiments; how many
threads each experiment used is not recorded, so they are not CPU-hours. Studies committed before
these columns existed have none: such experiments are counted, their cost shown as unrecorded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from src.experiments import claim_spec
from src.experiments.claim_spec import Claim
from src.studies.claim_decisions import Studies

Key = tuple[str, str, str]  # (study, experiment or trial name, its commit)


@dataclass(frozen=True)
class Cost:
    """Experiments by key -> (fold-epochs, training seconds), NaN where not recorded."""
    experiments: dict[Key, tuple[float, float]] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return len(self.experiments)

    @property
    def fold_epochs(self) -> float:
        return math.fsum(e for e, _ in self.experiments.values() if math.isfinite(e))

    @property
    def train_hours(self) -> float:
        return math.fsum(s for _, s in self.experiments.values() if math.isfinite(s)) / 3600

    @property
    def unrecorded(self) -> int:
        """Experiments whose training time is not recorded (studies from before it was)."""
        return sum(not math.isfinite(s) for _, s in self.experiments.values())

    def __or__(self, other: Cost) -> Cost:
        return Cost(self.experiments | other.experiments)


def _number(value) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return math.nan
    return value if math.isfinite(value) else math.nan


def _rows(study: str, frame: pd.DataFrame | None, epochs: str) -> dict[Key, tuple[float, float]]:
    if frame is None or frame.empty:
        return {}
    out = {}
    for _, row in frame.iterrows():
        key = (study, str(row["name"]), str(row.get("rev", "")))
        out[key] = (_number(row.get(epochs)), _number(row.get("train_seconds")))
    return out


def claim_cost(claim: Claim, claims: claim_spec.Claims, studies: Studies) -> Cost:
    """The experiments ``claim``'s parts read, with what they cost (module docstring)."""
    found: dict[Key, tuple[float, float]] = {}
    frame = studies.experiments.get(claim.study)
    whole = {claim.study} if any(p.kind in ("term", "lr_range") for p in claim.parts) else set()
    labels = {label for p in claim.parts for label in p.labels}
    if frame is not None and not frame.empty and claim.study not in whole:
        found |= _rows(claim.study, frame[frame["config"].astype(str).isin(labels)], "fold_epochs")
    for part in claim.parts:
        for best in (part.best_a, part.best_b):
            if best is None:
                continue
            if best.kind == "grid":
                whole.add(best.study)
                continue
            for search in claims.search_sets.get(best.study, ()):
                trials = studies.trials.get(search.name)
                if trials is not None and not trials.empty:
                    found |= _rows(search.name, trials[trials["trial"] < best.trials], "epochs")
    for name in whole:
        found |= _rows(name, studies.experiments.get(name), "fold_epochs")
    return Cost(found)


def total_cost(costs: list[Cost]) -> Cost:
    """Every claim's experiments, each counted once."""
    out = Cost()
    for cost in costs:
        out = out | cost
    return out
