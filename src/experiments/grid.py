"""The fixed grid: `python -m src.sweep run NAME --seeds N`, every configuration x N seeds.

A policy of one round: it asks for every experiment of the grid at once, and the backend skips
what has run (src/experiments/backends.py): this machine's DVC queue queues only what has not
succeeded on this commit or been carried over from the committed study (sweep_runner.run_experiments);
the shared study of every host (--storage) enqueues only the pairs no trial has produced or holds
(shared_runner.prepare). Then the backend reports every experiment of the grid.
"""

from __future__ import annotations

from src.experiments import backends, dvc_queue, estimate, rdb, shared_runner, sweep_runner, sweep_spec
from src.experiments.shared_study import Settings


def run(name: str, seeds: int, jobs: int, extra: dict, dry_run: bool = False,
        poll: float = dvc_queue.POLL_SECONDS, shared: Settings | None = None) -> int:
    """Run sweep ``name`` on this machine's DVC queue or, with ``shared``, on the shared study of
    every host; 0 when every experiment succeeded (on any host), 1 otherwise."""
    if shared is not None:
        rdb.check_uri(shared.uri)
    base = sweep_spec.load_sweeps([name])[0]
    sweep, experiments, in_queue_order = sweep_runner.plan(name, seeds, jobs, extra)
    grid = f"{len(sweep.configs)} configurations x {seeds} seeds"
    if dry_run and shared is not None:  # the study is not read: every pair, in the order enqueued
        sweep_runner.print_dry_run(in_queue_order,
                                   f"{grid}, for the shared study in {rdb.mask(shared.uri)}")
        return 0
    backend = backends.LocalQueue(name, jobs, poll) if shared is None else \
        backends.SharedStudy(shared_runner.sweep_job(sweep, extra, shared), experiments)
    if dry_run:  # what a real run would queue: not what already ran here or is carried over
        live = backend.live()
        done, n_carried = sweep_runner.already_run(experiments, backend.known(live), live)
        todo = [e for e in in_queue_order if e.name not in done]
        sweep_runner.print_dry_run(todo, f"of {len(experiments)}: {grid}; "
                                         f"{sweep_runner.describe_run(done, n_carried)}")
        wall = sweep_runner.estimated_wall(todo, base, jobs, {})
        print(f"estimated wall time on {jobs} worker(s): {estimate.describe(wall)} "
              f"(src/experiments/estimate.py: each configuration timed here on a few steps)")
        return 0
    def whole_grid(outcomes):  # asked once (before any round, outcomes is None)
        return experiments if outcomes is None else []

    asked, outcomes = backends.run_rounds(backend, experiments, base, whole_grid)
    return backend.report(asked, outcomes or {})
