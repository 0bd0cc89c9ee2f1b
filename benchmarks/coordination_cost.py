"""Benchmark (not a test): the coordination cost per trial of a shared study on PostgreSQL against
DVC's local queue, one worker each, on TINY settings and synthetic data.

Builds two throw-away projects (tests/conftest.py `make_project`, TINY params), each with a bare
git repository as its remote and the default local MLflow store, and runs the same sweep of
--experiments experiments (dropout 0, 0.25, 0.5 x seeds) in each, one after the other:
  queue    `python -m src.sweep run bench --seeds S --jobs 1` (DVC's queue, one queue worker);
  shared   the same with `--storage` on a throw-away PostgreSQL cluster on 127.0.0.1
           (tests/servers.py `postgres_cluster`), one worker: `dvc exp run --temp`, the outcome
           from `dvc exp show`, `dvc exp push` to the bare repository, the study told.
Per run it prints, from the MLflow parent runs (one per experiment, train's start to plot's end):
`between_mean` / `between_median`, the seconds from one experiment's end to the next one's start on
the worker (DVC's commit, fetching the next trial, the next workspace, train's imports and MLflow
set-up: the time a worker is not running an experiment), and `wall`. Then `engine_ms_per_trial`:
the study's own share, timed alone on the same cluster, without experiments: per trial, the
worker's loop (stale check, reading the trials, taking a waiting one, heartbeat, user attrs, tell)
as src/experiments/shared_runner.py runs it.

Run:  .venv/bin/python benchmarks/coordination_cost.py --experiments 6
      (about 5 minutes on 2 cores; PostgreSQL's server programs must be installed)
Measured 2026-12-01 on this repository's 2-core Xeon (AVX-512, shared with other work): see
docs/distributed.md, "What coordination costs".
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.conftest import TINY, make_project, sh  # noqa: E402
from tests.servers import postgres_cluster  # noqa: E402

SWEEPS = """
bench:
  grid: {train.dropout: [0.0, 0.25, 0.5]}
  baseline: {train.dropout: 0.0}
"""
PASSWORD = "benchmark-pw-0d9e"


def project(top: Path, name: str) -> tuple[Path, dict]:
    (top / name).mkdir()
    root, env = make_project(top / name, TINY, {"sweeps.yaml": SWEEPS})
    remote = top / f"{name}.git"
    sh("git", "init", "-q", "--bare", "-b", "main", str(remote), cwd=top, env=env)
    for command in (("dvc", "remote", "add", "-d", "store", str(top / f"{name}-dvc")),
                    ("git", "commit", "-qam", "remote"), ("git", "remote", "add", "origin",
                                                          str(remote)),
                    ("git", "push", "-q", "origin", "main")):
        sh(*command, cwd=root, env=env)
    return root, env


def parent_runs(root: Path) -> list[tuple[float, float]]:
    """(start, end) in seconds of each experiment's MLflow parent run, by start."""
    from mlflow.tracking import MlflowClient
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("tunelab")
    runs = client.search_runs([experiment.experiment_id], max_results=1000,
                              filter_string="tags.`dvc.exp_name` LIKE 'bench--%'")
    return sorted((r.info.start_time / 1000, r.info.end_time / 1000) for r in runs
                  if "mlflow.parentRunId" not in r.data.tags)


def gaps(runs: list[tuple[float, float]]) -> list[float]:
    return [later[0] - earlier[1] for earlier, later in zip(runs, runs[1:])]


def sweep(root: Path, env: dict, seeds: int, *extra: str) -> float:
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "src.sweep", "run", "bench", "--seeds",
                           str(seeds), "--jobs", "1", "--poll", "1", *extra], cwd=root, env=env,
                          capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"sweep failed in {root}:\n{done.stdout}\n{done.stderr}")
    return time.monotonic() - started


def engine_cost(uri: str, trials: int) -> float:
    """Milliseconds per trial of the worker loop's study calls alone (no experiment)."""
    import optuna

    from src.experiments import rdb, shared_runner, shared_study
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    from src.experiments.shared_study import Job, Settings
    from src.experiments.sweep_spec import Experiment
    job = Job("sweep", "engine", Settings(uri, heartbeat=10, grace=60), "c" * 40, "d",
              configs={"base": {}})
    exps = [Experiment("engine", "base", s, {"train.seed": s}) for s in range(trials)]
    with rdb.creation_lock(uri):
        storage = rdb.open_storage(uri, "door", create_tables=True)
        shared_study.enqueue(shared_study.open_study(job, storage), exps)
        rdb.close(storage)
    storage = rdb.open_storage(uri, "worker 1", 10, 60, shared_runner.StaleTrials(job))
    study = optuna.load_study(study_name="engine", storage=storage,
                              sampler=optuna.samplers.RandomSampler(seed=0))
    me = shared_runner.Worker(job, study, storage, storage.get_study_id_from_name("engine"), None)
    started = time.perf_counter()
    for _ in range(trials):
        shared_runner.fail_stale(study)
        trial = shared_runner.take(me, study.get_trials(deepcopy=False))
        with shared_runner.Heartbeat(storage, me.trial_id(trial.number), 10):
            shared_runner.experiment_of(job, trial)
            shared_study.rival(study.get_trials(deepcopy=False), trial.number, "x")
            for key in ("experiment", "host", "worker", "status"):
                me.record(trial.number, key, "completed")
            study.tell(trial.number, 0.5)
    return (time.perf_counter() - started) / trials * 1000


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--experiments", type=int, default=6, help="a multiple of 3 (3 dropouts)")
    p.add_argument("--engine-trials", type=int, default=100)
    args = p.parse_args()
    seeds = max(1, args.experiments // 3)
    with tempfile.TemporaryDirectory(prefix="tunelab-coordination-") as tmp, \
            postgres_cluster(PASSWORD) as pg:
        pg.create_database("bench")
        uri = pg.uri("bench")
        top = Path(tmp)
        figures = {}
        for kind, extra in (("queue", ()), ("shared", ("--storage", uri))):
            root, env = project(top, kind)
            wall = sweep(root, env, seeds, *extra)
            between = gaps(parent_runs(root))
            figures |= {f"{kind}_experiments": len(between) + 1, f"{kind}_wall": f"{wall:.1f}",
                        f"{kind}_between_mean": f"{statistics.mean(between):.2f}",
                        f"{kind}_between_median": f"{statistics.median(between):.2f}"}
        figures["engine_ms_per_trial"] = f"{engine_cost(uri, args.engine_trials):.1f}"
        figures["cpu_count"] = os.cpu_count()
        figures["load_average_15min"] = f"{os.getloadavg()[2]:.1f}"  # a shared machine?
        for key, value in figures.items():
            print(f"{key}={value}")


if __name__ == "__main__":
    main()
