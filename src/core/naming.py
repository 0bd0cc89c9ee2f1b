"""Experiment names: how a sweep's or a search's DVC experiment is named, and read back.

    <sweep>--<config>--s<seed>      a sweep's experiment, e.g. interactions--dropout=0.3,norm=batch--s2
    <sweep>--<config>--s<seed>--v<tag>  the same with other params than the commit's params.yaml
                                    (``--set``, an edited params.yaml): <tag> starts its identity
    <search>--t<NNN>--s<seed>       a search's trial NNN (the Optuna trial number)

A name labels an experiment; what identifies it is its params (src/core/identity.py). The variant
tag keeps names unique on a commit (DVC refuses two experiments of one name there) when one
configuration and seed run with several sets of overrides.

`dvc exp show` groups by these names, `train` tags its MLflow run from the name alone
(``$DVC_EXP_NAME``), and the pruning hook finds its trial by it. Values are written as DVC's ``-S``
reads them (YAML): :func:`format_value`.
"""

from __future__ import annotations

import re
from typing import Any

SEP = "--"
UNSAFE = re.compile(r"[^A-Za-z0-9._=,+-]")  # git ref names refuse spaces, ~^:?*[\ and more
RESERVED = frozenset({"claims"})  # `python -m src.study claims`: no sweep or search takes it
_TRIAL_NAME = re.compile(r"(?P<search>[A-Za-z0-9_]+)--t(?P<number>\d+)--s\d+")


def format_value(value: Any) -> str:
    """A value as DVC's -S reads it (YAML): lists in flow style, floats as exact decimals."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    if isinstance(value, float):
        text = repr(value)  # shortest exact round-trip: 0.0003, not 0.00030000000000000003
        return text if ("e" not in text and "." in text) else f"{value:.17f}".rstrip("0")
    return str(value)


def config_label(config: dict) -> str:
    """``{"train.dropout": 0.3, "train.norm": "batch"}`` -> ``dropout=0.3,norm=batch``."""
    if not config:
        return "base"
    parts = []
    for key, value in config.items():
        shown = "-".join(map(str, value)) if isinstance(value, (list, tuple)) else \
            format_value(value)
        parts.append(f"{key.split('.')[-1]}={shown}")
    return UNSAFE.sub("-", ",".join(parts))


def experiment_name(sweep: str, config: str, seed: int, variant: str = "") -> str:
    return f"{sweep}{SEP}{config}{SEP}s{seed}" + (f"{SEP}v{variant}" if variant else "")


def parse_name(name: str) -> dict[str, str] | None:
    """``dropout--dropout=0.3--s1`` -> ``{"sweep": "dropout", "config": "dropout=0.3", "seed": "1",
    "variant": ""}``; ``...--s1--v3fa91c0b`` has variant ``3fa91c0b``."""
    parts = name.split(SEP)
    variant = parts.pop()[1:] if len(parts) == 4 and re.fullmatch(r"v[0-9a-f]+", parts[3]) else ""
    if len(parts) != 3 or not re.fullmatch(r"s\d+", parts[2]):
        return None
    return {"sweep": parts[0], "config": parts[1], "seed": parts[2][1:], "variant": variant}


def trial_config(number: int) -> str:
    """The config part of a search trial's name: ``t007``."""
    return f"t{number:03d}"


def parse_trial_name(name: str | None) -> tuple[str, int] | None:
    """``lr_dropout--t007--s0`` -> ``("lr_dropout", 7)``; None for any other name."""
    match = _TRIAL_NAME.fullmatch(name or "")
    return (match["search"], int(match["number"])) if match else None


def is_valid_study_name(name: str) -> bool:
    """Sweep and search names: letters, digits and _ (they start every experiment name)."""
    return bool(re.fullmatch(r"[A-Za-z0-9_]+", str(name)))
