"""A sweep or a search as one Optuna study on PostgreSQL that every host's workers take trials from:
what the study holds, creating it once, refusing one made from other code, and reading it back.

A sweep's study holds one trial per (configuration, seed) pair, enqueued by the first host's
`sweep run --storage` (`Study.enqueue_trial`, params ``config`` and ``seed``; user attr
``experiment`` = the usual name ``<sweep>--<config>--s<seed>``); workers take waiting trials, so a
pair is handed out once. A search's study is the TPE / random study it is on one machine, its
trials asked by each worker. Study user attrs say what made it: ``tunelab.kind`` (sweep | search),
``tunelab.commit`` (git HEAD) and ``tunelab.definition`` (the configurations or the search space
with every fixed value, --set included); a host on another commit or with another definition is
refused before anything starts.

Trial user attrs: ``experiment``, ``host``, ``status`` (the experiment's outcome: completed,
early_stopped, diverged, pruned, failed), ``note`` (a duplicate, a push that lost a race, a trial
declared dead while its host still ran it). A trial whose host died is failed by a live worker once
its heartbeat is older than the grace period, and retried as a new waiting trial with the same
params (RetryHeartbeatStaleTrialCallback). The worker processes are in
src/experiments/shared_worker.py.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from src.core.errors import TunelabError
from src.core.status import Status
from src.experiments import rdb, sweep_spec
from src.experiments.exp_show import Outcome

if TYPE_CHECKING:
    from src.experiments.search_spec import Search

SEED_RANGE = (0, 1_000_000)  # the seed param's distribution (fixed per trial; one for the study)
PRODUCED = {s.value for s in Status if s != Status.FAILED}  # the experiment left metrics


@dataclass(frozen=True)
class Settings:
    """How the workers of one host run: the storage, heartbeats, where experiments are shared."""
    uri: str
    jobs: int = 1
    heartbeat: int = 10   # seconds between a running trial's heartbeats
    grace: int = 60       # seconds without one before a live worker fails the trial and retries it
    poll: float = 5.0     # seconds a worker waits while the other hosts' trials run
    git_remote: str = "origin"
    max_retry: int = 3    # retries of a trial whose host died (then it stays failed)


@dataclass(frozen=True)
class Job:
    """What a worker process needs, picklable. ``configs``: a sweep's configuration label ->
    its overrides (--set included, train.seed not); ``search``: a search's space."""
    kind: str    # sweep | search
    name: str    # the sweep's or search's name = the study's name
    settings: Settings
    commit: str
    definition: str
    configs: dict = field(default_factory=dict)
    search: Search | None = None
    base: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)
    trials: int = 0         # a search's trials in all
    sampler: str = "tpe"
    seed: int = 0           # a search's sampler seed
    threads: int = 1        # torch threads per worker
    worker: int = 1

    @property
    def where(self) -> str:
        return f"shared study {self.name} in {rdb.mask(self.settings.uri)}"


def sweep_definition(sweep: sweep_spec.Sweep, extra: dict) -> tuple[dict, str]:
    """A sweep's configurations (label -> overrides with --set) and their fingerprint."""
    configs = {sweep.label(c): c | extra for c in sweep.configs}
    return configs, json.dumps({"sweep": sweep.name, "configs": configs}, sort_keys=True,
                               default=str)


def check_identity(attrs: dict, job: Job) -> None:
    """Refuse a study that another kind of run, another commit or another definition made."""
    kind, commit = attrs.get("tunelab.kind"), attrs.get("tunelab.commit")
    remove = (f"or remove the study (`optuna delete-study --study-name {job.name} --storage "
              f"\"$TUNELAB_STORAGE\"`)")
    if kind is None:
        if attrs:
            raise TunelabError(f"{job.where} was not made by tunelab; use another database")
        return
    if kind != job.kind:
        raise TunelabError(f"{job.where} is a {kind}'s, not a {job.kind}'s; {remove}")
    if commit != job.commit:
        raise TunelabError(f"{job.where} was created from commit {str(commit)[:12]}, this clone "
                           f"is at {job.commit[:12]}: run every host on the same commit "
                           f"(`git checkout {str(commit)[:12]}`), {remove}")
    if attrs.get("tunelab.definition") != job.definition:
        what = "configurations" if job.kind == "sweep" else "space or fixed values"
        raise TunelabError(f"{job.where} was created from another definition of {job.kind} "
                           f"{job.name} (its {what}, --set included, differ from this clone's); "
                           f"restore them, {remove}")


def open_study(job: Job, storage, sampler=None):
    """The job's study, created on first use; refused (TunelabError) if made by other code.
    Call under :func:`rdb.creation_lock` to create; workers only load."""
    import optuna
    try:
        study = optuna.create_study(study_name=job.name, storage=storage, direction="maximize",
                                    sampler=sampler, load_if_exists=True)
        attrs = study.user_attrs
    except TunelabError:
        raise
    except Exception as error:  # noqa: BLE001 - the database refused: one masked line
        raise rdb.storage_error(job.settings.uri, error) from None
    check_identity(attrs, job)
    if "tunelab.kind" not in attrs:
        for key, value in (("tunelab.kind", job.kind), ("tunelab.commit", job.commit),
                           ("tunelab.definition", job.definition)):
            study.set_user_attr(key, value)
        if job.search is not None:
            study.set_user_attr("pruner", job.search.pruner)  # read by train's pruning hook
    return study


def produced(trial) -> bool:
    """Whether a trial's experiment ran to metrics (any status but failed)."""
    return trial.state.is_finished() and trial.user_attrs.get("status") in PRODUCED


def to_enqueue(trials, experiments: list[sweep_spec.Experiment]) -> list[sweep_spec.Experiment]:
    """The sweep's experiments that no trial has produced, and none waits for or runs: new pairs,
    and pairs whose experiment failed (re-run, as `sweep run` does on one machine)."""
    from optuna.trial import TrialState
    taken = {t.user_attrs.get("experiment") for t in trials
             if t.state in (TrialState.WAITING, TrialState.RUNNING) or produced(t)}
    return [e for e in experiments if e.name not in taken]


def enqueue(study, experiments: list[sweep_spec.Experiment]) -> None:
    for exp in experiments:
        study.enqueue_trial({"config": exp.config, "seed": exp.seed},
                            user_attrs={"experiment": exp.name})


def retried(trials) -> set[int]:
    """Numbers of the trials that were failed as stale and retried under a new number (each
    retry's ``retry_history``, as RetryHeartbeatStaleTrialCallback.retry_history reads it)."""
    return {n for t in trials for n in t.system_attrs.get("retry_history", [])}


def counted(trials) -> list:
    """The trials that count towards a search's --trials: not those retried under a new number,
    not duplicates."""
    gone = retried(trials)
    return [t for t in trials if t.number not in gone and "duplicate_of" not in t.user_attrs]


def duplicates(trials) -> dict[str, list[int]]:
    """Experiments produced by more than one trial (the engine handed a pair out twice, e.g. to a
    host declared dead that was not): name -> trial numbers. Counted once everywhere."""
    by_name = defaultdict(list)
    for t in trials:
        if produced(t):
            by_name[t.user_attrs.get("experiment")].append(t.number)
    return {name: numbers for name, numbers in by_name.items() if len(numbers) > 1}


def rival(trials, number: int, name: str):
    """Another trial that ran or runs experiment ``name``: a live RUNNING one, or one that
    produced it; None if there is none."""
    from optuna.trial import TrialState
    return next((t for t in trials if t.number != number and t.user_attrs.get("experiment") == name
                 and (t.state == TrialState.RUNNING or produced(t))), None)


def best_trials(trials) -> dict:
    """Experiment name -> its best finished trial: produced beats failed, then the earliest trial
    (the one the others duplicated)."""
    best = {}
    for t in sorted(trials, key=lambda t: (not produced(t), t.number)):
        name = t.user_attrs.get("experiment")
        if name and name not in best and t.state.is_finished() and "duplicate_of" not in t.user_attrs:
            best[name] = t
    return best


def trial_outcomes(trials) -> dict[str, Outcome]:
    """Experiment name -> its outcome as its best trial recorded it: the status, and the CV
    accuracy Optuna was told (None unless the trial completed)."""
    return {name: Outcome(name, t.user_attrs.get("status", Status.FAILED),
                          t.value if t.state.name == "COMPLETE" else None)
            for name, t in best_trials(trials).items()}


def outcome_by_name(trials) -> dict[str, tuple[str, str]]:
    """Experiment name -> (status, host) of its best trial."""
    return {name: (t.user_attrs.get("status", Status.FAILED), t.user_attrs.get("host", ""))
            for name, t in best_trials(trials).items()}


PENDING = "still running or waiting"  # a worker on some host has it, or will take it


def sweep_summary(name: str, experiments: list[sweep_spec.Experiment],
                  trials) -> tuple[str, dict[str, str]]:
    """The door's closing lines for a sweep and the names not done (failed, or still running or
    waiting: this host's workers were killed, say): states over this run's experiments, every
    host's share, and each experiment run twice (counted once)."""
    from optuna.trial import TrialState
    outcomes = outcome_by_name(trials)
    pending = {t.user_attrs.get("experiment") for t in trials
               if t.state in (TrialState.WAITING, TrialState.RUNNING)}
    states, not_done = Counter(), {}
    for exp in experiments:
        status = outcomes.get(exp.name, (Status.FAILED, ""))[0]
        if status == Status.FAILED and exp.name in pending:
            status = PENDING
        states[status] += 1
        if status in (Status.FAILED, PENDING):
            not_done[exp.name] = status
    lines = [f"sweep {name}: " + ", ".join(f"{n} {s}" for s, n in sorted(states.items())) +
             f" (of {len(experiments)})"]
    hosts = Counter(host for n, (_, host) in outcomes.items()
                    if n in {e.name for e in experiments} and host)
    if hosts:
        lines.append("ran on: " + ", ".join(f"{h} ({n})" for h, n in sorted(hosts.items())))
    for exp_name, numbers in sorted(duplicates(trials).items()):
        lines.append(f"{exp_name} was run {len(numbers)} times (trials "
                     f"{', '.join(map(str, numbers))}): counted once")
    return "\n".join(lines), not_done
