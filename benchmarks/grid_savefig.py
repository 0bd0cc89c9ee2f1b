"""Benchmark (not a test): saving the misclassified-images grid, laid out by hand vs by matplotlib's
constrained layout.

Since commit fc1279b the `plot` stage's grid of misclassified test images
(`src.core.figures.misclassified_grid`) places its axes by hand in inches; before, matplotlib's
constrained layout placed them. This loads the old builder from git (``git show
fc1279b~1:src/figures.py``, a module that needs only numpy, pandas and matplotlib) and times, in
``--rounds`` interleaved rounds, building and saving (``savefig`` to memory, PNG, dpi 100) a grid
of ``--images`` of 200 random 28x28 images with random labels, with each builder. Prints one
`name=value` per line: seconds per round for each, and the median ratio.

Measured with the same computation as an inline script (2026-11-30, the idle 2-core Zen 3, 36
images, 3 rounds): 1.1-1.25 s with the constrained layout, 0.65-0.77 s by hand, the same picture
(docs/performance.md). Not yet measured on the Xeon.

Needs git and this repository's history (commit fc1279b).

Run:  .venv/bin/python benchmarks/grid_savefig.py [--rounds 3] [--images 36]
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from src.core import errors, figures  # noqa: E402
from src.core.data import CLASS_NAMES  # noqa: E402

OLD = "fc1279b~1:src/figures.py"  # the builders before the grid was laid out by hand


def old_figures(folder: Path):
    """The figures module as it was before fc1279b, loaded from git under the name ``old``."""
    done = subprocess.run(["git", "show", OLD], cwd=ROOT, capture_output=True, text=True)
    if done.returncode:
        raise errors.TunelabError(f"`git show {OLD}` failed (a clone without that history?): "
                                  f"{done.stderr.strip()}")
    path = folder / "figures_old.py"
    path.write_text(done.stdout)
    spec = importlib.util.spec_from_file_location("old", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def save_seconds(builder, x, actual, predicted, n: int) -> float:
    start = time.perf_counter()
    builder(x, actual, predicted, n, "fold 0").savefig(io.BytesIO(), format="png", dpi=100)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--images", type=int, default=36, help="misclassified images shown")
    args = parser.parse_args()
    if args.rounds < 1 or not 1 <= args.images <= 100:
        parser.error("--rounds must be at least 1 and --images in 1..100")
    rng = np.random.default_rng(0)
    names = np.array(CLASS_NAMES)
    x = rng.integers(0, 255, (200, 28, 28), dtype=np.uint8)
    actual, predicted = names[rng.integers(0, 10, 200)], names[rng.integers(0, 10, 200)]
    with tempfile.TemporaryDirectory() as folder:
        old = old_figures(Path(folder))
        builders = {"constrained_layout": old.misclassified_grid, "by_hand": figures.misclassified_grid}
        seconds: dict[str, list[float]] = {name: [] for name in builders}
        for _ in range(args.rounds):
            for name, builder in builders.items():
                seconds[name].append(save_seconds(builder, x, actual, predicted, args.images))
    print(f"rounds={args.rounds}")
    print(f"images={args.images}")
    for name, values in seconds.items():
        print(f"{name}.seconds={','.join(f'{v:.2f}' for v in values)}")
    ratios = [a / b for a, b in zip(seconds["constrained_layout"], seconds["by_hand"])]
    print(f"speedup_median={statistics.median(ratios):.2f}")


if __name__ == "__main__":
    errors.run(main)
