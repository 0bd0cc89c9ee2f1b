"""The training loop: one model on one fold, fast on a CPU and on an accelerator.

Why it is fast: the whole dataset is one normalised float tensor in memory, batches are slices of a
per-epoch permutation (no per-sample Python, no DataLoader workers), augmentation works on whole
batches, conv nets run ``channels_last``, ``precision: bf16`` runs matmuls/convs under CPU autocast
(the loss stays fp32), and evaluation runs under ``inference_mode`` in large batches, with each
BatchNorm folded into the layer before it. Options for accuracy per CPU-second: one-cycle LR, label
smoothing, batch-level flip and crop, a moving average of the weights (``ema``) and flip test-time
augmentation (``tta_hflip``).

Devices (:mod:`src.core.device`): the loop runs where its tensors are. On an accelerator the stage
moves the whole prepared dataset there once; batch order and augmentation are drawn there, from a
generator on that device; ``precision: bf16`` autocasts there (fp16 with a grad scaler on a CUDA
GPU without bf16); the loss, BatchNorm's parameters and statistics stay fp32; evaluation takes
larger batches. On the CPU every op, its order and its random draws are what they always were.

``fit`` takes tensors and a :class:`~src.core.params.TrainParams` and returns a :class:`FitResult`; it
never touches files or trackers: ``on_epoch`` receives each epoch's metrics.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from src.core import device, errors, models, queue_workers
from src.core.params import TrainParams
from src.core.status import Status

# A mean epoch loss this far above chance level (ln 10 for 10 classes) means the run has blown up:
# with BatchNorm, an exploding LR gives huge but finite losses, so NaN checks alone miss it.
DIVERGED_LOSS = 10 * math.log(10)
EVAL_BATCH = 256  # measured: 2.7x faster than 2048 on 2 cores (the batch stays in cache)
# On an accelerator, a batch this large fills the device in one launch per layer (not measured
# here): conv activations of the reference CNN take ~0.4 GB in fp32, inside one of four workers'
# shares of an 8 GB GPU.
ACCELERATOR_EVAL_BATCH = 4096
# The final train accuracy (for the train-val gap) is measured on a fixed sample of the training
# fold as large as the validation fold it is compared with, and at most this many images: the gap's
# two terms are then about equally precise, and the standard error stays <= 0.5 points. On 48,000
# images the cap costs a fifth of the prediction time; on the defaults' 8,000-image folds the
# 2,000-image sample saves ~4 s of predictions per experiment (the gap's standard error over five
# folds goes from ~0.33 to ~0.37 points).
TRAIN_ACC_SAMPLE = 10_000


def fold_seed(seed: int, fold: int) -> int:
    """The seed of fold ``fold``'s run (initial weights, dropout, batch order): distinct per fold,
    identical across re-runs."""
    return seed * 1000 + fold


def set_threads() -> int:
    """Use $TUNELAB_THREADS threads if set (`sweep run` sets cores / workers, so parallel
    experiments don't oversubscribe the cores); else, in an experiment of a repository whose DVC
    queue workers run (`dvc queue start -j J`), cores / live workers; else torch's default (all
    cores). Returns the count."""
    threads = os.environ.get("TUNELAB_THREADS")
    if threads:
        if not threads.isdigit() or int(threads) < 1:
            raise errors.TunelabError(f"TUNELAB_THREADS={threads!r} must be a positive integer")
        torch.set_num_threads(int(threads))
    elif workers := queue_workers.sharing_workers(os.environ):
        torch.set_num_threads(queue_workers.threads_per_worker(workers))
    return torch.get_num_threads()


@dataclass
class FitResult:
    history: list[dict] = field(default_factory=list)  # one dict per epoch
    status: Status = Status.COMPLETED  # COMPLETED | EARLY_STOPPED | DIVERGED | PRUNED
    reason: str = ""
    train_accuracy: float = float("nan")  # eval-mode accuracy at the end, on a fixed sample of
                                          # the training fold (train_sample_size images)
    seconds: float = 0.0

    @property
    def best(self) -> dict:
        finite = [h for h in self.history if math.isfinite(h["val_loss"])]
        return max(finite, key=lambda h: h["val_acc"]) if finite else {}


def native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX-512 BF16 or AMX). Without it, oneDNN emulates
    bf16 and autocast trains several times slower than fp32 (measured: 7.7x on a 2-core Zen 3)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a private op: an unknown answer is not a warning
        return True


def config_warnings(cfg: TrainParams, device_type: str = "cpu") -> list[str]:
    """Settings that are allowed but almost certainly not what the user wants on ``device_type``,
    as sentences (`train` prints them; `sweep run` and `search` print them before they queue)."""
    warnings = []
    if cfg.precision == "bf16" and device_type == "cpu" and not native_bf16():
        warnings.append("warning: train.precision=bf16 on a CPU without native bf16 (AVX-512 BF16 "
                        "or AMX): it is emulated and trains several times slower than fp32 here; "
                        "use fp32")
    if device.needs_grad_scaler(cfg.precision, device_type):
        warnings.append("warning: train.precision=bf16 on a GPU without native bf16: it runs as "
                        "fp16 autocast with a grad scaler instead")
    if cfg.tta_hflip and not cfg.hflip:
        warnings.append("warning: train.tta_hflip=true with train.hflip=false: the model never "
                        "sees mirrored images in training, and averaging over them costs accuracy "
                        "(~7 points on Fashion-MNIST, whose shoes all face left); set "
                        "train.hflip=true as well")
    return warnings


def to_tensor(images, mean: float, std: float,
              on: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 (N, 28, 28) -> normalised float32 (N, 1, 28, 28), channels_last, on device ``on``
    (computed on the CPU, then moved: the same values on every device)."""
    x = torch.tensor(images, dtype=torch.float32).div_(255.0).sub_(mean).div_(std)  # a copy
    return x.unsqueeze(1).contiguous(memory_format=torch.channels_last).to(on)


def augment(x: torch.Tensor, generator: torch.Generator, hflip: bool, crop_pad: int) -> torch.Tensor:
    """Batch-level random horizontal flip and random crop (zero padding, then a shifted window), on
    ``x``'s device, drawn from ``generator`` (a generator on that device)."""
    b, _, h, w = x.shape
    on = x.device
    if hflip:
        flip = torch.rand(b, generator=generator, device=on) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
    if crop_pad:
        padded = F.pad(x, (crop_pad,) * 4)  # (B, C, H + 2p, W + 2p)
        dy = torch.randint(0, 2 * crop_pad + 1, (b,), generator=generator, device=on)
        dx = torch.randint(0, 2 * crop_pad + 1, (b,), generator=generator, device=on)
        rows = (dy[:, None] + torch.arange(h, device=on))[:, None, :, None]  # (B, 1, H, 1)
        cols = (dx[:, None] + torch.arange(w, device=on))[:, None, None, :]  # (B, 1, 1, W)
        batch = torch.arange(b, device=on)[:, None, None, None]
        chan = torch.arange(x.shape[1], device=on)[None, :, None, None]
        x = padded[batch, chan, rows, cols].contiguous(memory_format=torch.channels_last)
    return x


def make_optimizer(model: nn.Module, cfg: TrainParams) -> torch.optim.Optimizer:
    """The optimizer of ``model``'s parameters, on their device."""
    # fused=True: one kernel for all parameters; measured +8-12% samples/s on 2 cores (bf16/fp32).
    # CUDA has fused kernels too; on MPS PyTorch picks its default (for-each) implementation.
    fused = True if next(model.parameters()).device.type in ("cpu", "cuda") else None
    params = model.parameters()
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum,
                               weight_decay=cfg.weight_decay, nesterov=cfg.momentum > 0, fused=fused)
    if cfg.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=cfg.lr, momentum=cfg.momentum,
                                   weight_decay=cfg.weight_decay)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}")


def make_schedule(optimizer, cfg: TrainParams, steps_per_epoch: int):
    """A per-batch LR schedule (``constant`` is a no-op scheduler)."""
    total = cfg.epochs * steps_per_epoch
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
    if cfg.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=total)
    if cfg.schedule == "step":  # /10 at 50% and 75% of training, the classic step schedule
        milestones = [int(total * 0.5), int(total * 0.75)]
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones, gamma=0.1)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)


def _autocast(precision: str, device_type: str = "cpu"):
    return torch.autocast(device_type, dtype=device.autocast_dtype(device_type),
                          enabled=precision == "bf16")


def grad_scaler(precision: str, device_type: str) -> torch.amp.GradScaler | None:
    """A loss scaler where ``precision: bf16`` runs as fp16 (:func:`device.needs_grad_scaler`),
    else None (the CPU never has one)."""
    return torch.amp.GradScaler(device_type) if device.needs_grad_scaler(precision, device_type) \
        else None


@torch.inference_mode()
def predict(model: nn.Module, x: torch.Tensor, precision: str = "fp32",
            tta_hflip: bool = False) -> torch.Tensor:
    """Logits (N, n_classes) in fp32 on ``x``'s device, in large batches, in eval mode. With
    ``tta_hflip``, the log of the mean of the softmax of the image and of its mirror: argmax,
    cross-entropy and softmax then read the averaged prediction."""
    # An eval-mode copy with BatchNorm folded into the layer before it: 1.2x the images/s of the
    # reference CNN (benchmarks/inference_speed.py); ``model`` keeps its mode and weights.
    net = models.fold_batchnorm(model).to(memory_format=torch.channels_last)

    def logits_of(xb: torch.Tensor) -> torch.Tensor:
        if not tta_hflip:
            return net(xb).float()
        both = torch.stack([net(xb).float().log_softmax(1), net(xb.flip(3)).float().log_softmax(1)])
        return both.logsumexp(0) - math.log(2.0)

    on = x.device.type
    size = EVAL_BATCH if on == "cpu" else ACCELERATOR_EVAL_BATCH
    with _autocast(precision, on):
        return torch.cat([logits_of(x[i:i + size]) for i in range(0, len(x), size)])


def weight_average(model: nn.Module, decay: float) -> torch.optim.swa_utils.AveragedModel | None:
    """An exponential moving average of the weights and of the buffers (BatchNorm statistics),
    ``avg = decay * avg + (1 - decay) * w`` after each step; None when ``decay`` is 0."""
    if not decay:
        return None
    return torch.optim.swa_utils.AveragedModel(
        model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(decay), use_buffers=True)


def loss_and_accuracy(logits: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    return (F.cross_entropy(logits, y).item(),
            (logits.argmax(1) == y).float().mean().item())


def train_epoch(model: nn.Module, x: torch.Tensor, y: torch.Tensor, optimizer, schedule,
                cfg: TrainParams, generator: torch.Generator,
                average: torch.optim.swa_utils.AveragedModel | None = None,
                scaler: torch.amp.GradScaler | None = None) -> tuple[float, float]:
    """One pass over (x, y) in shuffled mini-batches on their device, updating ``average`` (if any)
    after each step, scaling the loss with ``scaler`` (if any: fp16); returns (mean loss, accuracy)
    as measured on the fly (train mode, augmented batches)."""
    model.train()
    on = x.device
    order = torch.randperm(len(x), generator=generator, device=on)
    loss_sum = torch.zeros((), device=on)
    correct = torch.zeros((), dtype=torch.long, device=on)
    for i in range(0, len(order), cfg.batch_size):
        idx = order[i:i + cfg.batch_size]
        xb = augment(x[idx], generator, cfg.hflip, cfg.crop_pad)  # (B, 1, 28, 28)
        yb = y[idx]
        with _autocast(cfg.precision, on.type):
            logits = model(xb)
        loss = F.cross_entropy(logits.float(), yb, label_smoothing=cfg.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        if scaler is None:
            loss.backward()
            optimizer.step()
        else:  # fp16: scale the loss so that small gradients do not flush to zero
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        schedule.step()
        if average is not None:
            average.update_parameters(model)
        # Accumulate on tensors: a .item() per batch would force a sync and cost time.
        loss_sum += loss.detach() * len(idx)
        correct += (logits.detach().argmax(1) == yb).sum()
    return loss_sum.item() / len(order), correct.item() / len(order)


def fit(model: nn.Module, x_train: torch.Tensor, y_train: torch.Tensor, x_val: torch.Tensor,
        y_val: torch.Tensor, cfg: TrainParams, seed: int,
        on_epoch: Callable[[dict], None] | None = None) -> FitResult:
    """Train ``model`` in place for ``cfg.epochs`` (or until early stopping / divergence), on the
    device the tensors are on (the model is moved there)."""
    on = x_train.device
    generator = torch.Generator(device=on).manual_seed(seed)  # batch order and augmentation
    torch.manual_seed(seed)  # dropout masks draw from the global generator (of every device)
    model = model.to(on, memory_format=torch.channels_last)
    optimizer = make_optimizer(model, cfg)
    scaler = grad_scaler(cfg.precision, on.type)
    schedule = make_schedule(optimizer, cfg, math.ceil(len(x_train) / cfg.batch_size))
    average = weight_average(model, cfg.ema)
    evaluated = model if average is None else average.module  # what validation sees
    result = FitResult()
    best_val_loss, stale = math.inf, 0
    start = time.perf_counter()
    for epoch in range(1, cfg.epochs + 1):
        t0 = time.perf_counter()
        train_loss, train_acc = train_epoch(model, x_train, y_train, optimizer, schedule, cfg,
                                            generator, average, scaler)
        val_loss, val_acc = loss_and_accuracy(
            predict(evaluated, x_val, cfg.precision, cfg.tta_hflip), y_val)
        row = {"epoch": epoch, "train_loss": train_loss, "train_acc": train_acc,
               "val_loss": val_loss, "val_acc": val_acc,
               "lr": optimizer.param_groups[0]["lr"], "seconds": time.perf_counter() - t0}
        result.history.append(row)
        stop = on_epoch(row) if on_epoch is not None else None
        if not (math.isfinite(train_loss) and math.isfinite(val_loss)) or train_loss > DIVERGED_LOSS:
            result.status = Status.DIVERGED
            result.reason = (f"loss diverged at epoch {epoch} (train {train_loss:.4g}, val "
                             f"{val_loss:.4g}; chance level is {math.log(10):.3g}): lower train.lr")
            break
        if stop:  # the callback's reason to stop: a search pruned this trial (experiments/pruning.py)
            result.status, result.reason = Status.PRUNED, str(stop)
            break
        if val_loss < best_val_loss:
            best_val_loss, stale = val_loss, 0
        else:
            stale += 1
            if cfg.patience and stale >= cfg.patience:
                result.status = Status.EARLY_STOPPED
                result.reason = f"val loss did not improve for {cfg.patience} epochs"
                break
    result.seconds = time.perf_counter() - start
    if average is not None:  # the model keeps the averaged weights: what was validated is saved
        model.load_state_dict(average.module.state_dict())
    if result.status != Status.DIVERGED:
        sample = train_sample(len(x_train), seed, train_sample_size(len(x_val)))
        if isinstance(sample, torch.Tensor):
            sample = sample.to(on)
        result.train_accuracy = loss_and_accuracy(
            predict(model, x_train[sample], cfg.precision, cfg.tta_hflip), y_train[sample])[1]
    return result


def train_sample_size(n_val: int) -> int:
    """How many training images the final train accuracy is measured on: as many as the validation
    fold holds, at most TRAIN_ACC_SAMPLE."""
    return min(n_val, TRAIN_ACC_SAMPLE)


def train_sample(n: int, seed: int, size: int) -> slice | torch.Tensor:
    """Indices of the training images the final train accuracy is measured on: all of them when
    there are at most ``size``, else a seeded uniform sample of ``size`` without replacement."""
    if n <= size:
        return slice(None)
    cpu = torch.device("cpu")  # the same images on every device (fit moves the indices)
    order = torch.randperm(n, generator=torch.Generator(cpu).manual_seed(seed), device=cpu)
    return order[:size].sort().values
