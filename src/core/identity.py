"""An experiment's identity: a digest of what determines its numbers, never its name.

Two experiments with one name and different params (another ``--set``, an edited params.yaml) are
different experiments; two with different names and the same params are the same one. The digest
covers the params of the sections whose stages make reports/evaluate/metrics.json (``prepare`` and
``train``), after validation (src/core/params.py): every default filled in and every value of its
declared type, so ``lr: 0.001`` and ``lr: 1.0e-3`` or a key left at its default are one identity.

What else makes the numbers (the code, the data, the pinned libraries) is compared where
experiments are carried over from a commit to another (src/experiments/carried.py); the machine
is not (another CPU gives another draw, as another seed would).
"""

from __future__ import annotations

import hashlib
import json

from src.core import params
from src.core.errors import ParamError

SECTIONS = ("prepare", "train")  # the stages whose params make metrics.json (evaluate reads none)
LENGTH = 12  # hex digits kept: 48 bits, no collision among the few thousand experiments of a repo
TAG = 8  # hex digits of the identity that tell a variant's experiment names apart (naming.py)


def of(merged: dict) -> str:
    """The identity of params.yaml content ``merged`` (overrides applied); raises ParamError if
    the params are invalid."""
    validated = params.validate_all(merged)
    canonical = {name: params.as_dict(validated[name]) for name in SECTIONS}
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:LENGTH]


def of_or_none(merged: dict | None) -> str | None:
    """:func:`of`, or None when ``merged`` is missing, empty or not valid params (an old
    commit's, say)."""
    if not isinstance(merged, dict) or not merged:
        return None
    try:
        return of(merged)
    except (ParamError, TypeError, ValueError):
        return None
