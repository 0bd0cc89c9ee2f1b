"""The study's report.md: the table, findings in plain words, the ANOVA and what went wrong.

Pure text rendering of what src/studies/sweep_study.py computed; numbers come from its summary
table.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd

from src.core import decide, naming
from src.core.decide import Verdict
from src.core.naming import format_value
from src.core.status import Status, usable
from src.experiments import sweep_spec
from src.experiments.carried import BASELINE


def fmt(value, spec: str = ".4f", scale: float = 1.0) -> str:
    return format(value * scale, spec) if isinstance(value, (int, float)) and np.isfinite(value) \
        else "n/a"


SPENDING_NAMES = {"obrien_fleming": "O'Brien–Fleming", "pocock": "Pocock"}


def md_table(header: list[str], rows: list[list]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header),
            *("| " + " | ".join(map(str, row)) + " |" for row in rows)]


def finding(row, baseline: str, spends: bool = False) -> str:
    """e.g. "dropout=0.5: equivalent to dropout=0.3 within ±0.50 points (diff -0.10 points,
    interval -0.35…+0.15, TOST p = 0.004; 6 seeds, decided at look 4)"."""
    decision = str(row.decision)
    if decision in (Verdict.BETTER, Verdict.WORSE):
        said = f"{row.verdict} than {baseline}" if not row.below_margin else \
            f"{decision} than {baseline}, by less than the margin"
    elif decision == Verdict.EQUIVALENT:
        said = str(row.verdict).replace("equivalent", f"equivalent to {baseline}", 1)
    elif decision == Verdict.UNDECIDED:
        need = f"about {int(row.seeds_needed)} seeds per configuration would decide it " \
               f"({row.needed_for})" if np.isfinite(row.seeds_needed) else \
            "the seeds that would decide it cannot be estimated"
        said = (f"undecided against {baseline}: {need}; at n = {int(row.seeds_used)} the "
                f"smallest difference detectable at 80% power is {fmt(row.mdd, '.2f', 100)} points")
    else:
        return f"{row.config}: {row.verdict}; no comparison with {baseline}"
    if not np.isfinite(row.diff):
        return f"{row.config}: {said}"
    return (f"{row.config}: {said} (diff {fmt(row.diff, '+.2f', 100)} points, interval "
            f"{fmt(row.diff_ci_low, '+.2f', 100)}…{fmt(row.diff_ci_high, '+.2f', 100)}, "
            + (f"p {fmt(row.p_holm, '.2g')} at level {fmt(row.alpha_diff, '.2g')}" if spends else
               f"p (Holm) {fmt(row.p_holm, '.2g')}")
            + f", TOST p {fmt(row.p_tost, '.2g')}; "
            f"{int(row.seeds_used)} seeds, look {int(row.look)})")


def problems(frame: pd.DataFrame, sweep: sweep_spec.Sweep, summary: pd.DataFrame) -> list[str]:
    """Diverged / failed / missing experiments, configurations without a test, mixed params."""
    out = [f"- diverged (excluded): `{r.name}` ({r.reason})" for r in
           frame[frame["state"] == Status.DIVERGED].itertuples()]
    out += [f"- failed: `{n}` (see `dvc queue logs {n}`)" for n in
            frame.loc[frame["state"] == Status.FAILED, "name"]]
    out += missing(frame, sweep)
    out += [f"- `{r.config}`: n = {r.n}, too few seeds for a test" for r in summary.itertuples()
            if r.n < 2]
    out += [f"- `{r.name}` is named {r.name_config} but its params make it {r.config}"
            for r in frame[frame["config"] != frame["name_config"]].itertuples()]
    decoded = [json.loads(o) for o in frame["others"] if o]
    for key in sorted(set().union(*decoded)) if decoded else []:
        values = sorted({json.dumps(d.get(key)) for d in decoded})
        if len(values) > 1:
            out.append(f"- WARNING: experiments differ in `{key}` ({', '.join(values)}), which the "
                       "sweep does not vary (`--set` or params.yaml changes): results may mix")
    return out


def missing(frame: pd.DataFrame, sweep: sweep_spec.Sweep) -> list[str]:
    """The experiments a sweep's design asks for that the study lacks: by name (seeds 0 .. the
    highest run) where its experiments are named by the sweep; else (DVC's own names, a study of
    experiments) each configuration's seeds that another configuration has."""
    if not len(frame):
        return []
    if any((naming.parse_name(n) or {}).get("sweep") == sweep.name for n in frame["name"]):
        names = set(frame["name"])
        return [f"- missing: `{n}`" for c in sweep.configs
                for n in (naming.experiment_name(sweep.name, sweep.label(c), s)
                          for s in range(int(frame["seed"].max()) + 1)) if n not in names]
    ran = set(zip(frame["config"], frame["seed"].astype(int)))
    seeds = sorted({s for _, s in ran})
    return [f"- missing: `{sweep.label(c)}` with seed {s}" for c in sweep.configs for s in seeds
            if (sweep.label(c), s) not in ran]


def overrides_line(name: str, overrides: dict) -> str:
    """The ``--set`` every experiment of the study ran with: another set is another study."""
    sets = " ".join(f"--set {k}={format_value(v)}" for k, v in overrides.items())
    return (f"**Overrides**: params.yaml with `{sets}` in every experiment; experiments of other "
            f"params are not part of this study (`python -m src.study {name} {sets}`).")


def design_lines(summary: pd.DataFrame, source: str, compute: dict | None,
                 design: decide.Design | None = None) -> list[str]:
    """The margin, the design and its looks, and the compute the study took."""
    first = summary.iloc[0]
    margin, looks = float(first["margin"]), int(first["looks"])
    if design is not None and design.continues is not None:
        earlier = design.continues
        was = (f"Bonferroni over {earlier.looks} looks, each at {fmt(earlier.look_alpha, '.3g')}"
               if not earlier.spends else
               f"{SPENDING_NAMES[earlier.method]}-type spending up to {earlier.max_seeds} seeds")
        how = (f"**Design**: {source}; a continued study: its first {design.continued_after} "
               f"look(s) were decided as they were under its committed design ({was}), "
               f"and the later looks spend only the alpha those left, by "
               f"{SPENDING_NAMES[design.method]}-type alpha spending up to {design.max_seeds} "
               f"seeds (src/core/decide.py); up to {looks} look(s), "
               f"{int(first['looks_taken'])} taken. Nominal two-sided levels of one comparison "
               f"at the planned looks: {', '.join(fmt(a, '.2g') for a in design.planned_levels())}.")
    elif design is not None and design.spends:
        how = (f"**Design**: {source}; up to {looks} look(s), {int(first['looks_taken'])} taken, "
               f"at the seed counts reached; alpha {design.alpha} over all looks by "
               f"{SPENDING_NAMES[design.method]}-type alpha spending (Lan–DeMets; information "
               f"fraction seeds / {design.max_seeds}), Holm over the comparisons of a look "
               "(src/core/decide.py). Nominal two-sided levels of one comparison at the planned "
               f"looks: {', '.join(fmt(a, '.2g') for a in design.planned_levels())}.")
    else:
        how = (f"**Design**: {source}; {looks} look(s) at alpha {fmt(first['look_alpha'], '.3g')} "
               f"each (alpha 0.05 over all looks: Bonferroni over the looks, Holm over the "
               f"comparisons of a look; src/core/decide.py), {int(first['looks_taken'])} taken.")
    lines = [f"**Margin** ±{100 * margin:.2g} accuracy points: the smallest difference that "
             "matters. **Verdicts** against the baseline: *better* / *worse* when the difference's "
             "interval excludes 0, *equivalent* when two one-sided tests (TOST) show it within "
             "±margin, *undecided* otherwise (with the seeds per configuration that would decide "
             "it at 80% power, from the observed sd of the paired differences).",
             "", how]
    if compute:
        saved = 1 - compute["fold_epochs"] / compute["fixed_fold_epochs"] \
            if compute["fixed_fold_epochs"] else math.nan
        lines += ["", f"**Compute**: {compute['experiments']} experiments, "
                  f"{compute['fold_epochs']:,.0f} fold-epochs, {compute['train_seconds']:,.0f} "
                  f"training seconds; a fixed design of {compute['fixed_seeds']} seeds per "
                  f"configuration ({compute['fixed_experiments']} experiments) would have taken "
                  f"~{compute['fixed_fold_epochs']:,.0f} fold-epochs and "
                  f"~{compute['fixed_train_seconds']:,.0f} s" +
                  (f" ({fmt(saved, '.0%')} saved)." if np.isfinite(saved) and saved > 0 else ".")]
    return lines


def seeds_note(row) -> str:
    """How many seeds a configuration got, and why: its decision's look, or the design's end."""
    if row.decision in decide.DECIDED:
        return f"{int(row.seeds_used)} (decided at look {int(row.look)})"
    if row.decision == Verdict.UNDECIDED:
        return f"{int(row.seeds_used)} (undecided after {int(row.look)} of {int(row.looks)} looks)"
    return str(row.n)


def metric_line(metric: str, summary: pd.DataFrame) -> str:
    """What the decisions compare (sweeps.yaml `metric:`), and that the test set never ranks."""
    if metric == sweep_spec.CV_METRIC:
        return ("**Selection uses CV validation accuracy** (per experiment: the mean over its "
                "folds, final epoch). The test set only confirms the chosen configuration; it was "
                "not used to rank.")
    means = ", ".join(f"`{r.config}` {fmt(r.selection_mean)} ± {fmt(r.selection_std)}"
                      for r in summary.itertuples())
    return ("**Selection uses the selection set's accuracy** (`metric: selection_accuracy`; per "
            "experiment: the mean of its fold models on the same prepare.selection_size training "
            "images that no fold trains or validates on): the differences, intervals and "
            f"verdicts below compare it; mean ± sd over seeds: {means}. CV validation accuracy "
            "is reported beside it; the test set only confirms, it was not used to rank.")


def render_report(sweep: sweep_spec.Sweep, frame: pd.DataFrame, summary: pd.DataFrame,
                  anova: pd.DataFrame | None, note: str, figures: list[str],
                  design_source: str = "", compute: dict | None = None,
                  design: decide.Design | None = None, overrides: dict | None = None,
                  metric: str = sweep_spec.CV_METRIC) -> str:
    spends = design is not None and design.spends
    base = sweep.baseline_label
    states = ", ".join(f"{n} {s}" for s, n in frame["state"].value_counts().items())
    seeds = sorted(usable(frame)["seed"].unique().tolist())
    rows = [[f"**{r.config}**" if r.config == base else r.config,
             r.n if r.config == base else seeds_note(r),
             f"{fmt(r.cv_mean)} ± {fmt(r.cv_std)}", f"{fmt(r.cv_ci_low)}–{fmt(r.cv_ci_high)}",
             f"{fmt(r.test_mean)} ± {fmt(r.test_std)}", fmt(r.params, ",.0f"),
             fmt(r.seconds_per_epoch, ".2f"), fmt(r.train_val_gap, "+.3f"),
             "" if r.config == base else f"{fmt(r.diff, '+.2f', 100)} "
             f"[{fmt(r.diff_ci_low, '+.2f', 100)}, {fmt(r.diff_ci_high, '+.2f', 100)}]",
             r.test_used, fmt(r.p_holm, ".3g"), fmt(r.p_tost, ".3g"), fmt(r.effect_size, "+.2f"),
             r.verdict] for r in summary.itertuples()]
    best = summary.loc[summary["cv_mean"].idxmax()]
    hosts = frame["host"].replace("", np.nan).dropna().value_counts().sort_index() \
        if "host" in frame else pd.Series(dtype=int)
    ran_on = f" They ran on {len(hosts)} hosts: " + ", ".join(
        f"{h} ({n})" for h, n in hosts.items()) + "." if len(hosts) > 1 else ""
    commits = frame[BASELINE].replace("", np.nan).dropna().value_counts().sort_index() \
        if BASELINE in frame else pd.Series(dtype=int)
    ran_on += f" They ran from {len(commits)} commits with the same sources and params " \
        "(src/experiments/carried.py): " + ", ".join(
            f"{c[:7]} ({n})" for c, n in commits.items()) + "." if len(commits) > 1 else ""
    lines = [f"# Study: {sweep.name}", "", *([sweep.description, ""] if sweep.description else []),
             f"{len(frame)} experiments ({states}) over {len(summary)} configurations, seeds "
             f"{seeds} as replicates; baseline `{base}`.{ran_on}", "",
             *([overrides_line(sweep.name, overrides), ""] if overrides else []),
             metric_line(metric, summary), "",
             *design_lines(summary, design_source, compute, design), "", "## Results", "",
             "Mean ± sd and 95% CI over seeds (n completed seeds; diverged and failed runs "
             "excluded; `seeds` = those the decision used). Differences with the baseline in "
             "accuracy points, with their interval at the study's corrected level: paired t-test "
             "on the shared seeds, Welch where the seeds differ; "
             + ("p and TOST p unadjusted, each decided against its comparison's boundary at its "
                "look and Holm share (`alpha_diff` in summary.csv)" if spends else
                "p and TOST p Holm-adjusted over the sweep's comparisons")
             + "; effect: d_z (paired) or Hedges' g.", "",
             *md_table(["configuration", "seeds", "CV val acc", "95% CI", "test acc", "params",
                        "s/epoch", "train−val gap", "diff [interval]", "test",
                        "p" if spends else "p (Holm)",
                        "TOST p", "effect", "verdict"], rows), "", "## Findings", "",
             f"- Best by CV validation accuracy: `{best.config}`, {fmt(best.cv_mean)} (95% CI "
             f"{fmt(best.cv_ci_low)}–{fmt(best.cv_ci_high)}, n = {best.n}); test accuracy, as "
             f"confirmation only: {fmt(best.test_mean)} ± {fmt(best.test_std)}.",
             *(f"- {finding(r, base, spends)}" for r in summary.itertuples() if r.config != base)]
    if anova is not None or note:
        lines += ["", "## Two-way ANOVA (type II, CV validation accuracy per experiment)", ""]
        lines += [note] if note else [*md_table(
            ["term", "sum sq", "df", "F", "p", "partial η²"],
            [[t, fmt(r.sum_sq, ".3g"), fmt(r.df, ".0f"), fmt(r.F, ".3g"), fmt(r.p_value, ".3g"),
              fmt(r.partial_eta_sq, ".3f")] for t, r in anova.iterrows()]), "", *(
            f"- {'interaction ' if ':' in t else 'main effect of '}{t}: "
            f"{'detectable' if r.p_value < 0.05 else 'not detectable'} at α = 0.05 "
            f"(F = {fmt(r.F, '.3g')}, p = {fmt(r.p_value, '.3g')})"
            for t, r in anova.drop(index="Residual").iterrows())]
    lines += ["", "## Figures", "", "The forest plot: each difference with its interval, the "
              "margin shaded. Elsewhere error bars are 95% CIs over seeds.", "",
              *(f"![{name}]({name})" for name in figures)]
    lines += ["", "## Diverged, failed and missing experiments", "",
              *(problems(frame, sweep, summary) or ["none"]), ""]
    return "\n".join(lines)
