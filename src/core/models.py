"""The classifiers: plain ``nn.Module`` s with explicit constructor arguments.

Nothing here knows about params.yaml, files or trackers. ``build(name, **kwargs)`` looks the class up
in :data:`REGISTRY`; checkpoints store ``(name, kwargs)`` so evaluate rebuilds a model from the file
alone. Input: (B, 1, 28, 28) normalised images; output: (B, 10) logits.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU,
               "leaky_relu": nn.LeakyReLU, "elu": nn.ELU, "tanh": nn.Tanh}


def _norm2d(kind: str, channels: int, groups: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "layer":  # LayerNorm over (C, H, W), independent of the spatial size
        return nn.GroupNorm(1, channels)
    if kind == "group":
        return nn.GroupNorm(groups, channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}")


def _norm1d(kind: str, features: int, groups: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm1d(features)
    if kind == "layer":
        return nn.LayerNorm(features)
    if kind == "group":
        return nn.GroupNorm(groups, features)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"norm {kind!r} is not defined for dense layers")


def _dense_stack(in_features: int, hidden: Sequence[int], activation: str, dropout: float,
                 norm: str, groups: int) -> tuple[nn.Sequential, int]:
    """Linear -> norm -> activation -> dropout, per hidden layer; returns (stack, out_features)."""
    layers: list[nn.Module] = []
    for units in hidden:
        # A bias before a normalisation is redundant (the norm's shift absorbs it).
        layers += [nn.Linear(in_features, units, bias=norm == "none"),
                   _norm1d(norm, units, groups), ACTIVATIONS[activation]()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        in_features = units
    return nn.Sequential(*layers), in_features


class CNN(nn.Module):
    """conv -> norm -> activation -> Dropout2d -> pool blocks, then a dense head. With max pooling
    and ReLU the pool runs first (``pool_first``): the same function, trained the same, cheaper.
    ``conv_dropout_at="before_norm"`` moves the Dropout2d to right after the convolution (conv ->
    Dropout2d -> norm -> activation -> pool): the one other placement that is a different function.
    Channel dropout multiplies a whole channel by 0 or 1 / (1 - p), so it commutes with max pooling
    and with ReLU (positively homogeneous): before or after either is the same model.

    The dense head has no normalisation: ``norm`` applies to the conv blocks, as in the reference
    model (2 x [conv3x3, BatchNorm, ReLU, maxpool], FC 128, dropout 0.3: 421,834 parameters).
    """

    def __init__(self, conv_channels: Sequence[int] = (32, 64), kernel_size: int = 3,
                 pooling: str = "max", pool_every: int = 1, norm: str = "batch",
                 norm_groups: int = 8, conv_dropout: float = 0.0, hidden_units: Sequence[int] = (128,),
                 dropout: float = 0.3, activation: str = "relu", in_channels: int = 1,
                 image_side: int = 28, n_classes: int = 10, pool_first: bool = True,
                 conv_dropout_at: str = "after_act"):
        super().__init__()
        blocks: list[nn.Module] = []
        side = image_side
        channels = in_channels
        for i, out in enumerate(conv_channels):
            # Conv bias is kept even before BatchNorm: the reference count (421,834) includes it.
            if conv_dropout_at not in ("after_act", "before_norm"):
                raise ValueError(f"unknown conv_dropout_at {conv_dropout_at!r}")
            drop = [nn.Dropout2d(conv_dropout)] if conv_dropout > 0 else []
            blocks += [nn.Conv2d(channels, out, kernel_size, padding=kernel_size // 2),
                       *(drop if conv_dropout_at == "before_norm" else []),
                       _norm2d(norm, out, norm_groups)]
            after = [ACTIVATIONS[activation](), *(drop if conv_dropout_at == "after_act" else [])]
            if pooling != "none" and (i + 1) % pool_every == 0:
                pool = nn.MaxPool2d(2) if pooling == "max" else nn.AvgPool2d(2)
                side //= 2
                # Max pooling and ReLU commute exactly (values and gradients): pooling first runs
                # the ReLU and Dropout2d on a quarter of the elements. Parameter names are the same
                # either way; pool_first=False keeps the textbook order (the benchmark's baseline).
                commute = pooling == "max" and activation == "relu"
                after = [pool] + after if pool_first and commute else after + [pool]
            blocks += after
            channels = out
        self.features = nn.Sequential(*blocks)
        # The dense head follows the reference: Linear + activation + dropout, no norm.
        self.head, features = _dense_stack(channels * side * side, hidden_units, activation,
                                           dropout, "none", norm_groups)
        self.classifier = nn.Linear(features, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, n_classes)
        x = self.features(x)
        x = torch.flatten(x, 1)  # (B, C * h * w)
        return self.classifier(self.head(x))


class MLP(nn.Module):
    """Flatten -> [Linear -> norm -> activation -> dropout] per hidden layer -> Linear."""

    def __init__(self, hidden_units: Sequence[int] = (256, 256), norm: str = "none",
                 norm_groups: int = 8, dropout: float = 0.0, activation: str = "relu",
                 in_features: int = 28 * 28, n_classes: int = 10):
        super().__init__()
        self.body, features = _dense_stack(in_features, hidden_units, activation, dropout, norm,
                                           norm_groups)
        self.classifier = nn.Linear(features, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1, 28, 28) -> (B, n_classes)
        return self.classifier(self.body(torch.flatten(x, 1)))


REGISTRY: dict[str, type[nn.Module]] = {"cnn": CNN, "mlp": MLP}

# The train params each model takes (the rest of `train:` is about optimisation).
MODEL_ARGS = {
    "cnn": ("conv_channels", "kernel_size", "pooling", "pool_every", "norm", "norm_groups",
            "conv_dropout", "conv_dropout_at", "hidden_units", "dropout", "activation"),
    "mlp": ("hidden_units", "norm", "norm_groups", "dropout", "activation"),
}


def build(name: str, **kwargs) -> nn.Module:
    return REGISTRY[name](**kwargs)


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """An eval-mode copy of ``model`` in which each BatchNorm that directly follows a convolution
    or linear layer in an ``nn.Sequential`` is folded into that layer's weights and bias. In
    inference the copy computes the same function (to float rounding) without the normalisation
    pass, which took a third of the reference CNN's inference time. ``model`` is not changed."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval
    folded = copy.deepcopy(model).eval()
    pairs = ((nn.Conv2d, nn.BatchNorm2d, fuse_conv_bn_eval),
             (nn.Linear, nn.BatchNorm1d, fuse_linear_bn_eval))
    for stack in folded.modules():
        if not isinstance(stack, nn.Sequential):
            continue
        for i in range(len(stack) - 1):
            for layer_type, norm_type, fuse in pairs:
                norm = stack[i + 1]
                if (isinstance(stack[i], layer_type) and isinstance(norm, norm_type)
                        and norm.running_mean is not None):  # batch statistics cannot be folded
                    stack[i], stack[i + 1] = fuse(stack[i], norm), nn.Identity()
    return folded


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def training_flops_per_sample(model: nn.Module, image_side: int = 28) -> float:
    """Training FLOPs per image: 2 per multiply-add of every conv and linear layer, x3 for the
    forward and backward passes (norms, activations and pooling are not counted)."""
    macs = []

    def count(module, inputs, output):
        if isinstance(module, nn.Conv2d):
            per_output = module.kernel_size[0] * module.kernel_size[1] * module.in_channels
            macs.append(output[0].numel() * per_output // module.groups)
        elif isinstance(module, nn.Linear):
            macs.append(module.in_features * module.out_features)

    handles = [m.register_forward_hook(count) for m in model.modules()]
    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, 1, image_side, image_side))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return 3 * 2 * float(sum(macs))
