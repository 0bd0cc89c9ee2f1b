"""Benchmark (not a test): the fixed cost of one queued experiment, part by part; with
``--baseline-ref`` the same for a commit's code, interleaved, before / after.

The fixed cost is what an experiment costs beyond its training loops: queueing it, DVC's workspace
and commit, the stage processes' start-up, MLflow and DVCLive, evaluation, figures. Each side
(``--baseline-ref``'s code from a `git worktree`, and the working tree's) gets a fresh git + DVC
project in a temporary folder: its src/, dvc.yaml, .gitignore, .dvc/config and params.yaml with
:data:`FIDELITY` (the defaults but 2,000 training images and 1 epoch: the issue's "small
experiment"; 10,000 test and 10,000 selection images as always), `dvc repro` once (prepare stays
cached after that, as in a sweep), then per round ``--experiments`` experiments through the real
path: `dvc exp run --queue -S train.seed=N` each (timed), `dvc queue start -j 1`, wait until the
worker has exited. Rounds alternate which side goes first. Every stage process loads a
``sitecustomize`` (on PYTHONPATH) that times its parts: start-up (interpreter and imports, from
the process's start to `errors.run(main)`), and inside `main` the exclusive time of
:data:`SECTIONS` (training = `engine.fit` less the tracking it calls); a sampler reads the
process table every 0.1 s for DVC's `exec-run` processes. Per experiment (one line each, median
over the experiments of every round; `name=value`):

- `queue`: the `dvc exp run --queue` call;
- `dvc.workspace`: `exec-run`'s start -> train's start (DVC's temporary workspace, checkout);
- `<stage>.<part>`: each stage's start-up and sections, `<stage>.other` the rest of its `main`,
  `<stage>.exit` from its `main`'s end to the process's end (the interpreter's teardown);
- `dvc.between`: train's end -> evaluate's start plus evaluate's end -> plot's start;
- `dvc.commit`: plot's end -> `exec-run`'s end;
- `worker.collect`: `exec-run`'s end -> the next `exec-run`'s start (the worker collects the
  result into the repository and takes the next task; not measured for the last experiment);
- `period`: one `exec-run`'s start -> the next one's (the experiment's time on its worker);
- `training`: `engine.fit` less tracking; `fixed_cost` = period + queue - training.

With ``--baseline-ref`` each line is printed for both sides (`before.X` / `after.X`), then
`fixed_cost_before`, `fixed_cost_after` and `ratio` (after / before); each round runs the same
seeds on both sides, and `same_numbers` says whether the two codes' `dvc repro` gave bit-identical
metrics.json, history.csv and cv_folds.csv (src/experiments/canary.py's comparison). The CPU and the load
average before and after are printed too: timings move with the host's load.

Measured with it (2026-12-07 22:30-22:58, the 2-core Xeon, load 8.4 -> 4.0 from other sessions;
`--baseline-ref d1e5076 --rounds 3 --experiments 2`, the working tree of 993781b): fixed cost
91.9 s before, 55.2 s after (medians of 3; ratio 0.60, most of it the load falling); the parts the
changes removed, the stages' teardown and DVCLive's DVC repository, 13.3 s -> 0.5 s (~14%);
`same_numbers=True`. Again at 23:08-23:21 (`--rounds 2`, load 2.7 -> 5.3 -> 4.1): 65.4 -> 60.6 s,
ratio 0.93, the removed parts 8.8 s -> 0.4 s. Every part: docs/performance.md ("Fixed cost per
experiment").

Needs the dataset (`bash setup.sh --data`), a git identity is set in each project; ~35 s per
experiment on the 2-core Xeon: `--rounds 3 --experiments 2` with a baseline ~10 minutes.

Run:  .venv/bin/python benchmarks/fixed_cost.py [--baseline-ref REF] [--rounds 3]
                                                [--experiments 2] [--threads 1] [--keep DIR]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from src.core import data, errors, paths  # noqa: E402
from src.experiments import canary, dvc_queue  # noqa: E402

FIDELITY = {"prepare": {"train_size": 2000}, "train": {"epochs": 1}}
PROJECT = ("src", "dvc.yaml", ".gitignore", ".dvc/config")  # copied from each side's tree
STAGES = ("train", "evaluate", "plot")  # prepare is cached after the first `dvc repro`
# Timed inside each stage process: "module:attribute" (or "__main__:name", the stage's own
# function) -> section. Nested calls count for the innermost section only.
SECTIONS = {
    "src.core.engine:fit": "training",
    "src.core.engine:make_optimizer": "optimizer",  # its first call imports torch._dynamo
    "src.core.data:load_prepared": "data",
    "src.core.checkpoints:load": "data",
    "src.core.atomic:write_with": "outputs",
    "src.core.atomic:write_json": "outputs",
    "src.tracking.store:init_store": "mlflow",
    "src.tracking.store:run_tags": "mlflow",
    "src.tracking.trackers:MLflowTracker.__init__": "mlflow",
    "src.tracking.trackers:MLflowTracker.start_fold": "mlflow",
    "src.tracking.trackers:MLflowTracker.log_epoch": "mlflow",
    "src.tracking.trackers:MLflowTracker.end_fold": "mlflow",
    "src.tracking.trackers:MLflowTracker.finish": "mlflow",
    "src.tracking.trackers:DVCLiveTracker.start_fold": "dvclive",
    "src.tracking.trackers:DVCLiveTracker.log_epoch": "dvclive",
    "src.tracking.trackers:DVCLiveTracker.end_fold": "dvclive",
    "__main__:log_mean_curve": "dvclive",
    "__main__:log_results": "dvclive",
    "__main__:fold_probabilities": "predict",
    "__main__:build_figures": "figures",
    "matplotlib.figure:Figure.savefig": "figures",
    "__main__:publish": "mlflow",
}

# The sitecustomize every process of a side loads: only `python -m src.<stage>` records anything.
HOOK = r'''
import atexit, functools, importlib.abc, importlib.machinery, json, os, sys, time
_LOG = os.environ.get("TUNELAB_BENCH_LOG")
_ARGV = open("/proc/self/cmdline", "rb").read().split(b"\0")
_STAGE = None
if _LOG and b"-m" in _ARGV:
    _module = _ARGV[_ARGV.index(b"-m") + 1].decode()
    if _module.startswith("src."):
        _STAGE = _module[4:]
if _STAGE:
    SECTIONS = json.loads(os.environ["TUNELAB_BENCH_SECTIONS"])

    def _started():  # the process's start, in seconds since the epoch
        ticks = int(open("/proc/self/stat").read().rsplit(")", 1)[1].split()[19])
        boot = next(int(line.split()[1]) for line in open("/proc/stat") if line.startswith("btime"))
        return boot + ticks / os.sysconf("SC_CLK_TCK")

    _record = {"stage": _STAGE, "pid": os.getpid(), "start": _started(), "sections": {}}
    _stack, _mark = ["other"], [0.0]

    def _charge():
        now = time.perf_counter()
        section = _stack[-1]
        _record["sections"][section] = _record["sections"].get(section, 0.0) + now - _mark[0]
        _mark[0] = now

    def _timed(fn, section):
        @functools.wraps(fn)
        def inner(*args, **kwargs):
            _charge()
            _stack.append(section)
            try:
                return fn(*args, **kwargs)
            finally:
                _charge()
                _stack.pop()
        return inner

    def _patch(namespace_get, namespace_set, attr, section):
        owner, _, name = attr.rpartition(".")
        if owner:
            cls = namespace_get(owner)
            if cls is not None and hasattr(cls, name):
                setattr(cls, name, _timed(getattr(cls, name), section))
        elif namespace_get(name) is not None:
            namespace_set(name, _timed(namespace_get(name), section))

    def _patch_module(module):
        for target, section in SECTIONS.items():
            name, _, attr = target.partition(":")
            if name == module.__name__:
                _patch(lambda n: getattr(module, n, None), lambda n, v: setattr(module, n, v),
                       attr, section)
        if module.__name__ == "src.core.errors":
            run = module.run

            def timed_run(main, *args, **kwargs):
                _record["main"] = time.time()
                _mark[0] = time.perf_counter()
                g = main.__globals__
                for target, section in SECTIONS.items():
                    name, _, attr = target.partition(":")
                    if name == "__main__":
                        _patch(g.get, g.__setitem__, attr, section)

                def timed_main():
                    try:
                        return main()
                    finally:
                        _charge()
                        _record["end"] = time.time()

                def write():  # at exit: also when the stage ends by os._exit after atexit
                    with open(_LOG, "a") as out:
                        out.write(json.dumps(_record) + "\n")
                atexit.register(write)
                return run(timed_main, *args, **kwargs)
            module.run = timed_run

    _WANTED = {t.partition(":")[0] for t in SECTIONS} | {"src.core.errors"}

    class _Finder(importlib.abc.MetaPathFinder):
        def find_spec(self, fullname, path, target=None):
            if fullname not in _WANTED:
                return None
            spec = importlib.machinery.PathFinder.find_spec(fullname, path)
            if spec is None or spec.loader is None:
                return spec
            loader = spec.loader
            exec_module = loader.exec_module

            def patched(module):
                exec_module(module)
                _patch_module(module)
            loader.exec_module = patched
            return spec

    sys.meta_path.insert(0, _Finder())
'''


def sh(*args: str, cwd: Path, env: dict, check: bool = True) -> str:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if check and done.returncode:
        raise errors.TunelabError(f"{' '.join(args)} failed in {cwd}:\n{done.stdout}{done.stderr}")
    return done.stdout


def side_env(hook_dir: Path, log: Path, dataset: Path, threads: int) -> dict[str, str]:
    """A side's environment: this venv's dvc and python, the timing hook, one MLflow store in the
    project (nothing of the caller's DVC, MLflow or PYTHONPATH)."""
    env = {k: v for k, v in dvc_queue.tool_env().items()
           if not k.startswith(("DVC_", "MLFLOW_")) and k not in canary.DROPPED_ENV}
    return env | {"PYTHONPATH": str(hook_dir), "TUNELAB_BENCH_LOG": str(log),
                  "TUNELAB_BENCH_SECTIONS": json.dumps(SECTIONS),
                  "FASHION_MNIST_DIR": str(dataset), "TUNELAB_THREADS": str(threads),
                  "TUNELAB_DEVICE": "cpu", "DVC_NO_ANALYTICS": "1", "GIT_CONFIG_NOSYSTEM": "1"}


def make_project(tree: Path, project: Path, env: dict) -> None:
    """A git + DVC project of ``tree``'s code with :data:`FIDELITY`, reproduced once."""
    for item in PROJECT:
        source, dest = tree / item, project / item
        dest.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, dest, ignore=shutil.ignore_patterns("__pycache__"))
        elif source.exists():
            shutil.copy(source, dest)
    params = yaml.safe_load((tree / paths.PARAMS).read_text())
    for section, values in FIDELITY.items():
        params[section] |= values
    (project / paths.PARAMS).write_text(yaml.safe_dump(params, sort_keys=False))
    config = (project / ".dvc/config").read_text() if (project / ".dvc/config").exists() else ""
    for command in (("git", "init", "-q", "-b", "main"),
                    ("git", "config", "user.email", "bench@example.com"),
                    ("git", "config", "user.name", "bench"), ("dvc", "init", "-q", "-f")):
        sh(*command, cwd=project, env=env)
    (project / ".dvc/config").write_text(config)
    sh("git", "add", "-A", cwd=project, env=env)
    sh("git", "commit", "-qm", "init", cwd=project, env=env)
    sh("dvc", "repro", cwd=project, env=env)
    sh("git", "add", "-A", cwd=project, env=env)
    sh("git", "commit", "-qm", "repro", cwd=project, env=env)


def numbers_of(project: Path) -> dict:
    """A project's `dvc repro` outputs as :func:`canary.differences` compares them."""
    found: dict = {"metrics": json.loads((project / paths.METRICS).read_text())}
    for table in canary.TABLES:
        with (project / table).open(newline="") as handle:
            found[table.as_posix()] = list(csv.DictReader(handle))
    return found


class Sampler(threading.Thread):
    """The process table every ``every`` s: DVC's `exec-run` and `queue-worker` processes whose
    working directory is under ``project``; ``seen`` maps (pid, start) -> [kind, start, last]."""

    def __init__(self, project: Path, every: float = 0.1):
        super().__init__(daemon=True)
        self.project, self.every = str(project), every
        self.stopped, self.seen = threading.Event(), {}

    def run(self) -> None:
        import psutil
        while not self.stopped.is_set():
            now = time.time()
            for proc in psutil.process_iter(["pid", "cmdline", "create_time", "cwd"]):
                cmdline = proc.info["cmdline"] or []
                line = " ".join(cmdline)
                kind = "exec" if "exec-run" in line else "worker" if "queue-worker" in line \
                    else "stage" if " -m src." in line and "sh" not in os.path.basename(
                        cmdline[0]) else None
                if kind and (proc.info["cwd"] or "").startswith(self.project):
                    key = (proc.info["pid"], proc.info["create_time"])
                    self.seen.setdefault(key, [kind, proc.info["create_time"], now])[2] = now
            self.stopped.wait(self.every)

    def spans(self, kind: str) -> list[tuple[float, float]]:
        return sorted((start, last) for k, start, last in self.seen.values() if k == kind)

    def last_seen(self) -> dict[int, float]:
        """When each stage process was last seen, by pid."""
        return {pid: last for (pid, _), (k, _, last) in self.seen.items() if k == "stage"}


def run_round(project: Path, env: dict, log: Path, seeds: list[int]) -> list[dict[str, float]]:
    """Queue one experiment per seed, run them on one worker; the parts of each experiment."""
    queued = []
    for seed in seeds:
        start = time.perf_counter()
        sh("dvc", "exp", "run", "--queue", "-n", f"fc-s{seed}", "-S", f"train.seed={seed}",
           cwd=project, env=env)
        queued.append(time.perf_counter() - start)
    log.write_text("")
    sampler = Sampler(project)
    sampler.start()
    sh("dvc", "queue", "start", "-j", "1", cwd=project, env=env)
    deadline = time.monotonic() + 600 + 120 * len(seeds)
    time.sleep(3)
    while sampler.spans("worker") and time.monotonic() < deadline and (
            any(time.time() - last < 0.5 for _, last in sampler.spans("worker"))):
        time.sleep(0.5)
    sampler.stopped.set()
    sampler.join()
    records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    runs = sampler.spans("exec")
    if len(runs) != len(seeds):
        raise errors.TunelabError(f"{project}: {len(runs)} exec-run processes for {len(seeds)} "
                                  f"experiments (`dvc queue logs fc-s{seeds[0]}`)")
    gone = sampler.last_seen()
    return [parts(i, runs, records, queued[i], gone) for i in range(len(runs))]


def parts(i: int, runs: list[tuple[float, float]], records: list[dict], queued: float,
          gone: dict[int, float] | None = None) -> dict[str, float]:
    """The parts of experiment ``i``: its exec-run span and the stage records inside it;
    ``gone``: when each stage process (by pid) was last seen (else its main's end)."""
    start, end = runs[i]
    mine = {r["stage"]: r for r in records if start <= r["start"] <= end + 0.5}
    missing = [s for s in STAGES if s not in mine]
    if missing:
        raise errors.TunelabError(f"experiment {i}: no record of {', '.join(missing)}")
    ended = {stage: max(r["end"], (gone or {}).get(r["pid"], r["end"]))
             for stage, r in mine.items()}
    found = {"queue": queued, "dvc.workspace": mine["train"]["start"] - start,
             "dvc.between": (mine["evaluate"]["start"] - ended["train"]) +
                            (mine["plot"]["start"] - ended["evaluate"]),
             "dvc.commit": end - ended["plot"]}
    for stage in STAGES:
        found[f"{stage}.startup"] = mine[stage]["main"] - mine[stage]["start"]
        found[f"{stage}.exit"] = ended[stage] - mine[stage]["end"]
        for section, seconds in mine[stage]["sections"].items():
            found[f"{stage}.{section}"] = seconds
    if i + 1 < len(runs):
        found["worker.collect"] = runs[i + 1][0] - end
        found["period"] = runs[i + 1][0] - start
        found["training"] = found.pop("train.training")
        found["fixed_cost"] = found["period"] + queued - found["training"]
    else:
        found["training"] = found.pop("train.training")
    return found


def medians(rows: list[dict[str, float]]) -> dict[str, float]:
    keys = sorted({k for row in rows for k in row})
    return {k: statistics.median([row[k] for row in rows if k in row]) for k in keys}


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline-ref", help="a commit whose code runs as `before`, interleaved")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--experiments", type=int, default=2, help="per round and side (>= 2)")
    parser.add_argument("--threads", type=int, default=1, help="$TUNELAB_THREADS of the worker")
    parser.add_argument("--keep", type=Path, help="build the projects here and keep them")
    args = parser.parse_args()
    if args.rounds < 1 or args.experiments < 2 or args.threads < 1:
        parser.error("--rounds and --threads at least 1, --experiments at least 2")
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
               "?")
    print(f"cpu={cpu} ({os.cpu_count()} cores)")
    print(f"load_before={load()}", flush=True)
    dataset = data.locate(ROOT / paths.RAW)
    with ExitStack() as stack:
        tmp = args.keep or Path(stack.enter_context(tempfile.TemporaryDirectory(
            prefix="tunelab-fixed-cost-")))
        tmp.mkdir(parents=True, exist_ok=True)
        (tmp / "hook").mkdir(exist_ok=True)
        (tmp / "hook" / "sitecustomize.py").write_text(HOOK)
        trees = {"after": ROOT}
        if args.baseline_ref:
            full = canary.resolve(args.baseline_ref, ROOT)
            if full is None:
                parser.error(f"--baseline-ref {args.baseline_ref}: not a commit of this clone")
            print(f"baseline={full}")
            trees = {"before": stack.enter_context(canary.commit_tree(ROOT, full, tmp / "old")),
                     **trees}
        sides, outputs = {}, {}
        for side, tree in trees.items():
            env = side_env(tmp / "hook", tmp / f"{side}.jsonl", dataset, args.threads)
            make_project(tree, tmp / side, env)
            sides[side] = env
            outputs[side] = numbers_of(tmp / side)
            print(f"# {side}: project ready", flush=True)
        if "before" in outputs:  # the same params and seed on one machine: the same bits
            found = canary.differences(outputs["before"], outputs["after"])
            print(f"same_numbers={not found}" + (f" ({found[0]})" if found else ""), flush=True)
        rows: dict[str, list[dict[str, float]]] = {side: [] for side in sides}
        for round_ in range(args.rounds):
            order = list(sides) if round_ % 2 == 0 else list(sides)[::-1]
            seeds = [100 + round_ * args.experiments + k for k in range(args.experiments)]
            for side in order:  # the same experiments on both sides
                got = run_round(tmp / side, sides[side], tmp / f"{side}.jsonl", seeds)
                rows[side] += got
                costs = ", ".join(f"{r['fixed_cost']:.1f}" for r in got if "fixed_cost" in r)
                print(f"# round {round_ + 1} {side}: fixed_cost {costs}; load {load()}",
                      flush=True)
    print(f"load_after={load()}")
    summary = {side: medians(found) for side, found in rows.items()}
    for key in sorted({k for s in summary.values() for k in s}):
        for side, values in summary.items():
            prefix = f"{side}." if len(summary) > 1 else ""
            print(f"{prefix}{key}={values.get(key, 0.0):.2f}")
    n = {side: sum("fixed_cost" in r for r in found) for side, found in rows.items()}
    for side in summary:
        print(f"fixed_cost_{side}={summary[side]['fixed_cost']:.2f}")
        print(f"n_{side}={n[side]}")
    if "before" in summary:
        print(f"ratio={summary['after']['fixed_cost'] / summary['before']['fixed_cost']:.3f}")


if __name__ == "__main__":
    errors.run(main)
