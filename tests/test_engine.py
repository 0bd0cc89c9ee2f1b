"""The training loop on tiny synthetic data: learning, determinism, early stopping, divergence.

On the CPU, unless $TUNELAB_TEST_DEVICE names another device (benchmarks/accelerator_check.py runs
this file with TUNELAB_TEST_DEVICE=cuda): the data goes there and the loop follows it."""

import math
import os

import numpy as np
import pytest
import torch

from src.core import device, engine, models
from src.core.params import TrainParams
from src.tracking import trackers
from tests.conftest import make_images

SMALL = dict(conv_channels=(4, 8), hidden_units=(16,), batch_size=32)
ON = device.resolve(os.environ.get("TUNELAB_TEST_DEVICE", "cpu"))


@pytest.fixture(scope="module")
def tensors():
    device.configure(ON)  # CPU: nothing; CUDA: deterministic algorithms, as the stages set it
    images, labels = make_images(400, seed=0)
    x = engine.to_tensor(images, mean=0.2, std=0.3, on=ON)
    y = torch.as_tensor(labels.astype(np.int64)).to(ON)
    return x[:300], y[:300], x[300:], y[300:]


def run(tensors, seed=0, **overrides):
    cfg = TrainParams(**(SMALL | overrides))
    torch.manual_seed(seed)
    model = models.build(cfg.model, conv_channels=cfg.conv_channels, hidden_units=cfg.hidden_units) \
        if cfg.model == "cnn" else models.build("mlp", hidden_units=cfg.hidden_units)
    return engine.fit(model, *tensors, cfg, seed=seed)


def test_to_tensor_normalises_into_channels_last():
    x = engine.to_tensor(np.full((2, 28, 28), 255, dtype=np.uint8), mean=0.5, std=0.25)
    assert x.shape == (2, 1, 28, 28)
    assert x.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(x, torch.full_like(x, 2.0))


def test_learns_the_synthetic_task(tensors):
    result = run(tensors, epochs=6, lr=1e-2)
    assert result.status == "completed" and len(result.history) == 6
    assert result.history[-1]["val_acc"] > 0.9  # chance is 0.1
    assert result.train_accuracy > 0.9


def test_train_accuracy_is_measured_on_a_fixed_sample_the_size_of_the_validation_fold(
        tensors, monkeypatch):
    train_sample, predict = engine.train_sample, engine.predict
    assert engine.train_sample(300, seed=0, size=300) == slice(None)  # small folds: all of them
    assert engine.train_sample_size(2_000) == 2_000  # the defaults' folds: 8,000 train, 2,000 val
    assert engine.train_sample_size(12_000) == engine.TRAIN_ACC_SAMPLE  # 60,000 images: capped
    sample = engine.train_sample(300, seed=0, size=100)
    assert len(sample) == len(set(sample.tolist())) == 100 and sample.max() < 300
    assert torch.equal(sample, engine.train_sample(300, seed=0, size=100))  # fixed per seed
    x_train, y_train, x_val, y_val = tensors
    assert len(x_val) == 100  # the fixture: 300 to train on, 100 to validate
    drawn, measured = [], []
    monkeypatch.setattr(engine, "train_sample",
                        lambda *args: drawn.append(args) or train_sample(*args))
    monkeypatch.setattr(engine, "predict", lambda m, x, *a: measured.append(len(x)) or predict(m, x, *a))
    cfg = TrainParams(**SMALL, epochs=1)
    torch.manual_seed(0)
    model = models.build("cnn", conv_channels=cfg.conv_channels, hidden_units=cfg.hidden_units)
    result = engine.fit(model, x_train, y_train, x_val, y_val, cfg, seed=0)
    assert drawn == [(300, 0, 100)] and measured == [100, 100]  # validation, then the sample
    on_sample = engine.loss_and_accuracy(predict(model, x_train[sample]), y_train[sample])[1]
    assert result.train_accuracy == on_sample


def test_same_seed_same_history_different_seed_differs(tensors):
    strip = lambda r: [{k: v for k, v in h.items() if k != "seconds"} for h in r.history]  # noqa: E731
    assert strip(run(tensors, epochs=1, seed=5)) == strip(run(tensors, epochs=1, seed=5))
    assert strip(run(tensors, epochs=1, seed=5)) != strip(run(tensors, epochs=1, seed=6))


@pytest.mark.parametrize("overrides", [
    dict(optimizer="sgd", schedule="cosine"), dict(optimizer="adamw", schedule="onecycle"),
    dict(optimizer="rmsprop", schedule="step", lr=1e-4), dict(precision="bf16"),
    dict(hflip=True, crop_pad=2, label_smoothing=0.1), dict(model="mlp", hidden_units=(32,)),
    dict(ema=0.9, tta_hflip=True), dict(model="mlp", hidden_units=(32,), ema=0.9, tta_hflip=True),
])
def test_every_optimizer_schedule_and_option_trains(tensors, overrides):
    result = run(tensors, epochs=2, **overrides)
    assert result.status == "completed"
    assert all(math.isfinite(h["train_loss"]) for h in result.history)


@pytest.mark.parametrize("overrides", [
    dict(lr=100.0),  # BatchNorm keeps the loss finite but enormous
    dict(model="mlp", hidden_units=(32,), norm="none", optimizer="sgd", lr=100.0),  # NaN
])
def test_divergence_stops_the_run_with_a_reason(tensors, overrides):
    result = run(tensors, epochs=5, **overrides)
    assert result.status == "diverged"
    assert "diverged at epoch 1" in result.reason and "train.lr" in result.reason
    assert len(result.history) == 1


def test_early_stopping_ends_after_patience(tensors):
    # An LR this small barely moves the val loss; with patience 1 a noisy non-improvement stops it.
    result = run(tensors, epochs=30, lr=1e-2, patience=1)
    assert result.status == "early_stopped"
    assert len(result.history) < 30
    assert "did not improve for 1 epochs" in result.reason


def test_schedules_end_where_expected():
    model = torch.nn.Linear(2, 2)
    for schedule, final in [("cosine", 0.0), ("step", 0.01), ("constant", 1.0)]:
        cfg = TrainParams(schedule=schedule, epochs=4, lr=1.0)
        optimizer = engine.make_optimizer(model, cfg)
        sched = engine.make_schedule(optimizer, cfg, steps_per_epoch=10)
        for _ in range(40):
            optimizer.step()
            sched.step()
        assert optimizer.param_groups[0]["lr"] == pytest.approx(final, abs=1e-9), schedule


def test_augment_flip_and_crop():
    g = torch.Generator().manual_seed(0)
    x = torch.arange(2 * 28 * 28, dtype=torch.float32).reshape(2, 1, 28, 28)
    same = engine.augment(x, g, hflip=False, crop_pad=0)
    assert torch.equal(same, x)
    flipped = engine.augment(x, torch.Generator().manual_seed(0), hflip=True, crop_pad=0)
    for i in range(2):  # each image is either itself or its mirror image
        assert torch.equal(flipped[i], x[i]) or torch.equal(flipped[i], x[i].flip(2))
    cropped = engine.augment(x, g, hflip=False, crop_pad=3)
    assert cropped.shape == x.shape
    # A crop is a shifted window of the zero-padded image: find the shift and compare.
    padded = torch.nn.functional.pad(x, (3, 3, 3, 3))
    for i in range(2):
        assert any(torch.equal(cropped[i], padded[i, :, dy:dy + 28, dx:dx + 28])
                   for dy in range(7) for dx in range(7))


def test_predict_restores_training_mode_and_batches(tensors):
    x = tensors[0]
    model = models.build("cnn", conv_channels=(4,), hidden_units=(8,)).to(x.device).train()
    logits = engine.predict(model, x)
    assert logits.shape == (len(x), 10) and model.training
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(logits, model(x), rtol=1e-4, atol=1e-5)


def test_flip_tta_predicts_the_mean_probability_of_the_image_and_its_mirror(tensors):
    torch.manual_seed(0)
    x = tensors[0][:40]
    model = models.build("cnn", conv_channels=(4,), hidden_units=(8,)).to(x.device).eval()
    with torch.no_grad():
        mean = (model(x).softmax(1) + model(x.flip(3)).softmax(1)) / 2
    got = engine.predict(model, x, tta_hflip=True)
    torch.testing.assert_close(got.softmax(1), mean, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(got.exp().sum(1), torch.ones(len(x)))  # log-probabilities
    assert not torch.allclose(got.softmax(1), engine.predict(model, x).softmax(1), atol=1e-3)
    symmetric = (x + x.flip(3)) / 2  # a mirror image predicts as itself
    torch.testing.assert_close(engine.predict(model, symmetric, tta_hflip=True).softmax(1),
                               engine.predict(model, symmetric).softmax(1), rtol=1e-4, atol=1e-6)


def test_weight_average_is_the_textbook_ema_of_weights_and_batchnorm_statistics():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    average = engine.weight_average(model, decay=0.9)
    expected = None
    for _ in range(4):
        model(torch.randn(8, 3))  # train mode: moves the running statistics
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        average.update_parameters(model)
        current = {k: v.clone() for k, v in model.state_dict().items() if v.is_floating_point()}
        expected = current if expected is None else {
            k: 0.9 * expected[k] + 0.1 * current[k] for k in current}
    got = average.module.state_dict()
    for key, value in expected.items():  # weights, biases, running_mean, running_var
        torch.testing.assert_close(got[key], value)
    assert engine.weight_average(model, decay=0.0) is None


def test_with_ema_the_model_keeps_the_averaged_weights_it_was_validated_with(tensors):
    plain = run(tensors, epochs=2, lr=1e-2)
    cfg = TrainParams(**(SMALL | dict(epochs=2, lr=1e-2, ema=0.9)))
    torch.manual_seed(0)
    model = models.build("cnn", conv_channels=cfg.conv_channels, hidden_units=cfg.hidden_units)
    averaged = engine.fit(model, *tensors, cfg, seed=0)
    # Same batches and steps; only what is validated (and kept) differs.
    assert [h["train_loss"] for h in averaged.history] == [h["train_loss"] for h in plain.history]
    assert averaged.history[-1]["val_loss"] != plain.history[-1]["val_loss"]
    x_val, y_val = tensors[2], tensors[3]
    loss, acc = engine.loss_and_accuracy(engine.predict(model, x_val), y_val)
    assert (loss, acc) == pytest.approx((averaged.history[-1]["val_loss"],
                                         averaged.history[-1]["val_acc"]), rel=1e-6)


def test_train_fold_holds_out_its_fold_with_a_no_op_tracker(tensors):
    from src.train import train_fold
    x, y = tensors[0], tensors[1]
    folds = torch.arange(len(x), device=x.device) % 3
    cfg = TrainParams(**SMALL, epochs=1)
    model, result = train_fold(x, y, folds, 1, cfg, trackers.NullTracker(), progress=False)
    assert result.status == "completed" and len(result.history) == 1
    assert isinstance(model, torch.nn.Module)
    # validation ran on fold 1 only: its accuracy is a multiple of 1/100 (100 held-out images)
    assert round(result.history[0]["val_acc"] * 100, 4).is_integer()


def test_bf16_warns_only_where_the_cpu_lacks_native_bf16(monkeypatch):
    from src.core import engine
    assert isinstance(engine.native_bf16(), bool)
    monkeypatch.setattr(engine, "native_bf16", lambda: False)
    [warning] = engine.config_warnings(TrainParams(precision="bf16"))
    assert "emulated" in warning
    assert engine.config_warnings(TrainParams(precision="fp32")) == []
    monkeypatch.setattr(engine, "native_bf16", lambda: True)
    assert engine.config_warnings(TrainParams(precision="bf16")) == []


def test_flip_tta_warns_unless_training_sees_flips():
    from src.core import engine
    [warning] = engine.config_warnings(TrainParams(tta_hflip=True))
    assert "train.hflip" in warning
    assert engine.config_warnings(TrainParams(tta_hflip=True, hflip=True)) == []
    assert engine.config_warnings(TrainParams(hflip=True)) == []


def test_evaluate_predicts_each_fold_model_as_it_was_validated(tensors):
    from src import evaluate
    from src.core import engine, models
    torch.manual_seed(0)
    x = tensors[0][:30]
    model = models.build("cnn", conv_channels=(4,), hidden_units=(8,)).to(x.device).eval()
    with_tta = {"train_params": {"precision": "fp32", "tta_hflip": True}}
    older = {"train_params": {"precision": "fp32"}}  # a checkpoint from before tta_hflip existed
    got = evaluate.fold_probabilities([(model, with_tta), (model, older)], x)
    assert got.shape == (2, 30, 10)
    np.testing.assert_allclose(got[0], engine.predict(model, x, tta_hflip=True).softmax(1).cpu().numpy(),
                               rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(got[1], engine.predict(model, x).softmax(1).cpu().numpy(), rtol=1e-5,
                               atol=1e-7)


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_set_threads_follows_the_environment_and_refuses_nonsense(monkeypatch, restore_threads):
    from src.core.errors import TunelabError
    monkeypatch.setenv("TUNELAB_THREADS", "1")
    assert engine.set_threads() == 1 == torch.get_num_threads()
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv("TUNELAB_THREADS", bad)
        with pytest.raises(TunelabError, match="TUNELAB_THREADS"):
            engine.set_threads()


def test_evaluate_takes_the_thread_count_a_sweep_gives_it(monkeypatch, restore_threads, tmp_path):
    # A sweep's evaluate runs beside another worker's training: with all cores it oversubscribes.
    from src import evaluate
    from src.core.errors import TunelabError
    monkeypatch.chdir(tmp_path)  # nothing to evaluate here: the thread count comes first
    monkeypatch.setenv("TUNELAB_THREADS", "1")
    torch.set_num_threads(2)
    with pytest.raises(TunelabError, match="not found"):
        evaluate.main()
    assert torch.get_num_threads() == 1


def test_train_fold_asks_the_epoch_hook_and_stops_when_it_says_so(tensors, monkeypatch):
    from src.train import train_fold
    monkeypatch.setenv("DVC_EXP_NAME", "s--t002--s0")
    x, y = tensors[0], tensors[1]
    folds = torch.arange(len(x), device=x.device) % 3
    asked = []

    def hook(exp_name, epoch, val_acc, fold):  # a search that prunes at epoch 2
        asked.append((exp_name, epoch, val_acc, fold))
        return epoch == 2
    model, result = train_fold(x, y, folds, 1, TrainParams(**SMALL, epochs=4), trackers.NullTracker(),
                               progress=False, hook=hook)
    assert asked == [("s--t002--s0", row["epoch"], row["val_acc"], 1) for row in result.history]
    assert result.status == "pruned" and len(result.history) == 2
    assert result.reason.startswith("pruned by the search's rule at fold 1, epoch 2")


def test_the_epoch_hook_is_loaded_by_name_and_a_bad_name_is_one_clear_error(monkeypatch, capsys):
    from src.core import hooks
    from src.core.errors import TunelabError
    from src.train import epoch_hook
    assert hooks.load(None) is None and hooks.load("") is None
    assert hooks.load("math:isfinite") is math.isfinite
    for bad, says in (("math", "package.module:function"), ("math:", "package.module:function"),
                      ("no_such_module_x:f", "cannot be loaded"), ("math:nope", "cannot be loaded"),
                      ("math:pi", "is not a function")):
        with pytest.raises(TunelabError, match=r"\$TUNELAB_EPOCH_HOOK = .*" + says):
            hooks.load(bad)
    monkeypatch.delenv(hooks.ENV, raising=False)
    assert epoch_hook("workspace") is None and capsys.readouterr().err == ""
    assert epoch_hook("s--t002--s0") is None  # a trial without a hook runs unpruned, and says so
    assert "s--t002--s0 is a search trial but $TUNELAB_EPOCH_HOOK is not set" in capsys.readouterr().err
    monkeypatch.setenv(hooks.ENV, "math:isfinite")
    assert epoch_hook("s--t002--s0") is math.isfinite and capsys.readouterr().err == ""
