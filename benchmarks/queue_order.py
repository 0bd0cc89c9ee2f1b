"""Benchmark (not a test): what queueing a sweep longest first saves, replayed on a real sweep.

Reads the MLflow parent runs of a sweep that has run (`python -m src.sweep run NAME ...`), takes
each configuration's mean measured run time (train start to evaluate's end; DVC's workspace copy
and the plot stage, ~10-30 s per experiment whatever the order, are not in it), and replays the
sweep on N workers that each take the next queued experiment when free (as DVC's queue workers
do): once in the sweep's own order (configurations as sweeps.yaml lists them, seeds inside), once
longest first (src/experiments/sweep_spec.py: `longest_first`, what `sweep run` queues now). Prints one
`name=value` per line: the makespan of each order, the workers' idle share, and the ratio.

Run:  .venv/bin/python benchmarks/queue_order.py pooling [--seeds 3] [--jobs 2]
"""

from __future__ import annotations

import argparse
import heapq
import statistics
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from src.core import errors  # noqa: E402
from src.experiments import sweep_spec  # noqa: E402
from src.tracking import store  # noqa: E402


def makespan(durations: list[float], workers: int) -> float:
    """Finish time of the last experiment when each worker takes the next one as it frees up."""
    free = [0.0] * workers
    for duration in durations:
        heapq.heappush(free, heapq.heappop(free) + duration)
    return max(free)


def measured_seconds(sweep_name: str) -> dict[str, float]:
    """Mean run time in seconds per configuration label, from the sweep's MLflow parent runs."""
    from mlflow.tracking import MlflowClient
    client = MlflowClient(store.tracking_uri())
    runs = client.search_runs(
        [e.experiment_id for e in client.search_experiments()],
        filter_string=f"tags.sweep = '{sweep_name}' and attributes.status = 'FINISHED'",
        max_results=5000)
    seconds = defaultdict(list)
    for run in runs:
        tags = run.data.tags  # the study of the sweep logs a run too, without a config
        if "mlflow.parentRunId" not in tags and "sweep.config" in tags and run.info.end_time:
            seconds[tags["sweep.config"]].append(
                (run.info.end_time - run.info.start_time) / 1000)
    return {config: statistics.mean(values) for config, values in seconds.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    base, loaded = sweep_spec.load_sweeps([args.sweep])
    uri = store.tracking_uri()
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).exists():
        raise errors.TunelabError(f"no MLflow store at {uri}: run the sweep first "
                                  f"(`python -m src.sweep run {args.sweep} --seeds {args.seeds} "
                                  f"--jobs {args.jobs}`)")
    sweep = loaded[args.sweep]
    in_sweep_order = sweep_spec.expand(sweep, args.seeds, base)
    seconds = measured_seconds(args.sweep)
    missing = sorted({e.config for e in in_sweep_order} - set(seconds))
    if missing:
        raise errors.TunelabError(f"no finished MLflow run of {args.sweep} for configuration(s) "
                                  f"{', '.join(missing)}: run the sweep first")
    total = sum(seconds[e.config] for e in in_sweep_order)
    print(f"sweep={args.sweep}")
    print(f"experiments={len(in_sweep_order)}")
    print(f"workers={args.jobs}")
    for config in sorted(seconds, key=seconds.get, reverse=True):
        print(f"run_seconds[{config}]={seconds[config]:.0f}")
    spans = {}
    for name, order in (("sweep_order", in_sweep_order),
                        ("longest_first", sweep_spec.longest_first(in_sweep_order, base))):
        spans[name] = makespan([seconds[e.config] for e in order], args.jobs)
        print(f"{name}.makespan_s={spans[name]:.0f}")
        print(f"{name}.idle_share={1 - total / (args.jobs * spans[name]):.3f}")
    print(f"speedup={spans['sweep_order'] / spans['longest_first']:.3f}")


if __name__ == "__main__":
    errors.run(main)
