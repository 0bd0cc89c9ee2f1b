"""The supervisor of one host's workers of a shared study: starts --jobs worker processes
(src/experiments/shared_worker.py) and waits for them, holding no database connection; when a
worker is killed by a signal, takes its running experiment down with it; on Ctrl-C, waits for the
workers to stop their experiments.
"""

from __future__ import annotations

import multiprocessing
from dataclasses import replace

from src.core.errors import TunelabError
from src.experiments.shared_experiment import STOP_WAIT, kill_group
from src.experiments.shared_study import Job
from src.experiments.shared_worker import work
from src.tracking import store


def run_workers(job: Job) -> None:
    """Start --jobs worker processes and wait for them. A worker killed by a signal takes its
    running experiment down with it (its process group); its trial is retried by a live worker
    once its heartbeat is stale. Ctrl-C reaches the workers, which stop their experiments."""
    context = multiprocessing.get_context("spawn")  # no forked database connections
    workers = []
    for number in range(1, job.settings.jobs + 1):
        slot = context.Value("i", 0)  # the process group of the worker's running experiment
        process = context.Process(target=work, args=(job_for(job, number), slot),
                                  name=f"tunelab-worker-{number}")
        process.start()
        workers.append((number, process, slot))
    print(f"started {len(workers)} worker(s) on {store.host()} ({job.threads} threads each) for "
          f"the {job.where}", flush=True)
    reported = set()
    try:
        while any(p.is_alive() for _, p, _ in workers):
            for number, process, slot in workers:
                process.join(timeout=1.0)
                if process.exitcode is None or process.exitcode >= 0 or number in reported:
                    continue
                reported.add(number)
                running = slot.value
                if running:  # its `dvc exp run` and train would go on as orphans
                    kill_group(running)
                print(f"worker {number} was killed (signal {-process.exitcode})" + (
                      f"; its experiment was stopped, and a live worker runs its trial again "
                      f"once the heartbeat is {job.settings.grace} s old" if running else ""),
                      flush=True)
    except KeyboardInterrupt:
        for _, process, _ in workers:
            process.join(timeout=STOP_WAIT + 10)
        raise
    stopped = [(n, p.exitcode) for n, p, _ in workers if p.exitcode]
    if stopped and all(code > 0 for _, code in stopped):
        raise TunelabError(f"{len(stopped)} worker(s) stopped with an error (printed above)")


def job_for(job: Job, number: int) -> Job:
    return replace(job, worker=number)
