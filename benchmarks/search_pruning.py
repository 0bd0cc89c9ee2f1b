"""Benchmark (not a test): what pruning saves on a real search, and whether it finds the same best.

Runs one search twice on DVC's queue, each in its own clone of this repository's HEAD: once with
the search's pruner, once with pruning off ($TUNELAB_PRUNE=0) so every trial runs to the end. The
random sampler proposes the same trials in both (it is seeded per batch from
--seed and the number of trials so far, never from results), so the two runs differ only in
pruning. Both runs go at the same time, each with --jobs workers. The clones do not share a DVC
cache: DVC's run-cache would hand one run the other's results for the same params.
Prints one `name=value` per line: trials, pruned, fold-epochs and training seconds of each run, the
share of training pruning saved, wall seconds, the best trial of each run and whether it is the
same, and where the pruned trials ranked when run to the end.

Run:  .venv/bin/python benchmarks/search_pruning.py lr_dropout --trials 30 --jobs 1 \
          --set prepare.train_size=2000 --set train.epochs=6
      (commit first: the clones take HEAD; `--keep DIR` keeps the clones for a look afterwards)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from src.core import params  # noqa: E402
from src.experiments import dvc_queue, search_spec  # noqa: E402
from src.studies import search_report  # noqa: E402


def clone(into: Path) -> Path:
    subprocess.run(["git", "clone", "-q", str(ROOT), str(into)], check=True)
    for key in ("user.email", "user.name"):  # `dvc exp run` commits
        value = subprocess.run(["git", "config", key], cwd=ROOT, capture_output=True,
                               text=True).stdout.strip() or "tunelab-benchmark"
        subprocess.run(["git", "config", key, value], cwd=into, check=True)
    (into / ".git/info/exclude").open("a").write("/.tunelab/\n")
    return into


def start(repo: Path, args, prune: bool) -> subprocess.Popen:
    command = [sys.executable, "-m", "src.search", args.search, "--trials", str(args.trials),
               "--jobs", str(args.jobs), "--sampler", "random", "--seed", str(args.seed),
               *(f"--set={item}" for item in args.set or [])]
    env = os.environ | {"TUNELAB_PRUNE": "1" if prune else "0", "DVC_NO_ANALYTICS": "1"}
    env.pop("DVC_ROOT", None)
    env.pop("MLFLOW_TRACKING_URI", None)
    log = (repo / "search.log").open("w")
    return subprocess.Popen(command, cwd=repo, env=env, stdout=log, stderr=subprocess.STDOUT)


def trials(repo: Path, search) -> search_report.pd.DataFrame:
    shown = dvc_queue.run_dvc(["exp", "show", "--json"], cwd=repo, capture_output=True, text=True,
                          check=True).stdout
    return search_report.trials_frame(json.loads(shown), search)


def report(pruned, full, walls: dict) -> list[str]:
    """name=value lines comparing the pruned run with the full one (same trials)."""
    cost_p, cost_f = search_report.compute(pruned), search_report.compute(full)
    best_p, best_f = search_report.ranked(pruned), search_report.ranked(full)
    full_rank = {t: i + 1 for i, t in enumerate(best_f["trial"])}
    pruned_ranks = sorted(full_rank.get(t, 0) for t in pruned.loc[pruned["state"] == "pruned",
                                                                   "trial"])
    lines = {
        "trials": len(pruned), "pruned": cost_p["pruned"],
        "full_run_pruned": cost_f["pruned"],
        "fold_epochs_pruned_run": f"{cost_p['epochs_trained']:.0f}",
        "fold_epochs_full_run": f"{cost_f['epochs_trained']:.0f}",
        "fold_epochs_saved": f"{1 - cost_p['epochs_trained'] / cost_f['epochs_trained']:.3f}",
        "estimate_saved_from_pruned_run_alone": f"{cost_p['saved_share']:.3f}",
        "train_seconds_pruned_run": f"{cost_p['train_seconds']:.0f}",
        "train_seconds_full_run": f"{cost_f['train_seconds']:.0f}",
        "train_seconds_saved": f"{1 - cost_p['train_seconds'] / cost_f['train_seconds']:.3f}",
        "wall_seconds_pruned_run": f"{walls['pruned']:.0f}",
        "wall_seconds_full_run": f"{walls['full']:.0f}",
        "best_pruned_run": f"{best_p['name'].iloc[0]} cv={best_p['cv_accuracy'].iloc[0]:.4f}",
        "best_full_run": f"{best_f['name'].iloc[0]} cv={best_f['cv_accuracy'].iloc[0]:.4f}",
        "same_best": best_p["trial"].iloc[0] == best_f["trial"].iloc[0],
        "pruned_trials_full_run_ranks": ",".join(map(str, pruned_ranks)) or "-",
        "best_full_run_rank_in_pruned_run": 1 + next(
            (i for i, t in enumerate(best_p["trial"]) if t == best_f["trial"].iloc[0]), -2),
    }
    return [f"{k}={v}" for k, v in lines.items()]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("search")
    p.add_argument("--trials", type=int, default=30)
    p.add_argument("--jobs", type=int, default=1, help="queue workers per run (both run at once)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", action="append", metavar="KEY=VALUE")
    p.add_argument("--keep", type=Path, help="keep the two clones under this folder")
    args = p.parse_args()
    base = params.read_yaml(ROOT / "params.yaml")
    search = search_spec.load(ROOT / "searches.yaml", base, params.read_yaml(ROOT / "sweeps.yaml"))[
        args.search]
    work = args.keep or Path(tempfile.mkdtemp(prefix="tunelab-pruning-"))
    repos = {name: clone(work / name) for name in ("pruned", "full")}
    started = time.monotonic()
    runs = {name: start(repo, args, prune=name == "pruned") for name, repo in repos.items()}
    walls = {}
    while len(walls) < len(runs):
        for name, run in runs.items():
            if name not in walls and run.poll() is not None:
                walls[name] = time.monotonic() - started
                print(f"# {name} run finished (exit {run.returncode}) after {walls[name]:.0f} s; "
                      f"log: {repos[name] / 'search.log'}", flush=True)
        time.sleep(2)
    frames = {name: trials(repo, search) for name, repo in repos.items()}
    print("\n".join(report(frames["pruned"], frames["full"], walls)))
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
