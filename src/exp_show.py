"""Reading `dvc exp show --json` output (pure): nested lookups, flat params, newest run per name.

Shared by the sweep study and the search study (src/study.py, src/search_study.py).
"""

from __future__ import annotations

import math
from typing import Callable, Iterator

from src import paths


def get(data, keys):
    """``data[k1][k2]...``, or None where a level is missing or not a mapping."""
    for key in keys:
        data = data.get(key) if isinstance(data, dict) else None
    return data


def number(value) -> float:
    """A metric as a float; NaN for None, booleans and anything else that is not a number."""
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return float(value) if is_number else math.nan


def flat_params(data: dict) -> dict:
    """``{"train": {"dropout": 0.3}}`` (params.yaml in exp show) -> ``{"train.dropout": 0.3}``."""
    content = get(data, ("params", str(paths.PARAMS), "data")) or {}
    return {f"{s}.{k}": v for s, section in content.items() if isinstance(section, dict)
            for k, v in section.items()}


def metrics_of(data: dict) -> dict:
    """reports/evaluate/metrics.json of an experiment ({} when it has none)."""
    return get(data, ("metrics", str(paths.METRICS), "data")) or {}


def newest_experiments(shown: list, wanted: Callable[[str], bool]) -> Iterator[tuple[str, dict, dict]]:
    """(name, head rev entry, the commit's flat params) of every experiment whose name ``wanted``
    accepts; a name listed under several commits (``exp show -A``) gives only its newest run."""
    found: dict[str, tuple[str, dict, dict]] = {}
    for commit in shown:
        if commit.get("rev") == "workspace":
            continue
        defaults = flat_params(commit.get("data") or {})
        for exp in commit.get("experiments") or []:
            head = exp["revs"][0]
            name = exp.get("name") or head.get("name") or ""
            if not wanted(name):
                continue
            if name in found and timestamp(found[name][1]) >= timestamp(head):
                continue
            found[name] = (name, head, defaults)
    yield from found.values()


def timestamp(head: dict) -> str:
    return head.get("timestamp") or (head.get("data") or {}).get("timestamp") or ""
