"""A search as an Optuna study whose trials are queued DVC experiments: ask a batch, run it on the
queue, tell each result, until the study has its trials (random or TPE sampler, resumable).

Batches of --jobs: ask J trials, queue them, start J queue workers, wait, tell Optuna each result
(failed or diverged -> FAIL, pruned -> PRUNED), until the study has --trials trials. Running again
continues the study: unfinished trials are collected (queued again if their run was lost),
numbering goes on, a larger --trials adds trials. The sampler is seeded per batch from (--seed,
trials so far): a resumed search proposes what an uninterrupted one would, and --jobs 1 with the
same seed proposes the same trials again.
"""

from __future__ import annotations

import math
import sys
import time
from collections import Counter

import numpy as np
import optuna
from filelock import FileLock, Timeout
from optuna.trial import TrialState

from src.core import naming, params
from src.core.errors import ParamError, TunelabError
from src.core.status import Status
from src.experiments import dvc_queue, pruning, sweep_runner, sweep_spec
from src.experiments.exp_show import Outcome
from src.experiments.search_spec import Search
from src.tracking import store

IDLE_WORKER_WAIT = 60.0  # seconds to wait for idle queue workers to exit between batches

def experiment(search: Search, number: int, sampled: dict, base: dict,
               extra: dict) -> sweep_spec.Experiment:
    """Trial ``number`` as a DVC experiment ``<search>--t<NNN>--s<train.seed>`` (validated)."""
    overrides = search.fixed | extra | search.decode(sampled)
    seed = params.validate_all(sweep_spec.apply(base, overrides))["train"].seed
    return sweep_spec.Experiment(search.name, naming.trial_config(number), seed, overrides)


def make_sampler(kind: str, seed: int, n_trials: int, startup_trials: int = 10):
    """A sampler seeded from (seed, trials so far): after a restart it proposes what an
    uninterrupted run would have (a sampler re-created from the bare seed repeats itself)."""
    batch_seed = int(np.random.SeedSequence([seed, n_trials]).generate_state(1)[0])
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=batch_seed)
    return optuna.samplers.TPESampler(seed=batch_seed, n_startup_trials=startup_trials)


def open_study(search: Search, storage, extra: dict) -> optuna.Study:
    """The search's study, created or continued; refuses a journal made with another space."""
    study = optuna.create_study(study_name=search.name, storage=storage, direction="maximize",
                                load_if_exists=True)
    known, mine = study.user_attrs.get("definition"), search.fingerprint(extra)
    if known not in (None, mine):
        raise TunelabError(f"search {search.name}: the space or fixed values (--set included) "
                           f"differ from those of the trials in {pruning.journal_path(search.name)};"
                           f" restore them, or move the journal away to start a new study\n"
                           f"  journal: {known}\n  now:     {mine}")
    study.set_user_attr("definition", mine)
    study.set_user_attr("pruner", search.pruner)  # read by train's pruning hook
    return study


def tell(study: optuna.Study, number: int, outcome: Outcome | None) -> str:
    """Report a trial's DVC outcome to Optuna; returns the state it was given."""
    value = outcome.cv_accuracy if outcome else None
    if outcome and outcome.state == Status.PRUNED:
        told = {"state": TrialState.PRUNED}
    elif outcome and outcome.state.usable and value is not None \
            and math.isfinite(value):
        told = {"values": value}
    else:
        told = {"state": TrialState.FAIL}
    return study.tell(number, skip_if_finished=True, **told).state.name


def optimize(study: optuna.Study, search: Search, n_trials: int, jobs: int, seed: int,
             sampler: str, runner, base: dict, extra: dict, log=print) -> list[sweep_spec.Experiment]:
    """Finish unfinished trials, then ask / run / tell batches of ``jobs`` until the study has
    ``n_trials`` trials. ``runner(experiments) -> {name: Outcome}`` runs them (DVC, or a fake)."""
    ran, batch = [], study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    if batch:
        log(f"search {search.name}: resuming {len(batch)} unfinished trial(s)")
    while True:
        if not batch:
            done = len(study.get_trials(deepcopy=False))
            if done >= n_trials:
                break
            study.sampler = make_sampler(sampler, seed, done, search.startup_trials)
            batch = [study.ask(search.distributions()) for _ in range(min(jobs, n_trials - done))]
        exps = {}
        for trial in batch:
            try:
                exps[trial.number] = experiment(search, trial.number, trial.params, base, extra)
            except ParamError as error:  # e.g. an int norm_groups that divides no channel count
                log(f"trial {trial.number}: refused, {error} -> "
                    f"{tell(study, trial.number, None)}")
                continue
            if isinstance(trial, optuna.Trial):  # train's pruning hook checks the name
                trial.set_user_attr("experiment", exps[trial.number].name)
        for warning in sweep_spec.config_warnings(list(exps.values()), base):
            log(warning)  # before queueing, as a sweep does: not only in a worker's log
        outcomes = runner(list(exps.values())) if exps else {}
        for number, exp in exps.items():
            outcome = outcomes.get(exp.name)
            cv = f"{outcome.cv_accuracy:.4f}" if outcome and outcome.cv_accuracy is not None else "-"
            log(f"trial {number} {exp.name}: {outcome.state if outcome else 'missing'}, cv val "
                f"accuracy {cv} -> {tell(study, number, outcome)}")
        ran += exps.values()
        batch = []
    return ran


def queue_and_wait(experiments: list[sweep_spec.Experiment], jobs: int,
                   poll: float) -> dict[str, Outcome]:
    """Queue what has neither run nor is queued, start ``jobs`` workers, wait; the outcomes."""
    tasks, workers = dvc_queue.queue_state()
    deadline = time.monotonic() + IDLE_WORKER_WAIT
    while workers and not any(t.status in ("Queued", "Running") for t in tasks) \
            and time.monotonic() < deadline:
        # The last batch's workers exit ~10 s after the queue empties, and `start_workers`
        # skips workers that are still alive: let them go, so that fresh workers take this batch.
        time.sleep(poll)
        tasks, workers = dvc_queue.queue_state()
    outcomes = dvc_queue.experiment_outcomes()
    pending = {t.name: t for t in tasks if t.status in ("Queued", "Running")}
    todo = [e for e in experiments if e.name not in outcomes and e.name not in pending]
    task_ids = dvc_queue.enqueue(todo, tasks) | {
        pending[e.name].task_id for e in experiments if e.name in pending}
    if task_ids:
        dvc_queue.share_machine(jobs)
        dvc_queue.start_workers(jobs)
        outcomes = dvc_queue.run_queued(task_ids, experiments, poll, jobs)[1]
    return {e.name: outcomes[e.name] for e in experiments if e.name in outcomes}


def check_strays(study: optuna.Study, search: Search) -> None:
    """Refuse trial-named experiments on this commit that the journal does not know (it was
    deleted?): new trials would reuse their names."""
    known = {t.user_attrs.get("experiment") for t in study.get_trials(deepcopy=False)}
    strays = sorted(n for n in dvc_queue.experiment_outcomes()
                    if (naming.parse_trial_name(n) or ("",))[0] == search.name and n not in known)
    if strays:
        raise TunelabError(f"search {search.name}: experiments {', '.join(strays)} exist on this "
                           f"commit but not in {pruning.journal_path(search.name)}; remove them "
                           f"(`dvc exp remove {' '.join(strays)}`) or use another search name")


def summary(study: optuna.Study, search: Search) -> str:
    trials = study.get_trials(deepcopy=False)
    counts = ", ".join(f"{n} {s.lower()}" for s, n in
                       sorted(Counter(t.state.name for t in trials).items()))
    line = f"search {search.name}: {len(trials)} trials ({counts})"
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not done:
        return line
    best = max(done, key=lambda t: t.value)
    values = ", ".join(f"{k}={naming.format_value(v)}" for k, v in search.decode(best.params).items())
    return (f"{line}\nbest: {best.user_attrs.get('experiment')}, cv val accuracy {best.value:.4f} "
            f"(one seed: confirm it over seeds with a sweep): {values}")


def dry_run(search: Search, trials: int, jobs: int, sampler: str, seed: int, base: dict,
            extra: dict) -> None:
    """Print the batch the real run would queue next (later batches depend on its results)."""
    storage, path = optuna.storages.InMemoryStorage(), pruning.journal_path(search.name)
    if path.is_file():  # a copy of the real study: the journal is left untouched
        optuna.copy_study(from_study_name=search.name, from_storage=pruning.open_journal(path),
                          to_storage=storage)
    study = optuna.create_study(study_name=search.name, storage=storage, direction="maximize",
                                load_if_exists=True)
    known = study.get_trials(deepcopy=False)
    batch = [t for t in known if t.state == TrialState.RUNNING]
    if not batch:
        study.sampler = make_sampler(sampler, seed, len(known), search.startup_trials)
        batch = [study.ask(search.distributions())
                 for _ in range(max(0, min(jobs, trials - len(known))))]
    exps = [experiment(search, trial.number, trial.params, base, extra) for trial in batch]
    for warning in sweep_spec.config_warnings(exps, base):
        print(warning, file=sys.stderr)
    for exp in exps:
        print(f"dvc exp run --queue -n {exp.name} {' '.join(exp.set_args())}")
    print(f"search {search.name} ({sampler}, seed {seed}): {len(known)} of "
          f"{trials} trials in the journal, {len(batch)} in the next batch; nothing queued "
          f"(--dry-run)")


def run(search: Search, trials: int, jobs: int, seed: int, sampler: str, base: dict, extra: dict,
        poll: float = dvc_queue.POLL_SECONDS) -> int:
    """`python -m src.search`: run the search to ``trials`` trials; 0 when no trial failed."""
    path = pruning.journal_path(search.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = path.with_name(f"{search.name}.run.lock")  # not <journal>.lock: Optuna's own lock
    try:
        with FileLock(str(lock), timeout=0):
            store.init_store()  # before any worker starts, as sweep does
            study = open_study(search, pruning.open_journal(path), extra)
            check_strays(study, search)
            ran = optimize(study, search, trials, jobs, seed, sampler,
                           lambda exps: queue_and_wait(exps, jobs, poll), base, extra,
                           log=lambda line: print(line, flush=True))
    except Timeout:
        raise TunelabError(f"search {search.name} is already running ({lock} is held)") from None
    print(summary(study, search))
    # names every failed experiment with the end of its log
    return 1 if ran and sweep_runner.report(search.name, ran) else 0
