"""Experiments carried over from a committed study: what ran on an earlier commit, or on another
machine, counts as run while nothing that makes its numbers has changed since.

DVC keeps an experiment as a git ref of the clone that ran it: a fresh clone, a new machine or a
new commit on main sees none of them, and `sweep run` would train them all again. A study's
committed reports/study/<sweep>/experiments.csv keeps every experiment's outcome and the commit it
ran from (column ``baseline``). `sweep run` (fixed seeds or --until-decided) counts such a row as
done, and `python -m src.study` reports it, when that commit and the working tree agree on
everything the numbers come from (:func:`fingerprint`):

- the project sources of the stages that make metrics.json (the ``.py`` deps of prepare, train
  and evaluate in dvc.yaml) and dvc.yaml's stages themselves;
- params.yaml (the defaults) and requirements.txt (the pinned libraries);
- the sweep's own grid, configs and fixed values in sweeps.yaml (not its description, baseline or
  design: they change no experiment).

A change to any of them carries nothing over: those experiments run again. Neither does a row
without a baseline (a study written before the column existed) nor one whose commit this clone
lacks. An experiment of the current commit always takes precedence over a carried row.

Not compared: the machine. Another CPU rounds differently, so the same seed gives another draw, as
a new seed would; the statistics treat it as they treat seeds, and the ``host`` column says where
each experiment ran.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import subprocess
from collections.abc import Callable, Collection
from pathlib import Path

import yaml

from src.core import paths
from src.core.status import Status, parse
from src.experiments.exp_show import Outcome

STAGES = ("prepare", "train", "evaluate")  # the stages whose outputs make metrics.json
PIPELINE = Path("dvc.yaml")
REQUIREMENTS = Path("requirements.txt")
SWEEP_KEYS = ("grid", "configs", "fixed")  # what a sweep's experiments are made of
BASELINE = "baseline"  # experiments.csv's column: the commit an experiment ran from
EXPERIMENTS = "experiments.csv"

Reader = Callable[[Path], str | None]  # a file's text as some tree has it; None if absent


def read_workspace(path: Path) -> str | None:
    try:
        return path.read_text()
    except (FileNotFoundError, IsADirectoryError):
        return None


def read_commit(commit: str) -> Reader:
    """A reader of ``commit``'s files (`git show`); every file is absent if the clone lacks it."""
    def read(path: Path) -> str | None:
        shown = subprocess.run(["git", "show", f"{commit}:{path.as_posix()}"],
                               capture_output=True, text=True)
        return shown.stdout if shown.returncode == 0 else None
    return read


def _yaml(text: str | None):
    try:
        return yaml.safe_load(text) if text is not None else None
    except yaml.YAMLError:
        return None


def fingerprint(read: Reader, sweep: str) -> str | None:
    """A digest of everything the numbers of ``sweep``'s experiments come from, in the tree that
    ``read`` reads; None when that tree has no dvc.yaml or no such sweep."""
    pipeline, sweeps = _yaml(read(PIPELINE)), _yaml(read(paths.SWEEPS))
    spec = sweeps.get(sweep) if isinstance(sweeps, dict) else None
    if not isinstance(pipeline, dict) or not isinstance(spec, dict):
        return None
    stages = {name: (pipeline.get("stages") or {}).get(name) for name in STAGES}
    sources = sorted({str(dep) for stage in stages.values() for dep in (stage or {}).get("deps") or []
                      if str(dep).endswith(".py")})
    parts = {"stages": stages, "params": _yaml(read(paths.PARAMS)),
             "requirements": read(REQUIREMENTS),
             "sweep": {key: spec.get(key) for key in SWEEP_KEYS},
             "sources": {path: read(Path(path)) for path in sources}}
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def committed_rows(sweep: str) -> list[dict[str, str]]:
    """The rows of the sweep's experiments.csv in the working tree ([] if it has none, or no
    ``baseline`` column)."""
    path = paths.STUDY_REPORTS / sweep / EXPERIMENTS
    try:
        with path.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
    except FileNotFoundError:
        return []
    return rows if rows and BASELINE in rows[0] else []


def carried_rows(sweep: str, live: Collection[str],
                 read_here: Reader = read_workspace) -> list[dict[str, str]]:
    """The committed rows of ``sweep`` that count as run: not failed, not among the ``live``
    experiments (the current commit's that did not fail), and run from a commit whose
    :func:`fingerprint` is the working tree's."""
    rows = committed_rows(sweep)
    here = fingerprint(read_here, sweep) if rows else None
    if here is None:
        return []
    same: dict[str, bool] = {}
    kept = []
    for row in rows:
        commit = row.get(BASELINE) or ""
        if not commit or row.get("name") in live or parse(row.get("state")) == Status.FAILED:
            continue
        if commit not in same:
            same[commit] = fingerprint(read_commit(commit), sweep) == here
        if same[commit]:
            kept.append(row)
    return kept


def _number(text: str | None) -> float | None:
    try:
        value = float(text) if text else math.nan
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def outcomes(sweep: str, live: dict[str, Outcome]) -> dict[str, Outcome]:
    """``live`` (the current commit's outcomes) with the carried experiments of ``sweep`` added
    where the current commit has none that succeeded."""
    done = {name for name, outcome in live.items() if outcome.state != Status.FAILED}
    carried = {row["name"]: Outcome(row["name"], parse(row["state"]), _number(row.get("cv_accuracy")),
                                    _number(row.get("train_seconds")))
               for row in carried_rows(sweep, done)}
    return live | carried
