"""How a run ended: one vocabulary for the training loop, metrics.json, MLflow, sweeps and studies.

A :class:`Status` is a ``str`` (``Status.COMPLETED == "completed"``), so it is written to
metrics.json and compared with what `dvc exp show` reads back as the plain word.

    completed       trained every epoch
    early_stopped   stopped by ``train.patience``: a finished run, usable like a completed one
    diverged        the loss blew up; recorded with its reason, excluded from statistics
    pruned          stopped by a search's pruning rule; excluded from statistics
    failed          the experiment did not produce metrics (a crash, a refused value)
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    COMPLETED = "completed"
    EARLY_STOPPED = "early_stopped"
    DIVERGED = "diverged"
    PRUNED = "pruned"
    FAILED = "failed"

    @property
    def mlflow(self) -> str:
        """The MLflow run status a run of this outcome ends with."""
        return "FAILED" if self in (Status.DIVERGED, Status.FAILED) else "FINISHED"

    @property
    def usable(self) -> bool:
        """Whether the run's metrics enter a study's statistics."""
        return self in (Status.COMPLETED, Status.EARLY_STOPPED)

    @property
    def stopped(self) -> bool:
        """Whether the run ended before its folds were all trained (no test-set metrics)."""
        return self in (Status.DIVERGED, Status.PRUNED)


EXCLUDED = tuple(s.value for s in Status if not s.usable)  # never enter the statistics


def parse(value) -> Status:
    """A status word as read back from metrics.json; anything unknown counts as failed."""
    try:
        return Status(str(value))
    except ValueError:
        return Status.FAILED


def usable(frame):
    """The rows of an experiments table (``state`` and ``cv_accuracy`` columns) that enter the
    statistics: a usable state and a CV accuracy. Shared by the sweep and the search studies."""
    return frame[~frame["state"].isin(EXCLUDED) & frame["cv_accuracy"].notna()]
