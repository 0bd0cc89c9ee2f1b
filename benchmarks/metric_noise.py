"""Benchmark (not a test): how noisy each metric a study could decide on is, from a study's
experiments.csv: CV accuracy (each fold model on its own 2,000 held-out images at the defaults),
selection accuracy (every fold model on the same prepare.selection_size images the training subset
leaves out) and test accuracy (every fold model on the test set; it never decides).

For each configuration: the sd over seeds of each metric. For each configuration against the
baseline (the sweep's, from sweeps.yaml): the mean and the sd over the shared seeds of the paired
difference (candidate - baseline, same seed). A study's paired t-test, its interval and the seeds
it needs all scale with that sd, so the metric with the smaller paired sd decides with fewer seeds.

Measured with it: docs/studies.md, "The selection set" (the metric_noise sweep, 5 seeds).

Run:  .venv/bin/python benchmarks/metric_noise.py reports/study/metric_noise/experiments.csv
Prints name=value lines, accuracies in points (x 100).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from src.core.status import usable  # noqa: E402
from src.experiments import sweep_spec  # noqa: E402

METRICS = ("cv_accuracy", "selection_accuracy", "test_accuracy")


def noise(frame: pd.DataFrame, baseline: str) -> dict[str, float]:
    """Per configuration the seed sd of each metric; per candidate the mean and sd over the shared
    seeds of its paired difference with ``baseline``; all in accuracy points."""
    ok = usable(frame)
    wide = ok.pivot_table(index="seed", columns="config", values=list(METRICS))
    out: dict[str, float] = {}
    for config in sorted(ok["config"].unique()):
        out[f"{config}.n"] = int(wide[METRICS[0]][config].notna().sum())
        for metric in METRICS:
            out[f"{config}.{metric}.seed_sd"] = 100 * float(wide[metric][config].std(ddof=1))
    for config in sorted(set(ok["config"]) - {baseline}):
        for metric in METRICS:
            diff = (wide[metric][config] - wide[metric][baseline]).dropna()
            out[f"{config}-vs-{baseline}.{metric}.n"] = len(diff)
            out[f"{config}-vs-{baseline}.{metric}.diff_mean"] = 100 * float(diff.mean())
            out[f"{config}-vs-{baseline}.{metric}.paired_sd"] = 100 * float(diff.std(ddof=1))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiments", type=Path, help="a sweep study's experiments.csv")
    args = parser.parse_args()
    frame = pd.read_csv(args.experiments)
    missing = [m for m in METRICS if m not in frame]
    if missing:
        sys.exit(f"{args.experiments} has no {', '.join(missing)} column: its experiments ran "
                 "before the selection set existed")
    name = frame["sweep"].iloc[0]
    _, sweeps = sweep_spec.load_sweeps([name])
    for key, value in noise(frame, sweeps[name].baseline_label).items():
        print(f"{key}={value:.4f}" if isinstance(value, float) and not np.isnan(value) else
              f"{key}={value}")


if __name__ == "__main__":
    main()
