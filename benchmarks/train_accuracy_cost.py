"""Benchmark (not a test): what the final train accuracy of one fold model costs, measured on the
whole training fold vs on the fixed sample of `engine.TRAIN_ACC_SAMPLE` images that `fit` uses.

Times `engine.predict` of the reference CNN on --images random images and on the sample, plain and
with flip TTA, one thread (as a sweep worker runs); prints the minimum over --rounds, one
`name=value` per line.

Run:  .venv/bin/python benchmarks/train_accuracy_cost.py [--images 48000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from src import engine, models  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=48_000, help="training fold size (default 48000)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if args.images < 1 or args.rounds < 1:
        parser.error("--images and --rounds must be at least 1")
    torch.set_num_threads(1)
    model = models.build("cnn", conv_channels=(32, 64), hidden_units=(128,))
    model = model.to(memory_format=torch.channels_last)
    x = torch.randn(args.images, 1, 28, 28).contiguous(memory_format=torch.channels_last)
    sample = engine.train_sample(args.images, 0, engine.TRAIN_ACC_SAMPLE)
    inputs = {"whole": x, "sample": x[sample]}
    print(f"images={args.images}")
    print(f"sample={len(inputs['sample'])}")
    for tta in (False, True):
        for name, xs in inputs.items():
            times = []
            for _ in range(args.rounds):
                start = time.perf_counter()
                engine.predict(model, xs, "fp32", tta)
                times.append(time.perf_counter() - start)
            print(f"{name}{'_tta' if tta else ''}.seconds={min(times):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
