"""Benchmark (not a test): how long a fresh interpreter takes to import each stage module.

Every DVC stage is its own process, so a stage pays its imports (torch, pandas, matplotlib, MLflow,
...) once per experiment. This starts ``python -c "import MODULE"`` ``--rounds`` times per module,
interleaved, from the repository root with this interpreter, and prints one `name=value` per line:
the median and the minimum wall seconds per module. Importing has no side effects: nothing runs
at import time in tunelab (STYLE.md lesson 2).

Measured with it (2026-11-30, the idle 2-core Zen 3, then with `/usr/bin/time -f %e .venv/bin/python
-c "import src.evaluate"`, one round): `import src.evaluate` 4.5 s before it stopped importing
scipy.stats and statsmodels, 2.5 s after (docs/performance.md). Not yet measured on the Xeon.

Run:  .venv/bin/python benchmarks/import_time.py [--rounds 3] [src.evaluate src.train src.plot ...]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from src.core import errors  # noqa: E402

STAGES = ("src.prepare", "src.train", "src.evaluate", "src.plot")


def import_seconds(module: str) -> float:
    """Wall seconds of one fresh interpreter importing ``module``."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", f"import {module}"], cwd=ROOT,
                          capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode:
        last = (done.stderr.strip().splitlines() or ["?"])[-1]
        raise errors.TunelabError(f"import {module} failed: {last}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", default=list(STAGES),
                        help=f"modules to import (default: {' '.join(STAGES)})")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    times: dict[str, list[float]] = {m: [] for m in args.modules}
    for _ in range(args.rounds):  # interleaved: drift in the machine's speed hits every module alike
        for module in args.modules:
            times[module].append(import_seconds(module))
    print(f"rounds={args.rounds}")
    for module, values in times.items():
        print(f"{module}.import_seconds_median={statistics.median(values):.2f}")
        print(f"{module}.import_seconds_min={min(values):.2f}")


if __name__ == "__main__":
    errors.run(main)
