"""LR range test (Leslie Smith 2015; fastai's `lr_find`): which learning rates are worth trying.

Trains the configured model with the configured optimizer and batch size for one pass of mini-batches
while the LR grows exponentially from 1e-7 to 10, and records the loss of every step. The loss
first stays flat (LR too small to matter), then falls, then explodes; the test stops once the
smoothed loss exceeds 4x its minimum (or is not finite). Smoothing is the bias-corrected
exponential moving average with beta 0.98, as fastai does.

Reads  params.yaml `train:` (model, optimizer, batch size, precision, augmentation, seed);
       data/prepared/fashion_mnist.npz (fold 0's training part, as fold 0 trains on).
Writes reports/lr_find/lr_find.png        loss vs LR (log axis), the suggestions marked;
       reports/lr_find/suggestion.json    steepest_lr, min_loss_lr, max_lr_onecycle, steps;
       an MLflow run `lr_find` (params, suggestions as metrics, both files) in the repo's store.
Run    python -m src.lr_find            (seconds on the defaults; $TUNELAB_THREADS as for train)

Suggestions (:func:`suggest`): `steepest_lr` where the smoothed loss falls fastest per decade of
LR (a good constant LR), `min_loss_lr` where it is lowest, `max_lr_onecycle` = min_loss_lr / 10
(the usual peak for `schedule: onecycle`). They are starting points for a sweep, not answers.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import nn

from src.core import atomic, checkpoints, data, engine, errors, figures, params, paths
from src.tracking import store

LR_FIND_PNG = paths.LR_FIND_REPORTS / "lr_find.png"
SUGGESTION = paths.LR_FIND_SUGGESTION
START_LR, END_LR = 1e-7, 10.0
MIN_STEPS, MAX_STEPS = 100, 300  # one pass of the data, but never fewer than 100 points
BETA = 0.98                      # EMA of the loss (fastai, Smith)
DIVERGE = 4.0                    # stop when the smoothed loss exceeds this many times its minimum
FOLD = 0


def smooth(losses, beta: float = BETA) -> np.ndarray:
    """Bias-corrected exponential moving average: avg_i = beta avg_(i-1) + (1 - beta) loss_i,
    smoothed_i = avg_i / (1 - beta^(i+1)) (so the first value is the first loss, not 2% of it)."""
    out, avg = np.empty(len(losses)), 0.0
    for i, loss in enumerate(losses):
        avg = beta * avg + (1 - beta) * float(loss)
        out[i] = avg / (1 - beta ** (i + 1))
    return out


def n_steps(n_samples: int, batch_size: int) -> int:
    return min(MAX_STEPS, max(MIN_STEPS, math.ceil(n_samples / batch_size)))


def lr_range_test(model: nn.Module, x: torch.Tensor, y: torch.Tensor, cfg: params.TrainParams, *,
                  start_lr: float = START_LR, end_lr: float = END_LR, steps: int | None = None,
                  beta: float = BETA, diverge: float = DIVERGE, seed: int = 0) -> pd.DataFrame:
    """Train ``model`` in place on (x, y) (N, 1, 28, 28) with the LR multiplied by a constant
    factor each step from ``start_lr`` to ``end_lr``; one row per step taken: lr, loss, smoothed.
    Stops early once the smoothed loss exceeds ``diverge`` x its minimum or is not finite."""
    steps = steps or n_steps(len(x), cfg.batch_size)
    factor = (end_lr / start_lr) ** (1 / max(1, steps - 1))
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # dropout masks
    model = model.to(memory_format=torch.channels_last).train()
    optimizer = engine.make_optimizer(model, cfg)
    rows, avg, best = [], 0.0, math.inf
    order, pos = torch.randperm(len(x), generator=generator), 0
    for i in range(steps):
        if pos >= len(order):  # a small dataset: a fresh permutation, as the next epoch would
            order, pos = torch.randperm(len(x), generator=generator), 0
        idx = order[pos:pos + cfg.batch_size]
        pos += cfg.batch_size
        lr = start_lr * factor ** i
        for group in optimizer.param_groups:
            group["lr"] = lr
        xb = engine.augment(x[idx], generator, cfg.hflip, cfg.crop_pad)  # (B, 1, 28, 28)
        with engine._autocast(cfg.precision):
            logits = model(xb)
        loss = F.cross_entropy(logits.float(), y[idx], label_smoothing=cfg.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        value = loss.item()
        avg = beta * avg + (1 - beta) * value  # the same EMA as smooth(), one step at a time
        smoothed = avg / (1 - beta ** (i + 1))
        rows.append({"lr": lr, "loss": value, "smoothed": smoothed})
        if not math.isfinite(smoothed) or smoothed > diverge * best:
            break
        best = min(best, smoothed)
    return pd.DataFrame(rows, columns=["lr", "loss", "smoothed"])


def suggest(df: pd.DataFrame) -> dict:
    """steepest_lr (most negative d smoothed / d log10 lr between the first 10% of the steps and
    the minimum), min_loss_lr and
    max_lr_onecycle = min_loss_lr / 10, from the finite rows of an :func:`lr_range_test` frame."""
    finite = df[np.isfinite(df["smoothed"])].reset_index(drop=True)
    if len(finite) < 3:
        raise errors.TunelabError(f"LR range test has {len(finite)} finite points; at least 3 "
                                  "are needed (lower the start LR or check the data)")
    i_min = int(finite["smoothed"].idxmin())
    # The EMA has little history over the first steps, where per-batch noise would pass for a
    # steep descent on a log axis: skip the first 10% (fastai does the same).
    falling = finite.iloc[len(finite) // 10:i_min + 1]
    if len(falling) >= 3:
        slope = np.gradient(falling["smoothed"].to_numpy(), np.log10(falling["lr"].to_numpy()))
        steepest = float(falling["lr"].iloc[int(np.argmin(slope))])
    else:  # the loss only rose: nothing fell, so take a decade below the minimum
        steepest = float(finite["lr"].iloc[i_min]) / 10
    min_lr = float(finite["lr"].iloc[i_min])
    return {"steepest_lr": steepest, "min_loss_lr": min_lr, "max_lr_onecycle": min_lr / 10,
            "min_loss": float(finite["smoothed"].iloc[i_min]), "steps": int(len(df))}


def lr_find_figure(df: pd.DataFrame, suggestion: dict) -> Figure:
    """Loss (raw and smoothed) vs LR on a log axis, the suggested LRs as vertical lines."""
    fig = Figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.add_subplot()
    ax.plot(df["lr"], df["loss"], color="0.75", lw=0.8, label="loss (per batch)")
    ax.plot(df["lr"], df["smoothed"], color="tab:blue", lw=1.8, label="smoothed (EMA 0.98)")
    for key, label, color in (("steepest_lr", "steepest", "tab:green"),
                              ("min_loss_lr", "min loss", "tab:red"),
                              ("max_lr_onecycle", "onecycle max", "tab:purple")):
        ax.axvline(suggestion[key], color=color, ls="--", lw=1,
                   label=f"{label}: {suggestion[key]:.2g}")
    finite = df["smoothed"][np.isfinite(df["smoothed"])]
    raw = df["loss"][np.isfinite(df["loss"])]
    if len(finite):  # the explosion would flatten the interesting part of the curve
        ax.set_ylim(0.9 * min(finite.min(), raw.min()), min(finite.max(), 4 * finite.iloc[0]) * 1.05)
    ax.set(xscale="log", xlabel="learning rate", ylabel="training loss (cross-entropy)",
           title="LR range test")
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def main() -> None:
    cfg = params.load("train", paths.PARAMS)
    prepared = data.load_prepared(paths.PREPARED)
    threads = engine.set_threads()
    train_part = torch.as_tensor(prepared["fold"] != FOLD)
    x = engine.to_tensor(prepared["x_train"], float(prepared["mean"]),
                         float(prepared["std"]))[train_part]
    y = torch.as_tensor(prepared["y_train"])[train_part]
    torch.manual_seed(cfg.seed)
    model = checkpoints.build_model(cfg)
    steps = n_steps(len(x), cfg.batch_size)
    df = lr_range_test(model, x, y, cfg, steps=steps, seed=cfg.seed)
    suggestion = suggest(df) | {"planned_steps": steps, "stopped_early": len(df) < steps}
    fig = lr_find_figure(df, suggestion)
    atomic.write_with(LR_FIND_PNG, lambda tmp: fig.savefig(tmp, dpi=figures.DPI, format="png"))
    atomic.write_json(SUGGESTION, suggestion)
    run_params = {f"train.{k}": v for k, v in params.as_dict(cfg).items()} | {
        "lr_find.start_lr": START_LR, "lr_find.end_lr": END_LR, "lr_find.max_steps": steps,
        "lr_find.beta": BETA, "lr_find.fold": FOLD, "data.samples": len(x), "threads": threads}
    store.log_run("lr_find", {"tunelab.kind": "lr_find"}, run_params,
                  {k: v for k, v in suggestion.items() if not isinstance(v, bool)},
                  (paths.LR_FIND_REPORTS, "lr_find"))
    print(f"LR range test: {len(df)} of {steps} steps; steepest descent at lr "
          f"{suggestion['steepest_lr']:.2g}, minimum loss at {suggestion['min_loss_lr']:.2g} "
          f"-> try train.lr around {suggestion['steepest_lr']:.2g}, or schedule onecycle with "
          f"train.lr = {suggestion['max_lr_onecycle']:.2g}; see {LR_FIND_PNG}")


if __name__ == "__main__":
    errors.run(main)
