"""Benchmark (not a test): where the `evaluate` stage's time goes, by cProfile, on one thread.

Runs ``python -m cProfile -o PROFILE -m src.evaluate`` with $TUNELAB_THREADS=1 (as each worker of a
2-worker sweep runs it) in a scratch directory that links this repository's `src/`, `params.yaml`,
`data/prepared/` and `models/`, so the stage's outputs go to the scratch directory and the
workspace's `reports/evaluate/` is left alone. Prints one `name=value` per line: the profiled
seconds in all, the cumulative seconds of importing each of ``--modules`` (the `<module>` entry of
its `__init__.py`; absent if the stage did not import it), then the ``--top`` entries by
cumulative time (pstats' `-s cumulative` listing).

Measured with the plain command `TUNELAB_THREADS=1 .venv/bin/python -m cProfile -s cumulative -m
src.evaluate` (2026-11-30, the idle 2-core Zen 3, the defaults): 12.6 s, 2 s of it importing
scipy.stats and statsmodels, which `evaluate` no longer imports (docs/performance.md). Not yet
measured on the Xeon.

Needs the outputs of `dvc repro` (data/prepared/fashion_mnist.npz and models/fold_*.pt); it
refuses to run, exit 2, without them.

Run:  .venv/bin/python benchmarks/evaluate_profile.py [--top 25] [--modules scipy.stats statsmodels]
"""

from __future__ import annotations

import argparse
import os
import pstats
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from src.core import errors, paths  # noqa: E402

MODULES = ("torch", "pandas", "scipy.stats", "statsmodels", "mlflow", "dvclive", "matplotlib")


def import_seconds(stats: pstats.Stats, module: str) -> float | None:
    """Cumulative seconds of running ``module``'s ``__init__.py`` (its import, submodules included)."""
    suffix = os.path.join(*module.split("."), "__init__.py")
    found = [cumulative for (filename, _, function), (_, _, _, cumulative, _) in stats.stats.items()
             if function == "<module>" and filename.endswith(suffix)]
    return max(found) if found else None


def scratch_copy(folder: Path) -> None:
    """Links of what `evaluate` reads, so that what it writes stays in ``folder``."""
    for item in ("src", "params.yaml", "models", str(paths.PREPARED.parent)):
        target = folder / item
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(ROOT / item)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--top", type=int, default=25, help="entries of the cumulative listing")
    parser.add_argument("--modules", nargs="*", default=list(MODULES),
                        help=f"modules whose import time to report (default: {' '.join(MODULES)})")
    args = parser.parse_args()
    if not (ROOT / paths.PREPARED).exists() or not list((ROOT / paths.MODELS).glob("fold_*.pt")):
        raise errors.TunelabError(f"{paths.PREPARED} or {paths.MODELS}/fold_*.pt missing: run "
                                  f"`dvc repro` (or `dvc pull`) first")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        scratch_copy(folder)
        profile = folder / "evaluate.prof"
        env = {**os.environ, "TUNELAB_THREADS": "1"}
        env.pop("DVC_ROOT", None)  # the scratch directory is the root the stage writes under
        done = subprocess.run([sys.executable, "-m", "cProfile", "-o", str(profile), "-m",
                               "src.evaluate"], cwd=folder, env=env, capture_output=True, text=True)
        if done.returncode:
            raise errors.TunelabError(f"src.evaluate failed: {done.stderr.strip()[-2000:]}")
        stats = pstats.Stats(str(profile))
    print(f"profiled_seconds={stats.total_tt:.2f}")
    for module in args.modules:
        seconds = import_seconds(stats, module)
        print(f"import.{module}=" + ("not imported" if seconds is None else f"{seconds:.2f}"))
    stats.sort_stats("cumulative").print_stats(args.top)


if __name__ == "__main__":
    errors.run(main)
