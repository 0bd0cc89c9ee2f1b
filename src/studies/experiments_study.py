"""A study of DVC experiments however they were queued (pure): the experiments of this commit (all,
or those whose names match), grouped by every param that varies among them but ``train.seed``, the
seeds as replicates, made into an in-memory :class:`~src.experiments.sweep_spec.Sweep`, so that
the decisions, report and figures are exactly a sweep study's (src/studies/sweep_study.py).

DVC's own grid syntax makes such experiments::

    dvc exp run --queue -S 'train.dropout=0.0,0.5' -S 'train.seed=range(0,5)'
    dvc queue start -j 2
    python -m src.study --experiments --name grid --baseline train.dropout=0.0

Only the ``prepare`` and ``train`` params group (src/core/identity.py: they make the numbers);
another section that varies (``plot``) is said and ignored. What cannot be studied (experiments
still queued or running, without params, ran twice, of a group with fewer than two completed
seeds) gets one line each; what leaves nothing to decide is a TunelabError.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, replace
from fnmatch import fnmatchcase

import pandas as pd

from src.core import identity, naming
from src.core.errors import TunelabError
from src.experiments import carried, exp_show, sweep_spec
from src.studies import sweep_study

SEED = "train.seed"
DEFAULT_NAME = "experiments"
PENDING = ("queued", "running")  # DVC's executor states of an experiment that has not finished
LISTED = 8  # names shown in one line before "…"
GRID_EXAMPLE = ("`dvc exp run --queue -S 'train.dropout=0.0,0.5' -S 'train.seed=range(0,3)'`, "
                "then `dvc queue start -j 2`")


@dataclass(frozen=True)
class Grouped:
    """What the sweep study is given: the groups as a sweep, the experiments' table, and one line
    for each thing left out (printed, never fatal)."""
    sweep: sweep_spec.Sweep
    frame: pd.DataFrame
    lines: tuple[str, ...]


def listed(names) -> str:
    names = list(names)
    return ", ".join(names[:LISTED]) + (f", … ({len(names)} in all)" if len(names) > LISTED else "")


def check_name(name: str, taken: dict[str, list[str]]) -> None:
    """``--name``: a valid study name that no sweep, search or reserved study has (``taken``:
    {'sweeps.yaml': [...], 'searches.yaml': [...]})."""
    if not naming.is_valid_study_name(name):
        raise TunelabError(f"--name {name!r}: use letters, digits and _ (it names "
                           "reports/study/<name>/)")
    if name in naming.RESERVED:
        raise TunelabError(f"--name {name!r} is reserved (`python -m src.study {name}`): choose "
                           "another")
    for where, names in taken.items():
        if name in names:
            raise TunelabError(f"--name {name!r} is a study of {where} already: choose another, "
                               f"e.g. --name {name}_exps")


def matching(shown: list, patterns: list[str]) -> list[exp_show.Found]:
    """The experiments of `dvc exp show --json` whose names match one of ``patterns`` (an exact
    name or an fnmatch glob such as ``grid-*``; none: every one); none is an error."""
    found = list(exp_show.newest_experiments(shown, lambda n: bool(n)))
    if not found:
        raise TunelabError(f"no DVC experiments on the current commit: queue some, e.g. "
                           f"{GRID_EXAMPLE}")
    chosen = [f for f in found if not patterns or any(fnmatchcase(f.name, p) for p in patterns)]
    if not chosen:
        raise TunelabError(f"no experiment of the current commit matches {', '.join(patterns)}; "
                           f"its experiments: {listed(f.name for f in found)}")
    return chosen


def pending(found: exp_show.Found, shown: list) -> bool:
    """Whether DVC still has ``found`` queued or running (its executor's state)."""
    return any((exp.get("executor") or {}).get("state") in PENDING for commit in shown
               for exp in commit.get("experiments") or [] if exp["revs"][0] is found.head)


def grouped_keys(flats: list[dict]) -> tuple[list[str], list[str]]:
    """The params that vary among the experiments (``flats``: their flat params), in params.yaml
    order: those that make the numbers (grouped; ``train.seed`` excepted) and the others."""
    keys = list(dict.fromkeys(k for flat in flats for k in flat))
    varies = [k for k in keys if k != SEED and
              len({json.dumps(flat.get(k), sort_keys=True) for flat in flats}) > 1]
    makes = [k for k in varies if k.partition(".")[0] in identity.SECTIONS]
    return makes, [k for k in varies if k not in makes]


def order(value) -> tuple:
    """A sort key for a param value: numbers by value, then anything else by its JSON text."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, float(value), "")
    return (1, 0.0, json.dumps(value, sort_keys=True))


def baseline_values(keys: list[str], workspace: dict, items: list[str]) -> dict:
    """The baseline's value of each grouped key: ``--baseline KEY=VALUE`` where given, else the
    workspace params.yaml's."""
    given = {}
    for item in items:
        try:
            key, value = sweep_spec.parse_set(item)
        except TunelabError:
            raise TunelabError(f"--baseline {item!r}: expected KEY=VALUE, KEY one of "
                               f"{', '.join(keys)}") from None
        given[key] = value
    unknown = [k for k in given if k not in keys]
    if unknown:
        raise TunelabError(f"--baseline {unknown[0]}: not a param that varies among the "
                           f"experiments; allowed: {', '.join(keys)}")
    flat = exp_show.flatten(workspace)
    return {k: given[k] if k in given else flat.get(k) for k in keys}


def describe(patterns: list[str], keys: list[str], shared: dict, workspace: dict) -> str:
    """The report's opening line: which experiments, grouped by what, and where the params they
    share differ from the workspace params.yaml."""
    which = f"matching {', '.join(f'`{p}`' for p in patterns)}" if patterns else "all"
    text = (f"DVC experiments of this commit ({which}), grouped by {', '.join(keys)}; "
            f"{SEED} as replicates.")
    mine = exp_show.flatten(shared)
    ours = exp_show.flatten(workspace)
    differ = [k for k in mine if k.partition(".")[0] in identity.SECTIONS and k not in keys
              and k != SEED and mine[k] != ours.get(k)]
    if differ:
        text += " Every experiment ran with " + ", ".join(
            f"{k}={naming.format_value(mine[k])} (params.yaml: "
            f"{naming.format_value(ours.get(k))})" for k in differ) + "."
    return text


def group(shown: list, name: str, patterns: list[str], workspace: dict,
          baseline: list[str], design: sweep_spec.StudyDesign = sweep_spec.StudyDesign()) -> Grouped:
    """The study of the experiments of `dvc exp show --json` output ``shown`` whose names match
    ``patterns``: grouped by every param that varies but the seed, the baseline the group of
    ``baseline`` (``KEY=VALUE`` items) over the workspace params.yaml (``workspace``)."""
    lines: list[str] = []
    found = matching(shown, patterns)
    waiting = [f.name for f in found if pending(f, shown)]
    if waiting:
        lines.append(f"left out: {len(waiting)} experiment(s) still queued or running "
                     f"({listed(waiting)}); study again when `dvc queue status` shows them done")
    bare = [f.name for f in found if f.name not in waiting and not exp_show.params_of(
        f.head.get("data") or {})]
    if bare:
        lines.append(f"left out: {len(bare)} experiment(s) with no params in `dvc exp show` "
                     f"({listed(bare)}; failed before running? `dvc queue logs NAME`)")
    found = [f for f in found if f.name not in waiting and f.name not in bare]
    params_of = {f.name: exp_show.params_of(f.head.get("data") or {}) for f in found}
    invalid = [f.name for f in found if identity.of_or_none(params_of[f.name]) is None]
    if invalid:
        lines.append(f"left out: {len(invalid)} experiment(s) whose params are not valid for "
                     f"this code ({listed(invalid)}; src/core/params.py says why)")
    found = [f for f in found if f.name not in invalid]
    if not found:
        raise TunelabError("no finished experiment with valid params to study: "
                           + "; ".join(lines))
    flats = [exp_show.flat_params(f.head.get("data") or {}) for f in found]
    keys, ignored = grouped_keys(flats)
    if ignored:
        lines.append(f"not grouped: {', '.join(ignored)} varies but does not make the numbers "
                     f"(only the {' and '.join(identity.SECTIONS)} params do)")
    if not keys:
        raise TunelabError(f"the {len(found)} experiment(s) differ in no param but {SEED}: one "
                           "group, nothing to compare it with; queue a grid, e.g. " + GRID_EXAMPLE)
    configs = sorted({json.dumps({k: flat.get(k) for k in keys}): {k: flat.get(k) for k in keys}
                      for flat in flats}.values(), key=lambda c: [order(c[k]) for k in keys])
    wanted = baseline_values(keys, workspace, baseline)
    labels = [naming.config_label(c) for c in configs]
    matches = [c for c in configs if all(c[k] == wanted[k] for k in keys)]
    if not matches:
        origin = "--baseline over params.yaml" if baseline else "params.yaml's"
        raise TunelabError(f"no group matches the baseline {naming.config_label(wanted)} "
                           f"({origin}); the groups: {', '.join(labels)}; pass --baseline "
                           f"KEY=VALUE (keys: {', '.join(keys)})")
    shared = copy.deepcopy(params_of[found[0].name])  # what does not vary is the same in all
    sweep = sweep_spec.Sweep(name, describe(patterns, keys, shared, workspace), tuple(configs),
                             matches[0], tuple(keys), design)
    frame = sweep_study.experiments_frame(shown, sweep, {f.name for f in found}.__contains__)
    kept, others = sweep_study.select(frame, sweep, shared)
    for row in others.itertuples():  # none: what does not vary is the same in all
        lines.append(f"left out: {row.name} ({row.config}, seed {row.seed}): it differs from "
                     "its group in a param the grouping does not show")
    dropped = frame[~frame.index.isin(kept.index) & ~frame.index.isin(others.index)]
    for ident, rows in dropped.groupby(carried.IDENTITY, sort=False):
        newest = kept.loc[kept[carried.IDENTITY] == ident].iloc[0]
        lines.append(f"duplicates: {listed(sorted([*rows['name'], newest['name']]))} ran the same "
                     f"params ({newest['config']}, seed {newest['seed']}): only the newest, "
                     f"{newest['name']}, counts")
    return small_groups(sweep, kept, lines)


def small_groups(sweep: sweep_spec.Sweep, frame: pd.DataFrame, lines: list[str]) -> Grouped:
    """The groups with fewer than two completed seeds left out, one line each; an error when the
    baseline is one of them or no other group is left."""
    seeds = sweep_study.seed_sets(frame)
    small = {sweep.label(c): sorted(seeds.get(sweep.label(c), ())) for c in sweep.configs
             if len(seeds.get(sweep.label(c), ())) < 2}
    base = sweep.baseline_label
    for label, have in small.items():
        if label != base:
            lines.append(f"left out: group {label} has {len(have)} completed seed(s) "
                         f"{have}: a group needs two or more")
    if base in small:
        raise TunelabError(f"the baseline group {base} has {len(small[base])} completed seed(s) "
                           f"{small[base]}: a comparison needs two or more; queue more, e.g. "
                           f"-S '{SEED}=range(0,3)'")
    configs = tuple(c for c in sweep.configs if sweep.label(c) not in small)
    if len(configs) < 2:
        raise TunelabError(f"no group besides the baseline {base} has two or more completed "
                           f"seeds (" + ", ".join(f"{k}: {len(v)}" for k, v in small.items())
                           + "): nothing to compare")
    return Grouped(replace(sweep, configs=configs), frame[~frame["config"].isin(small)],
                   tuple(lines))
