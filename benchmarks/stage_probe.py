"""Benchmark (not a test): what each stage of a queued experiment costs, timed from the process table.

Queues ``--seeds`` experiments of the current commit as ``dvc exp run --queue -n PREFIX-sSEED -S
train.epochs=E -S train.seed=SEED`` (plus any ``--set``), starts ``--jobs`` queue workers with
$TUNELAB_THREADS=``--threads``, and, while they run, reads the process table every 0.2 s for the
stage processes (``python -m src.prepare | train | evaluate | plot``) and each one's start time.
Waits until no experiment process is left and none of the probe's tasks is queued or running, then
prints one `name=value` per line:

- `<stage>.seconds`: every process of that stage, its lifetime (start to last seen), sorted;
- `wall_seconds`: from starting the workers to the end;
- `train_seconds`: the training loops' time of the experiments, summed (`time.train_seconds` of
  each experiment in `dvc exp show --json`);
- `not_training_per_experiment`: (jobs x wall - training) / experiments, the fixed cost each
  experiment adds to a sweep on this many workers.

Afterwards the probe's experiments are removed (`dvc exp remove`) unless ``--keep``. An experiment
that DVC restores from its run cache (the same params on the same commit ran before) runs no
stage: the script says so; use other seeds or ``--force``.

Measured with the same procedure as shell commands (`ps` every 0.2 s, `dvc queue start -j 2`), the
idle 2-core Zen 3, 2026-11-30 (docs/performance.md): six 3-epoch experiments on 2 workers of one
thread, before and after `evaluate` took the worker's thread count: `evaluate` 22-25 s -> 13-15 s,
wall 422 -> 356 s, training 488 -> 449 s; not training per experiment 59.3 s, 43.8 s, then 45.3 s
after `plot` took over MLflow. The fixed cost alone (`--epochs 1 --seeds 3 --jobs 1`): 58-65 s an
experiment, 24-27 s of it training; `train` 39-43 s, `evaluate` 11-13 s, `plot` 7-8 s (70-73 s,
44-46 s, 15-20 s and 7.6-7.8 s that morning, before the changes). Not yet measured on the Xeon.

Needs a clean git + DVC workspace with the data (`bash setup.sh`), a git identity, and minutes:
it trains real experiments (six 3-epoch ones: ~6 minutes on 2 cores).

Run:  .venv/bin/python benchmarks/stage_probe.py [--epochs 3] [--seeds 11,12,13,14,15,16]
                                                [--jobs 2] [--threads 1] [--keep] [--force]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from src.core import errors, naming, params, paths  # noqa: E402
from src.experiments import dvc_queue, sweep_spec  # noqa: E402

STAGES = ("prepare", "train", "evaluate", "plot")
STAGE = re.compile(r"(?:^|\s)-m src\.(prepare|train|evaluate|plot)$")
SHELLS = {"sh", "bash", "dash", "zsh"}  # DVC may run a stage's cmd through a shell: not a stage


def stage_of(cmdline: list[str]) -> str | None:
    """The stage a process runs (``python -m src.train`` -> ``train``), None for anything else."""
    if not cmdline or os.path.basename(cmdline[0]) in SHELLS:
        return None
    match = STAGE.search(" ".join(cmdline))
    return match.group(1) if match else None


class Sampler(threading.Thread):
    """Reads the process table every ``every`` seconds; ``seen`` maps (pid, start time) to
    [stage, start time, last seen]."""

    def __init__(self, every: float = 0.2):
        super().__init__(daemon=True)
        self.every, self.stopped, self.seen = every, threading.Event(), {}

    def run(self) -> None:
        import psutil
        while not self.stopped.is_set():
            now = time.time()
            for proc in psutil.process_iter(["pid", "cmdline", "create_time"]):
                stage = stage_of(proc.info["cmdline"] or [])
                if stage:
                    key = (proc.info["pid"], proc.info["create_time"])
                    self.seen.setdefault(key, [stage, proc.info["create_time"], now])[2] = now
            self.stopped.wait(self.every)

    def lifetimes(self) -> dict[str, list[float]]:
        found: dict[str, list[float]] = {stage: [] for stage in STAGES}
        for stage, start, last in self.seen.values():
            found[stage].append(last - start)
        return {stage: sorted(values) for stage, values in found.items()}


def wait_until_done(names: set[str], grace: float = 20.0) -> None:
    """Until no experiment process runs and no task of ``names`` is queued or running (the process
    table every 2 s; DVC's queue only when it looks done)."""
    start = time.monotonic()
    while True:
        time.sleep(2)
        if time.monotonic() - start < grace or any("exec-run" in line
                                                   for line in dvc_queue.process_cmdlines()):
            continue
        if not [t for t in dvc_queue.queue_tasks() if t.name in names
                and t.status in ("Queued", "Running")]:
            return


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seeds", default="11,12,13,14,15,16", help="train.seed of each experiment")
    parser.add_argument("--jobs", type=int, default=2, help="queue workers")
    parser.add_argument("--threads", type=int, default=1, help="$TUNELAB_THREADS of each worker")
    parser.add_argument("--prefix", default="probe", help="experiment names: PREFIX-sSEED")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="another param for every experiment (repeatable)")
    parser.add_argument("--force", action="store_true", help="`dvc exp run -f`: no run cache")
    parser.add_argument("--keep", action="store_true", help="keep the experiments afterwards")
    args = parser.parse_args()
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--seeds {args.seeds}: comma-separated integers, e.g. 11,12,13")
    if not seeds or args.epochs < 1 or args.jobs < 1 or args.threads < 1:
        parser.error("--seeds needs one seed or more; --epochs, --jobs and --threads at least 1")
    if not naming.is_valid_study_name(args.prefix.replace("-", "_")):
        parser.error(f"--prefix {args.prefix}: letters, digits, _ and -")
    os.chdir(ROOT)
    overrides = dict(sweep_spec.parse_set(item) for item in args.set)
    base = params.read_yaml(paths.PARAMS)
    for seed in seeds:  # every value validated before anything is queued, as `sweep run` does
        params.validate_all(sweep_spec.apply(base, overrides | {"train.epochs": args.epochs,
                                                                "train.seed": seed}))
    extra = [f"{k}={naming.format_value(v)}" for k, v in overrides.items()]
    names = [f"{args.prefix}-s{seed}" for seed in seeds]
    taken = sorted(set(names) & set(dvc_queue.experiment_outcomes()))
    if taken:
        raise errors.TunelabError(f"experiments {', '.join(taken)} exist on this commit: "
                                  f"`dvc exp remove {' '.join(taken)}`, or choose other --seeds")
    for name, seed in zip(names, seeds):
        sets = [f"train.epochs={args.epochs}", f"train.seed={seed}", *extra]
        dvc_queue.dvc("exp", "run", "--queue", *(["-f"] if args.force else []), "-n", name,
                      *[arg for s in sets for arg in ("-S", s)])
    os.environ["TUNELAB_THREADS"] = str(args.threads)
    sampler = Sampler()
    sampler.start()
    started = time.monotonic()
    dvc_queue.start_workers(args.jobs)
    wait_until_done(set(names))
    wall = time.monotonic() - started
    sampler.stopped.set()
    sampler.join()
    outcomes = dvc_queue.experiment_outcomes()
    train = [outcomes[n].train_seconds for n in names if n in outcomes and outcomes[n].train_seconds]
    lifetimes = sampler.lifetimes()
    print(f"experiments={len(names)}")
    print(f"jobs={args.jobs}")
    print(f"threads_per_worker={args.threads}")
    for stage, values in lifetimes.items():
        print(f"{stage}.seconds={','.join(f'{v:.1f}' for v in values)}")
        if values:
            print(f"{stage}.seconds_median={statistics.median(values):.1f}")
    print(f"wall_seconds={wall:.1f}")
    print(f"train_seconds={sum(train):.1f}")
    print(f"not_training_per_experiment={(args.jobs * wall - sum(train)) / len(names):.1f}")
    failed = [n for n in names if n not in outcomes or outcomes[n].train_seconds is None]
    if failed:
        print(f"warning: no metrics for {', '.join(failed)} (failed: `dvc queue logs NAME`)")
    if len(lifetimes["train"]) < len(names) - len(failed):
        print(f"warning: {len(names) - len(failed) - len(lifetimes['train'])} experiment(s) ran no "
              "train stage (restored from DVC's run cache): their time is not measured; use other "
              "--seeds or --force")
    if not args.keep:
        dvc_queue.dvc("exp", "remove", *[n for n in names if n in outcomes], check=False)


if __name__ == "__main__":
    errors.run(main)
