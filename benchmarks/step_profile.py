"""Benchmark (not a test): where one training step and one prediction pass of the reference CNN
spend their time, by torch.profiler, grouped by kind of operation.

Training: ``--steps`` steps of `engine.train_epoch`'s loop body (autocast as ``--precision``, the
fp32 loss, fused Adam, channels_last) on random batches of ``--batch`` images, after 10 warm-up
steps. Prediction: ``--images`` random images in batches of `engine.EVAL_BATCH` under
`inference_mode`, with the model's BatchNorm folded into the convolutions (what `engine.predict`
runs) and without (what it ran before). The input's values do not matter to these timings, so
the images are random (no dataset needed). Prints one `name=value` per line: the milliseconds per
step or pass, and each group's share of the operators' self time (BatchNorm, max-pool,
convolution, ReLU, dtype casts, Adam, linear layers, other).

Measured with torch.profiler (2026-11-22, the 2-core Zen 5 with AVX-512 BF16, an earlier
session's machine, as an inline script of which this is the kept form): one bf16 step of batch 64
took 12.5 ms, BatchNorm forward + backward 24%, max-pool 18%, convolutions 18%, ReLU 10%, dtype
casts 7%, Adam 6%, linear layers 5%. On the 2-core Zen 3 (2026-11-30, one thread), the BatchNorm
pass took a third of the reference CNN's prediction time before it was folded
(docs/performance.md). Not yet measured on the Xeon.

Run:  .venv/bin/python benchmarks/step_profile.py [--precision bf16|fp32] [--batch 64]
                                                 [--steps 20] [--images 2560] [--threads N]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from src.core import engine, models  # noqa: E402
from src.core.checkpoints import model_args  # noqa: E402
from src.core.params import TrainParams  # noqa: E402

# Operator name fragments -> group, first match wins (self time: autograd wrappers count ~0).
GROUPS = (
    ("batchnorm", ("batch_norm",)),
    ("maxpool", ("max_pool",)),
    ("convolution", ("convolution", "conv2d", "mkldnn_conv")),
    ("relu", ("relu", "threshold")),
    ("casts", ("aten::to", "_to_copy", "aten::copy_")),
    ("adam", ("adam",)),
    ("linear", ("addmm", "aten::mm", "linear", "matmul")),
)


def group_of(name: str) -> str:
    lowered = name.lower()
    for group, fragments in GROUPS:
        if any(fragment in lowered for fragment in fragments):
            return group
    return "other"


def shares(prof) -> dict[str, float]:
    """Each group's share of the operators' self CPU time."""
    totals: dict[str, float] = {}
    for event in prof.key_averages():
        totals[group_of(event.key)] = totals.get(group_of(event.key), 0.0) + event.self_cpu_time_total
    whole = sum(totals.values()) or 1.0
    return {group: totals.get(group, 0.0) / whole for group, _ in GROUPS + (("other", ()),)}


def print_shares(prefix: str, prof) -> None:
    for group, share in shares(prof).items():
        print(f"{prefix}.{group}_share={share:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="bf16")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--images", type=int, default=2560, help="images per prediction pass")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    if min(args.batch, args.steps, args.images, args.threads) < 1:
        parser.error("--batch, --steps, --images and --threads must be at least 1")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = TrainParams(precision=args.precision, batch_size=args.batch)
    model = models.build("cnn", **model_args(cfg)).to(memory_format=torch.channels_last)
    optimizer = engine.make_optimizer(model, cfg)
    x = torch.randn(args.batch, 1, 28, 28).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (args.batch,))

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.precision == "bf16"):
            logits = model(x)
        loss = F.cross_entropy(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    model.train()
    for _ in range(10):  # warm-up: oneDNN picks its kernels, the allocator settles
        step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        for _ in range(args.steps):
            step()
        seconds = time.perf_counter() - start
    print(f"threads={args.threads}")
    print(f"train.precision={args.precision}")
    print(f"train.batch={args.batch}")
    print(f"train.ms_per_step_profiled={1000 * seconds / args.steps:.1f}")
    print_shares("train", prof)

    images = torch.randn(args.images, 1, 28, 28).contiguous(memory_format=torch.channels_last)
    nets = {"unfolded": model.eval(), "folded": models.fold_batchnorm(model)}
    for name, net in nets.items():
        net = net.to(memory_format=torch.channels_last)

        @torch.inference_mode()
        def predict(net=net) -> None:
            for i in range(0, len(images), engine.EVAL_BATCH):
                net(images[i:i + engine.EVAL_BATCH])

        predict()  # warm-up
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            start = time.perf_counter()
            predict()
            seconds = time.perf_counter() - start
        print(f"predict.{name}.ms_per_pass_profiled={1000 * seconds:.1f}")
        print_shares(f"predict.{name}", prof)


if __name__ == "__main__":
    main()
