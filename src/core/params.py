"""params.yaml sections as frozen, validated dataclasses.

Each stage loads only the sections ``dvc.yaml`` declares for it (a stage that read more would not be
re-run when those values change). Values are checked on load, before any work: an unknown key, a
wrong type or an out-of-range value raises :class:`ParamError` naming the key, the value and what
is allowed. The same checks serve ``dvc exp run -S``, sweep definitions and ``--set``.

    >>> train = TrainParams.from_dict({"dropout": 0.5})
    >>> train.dropout, train.lr
    (0.5, 0.001)
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from src.core.errors import ParamError

N_CLASSES = 10
IMAGE_SIDE = 28
DATASET_TRAIN_SIZE = 60_000
DATASET_TEST_SIZE = 10_000


# Keys that params.yaml gained after studies had run, with the value that reproduces what a tree
# without the key did: before the selection set, prepare drew none. Carry-over validates an old
# tree's params with these filled in (today's default selection set of 10,000 images would not fit
# beside a sweep of all 60,000), and a canary leaves them out of an old tree's params.yaml.
ABSENT_MEANS = {("prepare", "selection_size"): 0}


def with_absent_keys(params: dict) -> dict:
    """A copy of params.yaml content ``params`` with the :data:`ABSENT_MEANS` keys it lacks."""
    filled = {key: dict(value) if isinstance(value, dict) else value for key, value in params.items()}
    for (section, key), value in ABSENT_MEANS.items():
        if isinstance(filled.get(section), dict):
            filled[section].setdefault(key, value)
    return filled


def without_keys_absent_from(params: dict, tree: dict) -> dict:
    """A copy of ``params`` without the :data:`ABSENT_MEANS` keys that params.yaml content
    ``tree`` (an older tree's) lacks: what that tree's code can read."""
    kept = {key: dict(value) if isinstance(value, dict) else value for key, value in params.items()}
    for section, key in ABSENT_MEANS:
        if isinstance(kept.get(section), dict) and key not in ((tree or {}).get(section) or {}):
            kept[section].pop(key, None)
    return kept


def _spec(default, *, choices=None, low=None, high=None, low_open=False, high_open=False, doc=""):
    """A dataclass field carrying its allowed values, used by :func:`_check_value`."""
    meta = {"choices": choices, "low": low, "high": high, "low_open": low_open,
            "high_open": high_open, "doc": doc}
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class PrepareParams:
    # Stratified subset of Fashion-MNIST: 10k of the 60k training images keep a 5-fold CV run of the
    # reference CNN at a few minutes on 2 cores; the full test set costs only inference.
    train_size: int = _spec(10_000, low=N_CLASSES, high=DATASET_TRAIN_SIZE)
    test_size: int = _spec(10_000, low=N_CLASSES, high=DATASET_TEST_SIZE)
    cv_folds: int = _spec(5, low=2)
    seed: int = _spec(0, low=0)  # fixes the subset and the folds (not the training)
    # A fixed, stratified selection set drawn from the training images the subset leaves out:
    # every fold model is scored on the same images, 5x the 2,000 each fold holds out; 0 = none.
    selection_size: int = _spec(10_000, low=0, high=DATASET_TRAIN_SIZE)

    def __post_init__(self):
        left = DATASET_TRAIN_SIZE - self.train_size
        if self.selection_size > left:
            raise ParamError(
                f"prepare.selection_size = {self.selection_size} is more than the {left} training "
                f"images prepare.train_size = {self.train_size} leaves out; use selection_size <= "
                f"{left} (0 = no selection set) or a smaller train_size")
        if 0 < self.selection_size < N_CLASSES:
            raise ParamError(f"prepare.selection_size = {self.selection_size} cannot hold every "
                             f"class: use 0 (none) or at least {N_CLASSES}")
        smallest_class = self.train_size // N_CLASSES  # the stratified subset is balanced to ±1
        if self.cv_folds > smallest_class:
            raise ParamError(
                f"prepare.cv_folds = {self.cv_folds} is more than the smallest class count "
                f"({smallest_class} images per class at prepare.train_size = {self.train_size}); "
                f"use cv_folds <= {smallest_class} or a larger train_size")


@dataclass(frozen=True)
class TrainParams:
    # Defaults reproduce the reference CNN: conv(32)-BN-ReLU-maxpool, conv(64)-BN-ReLU-maxpool,
    # FC 128, dropout 0.3, Adam 1e-3, batch 64: 421,834 parameters.
    model: str = _spec("cnn", choices=("cnn", "mlp"))
    conv_channels: tuple[int, ...] = _spec((32, 64), low=1)  # one entry per conv layer
    kernel_size: int = _spec(3, choices=(1, 3, 5, 7))        # odd, 'same' padding
    pooling: str = _spec("max", choices=("max", "avg", "none"))
    pool_every: int = _spec(1, low=1)                        # pool after every k-th conv layer
    norm: str = _spec("batch", choices=("none", "batch", "instance", "layer", "group"))
    norm_groups: int = _spec(8, low=1)                       # for norm: group
    dropout: float = _spec(0.3, low=0.0, high=1.0, high_open=True)       # dense layers
    conv_dropout: float = _spec(0.0, low=0.0, high=1.0, high_open=True)  # Dropout2d per conv block
    # Where a conv block's Dropout2d sits: after the activation (before or after max pooling is the
    # same function), or right after the convolution, before the norm (a different function).
    conv_dropout_at: str = _spec("after_act", choices=("after_act", "before_norm"))
    hidden_units: tuple[int, ...] = _spec((128,), low=1)     # FC layers (CNN head / MLP body)
    activation: str = _spec("relu", choices=("relu", "gelu", "silu", "leaky_relu", "elu", "tanh"))
    optimizer: str = _spec("adam", choices=("adam", "adamw", "sgd", "rmsprop"))
    lr: float = _spec(1e-3, low=0.0, low_open=True)
    momentum: float = _spec(0.9, low=0.0, high=1.0, high_open=True)  # sgd and rmsprop
    weight_decay: float = _spec(0.0, low=0.0)
    schedule: str = _spec("constant", choices=("constant", "cosine", "onecycle", "step"))
    epochs: int = _spec(10, low=1)
    batch_size: int = _spec(64, low=1)
    seed: int = _spec(0, low=0)         # init, dropout and batch order; replicate axis of sweeps
    patience: int = _spec(0, low=0)     # early stopping on val loss; 0 = off
    precision: str = _spec("fp32", choices=("fp32", "bf16"))
    label_smoothing: float = _spec(0.0, low=0.0, high=1.0, high_open=True)
    hflip: bool = _spec(False)          # batch-level random horizontal flip
    crop_pad: int = _spec(0, low=0, high=8)  # batch-level random crop after zero padding; 0 = off
    ema: float = _spec(0.0, low=0.0, high=1.0, high_open=True)  # weight EMA decay per step; 0 = off
    tta_hflip: bool = _spec(False)      # predict as the mean of the image and its mirror

    def __post_init__(self):
        if self.model == "cnn":
            if not self.conv_channels:
                raise ParamError("train.conv_channels = [] : a cnn needs at least one conv layer")
            n_pools = 0 if self.pooling == "none" else len(self.conv_channels) // self.pool_every
            side = IMAGE_SIDE
            for _ in range(n_pools):
                side //= 2
            if side < 1:
                raise ParamError(
                    f"train.conv_channels has {len(self.conv_channels)} layers with pooling after "
                    f"every {self.pool_every}: {n_pools} poolings shrink 28x28 inputs to nothing "
                    f"(at most 4 are possible); raise train.pool_every or set train.pooling: none")
            if self.norm == "group":
                bad = [c for c in self.conv_channels if c % self.norm_groups]
                if bad:
                    raise ParamError(
                        f"train.norm_groups = {self.norm_groups} must divide every conv channel "
                        f"count; {bad} are not divisible")
        if self.model == "mlp" and self.norm == "instance":
            raise ParamError("train.norm = instance is only defined for model: cnn; "
                             "allowed for mlp: none, batch, layer, group")
        if self.model == "mlp" and self.norm == "group":
            bad = [u for u in self.hidden_units if u % self.norm_groups]
            if bad:
                raise ParamError(f"train.norm_groups = {self.norm_groups} must divide every "
                                 f"hidden layer width; {bad} are not divisible")

    @classmethod
    def from_dict(cls, raw: dict | None):
        return from_dict(cls, "train", raw)


@dataclass(frozen=True)
class PlotParams:
    misclassified: int = _spec(36, low=1, high=100)  # images in the misclassified grid


SECTIONS: dict[str, type] = {"prepare": PrepareParams, "train": TrainParams, "plot": PlotParams}


def _type_name(tp) -> str:
    if tp is bool:
        return "a boolean (true/false)"
    if tp is int:
        return "an integer"
    if tp is float:
        return "a number"
    if tp is str:
        return "a string"
    return "a list of integers"


def _coerce(key: str, value: Any, tp) -> Any:
    """Convert a YAML value to the field's type, or raise naming the key."""
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif tp is float:
        # PyYAML reads `1e-3` (no dot) as a string; accept any string that is a number.
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = float(value)
            if math.isfinite(value):
                return value
    elif tp is str:
        if isinstance(value, str):
            return value
    elif typing.get_origin(tp) is tuple:
        if isinstance(value, (list, tuple)) and all(
                isinstance(v, int) and not isinstance(v, bool) for v in value):
            return tuple(value)
    raise ParamError(f"{key} = {value!r} has the wrong type: expected {_type_name(tp)}")


def _check_value(key: str, value: Any, meta: dict) -> None:
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        allowed = ", ".join(str(c) for c in choices)
        raise ParamError(f"{key} = {value!r} is not allowed; choose one of: {allowed}")
    low, high = meta.get("low"), meta.get("high")
    for v in (value if isinstance(value, tuple) else (value,)):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        too_low = low is not None and (v <= low if meta["low_open"] else v < low)
        too_high = high is not None and (v >= high if meta["high_open"] else v > high)
        if too_low or too_high:
            left = "(" if meta["low_open"] else "["
            right = ")" if meta["high_open"] or high is None else "]"
            lo = "-inf" if low is None else low
            hi = "inf" if high is None else high
            raise ParamError(f"{key} = {value!r} is out of range: must be in {left}{lo}, {hi}{right}")


def _resolved_hints(cls) -> dict:
    # `from __future__ import annotations` makes field types strings; resolve them once.
    return typing.get_type_hints(cls, globalns=vars(typing) | {"types": types})


def from_dict(cls, section: str, raw: dict | None):
    """Build a params dataclass from a YAML mapping, validating every key and value."""
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise ParamError(f"{section} must be a mapping of keys to values, got {raw!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = _resolved_hints(cls)
    values = {}
    for name, value in raw.items():
        key = f"{section}.{name}"
        if name not in fields:
            close = difflib.get_close_matches(str(name), fields, n=1)
            hint = f" (did you mean {section}.{close[0]}?)" if close else ""
            raise ParamError(f"unknown key {key}{hint}; allowed keys: {', '.join(fields)}")
        coerced = _coerce(key, value, hints[name])
        _check_value(key, coerced, fields[name].metadata)
        values[name] = coerced
    return cls(**values)


def as_dict(params) -> dict:
    """Plain dict of a params dataclass (tuples become lists, as in YAML)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(params).items()}


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ParamError(f"{path} not found (run from the repository root)") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as error:
        raise ParamError(f"{path} is not valid YAML: {error}") from None
    if not isinstance(data, dict):
        raise ParamError(f"{path} must hold a mapping of sections, got {type(data).__name__}")
    return data


def load(section: str, path: str | Path = "params.yaml"):
    """Load and validate one section of params.yaml (only the sections dvc.yaml declares)."""
    return from_dict(SECTIONS[section], section, read_yaml(path).get(section))


def validate_all(data: dict) -> dict:
    """Validate every known section of a params mapping; unknown sections are an error."""
    unknown = sorted(set(data) - set(SECTIONS))
    if unknown:
        raise ParamError(f"unknown section(s) {', '.join(unknown)}; allowed: {', '.join(SECTIONS)}")
    return {name: from_dict(cls, name, data.get(name)) for name, cls in SECTIONS.items()}
