"""A worker process of a shared study (started by src/experiments/shared_supervisor.py).

Until no trial waits and none runs (it waits while other hosts' trials run, so that it can take
over one whose host dies): fails the trials whose heartbeat is older than the grace period
(src/experiments/shared_heartbeat.py); takes the next trial (a sweep's next waiting pair; a
search's `Study.ask`, TPE with the constant liar); runs it as the usual DVC experiment with its
heartbeat, shares it, and tells the study (src/experiments/shared_experiment.py). One `dvc exp
run` at a time per worker; threads per experiment = cores / --jobs.
"""

from __future__ import annotations

import os
import sys
import time
import zlib
from collections import Counter
from dataclasses import dataclass

from src.core import errors
from src.core.errors import ParamError, TunelabError
from src.core.status import Status
from src.experiments import rdb, shared_study
from src.experiments.shared_experiment import end_runs, push, run_experiment, say, trial_key
from src.experiments.shared_heartbeat import Heartbeat, StaleTrials, fail_stale
from src.experiments.shared_study import Job
from src.experiments.sweep_spec import Experiment
from src.tracking import store


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
