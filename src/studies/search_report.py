"""Study report of a search (`python -m src.study <search>`): its trials ranked, which parameters
mattered, how the search progressed, and what pruning saved. Pure: data in, tables / figures /
text out; src/study.py reads `dvc exp show --json` and writes the files.

A search trial is one configuration at one seed, so there is no spread over seeds to test: the
error bars here are 95% CIs over the trial's CV folds, which show how precisely a trial was
measured, not how a configuration varies with the seed. The report says so, and hands the top
trials over to a sweep (as `configs:`) to be confirmed over seeds.
"""

from __future__ import annotations

import json
import math
import shlex
from pathlib import Path

import matplotlib.ticker
import numpy as np
import optuna
import pandas as pd
from matplotlib.figure import Figure

from src.core import naming
from src.core.status import EXCLUDED, Status, parse, usable
from src.experiments import exp_show
from src.experiments.search_spec import Search
from src.studies.sweep_report import fmt, md_table

TRIALS = "trials.csv"  # one row per trial: the study's record
SETTINGS = "settings.json"  # the params every trial shared that differ from params.yaml
TOP = 10  # trials shown in the ranking figure and the report's table
METRICS = {"cv_accuracy": ("cv", "val_accuracy", "mean"),
           "cv_ci_low": ("cv", "val_accuracy", "ci95_low"),
           "cv_ci_high": ("cv", "val_accuracy", "ci95_high"),
           "test_accuracy": ("test", "accuracy"), "params": ("model", "params"),
           "train_seconds": ("time", "train_seconds"), "epochs": ("time", "epochs")}
COLOR, PRUNED_COLOR, BEST_COLOR = "tab:blue", "tab:gray", "tab:red"


def trials_frame(shown: list, search: Search) -> pd.DataFrame:
    """One row per trial experiment ``<search>--t<NNN>--s<seed>`` in `dvc exp show --json` output:
    trial number, seed, state, the searched values, CV accuracy with its CI over folds, test
    accuracy, cost (fold-epochs and seconds trained) and ``full_epochs``, what the trial would have
    trained without pruning (folds x epochs)."""
    keys = [d.key for d in search.space]
    rows = []
    for name, head, *_ in exp_show.newest_experiments(
            shown, lambda n: (naming.parse_trial_name(n) or ("",))[0] == search.name):
        data = head.get("data") or {}
        flat, metrics = exp_show.flat_params(data), exp_show.metrics_of(data)
        failed = bool(head.get("error")) or not metrics
        full = exp_show.number(flat.get("prepare.cv_folds")) * \
            exp_show.number(flat.get("train.epochs"))
        rows.append({
            "name": name, "rev": head.get("rev"), "trial": naming.parse_trial_name(name)[1],
            "seed": flat.get("train.seed"),
            "state": str(Status.FAILED if failed else parse(metrics.get("status"))),
            "reason": exp_show.get(head, ("error", "msg")) or metrics.get("reason") or "",
            **{k: flat.get(k) if isinstance(flat.get(k), (int, float, str)) else
               naming.format_value(flat.get(k)) for k in keys},
            **{column: exp_show.number(exp_show.get(metrics, path))
               for column, path in METRICS.items()},
            "full_epochs": full})
    columns = ["name", "rev", "trial", "seed", "state", "reason", *keys, *METRICS, "full_epochs"]
    return pd.DataFrame(rows, columns=columns).sort_values("trial", ignore_index=True)


def shared_settings(shown: list, search: Search, base: dict) -> dict:
    """The params outside the search's space and its `fixed` values that every trial shared and
    that differ from ``base`` (params.yaml content): the `--set` overrides of the run, which a
    reader of the report must know (e.g. a 1,500-image subset)."""
    space = {d.key for d in search.space} | set(search.fixed) | {"train.seed"}
    shared = None
    for _, head, *_ in exp_show.newest_experiments(
            shown, lambda n: (naming.parse_trial_name(n) or ("",))[0] == search.name):
        flat = {k: v for k, v in exp_show.flat_params(head.get("data") or {}).items()
                if k not in space}
        shared = flat if shared is None else {k: v for k, v in shared.items()
                                              if k in flat and flat[k] == v}
    base_flat = {f"{s}.{k}": v for s, section in base.items() if isinstance(section, dict)
                 for k, v in section.items()}
    return {k: v for k, v in sorted((shared or {}).items()) if base_flat.get(k) != v}


def completed(frame: pd.DataFrame) -> pd.DataFrame:
    """The trials that enter the ranking: the same filter as a sweep's study."""
    return usable(frame)


def ranked(frame: pd.DataFrame) -> pd.DataFrame:
    """Completed trials, best CV accuracy first (ties: the earlier trial first)."""
    return completed(frame).sort_values(["cv_accuracy", "trial"], ascending=[False, True],
                                        ignore_index=True)


def best_so_far(frame: pd.DataFrame) -> pd.Series:
    """By trial number: the best CV accuracy of the completed trials up to it (NaN before the
    first completed one)."""
    by_trial = frame.sort_values("trial")
    values = by_trial["cv_accuracy"].where(~by_trial["state"].isin(EXCLUDED))
    return pd.Series(values.cummax().ffill().to_numpy(), index=by_trial["trial"].to_numpy())


def compute(frame: pd.DataFrame) -> dict:
    """Fold-epochs trained, and what running the pruned trials to the end would have cost
    (their folds x epochs; an upper bound where early stopping would have ended them sooner)."""
    pruned = frame["state"] == Status.PRUNED
    trained = float(frame["epochs"].sum())
    unpruned = trained - float(frame.loc[pruned, "epochs"].sum()) + \
        float(frame.loc[pruned, "full_epochs"].sum())
    return {"trials": len(frame), "pruned": int(pruned.sum()), "epochs_trained": trained,
            "epochs_without_pruning": unpruned,
            "saved_share": 1 - trained / unpruned if unpruned > 0 else math.nan,
            "train_seconds": float(frame["train_seconds"].sum())}


def importance(frame: pd.DataFrame, search: Search, seed: int = 0) -> tuple[dict[str, float], str]:
    """fANOVA importance of each searched parameter for the CV accuracy of the completed trials
    (Optuna's evaluator, seeded); ({}, why) when the trials cannot support one."""
    done = completed(frame)
    if len(done) < 2 or done["cv_accuracy"].nunique() < 2:
        return {}, f"parameter importance needs at least 2 completed trials with different " \
                   f"results; this search has {len(done)}"
    distributions = search.distributions()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # not "A new study created in memory"
    study = optuna.create_study(direction="maximize")
    for row in done.to_dict("records"):
        chosen = {d.key: _encoded(d, row[d.key]) for d in search.space}
        try:
            study.add_trial(optuna.trial.create_trial(params=chosen, distributions=distributions,
                                                      value=float(row["cv_accuracy"])))
        except ValueError as error:  # a value outside today's space (searches.yaml was edited)
            return {}, f"parameter importance not computed: {row['name']}: {error}"
    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=seed)
    return dict(optuna.importance.get_param_importances(study, evaluator=evaluator)), ""


def _encoded(dimension, value):
    """A trial's value as Optuna's distribution holds it (list choices as their text)."""
    if dimension.type == "categorical":
        return dimension.encode(value)
    return int(value) if dimension.type == "int" else float(value)


# --- figures -------------------------------------------------------------------------------------

def _fold_err(rows: pd.DataFrame) -> np.ndarray:
    """Asymmetric error bars (2, K) from the CI over folds; 0 where there is none."""
    mean = rows["cv_accuracy"].to_numpy(float)
    err = np.vstack([mean - rows["cv_ci_low"].to_numpy(float),
                     rows["cv_ci_high"].to_numpy(float) - mean])
    return np.nan_to_num(err)


def history_figure(frame: pd.DataFrame) -> Figure:
    """CV accuracy of each trial in order (CI over folds), the best so far as a step line, and the
    pruned / failed trials as marks on the bottom edge."""
    fig = Figure(figsize=(8, 4.6), layout="constrained")
    ax = fig.add_subplot()
    done = completed(frame)
    ax.errorbar(done["trial"], done["cv_accuracy"], yerr=_fold_err(done), fmt="o", capsize=3,
                color=COLOR, label="completed trial (95% CI over folds)")
    best = best_so_far(frame)
    ax.step(best.index, best.to_numpy(), where="post", color=BEST_COLOR, label="best so far",
            gid="best-so-far")
    stopped = frame[frame["state"].isin(EXCLUDED)]
    if len(stopped):
        ax.plot(stopped["trial"], np.zeros(len(stopped)), linestyle="none", marker="x",
                color=PRUNED_COLOR, transform=ax.get_xaxis_transform(), clip_on=False,
                label="pruned / failed / diverged (no final value)", gid="stopped")
    ax.set_xlabel("trial number")
    ax.set_ylabel("CV validation accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(f"Optimisation history: {len(done)} completed of {len(frame)} trials", fontsize=10)
    return fig


def trial_label(row: dict, search: Search) -> str:
    values = ", ".join(f"{d.key.split('.')[-1]}={_short(row[d.key])}" for d in search.space)
    return f"{naming.trial_config(int(row['trial']))}: {values}"


def _short(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def top_trials_figure(frame: pd.DataFrame, search: Search, top: int = TOP) -> Figure:
    """The best ``top`` trials by CV accuracy, best on top, with their CI over folds."""
    rows = ranked(frame).head(top).iloc[::-1]
    fig = Figure(figsize=(9, 0.42 * len(rows) + 1.8), layout="constrained")
    ax = fig.add_subplot()
    y = np.arange(len(rows))
    ax.errorbar(rows["cv_accuracy"], y, xerr=_fold_err(rows), fmt="o", capsize=4, color=COLOR)
    ax.set_yticks(y, [trial_label(r, search) for r in rows.to_dict("records")], fontsize=8)
    ax.set_xlabel("CV validation accuracy (95% CI over folds; one seed per trial)")
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(f"{search.name}: the {len(rows)} best trials", fontsize=10)
    return fig


def importance_figure(importances: dict[str, float]) -> Figure:
    """fANOVA importance per parameter, largest on top."""
    items = sorted(importances.items(), key=lambda kv: kv[1])
    fig = Figure(figsize=(7, 0.45 * len(items) + 1.6), layout="constrained")
    ax = fig.add_subplot()
    ax.barh([k for k, _ in items], [v for _, v in items], color=COLOR)
    ax.set_xlabel("share of the CV accuracy's variance explained (fANOVA)")
    ax.set_xlim(0, 1)
    ax.set_title("Parameter importance", fontsize=10)
    return fig


def slices_figure(frame: pd.DataFrame, search: Search) -> Figure:
    """CV accuracy against each searched parameter (one panel each), coloured by trial number:
    where the good trials sit in each dimension, and where the sampler spent its trials."""
    done = completed(frame)
    fig = Figure(figsize=(3.6 * len(search.space), 3.8), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(search.space), sharey=True))
    for ax, dim in zip(axes, search.space):
        x = done[dim.key]
        if dim.type == "categorical":
            order = [dim.encode(c) for c in dim.choices]
            x = x.map({v: i for i, v in enumerate(order)})
            ax.set_xticks(range(len(order)), [str(o) for o in order], fontsize=8)
            ax.set_xlim(-0.5, len(order) - 0.5)
        else:  # the whole range searched, so the plot shows where the sampler went
            log = dim.type == "loguniform" or (dim.type == "int" and dim.log)
            margin = (dim.high / dim.low) ** 0.04 if log else (dim.high - dim.low) * 0.04
            ax.set_xscale("log" if log else "linear")
            ax.set_xlim(*((dim.low / margin, dim.high * margin) if log else
                          (dim.low - margin, dim.high + margin)))
            if log:  # decades only: minor labels (2x10^-3, 3x10^-3...) collide
                ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        points = ax.scatter(x, done["cv_accuracy"], c=done["trial"], cmap="viridis", s=25)
        ax.set_xlabel(dim.key)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("CV validation accuracy")
    fig.colorbar(points, ax=axes, label="trial number")
    return fig


def build_figures(frame: pd.DataFrame, search: Search,
                  importances: dict[str, float]) -> dict[str, Figure]:
    figures = {"optimization_history.png": history_figure(frame)}
    if len(completed(frame)):
        figures |= {"top_configurations.png": top_trials_figure(frame, search),
                    "param_slices.png": slices_figure(frame, search)}
    if importances:
        figures["param_importance.png"] = importance_figure(importances)
    return figures


# --- report.md -----------------------------------------------------------------------------------

def confirm_snippet(frame: pd.DataFrame, search: Search, top: int = 3) -> list[str]:
    """sweeps.yaml text that confirms the best ``top`` trials over seeds."""
    configs = []
    for row in ranked(frame).to_dict("records"):
        config = ", ".join(f"{d.key}: {naming.format_value(row[d.key])}" for d in search.space)
        if config not in configs:  # a sampler may propose the same values twice
            configs.append(config)
    configs = configs[:top]
    fixed = ", ".join(f"{k}: {naming.format_value(v)}" for k, v in search.fixed.items())
    return ["```yaml", f"{search.name}_confirm:", f"  description: best trials of search "
            f"{search.name}, over seeds", *([f"  fixed: {{{fixed}}}"] if fixed else []),
            "  configs:", *(f"    - {{{c}}}" for c in configs),
            f"  baseline: {{{configs[0]}}}" if configs else "", "```"]


def render(search: Search, frame: pd.DataFrame, importances: dict[str, float], note: str,
           cost: dict, figures: list[str], settings: dict | None = None) -> str:
    settings = settings or {}
    sets = " ".join("--set " + shlex.quote(f"{k}={naming.format_value(v)}")
                    for k, v in settings.items())
    states = ", ".join(f"{n} {s}" for s, n in frame["state"].value_counts().items())
    keys = [d.key for d in search.space]
    rows = [[i + 1, naming.trial_config(int(r['trial'])), *(_short(r[k]) for k in keys),
             f"{fmt(r['cv_accuracy'])} [{fmt(r['cv_ci_low'])}, {fmt(r['cv_ci_high'])}]",
             fmt(r["test_accuracy"]), fmt(r["params"], ",.0f"), fmt(r["epochs"], ".0f")]
            for i, r in enumerate(ranked(frame).head(TOP).to_dict("records"))]
    lines = [f"# Search: {search.name}", "", *([search.description, ""] if search.description else []),
             f"{len(frame)} trials ({states}). Objective: CV validation accuracy (mean over the "
             "folds, final epoch); the test set was not used to rank and is shown as "
             "confirmation only.", "",
             *([f"Every trial ran with these values that differ from params.yaml: "
                f"{', '.join(f'`{k}={naming.format_value(v)}`' for k, v in settings.items())}. "
                "Accuracies are comparable with each other, not with the defaults' results.",
                ""] if settings else []),
             "**One seed per trial**: the intervals are 95% CIs over the trial's CV folds (how "
             "precisely it was measured), not over seeds. Differences between the top trials "
             "smaller than these intervals are not evidence; confirm the best ones over seeds "
             "with a sweep (below).", "", f"## The best {min(TOP, len(rows))} trials", "",
             *(md_table(["rank", "trial", *keys, "CV val acc [95% CI, folds]", "test acc",
                       "params", "fold-epochs"], rows) if rows else ["no completed trial"]),
             "", "## Parameter importance", ""]
    if importances:
        lines += [f"fANOVA on the {len(completed(frame))} completed trials (Optuna's evaluator, "
                  "seed 0): the share of the CV accuracy's variance each parameter explains. "
                  "Indicative with few trials.", "",
                  *md_table(["parameter", "importance"],
                          [[k, f"{v:.3f}"] for k, v in importances.items()])]
    else:
        lines.append(note)
    lines += ["", "## Compute and pruning", "",
              f"- {cost['trials']} trials trained {cost['epochs_trained']:.0f} fold-epochs in "
              f"{cost['train_seconds']:.0f} s of training.",
              f"- {cost['pruned']} pruned; running them to the end would have taken "
              f"{cost['epochs_without_pruning']:.0f} fold-epochs: pruning saved "
              f"{fmt(cost['saved_share'], '.0%')} of the training (an upper bound where early "
              "stopping would have ended a trial sooner)." if cost["pruned"] else
              "- no trial was pruned.", ""]
    if len(completed(frame)):
        lines += ["## Confirm over seeds", "",
                  "Add this to sweeps.yaml, then `python -m src.sweep run "
                  f"{search.name}_confirm --seeds 3 --jobs 2{' ' + sets if sets else ''}` and "
                  f"`python -m src.study {search.name}_confirm`:", "",
                  *confirm_snippet(frame, search), ""]
    stopped = frame[frame["state"].isin(EXCLUDED)]
    lines += ["## Figures", "", *(f"![{name}]({name})" for name in figures), "",
              "## Pruned, diverged and failed trials", "",
              *([f"- `{r['name']}`: {r['state']} ({r['reason']})"
                 for r in stopped.to_dict("records")] or ["none"]), ""]
    return "\n".join(lines)


def build(search: Search, frame: pd.DataFrame, settings: dict | None = None) -> dict[str, object]:
    """Every output file of a search's study, by name: trials.csv, report.md, the figures, and
    the ``settings`` (what :func:`shared_settings` found, named in the report) as SETTINGS when
    there are any, so that a clone without the trials rebuilds the report (:func:`recorded`)."""
    importances, note = importance(frame, search)
    figures = build_figures(frame, search, importances)
    report = render(search, frame, importances, note, compute(frame), list(figures), settings)
    kept = {SETTINGS: json.dumps(settings, indent=2, sort_keys=True) + "\n"} if settings else {}
    return {TRIALS: frame, "report.md": report, **kept, **figures}


def recorded(folder: Path, search: Search) -> tuple[pd.DataFrame, dict]:
    """The committed study's trials (``folder``/TRIALS, as :func:`trials_frame` makes them; empty
    if there is none) and shared settings (``folder``/SETTINGS, {} if none): the record a clone
    without the trials rebuilds the study from."""
    path = folder / TRIALS
    if not path.is_file():
        return trials_frame([], search), {}
    frame = pd.read_csv(path, float_precision="round_trip", keep_default_na=False,
                        na_values={c: [""] for c in [*METRICS, "full_epochs"]})
    frame["reason"] = frame["reason"].astype(str)
    settings = folder / SETTINGS
    return frame, json.loads(settings.read_text()) if settings.is_file() else {}
