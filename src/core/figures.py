"""Figure builders for the `plot` stage: data in, :class:`matplotlib.figure.Figure` out.

Nothing here reads or writes files, and nothing touches pyplot's global state: every builder makes
its own ``Figure`` (saved with ``Figure.savefig``, freed with the object), so tests can inspect
axes, labels, lines and image data directly (lesson 10 of STYLE.md).

Labels (``actual``, ``predicted``) may be class names or integer class codes; ``class_names`` fixes
the order of the rows and columns.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, PercentFormatter

from src.core import metrics
from src.core.status import Status

DPI = 120  # every PNG tunelab writes (stage figures, study figures, the LR range test)
TRAIN_COLOR, VAL_COLOR = "tab:blue", "tab:orange"
FEW_EPOCHS = 15  # below this, curves get point markers: a 1-epoch run would otherwise draw nothing


# --- helpers -------------------------------------------------------------------------------------


def class_codes(labels, class_names: Sequence[str]) -> np.ndarray:
    """Integer codes (N,) of labels given as names or as integer codes; unknown labels raise."""
    labels = np.asarray(labels)
    if labels.dtype.kind in "iu":
        codes = labels.astype(np.int64)
        bad = labels[(codes < 0) | (codes >= len(class_names))]
    else:
        lookup = {name: i for i, name in enumerate(class_names)}
        codes = np.array([lookup.get(str(v), -1) for v in labels], dtype=np.int64)
        bad = labels[codes < 0]
    if len(bad):
        examples = sorted(set(bad.tolist()))[:5]
        raise ValueError(f"labels not among the {len(class_names)} classes: {examples}")
    return codes


def confusion_counts(actual, predicted, class_names: Sequence[str]) -> np.ndarray:
    """(C, C) counts: row = true class, column = predicted class (:func:`metrics.confusion` of the
    labels' codes)."""
    a, p = class_codes(actual, class_names), class_codes(predicted, class_names)
    if len(a) != len(p):
        raise ValueError(f"{len(a)} actual labels but {len(p)} predictions")
    return metrics.confusion(a, p, len(class_names))


def row_normalised(counts: np.ndarray) -> np.ndarray:
    """Each row divided by its total; NaN for a class that never occurs (no evidence, not 0%)."""
    totals = counts.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, counts / np.maximum(totals, 1), np.nan)


def _percent_label(fraction: float, count: int) -> str:
    if count == 0:
        return ""  # empty cells stay blank: the eye finds the errors that do occur
    if fraction < 0.005:
        return "<1%"
    return f"{100 * fraction:.0f}%"


# --- builders ------------------------------------------------------------------------------------


def learning_curves(history: pd.DataFrame) -> Figure:
    """Loss and accuracy vs epoch: each fold's train (dashed) and val (solid) as thin lines, the
    mean over folds per split as a thick line. Folds may have different lengths (early stopping):
    the mean at an epoch is over the folds that reached it."""
    folds = sorted(history["fold"].unique())
    means = history.groupby("epoch", sort=True).mean(numeric_only=True)
    marker = "o" if history["epoch"].nunique() < FEW_EPOCHS else None

    fig = Figure(figsize=(11, 4.3), layout="constrained")
    axes = fig.subplots(1, 2)
    panels = [("loss", "Loss", "cross-entropy loss"), ("acc", "Accuracy", "accuracy")]
    for ax, (metric, title, ylabel) in zip(axes, panels):
        for split, color, style in (("train", TRAIN_COLOR, "--"), ("val", VAL_COLOR, "-")):
            column = f"{split}_{metric}"
            for i, fold in enumerate(folds):
                rows = history[history["fold"] == fold].sort_values("epoch")
                ax.plot(rows["epoch"], rows[column], linestyle=style, color=color, linewidth=0.9,
                        alpha=0.4, marker=marker, markersize=3,
                        label=f"{split}, each fold" if i == 0 else "_nolegend_")
            ax.plot(means.index, means[column], linestyle=style, color=color, linewidth=2.6,
                    marker=marker, markersize=5, label=f"{split}, mean of {len(folds)} folds")
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.set_xlim(0.5, history["epoch"].max() + 0.5)  # whole epochs, also for a 1-epoch run
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        ax.grid(alpha=0.3)
    axes[1].legend(loc="lower right", fontsize=8)
    fig.suptitle(f"Learning curves: train (dashed) and validation (solid), {len(folds)} CV folds")
    return fig


def confusion_matrix(actual, predicted, class_names: Sequence[str],
                     title: str | None = None) -> Figure:
    """Row-normalised confusion heat map: cell (i, j) = share of true class i predicted as j,
    with the percentage written in each non-empty cell."""
    counts = confusion_counts(actual, predicted, class_names)
    fractions = row_normalised(counts)
    n = len(class_names)

    fig = Figure(figsize=(8.2, 7.2), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(fractions, cmap="Blues", vmin=0.0, vmax=1.0)
    for i in range(n):
        for j in range(n):
            value = fractions[i, j]
            if math.isnan(value):
                continue
            ax.text(j, i, _percent_label(value, counts[i, j]), ha="center", va="center",
                    fontsize=8, color="white" if value > 0.55 else "black")
    ax.set_xticks(range(n), class_names, rotation=40, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(n), class_names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    colorbar = fig.colorbar(image, ax=ax, shrink=0.85, format=PercentFormatter(1.0))
    colorbar.set_label("share of the true class (row-normalised)")
    ax.set_title(title or f"Confusion matrix, {counts.sum()} predictions")
    return fig


def per_class_accuracy(actual, predicted, class_names: Sequence[str],
                       title: str | None = None) -> Figure:
    """Horizontal bars of each class's accuracy (recall) over all given predictions, in class
    order top to bottom, with the value at the end of each bar and the macro mean as a line."""
    counts = confusion_counts(actual, predicted, class_names)
    recall = metrics.per_class_accuracy(counts)  # (C,), NaN for a class with no test images
    heights = np.nan_to_num(recall, nan=0.0)

    fig = Figure(figsize=(7.5, 0.42 * len(class_names) + 1.6), layout="constrained")
    ax = fig.add_subplot()
    ax.barh(range(len(class_names)), heights, color="tab:blue", alpha=0.8)
    for y, r in enumerate(recall):  # values in a column right of the bars: clear of the mean line
        ax.text(1.02, y, "n/a" if math.isnan(r) else f"{r:.3f}", va="center", fontsize=8)
    if not np.isnan(recall).all():
        mean = float(np.nanmean(recall))
        ax.axvline(mean, color="black", linestyle="--", linewidth=1, label=f"mean {mean:.3f}")
        ax.legend(loc="lower left", fontsize=8, framealpha=0.9)
    ax.set_yticks(range(len(class_names)), class_names)
    ax.invert_yaxis()  # class 0 on top, as in the confusion matrix
    ax.set_xlim(0, 1.12)  # room for the value column
    ax.set_xlabel("accuracy (recall) on the test images of the class")
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(title or f"Per-class accuracy, {counts.sum()} predictions")
    return fig


def cv_folds(folds: pd.DataFrame, summary: dict) -> Figure:
    """Final validation accuracy per fold (bars) and best epoch's (markers); the CV mean as a line
    and its 95% confidence interval as a band, from ``summary`` (metrics.json `cv.val_accuracy`:
    mean, std, n, ci95_low, ci95_high; missing or None values are left out)."""
    folds = folds.sort_values("fold")
    x = np.arange(len(folds))
    final = folds["final_val_accuracy"].to_numpy(dtype=float)
    best = folds["best_val_accuracy"].to_numpy(dtype=float)
    n = summary.get("n") or len(folds)

    fig = Figure(figsize=(7.5, 4.6), layout="constrained")
    ax = fig.add_subplot()
    ax.bar(x, np.nan_to_num(final), color="tab:blue", alpha=0.75, width=0.6, zorder=2,
           label="final epoch (fold)")
    ax.plot(x, best, linestyle="none", marker="D", color="black", markersize=6, zorder=4,
            label="best epoch (fold)")
    mean, low, high = summary.get("mean"), summary.get("ci95_low"), summary.get("ci95_high")
    if _finite(mean):
        std = summary.get("std")
        spread = f" ± {std:.4f} (std)" if _finite(std) else ""
        ax.axhline(mean, color="tab:red", linewidth=1.8, zorder=3, label=f"mean {mean:.4f}{spread}")
    if _finite(low) and _finite(high):
        ax.axhspan(low, high, color="tab:red", alpha=0.15, zorder=1,
                   label=f"95% CI [{low:.4f}, {high:.4f}]")
    # Fold accuracies differ in the 2nd-3rd decimal: zoom the y axis onto them (said in the label).
    shown = [v for v in [*final, *best, low, high, mean] if _finite(v)]
    if shown:
        margin = max(0.01, 0.25 * (max(shown) - min(shown)))
        ax.set_ylim(max(0.0, min(shown) - margin), min(1.0, max(shown) + 2 * margin))
    # Values at the foot of each bar, where neither the markers nor the mean line can cover them.
    bottom = ax.get_ylim()[0] + 0.02 * np.diff(ax.get_ylim())[0]
    statuses = folds["status"] if "status" in folds else [Status.COMPLETED] * len(folds)
    for xi, value, status in zip(x, final, statuses):
        label = status if status != Status.COMPLETED else "n/a" if math.isnan(value) else f"{value:.4f}"
        ax.text(xi, bottom, label, ha="center", va="bottom", fontsize=8, zorder=5,
                color="tab:red" if status != Status.COMPLETED else "white", fontweight="bold")
    ax.set_xticks(x, [f"fold {f}" for f in folds["fold"]])
    ax.set_xlabel("cross-validation fold")
    ax.set_ylabel("validation accuracy (y axis zoomed)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper left", fontsize=8, ncols=2, framealpha=0.9)
    ax.set_title(f"Cross-validation accuracy per fold, n = {n} folds")
    return fig


def misclassified_grid(images: np.ndarray, actual, predicted, n: int,
                       title: str | None = None) -> Figure:
    """Up to ``n`` misclassified images (grayscale), in input order, titled "true / predicted".

    ``images`` (N, H, W) lines up with ``actual`` and ``predicted`` (N,) (names or codes). One axes
    per shown image, so ``len(fig.axes)`` is the number shown; with no errors, a single empty axes
    says so.
    """
    actual, predicted = np.asarray(actual), np.asarray(predicted)
    if not len(images) == len(actual) == len(predicted):
        raise ValueError(
            f"{len(images)} images, {len(actual)} labels, {len(predicted)} predictions")
    wrong = np.flatnonzero(actual != predicted)
    shown = wrong[:n]
    if len(shown) == 0:
        fig = Figure(figsize=(6, 2.5), layout="constrained")
        ax = fig.add_subplot()
        ax.text(0.5, 0.5, f"No misclassified images among {len(actual)}", ha="center",
                va="center", fontsize=13, transform=ax.transAxes)
        ax.set_axis_off()
        fig.suptitle(title or "Misclassified test images")
        return fig

    # Placed by hand, in inches (cell_w x cell_h per image, a band on top for the suptitle): a
    # constrained layout of up to 36 titled axes took ~1 s of `savefig` for the same picture.
    cols = math.ceil(math.sqrt(len(shown)))
    rows = math.ceil(len(shown) / cols)
    cell_w, cell_h, image, margin, top = 1.45, 1.7, 1.25, 0.2, 0.7
    width, height = cell_w * cols + 2 * margin, cell_h * rows + top
    fig = Figure(figsize=(width, height))
    for k, i in enumerate(shown):
        row, col = divmod(k, cols)
        left = margin + col * cell_w + (cell_w - image) / 2
        bottom = height - top - (row + 1) * cell_h + 0.05  # its two-line title in the 0.4 in above
        ax = fig.add_axes((left / width, bottom / height, image / width, image / height))
        ax.imshow(images[i], cmap="gray", vmin=0, vmax=255)  # (H, W) uint8
        ax.set_title(f"{actual[i]}\n/ {predicted[i]}", fontsize=7)
        ax.set_axis_off()
    count = (f"{len(shown)} of {len(wrong)} errors among {len(actual)} images, "
             "shown as true / predicted")
    fig.suptitle(f"{title}\n{count}" if title else f"Misclassified test images\n{count}",
                 fontsize=10, y=1 - 0.1 / height, va="top")
    return fig


def _finite(value) -> bool:
    """A real, finite number (metrics.json writes None where a statistic is undefined)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
