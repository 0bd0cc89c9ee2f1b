"""Benchmark (not a test): training throughput of the reference CNN on this machine.

Times, in one process and interleaved round by round (so drift in clock speed or background load
hits every variant alike):
  (a) usual         : the usual PyTorch style: a per-sample Dataset doing PIL image -> tensor ->
                      normalise, DataLoader(batch_size=64, shuffle=True), fp32, NCHW, the
                      textbook block order conv -> BatchNorm -> ReLU -> maxpool;
  (b) fp32_textbook : tunelab's loop (src/core/engine.py: whole-tensor batches, channels_last, fused
                      Adam), fp32, the textbook block order;
  (c) fp32          : the same with tunelab's model, which max-pools before the ReLU (the same
                      function, see src/core/models.py);
  (d) bf16          : (c) with `precision: bf16` (autocast; the loss stays fp32).
On --device cuda (or mps) every variant trains there: (a) is the usual GPU style of pytorch/examples'
mnist (the same per-sample Dataset, DataLoader(num_workers=1, pin_memory=True), batches copied to the
device); (b)-(d) keep the whole dataset on the device (tunelab's train stage does the same), with
deterministic algorithms and IEEE fp32 as `train` sets them (src/core/device.py).
Prints one `name=value` per line: samples/s (median over rounds), seconds per 60,000-sample epoch,
achieved GFLOP/s (training FLOPs counted from the model's layers), and speed-ups over (a).

Then the sweep throughput, from the record the last `python -m src.sweep run NAME` left in
.tunelab/sweeps/NAME.json (the most recent one, or --sweep NAME): total training samples per
second of the sweep's workers against (a) run sequentially (as timed here, on --threads threads),
and the share of the workers' time that training filled and that overhead took.

Run:  .venv/bin/python benchmarks/train_speed.py [--rounds 5] [--samples 6400] [--threads N]
                                                [--variants usual,fp32_textbook,fp32,bf16]
                                                [--sweep NAME] [--device cpu|cuda|cuda:N|mps]
                                                [--synthetic]
(--synthetic: random images of Fashion-MNIST's shape instead of the dataset; throughput does not
depend on the pixels.)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from src.core import data, device, engine, models, paths  # noqa: E402
from src.core.checkpoints import model_args  # noqa: E402
from src.core.errors import TunelabError  # noqa: E402
from src.core.params import TrainParams  # noqa: E402

EPOCH = 60_000
VARIANTS = ("usual", "fp32_textbook", "fp32", "bf16")


class UsualDataset(torch.utils.data.Dataset):
    """The per-sample pipeline most tutorials use (torchvision's ToTensor + Normalize, by hand)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, mean: float, std: float):
        self.images, self.labels, self.mean, self.std = images, labels, mean, std

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i):
        image = Image.fromarray(self.images[i], mode="L")
        x = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).unsqueeze(0)
        return (x - self.mean) / self.std, int(self.labels[i])


def usual_run(model, loader, optimizer, n_batches: int, on: torch.device) -> int:
    model.train()
    seen = 0
    for i, (xb, yb) in enumerate(loader):
        if i == n_batches:
            break
        xb, yb = xb.to(on, non_blocking=True), yb.to(on, non_blocking=True)  # CPU: no-ops
        optimizer.zero_grad()
        F.cross_entropy(model(xb), yb).backward()
        optimizer.step()
        seen += len(yb)
    synchronize(on)
    return seen


def synchronize(on: torch.device) -> None:
    """Wait for the device's queued work, so that the clock reads the work's end."""
    if on.type == "cuda":
        torch.cuda.synchronize(on)
    elif on.type == "mps":
        torch.mps.synchronize()


def fashion_mnist_or_synthetic(synthetic: bool) -> tuple[np.ndarray, np.ndarray]:
    """The 60,000 training images and labels, or random ones of the same shape."""
    if synthetic:
        rng = np.random.default_rng(0)
        return (rng.integers(0, 256, (EPOCH, 28, 28), dtype=np.uint8),
                rng.integers(0, 10, EPOCH).astype(np.int64))
    arrays = data.load(data.locate(paths.RAW))
    return arrays["train_images"], arrays["train_labels"].astype(np.int64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--samples", type=int, default=6400, help="training samples per timing")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help="comma-separated subset of %(default)s (bf16 crawls without native "
                             "bf16 hardware); 'usual' is always timed, as the baseline")
    parser.add_argument("--sweep", help="the sweep whose last run to report (default: the most "
                                        f"recent record in {paths.SWEEP_RECORDS}/)")
    parser.add_argument("--device", default="cpu", help="where every variant trains: "
                                                        f"{device.CHOICES} (default: %(default)s)")
    parser.add_argument("--synthetic", action="store_true",
                        help="random images instead of Fashion-MNIST (no dataset needed)")
    args = parser.parse_args()
    try:
        on = device.resolve(args.device, "--device")
    except TunelabError as error:
        parser.error(str(error))
    device.configure(on)
    record_file = sweep_record(args.sweep)
    if args.sweep and record_file is None:
        parser.error(f"--sweep {args.sweep}: no record {paths.SWEEP_RECORDS / args.sweep}.json; run "
                     f"`python -m src.sweep run {args.sweep} --jobs 2` first")
    chosen = ["usual"] + [v for v in args.variants.split(",") if v and v != "usual"]
    unknown = sorted(set(chosen) - set(VARIANTS))
    if unknown:
        parser.error(f"--variants: unknown {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    torch.set_num_threads(args.threads)

    images, labels = fashion_mnist_or_synthetic(args.synthetic)
    mean, std = float(images.mean() / 255), float(images.std() / 255)
    x = engine.to_tensor(images, mean, std, on)  # the whole dataset on the device, once
    y = torch.as_tensor(labels).to(on)
    n_batches = args.samples // 64
    torch.manual_seed(0)

    usual_model = models.build("cnn", **model_args(TrainParams()), pool_first=False)
    flops = models.training_flops_per_sample(usual_model)  # on the CPU, before the move
    usual_model = usual_model.to(on)
    usual_opt = torch.optim.Adam(usual_model.parameters(), lr=1e-3)
    # On a GPU, pytorch/examples' mnist loads with one worker process into pinned memory.
    gpu_style = {"num_workers": 1, "pin_memory": True} if on.type != "cpu" else {}
    loader = torch.utils.data.DataLoader(UsualDataset(images, labels, mean, std), batch_size=64,
                                         shuffle=True, **gpu_style)
    variants = {}
    for name in chosen[1:]:
        cfg = TrainParams(precision="bf16" if name == "bf16" else "fp32")
        model = models.build("cnn", **model_args(cfg), pool_first=name != "fp32_textbook")
        model = model.to(on, memory_format=torch.channels_last)
        optimizer = engine.make_optimizer(model, cfg)
        variants[name] = (model, optimizer, engine.make_schedule(optimizer, cfg, 1), cfg)
    generator = torch.Generator(device=on).manual_seed(0)

    def tunelab_run(name: str) -> int:
        model, optimizer, schedule, cfg = variants[name]
        start = int(torch.randint(0, len(x) - args.samples, (1,), generator=generator, device=on))
        part = slice(start, start + n_batches * 64)
        engine.train_epoch(model, x[part], y[part], optimizer, schedule, cfg, generator)  # syncs
        return n_batches * 64

    runs = {"usual": lambda: usual_run(usual_model, loader, usual_opt, n_batches, on)}
    runs |= {name: (lambda name=name: tunelab_run(name)) for name in chosen[1:]}
    rates: dict[str, list[float]] = {name: [] for name in runs}
    for round_ in range(args.rounds + 1):  # round 0 warms up (allocator, oneDNN/cuDNN kernels)
        for name, run in runs.items():
            t0 = time.perf_counter()
            seen = run()
            if round_:
                rates[name].append(seen / (time.perf_counter() - t0))

    print(f"device={device.label(on)}")
    print(f"machine_threads={args.threads}")
    print(f"rounds={args.rounds}")
    print(f"samples_per_timing={n_batches * 64}")
    print(f"train_mflop_per_sample={flops / 1e6:.1f}")
    base = statistics.median(rates["usual"])
    for name, values in rates.items():
        rate = statistics.median(values)
        print(f"{name}.samples_per_s={rate:.0f}")
        print(f"{name}.spread_min_max={min(values):.0f}-{max(values):.0f}")
        print(f"{name}.seconds_per_60k_epoch={EPOCH / rate:.1f}")
        print(f"{name}.gflop_per_s={rate * flops / 1e9:.1f}")
        print(f"{name}.speedup_vs_usual={rate / base:.2f}")
    if record_file is not None:
        record = json.loads(record_file.read_text())
        print(f"sweep.record={record_file}")
        for key in ("sweep", "finished", "experiments", "workers", "threads_per_worker",
                    "wall_seconds", "train_samples"):
            print(f"sweep.{key}={record[key]}")
        print(f"sweep.samples_per_s={record['samples_per_second']:.0f}")
        print(f"sweep.speedup_vs_usual_sequential={record['samples_per_second'] / base:.2f}")
        print(f"sweep.training_share={record['training_share']:.3f}")
        print(f"sweep.overhead_share={1 - record['training_share']:.3f}")


def sweep_record(name: str | None) -> Path | None:
    """The record of sweep ``name``, or the most recent one; None if there is none."""
    folder = ROOT / paths.SWEEP_RECORDS
    if name:
        path = folder / f"{name}.json"
        return path if path.exists() else None
    records = sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime)
    return records[-1] if records else None


if __name__ == "__main__":
    main()
