"""Self-describing checkpoints: a model's registry name and constructor arguments, its weights, the
resolved train params and the normalisation, so `evaluate` rebuilds the model from the file alone.
The weights are saved from the CPU and loaded onto any device (``map_location``): a model trained on
a GPU is evaluated on a machine without one; ``device`` records where it was trained.

The bridge between ``train:`` params and :mod:`src.core.models` (which knows nothing of params):
:func:`model_args` picks the constructor arguments of the configured model.
"""

from __future__ import annotations

from pathlib import Path

import torch

from src.core import errors, models, params
from src.core.engine import FitResult


def model_args(cfg: params.TrainParams) -> dict:
    """The constructor arguments of ``cfg.model`` from the train params."""
    values = params.as_dict(cfg)
    return {name: values[name] for name in models.MODEL_ARGS[cfg.model]}


def build_model(cfg: params.TrainParams) -> torch.nn.Module:
    return models.build(cfg.model, **model_args(cfg))


def make(model: torch.nn.Module, cfg: params.TrainParams, fold: int, mean: float, std: float,
         result: FitResult, device: str = "cpu") -> dict:
    """The checkpoint of fold ``fold``'s model (weights in the contiguous layout, on the CPU),
    trained on ``device`` (:func:`src.core.device.label`)."""
    state = model.to(memory_format=torch.contiguous_format).state_dict()
    for name, tensor in state.items():  # in place: the state dict keeps its version metadata
        state[name] = tensor.cpu()  # a no-op for a model on the CPU
    return {
        "model": cfg.model, "model_args": model_args(cfg), "state_dict": state,
        "train_params": params.as_dict(cfg), "fold": fold,
        "mean": float(mean), "std": float(std),
        "status": str(result.status), "reason": result.reason, "history": result.history,
        "train_accuracy": result.train_accuracy, "seconds": result.seconds,
        "n_parameters": models.count_parameters(model), "device": device,
    }


def load(path: Path, map_location: str | torch.device = "cpu") -> tuple[torch.nn.Module, dict]:
    """The model of a checkpoint (in eval mode, on ``map_location``, whichever device it was saved
    from) and the checkpoint itself."""
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=False)
    except FileNotFoundError:
        raise errors.TunelabError(f"{path} not found: run `dvc repro train` first") from None
    model = models.build(ckpt["model"], **ckpt["model_args"])
    model.load_state_dict(ckpt["state_dict"])  # copies the weights into the model's (CPU) tensors
    return model.to(map_location).eval(), ckpt
