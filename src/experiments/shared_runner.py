"""Running a sweep or a search on a shared study (src/experiments/shared_study.py): the door's part
on each host, and its worker processes.

The door (`sweep run --storage`, `search --storage`), under PostgreSQL's advisory lock: creates the
tables and the study, or loads it and refuses it if another commit or definition made it; creates
the MLflow experiment (hosts starting at once would race to); for a sweep, enqueues the pairs no
trial has produced or holds. Then it starts --jobs worker processes and waits for them, holding no
database connection, and prints the outcome from the study.

A worker, until no trial waits and none runs (it waits while other hosts' trials run, so that it
can take over one whose host dies): fails the trials whose heartbeat is older than the grace
period, which re-queues them and ends their MLflow runs KILLED; takes the next trial (a sweep's
next waiting pair; a search's `Study.ask`, TPE with the constant liar); runs it as the usual
DVC experiment, ``dvc exp run --temp -n <name> -S ...`` in this clone (`dvc exp show` lists it),
heartbeat every few seconds; reads its outcome from `dvc exp show`; shares it with ``dvc exp push
<git remote> <name>`` (DVC outputs go to the DVC remote); tells the study. One `dvc exp run` at a
time per worker; threads per experiment = cores / --jobs. Its log: .tunelab/shared/<study>/<name>.log.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
import warnings
import zlib
from argparse import SUPPRESS
from collections import Counter
from dataclasses import dataclass, replace

from src.core import errors, paths
from src.core.errors import ParamError, TunelabError
from src.core.status import Status
from src.experiments import dvc_queue, rdb, shared_study, sweep_runner
from src.experiments.shared_study import Job, Settings
from src.experiments.sweep_spec import Experiment
from src.tracking import store

LOCK_ERROR = "Unable to acquire lock"
ATTEMPTS = 3        # `dvc exp run` tries when another worker held the repository lock; pushes
STOP_WAIT = 30.0    # seconds an interrupted experiment has to end its MLflow runs


def log_path(study: str, name: str):
    return paths.repo_root() / paths.SHARED_LOGS / study / f"{name}.log"


def say(job: Job, line: str) -> None:
    print(f"[{store.host()} w{job.worker}] {line}", flush=True)


# --- the door --------------------------------------------------------------------------------

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


def run_sweep(name: str, seeds: int, extra: dict, settings: Settings, dry_run: bool = False) -> int:
    """`python -m src.sweep run NAME --storage URI`: 0 when every experiment of the sweep has
    produced metrics (on any host), 1 otherwise."""
    rdb.check_uri(settings.uri)
    sweep, experiments, in_order = sweep_runner.plan(name, seeds, settings.jobs, extra)
    if dry_run:
        sweep_runner.print_dry_run(in_order, f"{len(sweep.configs)} configurations x {seeds} "
                                   f"seeds, for the shared study in {rdb.mask(settings.uri)}")
        return 0
    job = sweep_job(sweep, extra, settings)
    prepare(job, in_order)  # waiting trials are taken in this order: longest first
    run_workers(job)
    trials = load_trials(job)
    text, not_done = shared_study.sweep_summary(name, experiments, trials)
    print(text)
    for exp_name, status in not_done.items():
        if status != Status.FAILED:
            print(f"NOT DONE {exp_name}: {status} on the shared study")
            continue
        log = log_path(name, exp_name)
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


def kill_group(pgid: int, sig: int = signal.SIGKILL) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


# --- a worker ----------------------------------------------------------------------------------

class Heartbeat:
    """Records a trial's heartbeat now and every ``interval`` seconds until the block ends. A
    failed beat (the database unreachable for a moment) is retried at the next one: a trial is only
    declared dead after the grace period."""

    def __init__(self, storage, trial_id: int, interval: int):
        self.storage, self.trial_id, self.interval = storage, trial_id, interval
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.beat, daemon=True)

    def beat(self) -> None:
        while not self.stop.wait(self.interval):
            try:
                self.storage.record_heartbeat(self.trial_id)
            except Exception:  # noqa: BLE001 - the next beat tries again
                pass

    def __enter__(self):
        self.storage.record_heartbeat(self.trial_id)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


class StaleTrials:
    """The storage's heartbeat-stale callback: retry the trial as a new waiting one (Optuna's
    RetryHeartbeatStaleTrialCallback) and end its MLflow runs KILLED."""

    def __init__(self, job: Job):
        import optuna
        from optuna.storages import RetryHeartbeatStaleTrialCallback
        self.job = job
        with warnings.catch_warnings():  # experimental since Optuna 2.8, still
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            self.retry = RetryHeartbeatStaleTrialCallback(max_retry=job.settings.max_retry)

    def __call__(self, study, trial) -> None:
        self.retry(study, trial)
        say(self.job, f"trial {trial.number} {trial.user_attrs.get('experiment', '')} on "
                      f"{trial.user_attrs.get('host', '?')}: no heartbeat for "
                      f"{self.job.settings.grace} s: failed and queued again; its MLflow runs: "
                      f"{end_runs(self.job, trial.number)}")


def trial_key(study: str, number: int) -> str:
    return f"{study}#{number}"


def work(job: Job, slot) -> None:
    """A worker process (the target of :func:`run_workers`)."""
    errors.handle_stop_signals()  # the stages' clean-up path: store calls finish first
    try:
        loop(job, slot)
    except KeyboardInterrupt:
        sys.exit(130)
    except TunelabError as error:
        print(f"error: [{store.host()} w{job.worker}] {error}", file=sys.stderr, flush=True)
        sys.exit(2)
    except Exception as error:
        if not is_storage_error(error):
            raise
        print(f"error: [{store.host()} w{job.worker}] {rdb.storage_error(job.settings.uri, error)}",
              file=sys.stderr, flush=True)
        sys.exit(2)


def is_storage_error(error: BaseException) -> bool:
    import optuna
    import sqlalchemy
    return isinstance(error, (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError))


@dataclass
class Worker:
    """A worker's study, its storage (one pooled connection) and the study's id."""
    job: Job
    study: object
    storage: object
    study_id: int
    slot: object  # the shared int the door reads: the running experiment's process group

    def trial_id(self, number: int) -> int:
        return self.storage.get_trial_id_from_study_id_trial_number(self.study_id, number)

    def record(self, number: int, key: str, value) -> bool:
        """Set a trial's user attr; False if the trial is finished already (declared dead)."""
        import optuna
        try:
            self.storage.set_trial_user_attr(self.trial_id(number), key, str(value))
            return True
        except optuna.exceptions.UpdateFinishedTrialError:
            return False


def loop(job: Job, slot) -> None:
    import optuna
    from optuna.trial import TrialState
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = rdb.open_storage(job.settings.uri, f"worker {job.worker}", job.settings.heartbeat,
                               job.settings.grace, StaleTrials(job))
    study = optuna.load_study(study_name=job.name, storage=storage,
                              sampler=optuna.samplers.RandomSampler(seed=0))
    me = Worker(job, study, storage, storage.get_study_id_from_name(job.name), slot)
    while True:
        fail_stale(study)
        trials = study.get_trials(deepcopy=False)
        states = Counter(t.state for t in trials)
        asking = job.kind == "search" and len(shared_study.counted(trials)) < job.trials
        if not states[TrialState.WAITING] and not asking:
            if not states[TrialState.RUNNING]:
                return
            time.sleep(job.settings.poll)  # other hosts' trials run: one may need taking over
            continue
        trial = take(me, trials)
        if trial is not None:
            run_trial(me, trial)


def fail_stale(study) -> None:
    """Optuna's check for trials whose heartbeat is older than the grace period: each is failed
    and handed to the storage's callback (:class:`StaleTrials`). Experimental since Optuna 2.9."""
    import optuna
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def take(me: Worker, trials):
    """The next trial: a waiting one (a sweep's pair, a retried trial), or for a search a new
    one from the sampler. None if another worker took the last waiting one first."""
    import optuna
    from optuna.trial import TrialState
    if me.job.kind == "search":
        me.study.sampler = sampler(me.job, len(trials))
        return me.study.ask(me.job.search.distributions())  # a waiting (retried) trial first
    for waiting in (t for t in trials if t.state == TrialState.WAITING):
        trial_id = me.trial_id(waiting.number)
        try:  # as Study.ask takes a waiting trial: the one that sets it RUNNING has it
            if me.storage.set_trial_state_values(trial_id, state=TrialState.RUNNING):
                return optuna.Trial(me.study, trial_id)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue
    return None  # a sweep never asks the sampler: every pair was enqueued


def sampler(job: Job, known: int):
    """A search worker's sampler, seeded from (--seed, trials so far, host, worker): two workers
    asking at the same moment must not propose the same point. TPE with the constant liar, so
    that running trials count as bad guesses instead of drawing every worker to one spot."""
    import numpy as np
    import optuna
    salt = zlib.crc32(f"{store.host()}/{job.worker}".encode())
    seed = int(np.random.SeedSequence([job.seed, known, salt]).generate_state(1)[0])
    if job.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=job.search.startup_trials,
                                      constant_liar=True)


def experiment_of(job: Job, trial) -> Experiment:
    """The trial's DVC experiment: a sweep's pair from its params, a search's sampled point."""
    from src.experiments import optuna_search
    if job.kind == "search":
        return optuna_search.experiment(job.search, trial.number, trial.params, job.base,
                                        job.extra)
    label = trial.suggest_categorical("config", sorted(job.configs))
    seed = trial.suggest_int("seed", *shared_study.SEED_RANGE)
    return Experiment(job.name, label, seed, job.configs[label] | {"train.seed": seed})


def run_trial(me: Worker, trial) -> None:
    """Run one trial with its heartbeat: the experiment, the push, the tell."""
    import optuna

    from src.experiments import optuna_search
    job, study, number = me.job, me.study, trial.number
    with Heartbeat(me.storage, me.trial_id(number), job.settings.heartbeat):
        try:
            exp = experiment_of(job, trial)
        except ParamError as error:  # e.g. an int norm_groups that divides no channel count
            say(job, f"trial {number}: refused, {error} -> "
                     f"{optuna_search.tell(study, number, None)}")
            return
        other = shared_study.rival(study.get_trials(deepcopy=False), number, exp.name)
        if other is not None:
            me.record(number, "duplicate_of", other.number)
            study.tell(number, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
            say(job, f"trial {number}: {exp.name} was handed out twice (trial {other.number} "
                     f"{other.state.name.lower()} on {other.user_attrs.get('host', '?')}): not "
                     f"run, counted once")
            return
        for key, value in (("experiment", exp.name), ("host", store.host()),
                           ("worker", f"{store.host()}/{os.getpid()}")):
            me.record(number, key, value)
        say(job, f"trial {number} {exp.name}: running")
        started = time.monotonic()
        try:
            outcome = run_experiment(job, exp, trial_key(job.name, number), me.slot)
        except KeyboardInterrupt:
            me.record(number, "status", Status.FAILED)
            optuna_search.tell(study, number, None)
            end_runs(job, number)
            raise
        note = push(job, exp.name) if outcome and outcome.state != Status.FAILED else None
        if note and not note.startswith("duplicate"):
            outcome = None  # not shared, so not done: a later `sweep run` runs it again
        status = outcome.state if outcome else Status.FAILED
        if not me.record(number, "status", status):
            say(job, f"trial {number} {exp.name}: {status}, but the trial was declared dead while "
                     f"this host ran it (no heartbeat for {job.settings.grace} s); its retry "
                     f"counts")
            return
        if note:
            me.record(number, "note", note)
        told = optuna_search.tell(study, number, outcome)
        cv = f", cv val accuracy {outcome.cv_accuracy:.4f}" if outcome and \
            outcome.cv_accuracy is not None else ""
        say(job, f"trial {number} {exp.name}: {status}{cv} in {time.monotonic() - started:.0f} s "
                 f"-> {told.lower()}; " + (note or "pushed"))


def end_runs(job: Job, number: int) -> str:
    """End the trial's MLflow runs that are still RUNNING (KILLED); how many, in words."""
    quiet = "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"  # no "View run" line per ended run
    before = os.environ.get(quiet)
    os.environ[quiet] = "true"
    try:
        return f"{len(store.end_trial_runs(trial_key(job.name, number), 'KILLED'))} ended KILLED"
    except Exception as error:  # noqa: BLE001 - MLflow down must not stop the study
        return f"not ended ({rdb.scrub(str(error).splitlines()[0], job.settings.uri)})"
    finally:
        if before is None:
            os.environ.pop(quiet)
        else:
            os.environ[quiet] = before


def run_experiment(job: Job, exp, key: str, slot):
    """``dvc exp run --temp -n <name> -S ...`` in its own process group (recorded in ``slot`` for
    the door), its output in the log; the experiment's outcome from `dvc exp show` (None if it
    has none). Tried again when another worker of this clone held DVC's lock."""
    log = log_path(job.name, exp.name)
    log.parent.mkdir(parents=True, exist_ok=True)
    env = dvc_queue.tool_env() | {"TUNELAB_THREADS": str(job.threads), "TUNELAB_TRIAL": key}
    if job.kind == "search":
        env[rdb.ENV] = job.settings.uri  # train's pruning hook reads the shared study
    command = ["dvc", "exp", "run", "--temp", "-n", exp.name, *exp.set_args()]
    for _ in range(ATTEMPTS):
        with open(log, "w") as out:
            process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT,
                                       start_new_session=True)
            slot.value = process.pid
            try:
                code = process.wait()
            except KeyboardInterrupt:
                stop(process)
                raise
            finally:
                slot.value = 0
        if code == 0 or LOCK_ERROR not in log.read_text(errors="replace"):
            break
        time.sleep(2.0)
    return dvc_queue.experiment_outcomes().get(exp.name)


def stop(process: subprocess.Popen) -> None:
    """Ctrl-C for the experiment's process group (train ends its MLflow runs KILLED), then kill."""
    kill_group(process.pid, signal.SIGINT)
    try:
        process.wait(timeout=STOP_WAIT)
    except subprocess.TimeoutExpired:
        kill_group(process.pid)
        process.wait()


def push(job: Job, name: str) -> str | None:
    """``dvc exp push <git remote> <name>``: None once pushed; else what happened. A name another
    host pushed first (the pair ran twice) is a duplicate, kept local and counted once."""
    text = ""
    for attempt in range(ATTEMPTS):
        done = dvc_queue.run_dvc(["exp", "push", job.settings.git_remote, name],
                                 capture_output=True, text=True)
        text = done.stdout + done.stderr
        if "diverged from remote experiment" in text:
            return f"duplicate: another host pushed {name} first; this host's copy stays local"
        if done.returncode == 0 and ("Pushed experiment" in text or "up to date on Git" in text):
            return None
        time.sleep(2.0 * (attempt + 1))
    last = text.strip().splitlines()[-1] if text.strip() else "no output"
    return f"not shared: `dvc exp push {job.settings.git_remote} {name}` failed: {last}"


