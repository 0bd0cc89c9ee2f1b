"""The study's report.md: the table, findings in plain words, the ANOVA and what went wrong.

Pure text rendering of what src/studies/sweep_study.py computed; numbers come from its summary
table.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from src.core import naming
from src.core.status import usable
from src.experiments import sweep_spec


def fmt(value, spec: str = ".4f", scale: float = 1.0) -> str:
    return format(value * scale, spec) if isinstance(value, (int, float)) and np.isfinite(value) \
        else "n/a"


def md_table(header: list[str], rows: list[list]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header),
            *("| " + " | ".join(map(str, row)) + " |" for row in rows)]


def finding(row, baseline: str, n_baseline: int) -> str:
    """e.g. "dropout=0.5: no detectable difference from dropout=0.3 at n = 3 vs 3 (diff ...)"."""
    verdict = str(row.verdict)
    if verdict in ("better", "worse"):
        verdict = f"{verdict} than {baseline} at n = {row.n} vs {n_baseline}"
    elif verdict.startswith("no detectable difference"):
        verdict = verdict.replace("difference", f"difference from {baseline}", 1)
    else:
        verdict = f"{verdict}; no comparison with {baseline}"
    if not np.isfinite(row.diff):
        return f"{row.config}: {verdict}"
    interval = f", 95% CI {fmt(row.diff_ci_low, '+.2f', 100)}…{fmt(row.diff_ci_high, '+.2f', 100)}" \
        if np.isfinite(row.diff_ci_low) else ""
    return (f"{row.config}: {verdict} (diff {fmt(row.diff, '+.2f', 100)} points{interval}, "
            f"p_holm = {fmt(row.p_holm, '.2g')})")


def problems(frame: pd.DataFrame, sweep: sweep_spec.Sweep, summary: pd.DataFrame) -> list[str]:
    """Diverged / failed / missing experiments, configurations without a test, mixed params."""
    out = [f"- diverged (excluded): `{r.name}` ({r.reason})" for r in
           frame[frame["state"] == "diverged"].itertuples()]
    out += [f"- failed: `{n}` (see `dvc queue logs {n}`)" for n in
            frame.loc[frame["state"] == "failed", "name"]]
    seeds = range(int(frame["seed"].max()) + 1) if len(frame) else range(0)
    expected = [naming.experiment_name(sweep.name, sweep.label(c), s) for c in sweep.configs
                for s in seeds]
    out += [f"- missing: `{n}`" for n in expected if n not in set(frame["name"])]
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


def render_report(sweep: sweep_spec.Sweep, frame: pd.DataFrame, summary: pd.DataFrame,
                  anova: pd.DataFrame | None, note: str, figures: list[str]) -> str:
    base = sweep.baseline_label
    n_base = int(summary.loc[summary["config"] == base, "n"].sum())
    states = ", ".join(f"{n} {s}" for s, n in frame["state"].value_counts().items())
    seeds = sorted(usable(frame)["seed"].unique().tolist())
    rows = [[f"**{r.config}**" if r.config == base else r.config, r.n,
             f"{fmt(r.cv_mean)} ± {fmt(r.cv_std)}", f"{fmt(r.cv_ci_low)}–{fmt(r.cv_ci_high)}",
             f"{fmt(r.test_mean)} ± {fmt(r.test_std)}", fmt(r.params, ",.0f"),
             fmt(r.seconds_per_epoch, ".2f"), fmt(r.train_val_gap, "+.3f"),
             "" if r.config == base else f"{fmt(r.diff, '+.2f', 100)} "
             f"[{fmt(r.diff_ci_low, '+.2f', 100)}, {fmt(r.diff_ci_high, '+.2f', 100)}]",
             r.test_used, fmt(r.p_value, ".3g"), fmt(r.p_holm, ".3g"), fmt(r.effect_size, "+.2f"),
             r.verdict] for r in summary.itertuples()]
    best = summary.loc[summary["cv_mean"].idxmax()]
    hosts = frame["host"].replace("", np.nan).dropna().value_counts().sort_index() \
        if "host" in frame else pd.Series(dtype=int)
    ran_on = f" They ran on {len(hosts)} hosts: " + ", ".join(
        f"{h} ({n})" for h, n in hosts.items()) + "." if len(hosts) > 1 else ""
    lines = [f"# Study: {sweep.name}", "", *([sweep.description, ""] if sweep.description else []),
             f"{len(frame)} experiments ({states}) over {len(summary)} configurations, seeds "
             f"{seeds} as replicates; baseline `{base}`.{ran_on}", "",
             "**Selection uses CV validation accuracy** (per experiment: the mean over its folds, "
             "final epoch). The test set only confirms the chosen configuration; it was not used "
             "to rank.", "", "## Results", "",
             "Mean ± sd and 95% CI over seeds (n completed seeds; diverged and failed runs "
             "excluded). Differences with the baseline in accuracy points with their 95% CI: "
             "paired t-test when both configurations have the same seeds, Welch otherwise; p "
             "Holm-adjusted over the sweep's comparisons; effect: d_z (paired) or Hedges' g.", "",
             *md_table(["configuration", "n", "CV val acc", "95% CI", "test acc", "params",
                      "s/epoch", "train−val gap", "diff [95% CI]", "test", "p", "p (Holm)",
                      "effect", "verdict"], rows), "", "## Findings", "",
             f"- Best by CV validation accuracy: `{best.config}`, {fmt(best.cv_mean)} (95% CI "
             f"{fmt(best.cv_ci_low)}–{fmt(best.cv_ci_high)}, n = {best.n}); test accuracy, as "
             f"confirmation only: {fmt(best.test_mean)} ± {fmt(best.test_std)}.",
             *(f"- {finding(r, base, n_base)}" for r in summary.itertuples() if r.config != base)]
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
    lines += ["", "## Figures", "", "Error bars: 95% CI over seeds.", "",
              *(f"![{name}]({name})" for name in figures)]
    lines += ["", "## Diverged, failed and missing experiments", "",
              *(problems(frame, sweep, summary) or ["none"]), ""]
    return "\n".join(lines)
