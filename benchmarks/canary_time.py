"""Benchmark (not a test): how long one canary run takes (src/experiments/canary.py), and whether a
commit's code and the working tree's make the same numbers.

Takes ``--commit``'s params.yaml (the defaults as that commit ran them) with train.seed = 0..N-1
as N configurations, builds the two trees as :func:`canary.same_numbers` does, and runs each canary
on the commit's code and then the working tree's, without the cache. Prints one line per run: the
tree, the seed, wall seconds and the CPU seconds of its stage processes; then, per seed, same or
the first difference. The first configuration of a tree pays prepare (later ones with the same
`prepare:` skip it, as DVC would) and the MLflow store's creation (the first run of all).

Measured with it (2026-12-07, the 2-core machine shared with other sessions, load average 4-5;
commit e9f6d6d, from which the claims_grid and conv_dropout_width studies ran, vs the working tree
of h/canary at e8bc26c, N = 3, real Fashion-MNIST): first run of each tree 14.8 / 13.7 CPU s
(50.7 / 31.3 s wall: prepare, the MLflow store's creation); later runs 9.5-11.4 CPU s, 16.9-17.4 s
wall each; all three seeds the same numbers (the text hash of carried.py agrees today: nothing
it hashes changed since e9f6d6d).
Where the ~10 CPU s go (cProfile of train): torch's import, torch._dynamo imported by Adam's
constructor (~4 s), MLflow's import and store; training the canary itself takes 0.3 s.

Run:  .venv/bin/python benchmarks/canary_time.py [--commit HEAD] [--configs 3]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from src.experiments import canary  # noqa: E402


def child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commit", default="HEAD")
    parser.add_argument("--configs", type=int, default=3)
    args = parser.parse_args()
    full = canary.resolve(args.commit, ROOT)
    if full is None:
        sys.exit(f"commit {args.commit} not in this clone")
    base = yaml.safe_load(subprocess.run(["git", "-C", str(ROOT), "show", f"{full}:params.yaml"],
                                         capture_output=True, text=True, check=True).stdout)
    configs = [base | {"train": base["train"] | {"seed": seed}} for seed in range(args.configs)]
    files = canary.code_files(ROOT)
    with tempfile.TemporaryDirectory(prefix="tunelab-canary-bench-") as tmp:
        env = canary.canary_env(Path(tmp) / "mlflow.db")
        new = Path(tmp) / "new"
        canary.copy_code(ROOT, files, new)
        with canary.commit_tree(ROOT, full, Path(tmp) / "old") as old:
            prepared: dict = {old: None, new: None}
            for config in configs:
                params = canary.canary_params(config)
                outputs = {}
                for tree in (old, new):
                    wall, cpu = time.perf_counter(), child_cpu()
                    outputs[tree] = canary.run_canary(tree, params, env, prepared[tree])
                    prepared[tree] = params["prepare"]
                    print(f"run {tree.name} seed={config['train']['seed']} "
                          f"wall_s={time.perf_counter() - wall:.1f} cpu_s={child_cpu() - cpu:.1f}",
                          flush=True)
                found = canary.differences(outputs[old], outputs[new])
                print(f"seed={config['train']['seed']} {full[:8]} vs working tree: "
                      f"{'differs: ' + found[0] if found else 'same'}", flush=True)


if __name__ == "__main__":
    main()
