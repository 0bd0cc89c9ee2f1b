"""How well a sweep used its workers: training time against the workers' wall time, over the
experiments it trained (not those DVC restored from its run cache). `sweep run` prints it and keeps
it in .tunelab/sweeps/<name>.json; benchmarks/train_speed.py reports it against the usual loop."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from src.core import atomic, naming, paths
from src.experiments.dvc_queue import Task
from src.experiments.exp_show import Outcome
from src.tracking import store


@dataclass(frozen=True)
class Efficiency:
    """How well a sweep used its workers: training time against the workers' wall time."""
    experiments: int
    workers: int
    wall_seconds: float
    train_seconds: float  # the training loops (epochs, validation included), summed
    train_samples: float

    @property
    def samples_per_second(self) -> float:
        return self.train_samples / self.wall_seconds

    @property
    def training_share(self) -> float:
        return self.train_seconds / (self.workers * self.wall_seconds)

    def describe(self) -> str:
        return (f"{self.experiments} experiments in {self.wall_seconds:,.0f} s on {self.workers} "
                f"worker(s): {self.train_samples / 1e6:.2f} M training samples, "
                f"{self.samples_per_second:,.0f} samples/s; training (epochs, validation "
                f"included) filled {self.training_share:.1%} of the workers' time, overhead "
                f"{1 - self.training_share:.1%} (queueing, DVC workspaces and commits, process "
                f"start-up, MLflow and DVCLive, test-set evaluation, figures, idle workers)")

    def record(self, sweep: str, threads: int) -> dict:
        return {"sweep": sweep, "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "experiments": self.experiments, "workers": self.workers,
                "threads_per_worker": threads, "cpu_count": os.cpu_count(),
                "wall_seconds": round(self.wall_seconds, 1),
                "train_seconds": round(self.train_seconds, 1),
                "train_samples": round(self.train_samples),
                "samples_per_second": round(self.samples_per_second, 1),
                "training_share": round(self.training_share, 4)}


def efficiency(outcomes: list[Outcome], workers: int, wall_seconds: float) -> Efficiency | None:
    """The sweep's efficiency over the experiments it trained; None when there are none, or when
    one's metrics lack the training time or the data size."""
    if not outcomes or any(o.train_seconds is None or o.train_samples is None for o in outcomes):
        return None
    return Efficiency(len(outcomes), workers, wall_seconds,
                      sum(o.train_seconds for o in outcomes), sum(o.train_samples for o in outcomes))



def report_efficiency(name: str, ran: list[Task], outcomes: dict[str, Outcome], jobs: int,
                      threads: int, wall: float, started_at: float) -> None:
    """Print the sweep's efficiency over the experiments it trained and record it in
    .tunelab/sweeps/<name>.json."""
    try:
        trained = store.trained_since(started_at, f"{name}{naming.SEP}")
    except Exception as error:  # the results stand; only this figure is missing
        print(f"efficiency not measured: reading the MLflow runs failed: {error}")
        return
    counted, cached = trained_outcomes(ran, outcomes, trained)
    if cached:
        print(f"{len(cached)} experiment(s) came back from DVC's run cache without training "
              f"(not counted below): {', '.join(cached)}")
    measured = efficiency(counted, jobs, wall)
    if measured is not None:
        print(f"sweep {name}: {measured.describe()}")
        atomic.write_json(paths.SWEEP_RECORDS / f"{name}.json", measured.record(name, threads))


def trained_outcomes(tasks, outcomes: dict[str, Outcome],
                     trained: set[str]) -> tuple[list[Outcome], list[str]]:
    """The outcomes of the succeeded ``tasks`` whose training ran in this sweep, and the names of
    those restored from DVC's run cache instead: their metrics (training time included) are the
    earlier run's."""
    succeeded = [t.name for t in tasks if t.status == "Success" and t.name in outcomes]
    return ([outcomes[n] for n in succeeded if n in trained],
            [n for n in succeeded if n not in trained])


