"""Running a sweep or a search on a shared study (src/experiments/shared_study.py): the door's part
on each host.

The door (`sweep run --storage`, `search --storage`), under PostgreSQL's advisory lock: creates the
tables and the study, or loads it and refuses it if another commit or definition made it; creates
the MLflow experiment (hosts starting at once would race to); for a sweep, enqueues the pairs no
trial has produced or holds (each round of a policy: backends.SharedStudy). Then it starts --jobs
worker processes and waits for them (src/experiments/shared_supervisor.py), and prints the outcome
from the study.

The parts, by role: the supervisor of this host's workers (shared_supervisor.py), a worker's loop
(shared_worker.py), a trial's heartbeat and the failing of stale trials (shared_heartbeat.py), a
trial's experiment: run, stop, push (shared_experiment.py). A worker's log:
.tunelab/shared/<study>/<name>.log.
"""

from __future__ import annotations

import os
from argparse import SUPPRESS

from src.core.errors import TunelabError
from src.core.status import Status
from src.experiments import dvc_queue, rdb, shared_study
from src.experiments.shared_experiment import log_path

# a worker's steps, under the names benchmarks/coordination_cost.py drives them by
from src.experiments.shared_heartbeat import Heartbeat, StaleTrials, fail_stale  # noqa: F401
from src.experiments.shared_study import Job, Settings
from src.experiments.shared_supervisor import run_workers
from src.experiments.shared_worker import Worker, experiment_of, take  # noqa: F401
from src.experiments.sweep_spec import Experiment
from src.tracking import store


def add_arguments(p) -> None:
    """The doors' --storage and its companions (`sweep run`, `search`)."""
    p.add_argument("--storage", metavar="URI", help="a shared study on PostgreSQL "
                   f"(postgresql://user[:password]@host[:port]/db; default ${rdb.ENV}) that the "
                   "workers of every host take experiments from, instead of this machine's queue")
    p.add_argument("--git-remote", default=Settings.git_remote, metavar="NAME",
                   help="with --storage: the git remote each experiment is pushed to "
                        "(`dvc exp push`; default origin)")
    p.add_argument("--poll", type=float, default=dvc_queue.POLL_SECONDS, help=SUPPRESS)
    p.add_argument("--heartbeat", type=int, default=Settings.heartbeat, metavar="SECONDS",
                   help="with --storage: between a running trial's heartbeats (default 10)")
    p.add_argument("--grace", type=int, default=Settings.grace, metavar="SECONDS",
                   help="with --storage: a running trial without a heartbeat this long is failed "
                        "and run again by a live worker (default 60)")


def settings(args) -> Settings | None:
    """The shared study's settings from the arguments; None without --storage / $TUNELAB_STORAGE."""
    uri = rdb.resolve(args.storage)
    if uri is None:
        return None
    rdb.check_uri(uri)
    if args.jobs < 1 or args.heartbeat < 1 or args.grace <= args.heartbeat:
        raise TunelabError("--jobs and --heartbeat must be at least 1, and --grace longer than "
                           "--heartbeat")
    return Settings(uri, args.jobs, args.heartbeat, args.grace, args.poll, args.git_remote)


def prepare(job: Job, experiments: list[Experiment] | None = None) -> None:
    """Create or check the study, create the MLflow experiment, enqueue a sweep's missing pairs:
    under the advisory lock, before any worker starts; nothing is started if the storage, the
    study or MLflow refuses."""
    import optuna
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the door prints its own lines
    uri = job.settings.uri
    with rdb.creation_lock(uri):
        storage = rdb.open_storage(uri, "door", create_tables=True)
        try:
            study = shared_study.open_study(job, storage)
            store.init_store()  # the MLflow experiment, once, before any worker
            if experiments is not None:
                trials = study.get_trials(deepcopy=False)
                todo = shared_study.to_enqueue(trials, experiments)
                shared_study.enqueue(study, todo)
                waiting = len(experiments) - len(todo)
                print(f"sweep {job.name}: {len(experiments)} experiments; {len(todo)} added to the "
                      f"{job.where}, {waiting} already done, waiting or running there", flush=True)
        finally:
            rdb.close(storage)


def report(job: Job, experiments: list[Experiment]) -> int:
    """A sweep's closing lines from its shared study (shared_study.sweep_summary) and each of
    ``experiments`` not done: failed (the end of its log, if it ran here), or still running or
    waiting on another host; 1 if any is not done, else 0."""
    text, not_done = shared_study.sweep_summary(job.name, experiments, load_trials(job))
    print(text)
    for exp_name, status in not_done.items():
        if status != Status.FAILED:
            print(f"NOT DONE {exp_name}: {status} on the shared study")
            continue
        log = log_path(job.name, exp_name)
        print(f"FAILED {exp_name}" + (f"; last lines of {log}:\n{tail(log)}" if log.is_file()
                                      else " (its log is on the host that ran it)"))
    return 1 if not_done else 0


def sweep_job(sweep, extra: dict, settings: Settings) -> Job:
    """The shared study of a sweep (its configurations with ``--set``) at this commit."""
    configs, definition = shared_study.sweep_definition(sweep, extra)
    return Job("sweep", sweep.name, settings, commit(), definition, configs=configs,
               threads=threads(settings.jobs))


def run_search(search, trials: int, seed: int, sampler: str, base: dict, extra: dict,
               settings: Settings) -> int:
    """`python -m src.search NAME --storage URI`: run the shared study to ``trials`` trials; 0 when
    no trial's experiment failed."""
    rdb.check_uri(settings.uri)
    job = Job("search", search.name, settings, commit(), search.fingerprint(extra), search=search,
              base=base, extra=extra, trials=trials, sampler=sampler, seed=seed,
              threads=threads(settings.jobs))
    prepare(job)
    run_workers(job)
    import optuna

    from src.experiments import optuna_search  # optuna: `sweep list` and `status` need none
    storage = rdb.open_storage(settings.uri, "door")
    try:
        study = optuna.load_study(study_name=search.name, storage=storage)
        print(optuna_search.summary(study, search))
        failed = [t for t in shared_study.counted(study.get_trials(deepcopy=False))
                  if t.user_attrs.get("status") == Status.FAILED]
    finally:
        rdb.close(storage)
    for trial in failed:
        print(f"FAILED trial {trial.number} {trial.user_attrs.get('experiment', '')} on "
              f"{trial.user_attrs.get('host', '?')}")
    return 1 if failed else 0


def threads(jobs: int) -> int:
    """Torch threads per experiment: $TUNELAB_THREADS if set (a host shared with other work, or
    two test "hosts" on one machine), else cores / --jobs."""
    preset = os.environ.get("TUNELAB_THREADS", "")
    return int(preset) if preset.isdigit() and int(preset) > 0 else \
        dvc_queue.threads_per_worker(jobs)


def commit() -> str:
    found = store.git_commit()
    if not found:
        raise TunelabError("a shared study needs a git commit: run from a clone of the repository")
    return found


def load_trials(job: Job) -> list:
    import optuna
    storage = rdb.open_storage(job.settings.uri, "door")
    try:
        return optuna.load_study(study_name=job.name, storage=storage).get_trials(deepcopy=False)
    finally:
        rdb.close(storage)


def tail(path, lines: int = dvc_queue.LOG_TAIL) -> str:
    return "\n".join("    " + line for line in path.read_text(errors="replace").splitlines()[-lines:])
