"""Study report of a sweep or a search: statistics over seeds, comparisons with the baseline,
figures, an MLflow run.

Reads  `dvc exp show --json` (the current commit's experiments; every commit's with --all-commits,
       keeping the newest run of a name): each experiment's params and
       reports/evaluate/metrics.json; `git show <exp rev>:reports/train/history.csv` for learning
       curves; sweeps.yaml, searches.yaml and params.yaml (the configurations and the baseline);
       the committed reports/study/<sweep>/experiments.csv, whose experiments of an earlier commit
       with the same code count as run (src/experiments/carried.py). Only the experiments whose
       params are those asked (params.yaml with each configuration, seed and --set) make the study
       (src/core/identity.py); the others are counted and left out.
Writes reports/study/<sweep>/ (each file atomically; files of an earlier study are replaced):
         summary.csv      one row per configuration: n, mean / std / 95% CI of the CV validation
                          accuracy, test accuracy, cost, and the Holm-adjusted comparison with the
                          baseline;
         experiments.csv  one row per experiment (what the table is made of), with the commit it
                          ran from (``baseline``);
         report.md        the table, findings in words, ANOVA, figures, failures;
         *.png            figures chosen from the sweep's design (src/studies/sweep_figures.py);
         design.json      an adaptive study's design (first and most seeds, margin, alpha, method), so
                          that a clone that did not run the sweep decides the same way;
       for a search (searches.yaml) instead: trials.csv, report.md (trials ranked, parameter
       importance, what pruning saved, a sweep to confirm the best over seeds) and its figures
       (src/studies/search_report.py);
       an MLflow run `study-<name>` (tags sweep, tunelab.kind=study | search-study) with all of
       the above, and runs.csv: the MLflow parent run of each experiment it used (from the
       experiment's commit), whether this store holds it, and a link to the sweep's runs grouped
       by configuration (src/studies/outputs.py).
       With --pull (or $TUNELAB_STORAGE set: a shared study), every host's experiments of this
       commit are first fetched from the git remote they were pushed to (`dvc exp pull`): the
       shared git remote is the study's source of truth; each experiment's host comes from its
       commit's reports/train/mlflow_run.json (experiments.csv column `host`).
Run    python -m src.study dropout              # after `python -m src.sweep run dropout --seeds 5`
       python -m src.study lr_dropout           # after `python -m src.search lr_dropout ...`
       python -m src.study --all                # every sweep that has experiments
       python -m src.study lr --all-commits     # experiments of every commit, not just HEAD's
       python -m src.study dropout --pull       # after `sweep run dropout --storage ...` on hosts
       python -m src.study claims               # reports/claims.md + claims.csv (below)
       python -m src.study --experiments 'grid-*' --name grid --baseline train.dropout=0.0

`--experiments [NAME_OR_GLOB ...]` studies DVC experiments of this commit however they were queued
(`dvc exp run --queue -S 'train.dropout=0.0,0.5' -S 'train.seed=range(0,5)'`): all of them, or
those whose names match; grouped by every param that varies among them but train.seed, the seeds
as replicates, with the decisions, report and figures of a sweep's study, written to
reports/study/<--name>/ (src/studies/experiments_study.py).

`claims` (a reserved name) decides every claim of claims.yaml from the studies already in
reports/study/ (experiments.csv of sweeps, trials.csv of searches) and reports/lr_find/
suggestion.json, and writes reports/claims.md and reports/claims.csv (atomically; no DVC, no
MLflow). The same files give the same bytes: no timestamps, fixed number formats. How a claim is
decided: src/studies/claim_decisions.py (the page: claims_report.py).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

from src.core import atomic, errors, params, paths
from src.core.errors import TunelabError
from src.experiments import claim_spec, dvc_queue, rdb, search_spec, sweep_spec
from src.studies import (
    claim_decisions,
    claims_report,
    experiments_study,
    outputs,
    search_report,
    sweep_figures,
    sweep_study,
)

CLAIMS = "claims"
CSV_FLOATS = "%.6g"  # claims.csv: stable text for the same numbers


def sweeps_to_study(names: list[str]) -> dict[str, sweep_spec.Sweep]:
    """The named sweeps parsed; with --all, one that does not fit params.yaml is skipped, said."""
    if len(names) == 1:
        return sweep_spec.load_sweeps(names)[1]
    found = {}
    for name in names:
        try:
            found |= sweep_spec.load_sweeps([name])[1]
        except TunelabError as error:
            print(f"skipped: {error}", file=sys.stderr)
    return found


def study_search(search: search_spec.Search, shown: list) -> None:
    """A search's study: trials ranked, importance, history, pruning's savings."""
    frame = search_report.trials_frame(shown, search)
    folder = paths.STUDY_REPORTS / search.name
    if len(frame):
        settings = search_report.shared_settings(shown, search, params.read_yaml(paths.PARAMS))
    else:  # none here: the committed study is the record, rebuilt as it is
        frame, settings = search_report.recorded(folder, search)
        if frame.empty:
            raise TunelabError(f"search {search.name} has no trials on the current commit: run "
                               f"`python -m src.search {search.name} --trials 20 --jobs 2` first")
        print(f"study {search.name}: no trials in this clone; rebuilt from the committed "
              f"{folder / search_report.TRIALS}")
    files = search_report.build(search, frame, settings)
    outputs.write_outputs(folder, files)
    ranked = search_report.ranked(frame)
    cost = search_report.compute(frame)
    outputs.log_to_mlflow(
        search.name, folder,
        {"tunelab.kind": "search-study",
         "study.best_trial": ranked["name"].iloc[0] if len(ranked) else ""},
        {"best.cv_accuracy": ranked["cv_accuracy"].iloc[0] if len(ranked) else math.nan,
         "trials": len(frame), "pruned": cost["pruned"],
         "pruning.saved_share": cost["saved_share"]}, sweep_study.run_links(frame))
    print(f"study {search.name}: {len(frame)} trials -> {folder}/: {', '.join(sorted(files))}")


def read_design(path: Path) -> dict | None:
    """A recorded design ({seeds, max_seeds, margin, alpha[, method]}), or None if ``path`` does not exist."""
    try:
        design = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        raise TunelabError(f"{path} is unreadable ({error}): remove it, or pass --seeds and "
                           "--max-seeds") from None
    if not isinstance(design, dict) or not {"seeds", "max_seeds"} <= design.keys():
        raise TunelabError(f"{path} names no `seeds` and `max_seeds`: remove it, or pass --seeds "
                           "and --max-seeds")
    return design


def design_record(name: str) -> dict | None:
    """The design `sweep run --until-decided` recorded in this clone, if any."""
    return read_design(paths.SWEEP_RECORDS / f"{name}.design.json")


def committed_design(name: str, frame: pd.DataFrame) -> dict | None:
    """The design of the committed study of ``name`` (reports/study/<name>/design.json), if it
    has one and ``frame`` includes some of its experiments (the same experiment commits): a clone
    that did not run the sweep then decides them at the looks they were run with."""
    folder = paths.STUDY_REPORTS / name
    design = read_design(folder / sweep_study.DESIGN_FILE)
    table = folder / "experiments.csv"
    if design is None or not table.is_file():
        return None
    revs = set(pd.read_csv(table, usecols=["rev"])["rev"].dropna())
    return design if revs & set(frame["rev"].dropna()) else None


def study_sweep(sweep: sweep_spec.Sweep, frame, quiet_if_empty: bool, all_commits: bool,
                args, extra: dict) -> bool:
    """A sweep's study written to reports/study/<sweep>/; False if it had nothing to study and
    ``quiet_if_empty`` (--all) let it be skipped."""
    try:
        sweep_study.require_completed(frame, sweep, all_commits)
    except TunelabError as error:
        if not quiet_if_empty:
            raise
        print(f"skipped: {error}", file=sys.stderr)
        return False
    folder = paths.STUDY_REPORTS / sweep.name
    figures = sweep_figures.plan(sweep, sweep_figures.grid_factors(sweep))
    curves = [name for name, kind in figures if kind == "curves"]
    plan = sweep_study.study_plan(sweep, frame, args.seeds, args.max_seeds, args.margin,
                                  design_record(sweep.name), committed_design(sweep.name, frame))
    print(f"study {sweep.name}: design {plan.source} ({plan.origin})")
    histories = sweep_study.read_histories(frame) if curves else None
    # Learning curves need the experiments' commits: without them, keep the committed figure.
    kept = {} if histories else {name: (folder / name).read_bytes() for name in curves
                                 if (folder / name).is_file()}
    files = sweep_study.build_study(sweep, frame, histories, plan, kept, extra)
    outputs.write_outputs(folder, files)
    outputs.log_to_mlflow(sweep.name, folder,
                          *sweep_study.sweep_run_record(sweep, files["summary.csv"], len(frame)),
                          sweep_study.run_links(frame))
    print(f"study {sweep.name}: {len(frame)} experiments -> {folder}/: {', '.join(sorted(files))}")
    return True


def study_experiments(args) -> None:
    """`--experiments`: the study of DVC experiments of this commit, grouped by what varies."""
    if args.name or args.all or args.all_commits or args.set:
        raise TunelabError("--experiments studies the experiments of this commit as they ran: "
                           "name the study with --name, not a sweep; --all, --all-commits and "
                           "--set do not apply")
    name = args.study_name or experiments_study.DEFAULT_NAME
    experiments_study.check_name(name, {"sweeps.yaml": sweep_spec.sweep_names(),
                                        "searches.yaml": search_spec.search_names()})
    workspace = params.read_yaml(paths.PARAMS)
    design = sweep_spec.load_defaults(params.read_yaml(paths.SWEEPS)) \
        if paths.SWEEPS.exists() else sweep_spec.StudyDesign()
    if args.pull or os.environ.get(rdb.ENV):
        print(dvc_queue.pull_experiments(args.git_remote), flush=True)
    grouped = experiments_study.group(dvc_queue.exp_show_json(), name, args.experiments,
                                      workspace, args.baseline or [], design)
    for line in grouped.lines:
        print(f"study {name}: {line}", file=sys.stderr)
    study_sweep(grouped.sweep, sweep_study.with_hosts(grouped.frame), False, False, args, {})


def read_studies(claims: claim_spec.Claims, root: Path = Path()) -> claim_decisions.Studies:
    """The committed results the claims read: each sweep's experiments.csv, each replicate search's
    trials.csv, the LR range test's suggestion, and which report files exist (for the links)."""
    reports = root / paths.CLAIMS_REPORT.parent

    def csv(path: Path) -> pd.DataFrame | None:
        return pd.read_csv(path) if path.is_file() else None

    experiments = {name: csv(root / paths.STUDY_REPORTS / name / "experiments.csv")
                   for name in claims.sweeps}
    trials = {s.name: csv(root / paths.STUDY_REPORTS / s.name / "trials.csv")
              for searches in claims.search_sets.values() for s in searches}
    suggestion_path = root / paths.LR_FIND_SUGGESTION
    suggestion = json.loads(suggestion_path.read_text()) if suggestion_path.is_file() else None
    names = [*claims.sweeps, *trials]
    found = {f"study/{n}/report.md" for n in names if (reports / "study" / n / "report.md").is_file()}
    if suggestion is not None:
        found.add(claim_decisions.LR_LINK)
    return claim_decisions.Studies({k: v for k, v in experiments.items() if v is not None},
                                 {k: v for k, v in trials.items() if v is not None}, suggestion,
                                 frozenset(found))


def uncommitted(root: Path = Path()) -> list[str]:
    """Study files that differ from git's HEAD (empty outside a git repository)."""
    shown = subprocess.run(["git", "status", "--porcelain", "--", str(paths.STUDY_REPORTS),
                            str(paths.LR_FIND_REPORTS)], cwd=root, capture_output=True, text=True)
    return [line[3:] for line in shown.stdout.splitlines()] if shown.returncode == 0 else []


def study_claims() -> None:
    """`python -m src.study claims`: reports/claims.md and claims.csv from the committed studies."""
    claims = claim_spec.load()
    text, table, results = claims_report.build(claims, read_studies(claims))
    atomic.write_text(paths.CLAIMS_REPORT, text)
    atomic.write_with(paths.CLAIMS_TABLE,
                      lambda tmp: table.to_csv(tmp, index=False, float_format=CSV_FLOATS))
    dirty = uncommitted()
    if dirty:
        print(f"note: {len(dirty)} study file(s) differ from the last commit (e.g. {dirty[0]}): the "
              "page shows the working tree; commit them with it", file=sys.stderr)
    print(f"claims: {claims_report.summary_line(results)} -> {paths.CLAIMS_REPORT}, "
          f"{paths.CLAIMS_TABLE}")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m src.study", description=__doc__.split("\n\n")[0])
    p.add_argument("name", nargs="?", help="a sweep of sweeps.yaml or a search of searches.yaml, "
                   "or `claims` (every claim of claims.yaml, from the committed studies)")
    p.add_argument("--all", action="store_true", help="every sweep that has experiments")
    p.add_argument("--all-commits", "-A", action="store_true",
                   help="experiments of every commit (the newest run of each name)")
    p.add_argument("--margin", type=float, default=None,
                   help="the smallest CV accuracy difference that matters, e.g. 0.005 (0.5 points; "
                        "default: sweeps.yaml's)")
    p.add_argument("--seeds", type=int, default=None,
                   help="the adaptive design's first seeds, as `sweep run --until-decided` ran it")
    p.add_argument("--max-seeds", type=int, default=None,
                   help="the adaptive design's most seeds, as `sweep run --until-decided` ran it")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="the study of the experiments that ran with this override, as `sweep run "
                        "--set` ran them (repeatable); without it, those of params.yaml as it is")
    p.add_argument("--pull", action="store_true",
                   help="first fetch every host's experiments of this commit from the git remote "
                        f"(`dvc exp pull`; implied by ${rdb.ENV}): the study of a shared sweep")
    p.add_argument("--git-remote", default="origin", metavar="NAME",
                   help="the git remote for --pull (default origin)")
    p.add_argument("--experiments", nargs="*", metavar="NAME_OR_GLOB",
                   help="study DVC experiments of this commit however they were queued (all, or "
                        "those whose names match, e.g. 'grid-*'), grouped by every param that "
                        "varies but train.seed, the seeds as replicates")
    p.add_argument("--name", dest="study_name", metavar="NAME",
                   help="with --experiments: the study's name, reports/study/<NAME>/ (default "
                        f"{experiments_study.DEFAULT_NAME})")
    p.add_argument("--baseline", action="append", metavar="KEY=VALUE",
                   help="with --experiments: the group the others are compared with (repeatable; "
                        "keys not given: params.yaml's values)")
    return p


def main() -> None:
    args = parser().parse_args()
    if args.margin is not None and not 0 < args.margin < 1:
        raise TunelabError(f"--margin {args.margin}: must be in (0, 1), an accuracy difference "
                           "such as 0.005 (0.5 points)")
    if args.experiments is not None:
        return study_experiments(args)
    if args.study_name or args.baseline:
        raise TunelabError("--name and --baseline go with --experiments, e.g. `python -m "
                           "src.study --experiments --name grid --baseline train.dropout=0.0`")
    if bool(args.name) == args.all:
        raise TunelabError("name one sweep or search, or pass --all, e.g. "
                           "`python -m src.study dropout`")
    if args.name == CLAIMS:
        if args.all_commits:
            raise TunelabError("`claims` reads the committed study reports; --all-commits does "
                               "not apply")
        return study_claims()
    sweep_names, search_names = sweep_spec.sweep_names(), search_spec.search_names()
    is_search = not args.all and args.name not in sweep_names and args.name in search_names
    if not args.all and not is_search and args.name not in sweep_names:
        raise TunelabError(f"unknown sweep or search {args.name!r}; sweeps in sweeps.yaml: "
                           f"{', '.join(sweep_names)}; searches in searches.yaml: "
                           f"{', '.join(search_names) or 'none'}")
    extra = dict(sweep_spec.parse_set(item) for item in args.set or [])
    if extra and (args.all or is_search):
        raise TunelabError("--set selects one sweep's experiments: name a sweep, e.g. "
                           "`python -m src.study dropout --set train.epochs=2`")
    search = search_spec.load_search(args.name) if is_search else None
    all_sweeps = {} if is_search else sweeps_to_study(sweep_names if args.all else [args.name])
    if args.pull or os.environ.get(rdb.ENV):  # a shared study: every host pushed its experiments
        print(dvc_queue.pull_experiments(args.git_remote, args.all_commits), flush=True)
    shown = dvc_queue.exp_show_json(args.all_commits)
    if search:
        return study_search(search, shown)
    written = 0
    base = params.read_yaml(paths.PARAMS)
    for sweep in all_sweeps.values():
        live = sweep_study.experiments_frame(shown, sweep)
        frame, overrides = live.iloc[0:0], extra
        if len(live):
            frame, others = sweep_study.select(sweep_study.with_carried(
                sweep_study.with_hosts(live), sweep), sweep, base, extra)
            if len(others):
                print(f"study {sweep.name}: {len(others)} experiment(s) of other params left out "
                      f"(another --set, another params.yaml or a configuration sweeps.yaml no "
                      f"longer has; e.g. {others['name'].iloc[0]}); `--set KEY=VALUE` studies "
                      "those of an override", file=sys.stderr)
        if frame.empty:  # none asked for here: the committed study is the record, rebuilt as it is
            frame = sweep_study.recorded_frame(sweep)
            if extra:  # the record holds one set of overrides: those asked, or none
                frame = sweep_study.select(frame, sweep, base, extra)[0]
            else:
                overrides = sweep_study.recorded_overrides(sweep)
            if len(frame):
                print(f"study {sweep.name}: none of its experiments in this clone"
                      f"{' with these params' if len(live) else ''}; rebuilt from the committed "
                      f"{paths.STUDY_REPORTS / sweep.name / 'experiments.csv'}")
        if args.all and frame.empty:
            continue
        written += study_sweep(sweep, frame, args.all, args.all_commits, args, overrides)
    if not written:
        where = "in any commit" if args.all_commits else "on the current commit"
        raise TunelabError(f"no sweep has completed experiments {where}: run one first, e.g. "
                           "`python -m src.sweep run dropout --seeds 3`")


if __name__ == "__main__":
    errors.run(main)
