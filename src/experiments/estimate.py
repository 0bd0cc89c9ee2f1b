"""How long a sweep will take, before it runs (`sweep run --dry-run`).

Each configuration's seconds per fold-epoch are timed here: a few training steps of its own model,
optimizer and batch size on random images, with the thread count a queue worker gets; validation
is counted as a third of a training pass over the same images (a forward pass without the
backward one). An experiment adds a fixed cost beyond its epochs (DVC's workspace and commit,
prepare, evaluate, plot, tracking): FIXED_SECONDS, measured on the dropout sweep
(docs/performance.md: 43.8 s per experiment on the 2-core Zen 3). The experiments are then placed
on the workers longest first, as the queue runs them. An estimate, good to a factor of ~1.5: the
machine's load, the first epochs' warm-up and early stopping all move it.
"""

from __future__ import annotations

import heapq
import math
import time

from src.core import params

FIXED_SECONDS = 45.0  # per experiment, beyond its training loops
STEPS = 12            # timed training steps per configuration (after WARMUP)
WARMUP = 3


def step_seconds(train: params.TrainParams, threads: int, steps: int = STEPS) -> float:
    """Seconds per training step of ``train``'s model on a random batch, with ``threads``."""
    import torch  # only when estimating: `sweep list` and `status` need no torch

    from src.core import checkpoints, engine
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        torch.manual_seed(0)
        model = checkpoints.build_model(train).to(memory_format=torch.channels_last).train()
        optimizer = engine.make_optimizer(model, train)
        x = torch.randn(train.batch_size, 1, 28, 28).contiguous(memory_format=torch.channels_last)
        y = torch.randint(0, 10, (train.batch_size,))
        for i in range(WARMUP + steps):
            if i == WARMUP:
                start = time.perf_counter()
            loss = torch.nn.functional.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        return (time.perf_counter() - start) / steps
    finally:
        torch.set_num_threads(previous)


def experiment_seconds(merged: dict, threads: int, cache: dict | None = None) -> float:
    """Estimated seconds of one experiment with params ``merged`` (params.yaml content with its
    overrides): folds x epochs x (training + validation) + FIXED_SECONDS. ``cache`` keeps the
    step time per model configuration (the seeds of a configuration share it)."""
    sections = params.validate_all(merged)
    prepare, train = sections["prepare"], sections["train"]
    key = repr({k: v for k, v in params.as_dict(train).items() if k != "seed"})
    cache = {} if cache is None else cache
    if key not in cache:
        cache[key] = step_seconds(train, threads)
    train_images = prepare.train_size * (prepare.cv_folds - 1) / prepare.cv_folds
    val_images = prepare.train_size / prepare.cv_folds
    per_image = cache[key] / train.batch_size
    epoch = per_image * (train_images + val_images / 3)
    return prepare.cv_folds * train.epochs * epoch + FIXED_SECONDS


def wall_seconds(durations: list[float], jobs: int) -> float:
    """The makespan of ``durations`` on ``jobs`` workers, longest first (as the queue runs them)."""
    workers = [0.0] * max(1, jobs)
    for duration in sorted(durations, reverse=True):
        heapq.heapreplace(workers, workers[0] + duration)
    return max(workers)


def describe(seconds: float) -> str:
    """``5,400 s`` -> ``1.5 h``; ``600`` -> ``10 min``."""
    if seconds >= 5400:
        return f"{seconds / 3600:.1f} h"
    return f"{math.ceil(seconds / 60):.0f} min"
