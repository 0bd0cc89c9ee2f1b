"""Benchmark (not a test): which speed options of the training loop pay, each against tunelab's loop.

Times, in one process and interleaved round by round as benchmarks/train_speed.py does (medians
of ``--rounds`` rounds after a warm-up round, ``--samples`` Fashion-MNIST training images per
timing, the reference CNN, batch 64, `engine.train_epoch`), tunelab's loop with one thing changed:

  fp32 / bf16        tunelab's loop as it is (channels_last, fused Adam), `precision` fp32 / bf16;
  fp32_unfused       Adam without ``fused=True`` (PyTorch's default foreach implementation);
  fp32_nchw          the model in the default memory format instead of channels_last;
  fp32_batch128      batch 128 instead of 64;
  fp32_flush_denormal  ``torch.set_flush_denormal(True)`` while it trains;
  bf16_bn_fp32       bf16 autocast with every BatchNorm forced to run in fp32;
  bf16_compile       bf16 with ``torch.compile(model)`` (opt-in: it compiles for tens of seconds;
                     the compile time is printed on its own);
and prediction (`engine.predict`, BatchNorm folded) of ``--samples`` images in batches of
`engine.EVAL_BATCH` (256) against batches of 2,048 (eval_256, eval_2048).
Prints one `name=value` per line: samples/s per variant and its ratio to fp32 (or bf16 for the
bf16 variants; eval_2048 against eval_256).

Measured (2026-11-22, the 2-core Zen 5 with AVX-512 BF16, an earlier session's machine, with
variants of train_speed.py that were not kept; this file is their kept form): evaluation in
batches of 256 2.7x faster than 2,048; fused Adam +8-12%; channels_last +35% in fp32;
`torch.compile` 35 s to compile and bf16 20% slower; BatchNorm forced to fp32 under autocast 27%
slower; batch 128 no faster than 64; flushing denormals changes nothing (docs/performance.md).
Not yet measured on the Xeon.

Needs the Fashion-MNIST files (`bash setup.sh --data`).

Run:  .venv/bin/python benchmarks/train_options.py [--rounds 3] [--samples 3200] [--threads N]
                                                  [--variants fp32,fp32_unfused,...,bf16_compile]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from src.core import data, engine, errors, models, paths  # noqa: E402
from src.core.checkpoints import model_args  # noqa: E402
from src.core.params import TrainParams  # noqa: E402

DEFAULT = ("fp32", "fp32_unfused", "fp32_nchw", "fp32_batch128", "fp32_flush_denormal",
           "bf16", "bf16_bn_fp32", "eval_256", "eval_2048")
VARIANTS = DEFAULT + ("bf16_compile",)


class FP32BatchNorm(nn.Module):
    """A BatchNorm run in fp32 whatever autocast says (its input cast up, its output left fp32)."""

    def __init__(self, norm: nn.Module):
        super().__init__()
        self.norm = norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cpu", enabled=False):
            return self.norm(x.float())


def fp32_batchnorm(model: nn.Module) -> nn.Module:
    for stack in model.modules():
        if isinstance(stack, nn.Sequential):
            for i, layer in enumerate(stack):
                if isinstance(layer, nn.BatchNorm2d):
                    stack[i] = FP32BatchNorm(layer)
    return model


def build(name: str) -> tuple[nn.Module, torch.optim.Optimizer, object, TrainParams]:
    cfg = TrainParams(precision="bf16" if name.startswith("bf16") else "fp32",
                      batch_size=128 if name == "fp32_batch128" else 64)
    model = models.build("cnn", **model_args(cfg))
    if name != "fp32_nchw":
        model = model.to(memory_format=torch.channels_last)
    if name == "bf16_bn_fp32":
        model = fp32_batchnorm(model)
    optimizer = (torch.optim.Adam(model.parameters(), lr=cfg.lr) if name == "fp32_unfused"
                 else engine.make_optimizer(model, cfg))
    if name == "bf16_compile":
        model = torch.compile(model)
    return model, optimizer, engine.make_schedule(optimizer, cfg, 1), cfg


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--samples", type=int, default=3200, help="training samples per timing")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--variants", default=",".join(DEFAULT),
                        help=f"comma-separated, from {', '.join(VARIANTS)} (default: all but "
                             "bf16_compile)")
    args = parser.parse_args()
    chosen = [v for v in args.variants.split(",") if v]
    unknown = sorted(set(chosen) - set(VARIANTS))
    if unknown:
        parser.error(f"--variants: unknown {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    if args.rounds < 1 or args.samples < 128 or args.threads < 1:
        parser.error("--rounds and --threads must be at least 1, --samples at least 128")
    torch.set_num_threads(args.threads)
    arrays = data.load(data.locate(paths.RAW))
    images = arrays["train_images"][:max(args.samples * 4, 12_800)]
    x = engine.to_tensor(images, float(images.mean() / 255), float(images.std() / 255))
    y = torch.as_tensor(arrays["train_labels"][:len(images)].astype(np.int64))
    torch.manual_seed(0)
    built = {name: build(name) for name in chosen if not name.startswith("eval_")}
    generator = torch.Generator().manual_seed(0)
    eval_model = models.build("cnn", **model_args(TrainParams())).eval()

    def train(name: str) -> int:
        model, optimizer, schedule, cfg = built[name]
        start = int(torch.randint(0, len(x) - args.samples, (1,), generator=generator))
        flush = name == "fp32_flush_denormal"
        if flush:
            torch.set_flush_denormal(True)
        try:
            engine.train_epoch(model, x[start:start + args.samples], y[start:start + args.samples],
                               optimizer, schedule, cfg, generator)
        finally:
            if flush:
                torch.set_flush_denormal(False)
        return args.samples

    def predict(batch: int) -> int:
        engine.EVAL_BATCH, saved = batch, engine.EVAL_BATCH  # predict reads the module's constant
        try:
            engine.predict(eval_model, x[:args.samples])
        finally:
            engine.EVAL_BATCH = saved
        return args.samples

    runs = {name: (lambda name=name: predict(int(name.split("_")[1])) if name.startswith("eval_")
                   else train(name)) for name in chosen}
    rates: dict[str, list[float]] = {name: [] for name in runs}
    for round_ in range(args.rounds + 1):  # round 0 warms up (and compiles)
        for name, run in runs.items():
            t0 = time.perf_counter()
            seen = run()
            if round_:
                rates[name].append(seen / (time.perf_counter() - t0))
            elif name == "bf16_compile":
                print(f"bf16_compile.first_pass_seconds={time.perf_counter() - t0:.1f}")
    print(f"threads={args.threads}")
    print(f"rounds={args.rounds}")
    print(f"samples_per_timing={args.samples}")
    medians = {name: statistics.median(values) for name, values in rates.items()}
    for name, rate in medians.items():
        print(f"{name}.samples_per_s={rate:.0f}")
        base = "eval_256" if name.startswith("eval_") else ("bf16" if name.startswith("bf16") else "fp32")
        if base in medians and base != name:
            print(f"{name}.vs_{base}={rate / medians[base]:.2f}")


if __name__ == "__main__":
    errors.run(main)
