"""Benchmark (not a test): where a finished sweep's time went, per experiment, from its MLflow runs.

Reads the sweep's record (`.tunelab/sweeps/NAME.json`, written by `python -m src.sweep run NAME`:
its start is `finished` - `wall_seconds`, and its worker count) and the MLflow parent runs it
opened (one per experiment that trained; each fold a child run with an epoch-by-epoch `seconds`
metric). Prints one `name=value` per line, in seconds:

- `start_to_first_run`: from `sweep run`'s start (before queueing) to the first parent run;
- `fold_beyond_epochs_mean`: per experiment, the fold runs' time outside their epochs (model set-up,
  the first optimizer's imports, the final train accuracy, checkpoints, per-fold tracking);
- `last_fold_to_end_mean`: per experiment, from the last fold's end to the parent run's end
  (`train`'s wrap-up, `evaluate`, and `plot`, which closes the parent run);
- `between_mean`: from one experiment's end to the next one's start on the same worker (DVC's
  commit, the next workspace, `train`'s imports and MLflow set-up). Computed as the sums of the
  later starts minus the earlier ends, which does not depend on which worker ran which experiment.

An earlier run of the same sweep: keep its record aside before the next run replaces it, then
``--record COPY --until TIME`` (ISO 8601: only parent runs started before TIME, i.e. before the
next run began). The 2026-11-30 10:27 column of docs/performance.md was computed that way.

Run:  .venv/bin/python benchmarks/sweep_timeline.py dropout
      .venv/bin/python benchmarks/sweep_timeline.py dropout --record /tmp/dropout-1027.json \
          --until 2026-11-30T13:00:00+00:00
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from src.core import errors, naming, paths  # noqa: E402
from src.tracking import store  # noqa: E402


@dataclass(frozen=True)
class Run:
    start: float  # seconds since the epoch
    end: float
    folds: tuple[tuple[float, float, float], ...]  # (start, end, seconds in epochs) per fold


def timeline(runs: list[Run], started: float, workers: int) -> dict[str, float]:
    """The figures the module docstring lists, from a sweep's parent runs."""
    runs = sorted(runs, key=lambda r: r.start)
    ends = sorted(r.end for r in runs)
    later_starts = [r.start for r in runs][workers:]  # each worker's first experiment has none
    figures = {
        "experiments": len(runs),
        "start_to_first_run": runs[0].start - started,
        "fold_beyond_epochs_mean": statistics.mean(
            sum(end - start - epochs for start, end, epochs in r.folds) for r in runs),
        "last_fold_to_end_mean": statistics.mean(r.end - max(f[1] for f in r.folds) for r in runs),
    }
    if later_starts:  # the last `workers` ends are each worker's last experiment
        figures["between_mean"] = (sum(later_starts) - sum(ends[:len(later_starts)])) / len(later_starts)
    return figures


def sweep_runs(name: str, since: float, until: float = float("inf")) -> list[Run]:
    """The parent runs of sweep ``name`` started since ``since`` (and before ``until``), with their
    fold runs."""
    from mlflow.tracking import MlflowClient
    client = MlflowClient(store.tracking_uri())
    experiment = client.get_experiment_by_name(store.EXPERIMENT)
    if experiment is None:
        return []
    found = client.search_runs([experiment.experiment_id], max_results=50_000,
                               filter_string=f"attributes.start_time >= {int(since * 1000)}")
    children: dict[str, list] = {}
    for run in found:
        parent = run.data.tags.get("mlflow.parentRunId")
        if parent:
            children.setdefault(parent, []).append(run)
    runs = []
    for run in found:
        if run.info.start_time / 1000 >= until:
            continue
        if run.data.tags.get("mlflow.parentRunId") or not run.data.tags.get(
                "dvc.exp_name", "").startswith(f"{name}{naming.SEP}"):
            continue
        folds = tuple((c.info.start_time / 1000, c.info.end_time / 1000,
                       sum(m.value for m in client.get_metric_history(c.info.run_id, "seconds")))
                      for c in children.get(run.info.run_id, []) if c.info.end_time)
        if folds and run.info.end_time:
            runs.append(Run(run.info.start_time / 1000, run.info.end_time / 1000, folds))
    return runs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("name", help="a sweep that `python -m src.sweep run` has finished")
    parser.add_argument("--record", type=Path, help="the sweep's record (default "
                                                    f"{paths.SWEEP_RECORDS}/NAME.json)")
    parser.add_argument("--until", help="only parent runs started before this ISO 8601 time")
    args = parser.parse_args()
    record_path = args.record or paths.SWEEP_RECORDS / f"{args.name}.json"
    if not record_path.exists():
        raise errors.TunelabError(f"{record_path} not found: run `python -m src.sweep run "
                                  f"{args.name}` first (it writes the record when it finishes)")
    try:
        until = datetime.fromisoformat(args.until).timestamp() if args.until else float("inf")
    except ValueError:
        raise errors.TunelabError(f"--until {args.until}: not an ISO 8601 time, e.g. "
                                  "2026-11-30T13:00:00+00:00") from None
    record = json.loads(record_path.read_text())
    started = datetime.fromisoformat(record["finished"]).timestamp() - record["wall_seconds"]
    runs = sweep_runs(args.name, started, until)
    if not runs:
        raise errors.TunelabError(f"no finished MLflow runs of sweep {args.name!r} since its start "
                                  f"in {store.tracking_uri()}")
    for key, value in timeline(runs, started, record["workers"]).items():
        print(f"{key}={value:.1f}" if isinstance(value, float) else f"{key}={value}")
    return 0


if __name__ == "__main__":
    errors.run(main)
