"""Benchmark (not a test): inference speed of the reference CNN, BatchNorm folded or not.

`engine.predict` runs an eval-mode copy of the model with each BatchNorm folded into the
convolution before it (`models.fold_batchnorm`). This times, interleaved round by round in one
process, predicting the first ``--images`` Fashion-MNIST training images in batches of
`engine.EVAL_BATCH` under `torch.inference_mode`:
  (a) unfolded : the model itself in eval mode (what `predict` did before);
  (b) folded   : `engine.predict`.
The model is trained for ``--steps`` batches first, so its BatchNorm statistics are real ones.
Prints one `name=value` per line: images/s (median over rounds), the speed-up, and the largest
difference between the two models' logits and predicted classes.

Run:  .venv/bin/python benchmarks/inference_speed.py [--rounds 5] [--images 10000] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from src.core import data, engine, models, paths  # noqa: E402
from src.core.checkpoints import model_args  # noqa: E402
from src.core.params import TrainParams  # noqa: E402


@torch.inference_mode()
def unfolded(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    model.eval()
    return torch.cat([model(x[i:i + engine.EVAL_BATCH]) for i in range(0, len(x), engine.EVAL_BATCH)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--steps", type=int, default=200, help="training batches before timing")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    arrays = data.load(data.locate(paths.RAW))
    images, labels = arrays["train_images"], arrays["train_labels"]
    x = engine.to_tensor(images, float(images.mean() / 255), float(images.std() / 255))
    y = torch.from_numpy(labels.astype("int64"))
    cfg = TrainParams(epochs=1)
    torch.manual_seed(0)
    model = models.build("cnn", **model_args(cfg)).to(memory_format=torch.channels_last)
    n = args.steps * cfg.batch_size
    optimizer = engine.make_optimizer(model, cfg)
    engine.train_epoch(model, x[-n:], y[-n:], optimizer, engine.make_schedule(optimizer, cfg, args.steps),
                       cfg, torch.Generator().manual_seed(0))
    x_eval = x[:args.images]

    runs = {"unfolded": lambda: unfolded(model, x_eval), "folded": lambda: engine.predict(model, x_eval)}
    rates: dict[str, list[float]] = {name: [] for name in runs}
    for round_ in range(args.rounds + 1):  # round 0 warms up (allocator, oneDNN kernels)
        for name, run in runs.items():
            t0 = time.perf_counter()
            run()
            if round_:
                rates[name].append(len(x_eval) / (time.perf_counter() - t0))
    reference, folded = runs["unfolded"](), runs["folded"]()

    print(f"machine_threads={args.threads}")
    print(f"rounds={args.rounds}")
    print(f"images_per_timing={len(x_eval)}")
    for name, values in rates.items():
        print(f"{name}.images_per_s={statistics.median(values):.0f}")
        print(f"{name}.spread_min_max={min(values):.0f}-{max(values):.0f}")
    print(f"folded.speedup={statistics.median(rates['folded']) / statistics.median(rates['unfolded']):.2f}")
    print(f"max_abs_logit_difference={(folded - reference).abs().max().item():.2e}")
    print(f"predicted_class_differences={int((folded.argmax(1) != reference.argmax(1)).sum())}")


if __name__ == "__main__":
    main()
