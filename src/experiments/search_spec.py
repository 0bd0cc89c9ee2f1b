"""searches.yaml: search spaces, parsed and validated (pure; no Optuna study, no DVC).

A search has a description, a `space` (params key -> uniform | loguniform | int | categorical), an
optional `fixed` mapping, `pruner` and `startup_trials`, and optionally the `sampler` and `seed` it
must run with (a replicate of a search-vs-search study, claims.yaml: then `--sampler` / `--seed`
may only repeat them). Every bound and every categorical choice is
checked against the params schema on load, so a bad space fails before anything is queued, naming
the search and the key. src/experiments/optuna_search.py runs them.
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import json
import math
import typing
from dataclasses import dataclass
from pathlib import Path

from optuna.distributions import (
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from src.core import naming, params, paths
from src.core.errors import ParamError
from src.experiments import pruning, sweep_spec

SAMPLERS = ("tpe", "random")
TYPES = {"uniform": {"low", "high"}, "loguniform": {"low", "high"}, "int": {"low", "high"},
         "categorical": {"choices"}}
FIELDS = {"description", "space", "fixed", "pruner", "startup_trials", "sampler", "seed"}
MAX_CORNERS = 4096  # above this many bound x choice combinations, each dimension is checked alone


@dataclass(frozen=True)
class Dimension:
    key: str   # params key, e.g. train.lr
    type: str  # uniform | loguniform | int | categorical
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple = ()

    def encode(self, value):  # Optuna takes str/int/float/bool choices: lists go as YAML text
        return value if isinstance(value, (str, int, float, bool)) else naming.format_value(value)

    def decode(self, value):
        return next(c for c in self.choices if self.encode(c) == value) if self.choices else value

    def distribution(self):
        if self.type == "categorical":
            return CategoricalDistribution([self.encode(c) for c in self.choices])
        if self.type == "int":
            return IntDistribution(self.low, self.high, log=self.log)
        return FloatDistribution(self.low, self.high, log=self.type == "loguniform")


@dataclass(frozen=True)
class Search:
    name: str
    description: str
    space: tuple[Dimension, ...]
    fixed: dict
    pruner: dict | None  # src.pruning.check_rule's mapping; None = no pruning
    startup_trials: int = 10  # TPE's random start
    sampler: str | None = None  # the sampler it must run with; None: --sampler's (tpe)
    seed: int | None = None     # the sampler seed it must run with; None: --seed's (0)

    def run_settings(self, sampler: str | None, seed: int | None) -> tuple[str, int]:
        """The sampler and seed of a run: the flags' (default tpe, 0), or the ones this search
        declares; a flag that contradicts a declared value is refused."""
        for flag, given, declared in (("--sampler", sampler, self.sampler), ("--seed", seed, self.seed)):
            _require(given is None or declared is None or given == declared,
                     f"search {self.name} runs with {flag[2:]} {declared} (searches.yaml); "
                     f"drop {flag} {given}")
        return (sampler or self.sampler or "tpe",
                seed if seed is not None else self.seed if self.seed is not None else 0)

    def distributions(self) -> dict:
        return {d.key: d.distribution() for d in self.space}

    def decode(self, sampled: dict) -> dict:
        return {d.key: d.decode(sampled[d.key]) for d in self.space}

    def fingerprint(self, extra: dict) -> str:
        """What makes trials comparable: the space and every fixed value (``--set`` included)."""
        return json.dumps({"space": [dataclasses.asdict(d) for d in self.space],
                           "fixed": self.fixed | extra}, sort_keys=True, default=str)


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ParamError(message)


def _field_type(where: str, key: str):
    section, _, name = key.partition(".")
    _require(section in params.SECTIONS and bool(name), f"{where}: {key} is not a params key "
             f"(section.key; sections: {', '.join(params.SECTIONS)})")
    hints = typing.get_type_hints(params.SECTIONS[section])
    close = difflib.get_close_matches(name, hints, n=1)
    _require(name in hints, f"{where}: unknown key {key}" +
             (f" (did you mean {section}.{close[0]}?)" if close else ""))
    return hints[name]


def parse_dimension(where: str, key: str, spec) -> Dimension:
    kind = spec.get("type") if isinstance(spec, dict) else None
    _require(kind in TYPES, f"{where}: {key} needs type: {' | '.join(TYPES)}, got {spec!r}")
    extra = set(spec) - TYPES[kind] - {"type"} - ({"log"} if kind == "int" else set())
    _require(not extra and TYPES[kind] <= set(spec), f"{where}: {key} ({kind}) takes "
             f"{', '.join(sorted(TYPES[kind]))}{' (and log)' if kind == 'int' else ''}, "
             f"got {', '.join(sorted(set(spec) - {'type'}))}")
    hint = _field_type(where, key)
    if kind == "categorical":
        choices = spec["choices"]
        _require(isinstance(choices, list) and bool(choices),
                 f"{where}: {key} choices must be a non-empty list")
        dim = Dimension(key, kind, choices=tuple(choices))
        _require(len({repr(dim.encode(c)) for c in choices}) == len(choices),
                 f"{where}: {key} lists a choice twice: {choices}")
        return dim
    low, high, log = spec["low"], spec["high"], spec.get("log", False)
    number = int if kind == "int" else (int, float)
    _require(all(isinstance(v, number) and not isinstance(v, bool) for v in (low, high)),
             f"{where}: {key} low and high must be {'integers' if kind == 'int' else 'numbers'}, "
             f"got {low!r} and {high!r}")
    _require(low < high, f"{where}: {key} low = {low} must be below high = {high}")
    _require(isinstance(log, bool), f"{where}: {key} log must be true or false, got {log!r}")
    _require(low > 0 or not (kind == "loguniform" or log),
             f"{where}: {key} is on a log scale: low = {low} must be > 0")
    _require(hint in ((int, float) if kind == "int" else (float,)),
             f"{where}: {key} takes {getattr(hint, '__name__', hint)} values: use "
             f"{'type: int or categorical' if hint is int else 'type: categorical'}")
    as_type = int if kind == "int" else float
    return Dimension(key, kind, as_type(low), as_type(high), log)


def parse_search(name: str, spec, base: dict, sweep_names=()) -> Search:
    where = f"search {name}"
    _require(naming.is_valid_study_name(name),
             f"{where!r}: use letters, digits and _ in search names")
    _require(name not in sweep_names, f"{where}: sweeps.yaml has a sweep of that name too")
    _require(name not in naming.RESERVED,
             f"{where}: the name is reserved (`python -m src.study {name}`)")
    _require(isinstance(spec, dict) and isinstance(spec.get("space"), dict) and bool(spec["space"]),
             f"{where}: needs a non-empty `space:` mapping of params key -> distribution")
    _require(set(spec) <= FIELDS, f"{where}: unknown field(s) {sorted(set(spec) - FIELDS)}; "
             f"allowed: {', '.join(sorted(FIELDS))}")
    fixed, startup = dict(spec.get("fixed") or {}), spec.get("startup_trials", 10)
    both = sorted(set(fixed) & set(spec["space"]))
    _require(not both, f"{where}: {', '.join(both)} both fixed and searched")
    _require(isinstance(startup, int) and not isinstance(startup, bool) and startup >= 1,
             f"{where}: startup_trials = {startup!r} must be an integer >= 1")
    sampler, seed = spec.get("sampler"), spec.get("seed")
    _require(sampler is None or sampler in SAMPLERS,
             f"{where}: sampler = {sampler!r}; allowed: {', '.join(SAMPLERS)}")
    _require(seed is None or (isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0),
             f"{where}: seed = {seed!r} must be an integer >= 0")
    search = Search(name, str(spec.get("description", "")),
                    tuple(parse_dimension(where, k, v) for k, v in spec["space"].items()),
                    fixed, pruning.check_rule(where, spec.get("pruner")), startup, sampler, seed)
    check_values(search, base)
    return search


def check_values(search: Search, base: dict, extra: dict | None = None) -> None:
    """Every bound and choice, in every combination (up to MAX_CORNERS), on top of params.yaml,
    the fixed values and ``extra`` (--set), must pass params.validate_all. (An int between its
    bounds can still fail a cross-field check, e.g. norm_groups: such a trial is told FAIL.)"""
    extra = extra or {}
    clash = sorted(set(extra) & {d.key for d in search.space})
    _require(not clash, f"search {search.name}: --set {', '.join(clash)} is searched over; "
             "remove it from --set or from the space")
    try:  # the fixed values alone first: an error there is not a corner's fault
        params.validate_all(sweep_spec.apply(base, search.fixed | extra))
    except ParamError as error:
        raise ParamError(f"search {search.name}: {error}") from None
    probes = [[(d.key, v) for v in (d.choices or (d.low, d.high))] for d in search.space]
    combos = itertools.product(*probes) if math.prod(map(len, probes)) <= MAX_CORNERS else \
        ([p] for dim in probes for p in dim)
    for combo in combos:
        try:
            params.validate_all(sweep_spec.apply(base, search.fixed | extra | dict(combo)))
        except ParamError as error:
            at = ", ".join(f"{k}={naming.format_value(v)}" for k, v in combo)
            raise ParamError(f"search {search.name}, at {at}: {error}") from None


def load(path: Path, base: dict, sweep_names=(), names=None) -> dict[str, Search]:
    """The searches of a searches.yaml (all, or those in ``names``), validated against ``base``."""
    return {name: parse_search(name, spec, base, sweep_names)
            for name, spec in params.read_yaml(path).items() if names is None or name in names}


def search_names(path: Path = paths.SEARCHES) -> list[str]:
    """The searches declared in searches.yaml, unparsed."""
    return list(params.read_yaml(path)) if path.exists() else []


def load_search(name: str) -> Search:
    """Search ``name`` of searches.yaml, validated against params.yaml (an unknown name is
    refused, naming the searches there are)."""
    if name not in search_names():
        raise ParamError(f"unknown search {name!r}; searches in {paths.SEARCHES}: "
                         f"{', '.join(search_names()) or 'none'}")
    base = params.read_yaml(paths.PARAMS)
    params.validate_all(base)
    return load(paths.SEARCHES, base, sweep_spec.sweep_names(), names=[name])[name]
