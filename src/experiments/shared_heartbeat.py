"""Liveness of a shared study's trials: a running trial's heartbeat, and what happens to a trial
whose heartbeat stopped (its host died): a live worker fails it once the heartbeat is older than
the grace period, which queues it again as a new waiting trial and ends its MLflow runs KILLED.
"""

from __future__ import annotations

import threading
import warnings

from src.experiments.shared_experiment import end_runs, say
from src.experiments.shared_study import Job


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


def fail_stale(study) -> None:
    """Optuna's check for trials whose heartbeat is older than the grace period: each is failed
    and handed to the storage's callback (:class:`StaleTrials`). Experimental since Optuna 2.9."""
    import optuna
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
