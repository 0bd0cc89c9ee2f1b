"""Study report of a sweep: statistics over seeds, comparisons with the baseline, figures, MLflow.

Reads  `dvc exp show --json` (the current commit's experiments; every commit's with --all-commits,
       keeping the newest run of a name): each experiment's params and
       reports/evaluate/metrics.json; `git show <exp rev>:reports/train/history.csv` for learning
       curves; sweeps.yaml, searches.yaml and params.yaml (the configurations and the baseline).
Writes reports/study/<sweep>/ (each file atomically; files of an earlier study are replaced):
         summary.csv      one row per configuration: n, mean / std / 95% CI of the CV validation
                          accuracy, test accuracy, cost, and the Holm-adjusted comparison with the
                          baseline;
         experiments.csv  one row per experiment (what the table is made of);
         report.md        the table, findings in words, ANOVA, figures, failures;
         *.png            figures chosen from the sweep's design (src/study_figures.py);
       for a search (searches.yaml) instead: trials.csv, report.md (trials ranked, parameter
       importance, what pruning saved, a sweep to confirm the best over seeds) and its figures
       (src/search_study.py);
       an MLflow run `study-<name>` (tags sweep, tunelab.kind=study | search-study) with all of
       the above.
Run    python -m src.study dropout              # after `python -m src.sweep run dropout --seeds 5`
       python -m src.study lr_dropout           # after `python -m src.search lr_dropout ...`
       python -m src.study --all                # every sweep that has experiments
       python -m src.study lr --all-commits     # experiments of every commit, not just HEAD's

Selection uses CV validation accuracy only: per experiment the mean over its folds (final epoch),
the seed being the replicate. The test set confirms the chosen configuration and never ranks.
Every statistic comes from src/stats.py.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from src import (atomic, errors, exp_show, params, paths, search_study, stats, study_figures,
                 sweeps, tracking)
from src.study_report import render_report, usable
from src.errors import TunelabError
from src.sweep import dvc, load_sweeps, sweep_names

STUDY_REPORTS = Path("reports/study")
DPI = 120
METRICS = {  # experiment column -> path in metrics.json
    "cv_accuracy": ("cv", "val_accuracy", "mean"), "test_accuracy": ("test", "accuracy"),
    "params": ("model", "params"), "seconds_per_epoch": ("time", "seconds_per_epoch"),
    "train_val_gap": ("cv", "train_val_gap")}
COMPARISON = ["diff", "diff_ci_low", "diff_ci_high", "test_used", "p_value", "p_holm",
              "effect_size", "verdict"]
COLUMNS = ["name", "rev", "timestamp", "sweep", "config", "name_config", "seed", "state", "reason",
           "others", *METRICS]


# --- collecting ----------------------------------------------------------------------------------

def match_config(sweep: sweeps.Sweep, flat: dict, defaults: dict) -> str | None:
    """The label of the configuration whose values ``flat`` has (a key a configuration leaves out
    keeps the commit's params.yaml value, ``defaults``); None if it matches none."""
    for config in sweep.configs:
        if all(flat.get(k) == (config[k] if k in config else defaults.get(k))
               for k in sweep.varied):
            return sweep.label(config)
    return None


def experiments_frame(shown: list, sweep: sweeps.Sweep) -> pd.DataFrame:
    """The sweep's experiments in `dvc exp show --json` output, one row each (pure).

    The configuration is recomputed from each experiment's own params, not read from its name; a
    name listed under several commits (``-A``) keeps its newest run."""
    rows = []
    for name, head, defaults in exp_show.newest_experiments(
            shown, lambda n: (sweeps.parse_name(n) or {}).get("sweep") == sweep.name):
        parsed, data = sweeps.parse_name(name), head.get("data") or {}
        flat, metrics = exp_show.flat_params(data), exp_show.metrics_of(data)
        failed = bool(head.get("error")) or not metrics
        label = match_config(sweep, flat, defaults) if flat else None
        if label is None and all(k in flat for k in sweep.varied):
            label = sweeps.config_label({k: flat[k] for k in sweep.varied})
        others = {k: v for k, v in flat.items() if k not in sweep.varied and k != "train.seed"}
        rows.append({
            "name": name, "rev": head.get("rev"), "timestamp": exp_show.timestamp(head),
            "sweep": sweep.name, "config": label or parsed["config"],
            "name_config": parsed["config"], "seed": int(flat.get("train.seed", parsed["seed"])),
            "state": "failed" if failed else str(metrics.get("status", "failed")),
            "reason": exp_show.get(head, ("error", "msg")) or metrics.get("reason") or "",
            "others": json.dumps(others, sort_keys=True) if others else "",
            **{column: exp_show.number(exp_show.get(metrics, keys))
               for column, keys in METRICS.items()}})
    return pd.DataFrame(rows, columns=COLUMNS)


def require_completed(frame: pd.DataFrame, sweep: sweeps.Sweep, all_commits: bool = False) -> None:
    if usable(frame).empty:
        where = "in any commit" if all_commits else "on the current commit"
        found = f" ({', '.join(f'{n} {s}' for s, n in frame['state'].value_counts().items())})" \
            if len(frame) else ""
        raise TunelabError(f"sweep {sweep.name} has no completed experiments {where}{found}: run "
                           f"`python -m src.sweep run {sweep.name} --seeds 3` first")


# --- statistics ----------------------------------------------------------------------------------

def _summary(prefix: str, values: pd.Series) -> dict:
    """``<prefix>_mean/std/ci_low/ci_high`` of the finite values (NaN when there are none)."""
    values = values.dropna()
    s = stats.summarize(values.to_numpy(float)) if len(values) else None
    return {f"{prefix}_{k}": getattr(s, a) if s else math.nan for k, a in
            (("mean", "mean"), ("std", "std"), ("ci_low", "ci95_low"), ("ci_high", "ci95_high"))}


def compare_to_baseline(candidate: pd.DataFrame, baseline: pd.DataFrame) -> stats.Comparison:
    """Paired t-test when both have the same set of seeds (values aligned by seed), else Welch."""
    c = candidate.set_index("seed")["cv_accuracy"].sort_index()
    b = baseline.set_index("seed")["cv_accuracy"].sort_index()
    paired = c.index.is_unique and b.index.is_unique and set(c.index) == set(b.index)
    return stats.compare(c.to_numpy(float), (b.loc[c.index] if paired else b).to_numpy(float),
                         paired=paired)


def summary_table(frame: pd.DataFrame, sweep: sweeps.Sweep) -> pd.DataFrame:
    """One row per configuration: spread over seeds, cost, and the comparison with the baseline
    (Holm-adjusted over the sweep's comparisons)."""
    ok, base = usable(frame), sweep.baseline_label
    base_rows = ok[ok["config"] == base]
    rows, comparisons = [], {}
    # The sweep's configurations in its order, then any that only the data has (a --set value).
    levels = {sweep.label(c): {k: sweeps.format_value(c[k]) if k in c else "" for k in sweep.varied}
              for c in sweep.configs}
    levels |= {c: dict.fromkeys(sweep.varied, "") for c in frame["config"] if c not in levels}
    for label, values in levels.items():
        mine, every = ok[ok["config"] == label], frame[frame["config"] == label]
        row = {"config": label, **values, "n": len(mine), **_summary("cv", mine["cv_accuracy"]),
               **_summary("test", mine["test_accuracy"]),
               **_summary("train", mine["cv_accuracy"] + mine["train_val_gap"]),
               "params": mine["params"].median(),
               "seconds_per_epoch": mine["seconds_per_epoch"].mean(),
               "train_val_gap": mine["train_val_gap"].mean(),
               "n_diverged": int((every["state"] == "diverged").sum()),
               "n_failed": int((every["state"] == "failed").sum())}
        if label == base:
            row |= {"test_used": "baseline", "verdict": "baseline"}
        elif mine.empty or base_rows.empty:
            row |= {"test_used": "none",
                    "verdict": f"not tested (n = {len(mine)} vs {len(base_rows)})"}
        else:
            c = comparisons[label] = compare_to_baseline(mine, base_rows)
            row |= {"diff": c.diff, "diff_ci_low": c.ci95_low, "diff_ci_high": c.ci95_high,
                    "test_used": c.test, "p_value": c.p_value, "effect_size": c.effect_size}
        rows.append(row)
    table = pd.DataFrame(rows)
    table = table.reindex(columns=[k for k in table if k not in COMPARISON] + COMPARISON)
    tested = table["config"].isin(list(comparisons))
    table.loc[tested, "p_holm"] = stats.holm(table.loc[tested, "p_value"].to_numpy(float))
    for i in table.index[tested]:
        table.loc[i, "verdict"] = stats.verdict(comparisons[table.loc[i, "config"]],
                                                float(table.loc[i, "p_holm"]))
    return table


def anova_table(frame: pd.DataFrame, grid) -> tuple[pd.DataFrame | None, str]:
    """Two-way ANOVA (main effects + interaction) on the per-experiment values of a full grid
    (:func:`study_figures.grid_factors`); (None, why) when the data cannot support one."""
    if grid is None:
        return None, ""
    (a, b), cells = grid
    data = usable(frame)
    data = data[data["config"].isin(list(cells))]
    data = data.assign(**{a: data["config"].map(lambda c: cells[c][0]),
                          b: data["config"].map(lambda c: cells[c][1])})
    try:
        return stats.two_way_anova(data, a, b, "cv_accuracy"), ""
    except ValueError as error:
        return None, f"two-way ANOVA not possible: {error}"


# --- outputs -------------------------------------------------------------------------------------

def read_histories(frame: pd.DataFrame) -> dict[str, list[pd.DataFrame]]:
    """Each usable experiment's per-epoch history from its git commit, by configuration."""
    histories: dict[str, list[pd.DataFrame]] = {}
    for row in usable(frame).itertuples():
        shown = subprocess.run(["git", "show", f"{row.rev}:{paths.TRAIN_HISTORY}"],
                               capture_output=True, text=True)
        if shown.returncode == 0 and shown.stdout.strip():
            histories.setdefault(row.config, []).append(pd.read_csv(io.StringIO(shown.stdout)))
    return histories


def write_outputs(folder: Path, files: dict[str, object]) -> None:
    """Each file atomically (str -> text, DataFrame -> CSV, Figure -> PNG); stale files removed."""
    for name, content in files.items():
        if isinstance(content, str):
            atomic.write_text(folder / name, content)
        elif isinstance(content, pd.DataFrame):
            atomic.write_with(folder / name, lambda tmp, c=content: c.to_csv(tmp, index=False))
        else:  # a Figure
            atomic.write_with(folder / name, lambda tmp, c=content: c.savefig(tmp, dpi=DPI,
                                                                              format="png"))
    for stale in folder.iterdir():
        if stale.is_file() and stale.name not in files:
            stale.unlink()


def log_to_mlflow(name: str, folder: Path, tags: dict, metrics: dict) -> str:
    """The study of sweep or search ``name`` as its own MLflow run in the project's store, with
    every file of ``folder`` as artifacts; returns the run id."""
    uri = tracking.tracking_uri()
    experiment_id, client = tracking.init_store(uri), tracking._client(uri)
    tags = {"sweep": name, "tunelab.kind": "study", "git.commit": tracking.git_commit() or ""} | tags
    run_id = client.create_run(experiment_id, run_name=f"study-{name}", tags=tags).info.run_id
    for key, value in metrics.items():
        if np.isfinite(value):
            client.log_metric(run_id, key, float(value))
    client.log_artifacts(run_id, str(folder), "study")
    client.set_terminated(run_id, "FINISHED")
    return run_id


def sweep_run_record(sweep: sweeps.Sweep, summary: pd.DataFrame, n: int) -> tuple[dict, dict]:
    """Tags and metrics of a sweep's study run: the best configuration and the baseline."""
    best = summary.loc[summary["cv_mean"].idxmax()]
    base = summary.loc[summary["config"] == sweep.baseline_label, "cv_mean"]
    return ({"study.best_config": best["config"], "study.baseline_config": sweep.baseline_label},
            {"best.cv_accuracy_mean": best["cv_mean"], "experiments": n,
             "baseline.cv_accuracy_mean": base.iloc[0] if len(base) else math.nan})


def build_study(sweep: sweeps.Sweep, frame: pd.DataFrame,
                histories: dict[str, list[pd.DataFrame]] | None = None) -> dict[str, object]:
    """Every output file of a sweep's study, by name: DataFrames (CSV), the report, Figures."""
    summary = summary_table(frame, sweep)
    grid = study_figures.grid_factors(sweep)
    anova, note = anova_table(frame, grid)
    curves = study_figures.seed_curves(histories) if histories else None
    built = study_figures.build_all(sweep, summary, grid, curves)
    return {"summary.csv": summary, "experiments.csv": frame.drop(columns="others"),
            "report.md": render_report(sweep, frame, summary, anova, note, list(built)), **built}


def search_names() -> list[str]:
    from src import searches
    return list(params.read_yaml(searches.SEARCHES_FILE)) if searches.SEARCHES_FILE.exists() else []


def load_search(name: str):
    from src import searches
    base = params.read_yaml(paths.PARAMS)
    params.validate_all(base)
    return searches.load(searches.SEARCHES_FILE, base, sweep_names(), names=[name])[name]


def sweeps_to_study(names: list[str]) -> dict[str, sweeps.Sweep]:
    """The named sweeps parsed; with --all, one that does not fit params.yaml is skipped, said."""
    if len(names) == 1:
        return load_sweeps(names)[1]
    found = {}
    for name in names:
        try:
            found |= load_sweeps([name])[1]
        except TunelabError as error:
            print(f"skipped: {error}", file=sys.stderr)
    return found


def study_search(search, shown: list) -> None:
    """A search's study: trials ranked, importance, history, pruning's savings (search_study)."""
    frame = search_study.trials_frame(shown, search)
    if frame.empty:
        raise TunelabError(f"search {search.name} has no trials on the current commit: run "
                           f"`python -m src.search {search.name} --trials 20 --jobs 2` first")
    folder = STUDY_REPORTS / search.name
    settings = search_study.shared_settings(shown, search, params.read_yaml(paths.PARAMS))
    files = search_study.build(search, frame, settings)
    write_outputs(folder, files)
    ranked = search_study.ranked(frame)
    cost = search_study.compute(frame)
    log_to_mlflow(search.name, folder,
                  {"tunelab.kind": "search-study",
                   "study.best_trial": ranked["name"].iloc[0] if len(ranked) else ""},
                  {"best.cv_accuracy": ranked["cv_accuracy"].iloc[0] if len(ranked) else math.nan,
                   "trials": len(frame), "pruned": cost["pruned"],
                   "pruning.saved_share": cost["saved_share"]})
    print(f"study {search.name}: {len(frame)} trials -> {folder}/: {', '.join(sorted(files))}")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m src.study", description=__doc__.split("\n\n")[0])
    p.add_argument("name", nargs="?", help="a sweep of sweeps.yaml or a search of searches.yaml")
    p.add_argument("--all", action="store_true", help="every sweep that has experiments")
    p.add_argument("--all-commits", "-A", action="store_true",
                   help="experiments of every commit (the newest run of each name)")
    return p


def main() -> None:
    args = parser().parse_args()
    if bool(args.name) == args.all:
        raise TunelabError("name one sweep or search, or pass --all, e.g. "
                           "`python -m src.study dropout`")
    is_search = not args.all and args.name not in sweep_names() and args.name in search_names()
    if not args.all and not is_search and args.name not in sweep_names():
        raise TunelabError(f"unknown sweep or search {args.name!r}; sweeps in sweeps.yaml: "
                           f"{', '.join(sweep_names())}; searches in searches.yaml: "
                           f"{', '.join(search_names()) or 'none'}")
    search = load_search(args.name) if is_search else None
    all_sweeps = {} if is_search else sweeps_to_study(sweep_names() if args.all else [args.name])
    shown = json.loads(dvc("exp", "show", "--json", *(["-A"] if args.all_commits else []),
                           read_only=True) or "[]")
    if search:
        return study_search(search, shown)
    names = list(all_sweeps)
    written = 0
    for name in names:
        frame = experiments_frame(shown, all_sweeps[name])
        if args.all and frame.empty:
            continue
        try:
            require_completed(frame, all_sweeps[name], args.all_commits)
        except TunelabError as error:
            if not args.all:
                raise
            print(f"skipped: {error}", file=sys.stderr)
            continue
        sweep, folder = all_sweeps[name], STUDY_REPORTS / name
        kinds = {kind for _, kind in study_figures.plan(sweep, study_figures.grid_factors(sweep))}
        files = build_study(sweep, frame, read_histories(frame) if "curves" in kinds else None)
        write_outputs(folder, files)
        log_to_mlflow(name, folder, *sweep_run_record(sweep, files["summary.csv"], len(frame)))
        written += 1
        print(f"study {name}: {len(frame)} experiments -> {folder}/: {', '.join(sorted(files))}")
    if not written:
        where = "in any commit" if args.all_commits else "on the current commit"
        raise TunelabError(f"no sweep has completed experiments {where}: run one first, e.g. "
                           "`python -m src.sweep run dropout --seeds 3`")


if __name__ == "__main__":
    errors.run(main)
