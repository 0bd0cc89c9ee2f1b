"""Run the named sweeps of sweeps.yaml on DVC's experiment queue.

    python -m src.sweep list                                  # the sweeps and their sizes
    python -m src.sweep run dropout --seeds 3 --jobs 2        # queue, run 2 workers, wait, report
    python -m src.sweep run dropout --seeds 3 --dry-run       # print what would be queued
    python -m src.sweep run interactions --seeds 5 --set prepare.train_size=20000
    python -m src.sweep status [NAME]                         # done / diverged / failed / pending

`run` validates every experiment first (nothing is queued if one is invalid), creates the MLflow
store once (parallel workers would corrupt a fresh SQLite database), queues what is missing with
``dvc exp run --queue -n <sweep>--<config>--s<seed> -S ...``, starts J queue workers with
$TUNELAB_THREADS = cores / J, shows progress, prints how well the sweep used its workers (kept in
.tunelab/sweeps/<name>.json), and exits non-zero naming every failed experiment with the tail of
its log (DVC's own queue exits 0 when experiments fail). Running it again after an interruption
queues only what has not succeeded on the current commit.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from src import atomic, errors, params, paths, sweeps, tracking
from src.errors import TunelabError

SWEEPS_FILE = Path("sweeps.yaml")
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
    `python` is this same interpreter, without activating the venv."""
    bindir = str(Path(sys.executable).parent)
    path = os.environ.get("PATH", "")
    return {**os.environ, "PATH": os.pathsep.join([bindir, path]) if path else bindir}


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


CELERY_DIR = os.path.join(".dvc", "tmp", "exps", "celery")  # DVC's queue: broker, worker logs


def worker_node_prefix(root: str | Path = ".") -> str:
    """DVC names a repository's queue workers ``dvc-exp-<hash>-<n>@localhost``, <hash> from the
    path of the repository's celery directory (`dvc.repo.experiments.queue.celery`)."""
    wdir = os.path.join(os.path.realpath(root), CELERY_DIR)
    return f"dvc-exp-{hashlib.sha256(wdir.encode('utf-8')).hexdigest()[:6]}-"


def parse_worker_serials(cmdlines: list[str], prefix: str) -> set[int]:
    """The serial numbers <n> of the ``dvc exp queue-worker <prefix><n>@localhost`` processes."""
    pattern = re.compile(re.escape(prefix) + r"(\d+)@localhost")
    return {int(m.group(1)) for line in cmdlines if "queue-worker" in line
            for m in [pattern.search(line)] if m}


def process_cmdlines() -> list[str]:
    """The command lines of this machine's live (not zombie) processes."""
    import psutil
    return [" ".join(proc.info["cmdline"] or [])
            for proc in psutil.process_iter(["cmdline", "status"])
            if proc.info["status"] != psutil.STATUS_ZOMBIE]


def live_workers() -> set[int]:
    """Serial numbers of this repository's queue workers that have a live process. Not from `dvc
    queue status`: its worker count is a celery broadcast that busy workers often miss (measured:
    two workers training reported "0 active, 0 idle" on two polls in a row), and acting on it
    started duplicate workers."""
    return parse_worker_serials(process_cmdlines(), worker_node_prefix())


def spawn_worker(num: int) -> None:
    """Start queue worker <num> as `dvc queue start` does (same node name, same log files; worker
    1 cleans up the queue when it exits), detached, in :func:`tool_env`."""
    from dvc_task.proc.process import ManagedProcess
    node = f"{worker_node_prefix()}{num}@localhost"
    cmd = ["dvc", "exp", "queue-worker", node] + (["--clean"] if num == 1 else [])
    os.makedirs(CELERY_DIR, exist_ok=True)
    ManagedProcess.spawn(cmd, env=tool_env(), wdir=CELERY_DIR, name=f"dvc-exp-worker-{num}")


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


def enqueue(experiments: list[sweeps.Experiment], tasks: list[Task]) -> set[str]:
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


@dataclass(frozen=True)
class Outcome:
    name: str
    state: str  # completed | diverged | early_stopped... (metrics status) | failed
    cv_accuracy: float | None
    train_seconds: float | None = None  # the training loops' time over the folds (metrics.json)
    train_samples: float | None = None  # training images seen: fold-epochs x images per fold


def parse_exp_show(shown: list) -> dict[str, Outcome]:
    """Experiments of the current commit in `dvc exp show --json`, by name."""
    outcomes = {}
    for rev in shown:
        if rev.get("rev") == "workspace":
            continue
        for exp in rev.get("experiments") or []:
            head = exp["revs"][0]
            name = exp.get("name") or head.get("name")
            if not name:
                continue
            if head.get("error"):
                outcomes[name] = Outcome(name, "failed", None)
                continue
            metrics = ((head.get("data") or {}).get("metrics") or {}).get(str(paths.METRICS), {})
            data = metrics.get("data") or {}
            cv = ((data.get("cv") or {}).get("val_accuracy") or {}).get("mean")
            cost = data.get("time") or {}
            outcomes[name] = Outcome(name, data.get("status", "failed"), cv,
                                     cost.get("train_seconds"), train_samples(head, cost))
    return outcomes


def train_samples(head: dict, cost: dict) -> float | None:
    """Training images an experiment's folds saw: fold-epochs x (k - 1) / k of the subset."""
    prepare = ((((head.get("data") or {}).get("params") or {}).get(str(paths.PARAMS)) or {})
               .get("data") or {}).get("prepare") or {}
    size, folds, epochs = prepare.get("train_size"), prepare.get("cv_folds"), cost.get("epochs")
    if not (size and folds and epochs):
        return None
    return epochs * size * (folds - 1) / folds


def experiment_outcomes() -> dict[str, Outcome]:
    return parse_exp_show(json.loads(dvc("exp", "show", "--json", read_only=True) or "[]"))


def sweep_names() -> list[str]:
    """The sweeps declared in sweeps.yaml, unparsed."""
    return list(params.read_yaml(SWEEPS_FILE)) if SWEEPS_FILE.exists() else []


def check_sweep_name(name: str) -> None:
    if name not in sweep_names():
        raise TunelabError(f"unknown sweep {name!r}; sweeps in {SWEEPS_FILE}: "
                           f"{', '.join(sweep_names())}")


def load_sweeps(names=None) -> tuple[dict, dict[str, sweeps.Sweep]]:
    """params.yaml and the sweeps (all, or ``names``; an unknown name is refused)."""
    for name in names or ():
        check_sweep_name(name)
    base = params.read_yaml(paths.PARAMS)
    params.validate_all(base)
    return base, sweeps.load(SWEEPS_FILE, base, names)


def cmd_list(_args) -> None:
    _, all_sweeps = load_sweeps()
    width = max(map(len, all_sweeps))
    print(f"{'sweep':<{width}}  configs  baseline / description")
    for name, sweep in all_sweeps.items():
        print(f"{name:<{width}}  {len(sweep.configs):>7}  {sweep.baseline_label}: {sweep.description}")
    print("\n`--seeds N` runs each configuration N times (train.seed = 0..N-1).")


def threads_per_worker(jobs: int) -> int:
    return max(1, (os.cpu_count() or 1) // jobs)


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


RECORDS = Path(".tunelab/sweeps")  # the last run of each sweep: <name>.json (git-ignored)


def log_tail(name: str, lines: int = LOG_TAIL) -> str:
    log = [line for line in dvc("queue", "logs", name, check=False).rstrip().splitlines()
           if "No file hash info found" not in line]  # DVC's noise about not-yet-built outputs
    return "\n".join("    " + line for line in log[-lines:])


def cmd_run(args) -> int:
    base, loaded = load_sweeps([args.name])
    sweep = loaded[args.name]
    extra = dict(sweeps.parse_set(item) for item in args.set or [])
    experiments = sweeps.expand(sweep, args.seeds, base, extra)
    if args.jobs < 1:
        raise TunelabError(f"--jobs {args.jobs}: must be at least 1")
    in_queue_order = sweeps.longest_first(experiments, base)
    for warning in sweeps.config_warnings(experiments, base):
        print(warning, file=sys.stderr)
    if args.dry_run:
        for exp in in_queue_order:
            print(f"dvc exp run --queue -n {exp.name} {' '.join(exp.set_args())}")
        print(f"{len(experiments)} experiments ({len(sweep.configs)} configurations x "
              f"{args.seeds} seeds), longest first; nothing queued (--dry-run)")
        return 0

    tasks = queue_tasks()
    done = {n for n, o in experiment_outcomes().items() if o.state != "failed"}
    pending = {t.name: t for t in tasks if t.status in ("Queued", "Running")}
    todo = [e for e in in_queue_order if e.name not in done and e.name not in pending]
    resumed = [pending[e.name] for e in experiments if e.name in pending]
    print(f"sweep {sweep.name}: {len(experiments)} experiments; {len(done & {e.name for e in experiments})} "
          f"already succeeded on this commit, {len(resumed)} still queued, {len(todo)} to queue")

    with tracking.store_lock():  # two sweeps starting at once must not both create the store
        tracking.init_store()  # before any worker starts: a fresh SQLite store is created once
    started, started_at = time.monotonic(), time.time()
    task_ids = enqueue(todo, tasks) | {t.task_id for t in resumed}
    if not task_ids:
        print("nothing to run")
        return report(sweep, experiments)

    os.environ["TUNELAB_THREADS"] = str(threads_per_worker(args.jobs))
    start_workers(args.jobs)
    print(f"started {args.jobs} queue workers ({os.environ['TUNELAB_THREADS']} threads each); "
          f"Ctrl-C stops waiting, not the workers (`dvc queue stop` does)", flush=True)
    ran = wait_for(task_ids, len(task_ids), args.poll, args.jobs)
    wall = time.monotonic() - started
    outcomes = experiment_outcomes()
    code = report(sweep, experiments, outcomes)
    if resumed:  # they started before this run: its wall time does not cover them
        print(f"efficiency not measured: {len(resumed)} experiment(s) were queued before this run")
    else:
        report_efficiency(sweep.name, list(ran.values()), outcomes, args.jobs, wall, started_at)
    return code


def report_efficiency(name: str, ran: list[Task], outcomes: dict[str, Outcome], jobs: int,
                      wall: float, started_at: float) -> None:
    """Print the sweep's efficiency over the experiments it trained and record it in RECORDS."""
    try:
        trained = tracking.trained_since(started_at, f"{name}{sweeps.SEP}")
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
        atomic.write_json(RECORDS / f"{name}.json", measured.record(name, threads_per_worker(jobs)))


def trained_outcomes(tasks, outcomes: dict[str, Outcome],
                     trained: set[str]) -> tuple[list[Outcome], list[str]]:
    """The outcomes of the succeeded ``tasks`` whose training ran in this sweep, and the names of
    those restored from DVC's run cache instead: their metrics (training time included) are the
    earlier run's."""
    succeeded = [t.name for t in tasks if t.status == "Success" and t.name in outcomes]
    return ([outcomes[n] for n in succeeded if n in trained],
            [n for n in succeeded if n not in trained])


def report(sweep: sweeps.Sweep, experiments: list[sweeps.Experiment],
           outcomes: dict[str, Outcome] | None = None) -> int:
    """Print the outcome of every experiment of the sweep (``outcomes``: `dvc exp show`'s, read
    here if not given); 1 if any failed or is missing."""
    outcomes = experiment_outcomes() if outcomes is None else outcomes
    states = Counter()
    failed = []
    for exp in experiments:
        outcome = outcomes.get(exp.name)
        state = outcome.state if outcome else "failed"
        states[state] += 1
        if state == "failed":
            failed.append(exp.name)
    summary = ", ".join(f"{n} {s}" for s, n in sorted(states.items()))
    print(f"sweep {sweep.name}: {summary} (of {len(experiments)})")
    diverged = [e.name for e in experiments if outcomes.get(e.name) and
                outcomes[e.name].state == "diverged"]
    if diverged:
        print("diverged (recorded, see metrics.json status/reason): " + ", ".join(diverged))
    pruned = [e.name for e in experiments if outcomes.get(e.name) and
              outcomes[e.name].state == "pruned"]
    if pruned:
        print("pruned by the search's rule: " + ", ".join(pruned))
    for name in failed:
        print(f"FAILED {name}; last lines of `dvc queue logs {name}`:\n{log_tail(name)}")
    return 1 if failed else 0


def cmd_status(args) -> None:
    if args.name:
        check_sweep_name(args.name)
    names = [args.name] if args.name else sweep_names()
    outcomes = experiment_outcomes()
    tasks = queue_tasks()
    print(f"{'sweep':<14} {'done':>5} {'diverged':>9} {'pruned':>7} {'failed':>7} {'running':>8} "
          f"{'queued':>7}")
    for name in names:
        prefix = f"{name}{sweeps.SEP}"
        states = Counter(o.state for n, o in outcomes.items() if n.startswith(prefix))
        queue = Counter(t.status for t in tasks if t.name.startswith(prefix))
        done = sum(v for k, v in states.items() if k not in ("failed", "diverged", "pruned"))
        print(f"{name:<14} {done:>5} {states['diverged']:>9} {states['pruned']:>7} "
              f"{states['failed']:>7} {queue['Running']:>8} {queue['Queued']:>7}")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m src.sweep", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="the sweeps in sweeps.yaml and their sizes")
    run = sub.add_parser("run", help="queue a sweep, run it with parallel workers, report")
    run.add_argument("name")
    run.add_argument("--seeds", type=int, default=1, help="replicates per configuration")
    run.add_argument("--jobs", "-j", type=int, default=1, help="parallel queue workers")
    run.add_argument("--set", action="append", metavar="KEY=VALUE",
                     help="override a param for every experiment (repeatable)")
    run.add_argument("--dry-run", action="store_true", help="print what would be queued")
    run.add_argument("--poll", type=float, default=POLL_SECONDS, help=argparse.SUPPRESS)
    status = sub.add_parser("status", help="done / diverged / failed / running / queued per sweep")
    status.add_argument("name", nargs="?")
    return p


def main() -> None:
    args = parser().parse_args()
    if args.command == "list":
        cmd_list(args)
    elif args.command == "status":
        cmd_status(args)
    else:
        code = cmd_run(args)
        if code:
            sys.exit(code)


if __name__ == "__main__":
    errors.run(main)
