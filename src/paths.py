"""Every path the pipeline reads or writes, declared once (dvc.yaml lists the same paths as deps and
outs). Relative to the repository root, where DVC runs each stage."""

from pathlib import Path

PARAMS = Path("params.yaml")
RAW = Path("data/raw")                       # downloads, when no local copy exists (git-ignored)
PREPARED = Path("data/prepared/fashion_mnist.npz")
PREPARE_REPORT = Path("reports/prepare/summary.json")

MODELS = Path("models")                      # fold_<k>.pt checkpoints
TRAIN_REPORTS = Path("reports/train")
TRAIN_HISTORY = TRAIN_REPORTS / "history.csv"      # one row per fold and epoch
TRAIN_FOLD_LIVE = TRAIN_REPORTS / "folds"          # DVCLive dir per fold, written live
TRAIN_LIVE = TRAIN_REPORTS / "live"                # DVCLive: the mean curve over folds
MLFLOW_RUN = TRAIN_REPORTS / "mlflow_run.json"     # the parent run plot publishes the results to

EVALUATE_REPORTS = Path("reports/evaluate")
METRICS = EVALUATE_REPORTS / "metrics.json"
CV_FOLDS = EVALUATE_REPORTS / "cv_folds.csv"
CONFUSION = EVALUATE_REPORTS / "confusion.csv"     # actual, predicted per test image (fold ensemble)
PREDICTIONS = EVALUATE_REPORTS / "predictions.npz"  # per-fold test probabilities for the plots
EVALUATE_LIVE = EVALUATE_REPORTS / "live"

FIGURES = Path("reports/figures")


def checkpoint(fold: int) -> Path:
    return MODELS / f"fold_{fold}.pt"
