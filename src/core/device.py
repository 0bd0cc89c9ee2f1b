"""Where training and evaluation run: the one place that reads ``$TUNELAB_DEVICE``.

    TUNELAB_DEVICE = auto (default) | cpu | cuda | cuda:N | mps

``auto`` takes the first of CUDA, Apple MPS and the CPU that this machine and this PyTorch build
offer; a named device that is not there is an error naming the setting and what is available. The
device is an execution setting like ``$TUNELAB_THREADS``, not a ``train:`` param: DVC does not hash
it, so moving a project between machines does not invalidate its results; `train` records it in
each checkpoint and the MLflow run, `evaluate` in metrics.json (``device``), where `dvc exp show`
shows it beside the metrics. Same params and seed give the same metrics on the same device and
software stack (PyTorch, CUDA, driver, CPU kernels), not across them.

:func:`parse`, :func:`pick` and :func:`label` are pure; :func:`available` asks torch;
:func:`configure` sets what an accelerator needs for reproducible runs (nothing on the CPU, whose
behaviour stays exactly as it was). The stages call :func:`select`, which does all three.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

import torch

from src.core.errors import TunelabError

ENV = "TUNELAB_DEVICE"
# The share of the device's memory this process may allocate, 0 < f <= 1: `sweep run --jobs J` and
# `search` set it for their J workers, which then share one accelerator (see worker_memory_fraction).
MEMORY_ENV = "TUNELAB_MEMORY_FRACTION"
CHOICES = "auto, cpu, cuda, cuda:N, mps"
# cuBLAS is deterministic only with a fixed workspace (PyTorch's reproducibility notes); it must be
# set before the first cuBLAS call of the process.
CUBLAS_WORKSPACE = ":4096:8"
# What J > 1 workers on one accelerator leave free between them: each process's CUDA context and
# kernels (~0.5 GiB) sit outside the allocator's cap.
CONTEXT_RESERVE = 0.1

_SETTING = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


def parse(setting: str, source: str = ENV) -> str:
    """The setting, normalised (``" CUDA "`` -> ``"cuda"``); TunelabError, naming where the setting
    came from (``source``: the variable or a flag), if it is not one of CHOICES."""
    value = setting.strip().lower()
    if not _SETTING.fullmatch(value):
        raise TunelabError(f"{_named(source, repr(setting))} is not a device; use one of {CHOICES}")
    return value


def _named(source: str, value: str) -> str:
    return f"{source} {value}" if source.startswith("-") else f"{source}={value}"


def available() -> list[str]:
    """The devices this machine and this PyTorch build offer, in ``auto``'s order of preference."""
    found = []
    if torch.cuda.is_available():
        found += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if torch.backends.mps.is_available():
        found.append("mps")
    return found + ["cpu"]


def pick(setting: str, offered: Sequence[str], source: str = ENV) -> str:
    """The device that ``setting`` (parsed) names among ``offered`` (as :func:`available` lists
    them, "cpu" last); TunelabError naming the setting and what is available if it is not there."""
    if setting == "auto":
        return offered[0]
    wanted = "cuda:0" if setting == "cuda" else setting
    if wanted in offered:
        return wanted
    if setting.startswith("cuda"):
        gpus = [d for d in offered if d.startswith("cuda")]
        missing = f"no CUDA device {wanted}" if gpus else "CUDA is not available here"
        if not gpus and torch.version.cuda is None:
            missing += f" (this PyTorch, {torch.__version__}, is built without CUDA)"
    else:
        missing = "Apple MPS is not available here"
    raise TunelabError(f"{_named(source, setting)}: {missing}; available: {', '.join(offered)} "
                       f"(or auto)")


def resolve(setting: str | None = None, source: str = ENV) -> torch.device:
    """The device of ``setting``, by default ``$TUNELAB_DEVICE`` (unset: auto); ``source`` names
    the setting in errors (a flag such as ``--device``)."""
    raw = os.environ.get(ENV, "auto") if setting is None else setting
    return torch.device(pick(parse(raw or "auto", source), available(), source))


def label(device: torch.device) -> str:
    """How a run records its device: "cpu", "mps", "cuda:0 (NVIDIA H200)"; the same string on
    every run of the same machine (CPU runs record "cpu", so CPU metrics stay comparable)."""
    if device.type == "cuda":
        index = device.index or 0
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    return device.type


def memory_fraction(value: str | None = None) -> float | None:
    """``$MEMORY_ENV`` (or ``value``) as a fraction in (0, 1]; None when unset."""
    raw = os.environ.get(MEMORY_ENV) if value is None else value
    if not raw:
        return None
    try:
        fraction = float(raw)
    except ValueError:
        fraction = -1.0
    if not 0 < fraction <= 1:
        raise TunelabError(f"{MEMORY_ENV}={raw!r} must be a number in (0, 1]: the share of the "
                           f"accelerator's memory this process may use")
    return fraction


def worker_memory_fraction(jobs: int) -> float:
    """Each of ``jobs`` workers' share of one accelerator's memory: all of it for one worker, else
    an equal part of what the workers' CUDA contexts leave."""
    return 1.0 if jobs <= 1 else (1 - CONTEXT_RESERVE) / jobs


def configure(device: torch.device, fraction: float | None = None) -> None:
    """What the device needs for reproducible, bounded runs. CPU: nothing (CPU results stay what
    they were). CUDA: deterministic algorithms (and the cuBLAS workspace they need), no cuDNN
    autotuning (it picks kernels by timing), fp32 that is IEEE fp32 (no TF32: ``precision: bf16``
    is the fast path), and the memory cap ``fraction``. MPS: the memory cap."""
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
        _ieee_fp32()
        if fraction is not None and fraction < 1:
            torch.cuda.set_per_process_memory_fraction(fraction, device.index or 0)
    elif device.type == "mps" and fraction is not None and fraction < 1:
        torch.mps.set_per_process_memory_fraction(fraction)


def _ieee_fp32() -> None:
    if hasattr(torch.backends.cudnn, "conv"):  # PyTorch >= 2.9: one setting per backend and op
        torch.backends.cudnn.conv.fp32_precision = "ieee"
        torch.backends.cuda.matmul.fp32_precision = "ieee"
    else:
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False


def select() -> torch.device:
    """The stages' device: ``$TUNELAB_DEVICE`` resolved, then configured (with
    ``$TUNELAB_MEMORY_FRACTION``)."""
    fraction = memory_fraction()
    device = resolve()
    configure(device, fraction)
    return device


def autocast_dtype(device_type: str) -> torch.dtype:
    """The dtype ``precision: bf16`` autocasts to: bf16, except on a CUDA GPU without native bf16
    (before Ampere), where it is fp16 and the loss is scaled (:func:`needs_grad_scaler`)."""
    if device_type == "cuda" and not torch.cuda.is_bf16_supported(including_emulation=False):
        return torch.float16
    return torch.bfloat16


def needs_grad_scaler(precision: str, device_type: str) -> bool:
    """fp16 gradients underflow without loss scaling; bf16 has fp32's range and needs none."""
    return precision == "bf16" and autocast_dtype(device_type) == torch.float16
