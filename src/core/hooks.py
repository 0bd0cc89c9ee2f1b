"""The seam between the `train` stage and a search that watches it: after each epoch of each fold,
train asks an *epoch hook* "should this fold stop after epoch e with val acc a?".

Train owns the question and knows nothing of who answers: the hook is the callable that
$TUNELAB_EPOCH_HOOK names (``package.module:function``), imported only when the variable is set.
The search machinery sets it in the environment of the DVC queue workers and `dvc` commands it
starts (src/experiments/dvc_queue.py `tool_env`), naming its pruning rule
(src/experiments/pruning.py `should_prune`). Unset (`dvc repro`, `python -m src.train`), there
is no hook: the stage imports core and tracking only, so a change to the search machinery never
makes DVC re-run it.
"""

from __future__ import annotations

import importlib
import os
from typing import Protocol

from src.core.errors import TunelabError

ENV = "TUNELAB_EPOCH_HOOK"


class EpochHook(Protocol):
    def __call__(self, exp_name: str | None, epoch: int, val_acc: float, fold: int) -> bool:
        """True to stop fold ``fold`` of experiment ``exp_name`` ($DVC_EXP_NAME) after ``epoch``
        (1-based) with validation accuracy ``val_acc``. Never raises: a hook whose bookkeeping
        fails says so on stderr and returns False, so that training goes on."""


def load(spec: str | None) -> EpochHook | None:
    """The callable ``spec`` (``package.module:function``) names; None for an empty spec."""
    if not spec:
        return None
    module, _, name = spec.partition(":")
    if not module or not name.isidentifier():
        raise TunelabError(f"${ENV} = {spec!r} must name a function as package.module:function, "
                           "e.g. src.experiments.pruning:should_prune")
    try:
        hook = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as error:
        raise TunelabError(f"${ENV} = {spec!r} cannot be loaded: {error}") from None
    if not callable(hook):
        raise TunelabError(f"${ENV} = {spec!r} is not a function")
    return hook


def from_env() -> EpochHook | None:
    """The hook $TUNELAB_EPOCH_HOOK names, or None when it is unset."""
    return load(os.environ.get(ENV))
