"""claims.yaml: the claims the studies test, parsed and validated against sweeps.yaml and
searches.yaml (pure but for the YAML it reads; no study results).

Each claim names what it is compared on, as parts of one of these forms (every label a configuration
label of the claim's sweep, as in experiments.csv):

    {a: ARM, b: ARM, expect: E}   a contrast: per replicate, value(a) - value(b)
    {weights: {LABEL: w, ...}, expect: E}
                                  a linear contrast sum w * y (need not sum to 0: claim 20's
                                  "narrow >= 90% of wide" is {narrow: 1, wide: -0.9})
    {best: LABEL, over: [LABELS]} LABEL better than each of the others (default: every other
                                  configuration of the sweep): one part per other
    {term: NAME, expect: T}       a term of the two-way ANOVA of a full grid sweep
    {lr_range: KEY, within: F}    the LR range test's suggestion KEY (reports/lr_find/suggestion.json)
                                  within a factor F of a learning rate as good as the best

An ARM is a label (one configuration), a list of labels (their mean), `rest` (b only: every
configuration not in a), {effect: FACTOR, high: LEVEL, low: LEVEL} (a main effect of a full grid:
the mean over the other factor's levels of y(high) - y(low)), {search: SET, trials: N} (the best CV
accuracy after N trials of each replicate search SET_r<k> of searches.yaml) or {grid: SWEEP} (the
best configuration of a sweep, per seed). E is better | worse | equivalent | not_worse (what the
claim says of the contrast); T is detectable | not_detectable. How a part and a claim are decided
from the data: src/studies/claim_decisions.py.

A claim whose authors ranked by a loss may declare `loss_margin` (in the loss's units: mean
cross-entropy, nats): its contrasts are then decided on CV validation loss as well (lower is
better), beside the accuracy verdict.

A replicate is a seed of a sweep (train.seed), or replicate k of a search set: the search SET_r<k>,
which must declare sampler seed k and fix train.seed k, so that replicate k of a grid sweep and of a
search share their training seed. A sweep's adaptive design (first and most seeds) and margin are
sweeps.yaml's; `studies:` gives a search set's (its replicate searches); `defaults:` the alpha,
and the margin and design of the search sets.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from src.core import decide, naming, params, paths
from src.core.errors import ParamError
from src.experiments import search_spec, sweep_spec

EXPECTS = ("better", "worse", "equivalent", "not_worse")
TERM_EXPECTS = ("detectable", "not_detectable")
LR_KEYS = ("steepest_lr", "min_loss_lr", "max_lr_onecycle")
DEFAULTS = {"alpha": 0.05, "margin": 0.005, "first_seeds": 3, "max_seeds": 6}
CLAIM_FIELDS = {"id", "claim", "source", "figure", "study", "test", "alpha", "margin", "fidelity",
                "note", "diverged", "loss_margin"}
TOP_FIELDS = {"defaults", "sources", "studies", "claims"}


@dataclass(frozen=True)
class Best:
    """The best CV accuracy per replicate: of a search set after ``trials`` trials, or of a grid
    sweep's configurations (``trials`` 0)."""
    kind: str    # "search" | "grid"
    study: str   # the search set (searches SET_r<k>) or the sweep
    trials: int = 0

    def describe(self) -> str:
        return (f"best of {self.study}_r<k> after {self.trials} trials" if self.kind == "search"
                else f"best configuration of sweep {self.study}")


@dataclass(frozen=True)
class Part:
    """One tested statement of a claim."""
    name: str
    kind: str              # "contrast" | "term" | "lr_range"
    expect: str
    a: tuple = ()          # contrast: ((label, weight), ...) or a Best
    b: tuple = ()          # contrast: the same; () for a weights-only contrast
    best_a: Best | None = None
    best_b: Best | None = None
    term: str = ""         # term: the ANOVA term ("dropout", "norm", "dropout:norm")
    lr_key: str = ""       # lr_range: the suggestion's key
    within: float = 0.0    # lr_range: the tolerance factor
    effects: tuple[str, ...] = ()  # contrast of main effects: their factors (the report adds eta²)

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(label for label, _ in self.a + self.b))

    @property
    def is_pair(self) -> bool:
        """Two single configurations, weight 1 each: Welch when their seed sets differ."""
        return (len(self.a) == 1 and len(self.b) == 1 and self.a[0][1] == 1.0 == self.b[0][1])


# A claim's and a study's design is the decisions' one (src/core/decide.py): first and most
# seeds, the claim's alpha, Bonferroni over the looks (the claims' boundary, module docstring).
Design = decide.Design


FIDELITY_KEYS = ("prepare.train_size", "prepare.cv_folds", "train.epochs")


def fidelity(configs: list[dict], base: dict) -> str:
    """The training set, folds and epochs of these configurations (params keys -> values, a key
    left out keeping params.yaml's): e.g. "60,000 images, 5 folds, 3 and 10 epochs"."""
    def values(key):
        section, _, name = key.partition(".")
        found = [f"{v:,}" for v in sorted({c.get(key, (base.get(section) or {}).get(name))
                                           for c in configs})]
        return " and ".join([", ".join(found[:-1]), found[-1]] if len(found) > 2 else found)
    size, folds, epochs = (values(k) for k in FIDELITY_KEYS)
    return f"{size} images, {folds} folds, {epochs} epochs"


@dataclass(frozen=True)
class Claim:
    id: int
    text: str
    source: str            # the source's description
    figure: str            # what its authors reported
    study: str             # the sweep its labels belong to ("" for search-vs-search claims)
    parts: tuple[Part, ...]
    alpha: float
    margin: float
    design: Design         # over every study it reads (replicates: as many as the smallest has)
    studies: tuple[str, ...]  # every sweep / search set it reads, the claim's own first
    fidelity: str = ""     # a declared change of fidelity and why
    note: str = ""         # how the claim is read, where that is a choice
    diverged_as_chance: bool = False  # a diverged run counts as chance accuracy (trainability)
    trained_at: str = ""   # the fidelity of what it compares (:func:`fidelity`)
    # Also decided on CV validation loss (lower is better) within this margin, in the loss's units
    # (mean cross-entropy, nats); None: on CV accuracy alone.
    loss_margin: float | None = None


@dataclass(frozen=True)
class Claims:
    claims: tuple[Claim, ...]
    designs: dict[str, Design] = field(default_factory=dict)  # per study, every study a claim reads
    sweeps: dict[str, sweep_spec.Sweep] = field(default_factory=dict)
    search_sets: dict[str, tuple[search_spec.Search, ...]] = field(default_factory=dict)


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ParamError(message)


def _number(value, where: str, low: float, high: float, what: str) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    _require(ok and low < value < high, f"{where}: {what} = {value!r} must be a number in "
             f"({low:g}, {high:g})")
    return float(value)


def _design(where: str, spec, defaults: Design) -> Design:
    spec = spec or {}
    _require(isinstance(spec, dict) and set(spec) <= {"first_seeds", "max_seeds"},
             f"{where}: takes first_seeds and max_seeds, got {spec!r}")
    first, most = spec.get("first_seeds", defaults.first_seeds), spec.get("max_seeds", defaults.max_seeds)
    for name, value in (("first_seeds", first), ("max_seeds", most)):
        _require(isinstance(value, int) and not isinstance(value, bool) and value >= 2,
                 f"{where}: {name} = {value!r} must be an integer >= 2")
    _require(most >= first, f"{where}: max_seeds {most} must be >= first_seeds {first}")
    return Design(first, most)


def replicate_searches(name: str, searches: dict[str, search_spec.Search]) -> tuple[search_spec.Search, ...]:
    """The searches ``<name>_r0``, ``<name>_r1``, ... of a search set, in replicate order (those
    declared, from r0 on without gaps)."""
    found = {int(m[1]): s for n, s in searches.items() if (m := re.fullmatch(rf"{name}_r(\d+)", n))}
    return tuple(found[k] for k in range(len(found)) if all(j in found for j in range(k + 1)))


class _Context:
    """What a claim's parts are checked against."""

    def __init__(self, sweeps, searches, sweep_names=None):
        self.sweeps, self.searches = sweeps, searches
        self.sweep_names = list(sweep_names or sweeps)  # for messages: every sweep of the file
        self.used_sets: dict[str, tuple] = {}

    def sweep(self, where: str, name) -> sweep_spec.Sweep:
        _require(isinstance(name, str) and name in self.sweeps,
                 f"{where}: {name!r} is not a sweep of {paths.SWEEPS} (sweeps: "
                 f"{', '.join(self.sweep_names)})")
        return self.sweeps[name]

    def search_set(self, where: str, name) -> tuple:
        reps = replicate_searches(str(name), self.searches)
        _require(bool(reps), f"{where}: no searches {name}_r0, {name}_r1, ... in {paths.SEARCHES}")
        for k, s in enumerate(reps):
            _require(s.seed == k and s.fixed.get("train.seed") == k,
                     f"{where}: search {s.name} must declare seed: {k} and fix train.seed: {k} "
                     f"(replicate {k}); it has seed {s.seed}, train.seed {s.fixed.get('train.seed')}")
            _require(s.sampler is not None, f"{where}: search {s.name} must declare its sampler")
            _require(s.pruner is None, f"{where}: search {s.name} prunes trials; a search-vs-search "
                     "claim compares complete trials")
        shape = {(s.sampler, s.space, s.startup_trials,
                  repr(sorted((k, v) for k, v in s.fixed.items() if k != "train.seed")))
                 for s in reps}
        _require(len(shape) == 1, f"{where}: the searches {name}_r<k> must differ only in their "
                 "seeds (sampler seed and train.seed)")
        self.used_sets[str(name)] = reps
        return reps


def _labels(sweep: sweep_spec.Sweep) -> list[str]:
    return [sweep.label(c) for c in sweep.configs]


def _label(where: str, sweep: sweep_spec.Sweep, label) -> str:
    labels = _labels(sweep)
    _require(isinstance(label, str) and label in labels,
             f"{where}: {label!r} is not a configuration of sweep {sweep.name}; its "
             f"configurations: {', '.join(labels)}")
    return label


def _grid(where: str, sweep: sweep_spec.Sweep):
    grid = sweep_spec.grid_factors(sweep)
    _require(grid is not None, f"{where}: sweep {sweep.name} is not a full two-way grid, so it has "
             "no ANOVA terms or main effects")
    return grid


def effect_weights(sweep: sweep_spec.Sweep, factor: str, high: str, low: str) -> tuple:
    """A main effect of a full grid as weights over its labels: the mean over the other factor's
    levels of y(high) - y(low) (levels as :func:`sweep_spec.grid_factors` writes them)."""
    names, cells = sweep_spec.grid_factors(sweep)
    i = names.index(factor)
    others = list(dict.fromkeys(cell[1 - i] for cell in cells.values()))
    by_cell = {cell: label for label, cell in cells.items()}

    def cell(level, other):
        return by_cell[(level, other) if i == 0 else (other, level)]

    return tuple((cell(level, o), sign / len(others)) for o in others
                 for level, sign in ((high, 1.0), (low, -1.0)))


def term_contrasts(sweep: sweep_spec.Sweep, term: str) -> dict[str, tuple]:
    """The 1-df contrasts of a two-way ANOVA term as weights over labels, against the baseline's
    levels: for a main effect each level vs the baseline's (:func:`effect_weights`); for the
    interaction each difference of differences (a_i - a_0) at b_j minus the same at b_0."""
    (fa, fb), cells = sweep_spec.grid_factors(sweep)
    base = cells[sweep.baseline_label]
    levels = [list(dict.fromkeys(cell[i] for cell in cells.values())) for i in (0, 1)]
    if term in (fa, fb):
        i = (fa, fb).index(term)
        return {f"{term}={level} vs {base[i]}": effect_weights(sweep, term, level, base[i])
                for level in levels[i] if level != base[i]}
    by_cell = {cell: label for label, cell in cells.items()}
    return {f"({fa}={la} vs {base[0]}) x ({fb}={lb} vs {base[1]})": (
        (by_cell[(la, lb)], 1.0), (by_cell[(la, base[1])], -1.0),
        (by_cell[(base[0], lb)], -1.0), (by_cell[(base[0], base[1])], 1.0))
        for la in levels[0] if la != base[0] for lb in levels[1] if lb != base[1]}


def _effect(where: str, sweep: sweep_spec.Sweep, spec: dict) -> tuple:
    _require(set(spec) == {"effect", "high", "low"},
             f"{where}: an effect arm takes effect, high and low, got {sorted(spec)}")
    (names, cells) = _grid(where, sweep)
    factor = spec["effect"]
    _require(factor in names, f"{where}: effect {factor!r} is not a factor of sweep {sweep.name} "
             f"(factors: {', '.join(names)})")
    levels = list(dict.fromkeys(cell[names.index(factor)] for cell in cells.values()))
    high, low = naming.format_value(spec["high"]), naming.format_value(spec["low"])
    for level in (high, low):
        _require(level in levels, f"{where}: {factor} level {level!r} is not in sweep "
                 f"{sweep.name} (levels: {', '.join(levels)})")
    _require(high != low, f"{where}: effect {factor}: high and low are both {high}")
    return effect_weights(sweep, factor, high, low)


def _arm(where: str, ctx: _Context, sweep, spec, other: tuple = ()) -> tuple | Best:
    if isinstance(spec, dict) and "search" in spec:
        _require(set(spec) == {"search", "trials"}, f"{where}: a search arm takes search and trials")
        trials = spec["trials"]
        _require(isinstance(trials, int) and not isinstance(trials, bool) and trials >= 1,
                 f"{where}: trials = {trials!r} must be an integer >= 1")
        ctx.search_set(where, spec["search"])
        return Best("search", spec["search"], trials)
    if isinstance(spec, dict) and "grid" in spec:
        _require(set(spec) == {"grid"}, f"{where}: a grid arm takes only grid: SWEEP")
        return Best("grid", ctx.sweep(where, spec["grid"]).name)
    _require(sweep is not None, f"{where}: the claim needs `study:` (a sweep) for configuration arms")
    if isinstance(spec, dict):
        return _effect(where, sweep, spec)
    if spec == "rest":
        _require(bool(other), f"{where}: `rest` is only allowed as b")
        rest = [label for label in _labels(sweep) if label not in {x for x, _ in other}]
        return tuple((label, 1.0 / len(rest)) for label in rest)
    labels = spec if isinstance(spec, list) else [spec]
    _require(bool(labels), f"{where}: an empty list of configurations")
    labels = [_label(where, sweep, label) for label in labels]
    _require(len(set(labels)) == len(labels), f"{where}: a configuration listed twice")
    return tuple((label, 1.0 / len(labels)) for label in labels)


def _name(a, b) -> str:
    def side(arm):
        if isinstance(arm, Best):
            return arm.describe()
        if len(arm) == 1:
            return arm[0][0]
        if all(w > 0 for _, w in arm):
            return f"mean of {len(arm)} ({', '.join(label for label, _ in arm)})"
        return "effect " + " ".join(f"{w:+.3g}·{label}" for label, w in arm)
    return f"{side(a)} vs {side(b)}"


def _part(where: str, ctx: _Context, sweep, spec) -> list[Part]:
    _require(isinstance(spec, dict), f"{where}: a part must be a mapping, got {spec!r}")
    name = spec.get("name")
    _require(name is None or isinstance(name, str), f"{where}: name must be text")
    keys = set(spec) - {"name"}
    if "best" in keys:
        _require(keys <= {"best", "over"}, f"{where}: best takes over, got {sorted(keys)}")
        _require(sweep is not None, f"{where}: a best part needs the claim's `study:` (a sweep)")
        best = _label(where, sweep, spec["best"])
        over = spec.get("over") or [x for x in _labels(sweep) if x != best]
        over = [_label(where, sweep, x) for x in over]
        _require(best not in over, f"{where}: {best} is in its own `over`")
        return [Part(f"{best} vs {other}", "contrast", "better", ((best, 1.0),), ((other, 1.0),))
                for other in over]
    if "term" in keys:
        _require(keys == {"term", "expect"}, f"{where}: a term part takes term and expect")
        (a, b), _ = _grid(where, sweep)
        terms = (a, b, f"{a}:{b}")
        _require(spec["term"] in terms, f"{where}: term {spec['term']!r} is not one of sweep "
                 f"{sweep.name}'s ANOVA terms: {', '.join(terms)}")
        _require(spec["expect"] in TERM_EXPECTS, f"{where}: a term's expect = {spec['expect']!r}; "
                 f"allowed: {', '.join(TERM_EXPECTS)}")
        return [Part(name or f"ANOVA term {spec['term']}", "term", spec["expect"], term=spec["term"])]
    if "lr_range" in keys:
        _require(keys == {"lr_range", "within"}, f"{where}: an lr_range part takes lr_range and within")
        _require(spec["lr_range"] in LR_KEYS, f"{where}: lr_range = {spec['lr_range']!r}; allowed: "
                 f"{', '.join(LR_KEYS)}")
        _require(sweep is not None and sweep.varied == ("train.lr",),
                 f"{where}: an lr_range part needs a sweep over train.lr alone as the claim's study")
        within = _number(spec["within"], where, 1.0, math.inf, "within")
        return [Part(name or f"{spec['lr_range']} within x{within:g} of an LR as good as the best",
                     "lr_range", "close", lr_key=spec["lr_range"], within=within)]
    expect = spec.get("expect")
    _require(expect in EXPECTS, f"{where}: expect = {expect!r}; allowed: {', '.join(EXPECTS)}")
    if "weights" in keys:
        _require(keys == {"weights", "expect"}, f"{where}: a weights part takes weights and expect")
        weights = spec["weights"]
        _require(isinstance(weights, dict) and len(weights) >= 2,
                 f"{where}: weights must map at least 2 configurations to numbers")
        arm = tuple((_label(where, sweep, k), _number(w, where, -math.inf, math.inf, f"weight of {k}"))
                    for k, w in weights.items())
        shown = " ".join(f"{w:+g}·{label}" for label, w in arm)
        return [Part(name or shown, "contrast", expect, arm)]
    _require(keys == {"a", "b", "expect"}, f"{where}: a contrast takes a, b and expect (or best, "
             f"weights, term, lr_range), got {sorted(keys)}")
    a = _arm(where, ctx, sweep, spec["a"])
    b = _arm(where, ctx, sweep, spec["b"], a if isinstance(a, tuple) else ())
    _require(isinstance(a, Best) == isinstance(b, Best),
             f"{where}: a and b must both be configurations or both be best-of arms")
    if isinstance(a, Best):
        return [Part(name or _name(a, b), "contrast", expect, best_a=a, best_b=b)]
    _require(set(a) != set(b), f"{where}: a and b are the same")
    effects = tuple(arm["effect"] for arm in (spec["a"], spec["b"])
                    if isinstance(arm, dict) and "effect" in arm)
    shown = " vs ".join(f"main effect of {arm['effect']} ({naming.format_value(arm['high'])} - "
                        f"{naming.format_value(arm['low'])})" for arm in (spec["a"], spec["b"])
                        ) if len(effects) == 2 else _name(a, b)
    if spec["b"] == "rest":
        shown = f"{_name(a, a).split(' vs ')[0]} vs the mean of the other {len(b)}"
    return [Part(name or shown, "contrast", expect, a, b, effects=effects)]


def parse_claim(spec, ctx: _Context, defaults: dict, sources: dict, designs: dict,
                base: dict) -> Claim:
    _require(isinstance(spec, dict) and isinstance(spec.get("id"), int),
             f"every claim needs an integer id, got {spec!r}"[:200])
    where = f"claim {spec['id']}"
    unknown = set(spec) - CLAIM_FIELDS
    _require(not unknown, f"{where}: unknown field(s) {sorted(unknown)}; allowed: "
             f"{', '.join(sorted(CLAIM_FIELDS))}")
    for key in ("claim", "source", "figure"):
        _require(isinstance(spec.get(key), str) and spec[key].strip(), f"{where}: needs {key}: text")
    _require(spec["source"] in sources, f"{where}: source {spec['source']!r} is not in `sources:` "
             f"({', '.join(sources)})")
    sweep = ctx.sweep(where, spec["study"]) if "study" in spec else None
    tests = spec.get("test")
    _require(isinstance(tests, list) and bool(tests), f"{where}: needs test: a non-empty list")
    ctx.used_sets = {}
    parts = [p for i, t in enumerate(tests) for p in _part(f"{where}, test {i + 1}", ctx, sweep, t)]
    _require(len({p.name for p in parts}) == len(parts), f"{where}: two parts test the same thing")
    kinds = {p.kind for p in parts}
    _require(len(kinds) == 1, f"{where}: mixes {' and '.join(sorted(kinds))} parts; give each its "
             "own claim")
    _require(len(parts) == 1 or parts[0].kind == "contrast",
             f"{where}: one {parts[0].kind} part per claim")
    studies = [spec.get("study")] + [s for p in parts for best in (p.best_a, p.best_b) if best
                                     for s in [best.study]]
    studies = tuple(dict.fromkeys(s for s in studies if s))
    for name in studies:
        design = designs[name]
        sets = ctx.used_sets.get(name)
        _require(sets is None or len(sets) >= design.max_seeds,
                 f"{where}: search set {name} has {len(sets or ())} replicate searches in "
                 f"{paths.SEARCHES}, fewer than its max_seeds {design.max_seeds}")
    chosen = [designs[s] for s in studies]
    # A contrast across studies pairs them by replicate: it has at most as many replicates, so
    # looks, as the study with the fewest (a grid sweep of max 10 seeds against a search set of
    # 6 replicates gets 6, not a design of 10 that spends alpha on looks that never come).
    alpha = _number(spec.get("alpha", defaults["alpha"]), where, 0.0, 0.5, "alpha")
    design = Design(min(d.first_seeds for d in chosen), min(d.max_seeds for d in chosen), alpha)
    diverged = spec.get("diverged")
    _require(diverged in (None, "chance"), f"{where}: diverged = {diverged!r}; allowed: chance")
    configs = [c for c in sweep.configs if sweep.label(c) in
               {label for p in parts for label in p.labels}] if sweep else []
    for p in parts:
        for best in (p.best_a, p.best_b):
            if best and best.kind == "grid":
                configs += list(ctx.sweeps[best.study].configs)
            elif best:
                configs += [s.fixed for s in ctx.used_sets[best.study]]
    if not configs and sweep:  # an lr_range or term part reads the whole sweep
        configs = list(sweep.configs)
    loss_margin = spec.get("loss_margin")
    if loss_margin is not None:
        loss_margin = _number(loss_margin, where, 0.0, math.inf, "loss_margin")
        _require(all(p.kind == "contrast" and not p.best_a for p in parts),
                 f"{where}: loss_margin needs contrasts of configurations (experiments.csv has a "
                 "validation loss; an ANOVA term, an LR range test or a best-of arm has none)")
    return Claim(spec["id"], spec["claim"].strip(), sources[spec["source"]], spec["figure"].strip(),
                 spec.get("study") or "", tuple(parts),
                 alpha,
                 _number(spec.get("margin", sweep.design.margin if sweep else defaults["margin"]),
                         where, 0.0, 1.0, "margin"),
                 design, studies, str(spec.get("fidelity") or "").strip(),
                 str(spec.get("note") or "").strip(), diverged == "chance",
                 fidelity(configs, base), loss_margin)


def parse(data: dict, sweeps: dict[str, sweep_spec.Sweep], searches: dict[str, search_spec.Search],
          base: dict, sweep_names=None) -> Claims:
    """claims.yaml's content, checked against the (parsed) sweeps and searches and params.yaml's
    content ``base``; ``sweep_names``: every sweep of sweeps.yaml, for messages."""
    _require(isinstance(data, dict), f"{paths.CLAIMS} must be a mapping")
    unknown = set(data) - TOP_FIELDS
    _require(not unknown, f"{paths.CLAIMS}: unknown section(s) {sorted(unknown)}; allowed: "
             f"{', '.join(sorted(TOP_FIELDS))}")
    given = data.get("defaults") or {}
    _require(isinstance(given, dict) and set(given) <= set(DEFAULTS),
             f"defaults: takes {', '.join(DEFAULTS)}, got {given!r}")
    defaults = DEFAULTS | given
    base_design = _design("defaults", {k: defaults[k] for k in ("first_seeds", "max_seeds")},
                          Design(3, 6))
    sources = data.get("sources") or {}
    _require(isinstance(sources, dict) and all(isinstance(v, str) for v in sources.values()),
             "sources: must map a short name to a description")
    ctx = _Context(sweeps, searches, sweep_names)
    studies = data.get("studies") or {}
    _require(isinstance(studies, dict), "studies: must map a search set to its design")
    for name in studies:
        _require(name not in sweeps, f"studies: {name} is a sweep: its design (seeds, max_seeds) "
                 f"and margin live in {paths.SWEEPS}, where `sweep run` and `study` read them")
        _require(bool(replicate_searches(name, searches)),
                 f"studies: {name!r} is not a search set ({name}_r0, ...) of {paths.SEARCHES}")
    # A sweep's design is the one sweeps.yaml declares (one place for `sweep run`, `study` and the
    # claims); a search set's (its replicate searches) is claims.yaml's.
    designs = {name: Design(sweep.design.seeds, sweep.design.max_seeds)
               for name, sweep in sweeps.items()}
    sets = {m[1] for n in searches if (m := re.fullmatch(r"(.+)_r\d+", n))}
    designs |= {name: _design(f"studies: {name}", studies.get(name), base_design) for name in sets}
    listed = data.get("claims")
    _require(isinstance(listed, list) and bool(listed), "claims: must be a non-empty list")
    claims, search_sets = [], {}
    for spec in listed:
        claim = parse_claim(spec, ctx, defaults, sources, designs, base)
        search_sets |= ctx.used_sets
        claims.append(claim)
    ids = [c.id for c in claims]
    _require(len(set(ids)) == len(ids), f"claims: id(s) {sorted({i for i in ids if ids.count(i) > 1})} "
             "used twice")
    read = list(dict.fromkeys(s for c in claims for s in c.studies))
    return Claims(tuple(claims), {s: designs[s] for s in read},
                  {s: sweeps[s] for s in read if s in sweeps}, search_sets)


def load(path: Path = paths.CLAIMS, sweeps_path: Path = paths.SWEEPS,
         searches_path: Path = paths.SEARCHES, params_path: Path = paths.PARAMS) -> Claims:
    """claims.yaml validated against sweeps.yaml, searches.yaml and params.yaml (only the sweeps
    and searches it names are parsed, as `sweep run` does)."""
    data = params.read_yaml(path)
    base = params.read_yaml(params_path)
    params.validate_all(base)
    named = _named_studies(data)
    sweep_names = sweep_spec.sweep_names(sweeps_path)
    sweeps = sweep_spec.load(sweeps_path, base, [n for n in named if n in sweep_names])
    search_names = search_spec.search_names(searches_path) if searches_path.exists() else []
    wanted = [n for n in search_names if re.sub(r"_r\d+$", "", n) in named]
    searches = search_spec.load(searches_path, base, sweep_names, wanted) if wanted else {}
    try:
        return parse(data, sweeps, searches, base, sweep_names)
    except ParamError as error:
        raise ParamError(f"{path}: {error}") from None


def _named_studies(data: dict) -> set[str]:
    """Every study name claims.yaml mentions (claims' study, search and grid arms, studies:)."""
    names = set((data.get("studies") or {}) if isinstance(data, dict) else ())
    for spec in (data.get("claims") or []) if isinstance(data, dict) else []:
        if not isinstance(spec, dict):
            continue
        names.add(spec.get("study"))
        for test in spec.get("test") or []:
            for arm in (test.get("a"), test.get("b")) if isinstance(test, dict) else ():
                if isinstance(arm, dict):
                    names |= {arm.get("search"), arm.get("grid")}
    return {n for n in names if isinstance(n, str)}
