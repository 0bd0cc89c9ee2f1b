"""Benchmark (not a test): the compute plan of the claims' studies (claims.yaml, issue 19), without
running any of them.

For every study a claim reads (a sweep, or a set of replicate searches) it prints: the
configurations, the adaptive design (first / max seeds or replicates), the experiments at the first
look and at most, the estimated wall time on --workers queue workers at the first look and in the
worst case (every configuration to max seeds), the fidelity, and the order to run them (cheapest
first). A Markdown table with --markdown (docs/claims-plan.md is its output).

The estimate, per experiment:
  seconds = FIXED_S + REF_WORKER_S x cost(experiment) / cost(the defaults)
  cost    = training FLOPs of all folds and epochs (src.experiments.sweep_spec.training_flops,
            the same estimate that orders the queue), and with --measure also: the seconds per training
            sample of its model, timed here on synthetic data on one thread, x the samples it
            trains and validates (a validation sample counted as 1/3 of a training one)
  wall    = max(sum over the experiments / workers, the longest one); a search runs batches of
            --workers trials, each batch as long as its longest trial, + BATCH_S between batches
Calibration (this machine: Intel Xeon, AVX-512 + AMX, 2 cores; 2026-12-01): one default experiment
(reference CNN, 10,000 images, 5 folds, 10 epochs) trains in ~110 s on 2 threads, ~2x that per
worker in a 2-worker sweep (one thread each): REF_WORKER_S = 220; FIXED_S = 45 s per experiment
(DVC workspace, evaluate, plot, MLflow). FLOPs miss what is not a multiply-add: measured on one
thread here (--measure, a machine shared with other jobs), InstanceNorm costs ~2x per FLOP, an
8/16-channel CNN ~5x, an MLP at batch 16 ~3x, an MLP at batch 64 about 1x. Expect +-30% either way.

Run:  .venv/bin/python benchmarks/plan_claims.py [--measure] [--workers 2] [--markdown]
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from src.core import errors, params, paths  # noqa: E402
from src.experiments import claim_spec, sweep_spec  # noqa: E402
from src.studies.sweep_report import md_table  # noqa: E402

REF_WORKER_S = 220.0   # training seconds of the default experiment on one worker of two
FIXED_S = 45.0         # per experiment: DVC workspace, evaluate, plot, MLflow
BATCH_S = 15.0         # a search's pause between batches (workers exit and start)
VAL_WEIGHT = 1 / 3     # a validation sample (forward only) against a training sample
LR_FIND_S = 15.0       # python -m src.lr_find on the defaults


@dataclass
class Study:
    name: str
    kind: str          # sweep | search set
    configs: int
    first: int
    most: int
    per_seed: list[float]   # seconds of one seed of each configuration (a search: one replicate)
    fidelity: str
    claims: list[int]
    measured: list[float] | None = None  # the same from measured step times (--measure)

    def wall(self, seeds: int, workers: int, measured: bool = False) -> float:
        per_seed = self.measured if measured else self.per_seed
        if self.kind == "sweep":
            durations = per_seed * seeds
            return max(sum(durations) / workers, max(durations))
        return seeds * per_seed[0]  # replicates run one after the other


def samples(merged: dict) -> float:
    """Training + weighted validation samples of one experiment (every fold, every epoch)."""
    sections = params.validate_all(merged)
    prepare, train = sections["prepare"], sections["train"]
    per_fold_val = prepare.train_size / prepare.cv_folds
    per_fold_train = prepare.train_size - per_fold_val
    return (per_fold_train + VAL_WEIGHT * per_fold_val) * train.epochs * prepare.cv_folds


class Cost:
    """cost(merged params) relative to the defaults', from FLOPs or from measured step times."""

    def __init__(self, base: dict, measure: bool):
        self.base, self.measure, self.cache = base, measure, {}
        self.reference = self.absolute(base)

    def absolute(self, merged: dict) -> float:
        if not self.measure:
            return sweep_spec.training_flops(merged)
        train = params.validate_all(merged)["train"]
        key = repr(sorted(params.as_dict(train).items()))
        if key not in self.cache:
            self.cache[key] = seconds_per_sample(train)
        return self.cache[key] * samples(merged)

    def relative(self, merged: dict) -> float:
        return self.absolute(merged) / self.reference


def seconds_per_sample(train, budget: float = 0.4, rounds: int = 3) -> float:
    """Median seconds per training sample of this model and batch size on synthetic images, one
    thread (src.core.engine.train_epoch, as training runs)."""
    import torch

    from src.core import checkpoints, engine
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = checkpoints.build_model(train).to(memory_format=torch.channels_last)
    optimizer = engine.make_optimizer(model, train)
    schedule = engine.make_schedule(optimizer, train, 10_000)
    generator = torch.Generator().manual_seed(0)
    n = max(train.batch_size * 4, 256)
    x, y = torch.randn(n, 1, 28, 28), torch.randint(0, 10, (n,))
    start = time.perf_counter()
    engine.train_epoch(model, x, y, optimizer, schedule, train, generator)  # warm-up, probe
    per = (time.perf_counter() - start) / n
    n = int(min(max(budget / per, train.batch_size * 4), 20_000))
    x, y = torch.randn(n, 1, 28, 28), torch.randint(0, 10, (n,))
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        engine.train_epoch(model, x, y, optimizer, schedule, train, generator)
        times.append((time.perf_counter() - start) / n)
    return statistics.median(times)


def experiment_seconds(merged: dict, cost: Cost) -> float:
    return FIXED_S + REF_WORKER_S * cost.relative(merged)


def plan(claims: claim_spec.Claims, base: dict, costs: list[Cost], workers: int) -> list[Study]:
    """Every study the claims read, cheapest first (by the first cost model's estimate)."""
    studies = []
    for name, design in claims.designs.items():
        ids = [c.id for c in claims.claims if name in c.studies]
        if name in claims.sweeps:
            sweep = claims.sweeps[name]
            merged = [sweep_spec.apply(base, c) for c in sweep.configs]
            per_seed = [[experiment_seconds(m, cost) for m in merged] for cost in costs]
            fidelity = claim_spec.fidelity(list(sweep.configs), base)
            studies.append(Study(name, "sweep", len(sweep.configs), design.first_seeds,
                                 design.max_seeds, per_seed[0], fidelity, ids, per_seed[-1]))
            continue
        search = claims.search_sets[name][0]
        trials = max(b.trials for c in claims.claims for p in c.parts for b in (p.best_a, p.best_b)
                     if b and b.study == name)
        middle = {d.key: (d.choices[0] if d.choices else
                          math.sqrt(d.low * d.high) if d.type == "loguniform" else (d.low + d.high) / 2)
                  for d in search.space}
        replicate = [math.ceil(trials / workers) * (experiment_seconds(
            sweep_spec.apply(base, search.fixed | middle), cost) + BATCH_S) for cost in costs]
        studies.append(Study(name, "search set", trials, design.first_seeds, design.max_seeds,
                             replicate[:1], claim_spec.fidelity([search.fixed], base), ids,
                             replicate[-1:]))
    return sorted(studies, key=lambda s: s.wall(s.first, workers))


def hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 5400 else f"{seconds / 60:.0f} min"


def table(studies: list[Study], workers: int, measured: bool) -> list[list]:
    rows = []
    for order, s in enumerate(studies, start=1):
        unit = "trials x replicates" if s.kind == "search set" else "experiments"
        walls = [hours(s.wall(seeds, workers, m)) for m in (False, True)[:1 + measured]
                 for seeds in (s.first, s.most)]
        rows.append([order, s.name, ", ".join(map(str, s.claims)), s.kind, s.configs,
                     f"{s.first} / {s.most}", f"{s.configs * s.first} / {s.configs * s.most} {unit}",
                     *walls, s.fidelity])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--measure", action="store_true",
                        help="also time each model's training steps here (a second estimate)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--markdown", action="store_true", help="a Markdown table")
    args = parser.parse_args()
    claims = claim_spec.load()
    base = params.read_yaml(paths.PARAMS)
    costs = [Cost(base, False)] + ([Cost(base, True)] if args.measure else [])
    studies = plan(claims, base, costs, args.workers)
    walls = [f"{how}, {when}" for how in ("FLOPs", "measured")[:len(costs)]
             for when in ("first look", "worst case")]
    header = ["order", "study", "claims", "kind", "configs / trials", "first / max seeds",
              "runs at first / max", *walls, "fidelity"]
    rows = table(studies, args.workers, args.measure)
    if args.markdown:
        print("\n".join(md_table(header, rows)))
    else:
        for row in rows:
            print("  ".join(str(x) for x in row))
    for measured in (False, True)[:len(costs)]:
        first = sum(s.wall(s.first, args.workers, measured) for s in studies) + LR_FIND_S
        worst = sum(s.wall(s.most, args.workers, measured) for s in studies) + LR_FIND_S
        print(f"\ntotal ({'measured steps' if measured else 'FLOPs'}), {args.workers} workers: "
              f"{first / 3600:.1f} h at the first look, {worst / 3600:.1f} h if every study ran to "
              f"its max seeds (python -m src.lr_find included, ~{LR_FIND_S:.0f} s)")


if __name__ == "__main__":
    errors.run(main)
