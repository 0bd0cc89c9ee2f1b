"""Sweep definitions (sweeps.yaml): load, validate, expand into named DVC experiments.

No DVC, no files but the YAML it reads. An experiment's name says where it belongs
(:mod:`src.core.naming`): ``<sweep>--<config>--s<seed>``, e.g.
``interactions--dropout=0.3,norm=batch--s2``.

Every configuration is checked against the params schema before anything is queued: a sweep with
one bad value fails as a whole, naming the sweep, the configuration and the key. Experiments are
queued longest first (their training FLOPs, from the models themselves).
"""

from __future__ import annotations

import copy
import itertools
import subprocess
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from src.core import decide, identity, naming, params, paths, seed_table
from src.core.errors import ParamError, TunelabError
from src.core.naming import config_label, format_value

DEFAULTS = "defaults"  # the sweeps.yaml entry that holds every sweep's StudyDesign defaults
DESIGN_FIELDS = ("margin", "seeds", "max_seeds", "method", "metric")
# What a study decides on, per experiment the mean over its fold models: their CV validation
# accuracy (each on its own held-out fold), or their accuracy on the selection set (all on the
# same prepare.selection_size images). The names are the experiments table's columns.
CV_METRIC = seed_table.CV_METRIC
METRICS = (CV_METRIC, "selection_accuracy")


@dataclass(frozen=True)
class StudyDesign:
    """How a sweep's study decides, as sweeps.yaml says it: the practical margin and the adaptive
    seeds (:meth:`decision` makes the decisions' ``decide.Design`` of them).

    ``margin``: the smallest difference in CV accuracy that matters (a fraction: 0.005 = 0.5
    accuracy points); smaller differences can be shown `equivalent`. ``seeds``: the seeds every
    configuration gets first; ``max_seeds``: the most `sweep run --until-decided` gives one;
    ``method``: how alpha is spent over the looks (src/core/decide.py, METHODS); ``metric``: what
    the decisions compare (METRICS)."""
    margin: float = 0.005
    seeds: int = 3
    max_seeds: int = 10
    method: str = decide.DEFAULT_METHOD
    metric: str = CV_METRIC

    def decision(self, first: int | None = None, last: int | None = None,
                 method: str | None = None) -> decide.Design:
        """The decisions' design (src/core/decide.py, the one Design type) of these seeds and
        method, or of the given ones (flags, a recorded design); the margin and the metric stay
        here: the decisions take them as arguments."""
        return decide.Design(self.seeds if first is None else first,
                             self.max_seeds if last is None else last,
                             method=self.method if method is None else method)


def parse_design(where: str, spec: dict, inherited: StudyDesign) -> StudyDesign:
    """The design fields of a sweeps.yaml mapping (``where`` names it in errors) over ``inherited``."""
    values = {k: spec[k] for k in DESIGN_FIELDS if k in spec}
    margin = values.get("margin", inherited.margin)
    if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not 0 < margin < 1:
        raise ParamError(f"{where}: margin = {margin!r} must be a number in (0, 1), an accuracy "
                         f"difference such as 0.005 (0.5 points)")
    seeds = values.get("seeds", inherited.seeds)
    max_seeds = values.get("max_seeds", inherited.max_seeds)
    for key, value in (("seeds", seeds), ("max_seeds", max_seeds)):
        if isinstance(value, bool) or not isinstance(value, int) or not 2 <= value <= 100:
            raise ParamError(f"{where}: {key} = {value!r} must be an integer in [2, 100]")
    if max_seeds < seeds:
        raise ParamError(f"{where}: max_seeds = {max_seeds} must be at least seeds = {seeds}")
    method = values.get("method", inherited.method)
    if method not in decide.METHODS:
        raise ParamError(f"{where}: method = {method!r}; allowed: {', '.join(decide.METHODS)}")
    metric = values.get("metric", inherited.metric)
    if metric not in METRICS:
        raise ParamError(f"{where}: metric = {metric!r}; allowed: {', '.join(METRICS)}")
    return StudyDesign(float(margin), seeds, max_seeds, method, metric)


@dataclass(frozen=True)
class Sweep:
    name: str
    description: str
    configs: tuple[dict, ...]  # each: params key -> value (fixed values included)
    baseline: dict
    varied: tuple[str, ...]    # the keys that differ between configurations
    design: StudyDesign = StudyDesign()

    def label(self, config: dict) -> str:
        return config_label({k: config[k] for k in self.varied if k in config})

    @property
    def baseline_label(self) -> str:
        return self.label(self.baseline)


@dataclass(frozen=True)
class Experiment:
    sweep: str
    config: str  # the configuration's label
    seed: int
    overrides: dict  # params key -> value, train.seed included
    identity: str = ""  # what makes its numbers: src/core/identity.py ("" where not computed)
    variant: str = ""  # "" with the commit's params.yaml; else a tag of its identity (naming.py)

    @property
    def name(self) -> str:
        return naming.experiment_name(self.sweep, self.config, self.seed, self.variant)

    def set_args(self) -> list[str]:
        """``dvc exp run`` arguments: ``-S key=value`` for every override."""
        args = []
        for key, value in self.overrides.items():
            args += ["-S", f"{key}={format_value(value)}"]
        return args


def grid_factors(sweep: Sweep) -> tuple[tuple[str, str], dict[str, tuple[str, str]]] | None:
    """A full two-way grid: the factor names and each configuration's (level_a, level_b); either
    two varied keys, or one key whose values are pairs (hidden_units [a, b]: layer 1 x layer 2)."""
    key = sweep.varied[0] if len(sweep.varied) == 1 else None
    if len(sweep.varied) == 2 and all(k in c for c in sweep.configs for k in sweep.varied):
        names = tuple(k.split(".")[-1] for k in sweep.varied)
        cells = {sweep.label(c): tuple(format_value(c[k]) for k in sweep.varied)
                 for c in sweep.configs}
    elif key and all(isinstance(c.get(key), list) and len(c[key]) == 2 for c in sweep.configs):
        field = key.split(".")[-1]
        names = (f"{field}[1]", f"{field}[2]")
        cells = {sweep.label(c): (str(c[key][0]), str(c[key][1])) for c in sweep.configs}
    else:
        return None
    a, b = ({cell[i] for cell in cells.values()} for i in (0, 1))
    full = len(a) > 1 and len(b) > 1 and len(set(cells.values())) == len(a) * len(b) == len(cells)
    return (names, cells) if full else None


def parse_set(item: str) -> tuple[str, Any]:
    """``prepare.train_size=2000`` -> ``("prepare.train_size", 2000)`` (the value read as YAML)."""
    key, sep, raw = item.partition("=")
    if not sep or "." not in key:
        raise ParamError(f"--set {item!r}: expected section.key=value, e.g. train.epochs=2")
    try:
        return key.strip(), yaml.safe_load(raw)
    except yaml.YAMLError:
        raise ParamError(f"--set {item!r}: the value is not valid YAML") from None


def apply(base: dict, overrides: dict) -> dict:
    """params.yaml content with ``section.key`` overrides applied (a new dict)."""
    merged = copy.deepcopy(base)
    for key, value in overrides.items():
        section, _, name = key.partition(".")
        merged.setdefault(section, {})
        if not isinstance(merged[section], dict):
            raise ParamError(f"{key}: section {section} is not a mapping")
        merged[section][name] = value
    return merged


def _configs(name: str, spec: dict) -> list[dict]:
    fixed = spec.get("fixed") or {}
    grid = spec.get("grid") or {}
    listed = spec.get("configs")
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ParamError(f"sweep {name}: grid {key} must be a non-empty list of values")
    combos = [dict(zip(grid, values)) for values in itertools.product(*grid.values())] if grid else []
    if listed is not None and not isinstance(listed, list):
        raise ParamError(f"sweep {name}: configs must be a list of mappings")
    explicit = [dict(c or {}) for c in (listed or [])]
    if grid and listed:
        combos = [c | e for c in combos for e in explicit]  # grid x each listed config
    else:
        combos = combos or explicit
    if not combos:
        raise ParamError(f"sweep {name}: needs a grid or configs")
    return [fixed | c for c in combos]


SWEEP_FIELDS = ("description", "grid", "configs", "fixed", "baseline", *DESIGN_FIELDS)


def parse_sweep(name: str, spec: Any, base_params: dict,
                defaults: StudyDesign = StudyDesign()) -> Sweep:
    if not isinstance(spec, dict):
        raise ParamError(f"sweep {name}: must be a mapping with grid/configs and baseline")
    unknown = set(spec) - set(SWEEP_FIELDS)
    if unknown:
        raise ParamError(f"sweep {name}: unknown field(s) {sorted(unknown)}; allowed: "
                         f"{', '.join(SWEEP_FIELDS)}")
    if not naming.is_valid_study_name(name):
        raise ParamError(f"sweep {name!r}: use letters, digits and _ in sweep names")
    if name in naming.RESERVED:
        raise ParamError(f"sweep {name!r}: the name is reserved (`python -m src.study {name}`)")
    configs = _configs(name, spec)
    for config in configs:
        try:
            params.validate_all(apply(base_params, config))
        except ParamError as error:
            raise ParamError(f"sweep {name}, configuration {config_label(config)}: {error}") from None
    varied = tuple(dict.fromkeys(
        k for c in configs for k in c if len({repr(d.get(k)) for d in configs}) > 1))
    baseline = (spec.get("fixed") or {}) | dict(spec.get("baseline") or {})

    def effective(config: dict, key: str):  # a key a configuration leaves out keeps params.yaml's
        section, _, field = key.partition(".")
        return config[key] if key in config else (base_params.get(section) or {}).get(field)

    keys = set(varied) | set(baseline)
    matches = [c for c in configs if all(effective(c, k) == effective(baseline, k) for k in keys)]
    if len(matches) != 1:
        raise ParamError(f"sweep {name}: baseline {config_label(spec.get('baseline') or {})} must "
                         f"match exactly one configuration (it matches {len(matches)})")
    labels = [config_label({k: c[k] for k in varied if k in c}) for c in configs]
    if len(set(labels)) != len(labels):
        raise ParamError(f"sweep {name}: two configurations are identical")
    return Sweep(name, str(spec.get("description", "")), tuple(configs), matches[0], varied,
                 parse_design(f"sweep {name}", spec, defaults))


def load(path: str | Path, base_params: dict, names=None) -> dict[str, Sweep]:
    """The sweeps of a sweeps.yaml (all, or those in ``names``), each validated against
    ``base_params`` (params.yaml). Only the named ones are validated: a sweep that does not fit
    the current params (e.g. group norm on 4 channels) must not block another."""
    data = params.read_yaml(path)
    defaults = load_defaults(data)
    return {name: parse_sweep(name, spec, base_params, defaults) for name, spec in data.items()
            if name != DEFAULTS and (names is None or name in names)}


def load_defaults(data: dict) -> StudyDesign:
    """The `defaults:` entry of sweeps.yaml content (the design fields for every sweep)."""
    spec = data.get(DEFAULTS) or {}
    if not isinstance(spec, dict) or set(spec) - set(DESIGN_FIELDS):
        raise ParamError(f"sweeps.yaml {DEFAULTS}: a mapping of {', '.join(DESIGN_FIELDS)}; got "
                         f"{spec!r}")
    return parse_design(f"sweeps.yaml {DEFAULTS}", spec, StudyDesign())


def training_flops(merged: dict) -> float:
    """Training FLOPs of one experiment with these params (every fold, every epoch): an estimate
    of its cost, to order the queue."""
    from src.core import (  # torch: `sweep list` and `status` need none
        checkpoints,
        models,
    )
    sections = params.validate_all(merged)
    prepare, train = sections["prepare"], sections["train"]
    model = checkpoints.build_model(train)
    samples_per_fold = prepare.train_size * (prepare.cv_folds - 1) / prepare.cv_folds
    return (models.training_flops_per_sample(model) * samples_per_fold * train.epochs
            * prepare.cv_folds)


def config_warnings(experiments: list[Experiment], base_params: dict) -> list[str]:
    """The train stage's warnings (:func:`src.core.engine.config_warnings`) on the device the
    workers will use ($TUNELAB_DEVICE), once per configuration, so that a sweep says so before it
    queues, not in a queue worker's log; a $TUNELAB_DEVICE the workers cannot use fails here too."""
    from src.core import device, engine  # torch, as in training_flops
    on = device.resolve().type
    one_per_config = {exp.config: exp for exp in experiments}  # the seeds share their warnings
    warnings = []
    for exp in one_per_config.values():
        train_cfg = params.validate_all(apply(base_params, exp.overrides))["train"]
        warnings += [f"{exp.sweep}{naming.SEP}{exp.config}: {w}"
                     for w in engine.config_warnings(train_cfg, on)]
    return warnings


def longest_first(experiments: list[Experiment], base_params: dict) -> list[Experiment]:
    """The experiments in decreasing estimated cost (:func:`training_flops`); equal costs keep the
    sweep's order. Queue workers take experiments in order, so the longest start first and short
    ones fill the gaps at the end, instead of one worker running a long experiment alone while
    the others idle (longest-processing-time-first scheduling)."""
    cost: dict[str, float] = {}  # per configuration: the seeds of one cost the same
    for exp in experiments:
        if exp.config not in cost:
            cost[exp.config] = training_flops(apply(base_params, exp.overrides))
    return sorted(experiments, key=lambda exp: -cost[exp.config])


def expand(sweep: Sweep, seeds: int | Sequence[int], base_params: dict, extra: dict | None = None,
           configs: Collection[str] | None = None,
           reference: dict | None = None) -> list[Experiment]:
    """Every configuration (or those labelled in ``configs``) x seed (0..seeds-1, or the seeds
    listed), with ``extra`` (``--set``) applied to each; all validated, nothing returned if one
    is invalid. Each has its identity (src/core/identity.py); one whose identity differs from the
    same configuration and seed on ``reference`` (the commit's params.yaml; default
    ``base_params``) gets a variant tag in its name, so that another ``--set`` or an edited
    params.yaml makes other experiments, never the same names with other numbers."""
    reference = base_params if reference is None else reference
    seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    if isinstance(seeds, int) and seeds < 1:
        raise ParamError(f"--seeds {seeds}: must be at least 1")
    extra = extra or {}  # --set wins over the sweep's own values
    experiments, refused = [], []
    for config in sweep.configs:
        if configs is not None and sweep.label(config) not in configs:
            continue
        for seed in seed_list:
            overrides = config | extra | {"train.seed": seed}
            try:
                ident = identity.of(apply(base_params, overrides))
            except ParamError as error:
                name = naming.experiment_name(sweep.name, sweep.label(config), seed)
                refused.append(f"  {name}: {error}")
                continue
            plain = identity.of_or_none(apply(reference, config | {"train.seed": seed}))
            variant = "" if ident == plain else ident[:identity.TAG]
            experiments.append(Experiment(sweep.name, sweep.label(config), seed, overrides, ident,
                                          variant))
    if refused:
        raise ParamError(f"{len(refused)} of {len(refused) + len(experiments)} experiments of sweep "
                         f"{sweep.name} have invalid params; nothing was queued:\n" + "\n".join(refused))
    return experiments

def sweep_names(path: Path = paths.SWEEPS) -> list[str]:
    """The sweeps declared in sweeps.yaml, unparsed (the `defaults:` entry is not a sweep)."""
    return [n for n in params.read_yaml(path) if n != DEFAULTS] if path.exists() else []


def check_sweep_name(name: str, path: Path = paths.SWEEPS) -> None:
    if name not in sweep_names(path):
        raise TunelabError(f"unknown sweep {name!r}; sweeps in {path}: "
                           f"{', '.join(sweep_names(path))}")


def committed_params(commit: str = "HEAD") -> dict | None:
    """params.yaml as ``commit`` has it (None outside a git repository or if it has none): the
    reference a variant's name is told from (:func:`expand`)."""
    shown = subprocess.run(["git", "show", f"{commit}:{paths.PARAMS.as_posix()}"],
                           capture_output=True, text=True)
    if shown.returncode != 0:
        return None
    try:
        data = yaml.safe_load(shown.stdout)
    except yaml.YAMLError:
        return None
    return data if isinstance(data, dict) else None


def load_sweeps(names=None) -> tuple[dict, dict[str, Sweep]]:
    """params.yaml and the sweeps of sweeps.yaml (all, or ``names``; an unknown name is refused)."""
    for name in names or ():
        check_sweep_name(name)
    base = params.read_yaml(paths.PARAMS)
    params.validate_all(base)
    return base, load(paths.SWEEPS, base, names)
