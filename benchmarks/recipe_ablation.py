"""Benchmark (not a test): which accuracy options pay at a 2-epoch budget on all 60,000 images.

One split of the 60,000 training images (a seeded permutation: 48,000 to train, 12,000 to
validate), the reference CNN, 2 epochs, model seed 0; each variant is the defaults plus a few
`train.*` overrides (one-cycle LR, label smoothing, weight EMA, flip augmentation, flip TTA). Prints
one `name=value` per line: validation accuracy after each epoch, test accuracy (the 10,000 test
images), training seconds, and the gain over `base` in validation points. Variants run in
``--jobs`` processes of one thread each, as a 2-worker sweep trains.

It is a screen, not a result: one split and one seed, so differences under ~0.5 points
(the standard error of a 12,000-image accuracy is ~0.27 points) are noise. The `recipe` sweep
(sweeps.yaml) then measures the chosen configuration over 5 folds x 3 seeds.

Run:  .venv/bin/python benchmarks/recipe_ablation.py [--jobs 2] [--epochs 2]
                                                    [--variants base,onecycle,...]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ONECYCLE = {"schedule": "onecycle", "lr": 0.003}
VARIANTS = {
    "base": {},
    "onecycle": ONECYCLE,
    "cosine": {"schedule": "cosine", "lr": 0.003},
    "label_smoothing": {"label_smoothing": 0.1},
    "ema": {"ema": 0.995},
    "tta": {"tta_hflip": True},  # flip TTA on a model never trained on flips
    "onecycle_ema": ONECYCLE | {"ema": 0.995},
    "onecycle_ema_0.99": ONECYCLE | {"ema": 0.99},
    "onecycle_hflip": ONECYCLE | {"hflip": True},
    "onecycle_ls_ema": ONECYCLE | {"label_smoothing": 0.1, "ema": 0.995},
    "onecycle_ls_ema_tta": ONECYCLE | {"label_smoothing": 0.1, "ema": 0.995, "tta_hflip": True},
    "onecycle_ema_hflip_tta": ONECYCLE | {"ema": 0.995, "hflip": True, "tta_hflip": True},
    "onecycle_ls_ema_hflip_tta": ONECYCLE | {"label_smoothing": 0.1, "ema": 0.995, "hflip": True,
                                             "tta_hflip": True},
    "onecycle_0.005_ls_ema": {"schedule": "onecycle", "lr": 0.005, "label_smoothing": 0.1,
                              "ema": 0.995},
}
N_VAL = 12_000


def run_variant(name: str, epochs: int) -> dict:
    """Train one variant in this process (one thread) and return its measurements."""
    import numpy as np
    import torch

    from src.core import data, engine, models, paths
    from src.core.checkpoints import model_args
    from src.core.params import TrainParams

    torch.set_num_threads(1)
    raw = data.load(data.locate(ROOT / paths.RAW))
    images, labels = raw["train_images"], raw["train_labels"]
    mean, std = images.mean() / 255, images.std() / 255
    order = np.random.default_rng(0).permutation(len(images))
    val, train = order[:N_VAL], order[N_VAL:]
    x = engine.to_tensor(images, mean, std)
    y = torch.as_tensor(labels.astype(np.int64))
    x_test = engine.to_tensor(raw["test_images"], mean, std)
    y_test = torch.as_tensor(raw["test_labels"].astype(np.int64))
    cfg = TrainParams.from_dict({"epochs": epochs, **VARIANTS[name]})
    torch.manual_seed(0)
    model = models.build(cfg.model, **model_args(cfg))
    start = time.perf_counter()
    result = engine.fit(model, x[train], y[train], x[val], y[val], cfg, seed=0)
    seconds = time.perf_counter() - start
    test = engine.loss_and_accuracy(engine.predict(model, x_test, cfg.precision, cfg.tta_hflip),
                                    y_test)[1]
    return {"val_acc": [row["val_acc"] for row in result.history], "test_acc": test,
            "seconds": seconds}


def in_subprocess(name: str, epochs: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--one", name, "--epochs", str(epochs)],
                         capture_output=True, text=True, cwd=ROOT)
    if out.returncode:
        raise RuntimeError(f"variant {name} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2, help="variants trained at once (default 2)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help=f"comma-separated, from: {', '.join(VARIANTS)}")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: train one variant, print JSON
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_variant(args.one, args.epochs)))
        return 0
    names = [n for n in args.variants.split(",") if n]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown or not names:
        parser.error(f"--variants: unknown {unknown or '(none given)'}; allowed: {', '.join(VARIANTS)}")
    if args.jobs < 1 or args.epochs < 1:
        parser.error("--jobs and --epochs must be at least 1")
    with ThreadPoolExecutor(args.jobs) as pool:
        results = dict(zip(names, pool.map(lambda n: in_subprocess(n, args.epochs), names)))
    base = results.get("base")
    for name, r in results.items():
        print(f"{name}.overrides={json.dumps(VARIANTS[name], sort_keys=True)}")
        for epoch, acc in enumerate(r["val_acc"], 1):
            print(f"{name}.val_acc_epoch{epoch}={acc:.4f}")
        print(f"{name}.test_acc={r['test_acc']:.4f}")
        print(f"{name}.seconds={r['seconds']:.1f}")
        if base is not None:
            print(f"{name}.val_gain_points={100 * (r['val_acc'][-1] - base['val_acc'][-1]):+.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
