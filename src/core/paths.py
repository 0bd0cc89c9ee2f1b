"""Every path tunelab reads or writes, declared once (dvc.yaml lists the pipeline's as deps and
outs). Relative to the repository root, where DVC runs each stage; :func:`repo_root` is the real
root also inside DVC's temporary copies of queued experiments."""

import os
from pathlib import Path

PARAMS = Path("params.yaml")
SWEEPS = Path("sweeps.yaml")                 # the named sweeps
SEARCHES = Path("searches.yaml")             # the named searches
CLAIMS = Path("claims.yaml")                 # the claims the studies test

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
EVALUATE_LIVE = EVALUATE_REPORTS / "live"

FIGURES = Path("reports/figures")
STUDY_REPORTS = Path("reports/study")        # reports/study/<sweep or search>/
CLAIMS_REPORT = Path("reports/claims.md")    # every claim decided (`python -m src.study claims`)
CLAIMS_TABLE = Path("reports/claims.csv")
LR_FIND_REPORTS = Path("reports/lr_find")
LR_FIND_SUGGESTION = LR_FIND_REPORTS / "suggestion.json"

LOCAL = Path(".tunelab")                     # per-clone state (git-ignored)
SEARCH_JOURNALS = LOCAL / "search"           # one Optuna journal per search
SWEEP_RECORDS = LOCAL / "sweeps"             # the last run of each sweep: <name>.json
SHARED_LOGS = LOCAL / "shared"              # a shared study's experiment logs: <study>/<name>.log
MLFLOW_DB = Path("mlflow.db")                # the default MLflow store, at the repo root
MLFLOW_ARTIFACTS = Path("mlartifacts")


def checkpoint(fold: int) -> Path:
    return MODELS / f"fold_{fold}.pt"


def repo_root() -> Path:
    """The repository's root: ``$DVC_ROOT`` when DVC runs a stage (queued experiments run in
    throw-away copies under .dvc/tmp/exps, and a path relative to them would write into the copy),
    else the working directory."""
    return Path(os.environ.get("DVC_ROOT") or Path.cwd()).resolve()
