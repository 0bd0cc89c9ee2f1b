"""A sweep on this machine's DVC queue: what is left to run, queueing it, workers, waiting, the
report (the backend :class:`backends.LocalQueue` of every policy: src/experiments/grid.py,
src/experiments/adaptive.py).

`plan` validates every experiment first (nothing is queued if one is invalid), creates the MLflow
store once (parallel workers would corrupt a fresh SQLite database), queues what is missing with
``dvc exp run --queue -n <sweep>--<config>--s<seed> -S ...`` (longest first), starts J queue workers
with $TUNELAB_THREADS = cores / J (and 1/J of an accelerator's memory each), shows progress, prints
how well the sweep used its workers, and returns non-zero naming every failed experiment with the
tail of its log (DVC's own queue exits 0 when experiments fail). Run again after an interruption,
it queues only what has not succeeded on the current commit, or been carried over from the
committed study of an earlier commit whose sources and params are the same (src/experiments/carried.py).
"""

from __future__ import annotations

import sys
import time
from collections import Counter

from src.core import naming
from src.core.errors import TunelabError
from src.core.status import Status
from src.experiments import carried, dvc_queue, efficiency, estimate, sweep_spec
from src.experiments.exp_show import Outcome
from src.tracking import store


def plan(name: str, seeds: int, jobs: int, extra: dict) -> tuple[sweep_spec.Sweep,
                                                                   list[sweep_spec.Experiment],
                                                                   list[sweep_spec.Experiment]]:
    """The sweep, its experiments (validated) and the same in queue order (longest first); the
    train stage's warnings are printed once per configuration."""
    base, loaded = sweep_spec.load_sweeps([name])
    sweep = loaded[name]
    experiments = sweep_spec.expand(sweep, seeds, base, extra,
                                    reference=sweep_spec.committed_params())
    if jobs < 1:
        raise TunelabError(f"--jobs {jobs}: must be at least 1")
    for warning in sweep_spec.config_warnings(experiments, base):
        print(warning, file=sys.stderr)
    return sweep, experiments, sweep_spec.longest_first(experiments, base)


def print_dry_run(in_queue_order: list[sweep_spec.Experiment], note: str) -> None:
    for exp in in_queue_order:
        print(f"dvc exp run --queue -n {exp.name} {' '.join(exp.set_args())}")
    print(f"{len(in_queue_order)} experiments ({note}), longest first; nothing queued (--dry-run)")


def estimated_wall(experiments: list[sweep_spec.Experiment], base: dict, jobs: int,
                   cache: dict) -> float:
    """Estimated wall seconds of ``experiments`` on ``jobs`` workers (src/experiments/estimate.py)."""
    threads = dvc_queue.threads_per_worker(jobs)
    return estimate.wall_seconds(
        [estimate.experiment_seconds(sweep_spec.apply(base, e.overrides), threads, cache)
         for e in experiments], jobs)


def known_outcomes(name: str, live: dict[str, Outcome] | None = None) -> dict[str, Outcome]:
    """The outcomes of sweep ``name``'s experiments that count as run: the current commit's
    (``live``, read here if not given), and those carried over from its committed study."""
    return carried.outcomes(name, dvc_queue.experiment_outcomes() if live is None else live)


def matched(experiments: list[sweep_spec.Experiment],
            known: dict[str, Outcome]) -> dict[str, Outcome]:
    """Each of ``experiments`` that has an outcome in ``known`` of its identity (by the
    experiment's name): matching is by what makes the numbers, never by name. Where several
    outcomes share an identity, one that did not fail wins, and among those the first in
    ``known`` (the current commit's come before carried ones)."""
    by_identity: dict[str, Outcome] = {}
    for outcome in known.values():
        held = by_identity.get(outcome.identity or "")
        if outcome.identity and (held is None or (held.state == Status.FAILED and
                                                  outcome.state != Status.FAILED)):
            by_identity[outcome.identity] = outcome
    found = {e.name: by_identity[e.identity] for e in experiments if e.identity in by_identity}
    # a search's trial has no identity (Optuna keeps its params): its name is its own
    return found | {e.name: known[e.name] for e in experiments if not e.identity and e.name in known}


def already_run(experiments: list[sweep_spec.Experiment], known: dict[str, Outcome],
                live: dict[str, Outcome]) -> tuple[set[str], int]:
    """The names of ``experiments`` that count as run (an outcome of their identity that did
    not fail, of this commit or carried over from the committed study: ``known``,
    :func:`known_outcomes` of ``live``), and how many of those are carried over."""
    found = {n: o for n, o in matched(experiments, known).items() if o.state != Status.FAILED}
    live_ids = {o.identity for o in live.values() if o.state != Status.FAILED}
    return set(found), sum(o.identity not in live_ids for o in found.values())


def describe_run(done: set[str], n_carried: int) -> str:
    """e.g. ``4 already succeeded on this commit or carried over from the committed study (4)``."""
    return (f"{len(done)} already succeeded on this commit"
            f"{f' or carried over from the committed study ({n_carried})' if n_carried else ''}")


def run_experiments(name: str, experiments: list[sweep_spec.Experiment],
                    in_queue_order: list[sweep_spec.Experiment], jobs: int,
                    poll: float) -> dict[str, Outcome]:
    """Queue those of ``experiments`` that have not succeeded (on this commit, or carried over)
    and are not queued, run them on ``jobs`` workers, wait, print the efficiency; the outcomes of
    every experiment that counts as run afterwards (:func:`known_outcomes`)."""
    tasks = dvc_queue.queue_tasks()
    live = dvc_queue.experiment_outcomes()
    known = known_outcomes(name, live)
    done, n_carried = already_run(experiments, known, live)
    pending = {t.name: t for t in tasks if t.status in ("Queued", "Running")}
    todo = [e for e in in_queue_order if e.name not in done and e.name not in pending]
    resumed = [pending[e.name] for e in experiments if e.name in pending]
    print(f"sweep {name}: {len(experiments)} experiments; {describe_run(done, n_carried)}, "
          f"{len(resumed)} still queued, {len(todo)} to queue")
    store.init_store()  # before any worker starts (under its lock: two sweeps may start at once)
    started, started_at = time.monotonic(), time.time()
    task_ids = dvc_queue.enqueue(todo, tasks) | {t.task_id for t in resumed}
    if not task_ids:
        print("nothing to run")
        return known
    threads = dvc_queue.share_machine(jobs)
    dvc_queue.start_workers(jobs)
    print(f"started {jobs} queue workers ({threads} threads each); Ctrl-C stops waiting, not the "
          f"workers (`dvc queue stop` does)", flush=True)
    ran, outcomes = dvc_queue.run_queued(task_ids, experiments, poll, jobs)
    wall = time.monotonic() - started
    if resumed:  # they started before this run: its wall time does not cover them
        print(f"efficiency not measured: {len(resumed)} experiment(s) were queued before this run")
    else:
        efficiency.report_efficiency(name, list(ran.values()), outcomes, jobs, threads, wall,
                                     started_at)
    return known_outcomes(name, outcomes)


def report(name: str, experiments: list[sweep_spec.Experiment],
           outcomes: dict[str, Outcome] | None = None) -> int:
    """Print the outcome of every experiment of sweep or search ``name`` (``outcomes``: `dvc exp
    show`'s, read here if not given); 1 if any failed or is missing."""
    outcomes = dvc_queue.experiment_outcomes() if outcomes is None else outcomes
    outcomes = matched(experiments, outcomes)
    states = Counter()
    failed = []
    for exp in experiments:
        outcome = outcomes.get(exp.name)
        state = outcome.state if outcome else Status.FAILED
        states[state] += 1
        if state == Status.FAILED:
            failed.append(exp.name)
    summary = ", ".join(f"{n} {s}" for s, n in sorted(states.items()))
    print(f"sweep {name}: {summary} (of {len(experiments)})")
    diverged = [e.name for e in experiments if outcomes.get(e.name) and
                outcomes[e.name].state == Status.DIVERGED]
    if diverged:
        print("diverged (recorded, see metrics.json status/reason): " + ", ".join(diverged))
    pruned = [e.name for e in experiments if outcomes.get(e.name) and
              outcomes[e.name].state == Status.PRUNED]
    if pruned:
        print("pruned by the search's rule: " + ", ".join(pruned))
    for exp_name in failed:
        print(f"FAILED {exp_name}; last lines of `dvc queue logs {exp_name}`:\n"
              f"{dvc_queue.log_tail(exp_name)}")
    return 1 if failed else 0


def status_table(names: list[str]) -> str:
    """`python -m src.sweep status`: per sweep, done / diverged / pruned / failed experiments of
    this commit and its running / queued tasks."""
    outcomes = dvc_queue.experiment_outcomes()
    tasks = dvc_queue.queue_tasks()
    lines = [f"{'sweep':<14} {'done':>5} {'diverged':>9} {'pruned':>7} {'failed':>7} "
             f"{'running':>8} {'queued':>7}"]
    for name in names:
        prefix = f"{name}{naming.SEP}"
        states = Counter(o.state for n, o in outcomes.items() if n.startswith(prefix))
        queue = Counter(t.status for t in tasks if t.name.startswith(prefix))
        done = sum(v for k, v in states.items() if Status(k).usable)
        lines.append(f"{name:<14} {done:>5} {states[Status.DIVERGED]:>9} {states[Status.PRUNED]:>7} "
                     f"{states[Status.FAILED]:>7} {queue['Running']:>8} {queue['Queued']:>7}")
    return "\n".join(lines)
