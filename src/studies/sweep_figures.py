"""Figures of a study report (`python -m src.study`, src/studies/sweep_study.py): data in,
:class:`Figure` out.

The builders take the study's summary table (one row per configuration with the columns of
``reports/study/<sweep>/summary.csv``: ``config``, ``n``, ``cv_mean``, ``cv_ci_low``,
``cv_ci_high``, and where a figure needs them ``train_*``, ``params``, ``seconds_per_epoch``), and
return a Figure; nothing here reads or writes files or touches pyplot's state. Error bars are 95%
confidence intervals over seeds everywhere; a configuration with n < 2 has none and shows as a bare
point.

:func:`plan` chooses the figures from the sweep's design alone: a full two-way grid gets a heat
map; one numeric factor an impact curve; one list-valued factor whose lengths differ (conv depth) a
depth plot; one categorical factor a bar chart and learning curves; every sweep the ranking and
the cost/accuracy Pareto plot.
"""

from __future__ import annotations

import numbers

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from src.core import naming, stats
from src.core.decide import Verdict
from src.experiments import sweep_spec

VAL_COLOR, TRAIN_COLOR, BASE_COLOR, FRONT_COLOR = "tab:blue", "tab:green", "tab:orange", "tab:red"
CI_NOTE = "error bars: 95% CI over seeds"


# --- the sweep's design --------------------------------------------------------------------------

# A full two-way grid's factors and cells: defined with the sweeps (the claims use it too).
grid_factors = sweep_spec.grid_factors


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def factor_key(sweep: sweep_spec.Sweep) -> str | None:
    """The one factor of a one-factor sweep: the only varied key, or (optimizer: each at its own
    lr) the categorical key whose value differs in every configuration; set in every config."""
    candidates = sweep.varied if len(sweep.varied) == 1 else [
        k for k in sweep.varied if all(isinstance(c.get(k), str) for c in sweep.configs)]
    for key in candidates:
        values = [naming.format_value(c[key]) for c in sweep.configs if key in c]
        if len(values) == len(sweep.configs) == len(set(values)):
            return key
    return None


def plan(sweep: sweep_spec.Sweep, grid) -> list[tuple[str, str]]:
    """(file name, kind) of every figure the sweep gets; ``grid`` is :func:`grid_factors`'s."""
    key = factor_key(sweep)
    values = [c.get(key) for c in sweep.configs]
    if grid:
        own = [("interactions_heatmap.png", "heatmap")]
    elif key and all(isinstance(v, list) for v in values) and len({len(v) for v in values}) == \
            len(values):
        own = [(f"{key.split('.')[-1].split('_')[0]}_depth_impact.png", "depth")]
    elif key and all(_is_number(v) for v in values):
        own = [(f"{key.split('.')[-1]}_impact.png", "impact")]
    elif key:
        own = [(f"{sweep.name}_comparison.png", "comparison"), ("learning_curves.png", "curves")]
    else:  # a list of full configurations (combined)
        own = [("learning_curves.png", "curves")]
    # The forest plot first: the study's decisions at a glance.
    return [("forest.png", "forest"), *own, ("top_configurations.png", "top"),
            ("pareto.png", "pareto")]


# --- data helpers --------------------------------------------------------------------------------

def pareto_front(cost, score) -> np.ndarray:
    """True where no other point has lower-or-equal cost and higher-or-equal score (one strictly);
    points with a missing value are never on the front."""
    cost, score = np.asarray(cost, dtype=float), np.asarray(score, dtype=float)
    ok = np.isfinite(cost) & np.isfinite(score)
    front = np.zeros(len(cost), dtype=bool)
    for i in np.flatnonzero(ok):
        beaten = ok & (cost <= cost[i]) & (score >= score[i]) & \
            ((cost < cost[i]) | (score > score[i]))
        front[i] = not beaten.any()
    return front


def seed_curves(histories: dict[str, list[pd.DataFrame]]) -> pd.DataFrame:
    """config, epoch, mean, sd, n: each experiment's val_acc averaged over its folds per epoch
    first, then mean and sd across the experiments (seeds) that reached the epoch."""
    rows = []
    for config, frames in histories.items():
        per_seed = pd.concat([h.groupby("epoch")["val_acc"].mean() for h in frames], axis=1)
        for epoch, values in per_seed.iterrows():
            s = stats.summarize(values.dropna().to_numpy())
            rows.append({"config": config, "epoch": int(epoch), "mean": s.mean, "sd": s.std,
                         "n": s.n})
    return pd.DataFrame(rows, columns=["config", "epoch", "mean", "sd", "n"])


def grid_matrices(summary: pd.DataFrame, grid) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Mean, CI half-width and n of every grid cell: rows = levels of factor a, columns = b."""
    (a, b), cells = grid
    rows = list(dict.fromkeys(cell[0] for cell in cells.values()))
    cols = list(dict.fromkeys(cell[1] for cell in cells.values()))
    out = [pd.DataFrame(np.nan, index=pd.Index(rows, name=a), columns=pd.Index(cols, name=b))
           for _ in range(3)]
    for r in summary.itertuples():
        if r.config in cells:
            i, j = cells[r.config]
            for frame, value in zip(out, (r.cv_mean, (r.cv_ci_high - r.cv_ci_low) / 2, r.n)):
                frame.loc[i, j] = value
    return out[0], out[1], out[2]


def _clip_to_accuracy(ax, axis: str = "y") -> None:
    """Accuracy lies in [0, 1]: a t-interval at n = 2 can reach far outside; do not draw there."""
    low, high = ax.get_ylim() if axis == "y" else ax.get_xlim()
    (ax.set_ylim if axis == "y" else ax.set_xlim)(max(low, 0.0), min(high, 1.0))


def _err(summary: pd.DataFrame, prefix: str = "cv") -> tuple[np.ndarray, np.ndarray]:
    """Means (K,) and asymmetric error bars (2, K) from the CI columns; NaN where n < 2."""
    mean = summary[f"{prefix}_mean"].to_numpy(dtype=float)
    low, high = (summary[f"{prefix}_ci_{s}"].to_numpy(dtype=float) for s in ("low", "high"))
    return mean, np.vstack([mean - low, high - mean])


# --- builders ------------------------------------------------------------------------------------

def _accuracy_vs(summary: pd.DataFrame, x, label: str):
    """A figure of CV validation accuracy (95% CI bars) against a numeric axis, sorted by it;
    returns (fig, ax, sorted rows, sorted x)."""
    order = np.argsort(np.asarray(x, dtype=float), kind="stable")
    rows, x = summary.iloc[order], np.asarray(x, dtype=float)[order]
    fig = Figure(figsize=(7.5, 4.6), layout="constrained")
    ax = fig.add_subplot()
    mean, err = _err(rows)
    ax.errorbar(x, mean, yerr=err, marker="o", capsize=4, color=VAL_COLOR, label=label)
    return fig, ax, rows, x


def factor_impact(summary: pd.DataFrame, x, factor: str, baseline=None) -> Figure:
    """CV validation accuracy vs a numeric factor, and the final train accuracy (val + train-val
    gap) where available: a gap that grows with the factor is overfitting, a shrinking one not."""
    fig, ax, rows, x = _accuracy_vs(summary, x, "CV validation accuracy (final epoch)")
    if "train_mean" in rows and rows["train_mean"].notna().any():
        train, train_err = _err(rows, "train")
        ax.errorbar(x, train, yerr=train_err, marker="s", linestyle="--", capsize=4,
                    color=TRAIN_COLOR, label="train accuracy (val + train−val gap)")
    for xi, yi, n in zip(x, rows["cv_mean"], rows["n"]):
        ax.annotate(f"n={n}", (xi, yi), textcoords="offset points", xytext=(6, -12), fontsize=8)
    if baseline is not None:
        ax.axvline(float(baseline), color="grey", linestyle=":",
                   label=f"baseline {factor} = {baseline}")
    if (x > 0).all() and x.max() / x.min() >= 20:
        ax.set_xscale("log")
    _clip_to_accuracy(ax)
    ax.set_xlabel(factor)
    ax.set_ylabel("accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"Accuracy vs {factor} (mean over seeds, {CI_NOTE})")
    return fig


def comparison_bars(summary: pd.DataFrame, baseline: str, title: str) -> Figure:
    """Mean CV accuracy per configuration as bars with CI error bars; the baseline in orange."""
    fig = Figure(figsize=(max(6.0, 1.3 * len(summary) + 2), 4.8), layout="constrained")
    ax = fig.add_subplot()
    mean, err = _err(summary)
    x = np.arange(len(summary))
    colors = [BASE_COLOR if c == baseline else VAL_COLOR for c in summary["config"]]
    ax.bar(x, np.nan_to_num(mean), color=colors, alpha=0.8, width=0.6)
    ax.errorbar(x, mean, yerr=err, fmt="none", ecolor="black", capsize=5)
    shown = np.concatenate([mean, mean - err[0], mean + err[1]])
    shown = shown[np.isfinite(shown)]
    if len(shown):
        margin = max(0.01, 0.3 * (shown.max() - shown.min()))
        ax.set_ylim(max(0.0, shown.min() - margin), min(1.0, shown.max() + margin))
    for xi, m, n in zip(x, mean, summary["n"]):
        ax.text(xi, ax.get_ylim()[0], f"{m:.4f}\nn={n}", ha="center", va="bottom", fontsize=8,
                color="white", fontweight="bold")
    ax.set_xticks(x, [c.replace(",", "\n") + ("\n(baseline)" if c == baseline else "")
                      for c in summary["config"]], fontsize=8)
    ax.set_ylabel("CV validation accuracy (y axis zoomed)")
    ax.grid(axis="y", alpha=0.3)
    ax.set_title(f"{title} ({CI_NOTE})")
    return fig


def learning_curves(curves: pd.DataFrame, baseline: str) -> Figure:
    """Mean validation accuracy per epoch per configuration, with a band of ± 1 sd across seeds."""
    fig = Figure(figsize=(8, 4.8), layout="constrained")
    ax = fig.add_subplot()
    for config, rows in curves.groupby("config", sort=False):
        rows = rows.sort_values("epoch")
        sd = rows["sd"].fillna(0.0).to_numpy()
        line, = ax.plot(rows["epoch"], rows["mean"], marker="o", markersize=3,
                        linewidth=2.4 if config == baseline else 1.5,
                        label=f"{config}{' (baseline)' if config == baseline else ''}, "
                              f"n = {rows['n'].max()} seeds")
        ax.fill_between(rows["epoch"], rows["mean"] - sd, rows["mean"] + sd, alpha=0.18,
                        color=line.get_color())
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy (mean over folds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("Learning curves: mean over seeds, band ± 1 sd across seeds")
    return fig


def depth_impact(summary: pd.DataFrame, depth, baseline_depth=None) -> Figure:
    """CV accuracy (CI bars) and parameter count (second axis, log scale) vs number of layers."""
    fig, ax, rows, depth = _accuracy_vs(summary, depth, "CV validation accuracy")
    _clip_to_accuracy(ax)
    cost = ax.twinx()
    cost.plot(depth, rows["params"], marker="s", linestyle="--", color="grey", label="parameters")
    cost.set_yscale("log")
    cost.set_ylabel("parameters (log scale)")
    if baseline_depth is not None:
        ax.axvline(baseline_depth, color=BASE_COLOR, linestyle=":", label="baseline")
    ax.set_xticks(depth, [f"{d:.0f}\n{c}" for d, c in zip(depth, rows["config"])], fontsize=8)
    ax.set_xlabel("number of layers")
    ax.set_ylabel("CV validation accuracy")
    ax.grid(alpha=0.3)
    ax.legend(handles=ax.get_legend_handles_labels()[0] + cost.get_legend_handles_labels()[0],
              fontsize=8, loc="lower right")
    ax.set_title(f"Accuracy and size vs depth ({CI_NOTE})")
    return fig


def heatmap(means: pd.DataFrame, halfwidth: pd.DataFrame, n: pd.DataFrame,
            baseline_cell: tuple[str, str] | None = None) -> Figure:
    """Mean CV accuracy per grid cell (rows = first factor, columns = second), each annotated with
    its mean, 95% CI half-width and n; the baseline cell outlined."""
    values = means.to_numpy(dtype=float)
    fig = Figure(figsize=(1.3 * values.shape[1] + 3, 0.9 * values.shape[0] + 2),
                 layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(values, cmap="viridis")
    mid = np.nanmean(values) if np.isfinite(values).any() else 0.0
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            m, h, k = values[i, j], halfwidth.iat[i, j], n.iat[i, j]
            text = "no data" if not np.isfinite(m) else \
                f"{m:.4f}\n±{h:.4f}\nn={k:.0f}" if np.isfinite(h) else f"{m:.4f}\n(n={k:.0f})"
            ax.text(j, i, text, ha="center", va="center", fontsize=8,
                    color="black" if np.isfinite(m) and m > mid else "white")
    if baseline_cell is not None:
        i, j = means.index.get_loc(baseline_cell[0]), means.columns.get_loc(baseline_cell[1])
        ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor=FRONT_COLOR,
                               linewidth=2.5, label="baseline"))
    ax.set_xticks(range(values.shape[1]), list(means.columns))
    ax.set_yticks(range(values.shape[0]), list(means.index))
    ax.set_xlabel(str(means.columns.name))
    ax.set_ylabel(str(means.index.name))
    fig.colorbar(image, ax=ax).set_label("mean CV validation accuracy")
    ax.set_title(f"{means.index.name} × {means.columns.name}: mean ± 95% CI half-width "
                 "(baseline outlined)", fontsize=10)
    return fig


def top_configurations(summary: pd.DataFrame, baseline: str) -> Figure:
    """Configurations ranked by mean CV accuracy (best on top) with CI bars; baseline in orange."""
    ranked = summary.sort_values("cv_mean", na_position="first", kind="stable")
    fig = Figure(figsize=(8, 0.38 * len(ranked) + 1.8), layout="constrained")
    ax = fig.add_subplot()
    y = np.arange(len(ranked))
    mean, err = _err(ranked)
    is_base = (ranked["config"] == baseline).to_numpy()
    for mask, color, label in ((~is_base, VAL_COLOR, "configuration"),
                               (is_base, BASE_COLOR, "baseline")):
        if mask.any():
            ax.errorbar(mean[mask], y[mask], xerr=err[:, mask], fmt="o", capsize=4, color=color,
                        label=label)
    _clip_to_accuracy(ax, "x")
    ax.set_yticks(y, [f"{c} (n={n})" for c, n in zip(ranked["config"], ranked["n"])], fontsize=8)
    for tick, base in zip(ax.get_yticklabels(), is_base):
        if base:
            tick.set_color(BASE_COLOR)
            tick.set_fontweight("bold")
    ax.set_xlabel("CV validation accuracy")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(f"Ranked by mean CV accuracy ({CI_NOTE})", fontsize=10)
    return fig


def pareto(summary: pd.DataFrame, baseline: str) -> Figure:
    """Accuracy vs parameters (left, log x) and vs training seconds per epoch (right); the
    Pareto front (nothing cheaper is at least as accurate) joined and starred."""
    fig = Figure(figsize=(11, 4.6), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    mean, err = _err(summary)
    for ax, column, label in ((axes[0], "params", "parameters (log scale)"),
                              (axes[1], "seconds_per_epoch", "training seconds per epoch")):
        cost = summary[column].to_numpy(dtype=float)
        front = pareto_front(cost, mean)
        ax.errorbar(cost, mean, yerr=err, fmt="o", capsize=3, color=VAL_COLOR, alpha=0.7,
                    label="configuration")
        order = np.flatnonzero(front)[np.argsort(cost[front])]
        ax.plot(cost[order], mean[order], marker="*", markersize=13, color=FRONT_COLOR,
                label="Pareto front", gid="pareto-front")
        is_base = (summary["config"] == baseline).to_numpy()
        ax.plot(cost[is_base], mean[is_base], linestyle="none", marker="o", markersize=12,
                markerfacecolor="none", markeredgecolor=BASE_COLOR, label="baseline")
        for i, config in enumerate(summary["config"]):
            if front[i] or config == baseline:
                ax.annotate(config + (" (baseline)" if config == baseline else ""),
                            (cost[i], mean[i]), textcoords="offset points", xytext=(5, 5),
                            fontsize=7, color=BASE_COLOR if config == baseline else "black")
        if column == "params" and np.isfinite(cost).any() and (cost[np.isfinite(cost)] > 0).all():
            ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    _clip_to_accuracy(axes[0])
    axes[0].set_ylabel("CV validation accuracy")
    axes[1].legend(fontsize=8, loc="lower right")
    fig.suptitle(f"Accuracy vs cost, Pareto front marked ({CI_NOTE})")
    return fig


VERDICT_COLORS = {Verdict.BETTER: "tab:green", Verdict.WORSE: "tab:red",
                  Verdict.EQUIVALENT: "tab:blue", Verdict.UNDECIDED: "0.45",
                  Verdict.NOT_TESTED: "0.65"}


def forest(summary: pd.DataFrame, baseline: str, margin: float) -> Figure:
    """Each configuration's difference from the baseline (accuracy points) with its interval (the
    study's corrected level, ``diff_ci_low`` / ``diff_ci_high``), the ±margin band shaded, the
    verdict written beside each; rows in the sweep's order, the baseline left out.
    ``summary`` needs config, diff, diff_ci_low, diff_ci_high, decision and verdict."""
    rows = summary[summary["config"] != baseline].iloc[::-1]
    fig = Figure(figsize=(9, 0.5 * len(rows) + 1.9), layout="constrained")
    ax = fig.add_subplot()
    y = np.arange(len(rows))
    ax.axvspan(-100 * margin, 100 * margin, color="tab:blue", alpha=0.12, zorder=0,
               label=f"±{100 * margin:.2g} points (the margin)")
    ax.axvline(0, color="black", linewidth=1, zorder=1)
    diff = 100 * rows["diff"].to_numpy(float)
    low, high = 100 * rows["diff_ci_low"].to_numpy(float), 100 * rows["diff_ci_high"].to_numpy(float)
    colors = [VERDICT_COLORS.get(str(d), "0.45") for d in rows["decision"]]
    has_ci = np.isfinite(low) & np.isfinite(high)
    for yi, d, lo, hi, color, ok in zip(y, diff, low, high, colors, has_ci):
        if ok:
            ax.plot([lo, hi], [yi, yi], color=color, linewidth=2.2, zorder=2)
        if np.isfinite(d):
            ax.plot(d, yi, "o", color=color, markersize=7, zorder=3)
    ax.set_yticks(y, list(rows["config"]), fontsize=8)
    finite = [v for v in (*low, *high, *diff, -100 * margin, 100 * margin) if np.isfinite(v)]
    left, right = min(finite), max(finite)
    span = right - left or 1.0
    ax.set_xlim(left - 0.05 * span, right + 0.55 * span)  # room for the verdicts on the right
    for yi, verdict, color in zip(y, rows["verdict"], colors):
        ax.text(right + 0.08 * span, yi, str(verdict), va="center", fontsize=8, color=color)
    ax.set_xlabel(f"CV accuracy difference from the baseline {baseline} (points; interval at the "
                  "study's corrected level)")
    ax.grid(axis="x", alpha=0.3)
    # outside the axes: inside, it hid the interval of whichever row ran under it
    fig.legend(loc="outside lower right", fontsize=8, frameon=False)
    ax.set_title(f"Decisions against {baseline}", fontsize=10)
    return fig


def build_all(sweep: sweep_spec.Sweep, summary: pd.DataFrame, grid,
              curves: pd.DataFrame | None = None) -> dict[str, Figure]:
    """File name -> Figure for every figure :func:`plan` lists that the data allows."""
    base, key = sweep.baseline_label, factor_key(sweep)
    values = {sweep.label(c): c.get(key) for c in sweep.configs} if key else {}
    rows = summary[summary["config"].isin(list(values))]
    field = key.split(".")[-1] if key else ""
    built = {}
    for name, kind in plan(sweep, grid):
        if kind == "forest":
            if {"decision", "diff_ci_low"} <= set(summary) and len(summary) > 1:
                built[name] = forest(summary, base, float(summary["margin"].iloc[0]))
        elif kind == "heatmap":
            built[name] = heatmap(*grid_matrices(summary, grid), baseline_cell=grid[1].get(base))
        elif kind == "impact":
            built[name] = factor_impact(rows, [values[c] for c in rows["config"]], field,
                                        values.get(base))
        elif kind == "depth":
            built[name] = depth_impact(rows, [len(values[c]) for c in rows["config"]],
                                       len(values[base]) if base in values else None)
        elif kind == "comparison":
            built[name] = comparison_bars(rows, base, f"{sweep.name}: CV accuracy by {field}")
        elif kind == "curves" and curves is not None and not curves.empty:
            built[name] = learning_curves(curves, base)
        elif kind == "top":
            built[name] = top_configurations(summary, base)
        elif kind == "pareto":
            built[name] = pareto(summary, base)
    return built
