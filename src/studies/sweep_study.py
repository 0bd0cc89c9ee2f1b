"""A sweep's study (pure but for :func:`read_histories`): its experiments as a table, the summary over
seeds with the comparisons against the baseline, the ANOVA of a factorial grid, and every output
file of the study (report.md, CSVs, figures).

Selection uses CV validation accuracy only: per experiment the mean over its folds (final epoch),
the seed being the replicate. The test set confirms the chosen configuration and never ranks.
Every statistic comes from src/core/stats.py.
"""

from __future__ import annotations

import io
import json
import math
import subprocess

import pandas as pd

from src.core import naming, paths, stats
from src.core.errors import TunelabError
from src.core.status import usable
from src.experiments import exp_show, sweep_spec
from src.studies import sweep_figures
from src.studies.sweep_report import render_report

METRICS = {  # experiment column -> path in metrics.json
    "cv_accuracy": ("cv", "val_accuracy", "mean"), "test_accuracy": ("test", "accuracy"),
    "params": ("model", "params"), "seconds_per_epoch": ("time", "seconds_per_epoch"),
    "train_val_gap": ("cv", "train_val_gap")}
COMPARISON = ["diff", "diff_ci_low", "diff_ci_high", "test_used", "p_value", "p_holm",
              "effect_size", "verdict"]
COLUMNS = ["name", "rev", "timestamp", "sweep", "config", "name_config", "seed", "state", "reason",
           "host", "others", *METRICS]


def match_config(sweep: sweep_spec.Sweep, flat: dict, defaults: dict) -> str | None:
    """The label of the configuration whose values ``flat`` has (a key a configuration leaves out
    keeps the commit's params.yaml value, ``defaults``); None if it matches none."""
    for config in sweep.configs:
        if all(flat.get(k) == (config[k] if k in config else defaults.get(k))
               for k in sweep.varied):
            return sweep.label(config)
    return None


def experiments_frame(shown: list, sweep: sweep_spec.Sweep) -> pd.DataFrame:
    """The sweep's experiments in `dvc exp show --json` output, one row each (pure).

    The configuration is recomputed from each experiment's own params, not read from its name; a
    name listed under several commits (``-A``) keeps its newest run."""
    rows = []
    for name, head, defaults in exp_show.newest_experiments(
            shown, lambda n: (naming.parse_name(n) or {}).get("sweep") == sweep.name):
        parsed, data = naming.parse_name(name), head.get("data") or {}
        flat, metrics = exp_show.flat_params(data), exp_show.metrics_of(data)
        failed = bool(head.get("error")) or not metrics
        label = match_config(sweep, flat, defaults) if flat else None
        if label is None and all(k in flat for k in sweep.varied):
            label = naming.config_label({k: flat[k] for k in sweep.varied})
        others = {k: v for k, v in flat.items() if k not in sweep.varied and k != "train.seed"}
        rows.append({
            "name": name, "rev": head.get("rev"), "timestamp": exp_show.timestamp(head),
            "sweep": sweep.name, "config": label or parsed["config"],
            "name_config": parsed["config"], "seed": int(flat.get("train.seed", parsed["seed"])),
            "state": "failed" if failed else str(metrics.get("status", "failed")),
            "reason": exp_show.get(head, ("error", "msg")) or metrics.get("reason") or "",
            "host": "",  # read_hosts fills it in from the experiment's commit
            "others": json.dumps(others, sort_keys=True) if others else "",
            **{column: exp_show.number(exp_show.get(metrics, keys))
               for column, keys in METRICS.items()}})
    return pd.DataFrame(rows, columns=COLUMNS)


def require_completed(frame: pd.DataFrame, sweep: sweep_spec.Sweep, all_commits: bool = False) -> None:
    if usable(frame).empty:
        where = "in any commit" if all_commits else "on the current commit"
        found = f" ({', '.join(f'{n} {s}' for s, n in frame['state'].value_counts().items())})" \
            if len(frame) else ""
        raise TunelabError(f"sweep {sweep.name} has no completed experiments {where}{found}: run "
                           f"`python -m src.sweep run {sweep.name} --seeds 3` first")


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


def summary_table(frame: pd.DataFrame, sweep: sweep_spec.Sweep) -> pd.DataFrame:
    """One row per configuration: spread over seeds, cost, and the comparison with the baseline
    (Holm-adjusted over the sweep's comparisons)."""
    ok, base = usable(frame), sweep.baseline_label
    base_rows = ok[ok["config"] == base]
    rows, comparisons = [], {}
    # The sweep's configurations in its order, then any that only the data has (a --set value).
    levels = {sweep.label(c): {k: naming.format_value(c[k]) if k in c else "" for k in sweep.varied}
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
    (:func:`sweep_figures.grid_factors`); (None, why) when the data cannot support one."""
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


def read_histories(frame: pd.DataFrame) -> dict[str, list[pd.DataFrame]]:
    """Each usable experiment's per-epoch history from its git commit, by configuration."""
    histories: dict[str, list[pd.DataFrame]] = {}
    for row in usable(frame).itertuples():
        shown = subprocess.run(["git", "show", f"{row.rev}:{paths.TRAIN_HISTORY}"],
                               capture_output=True, text=True)
        if shown.returncode == 0 and shown.stdout.strip():
            histories.setdefault(row.config, []).append(pd.read_csv(io.StringIO(shown.stdout)))
    return histories


def read_hosts(revs: list[str]) -> dict[str, str]:
    """The host each experiment ran on, by rev: the ``host`` that train wrote into
    reports/train/mlflow_run.json of the experiment's commit (one `git cat-file --batch` for all;
    revs without it are left out). An experiment pulled from another host's push names that host."""
    revs = [rev for rev in dict.fromkeys(revs) if isinstance(rev, str) and rev]
    if not revs:
        return {}
    done = subprocess.run(["git", "cat-file", "--batch"], capture_output=True,
                          input="".join(f"{rev}:{paths.MLFLOW_RUN}\n" for rev in revs).encode())
    out, at, hosts = done.stdout, 0, {}
    for rev in revs:
        end = out.find(b"\n", at)
        if end < 0:
            break
        header = out[at:end].split()
        at = end + 1
        if len(header) != 3:  # "<rev>:<path> missing"
            continue
        size = int(header[2])
        try:
            host = json.loads(out[at:at + size]).get("host")
        except (ValueError, AttributeError):
            host = None
        at += size + 1
        if host:
            hosts[rev] = str(host)
    return hosts


def with_hosts(frame: pd.DataFrame) -> pd.DataFrame:
    """The experiments table with its ``host`` column read from git (:func:`read_hosts`)."""
    hosts = read_hosts(frame["rev"].tolist())
    return frame.assign(host=frame["rev"].map(lambda rev: hosts.get(rev, "")))


def sweep_run_record(sweep: sweep_spec.Sweep, summary: pd.DataFrame, n: int) -> tuple[dict, dict]:
    """Tags and metrics of a sweep's study run: the best configuration and the baseline."""
    best = summary.loc[summary["cv_mean"].idxmax()]
    base = summary.loc[summary["config"] == sweep.baseline_label, "cv_mean"]
    return ({"study.best_config": best["config"], "study.baseline_config": sweep.baseline_label},
            {"best.cv_accuracy_mean": best["cv_mean"], "experiments": n,
             "baseline.cv_accuracy_mean": base.iloc[0] if len(base) else math.nan})


def build_study(sweep: sweep_spec.Sweep, frame: pd.DataFrame,
                histories: dict[str, list[pd.DataFrame]] | None = None) -> dict[str, object]:
    """Every output file of a sweep's study, by name: DataFrames (CSV), the report, Figures."""
    summary = summary_table(frame, sweep)
    grid = sweep_figures.grid_factors(sweep)
    anova, note = anova_table(frame, grid)
    curves = sweep_figures.seed_curves(histories) if histories else None
    built = sweep_figures.build_all(sweep, summary, grid, curves)
    return {"summary.csv": summary, "experiments.csv": frame.drop(columns="others"),
            "report.md": render_report(sweep, frame, summary, anova, note, list(built)), **built}


