"""Run the named sweeps of sweeps.yaml on DVC's experiment queue.

    python -m src.sweep list                                  # the sweeps and their sizes
    python -m src.sweep run dropout --seeds 3 --jobs 2        # queue, run 2 workers, wait, report
    python -m src.sweep run dropout --seeds 3 --dry-run       # what would be queued, how long
    python -m src.sweep run dropout --seeds 3 --until-decided --max-seeds 10 --jobs 2
    python -m src.sweep run interactions --seeds 5 --set prepare.train_size=20000
    python -m src.sweep status [NAME]                         # done / diverged / failed / pending
    python -m src.sweep run dropout --seeds 3 --jobs 2 --storage postgresql://USER@HOST/tunelab_optuna
                                    # several hosts, one study (docs/distributed.md)

What `run` does is in src/experiments/grid.py (adaptive seeds: src/experiments/adaptive.py), both
on one run loop (src/experiments/backends.py); on this machine's DVC queue by default
(src/experiments/sweep_runner.py, dvc_queue.py); with --storage (or $TUNELAB_STORAGE) on a shared
Optuna study on PostgreSQL that the workers of every host take experiments from instead:
src/experiments/shared_runner.py. Exits 1 naming every failed experiment with the end of its log, 2
on bad input.
"""

from __future__ import annotations

import argparse
import functools
import sys

from src.core import errors
from src.experiments import adaptive, grid, look_commits, shared_runner, sweep_runner, sweep_spec


def cmd_list() -> None:
    _, all_sweeps = sweep_spec.load_sweeps()
    width = max(map(len, all_sweeps))
    print(f"{'sweep':<{width}}  configs  baseline / description")
    for name, sweep in all_sweeps.items():
        print(f"{name:<{width}}  {len(sweep.configs):>7}  {sweep.baseline_label}: {sweep.description}")
    print("\n`--seeds N` runs each configuration N times (train.seed = 0..N-1).")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m src.sweep", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="the sweeps in sweeps.yaml and their sizes")
    run = sub.add_parser("run", help="queue a sweep, run it with parallel workers, report")
    run.add_argument("name")
    run.add_argument("--seeds", type=int, default=None,
                     help="replicates per configuration (default 1; with --until-decided the "
                          "first round's, default the sweep's `seeds`, 3)")
    run.add_argument("--until-decided", action="store_true",
                     help="add seeds in rounds to the configurations still undecided")
    run.add_argument("--max-seeds", type=int, default=None,
                     help="with --until-decided: the most seeds a configuration gets "
                          "(default: the sweep's `max_seeds`, 10)")
    run.add_argument("--jobs", "-j", type=int, default=1, help="parallel queue workers")
    run.add_argument("--set", action="append", metavar="KEY=VALUE",
                     help="override a param for every experiment (repeatable)")
    run.add_argument("--commit-looks", action="store_true",
                     help="with --until-decided: commit the study's report (reports/study/NAME, "
                          "the claims page) after every look, so a stopped study keeps its "
                          "evidence in git")
    run.add_argument("--dry-run", action="store_true",
                     help="print what would be queued and an estimate of the wall time")
    shared_runner.add_arguments(run)
    status = sub.add_parser("status", help="done / diverged / failed / running / queued per sweep")
    status.add_argument("name", nargs="?")
    return p


def main() -> None:
    args = parser().parse_args()
    if args.command == "list":
        cmd_list()
    elif args.command == "status":
        if args.name:
            sweep_spec.check_sweep_name(args.name)
        print(sweep_runner.status_table([args.name] if args.name else sweep_spec.sweep_names()))
    else:
        extra = dict(sweep_spec.parse_set(item) for item in args.set or [])
        shared = shared_runner.settings(args)
        if args.max_seeds is not None and not args.until_decided:
            raise errors.TunelabError("--max-seeds goes with --until-decided (a fixed run takes "
                                      "--seeds)")
        if args.commit_looks and not args.until_decided:
            raise errors.TunelabError("--commit-looks goes with --until-decided (a fixed run "
                                      "reports once, at its end)")
        if args.until_decided:  # on this machine's queue, or with --storage the shared study
            after = (functools.partial(look_commits.commit_look, args.name)
                     if args.commit_looks and not args.dry_run else None)
            code = adaptive.run(args.name, args.seeds, args.max_seeds, args.jobs, extra,
                                args.dry_run, args.poll, shared, after_look=after)
        else:  # a fixed grid, on the same backends
            code = grid.run(args.name, args.seeds or 1, args.jobs, extra, args.dry_run, args.poll,
                            shared)
        if code:
            sys.exit(code)


if __name__ == "__main__":
    errors.run(main)
