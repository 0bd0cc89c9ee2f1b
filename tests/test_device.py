"""Devices: selection and its errors (with torch's availability patched), placement of data and
models through the device code path with device=cpu, checkpoints that load on any device, the CPU
path unchanged bit for bit, and (marked ``gpu``) the training loop's determinism on CUDA."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from src.core import checkpoints, device, engine
from src.core.errors import TunelabError
from src.core.params import PrepareParams, TrainParams
from tests.conftest import make_images

REPO = Path(__file__).resolve().parents[1]
SMALL = dict(conv_channels=(4, 8), hidden_units=(16,), batch_size=32)
# The commit whose CPU results the device code path must reproduce bit for bit (the last one before
# devices). Change it only with a change that means to alter CPU results, and say so.
CPU_REFERENCE = "9392552"


def offer(monkeypatch, cuda: int = 0, mps: bool = False) -> None:
    """Pretend this machine has ``cuda`` CUDA devices and (or not) Apple MPS."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)


# --- selection ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("setting, parsed", [("auto", "auto"), ("cpu", "cpu"), (" CUDA ", "cuda"),
                                             ("cuda:1", "cuda:1"), ("mps", "mps")])
def test_parse_accepts_the_documented_settings(setting, parsed):
    assert device.parse(setting) == parsed


@pytest.mark.parametrize("setting", ["gpu", "cuda:", "cuda:x", "cuda0", "tpu", "", "mps:0"])
def test_parse_refuses_anything_else_naming_the_setting_and_the_choices(setting):
    with pytest.raises(TunelabError, match=f"TUNELAB_DEVICE={setting!r} is not a device; use one of "
                                           f"auto, cpu, cuda, cuda:N, mps"):
        device.parse(setting)


@pytest.mark.parametrize("cuda, mps, auto", [(0, False, "cpu"), (0, True, "mps"), (2, False, "cuda:0"),
                                             (1, True, "cuda:0")])
def test_auto_prefers_cuda_then_mps_then_the_cpu(monkeypatch, cuda, mps, auto):
    offer(monkeypatch, cuda, mps)
    monkeypatch.delenv(device.ENV, raising=False)
    assert device.resolve() == torch.device(auto)  # unset means auto
    assert device.resolve("auto") == torch.device(auto)
    assert device.resolve("cpu") == torch.device("cpu")  # always there
    assert device.available()[-1] == "cpu"


def test_a_named_device_is_taken_when_it_is_there(monkeypatch):
    offer(monkeypatch, cuda=2, mps=True)
    monkeypatch.setenv(device.ENV, "cuda:1")
    assert device.resolve() == torch.device("cuda:1")
    assert device.resolve("cuda") == torch.device("cuda:0")
    assert device.resolve("mps") == torch.device("mps")
    assert device.available() == ["cuda:0", "cuda:1", "mps", "cpu"]


def test_cuda_without_cuda_names_the_setting_and_what_is_available(monkeypatch):
    offer(monkeypatch, cuda=0, mps=True)
    with pytest.raises(TunelabError) as raised:
        device.resolve("cuda")
    message = str(raised.value)
    assert message.startswith("TUNELAB_DEVICE=cuda: CUDA is not available here")
    assert message.endswith("; available: mps, cpu (or auto)") and "\n" not in message
    if torch.version.cuda is None:  # this machine's PyTorch: the build is the reason
        assert "built without CUDA" in message


def test_a_missing_gpu_index_or_mps_is_refused_with_what_is_available(monkeypatch):
    offer(monkeypatch, cuda=2)
    with pytest.raises(TunelabError, match=r"^TUNELAB_DEVICE=cuda:2: no CUDA device cuda:2; "
                                           r"available: cuda:0, cuda:1, cpu \(or auto\)$"):
        device.resolve("cuda:2")
    with pytest.raises(TunelabError, match=r"^TUNELAB_DEVICE=mps: Apple MPS is not available here; "
                                           r"available: cuda:0, cuda:1, cpu"):
        device.resolve("mps")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: nothing to refuse")
@pytest.mark.parametrize("stage", ["src.train", "src.evaluate"])
def test_the_stages_exit_2_with_one_line_on_a_device_that_is_not_there(tmp_path, stage):
    # In an empty folder: the device is checked before any file is read.
    env = os.environ | {"TUNELAB_DEVICE": "cuda", "PYTHONPATH": str(REPO), "TUNELAB_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", stage], cwd=tmp_path, env=env, capture_output=True,
                          text=True)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: TUNELAB_DEVICE=cuda: CUDA is not available here")
    assert done.stderr.count("\n") == 1 and "available: " in done.stderr
    assert "Traceback" not in done.stderr


def test_a_sweep_refuses_a_device_before_it_queues(monkeypatch):
    from src.experiments import sweep_spec
    from tests.test_sweeps import BASE
    offer(monkeypatch)
    sweep = sweep_spec.parse_sweep("s", {"configs": [{}], "baseline": {}}, BASE)
    monkeypatch.setenv(device.ENV, "cuda")
    with pytest.raises(TunelabError, match="TUNELAB_DEVICE=cuda: CUDA is not available here"):
        sweep_spec.config_warnings(sweep_spec.expand(sweep, 1, BASE), BASE)


def test_label_is_what_runs_record(monkeypatch):
    assert device.label(torch.device("cpu")) == "cpu"  # every CPU run: comparable metrics.json
    assert device.label(torch.device("mps")) == "mps"
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index: f"GPU{index}")
    assert device.label(torch.device("cuda:1")) == "cuda:1 (GPU1)"
    assert device.label(torch.device("cuda")) == "cuda:0 (GPU0)"


# --- sharing an accelerator, configuration ----------------------------------------------------------

def test_memory_fraction_is_validated_and_shared_between_workers(monkeypatch):
    monkeypatch.delenv(device.MEMORY_ENV, raising=False)
    assert device.memory_fraction() is None
    assert device.memory_fraction("0.25") == 0.25 and device.memory_fraction("1") == 1.0
    for bad in ("0", "1.5", "-0.1", "half", "nan"):
        with pytest.raises(TunelabError, match=f"TUNELAB_MEMORY_FRACTION={bad!r} must be a number"):
            device.memory_fraction(bad)
    assert device.worker_memory_fraction(1) == 1.0
    for jobs in (2, 4, 8):
        assert jobs * device.worker_memory_fraction(jobs) == pytest.approx(1 - device.CONTEXT_RESERVE)


def test_sweep_workers_inherit_their_threads_and_their_share_of_the_device(monkeypatch):
    from src.experiments import dvc_queue
    monkeypatch.setenv("TUNELAB_THREADS", "?")  # restored afterwards
    monkeypatch.setenv(device.MEMORY_ENV, "?")
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    assert dvc_queue.share_machine(4) == 4
    assert os.environ["TUNELAB_THREADS"] == "4"
    assert float(os.environ[device.MEMORY_ENV]) == pytest.approx(0.225)
    dvc_queue.share_machine(1)
    assert os.environ[device.MEMORY_ENV] == "1"


def test_configure_leaves_the_cpu_exactly_as_it_was(monkeypatch):
    before = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark,
              torch.backends.cudnn.deterministic, torch.get_num_threads())
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    device.configure(torch.device("cpu"), 0.5)
    assert (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark,
            torch.backends.cudnn.deterministic, torch.get_num_threads()) == before
    assert "CUBLAS_WORKSPACE_CONFIG" not in os.environ


NEW_FP32_API = hasattr(torch.backends.cudnn, "conv")  # PyTorch >= 2.9


def fp32_settings() -> tuple:
    if NEW_FP32_API:
        return torch.backends.cudnn.conv.fp32_precision, torch.backends.cuda.matmul.fp32_precision
    return torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32


@pytest.fixture
def restore_cuda_flags():
    saved = (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic, fp32_settings(),
             torch.are_deterministic_algorithms_enabled())
    yield
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = saved[:2]
    if NEW_FP32_API:
        torch.backends.cudnn.conv.fp32_precision, torch.backends.cuda.matmul.fp32_precision = saved[2]
    else:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved[2]
    torch.use_deterministic_algorithms(saved[3])


def test_configure_makes_cuda_deterministic_ieee_fp32_and_capped(monkeypatch, restore_cuda_flags):
    calls = []
    monkeypatch.setattr(torch, "use_deterministic_algorithms", lambda mode: calls.append(("det", mode)))
    monkeypatch.setattr(torch.cuda, "set_per_process_memory_fraction",
                        lambda fraction, index: calls.append(("memory", fraction, index)))
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    torch.backends.cudnn.benchmark = True
    device.configure(torch.device("cuda:1"), 0.3)
    assert calls == [("det", True), ("memory", 0.3, 1)]
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == device.CUBLAS_WORKSPACE
    assert not torch.backends.cudnn.benchmark and torch.backends.cudnn.deterministic
    # No TF32 behind `precision: fp32`.
    assert fp32_settings() == (("ieee", "ieee") if NEW_FP32_API else (False, False))
    calls.clear()
    device.configure(torch.device("cuda:0"), 1.0)  # one worker: no cap
    assert calls == [("det", True)]


def test_bf16_is_fp16_with_a_grad_scaler_only_on_a_gpu_without_bf16(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert device.autocast_dtype("cuda") == torch.bfloat16
    assert not device.needs_grad_scaler("bf16", "cuda")
    assert engine.grad_scaler("bf16", "cuda") is None
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: False)
    assert device.autocast_dtype("cuda") == torch.float16
    assert device.needs_grad_scaler("bf16", "cuda") and not device.needs_grad_scaler("fp32", "cuda")
    [warning] = engine.config_warnings(TrainParams(precision="bf16"), "cuda")
    assert "fp16" in warning and "grad scaler" in warning
    for where in ("cpu", "mps"):
        assert device.autocast_dtype(where) == torch.bfloat16
        assert engine.grad_scaler("bf16", where) is None


@pytest.mark.parametrize("optimizer", ["adam", "sgd", "rmsprop"])
def test_the_fp16_fallback_trains_through_the_grad_scaler(tensors, monkeypatch, optimizer):
    # The path of a GPU without bf16, run on the CPU: fp16 autocast, every step through the scaler.
    monkeypatch.setattr(device, "autocast_dtype", lambda device_type: torch.float16)
    updates = []
    update = torch.amp.GradScaler.update
    monkeypatch.setattr(torch.amp.GradScaler, "update",
                        lambda self, *a: updates.append(self.get_scale()) or update(self, *a))
    _, result = fit(tensors, epochs=2, lr=1e-2, precision="bf16", optimizer=optimizer)
    assert result.status == "completed" and result.history[-1]["val_acc"] > 0.3
    assert len(updates) == 2 * math.ceil(len(tensors[0]) / SMALL["batch_size"])


def test_the_cpu_bf16_warning_is_for_the_cpu_only(monkeypatch):
    monkeypatch.setattr(engine, "native_bf16", lambda: False)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert engine.config_warnings(TrainParams(precision="bf16"), "cuda") == []
    assert "emulated" in engine.config_warnings(TrainParams(precision="bf16"), "cpu")[0]


# --- placement ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tensors():
    images, labels = make_images(400, seed=0)
    x = engine.to_tensor(images, mean=0.2, std=0.3)
    y = torch.as_tensor(labels.astype(np.int64))
    return x[:300], y[:300], x[300:], y[300:]


def fit(tensors, seed=0, **overrides):
    cfg = TrainParams(**(SMALL | dict(epochs=1) | overrides))
    torch.manual_seed(seed)
    model = checkpoints.build_model(cfg)
    return model, engine.fit(model, *tensors, cfg, seed=seed)


def test_train_moves_the_prepared_dataset_to_the_device_once():
    from src import prepare, train
    images, labels = make_images(200, seed=3)
    arrays = {"train_images": images, "train_labels": labels, "test_images": images[:50],
              "test_labels": labels[:50]}
    prepared = prepare.prepare(arrays, PrepareParams(train_size=100, test_size=50, cv_folds=2))
    x, y, folds = train.dataset_on(prepared, torch.device("cpu"))
    assert {t.device for t in (x, y, folds)} == {torch.device("cpu")}
    assert x.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(x, engine.to_tensor(prepared["x_train"], float(prepared["mean"]),
                                           float(prepared["std"])))  # what train used before
    assert torch.equal(y, torch.as_tensor(prepared["y_train"]))
    assert torch.equal(folds, torch.as_tensor(prepared["fold"]))


def test_fit_puts_the_model_where_the_data_is_and_predicts_there(tensors):
    model, result = fit(tensors)
    assert result.status == "completed"
    assert {p.device for p in model.parameters()} == {torch.device("cpu")}
    assert engine.predict(model, tensors[2]).device == tensors[2].device


@pytest.mark.parametrize("overrides", [
    dict(), dict(hflip=True, crop_pad=2, label_smoothing=0.1), dict(precision="bf16"),
    dict(optimizer="sgd", schedule="onecycle", conv_dropout=0.1), dict(optimizer="rmsprop"),
    dict(model="mlp", hidden_units=(32,), tta_hflip=True),
])
def test_every_tensor_the_loop_makes_is_made_on_the_data_device(tensors, overrides):
    # With the default device set to `meta`, a tensor made without naming its device (the bug
    # that breaks a GPU run: a CPU batch order, a CPU accumulator) lands on `meta` and the fit fails
    # (verified on the code before devices: every one of these fails there). The weight average is
    # left out: torch's AveragedModel keeps its step counter on the default device by design.
    torch.manual_seed(0)
    cfg = TrainParams(**(SMALL | dict(epochs=1) | overrides))
    model = checkpoints.build_model(cfg)
    torch.set_default_device("meta")
    try:
        result = engine.fit(model, *tensors, cfg, seed=0)
    finally:
        torch.set_default_device(None)
    assert result.status == "completed" and math.isfinite(result.train_accuracy)


def test_the_cpu_path_is_the_one_before_devices_bit_for_bit(tensors, monkeypatch):
    """The same fits through the device code path and through the engine of CPU_REFERENCE (read
    from git, run in this process on the same tensors): identical histories, weights, train
    accuracy and predictions."""
    try:
        source = subprocess.run(["git", "show", f"{CPU_REFERENCE}:src/core/engine.py"], cwd=REPO,
                                capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip(f"commit {CPU_REFERENCE} is not in this clone (a shallow clone?)")
    old = types.ModuleType("engine_before_devices")
    monkeypatch.setitem(sys.modules, old.__name__, old)  # its dataclass looks itself up there
    exec(compile(source, f"{CPU_REFERENCE}:src/core/engine.py", "exec"), old.__dict__)
    for overrides in (dict(epochs=2), dict(epochs=2, precision="bf16", hflip=True, crop_pad=2, ema=0.9,
                                            tta_hflip=True, label_smoothing=0.1),
                      dict(epochs=2, optimizer="sgd", schedule="onecycle", conv_dropout=0.1),
                      dict(model="mlp", hidden_units=(32,), norm="batch", optimizer="adamw",
                           schedule="step"),
                      dict(lr=100.0)):  # diverges
        cfg = TrainParams(**(SMALL | overrides))
        runs = []
        for loop in (old, engine):
            torch.manual_seed(3)
            model = checkpoints.build_model(cfg)
            result = loop.fit(model, *tensors, cfg, seed=3)
            runs.append(([{k: v for k, v in h.items() if k != "seconds"} for h in result.history],
                         str(result.status), result.train_accuracy, model.state_dict(),
                         loop.predict(model, tensors[2], cfg.precision, cfg.tta_hflip)))
        (h0, s0, a0, w0, p0), (h1, s1, a1, w1, p1) = runs
        assert h0 == h1 and s0 == s1, overrides
        assert a0 == a1 or (math.isnan(a0) and math.isnan(a1)), overrides
        assert all(torch.equal(w0[k], w1[k]) for k in w0), overrides
        assert torch.equal(p0, p1) or s0 == "diverged", overrides


# --- checkpoints --------------------------------------------------------------------------------------

def save_as_if_on(location: str, obj, path: Path, monkeypatch) -> None:
    """torch.save ``obj`` with every storage tagged ``location`` (e.g. "cuda:0"): the file a GPU run
    writes, made on a machine without one."""
    with monkeypatch.context() as patched:
        patched.setattr(torch.serialization, "location_tag", lambda storage: location)
        torch.save(obj, path)


def test_checkpoints_round_trip_with_their_device_onto_the_cpu(tensors, tmp_path):
    cfg = TrainParams(**SMALL, epochs=1)
    model, result = fit(tensors)
    ckpt = checkpoints.make(model, cfg, 0, 0.2, 0.3, result, "cuda:0 (GPU)")
    assert ckpt["device"] == "cuda:0 (GPU)"
    assert {t.device.type for t in ckpt["state_dict"].values()} == {"cpu"}
    torch.save(ckpt, tmp_path / "fold_0.pt")
    loaded, saved = checkpoints.load(tmp_path / "fold_0.pt", map_location=torch.device("cpu"))
    assert not loaded.training and saved["device"] == "cuda:0 (GPU)"
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in loaded.state_dict().items())


def test_a_checkpoint_saved_from_a_gpu_loads_on_a_machine_without_one(tensors, tmp_path, monkeypatch):
    model, result = fit(tensors)
    ckpt = checkpoints.make(model, TrainParams(**SMALL, epochs=1), 0, 0.2, 0.3, result, "cuda:0 (GPU)")
    path = tmp_path / "fold_0.pt"
    save_as_if_on("cuda:0", ckpt, path, monkeypatch)
    if not torch.cuda.is_available():  # the file really asks for CUDA: only map_location helps
        with pytest.raises(RuntimeError, match="CUDA"):
            torch.load(path, weights_only=False)
    loaded, _ = checkpoints.load(path, map_location="cpu")
    assert {p.device.type for p in loaded.parameters()} == {"cpu"}
    assert torch.equal(engine.predict(loaded, tensors[2]), engine.predict(model, tensors[2]))


def test_evaluate_reads_models_trained_on_a_gpu_and_records_both_devices(tensors, tmp_path, monkeypatch):
    import json

    from src import evaluate
    from src.core import paths
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TUNELAB_THREADS", "1")
    monkeypatch.setenv(device.ENV, "cpu")
    monkeypatch.setattr(evaluate, "log_results", lambda results: None)  # no DVCLive here
    images, labels = make_images(60, seed=4)
    paths.PREPARED.parent.mkdir(parents=True)
    np.savez(paths.PREPARED, x_test=images, y_test=labels.astype(np.int64), mean=np.float32(0.2),
             std=np.float32(0.3))
    paths.MODELS.mkdir()
    cfg = TrainParams(**SMALL, epochs=1)
    for fold in (0, 1):
        model, result = fit(tensors, seed=fold)
        ckpt = checkpoints.make(model, cfg, fold, 0.2, 0.3, result, "cuda:0 (GPU)")
        save_as_if_on("cuda:0", ckpt, paths.checkpoint(fold), monkeypatch)
    evaluate.main()
    written = json.loads(paths.METRICS.read_text())
    assert written["status"] == "completed" and 0 <= written["test"]["accuracy"] <= 1
    assert written["device"] == {"train": "cuda:0 (GPU)", "evaluate": "cpu"}


def test_devices_of_older_and_mixed_checkpoints():
    from src.evaluate import devices
    assert devices([{}, {}], "cpu") == {"train": "cpu", "evaluate": "cpu"}  # before devices: CPU
    assert devices([{"device": "cpu"}, {"device": "mps"}], "cpu")["train"] == "cpu, mps"


# --- CUDA ---------------------------------------------------------------------------------------------

@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device; this machine has none")
@pytest.mark.parametrize("overrides", [dict(), dict(precision="bf16", hflip=True, crop_pad=2, ema=0.9,
                                                     conv_dropout=0.1, label_smoothing=0.1)])
def test_same_params_and_seed_give_the_same_history_on_cuda(tensors, overrides, restore_cuda_flags):
    device.configure(torch.device("cuda:0"))
    on_gpu = tuple(t.to("cuda:0") for t in tensors)

    def history(seed):
        _, result = fit(on_gpu, seed=seed, epochs=3, lr=1e-2, **overrides)
        assert result.status == "completed"
        return [{k: v for k, v in h.items() if k != "seconds"} for h in result.history], \
            result.train_accuracy

    first = history(5)
    assert history(5) == first
    assert history(6) != first
    assert first[0][-1]["val_acc"] > 0.3  # it learns on the GPU too (chance is 0.1; ~0.6-1.0 on the CPU)
