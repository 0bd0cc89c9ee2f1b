"""Reading `dvc exp show --json` output (pure): nested lookups, flat params, the newest run per
name, and each experiment's outcome (its status, CV and selection accuracy).

Shared by sweeps, searches and both kinds of study.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

from src.core import identity, paths
from src.core.status import Status, parse


def get(data, keys):
    """``data[k1][k2]...``, or None where a level is missing or not a mapping."""
    for key in keys:
        data = data.get(key) if isinstance(data, dict) else None
    return data


def number(value) -> float:
    """A metric as a float; NaN for None, booleans and anything else that is not a number."""
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return float(value) if is_number else math.nan


def params_of(data: dict) -> dict:
    """An experiment's params.yaml content in exp show ({} when it has none)."""
    return get(data, ("params", str(paths.PARAMS), "data")) or {}


def flat_params(data: dict) -> dict:
    """An experiment's params in exp show as :func:`flatten` makes them."""
    return flatten(params_of(data))


def flatten(content: dict) -> dict:
    """``{"train": {"dropout": 0.3}}`` (params.yaml content) -> ``{"train.dropout": 0.3}``."""
    return {f"{s}.{k}": v for s, section in content.items() if isinstance(section, dict)
            for k, v in section.items()}


def metrics_of(data: dict) -> dict:
    """reports/evaluate/metrics.json of an experiment ({} when it has none)."""
    return get(data, ("metrics", str(paths.METRICS), "data")) or {}


class Found(NamedTuple):
    name: str
    head: dict      # the experiment's newest rev entry
    defaults: dict  # its commit's flat params
    baseline: str   # the commit it ran from


def newest_experiments(shown: list, wanted: Callable[[str], bool]) -> Iterator[Found]:
    """Every experiment whose name ``wanted`` accepts; a name listed under several commits
    (``exp show -A``) gives only its newest run."""
    found: dict[str, Found] = {}
    for commit in shown:
        if commit.get("rev") == "workspace":
            continue
        defaults = flat_params(commit.get("data") or {})
        for exp in commit.get("experiments") or []:
            head = exp["revs"][0]
            name = exp.get("name") or head.get("name") or ""
            if not wanted(name):
                continue
            if name in found and timestamp(found[name].head) >= timestamp(head):
                continue
            found[name] = Found(name, head, defaults, str(commit.get("rev") or ""))
    yield from found.values()


def timestamp(head: dict) -> str:
    return head.get("timestamp") or (head.get("data") or {}).get("timestamp") or ""


@dataclass(frozen=True)
class Outcome:
    name: str
    state: Status  # metrics.json's status; FAILED when the experiment has none
    cv_accuracy: float | None
    train_seconds: float | None = None  # the training loops' time over the folds (metrics.json)
    train_samples: float | None = None  # training images seen: fold-epochs x images per fold
    identity: str | None = None  # what makes its numbers (src/core/identity.py); None if unknown
    selection_accuracy: float | None = None  # the fold models' mean on the selection set

    def __post_init__(self):
        object.__setattr__(self, "state", parse(self.state))  # a plain word becomes a Status


def outcomes(shown: list) -> dict[str, Outcome]:
    """Experiments of the current commit in `dvc exp show --json`, by name."""
    found = {}
    for rev in shown:
        if rev.get("rev") == "workspace":
            continue
        for exp in rev.get("experiments") or []:
            head = exp["revs"][0]
            name = exp.get("name") or head.get("name")
            if not name:
                continue
            ident = identity.of_or_none(params_of(head.get("data") or {}))
            if head.get("error"):
                found[name] = Outcome(name, Status.FAILED, None, identity=ident)
                continue
            metrics = ((head.get("data") or {}).get("metrics") or {}).get(str(paths.METRICS), {})
            data = metrics.get("data") or {}
            cv = ((data.get("cv") or {}).get("val_accuracy") or {}).get("mean")
            cost = data.get("time") or {}
            found[name] = Outcome(name, parse(data.get("status")), cv,
                                  cost.get("train_seconds"), train_samples(head, cost), ident,
                                  get(data, ("selection", "accuracy", "mean")))
    return found


def train_samples(head: dict, cost: dict) -> float | None:
    """Training images an experiment's folds saw: fold-epochs x (k - 1) / k of the subset."""
    prepare = ((((head.get("data") or {}).get("params") or {}).get(str(paths.PARAMS)) or {})
               .get("data") or {}).get("prepare") or {}
    size, folds, epochs = prepare.get("train_size"), prepare.get("cv_folds"), cost.get("epochs")
    if not (size and folds and epochs):
        return None
    return epochs * size * (folds - 1) / folds


