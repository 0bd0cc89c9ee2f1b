"""One trial's experiment on this host, for a worker of a shared study
(src/experiments/shared_worker.py): run it as the usual DVC experiment, ``dvc exp run --temp -n
<name> -S ...``, in its own process group (so that the supervisor can take it down with a killed
worker), its output in .tunelab/shared/<study>/<name>.log; stop it on Ctrl-C; share it with ``dvc
exp push <git remote> <name>`` (DVC outputs go to the DVC remote); end its MLflow runs KILLED when
its trial is declared dead. And a worker's printed lines: ``[<host> w<worker>] ...``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

from src.core import paths
from src.experiments import dvc_queue, rdb
from src.experiments.shared_study import Job
from src.tracking import store

LOCK_ERROR = "Unable to acquire lock"
ATTEMPTS = 3        # `dvc exp run` tries when another worker held the repository lock; pushes
STOP_WAIT = 30.0    # seconds an interrupted experiment has to end its MLflow runs


def log_path(study: str, name: str):
    return paths.repo_root() / paths.SHARED_LOGS / study / f"{name}.log"


def say(job: Job, line: str) -> None:
    print(f"[{store.host()} w{job.worker}] {line}", flush=True)


def trial_key(study: str, number: int) -> str:
    return f"{study}#{number}"


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


def kill_group(pgid: int, sig: int = signal.SIGKILL) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


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
