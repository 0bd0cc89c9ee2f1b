"""Experiments carried over from a committed study: what ran on an earlier commit, or on another
machine, counts as run while nothing that makes its numbers differs from what is asked now.

DVC keeps an experiment as a git ref of the clone that ran it: a fresh clone, a new machine or a
new commit on main sees none of them, and `sweep run` would train them all again. A study's
committed reports/study/<sweep>/experiments.csv keeps every experiment's outcome, its identity
(column ``identity``: a digest of its effective params, src/core/identity.py) and the commit it
ran from (column ``baseline``). A committed row counts as run for an experiment asked now (by
`sweep run`, fixed seeds or --until-decided, and by `python -m src.study`) when

- its identity is the asked experiment's: the same params, params.yaml's defaults, the sweep's
  configuration and every ``--set`` applied (matching is by identity, never by name); and
- its commit's code makes the numbers the working tree's makes (:func:`same_code`): at once when
  the two agree on the text of that code (:func:`fingerprint`: the ``.py`` deps of the stages
  prepare, train and evaluate in dvc.yaml, those stages themselves, and requirements.txt);
  otherwise when a canary of each of the commit's configurations gives bit-identical numbers on
  both codes (src/experiments/canary.py). So a comment, a refactor or a new metric in `evaluate`
  keeps a committed study's evidence, and a change that moves the numbers drops it.

A row without an ``identity`` (a study written before the column existed) gets the identity of
its configuration and seed on its own commit's params.yaml and sweeps.yaml, as it ran: no
committed study was run with ``--set`` before the column existed. A row with an empty ``baseline``
(nine studies were committed so) is taken to have run from :func:`inferred_baseline`, and the
canary checks that commit's code as any other's. A row whose commit this clone lacks, or whose
configuration that commit's sweeps.yaml does not define, is not carried. An
experiment of the current commit always takes precedence over a carried row of the same identity.

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
import sys
from collections.abc import Callable, Collection
from pathlib import Path

import yaml

from src.core import identity, params, paths
from src.core.errors import TunelabError
from src.core.status import Status, parse
from src.experiments import sweep_spec
from src.experiments.exp_show import Outcome

STAGES = ("prepare", "train", "evaluate")  # the stages whose outputs make metrics.json
PIPELINE = Path("dvc.yaml")
REQUIREMENTS = Path("requirements.txt")
BASELINE = "baseline"  # experiments.csv's column: the commit an experiment ran from
IDENTITY = "identity"  # experiments.csv's column: what made its numbers (src/core/identity.py)
EXPERIMENTS = "experiments.csv"
DESIGN = "design.json"  # an adaptive study's design, beside its report

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


def fingerprint(read: Reader) -> str | None:
    """A digest of the code the numbers come from, in the tree that ``read`` reads (the stages
    that make metrics.json, their ``.py`` deps, requirements.txt); None when it has no dvc.yaml."""
    pipeline = _yaml(read(PIPELINE))
    if not isinstance(pipeline, dict):
        return None
    stages = {name: (pipeline.get("stages") or {}).get(name) for name in STAGES}
    sources = sorted({str(dep) for stage in stages.values() for dep in (stage or {}).get("deps") or []
                      if str(dep).endswith(".py")})
    parts = {"stages": stages, "requirements": read(REQUIREMENTS),
             "sources": {path: read(Path(path)) for path in sources}}
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def configurations(read: Reader, sweep: str) -> Callable[[str, int], dict | None]:
    """The params.yaml content of a configuration (by label) and seed of ``sweep`` as the tree
    that ``read`` reads defines them (its params.yaml and sweeps.yaml, with the keys it predates
    filled: src/core/params.py's ABSENT_MEANS); None where it cannot say."""
    base, sweeps = _yaml(read(paths.PARAMS)), _yaml(read(paths.SWEEPS))
    base = params.with_absent_keys(base) if isinstance(base, dict) else base
    spec = sweeps.get(sweep) if isinstance(sweeps, dict) else None
    try:
        parsed = sweep_spec.parse_sweep(sweep, spec, base) if isinstance(base, dict) else None
    except TunelabError:
        parsed = None
    configs = {parsed.label(c): c for c in parsed.configs} if parsed else {}

    def merged(label: str, seed: int) -> dict | None:
        if label not in configs:
            return None
        return sweep_spec.apply(base, configs[label] | {"train.seed": seed})
    return merged


Canary = Callable[[str, list[dict]], bool | None]  # canary.same_numbers(commit, configs)


def same_code(commit: str, here: str, canary_configs: list[dict], run_canary: Canary) -> bool:
    """Does ``commit``'s code make the numbers the working tree's makes? The same
    :func:`fingerprint` (``here``) says yes at once; otherwise a canary of each configuration on
    both codes decides (src/experiments/canary.py: bit for bit, at tiny fidelity, cached)."""
    if fingerprint(read_commit(commit)) == here:
        return True
    if not canary_configs:
        return False
    print(f"carried: the code of {commit[:8]} differs from the working tree's in text; a canary "
          f"of its {len(canary_configs)} configuration(s) decides whether its experiments still "
          "count (src/experiments/canary.py)", file=sys.stderr, flush=True)
    return run_canary(commit, canary_configs) is True


def committed_design(sweep: str) -> dict | None:
    """The committed study's design.json (src/experiments/adaptive.py's fields); None when it has
    none, or an unreadable one."""
    try:
        design = json.loads((paths.STUDY_REPORTS / sweep / DESIGN).read_text())
    except (OSError, ValueError):
        return None
    return design if isinstance(design, dict) and "seeds" in design else None


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


def inferred_baseline(rows: list[dict[str, str]]) -> str | None:
    """The commit that was HEAD when the earliest of ``rows`` without a ``baseline`` ran: the
    newest commit of HEAD's history older than its ``timestamp`` (None if there is none, or no
    readable timestamp). For studies committed with an empty baseline column (their experiments'
    commits, ``rev``, were refs of a clone that is gone): the canary then decides whether that
    commit's code makes today's numbers, so a guess one commit off costs at most a canary."""
    stamps = sorted(row["timestamp"] for row in rows
                    if not row.get(BASELINE) and (row.get("timestamp") or "")[:1].isdigit())
    if not stamps:
        return None
    found = subprocess.run(["git", "rev-list", "-1", f"--before={stamps[0]}", "HEAD"],
                           capture_output=True, text=True)
    return found.stdout.strip() or None if found.returncode == 0 else None


def carried_rows(sweep: str, live: Collection[str] = (),
                 read_here: Reader = read_workspace,
                 run_canary: Canary | None = None) -> list[dict[str, str]]:
    """The committed rows of ``sweep`` that count as run, each with its ``identity``: not failed,
    of an identity that no experiment of the current commit has (``live``: the identities of
    those that did not fail), and run from a commit whose code makes the working tree's numbers
    (:func:`same_code`; ``run_canary``: src/experiments/canary.py's ``same_numbers``)."""
    rows = committed_rows(sweep)
    here = fingerprint(read_here) if rows else None
    if here is None:
        return []
    if run_canary is None:
        from src.experiments import canary  # subprocesses and torch's versions: only when needed
        run_canary = canary.same_numbers
    guessed = inferred_baseline(rows) if any(not row.get(BASELINE) for row in rows) else None
    by_commit: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        commit = row.get(BASELINE) or guessed
        if commit and parse(row.get("state")) != Status.FAILED \
                and _number(row.get("seed")) is not None:
            by_commit.setdefault(commit, []).append(row)
    kept = []
    for commit, its_rows in by_commit.items():
        merged = configurations(read_commit(commit), sweep)
        firsts = {}  # a canary per configuration, at its first seed
        for row in sorted(its_rows, key=lambda r: int(_number(r["seed"]))):
            firsts.setdefault(row.get("config") or "", merged(row.get("config") or "",
                                                                int(_number(row["seed"]))))
        if not same_code(commit, here, [c for c in firsts.values() if c is not None],
                         run_canary):
            continue
        for row in its_rows:
            ident = row.get(IDENTITY) or identity.of_or_none(
                merged(row.get("config") or "", int(_number(row["seed"]))))
            if ident is not None and ident not in live:
                kept.append(row | {IDENTITY: ident})
    return kept


def _number(text: str | None) -> float | None:
    try:
        value = float(text) if text else math.nan
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def outcomes(sweep: str, live: dict[str, Outcome],
             run_canary: Canary | None = None) -> dict[str, Outcome]:
    """``live`` (the current commit's outcomes) with the carried experiments of ``sweep`` added
    (those of an identity that no live experiment has, but for failed ones); a carried row whose
    name a live experiment has too (of other params) is keyed ``<name>@<commit>``."""
    done = {o.identity for o in live.values() if o.state != Status.FAILED and o.identity}
    carried = {}
    for row in carried_rows(sweep, done, run_canary=run_canary):
        key = row["name"] if row["name"] not in live else f"{row['name']}@{row[BASELINE][:8]}"
        carried[key] = Outcome(row["name"], parse(row["state"]), _number(row.get("cv_accuracy")),
                               _number(row.get("train_seconds")), identity=row[IDENTITY],
                               selection_accuracy=_number(row.get("selection_accuracy")))
    return live | carried
