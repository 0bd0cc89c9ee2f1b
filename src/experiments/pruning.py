"""Pruning hopeless search trials: pure rules on per-epoch validation accuracy, and the one-call
hook the training loop consults each epoch.

Rules (higher accuracy is better; a trial's value at an epoch is its best val acc so far in that
fold, as Optuna's pruners use the best intermediate value):
  median   prune at epoch e if the value is below the median of the *completed* trials' val acc at
           epoch e of the same fold, once e > `warmup_epochs` and at least `min_trials` completed
           trials reached that epoch (Optuna's MedianPruner);
  halving  successive halving with asynchronous promotion (ASHA): rungs at epochs
           `min_epochs` x `eta`^k; at a rung a trial goes on only if it is in the top 1/eta of every
           trial that reached the rung (at least the best one goes on), once `min_trials` others
           did (Optuna's SuccessiveHalvingPruner).
A search declares its rule in searches.yaml (`pruner: {type: median, warmup_epochs: 2,
min_trials: 4}`); no `pruner` means every trial runs to the end.

The hook, ``should_prune(exp_name, epoch, val_acc, fold)``, needs nothing from the environment of
DVC's queue workers (they are shared by every queued experiment): the trial's identity is its
experiment name, which DVC sets per run as $DVC_EXP_NAME (``<search>--t<NNN>--s<seed>``: the search
and the Optuna trial number), and the study is the journal
``<repo root>/.tunelab/search/<search>.journal`` (repo root = $DVC_ROOT in DVC's temporary copies),
or, for a search on a shared study, the PostgreSQL storage its worker names in $TUNELAB_STORAGE;
the search also stores the rule there. Each call reports the epoch's val acc to the trial
(Optuna intermediate value, step = fold x 10000 + epoch) and returns the rule's verdict. Outside a
search (no such name or no journal, or a trial that is no longer running) it does nothing and
returns False; $TUNELAB_PRUNE=0 turns it off. Reads and writes the study only.

Train does not import this module: it calls the epoch hook that $TUNELAB_EPOCH_HOOK names
(src/core/hooks.py), and the search machinery names :data:`HOOK` there for every queue worker and
`dvc` command it starts (dvc_queue.tool_env).
"""

from __future__ import annotations

import math
import os
import statistics
import sys
from pathlib import Path

from src.core import paths
from src.core.errors import ParamError
from src.core.naming import parse_trial_name
from src.experiments import rdb

STEPS_PER_FOLD = 10_000               # intermediate-value step = fold * STEPS_PER_FOLD + epoch
HOOK = "src.experiments.pruning:should_prune"  # $TUNELAB_EPOCH_HOOK for train: hooks.load(HOOK)
RULES = {"median": {"warmup_epochs": 0, "min_trials": 1},
         "halving": {"min_epochs": 1, "eta": 3, "min_trials": 1}}


def journal_path(search: str, root: Path | None = None) -> Path:
    return (root or paths.repo_root()) / paths.SEARCH_JOURNALS / f"{search}.journal"


def open_journal(path: Path):
    """The Optuna journal storage of a search (parallel-safe appends under a file lock)."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend
    return JournalStorage(JournalFileBackend(str(path)))


def step_of(fold: int, epoch: int) -> int:
    return fold * STEPS_PER_FOLD + epoch


def check_rule(where: str, spec) -> dict | None:
    """A searches.yaml `pruner:` mapping with its defaults filled in; ParamError naming ``where``."""
    if spec is None:
        return None
    if not isinstance(spec, dict) or spec.get("type") not in RULES:
        raise ParamError(f"{where}: pruner must be a mapping with type: {' | '.join(RULES)}, "
                         f"got {spec!r}")
    defaults = RULES[spec["type"]]
    unknown = set(spec) - {"type", *defaults}
    if unknown:
        raise ParamError(f"{where}: unknown pruner key(s) {sorted(unknown)}; allowed for "
                         f"{spec['type']}: {', '.join(defaults)}")
    rule = {"type": spec["type"], **defaults, **{k: v for k, v in spec.items() if k != "type"}}
    for key in defaults:
        value, least = rule[key], 2 if key == "eta" else (0 if key == "warmup_epochs" else 1)
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ParamError(f"{where}: pruner {key} = {value!r} must be an integer >= {least}")
    return rule


def median_rule(value: float, completed: list[float], epoch: int, warmup_epochs: int,
                min_trials: int) -> bool:
    """Prune if ``value`` is below the median of ``completed`` (the completed trials' val acc at
    this epoch) after the warm-up and with at least ``min_trials`` of them."""
    if epoch <= warmup_epochs or len(completed) < max(1, min_trials):
        return False
    return value < statistics.median(completed)


def halving_rule(value: float, others: list[float], epoch: int, min_epochs: int, eta: int,
                 min_trials: int) -> bool:
    """Prune at a rung epoch (min_epochs x eta^k) unless ``value`` is in the top 1/eta of
    ``others`` (every other trial's val acc at this epoch) plus itself; the best always goes on."""
    rung = min_epochs
    while rung < epoch:
        rung *= eta
    if rung != epoch or len(others) < max(1, min_trials):
        return False
    ranked = sorted([*others, value], reverse=True)
    keep = max(1, len(ranked) // eta)
    return value < ranked[keep - 1]


def decide(rule: dict | None, epoch: int, value: float, completed: list[float],
           others: list[float]) -> bool:
    """Apply a :func:`check_rule` mapping; ``completed`` values are a subset of ``others``."""
    if not rule:
        return False
    if rule["type"] == "median":
        return median_rule(value, completed, epoch, rule["warmup_epochs"], rule["min_trials"])
    return halving_rule(value, others, epoch, rule["min_epochs"], rule["eta"], rule["min_trials"])


_SHARED: dict[str, object] = {}  # the shared study's storage, opened once per training process


def study_storage(search: str):
    """Where the trial's study is: the shared study's PostgreSQL storage when the trial's worker
    set $TUNELAB_STORAGE (one pooled connection for the whole training run), else the search's
    journal in this clone; None when there is none."""
    uri = os.environ.get(rdb.ENV)
    if uri:
        if uri not in _SHARED:
            _SHARED[uri] = rdb.open_storage(uri, "pruning")
        return _SHARED[uri]
    path = journal_path(search)
    return open_journal(path) if path.is_file() else None


def _report_and_decide(storage, search: str, number: int, exp_name: str, fold: int,
                       epoch: int, val_acc: float) -> bool:
    from optuna.trial import TrialState
    try:
        study_id = storage.get_study_id_from_name(search)
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, number)
    except KeyError:
        return False  # a journal without this trial: not one of its runs
    trial = storage.get_trial(trial_id)
    if trial.state != TrialState.RUNNING or trial.user_attrs.get("experiment") != exp_name:
        return False  # told already (e.g. `dvc exp run` of an old trial by hand)
    step = step_of(fold, epoch)
    storage.set_trial_intermediate_value(trial_id, step, val_acc)
    rule = storage.get_study_user_attrs(study_id).get("pruner")
    if not rule:
        return False
    mine = [v for s, v in trial.intermediate_values.items()
            if step_of(fold, 1) <= s < step and math.isfinite(v)]
    best = max([val_acc, *mine])
    others = [(t.state, t.intermediate_values[step]) for t in storage.get_all_trials(study_id)
              if t.number != number and step in t.intermediate_values]
    completed = [v for state, v in others if state == TrialState.COMPLETE]
    return decide(rule, epoch, best, completed, [v for _, v in others])


def should_prune(exp_name: str | None, epoch: int, val_acc: float, fold: int = 0) -> bool:
    """Report this epoch's val acc to the search trial ``exp_name`` and say whether to stop it.

    A no-op returning False outside a search. A broken journal never stops training: it prints a
    warning and returns False."""
    parsed = parse_trial_name(exp_name)
    if parsed is None or os.environ.get("TUNELAB_PRUNE") == "0" or not math.isfinite(val_acc):
        return False
    try:
        storage = study_storage(parsed[0])
        return storage is not None and _report_and_decide(storage, *parsed, exp_name, fold, epoch,
                                                          val_acc)
    except Exception as error:  # noqa: BLE001 - bookkeeping must not kill a training run
        shown = rdb.scrub(str(error), os.environ.get(rdb.ENV) or "")
        print(f"warning: pruning check for {exp_name} failed ({shown}); training goes on",
              file=sys.stderr)
        return False
