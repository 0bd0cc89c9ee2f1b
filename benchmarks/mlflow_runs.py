"""Benchmark (not a test): a sweep's MLflow parent runs with their start and length, and the idle
tail at its end (the last experiment running alone while the other workers have nothing to do).

Reads the MLflow parent runs whose run name starts with ``NAME--`` (one per experiment that
trained; `train` opens it, `plot` closes it, so its length is the experiment's `train` -> `plot`
stretch without DVC's workspace copy) and, for the tail, the sweep's record
(`.tunelab/sweeps/NAME.json`, written when `python -m src.sweep run NAME` finishes). Prints one
line per run (name, start, seconds), then one `name=value` per line: `runs`, `seconds_sum`
(all runs' seconds added up), and, with a record, `idle_tail_seconds`: the record's `finished`
minus the end of the second-to-last parent run of that sweep run (runs started after its start).
On 2 workers that is how long the last experiment ran alone (plus the sweep's final report).

Needs the MLflow store of a finished sweep (`mlflow.db` at the repository root, or
$MLFLOW_TRACKING_URI); it refuses to run, exit 2, where there is none (opening a missing SQLite
store would create an empty one).

Measured with it (2026-11-30, the 2-core Zen 3, `recipe` sweep, 9 experiments of 60,000 images):
the `train` -> `plot` stretches took 447-746 s each, 5,017 s in all, before the 13:06 changes; the
14:14 run's idle tail was 361 s (docs/performance.md).

Run:  .venv/bin/python benchmarks/mlflow_runs.py recipe
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from src.core import errors, naming, paths  # noqa: E402
from src.tracking import store  # noqa: E402


def check_store() -> str:
    """The tracking URI, or a TunelabError when the default SQLite store does not exist yet."""
    uri = store.tracking_uri()
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).exists():
        raise errors.TunelabError(f"no MLflow store at {uri}: run a sweep first "
                                  f"(`python -m src.sweep run NAME --jobs 2`), or set "
                                  f"MLFLOW_TRACKING_URI to the store that has its runs")
    return uri


def idle_tail(ends: list[float], finished: float) -> float | None:
    """Seconds from the second-to-last run's end to the sweep's end; None with fewer than 2 runs."""
    return finished - sorted(ends)[-2] if len(ends) >= 2 else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("name", help="a sweep (or search) whose experiments have run")
    args = parser.parse_args()
    if not naming.is_valid_study_name(args.name):
        raise errors.TunelabError(f"{args.name!r}: a sweep name is letters, digits and _")
    check_store()
    import mlflow  # seconds to import: after the checks

    mlflow.set_tracking_uri(store.tracking_uri())
    runs = mlflow.search_runs(search_all_experiments=True,
                              filter_string=f"attributes.run_name LIKE '{args.name}{naming.SEP}%'")
    if "tags.mlflow.parentRunId" in runs:
        runs = runs[runs["tags.mlflow.parentRunId"].isna()]
    runs = runs.dropna(subset=["end_time"]) if len(runs) else runs
    if not len(runs):
        raise errors.TunelabError(f"no finished MLflow runs named {args.name}{naming.SEP}* in "
                                  f"{store.tracking_uri()}")
    runs = runs.sort_values("start_time")
    runs["seconds"] = (runs.end_time - runs.start_time).dt.total_seconds()
    print(runs[["tags.mlflow.runName", "start_time", "seconds"]].to_string(index=False))
    print(f"runs={len(runs)}")
    print(f"seconds_sum={runs.seconds.sum():.0f}")
    record_path = ROOT / paths.SWEEP_RECORDS / f"{args.name}.json"
    if record_path.exists():  # the tail of the sweep's last run: its runs only
        record = json.loads(record_path.read_text())
        finished = datetime.fromisoformat(record["finished"]).timestamp()
        since = finished - record["wall_seconds"]
        ends = [e.timestamp() for s, e in zip(runs.start_time, runs.end_time) if s.timestamp() >= since]
        tail = idle_tail(ends, finished)
        if tail is not None:
            print(f"idle_tail_seconds={tail:.0f}  (the run of {record['finished']}: {len(ends)} runs)")


if __name__ == "__main__":
    errors.run(main)
