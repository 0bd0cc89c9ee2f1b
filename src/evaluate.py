"""Stage `evaluate`: cross-validation summary and test-set metrics of the fold models.

Reads  models/fold_<k>.pt (from `train`; each rebuilds its model from the file alone),
       data/prepared/fashion_mnist.npz (the test subset and the selection set).
Writes reports/evaluate/metrics.json   test accuracy / loss / macro-F1 / per-class accuracy (mean
                                       over the fold models; each is one model of this config),
                                       CV validation accuracy as mean, std, n and 95% CI, the
                                       parameter count, seconds per epoch, the train-val gap,
                                       the devices the models were trained and evaluated on;
                                       `selection`: each fold model's accuracy and loss on the
                                       selection set (prepare.selection_size training images no
                                       fold trains or validates on), mean, std, n and 95% CI;
       reports/evaluate/cv_folds.csv   one row per fold (with its selection accuracy and loss);
       reports/evaluate/confusion.csv  fold, index, actual, predicted per test image and fold model
                                       (DVC's confusion template and the plot stage read it);
       reports/evaluate/live/          DVCLive summary of the headline metrics.
       (The MLflow parent run receives these metrics from `plot`, with the figures.)
Run    python -m src.evaluate   (or `dvc repro evaluate`)
Threads: $TUNELAB_THREADS if set (as for train: a sweep's evaluate must not take the core another
worker trains on), else cores / live workers under DVC's own queue, else all cores.
Device: $TUNELAB_DEVICE, as for train (src/core/device.py); checkpoints load onto it from whichever
device they were trained on, so a CPU machine evaluates models trained on a GPU.

Model selection uses CV validation accuracy or the selection set's (sweeps.yaml `metric:`); the
test set only confirms (see the study reports).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch

from src.core import atomic, checkpoints, data, device, engine, errors, metrics, paths, stats
from src.core.data import CLASS_NAMES
from src.core.status import Status
from src.tracking import store, trackers


def fold_table(saved: list[dict]) -> pd.DataFrame:
    """One row per fold: best and final validation accuracy, best epoch, losses, time."""
    rows = []
    for ckpt in saved:
        history = pd.DataFrame(ckpt["history"])
        best = history.loc[history["val_acc"].idxmax()]
        final = history.iloc[-1]
        rows.append({
            "fold": ckpt["fold"], "status": ckpt["status"], "epochs": len(history),
            "final_val_accuracy": final["val_acc"], "best_val_accuracy": best["val_acc"],
            "best_epoch": int(best["epoch"]), "final_val_loss": final["val_loss"],
            "train_accuracy": ckpt["train_accuracy"],  # eval mode, after training
            "seconds": ckpt["seconds"], "seconds_per_epoch": ckpt["seconds"] / len(history),
        })
    return pd.DataFrame(rows)


def fold_probabilities(loaded: list[tuple[torch.nn.Module, dict]], x: torch.Tensor) -> np.ndarray:
    """Each fold model's class probabilities (F, N, C), predicted as it was validated: in its
    training precision, with flip test-time augmentation if it was trained with it."""
    out = []
    for model, ckpt in loaded:
        trained = ckpt["train_params"]
        logits = engine.predict(model.to(memory_format=torch.channels_last), x, trained["precision"],
                                trained.get("tta_hflip", False))  # older checkpoints lack it
        out.append(torch.softmax(logits, 1).cpu().numpy())  # .cpu(): a no-op on the CPU
    return np.stack(out)


def fold_test_metrics(probabilities: np.ndarray, y_test: np.ndarray) -> dict:
    """Metrics of one fold model on the test set; ``probabilities`` is (N, n_classes)."""
    cm = metrics.confusion(y_test, probabilities.argmax(1), len(CLASS_NAMES))
    return {"accuracy": metrics.accuracy(cm), "loss": metrics.cross_entropy(probabilities, y_test),
            "macro_f1": metrics.macro_f1(cm), "per_class": metrics.per_class_accuracy(cm)}


def selection_metrics(probabilities: np.ndarray, y_select: np.ndarray) -> dict[str, np.ndarray]:
    """Each fold model's accuracy and loss on the selection set; ``probabilities`` is (F, N, C)."""
    accuracy = [metrics.accuracy(metrics.confusion(y_select, p.argmax(1), len(CLASS_NAMES)))
                for p in probabilities]
    loss = [metrics.cross_entropy(p, y_select) for p in probabilities]
    return {"selection_accuracy": np.array(accuracy), "selection_loss": np.array(loss)}


def selection_summary(per_fold: dict[str, np.ndarray], size: int) -> dict:
    """metrics.json's ``selection``: the fold models' accuracy and loss on the same ``size``
    images, each as mean, std, n and 95% CI over the folds."""
    return {"accuracy": stats.summarize(per_fold["selection_accuracy"]).as_dict(),
            "loss": stats.summarize(per_fold["selection_loss"]).as_dict(), "size": size}


def devices(saved: list[dict], evaluated_on: str) -> dict:
    """Where the fold models were trained (one label, or each fold's where they differ; checkpoints
    from before devices were recorded were trained on the CPU) and evaluated."""
    trained = sorted({ckpt.get("device", "cpu") for ckpt in saved})
    return {"train": trained[0] if len(trained) == 1 else ", ".join(trained),
            "evaluate": evaluated_on}


def build_metrics(folds: pd.DataFrame, probabilities: np.ndarray, y_test: np.ndarray,
                  n_parameters: int) -> dict:
    """metrics.json content from the fold table and per-fold test probabilities (F, N, C)."""
    per_fold = [fold_test_metrics(p, y_test) for p in probabilities]
    ensemble = metrics.accuracy(metrics.confusion(
        y_test, probabilities.mean(0).argmax(1), len(CLASS_NAMES)))
    test_acc = [m["accuracy"] for m in per_fold]
    per_class = np.mean([m["per_class"] for m in per_fold], axis=0)
    final_val = folds["final_val_accuracy"].to_numpy()
    return {
        "status": Status.COMPLETED,
        "test": {
            "accuracy": float(np.mean(test_acc)),
            "accuracy_std": float(np.std(test_acc, ddof=1)) if len(test_acc) > 1 else None,
            "loss": float(np.mean([m["loss"] for m in per_fold])),
            "macro_f1": float(np.mean([m["macro_f1"] for m in per_fold])),
            "ensemble_accuracy": ensemble,  # the fold models' averaged probabilities
            "per_class_accuracy": dict(zip(CLASS_NAMES, map(float, per_class))),
        },
        "cv": {
            "val_accuracy": stats.summarize(final_val).as_dict(),  # final epoch: unbiased
            "best_val_accuracy": stats.summarize(folds["best_val_accuracy"]).as_dict(),
            "val_loss": stats.summarize(folds["final_val_loss"]).as_dict(),
            "train_val_gap": float((folds["train_accuracy"] - folds["final_val_accuracy"]).mean()),
        },
        "model": {"params": n_parameters},
        # Timing varies between runs: kept apart so determinism checks can leave it out.
        "time": cost(folds),
    }


def cost(folds: pd.DataFrame) -> dict:
    """Training cost over the folds: seconds per epoch, seconds, and fold-epochs trained (what a
    search's pruning saves is counted in these)."""
    return {"seconds_per_epoch": float(folds["seconds_per_epoch"].mean()),
            "train_seconds": float(folds["seconds"].sum()), "epochs": int(folds["epochs"].sum())}


def stopped_metrics(saved: list[dict], folds: pd.DataFrame, status: str) -> dict:
    bad = next(c for c in saved if c["status"] == status)
    return {"status": status, "reason": f"fold {bad['fold']}: {bad['reason']}",
            "test": {"accuracy": None}, "cv": {"val_accuracy": {"mean": None}},
            "model": {"params": bad["n_parameters"]}, "time": cost(folds)}


def confusion_rows(probabilities: np.ndarray, y_test: np.ndarray) -> pd.DataFrame:
    """fold, index, actual, predicted (class names) for every test image and fold model."""
    names = np.array(CLASS_NAMES)
    frames = [pd.DataFrame({"fold": f, "index": np.arange(len(y_test)), "actual": names[y_test],
                            "predicted": names[p.argmax(1)]}) for f, p in enumerate(probabilities)]
    if not frames:
        return pd.DataFrame(columns=["fold", "index", "actual", "predicted"])
    return pd.concat(frames, ignore_index=True)


def main() -> None:
    engine.set_threads()
    on = device.select()
    prepared = data.load_prepared(paths.PREPARED)
    fold_paths = sorted(paths.MODELS.glob("fold_*.pt"), key=lambda p: int(p.stem.split("_")[1]))
    if not fold_paths:
        raise errors.TunelabError(f"no checkpoints in {paths.MODELS}/: run `dvc repro train` first")
    loaded = [checkpoints.load(p, map_location=on) for p in fold_paths]
    saved = [ckpt for _, ckpt in loaded]
    folds = fold_table(saved)
    y_test = prepared["y_test"]
    stopped = next((c["status"] for c in saved if Status(c["status"]).stopped), None)
    if stopped:
        results = stopped_metrics(saved, folds, stopped)
        probabilities = np.zeros((0, len(y_test), len(CLASS_NAMES)))
    else:
        x_test = engine.to_tensor(prepared["x_test"], float(prepared["mean"]),
                                  float(prepared["std"]), on)
        probabilities = fold_probabilities(loaded, x_test)
        results = build_metrics(folds, probabilities, y_test, saved[0]["n_parameters"])
        y_select = prepared.get("y_select", np.zeros(0, dtype=np.int64))  # older npz: none
        if len(y_select):
            x_select = engine.to_tensor(prepared["x_select"], float(prepared["mean"]),
                                        float(prepared["std"]), on)
            per_fold = selection_metrics(fold_probabilities(loaded, x_select), y_select)
            folds = folds.assign(**per_fold)
            results["selection"] = selection_summary(per_fold, len(y_select))
    results["device"] = devices(saved, device.label(on))  # strings: not logged as metrics
    atomic.write_with(paths.CV_FOLDS, lambda tmp: folds.to_csv(tmp, index=False))
    rows = confusion_rows(probabilities, y_test)
    atomic.write_with(paths.CONFUSION, lambda tmp: rows.to_csv(tmp, index=False))
    atomic.write_json(paths.METRICS, results)
    log_results(results)
    print(summary_line(results))


def log_results(results: dict) -> None:
    """The headline metrics to DVCLive. MLflow gets them from `plot`, with the figures: one
    MLflow start-up per pipeline run instead of two (its import and store cost ~3 s a process)."""
    headline = {k: v for k, v in store.flatten(results).items()
                if not k.startswith("test.per_class_accuracy")}
    with trackers.live(paths.EVALUATE_LIVE) as live:
        for key, value in headline.items():
            live.log_metric(key.replace(".", "/"), value, plot=False)


def summary_line(results: dict) -> str:
    if results["status"] != Status.COMPLETED:
        return f"run {results['status']}: {results.get('reason', '')}"
    cv = results["cv"]["val_accuracy"]
    ci = "" if cv["ci95_low"] is None or math.isnan(cv["ci95_low"]) else \
        f" (95% CI {cv['ci95_low']:.4f}-{cv['ci95_high']:.4f})"
    return (f"CV val accuracy {cv['mean']:.4f} ± {cv['std'] or 0:.4f}, n={cv['n']}{ci}; "
            f"test accuracy {results['test']['accuracy']:.4f}")


if __name__ == "__main__":
    errors.run(main, teardown=False)  # DVC waits for the process: no teardown (errors.exit_now)
