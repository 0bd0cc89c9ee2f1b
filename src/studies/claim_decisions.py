"""Every claim of claims.yaml decided from the committed studies (pure: the studies' tables come in
as DataFrames, a ClaimResult per claim goes out); src/studies/claims_report.py renders them as
reports/claims.md and claims.csv (`python -m src.study claims`).

How a claim is decided (also the header of reports/claims.md):

1. A replicate is a seed of a sweep, or replicate k of a search set (sampler seed k, train.seed k).
   Only usable experiments count (src.core.status.usable: completed or early-stopped, with a CV
   accuracy); a claim marked `diverged: chance` counts a diverged run as chance accuracy (0.1).
2. A contrast part is a value per replicate: value(a) - value(b), or a weighted sum of
   configurations. A configuration's value is its CV validation accuracy (mean over folds, final
   epoch); a group's is the mean of its configurations; a main effect's is the mean over the other
   factor's levels of y(high) - y(low); a search's is the best CV accuracy among its first N trials
   (the replicate counts only once all N have run; failed or pruned trials count as run, with no
   value); a grid sweep's is its best configuration at that seed. Two single configurations whose
   seed sets are equal are paired by seed; whose seed sets differ are compared unpaired (Welch).
   Every other contrast is paired, on the replicates that all its terms have.
3. The parts of a claim form one family: src.core.decide.decide_tests at the design's level
   alpha / looks (the Bonferroni boundary of the adaptive studies: looks = max_seeds -
   first_seeds + 1, so a decision at whatever look a study stopped keeps its error rate), Holm
   over the parts, TOST against ±margin. Each part gets better / worse / equivalent / undecided
   (with the seeds that would decide it) / not tested.
4. A part's verdict against what the claim expects of it:
   - better (worse): better (worse) -> holds; worse (better) -> fails; equivalent -> equivalent
     (no difference beyond the margin); undecided or not tested -> undecided. A difference that is
     significant but smaller than the margin still holds ("by less than the margin").
   - equivalent: equivalent, or a significant difference within the margin -> holds; a
     difference beyond the margin -> fails; else undecided.
   - not_worse: better, equivalent, or worse by less than the margin -> holds; worse -> fails;
     else undecided (TOST is two-sided, so a gain not yet significant stays undecided:
     conservative).
   - an ANOVA term (two-way ANOVA, src.core.stats.two_way_anova, on every usable experiment of the
     grid), expected detectable: p < alpha / looks -> holds ("detectable at n"); else, when each
     1-degree-of-freedom contrast of the term (a level against the baseline's, for an interaction
     the difference of differences) is equivalent within the margin -> equivalent; else
     undecided. Expected not_detectable: the same two tests, the other way round.
   - lr_range: the grid learning rates within the factor of the suggestion are the candidates;
     each is compared with every other rate (one family). Holds when a candidate is not worse than
     any other (as not_worse above); fails when there is no candidate or every one is beaten
     beyond the margin; else undecided.
5. A claim: fails if a part fails; else undecided if a part is undecided; else equivalent if a
   part is equivalent; else holds. "Not run" when a study it reads has no committed results.
6. A claim whose authors ranked by a loss declares `loss_margin` (claims.yaml, in the loss's
   units: mean cross-entropy, nats) and is decided a second time, by rules 2-5 on its CV
   validation loss (mean over folds, final epoch; lower is better, so "better" is a lower loss;
   a diverged run counts as ln(10), a uniform guess, where diverged runs count as chance),
   against ±loss_margin. The two verdicts are shown side by side and where they differ the page
   says so; the accuracy verdict is the one counted above. A study whose experiments did not
   record the loss says so ("not recorded").
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from enum import StrEnum

import numpy as np
import pandas as pd

from src.core import decide, params, paths, seed_table, stats
from src.core.decide import Verdict
from src.core.status import usable
from src.experiments import claim_spec, sweep_spec
from src.experiments.claim_spec import Best, Claim, Part


class ClaimOutcome(StrEnum):
    """A claim's or a part's outcome (module docstring, rules 4-5); a ``str`` that claims.md and
    claims.csv write as the plain word."""

    HOLDS = "holds"
    FAILS = "fails"
    EQUIVALENT = "equivalent"
    UNDECIDED = "undecided"
    NOT_RUN = "not run"


OUTCOMES = tuple(ClaimOutcome)
CHANCE = seed_table.CHANCE
LOSS = "cv_val_loss"  # experiments.csv's CV validation loss (sweep_study.METRICS: cv.val_loss.mean)
CHANCE_LOSS = math.log(params.N_CLASSES)  # the cross-entropy of a uniform guess
NOT_RECORDED = "not recorded"  # a loss decision whose study has no validation loss
JOBS = 2  # the workers the run commands ask for
LR_LINK = paths.LR_FIND_SUGGESTION.relative_to(paths.CLAIMS_REPORT.parent).as_posix()


@dataclass(frozen=True)
class Studies:
    """The committed results a claims page is made of (what src/study.py read)."""
    experiments: dict[str, pd.DataFrame] = field(default_factory=dict)  # sweep -> experiments.csv
    trials: dict[str, pd.DataFrame] = field(default_factory=dict)       # search -> trials.csv
    suggestion: dict | None = None       # reports/lr_find/suggestion.json
    reports: frozenset = frozenset()     # the report files that exist, relative to reports/


@dataclass
class PartResult:
    part: Part
    outcome: ClaimOutcome
    decision: decide.Decision | None = None  # a term's: its widest 1-df contrast
    detail: str = ""
    verdict: str = ""      # when not the decision's label (an ANOVA term's)
    p: float | None = None  # when not the decision's p (an ANOVA term's p)

    @property
    def label(self) -> str:
        return self.verdict or (self.decision.label() if self.decision else "")

    @property
    def p_value(self) -> float:
        return self.p if self.p is not None else self.decision.p_value if self.decision else math.nan


@dataclass
class ClaimResult:
    claim: Claim
    outcome: ClaimOutcome
    parts: list[PartResult]
    missing: list[str]   # the commands that would run the studies it lacks
    links: list[str]     # reports it reads, relative to reports/
    looks: int = 1
    loss: LossResult | None = None  # the same claim on CV validation loss (:func:`decide_loss`)

    @property
    def shown(self) -> PartResult | None:
        """The part that decides the claim: the first with the claim's outcome."""
        return next((r for r in self.parts if r.outcome == self.outcome), None)


@dataclass
class LossResult:
    """A claim decided on CV validation loss, lower is better (claims that declare loss_margin).
    The decisions are of minus the loss, so that "better" means a lower loss, as on accuracy."""
    outcome: str                # as a claim's (OUTCOMES), or NOT_RECORDED
    parts: list[PartResult]
    margin: float               # in the loss's units (nats)


# --- numbers in words (the parts' notes here, the page in claims_report) ----------------------

def points(value: float, signed: bool = False) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value * 100:+.2f}" if signed else f"{value * 100:.2f}"


def interval(d: decide.Decision | None) -> str:
    if d is None or not math.isfinite(d.diff):
        return "n/a"
    if not (math.isfinite(d.ci_low) and math.isfinite(d.ci_high)):
        return points(d.diff, signed=True)
    return f"{points(d.diff, True)} [{points(d.ci_low, True)}, {points(d.ci_high, True)}]"


# --- the values of a study -----------------------------------------------------------------------

def _table(frame: pd.DataFrame | None, chance: bool) -> dict[str, dict[int, float]]:
    """config -> seed -> CV accuracy: the one per-seed table (src/core/seed_table.py: failed runs
    left out, NaN for a diverged or pruned one, or chance for a diverged one if asked)."""
    return seed_table.by_seed(seed_table.runs_of_frame(frame), seed_table.CV_METRIC, chance)


def _values(frame: pd.DataFrame | None, chance: bool) -> dict[str, dict[int, float]]:
    """The values the statistics use: the table's finite ones."""
    return seed_table.finite(_table(frame, chance))


def search_best(trials: pd.DataFrame | None, n_trials: int) -> float | None:
    """The best CV accuracy among trials 0 .. n_trials-1 of one search; None until all of them have
    run or when none of them has a value."""
    if trials is None or trials.empty:
        return None
    first = trials[trials["trial"] < n_trials]
    if first["trial"].nunique() < n_trials:
        return None
    values = usable(first)["cv_accuracy"]
    return float(values.max()) if len(values) else None


def best_values(best: Best, claims: claim_spec.Claims, studies: Studies) -> dict[int, float]:
    """Replicate -> the best-of value of a search set or a grid sweep."""
    if best.kind == "search":
        out = {}
        for k, search in enumerate(claims.search_sets[best.study]):
            value = search_best(studies.trials.get(search.name), best.trials)
            if value is not None:
                out[k] = value
        return out
    sweep, frame = claims.sweeps[best.study], studies.experiments.get(best.study)
    ran = _table(frame, False)
    values = seed_table.finite(ran)
    labels = [sweep.label(c) for c in sweep.configs]
    seeds = set.intersection(*(set(ran.get(label, {})) for label in labels))
    out = {}
    for seed in sorted(seeds):  # every configuration ran at this seed; the best of those with a value
        got = [values[label][seed] for label in labels if seed in values.get(label, {})]
        if got:
            out[seed] = max(got)
    return out


# --- decisions -----------------------------------------------------------------------------------

def judge(decision: decide.Decision, expect: str) -> ClaimOutcome:
    """A part's outcome from its decision and what the claim expects (module docstring, rule 4)."""
    verdict, below = decision.verdict, decision.below_margin
    if expect in (Verdict.BETTER, Verdict.WORSE):
        against = Verdict.WORSE if expect == Verdict.BETTER else Verdict.BETTER
        return {expect: ClaimOutcome.HOLDS, against: ClaimOutcome.FAILS,
                Verdict.EQUIVALENT: ClaimOutcome.EQUIVALENT}.get(verdict, ClaimOutcome.UNDECIDED)
    if expect == Verdict.EQUIVALENT:
        if verdict == Verdict.EQUIVALENT or below:
            return ClaimOutcome.HOLDS
        return ClaimOutcome.FAILS if verdict.differs else ClaimOutcome.UNDECIDED
    if expect == "not_worse":
        if verdict in (Verdict.BETTER, Verdict.EQUIVALENT) or (verdict == Verdict.WORSE and below):
            return ClaimOutcome.HOLDS
        return ClaimOutcome.FAILS if verdict == Verdict.WORSE else ClaimOutcome.UNDECIDED
    raise ValueError(f"unknown expectation {expect!r}")


def combine(outcomes: list[str]) -> ClaimOutcome:
    """A claim's outcome from its parts' (module docstring, rule 5)."""
    for outcome in (ClaimOutcome.FAILS, ClaimOutcome.UNDECIDED, ClaimOutcome.EQUIVALENT):
        if outcome in outcomes:
            return outcome
    return ClaimOutcome.HOLDS


def _contrast(part: Part, values: dict[str, dict[int, float]]) -> decide.TStat:
    """The part's t statistic: paired on the common seeds, or Welch for two configurations whose
    seed sets differ."""
    if part.is_pair:
        return decide.pair_test(values.get(part.a[0][0], {}), values.get(part.b[0][0], {}))[0]
    terms = [(label, w) for label, w in part.a] + [(label, -w) for label, w in part.b]
    seeds = sorted(set.intersection(*(set(values.get(label, {})) for label, _ in terms)))
    return decide.paired_t([math.fsum(w * values[label][s] for label, w in terms) for s in seeds])


def _best_contrast(part: Part, claims, studies) -> decide.TStat:
    a, b = best_values(part.best_a, claims, studies), best_values(part.best_b, claims, studies)
    keys = sorted(set(a) & set(b))
    return decide.paired_t([a[k] - b[k] for k in keys])


def _family(tests: dict[str, decide.TStat], claim: Claim) -> dict[str, decide.Decision]:
    return decide.decide_once(tests, claim.margin, claim.design)


def _grid_rows(sweep: sweep_spec.Sweep, frame: pd.DataFrame, chance: bool) -> pd.DataFrame:
    """The usable experiments of a full grid with their two factor levels as columns."""
    (a, b), cells = sweep_spec.grid_factors(sweep)
    values = _values(frame, chance)
    rows = [{a: cells[label][0], b: cells[label][1], "cv_accuracy": v}
            for label in cells for v in values.get(label, {}).values()]
    return pd.DataFrame(rows, columns=[a, b, "cv_accuracy"])


def _anova(sweep, frame, chance) -> tuple[pd.DataFrame | None, str]:
    try:
        data = _grid_rows(sweep, frame, chance)
        (a, b), _ = sweep_spec.grid_factors(sweep)
        return stats.two_way_anova(data, a, b, "cv_accuracy"), ""
    except ValueError as error:
        return None, f"ANOVA not possible: {error}"


def _decide_term(claim: Claim, part: Part, sweep, frame) -> PartResult:
    table, note = _anova(sweep, frame, claim.diverged_as_chance)
    design = claim.design
    values = _values(frame, claim.diverged_as_chance)
    contrasts = {name: Part(name, "contrast", "equivalent", weights)
                 for name, weights in claim_spec.term_contrasts(sweep, part.term).items()}
    decisions = _family({n: _contrast(p, values) for n, p in contrasts.items()}, claim)
    if table is None:
        return PartResult(part, ClaimOutcome.UNDECIDED, None, note)
    p = float(table.loc[part.term, "p_value"])
    n = int(table.loc["Residual", "df"] + len(sweep.configs))
    level = design.look_alpha
    detectable = p < level
    equivalent = all(d.verdict == Verdict.EQUIVALENT or d.below_margin for d in decisions.values())
    if part.expect == "detectable":
        outcome = ClaimOutcome.HOLDS if detectable else \
            ClaimOutcome.EQUIVALENT if equivalent else ClaimOutcome.UNDECIDED
    else:
        outcome = ClaimOutcome.FAILS if detectable else \
            ClaimOutcome.HOLDS if equivalent else ClaimOutcome.UNDECIDED
    widest = max(decisions.values(), key=lambda d: abs(d.diff) if math.isfinite(d.diff) else -1)
    eta = table.loc[part.term, "partial_eta_sq"]
    verdict = f"{'detectable' if detectable else 'not detectable'} at n = {n} experiments"
    detail = (f"F = {table.loc[part.term, 'F']:.2f}, p = {p:.3g} at level {level:.3g}, partial "
              f"η² = {eta:.3f}; the difference shown is the largest of its {len(decisions)} "
              "contrast(s) against the baseline's levels: "
              + "; ".join(f"{name}: {interval(d)}, {d.label()}" for name, d in decisions.items()))
    return PartResult(part, outcome, widest, detail, verdict, p)


def _decide_lr(claim: Claim, part: Part, sweep, frame, suggestion: dict) -> PartResult:
    lr = float(suggestion[part.lr_key])
    rates = {sweep.label(c): float(c["train.lr"]) for c in sweep.configs}
    near = [label for label, rate in rates.items()
            if abs(math.log(rate / lr)) <= math.log(part.within) + 1e-12]
    head = f"suggestion {part.lr_key} = {lr:.3g}; grid rates within x{part.within:g}: " + \
        (", ".join(near) if near else "none")
    if not near:
        return PartResult(part, ClaimOutcome.FAILS, None, head,
                          f"no rate of the sweep within x{part.within:g}")
    values = _values(frame, claim.diverged_as_chance)
    pairs = {f"{c} vs {o}": Part(f"{c} vs {o}", "contrast", "not_worse", ((c, 1.0),), ((o, 1.0),))
             for c in near for o in rates if o != c}
    decisions = _family({n: _contrast(p, values) for n, p in pairs.items()}, claim)
    verdicts = {c: [judge(decisions[f"{c} vs {o}"], "not_worse") for o in rates if o != c]
                for c in near}
    good = [c for c in near if all(v == ClaimOutcome.HOLDS for v in verdicts[c])]
    beaten = [c for c in near if ClaimOutcome.FAILS in verdicts[c]]
    outcome = ClaimOutcome.HOLDS if good else \
        ClaimOutcome.FAILS if len(beaten) == len(near) else ClaimOutcome.UNDECIDED
    chosen = good[0] if good else near[0]
    worst = min((decisions[f"{chosen} vs {o}"] for o in rates if o != chosen),
                key=lambda d: d.diff if math.isfinite(d.diff) else math.inf)
    detail = head + "; " + "; ".join(
        f"{name}: {d.label()} ({points(d.diff, signed=True)} points)" for name, d in decisions.items())
    verdict = {ClaimOutcome.HOLDS: f"{chosen} (x{max(rates[chosen] / lr, lr / rates[chosen]):.2g} from the "
                        "suggestion) is not worse than any other rate",
               ClaimOutcome.FAILS: "every rate within the factor is beaten beyond the margin",
               ClaimOutcome.UNDECIDED: f"{chosen}: not yet shown to be as good as every other rate"}[outcome]
    return PartResult(part, outcome, worst, detail, verdict)


def _params_note(part: Part, frame: pd.DataFrame | None) -> str:
    if not part.is_pair or frame is None or "params" not in frame:
        return ""
    counts = [frame.loc[frame["config"] == label[0], "params"].median() for label in (part.a[0], part.b[0])]
    if any(not np.isfinite(c) for c in counts) or counts[0] == counts[1]:
        return ""
    return f"parameters {counts[0]:,.0f} vs {counts[1]:,.0f}"


def _eta_note(part: Part, sweep, frame, chance) -> str:
    table, note = _anova(sweep, frame, chance)
    if table is None:
        return note
    return "ANOVA partial η²: " + ", ".join(
        f"{f} {table.loc[f, 'partial_eta_sq']:.3f} (F = {table.loc[f, 'F']:.2f}, p = "
        f"{table.loc[f, 'p_value']:.3g})" for f in part.effects)


def has_results(name: str, claims: claim_spec.Claims, studies: Studies) -> bool:
    if name in claims.sweeps:
        frame = studies.experiments.get(name)
        return frame is not None and not frame.empty
    return any(s.name in studies.trials and not studies.trials[s.name].empty
               for s in claims.search_sets.get(name, ()))


def report_links(name: str, claims: claim_spec.Claims, studies: Studies) -> list[str]:
    """The committed reports of a study, relative to reports/ (a search set: each replicate's)."""
    names = [name] if name in claims.sweeps else [s.name for s in claims.search_sets.get(name, ())]
    return [f"study/{n}/report.md" for n in names if f"study/{n}/report.md" in studies.reports]


def run_command(name: str, claims: claim_spec.Claims) -> str:
    """The commands that run (or continue) a study at its design."""
    design = claims.designs[name]
    grid = any(b and b.kind == "grid" and b.study == name
               for c in claims.claims for p in c.parts for b in (p.best_a, p.best_b))
    if grid:  # a replicate of a grid search is every configuration at one seed
        return (f"`python -m src.sweep run {name} --seeds {design.first_seeds} --jobs {JOBS} && "
                f"python -m src.study {name}` (every configuration at each seed; raise --seeds "
                f"with the search replicates, up to {design.max_seeds})")
    if name in claims.sweeps:
        return (f"`python -m src.sweep run {name} --seeds {design.first_seeds} --until-decided "
                f"--max-seeds {design.max_seeds} --jobs {JOBS} && python -m src.study {name}`")
    trials = max((b.trials for c in claims.claims for p in c.parts for b in (p.best_a, p.best_b)
                  if b and b.study == name), default=0)
    return (f"`for k in $(seq 0 {design.first_seeds - 1}); do python -m src.search {name}_r$k "
            f"--trials {trials} --jobs {JOBS} && python -m src.study {name}_r$k; done` (then "
            f"replicates {design.first_seeds} to {design.max_seeds - 1}, one at a time, while the "
            "claim is undecided)")


def open_configs(name: str, claims: claim_spec.Claims, studies: Studies) -> list[str]:
    """The configurations of sweep ``name`` that an undecided claim still needs seeds of (below
    its design's max_seeds): those of its undecided parts; every configuration for an ANOVA term,
    an LR range test or a grid arm. An adaptive study (`--until-decided`) that stops a
    configuration once its comparison with the baseline is decided would otherwise starve the
    claims that compare it with something else."""
    sweep = claims.sweeps[name]
    labels = [sweep.label(c) for c in sweep.configs]
    ran = {label: len(v) for label, v in _table(studies.experiments.get(name), False).items()}
    wanted: set[str] = set()
    for claim in claims.claims:
        if name not in claim.studies:
            continue
        result = decide_claim(claim, claims, studies)
        for pr in result.parts or [PartResult(p, ClaimOutcome.UNDECIDED) for p in claim.parts]:
            if pr.outcome != ClaimOutcome.UNDECIDED:
                continue
            grid = any(b and b.kind == "grid" and b.study == name for b in (pr.part.best_a, pr.part.best_b))
            whole = pr.part.kind in ("term", "lr_range") or grid
            wanted |= set(labels) if whole else set(pr.part.labels) if claim.study == name else set()
    most = claims.designs[name].max_seeds
    return [label for label in labels if label in wanted and ran.get(label, 0) < most]


def decide_claim(claim: Claim, claims: claim_spec.Claims, studies: Studies) -> ClaimResult:
    needs_lr = any(p.kind == "lr_range" for p in claim.parts)
    missing = [run_command(s, claims) for s in claim.studies if not has_results(s, claims, studies)]
    if needs_lr and studies.suggestion is None:
        missing.append("`python -m src.lr_find` (then commit reports/lr_find/)")
    links = [link for s in claim.studies for link in report_links(s, claims, studies)]
    if needs_lr and LR_LINK in studies.reports:
        links.append(LR_LINK)
    looks = claim.design.looks
    if missing:
        return ClaimResult(claim, ClaimOutcome.NOT_RUN, [], missing, links, looks)
    sweep = claims.sweeps.get(claim.study)
    frame = studies.experiments.get(claim.study)
    kind = claim.parts[0].kind
    if kind == "term":
        results = [_decide_term(claim, p, sweep, frame) for p in claim.parts]
    elif kind == "lr_range":
        results = [_decide_lr(claim, p, sweep, frame, studies.suggestion) for p in claim.parts]
    else:
        values = _values(frame, claim.diverged_as_chance)
        tests = {p.name: _best_contrast(p, claims, studies) if p.best_a else _contrast(p, values)
                 for p in claim.parts}
        decisions = _family(tests, claim)
        results = []
        for p in claim.parts:
            notes = [_params_note(p, frame), _eta_note(p, sweep, frame, claim.diverged_as_chance)
                     if p.effects else ""]
            results.append(PartResult(p, judge(decisions[p.name], p.expect), decisions[p.name],
                                      "; ".join(n for n in notes if n)))
    return ClaimResult(claim, combine([r.outcome for r in results]), results, [], links, looks)


# --- the same claim on validation loss -----------------------------------------------------------

def loss_frame(frame: pd.DataFrame, chance: bool) -> pd.DataFrame:
    """``frame`` with its CV accuracy replaced by minus its CV validation loss (so that higher is
    better and :func:`_values` keeps the same experiments by the same rule); an experiment without
    a recorded loss has none. With ``chance`` a diverged run counts as the loss of a uniform guess,
    ln(10)."""
    frame = frame.copy()
    loss = pd.to_numeric(frame[LOSS], errors="coerce") if LOSS in frame else np.nan
    frame["cv_accuracy"] = np.where(frame["cv_accuracy"].notna(), -loss, np.nan)
    if chance:
        diverged = frame["state"] == "diverged"
        frame.loc[diverged, "cv_accuracy"] = -CHANCE_LOSS
        frame.loc[diverged, "state"] = "completed"
    return frame


def has_loss(frame: pd.DataFrame | None) -> bool:
    return frame is not None and LOSS in frame and bool(pd.to_numeric(frame[LOSS], errors="coerce")
                                                         .notna().any())


def decide_loss(claim: Claim, claims: claim_spec.Claims, studies: Studies) -> LossResult | None:
    """The claim's contrasts decided on CV validation loss within its loss_margin (rules 2-5 on
    minus the loss), beside the accuracy verdict; None for a claim without loss_margin; outcome
    NOT_RECORDED when its study's experiments have no validation loss, "not run" without them."""
    if claim.loss_margin is None:
        return None
    frame = studies.experiments.get(claim.study)
    if not has_results(claim.study, claims, studies):
        return LossResult("not run", [], claim.loss_margin)
    if not has_loss(frame):
        return LossResult(NOT_RECORDED, [], claim.loss_margin)
    values = _values(loss_frame(frame, claim.diverged_as_chance), False)
    decisions = _family({p.name: _contrast(p, values) for p in claim.parts},
                        replace(claim, margin=claim.loss_margin))
    parts = [PartResult(p, judge(decisions[p.name], p.expect), decisions[p.name]) for p in claim.parts]
    return LossResult(combine([r.outcome for r in parts]), parts, claim.loss_margin)
