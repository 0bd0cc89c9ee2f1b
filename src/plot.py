"""Stage `plot`: the figures of one run, as PNGs; publishes the run's results to MLflow.

Reads  params.yaml `plot:` (misclassified: images in the grid),
       reports/train/history.csv        learning curves of every fold (from `train`),
       reports/evaluate/cv_folds.csv    final / best validation accuracy per fold,
       reports/evaluate/confusion.csv   true and predicted class per test image and fold model,
       reports/evaluate/metrics.json    the CV summary (mean, std, n, 95% CI) and the run status,
       data/prepared/fashion_mnist.npz  the test images, for the misclassified grid,
       reports/train/mlflow_run.json    the MLflow parent run to publish the results to.
Writes reports/figures/learning_curves.png     loss and accuracy vs epoch, per fold and mean;
       reports/figures/cv_folds.png            val accuracy per fold with the mean and 95% CI;
       reports/figures/confusion_matrix.png    row-normalised, over every fold model's predictions;
       reports/figures/per_class_accuracy.png  recall per class, over the same predictions;
       reports/figures/misclassified.png       the first `plot.misclassified` errors of fold 0;
       and, to the MLflow parent run: every number of metrics.json, its status (and the reason
       of a diverged or pruned run) as tags, and the figures under `figures/`. evaluate leaves
       MLflow to this stage: one MLflow start-up per pipeline run instead of two (~3 s each).
Run    python -m src.plot   (or `dvc repro plot`)

A diverged run has an empty confusion.csv: its three test-set figures are left out (stale PNGs of a
previous run are removed, so the folder never mixes runs), the other two are still drawn.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from src.core import atomic, data, errors, figures, params, paths
from src.core.data import CLASS_NAMES
from src.core.status import parse as parse_status
from src.tracking import store

MISCLASSIFIED_FOLD = 0  # one model's errors: the same image would otherwise repeat once per fold


def confusion_title(what: str, confusion: pd.DataFrame) -> str:
    """e.g. "Confusion matrix, 5 models × 10000 test images" (the predictions are stacked)."""
    return (f"{what}, {confusion['fold'].nunique()} models × "
            f"{confusion['index'].nunique()} test images")


def fold_predictions(confusion: pd.DataFrame, fold: int) -> pd.DataFrame:
    """One fold model's rows of confusion.csv, in test-set order."""
    rows = confusion[confusion["fold"] == fold].sort_values("index")
    if rows.empty:
        raise errors.TunelabError(f"{paths.CONFUSION} has no rows of fold {fold}")
    return rows


def build_figures(history: pd.DataFrame, folds: pd.DataFrame, confusion: pd.DataFrame,
                  metrics: dict, x_test: np.ndarray | None,
                  n_misclassified: int) -> dict[str, Figure]:
    """File name -> Figure for every figure the inputs allow (pure: nothing is saved here).

    ``x_test`` (N, 28, 28) is only used when ``confusion`` has rows (it may be None otherwise).
    """
    cv_summary = metrics.get("cv", {}).get("val_accuracy", {})
    built = {"learning_curves.png": figures.learning_curves(history),
             "cv_folds.png": figures.cv_folds(folds, cv_summary)}
    if confusion.empty:  # a diverged run: no test predictions
        return built
    built["confusion_matrix.png"] = figures.confusion_matrix(
        confusion["actual"], confusion["predicted"], CLASS_NAMES,
        title=confusion_title("Confusion matrix (test set)", confusion))
    built["per_class_accuracy.png"] = figures.per_class_accuracy(
        confusion["actual"], confusion["predicted"], CLASS_NAMES,
        title=confusion_title("Per-class test accuracy", confusion))
    fold0 = fold_predictions(confusion, MISCLASSIFIED_FOLD)
    index = fold0["index"].to_numpy()
    if x_test is None or index.max() >= len(x_test):
        raise errors.TunelabError(
            f"{paths.CONFUSION} refers to test image {index.max()} but {paths.PREPARED} has "
            f"{0 if x_test is None else len(x_test)}: run `dvc repro evaluate` again")
    built["misclassified.png"] = figures.misclassified_grid(
        x_test[index], fold0["actual"].to_numpy(), fold0["predicted"].to_numpy(), n_misclassified,
        title=f"Misclassified test images, fold {MISCLASSIFIED_FOLD} model")
    return built


def run_status(metrics: dict) -> str:
    """MLflow status the parent run keeps: plotting a diverged run must not mark it finished."""
    return parse_status(metrics.get("status")).mlflow


def status_tags(metrics: dict) -> dict[str, str]:
    """``status`` and, for a run that did not complete, ``status_reason``."""
    tags = {"status": str(metrics.get("status", "unknown"))}
    if metrics.get("reason"):
        tags["status_reason"] = str(metrics["reason"])
    return tags


def publish(metrics: dict) -> None:
    """metrics.json's numbers, the status tags and the figures to the MLflow parent run of train."""
    parent = store.ParentRun(paths.MLFLOW_RUN)
    parent.log_metrics(metrics)
    parent.set_tags(status_tags(metrics))
    parent.log_artifacts(paths.FIGURES, "figures")
    parent.finish(run_status(metrics))


def _read_csv(path) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except FileNotFoundError:
        raise errors.TunelabError(
            f"{path} not found: run `dvc repro` up to this stage first") from None
    except pd.errors.EmptyDataError:  # no header at all: treat as no rows
        return pd.DataFrame()


def main() -> None:
    cfg = params.load("plot", paths.PARAMS)
    history = _read_csv(paths.TRAIN_HISTORY)
    folds = _read_csv(paths.CV_FOLDS)
    confusion = _read_csv(paths.CONFUSION)
    try:
        metrics = json.loads(paths.METRICS.read_text())
    except FileNotFoundError:
        raise errors.TunelabError(
            f"{paths.METRICS} not found: run `dvc repro evaluate` first") from None
    x_test = None if confusion.empty else data.load_prepared(paths.PREPARED)["x_test"]

    built = build_figures(history, folds, confusion, metrics, x_test, cfg.misclassified)
    paths.FIGURES.mkdir(parents=True, exist_ok=True)
    for stale in paths.FIGURES.glob("*.png"):  # also a killed run's temporary .tmp.png files
        stale.unlink()
    for name, fig in built.items():
        atomic.write_with(paths.FIGURES / name,
                          lambda tmp, fig=fig: fig.savefig(tmp, format="png", dpi=figures.DPI))
    written = sorted(built)
    built.clear()  # pyplot-free Figures: dropping the references frees them

    publish(metrics)
    print(f"wrote {len(written)} figures to {paths.FIGURES}/: {', '.join(written)}")


if __name__ == "__main__":
    errors.run(main, teardown=False)  # DVC waits for the process: no teardown (errors.exit_now)
