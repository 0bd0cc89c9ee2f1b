"""Model shapes, the reference parameter count, and every normalisation."""

import pytest
import torch
import torch.nn.functional as F

from src.core import models
from src.core.checkpoints import model_args
from src.core.params import TrainParams


def test_reference_cnn_has_421834_parameters():
    model = models.build("cnn", **model_args(TrainParams()))
    assert models.count_parameters(model) == 421_834


@pytest.mark.parametrize("norm", ["none", "batch", "instance", "layer", "group"])
@pytest.mark.parametrize("pooling", ["max", "avg", "none"])
def test_cnn_variants_give_logits(norm, pooling):
    cfg = TrainParams(norm=norm, pooling=pooling, conv_channels=(8, 16), hidden_units=(16,),
                      conv_dropout=0.1)
    model = models.build("cnn", **model_args(cfg))
    assert model(torch.randn(3, 1, 28, 28)).shape == (3, 10)


def test_deep_cnn_with_spaced_pooling():
    cfg = TrainParams(conv_channels=(8,) * 8, pool_every=2, norm="group")
    model = models.build("cnn", **model_args(cfg))
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)


@pytest.mark.parametrize("norm", ["none", "batch", "layer", "group"])
def test_mlp_width_and_depth(norm):
    cfg = TrainParams(model="mlp", hidden_units=(64, 32, 16), norm=norm)
    model = models.build("mlp", **model_args(cfg))
    assert model(torch.randn(4, 1, 28, 28)).shape == (4, 10)
    linear = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert [m.out_features for m in linear] == [64, 32, 16, 10]


def test_mlp_parameter_count_matches_the_formula():
    model = models.build("mlp", hidden_units=(256, 128))  # no norm: every Linear has a bias
    assert models.count_parameters(model) == (784 * 256 + 256) + (256 * 128 + 128) + (128 * 10 + 10)


def test_conv_dropout_sits_after_the_activation_and_the_pool_after_both():
    kinds = [type(m).__name__ for m in models.build("cnn", conv_channels=(8,), conv_dropout=0.2,
                                                       pooling="avg").features]
    assert kinds == ["Conv2d", "BatchNorm2d", "ReLU", "Dropout2d", "AvgPool2d"]
    kinds = [type(m).__name__ for m in models.build("cnn", conv_channels=(8,), conv_dropout=0.2,
                                                       activation="gelu").features]
    assert kinds == ["Conv2d", "BatchNorm2d", "GELU", "Dropout2d", "MaxPool2d"]


def test_max_pooling_runs_before_relu_and_dropout2d():
    model = models.build("cnn", conv_channels=(8,), conv_dropout=0.2)
    kinds = [type(m).__name__ for m in model.features]
    assert kinds == ["Conv2d", "BatchNorm2d", "MaxPool2d", "ReLU", "Dropout2d"]


def test_conv_dropout_before_the_norm_is_a_different_function_in_training_only():
    kinds = [type(m).__name__ for m in models.build("cnn", conv_channels=(8,), conv_dropout=0.2,
                                                       conv_dropout_at="before_norm").features]
    assert kinds == ["Conv2d", "Dropout2d", "BatchNorm2d", "MaxPool2d", "ReLU"]
    torch.manual_seed(0)
    after = models.build("cnn", conv_channels=(8, 16), hidden_units=(32,), conv_dropout=0.3)
    before = models.build("cnn", conv_channels=(8, 16), hidden_units=(32,), conv_dropout=0.3,
                          conv_dropout_at="before_norm")
    # The same parameters in the same order (their Sequential indices differ).
    before.load_state_dict(dict(zip(before.state_dict(), after.state_dict().values())))
    x = torch.randn(16, 1, 28, 28)
    assert torch.equal(after.eval()(x), before.eval()(x))  # no dropout in evaluation
    outputs = []
    for model in (after, before):
        torch.manual_seed(1)  # the same channel masks
        outputs.append(model.train()(x))
    assert not torch.allclose(*outputs)  # the masked channels shift the batch statistics


def test_channel_dropout_commutes_with_relu():
    """Why placing Dropout2d before or after a ReLU cannot matter: it scales whole channels by 0
    or 1 / (1 - p), and relu(c x) = c relu(x) for c >= 0 (max pooling likewise, see below)."""
    x = torch.randn(8, 6, 10, 10)
    drop = torch.nn.Dropout2d(0.4)
    torch.manual_seed(3)
    first = torch.relu(drop(x))
    torch.manual_seed(3)
    assert torch.equal(first, drop(torch.relu(x)))


@pytest.mark.parametrize("conv_dropout", [0.0, 0.2])
def test_pooling_first_trains_exactly_like_the_textbook_order(conv_dropout):
    """Same weights, data and seed: bit-identical logits, losses and updated weights."""
    torch.manual_seed(0)
    fast = models.build("cnn", conv_channels=(8, 16), hidden_units=(32,), conv_dropout=conv_dropout)
    slow = models.build("cnn", conv_channels=(8, 16), hidden_units=(32,), conv_dropout=conv_dropout,
                        pool_first=False)
    slow.load_state_dict(fast.state_dict())
    fast, slow = (m.to(memory_format=torch.channels_last) for m in (fast, slow))  # as engine trains
    block = ["Conv2d", "BatchNorm2d", "ReLU"] + ["Dropout2d"] * bool(conv_dropout) + ["MaxPool2d"]
    assert [type(m).__name__ for m in slow.features] == block * 2
    assert fast.state_dict().keys() == slow.state_dict().keys()
    x, y = torch.randn(32, 1, 28, 28), torch.randint(0, 10, (32,))
    for model in (fast, slow):
        torch.manual_seed(1)  # the same dropout masks for both
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
        for _ in range(5):
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
        model.final_loss = loss.item()
    assert fast.final_loss == slow.final_loss
    for (name, a), b in zip(fast.state_dict().items(), slow.state_dict().values()):
        assert torch.equal(a, b), name
    assert torch.equal(fast.eval()(x), slow.eval()(x))


@pytest.mark.parametrize("name, kwargs", [
    ("cnn", {"norm": "batch"}), ("cnn", {"norm": "batch", "pooling": "avg", "activation": "gelu"}),
    ("cnn", {"norm": "group"}), ("mlp", {"norm": "batch", "hidden_units": [32, 16]})])
def test_folding_batchnorm_keeps_the_function_and_leaves_the_model_alone(name, kwargs):
    torch.manual_seed(0)
    model = models.build(name, **kwargs)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(3):  # train steps: BatchNorm's weights and running statistics move off 1 and 0
        x, y = torch.randn(16, 1, 28, 28), torch.randint(0, 10, (16,))
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    folded = models.fold_batchnorm(model)
    x = torch.randn(32, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), model.eval()(x), rtol=1e-4, atol=1e-5)
    batch_norms = (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)
    assert not any(isinstance(m, batch_norms) for m in folded.modules())
    assert any(isinstance(m, batch_norms) for m in model.modules()) == (kwargs["norm"] == "batch")
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
