"""An experiment's identity: a digest of what determines its numbers, never its name.

Two experiments with one name and different params (another ``--set``, an edited params.yaml) are
different experiments; two with different names and the same params are the same one. The digest
covers the params of the sections whose stages make reports/evaluate/metrics.json (``prepare`` and
``train``), after validation (src/core/params.py): every default filled in and every value of its
declared type, so ``lr: 0.001`` and ``lr: 1.0e-3`` or a key left at its default are one identity.

Left out: ``prepare.selection_size``. The selection set is drawn after the subset and the folds,
from images neither trains nor validates on, so it changes no trained model and no CV or test
number; it only adds the selection metrics (``selection`` in metrics.json). Experiments that ran
before the key existed (their params lack it, and may be invalid with today's default, e.g. at
train_size 60000) keep the identity they had, and count as run for a study deciding on CV accuracy.
A study deciding on selection accuracy decides on CV where some of its experiments lack it
(src/studies/sweep_study.py, ``study_metric``).

What else makes the numbers (the code, the data, the pinned libraries) is compared where
experiments are carried over from a commit to another (src/experiments/carried.py); the machine
is not (another CPU gives another draw, as another seed would).

A *configuration* is what an experiment's seeds share: its identity with ``train.seed`` fixed
(:func:`configuration`), so the seeds of one configuration share it and two different sets of
params never do. ``prepare.seed`` stays in it: another split of the data is another configuration.
:func:`describe` says it in words for the MLflow UI's "Group by" (src/tracking/trackers.py).
"""

from __future__ import annotations

import hashlib
import json

from src.core import naming, params
from src.core.errors import ParamError

SECTIONS = ("prepare", "train")  # the stages whose params make metrics.json (evaluate reads none)
LENGTH = 12  # hex digits kept: 48 bits, no collision among the few thousand experiments of a repo
TAG = 8  # hex digits of the identity that tell a variant's experiment names apart (naming.py)
EVALUATION_ONLY = {"prepare": ("selection_size",)}  # change no trained model: not in the digest


def of(merged: dict) -> str:
    """The identity of params.yaml content ``merged`` (overrides applied); raises ParamError if
    the params are invalid."""
    validated = params.validate_all(_before_keys_existed(merged))
    canonical = {name: {k: v for k, v in params.as_dict(validated[name]).items()
                        if k not in EVALUATION_ONLY.get(name, ())} for name in SECTIONS}
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:LENGTH]


def _before_keys_existed(merged: dict) -> dict:
    """``merged`` with an EVALUATION_ONLY key it lacks set to 0: params written before the key
    existed ran without (a value it has is validated as it is)."""
    filled = dict(merged)
    for section, keys in EVALUATION_ONLY.items():
        if isinstance(merged.get(section), dict):
            filled[section] = {key: 0 for key in keys} | merged[section]
    return filled


def of_or_none(merged: dict | None) -> str | None:
    """:func:`of`, or None when ``merged`` is missing, empty or not valid params (an old
    commit's, say)."""
    if not isinstance(merged, dict) or not merged:
        return None
    try:
        return of(merged)
    except (ParamError, TypeError, ValueError):
        return None


SEED = "seed"  # train.seed: the replicate axis, the one key a configuration's experiments differ in
SEED_VALUE = 0  # any fixed value would do: the seed a configuration is identified with


def seedless(merged: dict) -> dict:
    """``merged`` with ``train.seed`` set to :data:`SEED_VALUE` (a train section that is not a
    mapping is left as it is, for validation to refuse)."""
    train = merged.get("train")
    if train is not None and not isinstance(train, dict):
        return merged
    return {**merged, "train": {**(train or {}), SEED: SEED_VALUE}}


def configuration(merged: dict) -> str:
    """The identity of the configuration of params ``merged``: :func:`of` with ``train.seed``
    fixed; raises ParamError if the params are invalid."""
    return of(seedless(merged))


def describe(merged: dict) -> str:
    """The configuration of ``merged`` in words: the ``prepare``/``train`` keys whose validated
    values differ from the code's defaults (src/core/params.py; params.yaml restates them), sorted,
    ``train.seed`` left out, then the first :data:`TAG` digits of :func:`configuration`. The words
    determine the params only for one version of the code (a default that changes, or a new key,
    leaves them as they were): the digest tells configurations apart across commits too.

        {"train": {"dropout": 0.5, "seed": 3}} -> "train.dropout=0.5 (7aa3d069)"
        {"train": {"seed": 3}}                 -> "defaults (d333e09e)"
    """
    validated = params.validate_all(seedless(merged))
    changed = []
    for name in SECTIONS:
        defaults = params.as_dict(params.SECTIONS[name]())
        for key, value in sorted(params.as_dict(validated[name]).items()):
            if value != defaults[key] and not (name == "train" and key == SEED):
                changed.append(f"{name}.{key}={naming.format_value(value)}")
    return f"{'; '.join(changed) or 'defaults'} ({configuration(merged)[:TAG]})"
