"""reports/claims.md and claims.csv (`python -m src.study claims`): the claims as
src/studies/claim_decisions.py decided them, with what each verdict cost (src/studies/
claim_costs.py), as text and a table (pure: src/study.py reads and writes the files). The page's
header is the decision rules, from claim_decisions' docstring.
"""

from __future__ import annotations

import math
from dataclasses import replace

import pandas as pd

from src.core import decide
from src.experiments import claim_spec
from src.studies import claim_decisions
from src.studies.claim_costs import Cost, claim_cost, total_cost
from src.studies.claim_decisions import (
    NOT_RECORDED,
    OUTCOMES,
    ClaimResult,
    LossResult,
    Studies,
    decide_claim,
    decide_loss,
    interval,
)
from src.studies.sweep_report import md_table

COLUMNS = ["claim", "part", "kind", "expect", "part_outcome", "claim_outcome", "verdict", "diff",
           "ci_low", "ci_high", "tost_low", "tost_high", "p_value", "p_tost", "n", "seeds_needed",
           "needed_for", "alpha", "margin", "look", "looks", "studies",
           # per claim: what it decides on, how, what it cost, the seeds that would decide it
           "metric", "procedure", "looks_taken", "claim_seeds_needed", "experiments",
           "fold_epochs", "train_hours", "cost_unrecorded",
           # the same claim on CV validation loss (claims with loss_margin): a - b in nats
           "loss_margin", "loss_claim_outcome", "loss_part_outcome", "loss_verdict", "loss_diff",
           "loss_ci_low", "loss_ci_high", "loss_n", "loss_p_value", "loss_p_tost"]
ACCURACY = "CV accuracy"
LOSS = "CV loss"


# --- text ----------------------------------------------------------------------------------------

def _p(value: float) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.3g}"


def seeds_to_decide(result: ClaimResult) -> int | None:
    """The seeds (replicates) that would decide an undecided claim: the most any undecided part
    needs (decide.Decision.seeds_needed, 80% power); None when decided, or not estimable."""
    if result.outcome != "undecided":
        return None
    needed = [r.decision.seeds_needed for r in result.parts
              if r.outcome == "undecided" and r.decision is not None]
    return max(needed) if needed and None not in needed else None


def _seeds_text(result: ClaimResult) -> str:
    if result.outcome != "undecided":
        return ""
    needed = seeds_to_decide(result)
    if needed is None:
        return "not estimable"
    most = result.claim.design.max_seeds
    return f"≈ {needed}" + (f" (design: {most})" if needed > most else "")


def _verdict_line(result: ClaimResult) -> str:
    if result.outcome == "not run":
        return "not run"
    shown = result.shown
    label = shown.label if shown else ""
    if result.outcome == "undecided":
        needed = seeds_to_decide(result)
        if needed is not None:
            beyond = needed > result.claim.design.max_seeds
            return (f"undecided (≈ {needed} seeds would decide it"
                    + (f", beyond the design's {result.claim.design.max_seeds})" if beyond else ")"))
        return "undecided" + (f" ({label})" if label else "")
    return result.outcome + (f" ({label})" if label and result.outcome in ("holds", "fails") else "")


# --- what a verdict is decided on, how, and what it cost -----------------------------------------

def metric(claim: claim_spec.Claim) -> str:
    return ACCURACY + (f"; {LOSS} (±{claim.loss_margin:g})" if claim.loss_margin else "")


def procedure(result: ClaimResult) -> str:
    """The test of the claim's parts, in a few words (rules 2-4 of the page's header)."""
    c = result.claim
    kind, k = c.parts[0].kind, len(c.parts)
    margin = f"TOST ±{c.margin * 100:g} points"
    if kind == "term":
        return f"two-way ANOVA; {margin} on its 1-df contrasts"
    if kind == "lr_range":
        return f"t tests of the rates near the suggestion against every other rate, Holm; {margin}"
    return "t test" + (f"s, Holm over {k}" if k > 1 else "") + f"; {margin}"


def looks_taken(result: ClaimResult) -> int | None:
    """The look the claim's decisions were made at (of result.looks)."""
    looks = [r.decision.look for r in result.parts if r.decision is not None]
    return max(looks) if looks else None


def _looks_text(result: ClaimResult) -> str:
    taken = looks_taken(result)
    return f"α {result.claim.alpha:g}, look {taken} of {result.looks}" if taken else \
        f"α {result.claim.alpha:g}, {result.looks} looks; none taken"


def _hours(value: float) -> str:
    return f"{value:,.2f}"


def _cost_cells(cost: Cost) -> list[str]:
    unrecorded = f" ({cost.unrecorded} unrecorded)" if cost.unrecorded else ""
    recorded = cost.count - cost.unrecorded
    if not cost.count:
        return ["0", "", ""]
    if not recorded:
        return [f"{cost.count}", "not recorded", "not recorded"]
    return [f"{cost.count}{unrecorded}", f"{cost.fold_epochs:,.0f}", _hours(cost.train_hours)]


def _cost_text(cost: Cost) -> str:
    if cost.count == cost.unrecorded:
        return f"{cost.count} experiments" + (" (their training cost is not recorded)"
                                              if cost.count else "")
    unrecorded = f" ({cost.unrecorded} without a recorded cost)" if cost.unrecorded else ""
    return (f"{cost.count} experiments{unrecorded}, {cost.fold_epochs:,.0f} fold-epochs, "
            f"{_hours(cost.train_hours)} training hours")


def totals_line(total: Cost) -> str:
    unrecorded = (f"; {total.unrecorded} of them, of studies committed before training time was "
                  "recorded, have no cost" if total.unrecorded else "")
    return (f"These verdicts cost {total.count} experiments (each counted once, however many "
            f"claims read it), {total.fold_epochs:,.0f} fold-epochs and "
            f"{_hours(total.train_hours)} training hours (the training loops' wall time summed "
            f"over experiments and folds; not CPU-hours: the threads each used are not "
            f"recorded){unrecorded}.")


# --- the same claim on validation loss -----------------------------------------------------------

def _loss(value: float, signed: bool = True) -> str:
    return "n/a" if value is None or not math.isfinite(value) else \
        (f"{value:+.3f}" if signed else f"{value:.3f}")


def loss_interval(d: decide.Decision | None) -> str:
    """a - b in loss units (the decision is of minus the loss), with its interval."""
    if d is None or not math.isfinite(d.diff):
        return "n/a"
    if not (math.isfinite(d.ci_low) and math.isfinite(d.ci_high)):
        return _loss(-d.diff)
    return f"{_loss(-d.diff)} [{_loss(-d.ci_high)}, {_loss(-d.ci_low)}]"


def loss_label(d: decide.Decision) -> str:
    """A loss decision in words: a lower (better) or higher loss, equivalent within ±margin."""
    if d.verdict in ("better", "worse"):
        word = "lower loss" if d.verdict == "better" else "higher loss"
        return f"{word}, by less than the margin" if d.below_margin else word
    if d.verdict == "equivalent":
        return f"equivalent within ±{d.margin:g}"
    return d.label()


def agreement(result: ClaimResult) -> str:
    """Whether the loss verdict and the accuracy verdict agree ("" where there is no loss one)."""
    loss = result.loss
    if loss is None or loss.outcome in (NOT_RECORDED, "not run"):
        return ""
    if loss.outcome == result.outcome:
        return "agrees"
    opposite = {loss.outcome, result.outcome} == {"holds", "fails"}
    return "the two metrics disagree" if opposite else "differs from the accuracy verdict"


def _loss_cell(result: ClaimResult) -> str:
    loss = result.loss
    if loss is None:
        return "—"
    if loss.outcome == NOT_RECORDED:
        return "not recorded in the committed study"
    if loss.outcome == "not run":
        return "not run"
    shown = next((r for r in loss.parts if r.outcome == loss.outcome), None)
    text = f"**{loss.outcome}**" + (f" {loss_interval(shown.decision)}" if shown else "")
    return text + (f"; {agreement(result)}" if agreement(result) != "agrees" else "")


def _loss_lines(result: ClaimResult) -> list[str]:
    loss = result.loss
    if loss is None:
        return []
    head = (f"- On CV validation loss (lower is better; differences a - b in nats, margin "
            f"±{loss.margin:g}): ")
    if loss.outcome == NOT_RECORDED:
        return [head + "validation loss: not recorded in the committed study (its experiments.csv "
                "has no `cv_val_loss`; studies collected from now on record it)"]
    if loss.outcome == "not run":
        return [head + "not run"]
    rows = [[pr.part.name, pr.part.expect, pr.outcome, loss_label(pr.decision),
             loss_interval(pr.decision), pr.decision.n, _p(pr.decision.p_value),
             _p(pr.decision.p_tost)] for pr in loss.parts]
    return [head + f"**{loss.outcome}**" + (f" ({agreement(result)})" if agreement(result) else ""),
            "", *md_table(["part", "expects", "outcome", "verdict", "loss difference [interval]",
                           "n", "p (Holm)", "p TOST (Holm)"], rows)]


def _link_text(links: list[str]) -> str:
    return ", ".join(f"[{link.split('/')[-2]}]({link})" for link in links) or "none committed"



def summary_line(results: list[ClaimResult]) -> str:
    counts = {o: sum(r.outcome == o for r in results) for o in OUTCOMES}
    return (f"Of {len(results)} claims: {counts['holds']} hold, {counts['fails']} fail, "
            f"{counts['equivalent']} equivalent (no difference beyond the margin), "
            f"{counts['undecided']} undecided, {counts['not run']} not run yet.")


def _rules() -> list[str]:
    """The decision rules (this module's docstring, rules 1-5) as Markdown."""
    return claim_decisions.__doc__.split("(also the header of reports/claims.md):", 1)[1] \
        .strip().splitlines()


def render(results: list[ClaimResult], costs: dict[int, Cost]) -> str:
    lines = ["# Claims: which popular tuning claims hold", "",
             "Generated by `python -m src.study claims` from `claims.yaml` and the committed studies "
             "(`reports/study/<name>/experiments.csv`, `trials.csv`, "
             "`reports/lr_find/suggestion.json`); do not edit by hand. Verdicts are decided on CV "
             "validation accuracy; differences are in accuracy points (× 100), with their interval "
             "at the decision's level. A claim whose authors ranked by a loss (the essay's test "
             "loss) and that declares `loss_margin` in claims.yaml is decided on CV validation "
             "loss as well, beside the accuracy verdict (rule 6).",
             "", f"**{summary_line(results)}**", "",
             f"**{totals_line(total_cost(list(costs.values())))}**", "",
             "## How a claim is decided", "", *_rules(), "", "## The claims", ""]
    rows = []
    for r in results:
        shown = r.shown
        rows.append([r.claim.id, r.claim.text, r.claim.figure, f"**{r.outcome}**",
                     interval(shown.decision if shown else None),
                     shown.decision.n if shown and shown.decision else "",
                     f"{r.claim.alpha:g} / ±{r.claim.margin * 100:g}", _loss_cell(r),
                     _link_text(r.links)])
    lines += md_table(["#", "claim", "original figure", "tunelab (CV accuracy)",
                       "difference [interval]", "n", "α / margin (points)",
                       "on CV validation loss", "report"], rows)
    lines += ["", "## What each verdict cost", "",
              "Experiments: those its parts read (every run of the configurations it compares; "
              "all of a sweep for an ANOVA term, an LR range test or a grid arm; the first N "
              "trials of each replicate search). Fold-epochs: the epochs trained, summed over "
              "folds. Training hours: the training loops' wall time, summed over folds and "
              "experiments (src/studies/claim_costs.py). Seeds: those that would decide an "
              "undecided claim (80% power).", ""]
    cost_rows = [[r.claim.id, f"**{r.outcome}**", metric(r.claim), procedure(r), _looks_text(r),
                  *_cost_cells(costs[r.claim.id]), _seeds_text(r)] for r in results]
    lines += md_table(["#", "tunelab", "decided on", "procedure", "α, looks taken",
                       "experiments", "fold-epochs", "training hours", "seeds to decide"],
                      cost_rows)
    for r in results:
        c = r.claim
        lines += ["", f"### {c.id}. {c.text}", "",
                  f"- **Verdict: {_verdict_line(r)}**",
                  f"- Source: {c.source}; original figure: {c.figure}",
                  f"- Compared ({', '.join(c.studies)}): " + "; ".join(p.name for p in c.parts)
                  + (f" (one family, Holm over {len(c.parts)})" if len(c.parts) > 1 else ""),
                  f"- Fidelity: {c.trained_at}" + (f". {c.fidelity}" if c.fidelity else ""),
                  f"- Decided on: {metric(c)}; {procedure(r)}",
                  f"- α = {c.alpha:g} over {r.looks} look(s) (each at {c.alpha / r.looks:.3g}), "
                  f"margin ±{c.margin * 100:g} points"
                  + (f"; decided at look {looks_taken(r)}" if looks_taken(r) else ""),
                  f"- Cost: {_cost_text(costs[c.id])}",
                  *( [f"- Reading: {c.note}"] if c.note else []),
                  f"- Report: {_link_text(r.links)}"]
        if r.missing:
            lines += ["- Not run; to run it:", *(f"  - {cmd}" for cmd in r.missing)]
            continue
        part_rows = [[pr.part.name, pr.part.expect, pr.outcome, pr.label, interval(pr.decision),
                      pr.decision.n if pr.decision else "", _p(pr.p_value),
                      _p(pr.decision.p_tost) if pr.decision else ""] for pr in r.parts]
        lines += ["", *md_table(["part", "expects", "outcome", "verdict", "difference [interval]",
                                 "n", "p (Holm; a term's: ANOVA)", "p TOST (Holm)"], part_rows)]
        notes = [f"- {pr.part.name}: {pr.detail}" for pr in r.parts if pr.detail]
        lines += ["", *notes] if notes else []
        loss = _loss_lines(r)
        lines += ["", *loss] if loss else []
    return "\n".join(lines) + "\n"


def _loss_columns(loss: LossResult | None, index: int) -> dict:
    if loss is None:
        return {}
    out = {"loss_margin": loss.margin, "loss_claim_outcome": loss.outcome}
    if index < len(loss.parts):
        pr = loss.parts[index]
        d = pr.decision
        out |= {"loss_part_outcome": pr.outcome, "loss_verdict": loss_label(d), "loss_diff": -d.diff,
                "loss_ci_low": -d.ci_high, "loss_ci_high": -d.ci_low, "loss_n": d.n,
                "loss_p_value": d.p_value, "loss_p_tost": d.p_tost}
    return out


def table(results: list[ClaimResult], costs: dict[int, Cost]) -> pd.DataFrame:
    """claims.csv: one row per part (one per claim not run), fractions as in the study CSVs; the
    claim's cost (training hours NaN where none is recorded) and its loss decision beside them."""
    rows = []
    for r in results:
        cost = costs[r.claim.id]
        recorded = cost.count > cost.unrecorded
        base = {"claim": r.claim.id, "claim_outcome": r.outcome, "alpha": r.claim.alpha,
                "margin": r.claim.margin, "looks": r.looks, "studies": " ".join(r.claim.studies),
                "metric": metric(r.claim), "procedure": procedure(r),
                "looks_taken": looks_taken(r), "claim_seeds_needed": seeds_to_decide(r),
                "experiments": cost.count,
                "fold_epochs": cost.fold_epochs if recorded else math.nan,
                "train_hours": cost.train_hours if recorded else math.nan,
                "cost_unrecorded": cost.unrecorded}
        if not r.parts:
            rows.append(base | _loss_columns(r.loss, 0))
        for i, pr in enumerate(r.parts):
            d = pr.decision
            rows.append(base | {"part": pr.part.name, "kind": pr.part.kind, "expect": pr.part.expect,
                                "part_outcome": pr.outcome, "verdict": pr.label,
                                "p_value": pr.p_value} | ({
                "diff": d.diff, "ci_low": d.ci_low, "ci_high": d.ci_high, "tost_low": d.tost_low,
                "tost_high": d.tost_high, "p_tost": d.p_tost, "n": d.n,
                "seeds_needed": d.seeds_needed, "needed_for": d.needed_for, "look": d.look}
                if d else {}) | _loss_columns(r.loss, i))
    return pd.DataFrame(rows, columns=COLUMNS)


def build(claims: claim_spec.Claims, studies: Studies) -> tuple[str, pd.DataFrame, list[ClaimResult]]:
    """reports/claims.md's text, claims.csv's table and the results they show."""
    results = [replace(decide_claim(c, claims, studies), loss=decide_loss(c, claims, studies))
               for c in claims.claims]
    costs = {r.claim.id: claim_cost(r.claim, claims, studies) for r in results}
    return render(results, costs), table(results, costs), results

