"""Stage `train`: one model per cross-validation fold, tracked in DVCLive and MLflow.

Reads  params.yaml `train:`; data/prepared/fashion_mnist.npz (from `prepare`).
Writes models/fold_<k>.pt              self-describing checkpoints (model name + constructor args,
                                       weights, resolved params, normalisation, history);
       reports/train/history.csv       one row per fold and epoch;
       reports/train/folds/fold_<k>/   DVCLive, written live, step = epoch;
       reports/train/live/             DVCLive: the mean curve over folds (for `dvc plots diff`);
       reports/train/mlflow_run.json   the MLflow parent run that plot publishes the results to,
                                       and the host the experiment ran on; the run is tagged
                                       with its configuration (tunelab.config: the params but
                                       train.seed) for the UI's "Group by".
Run    python -m src.train   (or `dvc repro train`, `dvc exp run -S train.dropout=0.3`)

Threads: $TUNELAB_THREADS if set (sweeps set it to cores / workers), else cores / live workers
         under DVC's own queue (`dvc queue start -j J`), else all cores.
Device:  $TUNELAB_DEVICE = auto (CUDA, then MPS, then CPU) | cpu | cuda | cuda:N | mps
         (src/core/device.py); recorded in each checkpoint and in the MLflow run.
Pruning: $TUNELAB_EPOCH_HOOK names the function asked after each epoch whether to stop
         (src/core/hooks.py); a search's queue workers set it to its pruning rule. Unset, every
         fold runs to the end (or to early stopping).
"""

from __future__ import annotations

import os
import shutil
import sys

import pandas as pd
import torch
from tqdm import tqdm

from src.core import atomic, checkpoints, data, device, engine, errors, hooks, naming, params, paths
from src.core.status import Status
from src.tracking import store, trackers


def train_fold(x: torch.Tensor, y: torch.Tensor, folds: torch.Tensor, fold: int,
               cfg: params.TrainParams, tracker: trackers.Tracker,
               progress: bool = True, hook: hooks.EpochHook | None = None
               ) -> tuple[torch.nn.Module, engine.FitResult]:
    """Train on every fold but ``fold`` and validate on ``fold``; x is (N, 1, 28, 28) normalised,
    and y, folds and x are on the device to train on. ``hook`` (a search's pruning rule) is asked
    after each epoch whether to stop."""
    held_out = folds == fold
    torch.manual_seed(engine.fold_seed(cfg.seed, fold))  # the initial weights
    model = checkpoints.build_model(cfg)  # on the CPU, whatever the device: the same initial weights
    bar = tqdm(total=cfg.epochs, desc=f"fold {fold}", unit="epoch", disable=None if progress else True,
               leave=False)

    exp_name = os.environ.get("DVC_EXP_NAME")  # a search trial: <search>--t<NNN>--s<seed>

    def on_epoch(row: dict) -> str | None:
        tracker.log_epoch(fold, row)
        bar.set_postfix(loss=f"{row['train_loss']:.3f}", val_acc=f"{row['val_acc']:.4f}")
        bar.update()
        if hook is not None and hook(exp_name, row["epoch"], row["val_acc"], fold):
            return (f"pruned by the search's rule at fold {fold}, epoch {row['epoch']} "
                    f"(val acc {row['val_acc']:.4f})")
        return None

    tracker.start_fold(fold)
    result = engine.fit(model, x[~held_out], y[~held_out], x[held_out], y[held_out], cfg,
                        seed=engine.fold_seed(cfg.seed, fold), on_epoch=on_epoch)
    bar.close()
    tracker.end_fold(fold, result.status)
    return model, result


def mean_curve(history: pd.DataFrame) -> pd.DataFrame:
    """Per-epoch mean over the folds that reached that epoch (early stopping can end some sooner)."""
    return history.drop(columns="fold").groupby("epoch", as_index=False).mean()


def log_mean_curve(curve: pd.DataFrame) -> None:
    with trackers.live(paths.TRAIN_LIVE) as live:
        for row in curve.to_dict("records"):
            live.step = int(row["epoch"])
            for key in ("train_loss", "train_acc", "val_loss", "val_acc"):
                live.log_metric(trackers.metric_name(key), row[key])
            live.next_step()


def clear_outputs() -> None:
    # DVC deletes a stage's outputs before running it; a direct `python -m src.train` must too,
    # or checkpoints of folds that no longer exist would linger.
    for path in (paths.MODELS, paths.TRAIN_REPORTS):
        shutil.rmtree(path, ignore_errors=True)


def dataset_on(prepared: dict, on: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The prepared training images (normalised), labels and fold numbers, moved to ``on`` once."""
    x = engine.to_tensor(prepared["x_train"], float(prepared["mean"]), float(prepared["std"]), on)
    return x, torch.as_tensor(prepared["y_train"]).to(on), torch.as_tensor(prepared["fold"]).to(on)


def epoch_hook(exp_name: str | None) -> hooks.EpochHook | None:
    """The hook $TUNELAB_EPOCH_HOOK names; a warning when a search trial runs without one (its
    worker was not started by `python -m src.search`, e.g. a bare `dvc queue start`): the trial
    then runs to the end, unpruned."""
    hook = hooks.from_env()
    if hook is None and naming.parse_trial_name(exp_name) is not None:
        print(f"warning: {exp_name} is a search trial but ${hooks.ENV} is not set: its epochs are "
              "not reported to the search and it is not pruned (start the queue workers with "
              "python -m src.search)", file=sys.stderr)
    return hook


def main() -> None:
    threads = engine.set_threads()
    on = device.select()
    cfg = params.load("train", paths.PARAMS)
    prepared = data.load_prepared(paths.PREPARED)
    for warning in engine.config_warnings(cfg, on.type):
        print(warning, file=sys.stderr)
    n_folds = int(prepared["fold"].max()) + 1
    hook = epoch_hook(os.environ.get("DVC_EXP_NAME"))  # before clear_outputs: a bad one stops here
    clear_outputs()
    uri = store.tracking_uri()
    run_params = {f"train.{k}": v for k, v in params.as_dict(cfg).items()} | {
        "data.train_size": len(prepared["y_train"]), "data.test_size": len(prepared["y_test"]),
        "data.cv_folds": n_folds, "threads": threads, "device": device.label(on)}
    mlflow = trackers.MLflowTracker(uri, store.init_store(uri),
                                    os.environ.get("DVC_EXP_NAME", "workspace"), run_params,
                                    store.run_tags() |
                                    trackers.config_tags(params.read_yaml(paths.PARAMS)))
    store.save_handle(paths.MLFLOW_RUN, mlflow.handle() | {"host": store.host()})
    tracker = trackers.FanOut(trackers.DVCLiveTracker(paths.TRAIN_FOLD_LIVE), mlflow)
    rows, status = [], Status.COMPLETED
    x, y, folds = dataset_on(prepared, on)
    try:
        for fold in range(n_folds):
            model, result = train_fold(x, y, folds, fold, cfg, tracker, hook=hook)
            ckpt = checkpoints.make(model, cfg, fold, prepared["mean"], prepared["std"], result,
                                    device.label(on))
            atomic.write_with(paths.checkpoint(fold), lambda tmp, ckpt=ckpt: torch.save(ckpt, tmp))
            rows += [{"fold": fold, **row} for row in result.history]
            print(f"fold {fold}: val_acc {result.history[-1]['val_acc']:.4f} after "
                  f"{len(result.history)} epochs, {result.seconds:.1f}s ({result.status})", flush=True)
            if result.status.stopped:
                status = result.status
                break  # the other folds would diverge too / the search stopped it; evaluate says why
    except KeyboardInterrupt:
        mlflow.abort("KILLED")
        raise
    except BaseException:
        mlflow.abort("FAILED")
        raise
    history = pd.DataFrame(rows)
    atomic.write_with(paths.TRAIN_HISTORY, lambda tmp: history.to_csv(tmp, index=False))
    log_mean_curve(mean_curve(history))
    mlflow.finish(status)


if __name__ == "__main__":
    errors.run(main, teardown=False)  # DVC waits for the process: no teardown (errors.exit_now)
