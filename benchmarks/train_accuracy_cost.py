"""Benchmark (not a test): what the final train accuracy of one fold model costs, measured on the
whole training fold vs on the fixed sample that `fit` uses (as many images as the validation fold,
at most `engine.TRAIN_ACC_SAMPLE`).

Times `engine.predict` of the reference CNN on --images random images and on the sample, plain and
with flip TTA, one thread (as a sweep worker runs); prints the minimum over --rounds, one
`name=value` per line. --folds sets the validation fold's size (images / (folds - 1)): 5 folds of
60,000 images give 48,000 to train on and 12,000 to validate (sample 10,000); the defaults' 10,000
give 8,000 and 2,000 (`--images 8000`, sample 2,000).

Run:  .venv/bin/python benchmarks/train_accuracy_cost.py [--images 48000] [--folds 5] [--rounds 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from src.core import engine, models  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=48_000, help="training fold size (default 48000)")
    parser.add_argument("--folds", type=int, default=5, help="CV folds (default 5)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if args.images < 1 or args.rounds < 1:
        parser.error("--images and --rounds must be at least 1")
    if args.folds < 2:
        parser.error("--folds must be at least 2")
    torch.set_num_threads(1)
    model = models.build("cnn", conv_channels=(32, 64), hidden_units=(128,))
    model = model.to(memory_format=torch.channels_last)
    x = torch.randn(args.images, 1, 28, 28).contiguous(memory_format=torch.channels_last)
    val_images = args.images // (args.folds - 1)
    sample = engine.train_sample(args.images, 0, engine.train_sample_size(val_images))
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
