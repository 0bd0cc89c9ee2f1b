"""Where a study's experiments run: one run loop, one interface, two backends, for every policy.

A policy (a fixed grid: src/experiments/grid.py; adaptive seeds: src/experiments/adaptive.py)
decides *what* to run, round by round, from what has run; :func:`run_rounds` hands each round to
a backend, which runs it and says what has run:

- :class:`LocalQueue`: this machine's DVC queue (``dvc exp run --queue``, J queue workers), with
  the experiments of the current commit (`dvc exp show`) and those carried over from the
  committed study (src/experiments/carried.py);
- :class:`SharedStudy`: the Optuna study on PostgreSQL that the workers of every host take
  experiments from (src/experiments/shared_runner.py); what has run is what its trials recorded.

``known()`` returns outcomes keyed as they were found; a policy matches them to the experiments
it asks for by identity (:func:`sweep_runner.matched`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from src.experiments import carried, dvc_queue, rdb, shared_study, sweep_runner, sweep_spec
from src.experiments.exp_show import Outcome
from src.experiments.sweep_spec import Experiment


class Backend(Protocol):
    where: str  # said in the runner's lines

    def live(self) -> dict[str, Outcome]:
        """The outcomes of the experiments this backend ran (for this commit)."""

    def known(self, live: dict[str, Outcome] | None = None) -> dict[str, Outcome]:
        """``live`` (read if not given) and the committed study's carried experiments: every
        outcome that counts as run."""

    def run(self, todo: list[Experiment], in_order: list[Experiment]) -> dict[str, Outcome]:
        """Run ``todo`` (``in_order``: longest first) to the end; then :meth:`known`."""

    def report(self, experiments: list[Experiment], outcomes: dict[str, Outcome]) -> int:
        """Print the outcome of every one of ``experiments`` (``outcomes``: by their names); 1 if
        any failed or is missing, else 0."""


def run_rounds(backend: Backend, every: list[Experiment], base: dict,
               next_round: Callable[[dict[str, Outcome] | None], list[Experiment]],
               outcomes: dict[str, Outcome] | None = None,
               ) -> tuple[list[Experiment], dict[str, Outcome] | None]:
    """The run loop of every policy: ``next_round(outcomes)`` gives the experiments to run next
    ([] once the policy is done); ``backend`` runs them, longest first (``base``: params.yaml, for
    the order); their outcomes, with every other of ``every`` that counts as run (matched by
    identity: :func:`sweep_runner.matched`), go to the next call. ``outcomes``: what counted as
    run before the first round, or None where the first round needs none (a fixed grid: the
    backend itself skips what has run). The experiments asked for, and the last outcomes."""
    asked: dict[str, Experiment] = {}
    while todo := next_round(outcomes):
        asked |= {e.name: e for e in todo}
        outcomes = sweep_runner.matched(
            every, backend.run(todo, sweep_spec.longest_first(todo, base)))
    return list(asked.values()), outcomes


@dataclass
class LocalQueue:
    name: str
    jobs: int
    poll: float = dvc_queue.POLL_SECONDS
    where: str = "this machine's DVC queue"

    def live(self) -> dict[str, Outcome]:
        return dvc_queue.experiment_outcomes()

    def known(self, live: dict[str, Outcome] | None = None) -> dict[str, Outcome]:
        return sweep_runner.known_outcomes(self.name, live)

    def run(self, todo: list[Experiment], in_order: list[Experiment]) -> dict[str, Outcome]:
        return sweep_runner.run_experiments(self.name, todo, in_order, self.jobs, self.poll)

    def report(self, experiments: list[Experiment], outcomes: dict[str, Outcome]) -> int:
        return sweep_runner.report(self.name, experiments, outcomes)


@dataclass
class SharedStudy:
    """``job``: the sweep's shared study (src/experiments/shared_study.py). ``asked``: every
    experiment the policy may ask for. The study holds one definition (configurations, ``--set``
    included) of one commit (shared_study.check_identity refuses any other), so a trial's
    experiment name stands for the identity of the asked experiment of that name."""
    job: shared_study.Job
    asked: list[Experiment]
    create: bool = True  # create the study on first use (a dry run only reads it, if it exists)
    opened: bool = False  # the study exists (created, or checked against this clone's)

    @property
    def where(self) -> str:
        return self.job.where

    def live(self) -> dict[str, Outcome]:
        from src.experiments import shared_runner  # optuna, multiprocessing: only with --storage
        if not self.opened and self.create:  # the tables, the study (or its refusal), MLflow's
            shared_runner.prepare(self.job)    # experiment: once, before any worker
            self.opened = True
        try:
            trials = shared_runner.load_trials(self.job)
        except Exception:  # noqa: BLE001 - a dry run before the study exists: nothing ran
            if self.create:
                raise
            trials = []
        identities = {e.name: e.identity for e in self.asked}
        found = shared_study.trial_outcomes(trials)
        return {name: Outcome(o.name, o.state, o.cv_accuracy, identity=identities.get(name))
                for name, o in found.items()}

    def known(self, live: dict[str, Outcome] | None = None) -> dict[str, Outcome]:
        return carried.outcomes(self.job.name, self.live() if live is None else live)

    def run(self, todo: list[Experiment], in_order: list[Experiment]) -> dict[str, Outcome]:
        from src.experiments import shared_runner
        rdb.check_uri(self.job.settings.uri)
        shared_runner.prepare(self.job, in_order)  # waiting trials are taken in this order
        self.opened = True
        shared_runner.run_workers(self.job)
        return self.known()

    def report(self, experiments: list[Experiment], outcomes: dict[str, Outcome]) -> int:
        """From the study's trials: every host's share, duplicates, what is not done."""
        from src.experiments import shared_runner
        return shared_runner.report(self.job, experiments)
