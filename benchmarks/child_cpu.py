"""Benchmark (not a test): the CPU time a running process and the children it waits for use.

Meant for a running `python -m src.sweep run`: while it waits for its queue workers, every call it
makes to DVC (`dvc queue status`, ~2.5 CPU-seconds each on the 2-core Zen 3) is a child process
whose CPU time the kernel adds to the parent's `cutime` + `cstime` when the child is reaped
(/proc/PID/stat). The queue workers themselves are detached, not its children, so they are not
counted. This reads those counters and the process's own `utime` + `stime` at the start and after
``--seconds`` (or when the process ends), and prints one `name=value` per line: the window, the
CPU seconds of the reaped children in it, those of the process itself, and the share of one core
each took.

Measured with the same counters (2026-11-30, the idle 2-core Zen 3, the `dropout` sweep, from the
"started 2 queue workers" line on): the sweep's `dvc` children used 21 CPU-seconds in the 9
minutes after queueing, once `sweep run` read the process table every 5 s and asked DVC's queue
only when something changed; before, a `dvc queue status` every 5 s took ~0.28 of a core
(docs/performance.md). Not yet measured on the Xeon.

Run:  .venv/bin/python -m src.sweep run dropout --seeds 3 --jobs 2 &    # wait for "started ..."
      .venv/bin/python benchmarks/child_cpu.py $(pgrep -f "src.sweep run dropout") --seconds 540
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from src.core import errors  # noqa: E402


def cpu(proc) -> tuple[float, float]:
    """(own CPU seconds, CPU seconds of the reaped children) of a psutil process."""
    times = proc.cpu_times()
    return times.user + times.system, times.children_user + times.children_system


def main() -> None:
    import psutil
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pid", type=int, help="the process to watch (e.g. a `sweep run`)")
    parser.add_argument("--seconds", type=float, default=540.0, help="the window (default 540)")
    args = parser.parse_args()
    if args.seconds <= 0:
        parser.error("--seconds must be positive")
    try:
        proc = psutil.Process(args.pid)
        start, (own0, children0) = time.monotonic(), cpu(proc)
    except psutil.Error as error:
        raise errors.TunelabError(f"process {args.pid}: {error}") from None
    own, children = own0, children0
    while time.monotonic() - start < args.seconds:
        time.sleep(min(1.0, args.seconds))
        try:
            own, children = cpu(proc)  # the last reading before the process ends counts
        except psutil.Error:
            break
    window = time.monotonic() - start
    print(f"pid={args.pid}")
    print(f"window_seconds={window:.0f}")
    print(f"children_cpu_seconds={children - children0:.1f}")
    print(f"own_cpu_seconds={own - own0:.1f}")
    print(f"children_share_of_a_core={(children - children0) / window:.3f}")
    print(f"own_share_of_a_core={(own - own0) / window:.3f}")


if __name__ == "__main__":
    errors.run(main)
