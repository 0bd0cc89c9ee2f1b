"""Benchmark (not a test): what one call to DVC's queue costs, in wall and CPU seconds.

`sweep run` and `search` talk to DVC's queue through the `dvc` command line. This times, in this
repository, ``--rounds`` calls each, interleaved, of
  (a) ``dvc queue status``               (what `sweep run` used to run every 5 s while it waited);
  (b) ``dvc queue remove NAME``          for a name no task holds (what `sweep run` used to run
                                          before queueing each experiment, in case a failed
                                          earlier attempt held the name; now one call per sweep,
                                          for the names a finished task holds, usually none).
and prints one `name=value` per line: the median wall seconds and the median CPU seconds (user +
system of the `dvc` process and its children) per call. Nothing in the queue changes: the removed
name (``--name``) must not be one a task holds, and the script refuses one that is.

Measured with the plain commands (the idle 2-core Zen 3): `time dvc queue remove x` 1.2 s per
call (2026-11-30); `dvc queue status` ~2.5 CPU-seconds and ~3.5 s of wall time per call
(2026-11-30). docs/performance.md. Not yet measured on the Xeon.

Needs a DVC repository (this one) and `dvc` next to this interpreter (`bash setup.sh`).

Run:  .venv/bin/python benchmarks/queue_call_time.py [--rounds 3] [--name tunelab-benchmark-none]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from src.core import errors  # noqa: E402
from src.experiments import dvc_queue  # noqa: E402


def timed_dvc(args: list[str], check: bool) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the dvc process and its children) of one ``dvc ARGS``; with
    ``check``, a failed call is an error."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = dvc_queue.run_dvc(args, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if check and done.returncode:
        raise errors.TunelabError(f"`dvc {' '.join(args)}` failed: {done.stderr.strip()}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--name", default="tunelab-benchmark-none",
                        help="the name `dvc queue remove` is asked to remove (no task may hold it)")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    os.chdir(ROOT)
    if not (ROOT / ".dvc").is_dir():
        raise errors.TunelabError(f"{ROOT} is not a DVC repository")
    held = {t.name for t in dvc_queue.parse_queue_status(dvc_queue.dvc("queue", "status"))}
    if args.name in held:
        raise errors.TunelabError(f"--name {args.name}: a task of the queue holds it; choose "
                                  f"another name (this benchmark must not change the queue)")
    # `dvc queue remove` of a name nothing holds says "not a valid experiment name" and exits 255:
    # `sweep run` called it with check=False, and so does this.
    calls = {"queue_status": (["queue", "status"], True),
             "queue_remove": (["queue", "remove", args.name], False)}
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in calls}
    for _ in range(args.rounds):
        for name, (call, check) in calls.items():
            results[name].append(timed_dvc(call, check))
    print(f"rounds={args.rounds}")
    for name, values in results.items():
        print(f"{name}.wall_seconds_median={statistics.median(w for w, _ in values):.2f}")
        print(f"{name}.cpu_seconds_median={statistics.median(c for _, c in values):.2f}")


if __name__ == "__main__":
    errors.run(main)
