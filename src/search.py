"""Random and Bayesian (Optuna TPE) hyperparameter search, each trial a queued DVC experiment.

    python -m src.search lr_dropout --trials 20 --jobs 2                  # TPE, seed 0
    python -m src.search lr_dropout --trials 20 --jobs 2 --sampler random --seed 1
    python -m src.search lr_dropout --trials 20 --set train.epochs=5      # --set as for sweeps
    python -m src.search lr_dropout --trials 20 --dry-run                 # validate, show batch 1
    python -m src.search lr_dropout --trials 40 --jobs 2 --storage postgresql://USER@HOST/tunelab_optuna
                                    # several hosts, one study (docs/distributed.md)

Reads  searches.yaml (validated: every bound and choice is checked against the params schema
       before anything runs), params.yaml, `dvc exp show --json` (each trial's objective:
       cv.val_accuracy.mean; the test set never ranks).
Writes .tunelab/search/<name>.journal, the Optuna study (journal file storage, parallel-safe; train's
       pruning hook reads it, src/experiments/pruning.py), and DVC experiments
       `<name>--t<NNN>--s<train.seed>` (NNN = Optuna trial number) that train tags in MLflow as
       sweep=<name>, sweep.config=t<NNN>.

How the study runs (batches, resuming, seeding): src/experiments/optuna_search.py. With --storage
(or $TUNELAB_STORAGE) the study lives on PostgreSQL instead of the journal, and the workers of every
host ask it for trials (TPE with the constant liar): src/experiments/shared_runner.py.
"""

from __future__ import annotations

import argparse
import sys

import optuna

from src.core import errors, params, paths
from src.core.errors import TunelabError
from src.experiments import optuna_search, search_spec, shared_runner, sweep_spec


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m src.search", description=__doc__.split("\n\n")[0])
    p.add_argument("name", help="a search of searches.yaml")
    p.add_argument("--trials", type=int, required=True, help="trials the study should have in all")
    p.add_argument("--jobs", "-j", type=int, default=1, help="parallel queue workers = batch size")
    p.add_argument("--sampler", choices=search_spec.SAMPLERS, default=None,
                   help="default: the search's own (searches.yaml), else tpe")
    p.add_argument("--seed", type=int, default=None,
                   help="sampler seed (not train.seed); default: the search's own, else 0")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a param for every trial (repeatable)")
    p.add_argument("--dry-run", action="store_true", help="validate and print the next batch")
    shared_runner.add_arguments(p)
    return p


def main() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # one line per trial is printed instead
    args = parser().parse_args()
    if args.trials < 1 or args.jobs < 1:
        raise TunelabError("--trials and --jobs must be at least 1")
    search = search_spec.load_search(args.name)
    base = params.read_yaml(paths.PARAMS)
    extra = dict(sweep_spec.parse_set(s) for s in args.set or [])
    search_spec.check_values(search, base, extra)
    sampler, seed = search.run_settings(args.sampler, args.seed)
    shared = shared_runner.settings(args)
    if args.dry_run:
        return optuna_search.dry_run(search, args.trials, args.jobs, sampler, seed, base, extra)
    code = shared_runner.run_search(search, args.trials, seed, sampler, base, extra, shared) \
        if shared else optuna_search.run(search, args.trials, args.jobs, seed, sampler, base,
                                         extra, args.poll)
    if code:
        sys.exit(code)


if __name__ == "__main__":
    errors.run(main)
