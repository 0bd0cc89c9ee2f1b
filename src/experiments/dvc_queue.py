"""DVC's experiment queue and `dvc exp show`, driven as subprocesses: queueing experiments, starting
and watching queue workers, reading their outcomes.

Workarounds for DVC's queue live here, each with its reason: reads retried when DVC caught a file
mid-write, workers counted from the process table (DVC's own count misses busy workers), workers
started again after DVC's file queue lets two race on one message (dvc-task#73), Running tasks
that no process runs any more cleared, experiments whose result DVC lost while collecting it
queued again once.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from src.core import hooks
from src.core.errors import TunelabError
from src.core.queue_workers import (
    CELERY_DIR,
    parse_worker_serials,
    process_cmdlines,
    threads_per_worker,
    worker_node_prefix,
)
from src.experiments import exp_show, pruning
from src.experiments.sweep_spec import Experiment

POLL_SECONDS = 5.0
LOG_TAIL = 15


# DVC rewrites a running experiment's infofile in place, not atomically: a `queue status` or
# `exp show` that reads it mid-write fails ("unexpected error - Expecting value: line 1 column 1").
# Read-only queries are retried on that; commands that change the queue are not (a retry could
# queue twice).
TRANSIENT_READ_ERROR = "unexpected error"


def tool_env() -> dict[str, str]:
    """The environment for `dvc` and the stages it runs: this interpreter's bin directory first on
    PATH, so that `.venv/bin/python -m src.sweep ...` finds the venv's `dvc`, and the stages'
    `python` is this same interpreter, without activating the venv; and train's epoch hook
    ($TUNELAB_EPOCH_HOOK, unless already set) is the search's pruning rule, so that every trial a
    queue worker runs reports to its search, whichever sweep or search started the worker."""
    bindir = str(Path(sys.executable).parent)
    path = os.environ.get("PATH", "")
    return {hooks.ENV: pruning.HOOK, **os.environ,
            "PATH": os.pathsep.join([bindir, path]) if path else bindir}


def run_dvc(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    """``subprocess.run(["dvc", *args])`` in :func:`tool_env`; a clear error when dvc is missing."""
    env = tool_env()
    try:
        return subprocess.run(["dvc", *args], env=env, **kwargs)
    except FileNotFoundError:
        raise dvc_missing() from None


def dvc_missing() -> TunelabError:
    return TunelabError(
        f"`dvc` was not found next to {sys.executable} or on PATH: install the project with "
        "`bash setup.sh`, then run tunelab with `.venv/bin/python -m ...` or after "
        "`source .venv/bin/activate`")


def dvc(*args: str, check: bool = True, lock_wait: float = 120.0, read_only: bool = False,
        sleep=time.sleep) -> str:
    """Run a dvc command; its stdout, or a TunelabError with its output. While another DVC process
    (a second sweep, a worker committing) holds the repository lock, wait and retry; a read-only
    query is also retried when it caught a file mid-write."""
    deadline = time.monotonic() + lock_wait
    while True:
        done = run_dvc(list(args), capture_output=True, text=True)
        transient = "Unable to acquire lock" in done.stderr or (
            read_only and done.returncode != 0 and TRANSIENT_READ_ERROR in done.stderr)
        if not transient or time.monotonic() > deadline:
            break
        sleep(1.0)
    if check and done.returncode != 0:
        raise TunelabError(f"`dvc {' '.join(args)}` failed:\n{done.stdout}{done.stderr}".rstrip())
    return done.stdout


@dataclass(frozen=True)
class Task:
    task_id: str
    name: str
    status: str  # Queued | Running | Success | Failed


def parse_queue_status(text: str) -> list[Task]:
    """Rows of `dvc queue status`: ``<task> <name> <created...> <status>``."""
    tasks = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[-1] in {"Queued", "Running", "Success", "Failed"}:
            tasks.append(Task(fields[0], fields[1], fields[-1]))
    return tasks


def live_workers() -> set[int]:
    """Serial numbers of this repository's queue workers that have a live process. Not from `dvc
    queue status`: its worker count is a celery broadcast that busy workers often miss (measured:
    two workers training reported "0 active, 0 idle" on two polls in a row), and acting on it
    started duplicate workers."""
    return parse_worker_serials(process_cmdlines(), worker_node_prefix())


def spawn_worker(num: int) -> None:
    """Start queue worker <num> as `dvc queue start` does (same node name, same log files; worker
    1 cleans up the queue when it exits), detached, in :func:`tool_env`."""
    node = f"{worker_node_prefix()}{num}@localhost"
    cmd = ["dvc", "exp", "queue-worker", node] + (["--clean"] if num == 1 else [])
    os.makedirs(CELERY_DIR, exist_ok=True)
    spawn_detached(cmd, env=tool_env(), wdir=CELERY_DIR, name=f"dvc-exp-worker-{num}")


def spawn_detached(cmd: list[str], env: dict, wdir: str, name: str) -> None:
    """Run ``cmd`` in the background under dvc-task's `ManagedProcess` (output to <wdir>/<name>.out,
    pid and exit code in <name>.json, as `dvc queue start` does), in a new session whose standard
    streams are /dev/null. `ManagedProcess.spawn` forks this process to wait on the command, and
    that fork kept our stdout and stderr open for the worker's whole life: a caller that reads
    `sweep run`'s output to its end (a pipe to `tee`, `subprocess.run(capture_output=True)`) hung
    until the worker exited, which an idle worker may not do for minutes."""
    # The command travels in the environment, not in argv: the waiter's command line must not
    # look like a worker's to live_workers() and queue_processes(), which read the process table.
    waiter = ("import json, os\n"
              "from dvc_task.proc.process import ManagedProcess\n"
              "cmd, wdir, name = json.loads(os.environ.pop('TUNELAB_DETACHED'))\n"
              "with ManagedProcess(cmd, env=dict(os.environ), wdir=wdir, name=name):\n"
              "    pass\n")
    subprocess.Popen([sys.executable, "-c", waiter],
                     env=env | {"TUNELAB_DETACHED": json.dumps([cmd, wdir, name])},
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL, start_new_session=True)


def start_workers(jobs: int) -> list[int]:
    """Start those of queue workers 1..``jobs`` that have no live process; the ones started.
    (`dvc queue start -j J` decides from the same unreliable celery broadcast as `dvc queue status`
    and starts a second copy of a busy worker.)"""
    if not shutil.which("dvc", path=tool_env()["PATH"]):
        raise dvc_missing()
    alive = live_workers()
    missing = [num for num in range(1, jobs + 1) if num not in alive]
    for num in missing:
        spawn_worker(num)
    return missing


def remove_finished_tasks(names: list[str], tasks: list[Task]) -> None:
    """Remove from DVC's queue the finished tasks (a failed earlier attempt) that hold one of
    ``names``, so that the names can be queued again. One `dvc queue remove` for all of them: each
    call takes ~1.2 s, and the workers wait for the queueing."""
    finished = sorted({t.name for t in tasks if t.status not in ("Queued", "Running")} & set(names))
    if finished:
        dvc("queue", "remove", *finished, check=False)


def enqueue(experiments: list[Experiment], tasks: list[Task]) -> set[str]:
    """Queue ``experiments`` in this order on DVC's queue; the new tasks' ids. ``tasks`` is the
    queue as read just before (each `dvc queue status` takes ~2.5 s while the workers wait)."""
    if not experiments:
        return set()
    remove_finished_tasks([e.name for e in experiments], tasks)
    for exp in experiments:
        dvc("exp", "run", "--queue", "-n", exp.name, *exp.set_args())
    before = {t.task_id for t in tasks}
    return {t.task_id for t in queue_tasks() if t.task_id not in before}


def queue_state() -> tuple[list[Task], int]:
    """The queue's tasks and the number of live workers."""
    return parse_queue_status(dvc("queue", "status", read_only=True)), len(live_workers())


def queue_tasks() -> list[Task]:
    return queue_state()[0]


def queue_processes() -> str:
    """The command lines of the queue's workers and running experiments, from the process table:
    they change whenever an experiment starts or ends. Reading them takes milliseconds; a `dvc
    queue status` takes ~2.5 CPU-seconds, which, every 5 s, took a quarter of a core from the
    experiments of a 2-core machine."""
    return "\n".join(sorted(line for line in process_cmdlines()
                            if "exec-run" in line or "queue-worker" in line))


def live_runs() -> str:
    """Command lines of the running `dvc exp exec-run` processes: each names its task's infofile,
    ``.dvc/tmp/exps/run/<rev>/<rev>.run``, and a task id is a prefix of that rev."""
    return "\n".join(line for line in process_cmdlines() if "exec-run" in line)


def orphans(tasks: list[Task], runs: str) -> list[Task]:
    """Tasks DVC lists as Running with no process running them: their worker was killed (SIGKILL,
    OOM) and the run ended with it or after it, but nobody told the queue."""
    return [t for t in tasks if t.status == "Running" and f"/{t.task_id}" not in runs]


def clear(task: Task) -> None:
    """`dvc queue kill` takes the stale Running entry off the queue; whether the experiment itself
    finished is then read from `dvc exp show` like any other."""
    dvc("queue", "kill", task.name, check=False)


def exp_show_json(all_commits: bool = False) -> list:
    """`dvc exp show --json` (of every commit with ``all_commits``), parsed."""
    return json.loads(dvc("exp", "show", "--json", *(["-A"] if all_commits else []),
                          read_only=True) or "[]")


def pull_experiments(git_remote: str, all_commits: bool = False) -> str:
    """`dvc exp pull` the experiments of the current commit (of every commit with
    ``all_commits``) that other hosts pushed to ``git_remote``: their git refs, which hold params,
    metrics and histories (outputs stay on the DVC remote: `dvc exp pull <remote> <name>` fetches
    one's models). Returns a line saying what came."""
    out = dvc("exp", "pull", "--no-cache", *(["-A"] if all_commits else []), git_remote)
    pulled = re.search(r"Pulled experiment '\[(.*)\]'", out)
    count = len(pulled.group(1).split(",")) if pulled and pulled.group(1) else 0
    return f"pulled {count} experiment(s) from git remote {git_remote!r}" if pulled else \
        f"git remote {git_remote!r}: no experiments to pull ({out.strip() or 'none'})"


def experiment_outcomes() -> dict[str, exp_show.Outcome]:
    """The outcome of every experiment of the current commit, by name."""
    return exp_show.outcomes(exp_show_json())


def share_machine(jobs: int) -> int:
    """Set what the ``jobs`` queue workers inherit so that they share this machine: cores / J
    threads each ($TUNELAB_THREADS) and, on an accelerator, 1/J of its memory each (less what
    their contexts take, $TUNELAB_MEMORY_FRACTION); returns the threads per worker."""
    from src.core import device  # torch: only once workers are about to start
    threads = threads_per_worker(jobs)
    os.environ["TUNELAB_THREADS"] = str(threads)
    os.environ[device.MEMORY_ENV] = f"{device.worker_memory_fraction(jobs):.4g}"
    return threads


def progress_line(counts: Counter, total: int, started: float) -> str:
    finished = counts["Success"] + counts["Failed"]
    elapsed = time.monotonic() - started
    eta = f"{elapsed / finished * (total - finished):.0f}s" if finished else "?"
    return (f"[{elapsed:5.0f}s] done {counts['Success']}, failed {counts['Failed']}, "
            f"running {counts['Running']}, queued {counts['Queued']} of {total}; ETA {eta}")


ORPHAN_GRACE = 60.0  # seconds a Running task may lack a process (a worker sets up its workspace)
QUERY_SECONDS = 60.0  # `dvc queue status` at least this often while no process starts or ends


def wait_for(task_ids: set[str], total: int, poll: float, jobs: int,
             query_every: float = QUERY_SECONDS) -> dict[str, Task]:
    """Poll the queue until none of ``task_ids`` is queued or running; print progress when the
    counts change, and at least once a minute. Every ``poll`` seconds the process table is read
    (cheap); DVC's queue is asked (costly) only when a worker or experiment process started or
    ended, when the last answer left something to resolve, or after ``query_every`` seconds.
    A Running task that no process runs (its worker was killed) is cleared after ORPHAN_GRACE; if
    fewer than ``jobs`` workers are alive while tasks are queued, the missing ones are started.
    Workers do die on their own: DVC's file-based queue lets two workers race on a message file,
    and the loser exits with `Unrecoverable error: JSONDecodeError` (dvc-task#73)."""
    started = time.monotonic()
    last_counts, last_print, short_polls = None, 0.0, 0
    unrun_since: dict[str, float] = {}
    seen, last_query, unsettled = None, -math.inf, True
    while True:
        processes = queue_processes()
        if not unsettled and processes == seen and time.monotonic() - last_query < query_every:
            time.sleep(poll)
            continue
        seen, last_query = processes, time.monotonic()
        tasks, workers = queue_state()
        mine = {t.task_id: t for t in tasks if t.task_id in task_ids}
        counts = Counter(t.status for t in mine.values())
        if counts != last_counts or time.monotonic() - last_print > 60:
            print(progress_line(counts, total, started), flush=True)
            last_counts, last_print = counts, time.monotonic()
        if not counts["Queued"] and not counts["Running"]:
            return mine
        now = time.monotonic()
        stale = {t.task_id: t for t in orphans(list(mine.values()), live_runs())}
        unrun_since = {k: unrun_since.get(k, now) for k in stale}
        for task_id, since in unrun_since.items():
            if now - since > ORPHAN_GRACE:
                print(f"{stale[task_id].name}: no process runs it any more (its worker was "
                      f"killed); cleared from the queue", flush=True)
                clear(stale[task_id])
                task_ids.discard(task_id)
        # Workers take a few seconds to register: act only on two polls in a row short of them.
        short_polls = short_polls + 1 if workers < jobs and counts["Queued"] else 0
        if short_polls >= 2:
            print("no queue worker is alive: starting workers again" if not workers else
                  f"{workers} of {jobs} queue workers alive, {counts['Queued']} experiment(s) "
                  "queued: starting the missing ones", flush=True)
            start_workers(jobs)
            short_polls = 0
        # Ask DVC again at the next poll while a Running task has no process or workers are short.
        unsettled = bool(unrun_since) or short_polls > 0
        time.sleep(poll)


def uncollected(tasks: Iterable[Task], outcomes: dict[str, exp_show.Outcome]) -> set[str]:
    """Names of the tasks the queue lists as Success whose experiment `dvc exp show` does not have.
    DVC ran them, but its worker failed to fetch the result into the repository (`collect_exp`
    logs "Failed to collect experiment" to .dvc/tmp/exps/celery/*.out and carries on, e.g. when
    the experiments' ref lock stayed taken) and still reports Success. Seen once in CI: 1 of 9
    experiments on 2 workers."""
    return {t.name for t in tasks if t.status == "Success" and t.name not in outcomes}


def run_queued(task_ids: set[str], experiments: list[Experiment], poll: float,
               jobs: int) -> tuple[dict[str, Task], dict[str, exp_show.Outcome]]:
    """:func:`wait_for` ``task_ids``; then queue once more, and wait for, those of ``experiments``
    whose result DVC lost (:func:`uncollected`). The tasks that ran (by id) and the outcomes of
    every experiment of the current commit afterwards."""
    ran = wait_for(task_ids, len(task_ids), poll, jobs)
    outcomes = experiment_outcomes()
    lost_names = uncollected(ran.values(), outcomes)
    lost = [e for e in experiments if e.name in lost_names]
    if lost:
        print(f"{', '.join(e.name for e in lost)}: the queue says Success but DVC did not collect "
              "the result (its worker log, .dvc/tmp/exps/celery/*.out, says why); queued again "
              "once", flush=True)
        again = enqueue(lost, queue_tasks())
        start_workers(jobs)
        ran |= wait_for(again, len(again), poll, jobs)
        outcomes = experiment_outcomes()
    return ran, outcomes


def log_tail(name: str, lines: int = LOG_TAIL) -> str:
    log = [line for line in dvc("queue", "logs", name, check=False).rstrip().splitlines()
           if "No file hash info found" not in line]  # DVC's noise about not-yet-built outputs
    return "\n".join("    " + line for line in log[-lines:])


