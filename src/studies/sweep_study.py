"""A sweep's study (pure but for :func:`read_histories`): its experiments as a table, the summary over
seeds with the comparisons against the baseline, the ANOVA of a factorial grid, and every output
file of the study (report.md, CSVs, figures).

Selection uses CV validation accuracy (per experiment the mean over its folds, final epoch), or,
where the sweep's design says `metric: selection_accuracy`, the fold models' mean accuracy on the
selection set (:func:`study_metric`); the seed is the replicate. The test set confirms the chosen
configuration and never ranks.
Every statistic comes from src/core/stats.py.
"""

from __future__ import annotations

import io
import json
import math
import subprocess
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from src.core import decide, identity, naming, paths, seed_table, stats
from src.core.errors import TunelabError
from src.core.status import Status, parse, usable
from src.experiments import adaptive, carried, exp_show, sweep_spec
from src.studies import sweep_figures
from src.studies.sweep_report import render_report

METRICS = {  # experiment column -> path in metrics.json
    "cv_accuracy": ("cv", "val_accuracy", "mean"), "test_accuracy": ("test", "accuracy"),
    "params": ("model", "params"), "seconds_per_epoch": ("time", "seconds_per_epoch"),
    "train_val_gap": ("cv", "train_val_gap"), "fold_epochs": ("time", "epochs"),
    "train_seconds": ("time", "train_seconds"),
    "selection_accuracy": ("selection", "accuracy", "mean"),  # experiments.csv: only when some have it
    "cv_val_loss": ("cv", "val_loss", "mean")}  # the same (claims decided on loss as well read it)
OPTIONAL = ("selection_accuracy", "cv_val_loss")  # columns of METRICS kept only when some have them
DESIGN_FILE = "design.json"  # an adaptive study's design, beside its report (study_plan)
COMPARISON = ["diff", "diff_ci_low", "diff_ci_high", "test_used", "p_value", "p_holm",
              "effect_size", "decision", "verdict", "below_margin", "p_tost", "tost_low",
              "tost_high", "seeds_used", "seeds_needed", "needed_for", "mdd", "look", "alpha_diff"]
COLUMNS = ["name", "rev", carried.BASELINE, "timestamp", "sweep", "config", "name_config", "seed",
           carried.IDENTITY, "state", "reason", "host", "others", *METRICS]


def match_config(sweep: sweep_spec.Sweep, flat: dict, defaults: dict) -> str | None:
    """The label of the configuration whose values ``flat`` has (a key a configuration leaves out
    keeps the commit's params.yaml value, ``defaults``); None if it matches none."""
    for config in sweep.configs:
        if all(flat.get(k) == (config[k] if k in config else defaults.get(k))
               for k in sweep.varied):
            return sweep.label(config)
    return None


def experiments_frame(shown: list, sweep: sweep_spec.Sweep,
                      wanted: Callable[[str], bool] | None = None) -> pd.DataFrame:
    """The sweep's experiments in `dvc exp show --json` output, one row each (pure).

    The configuration is recomputed from each experiment's own params, not read from its name; a
    name listed under several commits (``-A``) keeps its newest run. ``wanted``: which names are
    the sweep's (default: those named ``<sweep>--<config>--s<seed>``); an experiment named
    otherwise (a study of DVC experiments, src/studies/experiments_study.py) needs its params."""
    rows = []
    wanted = wanted or (lambda n: (naming.parse_name(n) or {}).get("sweep") == sweep.name)
    for name, head, defaults, baseline in exp_show.newest_experiments(shown, wanted):
        parsed, data = naming.parse_name(name) or {}, head.get("data") or {}
        flat, metrics = exp_show.flat_params(data), exp_show.metrics_of(data)
        failed = bool(head.get("error")) or not metrics
        label = match_config(sweep, flat, defaults) if flat else None
        if label is None and all(k in flat for k in sweep.varied):
            label = naming.config_label({k: flat[k] for k in sweep.varied})
        config = label or parsed["config"]
        others = {k: v for k, v in flat.items() if k not in sweep.varied and k != "train.seed"}
        rows.append({
            "name": name, "rev": head.get("rev"), carried.BASELINE: baseline,
            "timestamp": exp_show.timestamp(head),
            "sweep": sweep.name, "config": config, "name_config": parsed.get("config", config),
            "seed": int(flat.get("train.seed", parsed.get("seed"))),
            carried.IDENTITY: identity.of_or_none(exp_show.params_of(data)) or "",
            "state": str(Status.FAILED if failed else parse(metrics.get("status"))),
            "reason": exp_show.get(head, ("error", "msg")) or metrics.get("reason") or "",
            "host": "",  # read_hosts fills it in from the experiment's commit
            "others": json.dumps(others, sort_keys=True) if others else "",
            **{column: exp_show.number(exp_show.get(metrics, keys))
               for column, keys in METRICS.items()}})
    return pd.DataFrame(rows, columns=COLUMNS)


def with_carried(frame: pd.DataFrame, sweep: sweep_spec.Sweep) -> pd.DataFrame:
    """``frame`` (the current commit's experiments) with the rows of the committed study that
    count as run (src/experiments/carried.py): those of an identity that no experiment here has
    but for failed ones, which a carried row of their identity replaces."""
    live = set(frame.loc[frame["state"] != Status.FAILED, carried.IDENTITY]) - {""}
    rows = carried.carried_rows(sweep.name, live)
    if not rows:
        return frame
    extra = pd.DataFrame(rows).reindex(columns=COLUMNS)
    numeric = ["seed", *METRICS]
    extra[numeric] = extra[numeric].apply(pd.to_numeric, errors="coerce")
    extra = extra.fillna({c: "" for c in COLUMNS if c not in numeric}).astype({"seed": int})
    kept = frame[~frame[carried.IDENTITY].isin(extra[carried.IDENTITY])]
    return pd.concat([kept, extra], ignore_index=True) if len(kept) else extra


def select(frame: pd.DataFrame, sweep: sweep_spec.Sweep, base: dict,
           extra: dict | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The experiments the study asks for, and those it leaves out: a row is kept when its
    identity is that of its configuration and seed on ``base`` (params.yaml) with ``extra``
    (``--set``) applied (src/core/identity.py); one identity kept once (the newest). The others
    ran with other params (another ``--set``, another params.yaml) or of a configuration the
    sweep no longer has."""
    configs = {sweep.label(c): c for c in sweep.configs}
    extra = extra or {}
    wanted: dict[tuple[str, int], str | None] = {}

    def asked(row) -> bool:
        key = (row.config, int(row.seed))
        if key not in wanted:
            config = configs.get(row.config)
            wanted[key] = None if config is None else identity.of_or_none(
                sweep_spec.apply(base, config | extra | {"train.seed": int(row.seed)}))
        return bool(row.identity) and row.identity == wanted[key]

    mask = [asked(row) for row in frame.rename(columns={carried.IDENTITY: "identity"})
            .itertuples()] if len(frame) else []
    keep = pd.Series(mask, index=frame.index, dtype=bool)
    chosen = frame[keep]
    newest = chosen.sort_values("timestamp", kind="stable").drop_duplicates(
        carried.IDENTITY, keep="last")
    return chosen[chosen.index.isin(newest.index)], frame[~keep]


SETTINGS = "settings.json"  # the --set overrides every experiment of the study ran with


def recorded_overrides(sweep: sweep_spec.Sweep) -> dict:
    """The ``--set`` overrides the committed study of ``sweep`` ran with (its SETTINGS file;
    {} if it has none): a record rebuilt without its experiments says them as it did."""
    path = paths.STUDY_REPORTS / sweep.name / SETTINGS
    try:
        recorded = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except ValueError as error:
        raise TunelabError(f"{path} is not valid JSON ({error}): restore it from git") from None
    return recorded if isinstance(recorded, dict) else {}


def recorded_frame(sweep: sweep_spec.Sweep) -> pd.DataFrame:
    """The committed study's experiments (reports/study/<sweep>/experiments.csv) as the table
    :func:`experiments_frame` makes, empty if there is none. The record of what ran, whatever
    has changed since: a clone without any of the sweep's experiments rebuilds the committed
    study from it (``others`` is empty: the record does not keep it)."""
    path = paths.STUDY_REPORTS / sweep.name / carried.EXPERIMENTS
    if not path.is_file():
        return pd.DataFrame(columns=COLUMNS)
    table = pd.read_csv(path, dtype=str, keep_default_na=False).reindex(columns=COLUMNS)
    numeric = ["seed", *METRICS]
    table[numeric] = table[numeric].apply(pd.to_numeric, errors="coerce")
    return table.fillna({c: "" for c in COLUMNS if c not in numeric}).astype({"seed": int})


def require_completed(frame: pd.DataFrame, sweep: sweep_spec.Sweep, all_commits: bool = False) -> None:
    if usable(frame).empty:
        where = "in any commit" if all_commits else "on the current commit"
        found = f" ({', '.join(f'{n} {s}' for s, n in frame['state'].value_counts().items())})" \
            if len(frame) else ""
        raise TunelabError(f"sweep {sweep.name} has no completed experiments {where}{found}: run "
                           f"`python -m src.sweep run {sweep.name} --seeds 3` first")


def _summary(prefix: str, values: pd.Series) -> dict:
    """``<prefix>_mean/std/ci_low/ci_high`` of the finite values (NaN when there are none)."""
    values = values.dropna()
    s = stats.summarize(values.to_numpy(float)) if len(values) else None
    return {f"{prefix}_{k}": getattr(s, a) if s else math.nan for k, a in
            (("mean", "mean"), ("std", "std"), ("ci_low", "ci95_low"), ("ci_high", "ci95_high"))}


@dataclass(frozen=True)
class Plan:
    """How the study decides: the sequential design, the margin, and where they came from."""
    design: decide.Design
    margin: float
    source: str      # said in the report: the design itself, wherever it came from
    adaptive: bool   # replay the sequential looks (else one look at alpha)
    origin: str = ""  # where the design came from (said on the terminal, not in the report)
    metric: str = sweep_spec.CV_METRIC  # what the decisions compare (:func:`study_metric`)


def has_values(frame: pd.DataFrame, column: str) -> bool:
    return column in frame and bool(frame[column].notna().any())


def study_metric(frame: pd.DataFrame, wanted: str) -> str:
    """The metric a study decides on: ``wanted`` (the design's), but CV accuracy where a usable
    experiment lacks ``wanted`` (one that ran before the selection set existed, carried over from
    a committed study): one study compares one metric (src/core/seed_table.py)."""
    return seed_table.chosen_metric(seed_table.runs_of_frame(frame, [wanted]), wanted)


def seed_sets(frame: pd.DataFrame) -> dict[str, frozenset[int]]:
    return {c: frozenset(rows["seed"]) for c, rows in usable(frame).groupby("config")}


def study_plan(sweep: sweep_spec.Sweep, frame: pd.DataFrame, seeds: int | None = None,
               max_seeds: int | None = None, margin: float | None = None,
               record: dict | None = None, committed: dict | None = None) -> Plan:
    """The design the verdicts use: ``seeds``/``max_seeds`` (the study's flags) if given, else the
    design this clone's `sweep run --until-decided` recorded (``record``), else the design of the
    committed study whose experiments these include (``committed``: its DESIGN_FILE), else, when
    every configuration has the same seeds, a fixed design (one look at alpha), else the sweep's
    own (sweeps.yaml). The margin: ``margin``, else the record's or committed design's, else the
    sweep's. The method (how alpha is spent over the looks): the record's or committed design's,
    Bonferroni when it names none (it was recorded before there were others), else the sweep's.
    The report states an adaptive design as its flags, whichever of these it came from, so that a
    clone that reads it from DESIGN_FILE writes the same report (``origin`` says where it came
    from). The metric: the record's or committed design's (CV accuracy when it names none), else
    the sweep's; CV accuracy where some experiments lack it (:func:`study_metric`)."""
    known = record or committed or {}
    margin = margin if margin is not None else known.get("margin", sweep.design.margin)
    metric = study_metric(frame, known.get("metric", sweep_spec.CV_METRIC) if known
                          else sweep.design.metric)
    if seeds is not None or max_seeds is not None:
        first = seeds if seeds is not None else sweep.design.seeds
        last = max_seeds if max_seeds is not None else sweep.design.max_seeds
        return _adaptive(first, last, sweep.design.method, margin,
                         "the study's --seeds and --max-seeds", metric)
    if record:
        return _recorded(record, margin,
                         "the design `sweep run --until-decided` recorded in this clone "
                         f"(.tunelab/sweeps/{sweep.name}.design.json)", metric)
    if committed:
        return _recorded(committed, margin,
                         "the design of the committed study whose experiments these include "
                         f"({paths.STUDY_REPORTS}/{sweep.name}/{DESIGN_FILE})", metric)
    sets = set(seed_sets(frame).values())
    if len(sets) <= 1:
        n = len(next(iter(sets))) if sets else 0
        return Plan(_design(2, 2), margin, f"a fixed design: {n} seeds per configuration, one "
                    "look", False, "every configuration has the same seeds", metric)
    return _adaptive(sweep.design.seeds, sweep.design.max_seeds, sweep.design.method, margin,
                     f"sweeps.yaml's design of {sweep.name}", metric)


def _adaptive(first: int, last: int, method: str, margin: float, origin: str,
              metric: str) -> Plan:
    return Plan(_design(first, last, method), margin, f"--seeds {first} --max-seeds {last}", True,
                origin, metric)


def _recorded(fields: dict, margin: float, origin: str, metric: str) -> Plan:
    """The plan of a recorded design (adaptive.design_fields), a continued one included."""
    try:
        design = adaptive.design_of(fields)
    except (KeyError, TypeError, ValueError) as error:
        raise TunelabError(f"{origin}: not a design ({error})") from None
    return Plan(design, margin, f"--seeds {design.first_seeds} --max-seeds {design.max_seeds}",
                True, origin, metric)


def design_json(plan: Plan) -> str:
    """An adaptive plan's design as the study writes it beside its report (DESIGN_FILE), in the
    format of the clone's record (src/experiments/adaptive.py), so that a clone that did not run
    the sweep decides the committed experiments at the same looks."""
    return json.dumps(adaptive.design_fields(plan.design, plan.margin, plan.metric),
                      indent=2) + "\n"


def _design(first: int, last: int, method: str = decide.LEGACY_METHOD) -> decide.Design:
    try:
        return decide.Design(first, last, method=method)
    except ValueError as error:
        raise TunelabError(f"study design --seeds {first} --max-seeds {last} (method {method!r}): "
                           f"{error}") from None


def values_by_seed(frame: pd.DataFrame,
                   metric: str = sweep_spec.CV_METRIC) -> dict[str, dict[int, float]]:
    """{config: {seed: ``metric``}}: the one per-seed table (src/core/seed_table.py), as
    `sweep run --until-decided` and the claims read it (failed runs left out, NaN for a diverged
    or pruned one)."""
    return seed_table.by_seed(seed_table.runs_of_frame(frame, [metric]), metric)


def decisions(frame: pd.DataFrame, sweep: sweep_spec.Sweep,
              plan: Plan) -> tuple[dict[str, decide.Decision], int, set[str]]:
    """Each configuration's decision against the baseline, the looks taken, and the
    configurations compared unpaired (Welch). An adaptive plan
    replays the sequential procedure `sweep run --until-decided` ran (src/experiments/adaptive.py)
    over the experiments; a fixed one decides once at alpha (Holm over the comparisons): paired on
    the shared seeds, Welch where a configuration's seeds differ from the baseline's."""
    base = sweep.baseline_label
    labels = [sweep.label(c) for c in sweep.configs] + sorted(
        set(frame["config"]) - {sweep.label(c) for c in sweep.configs})
    values = values_by_seed(frame, plan.metric)
    if plan.adaptive:
        state = adaptive.replay(values, base, labels, plan.margin, plan.design)
        if state.looks:
            return state.decisions, state.looks, set()
    finite = seed_table.finite(values)
    b = finite.get(base, {})
    tests, welch = {}, set()
    for c in labels:
        mine = finite.get(c, {})
        if c == base or not mine or not b:
            continue
        tests[c], paired = decide.pair_test(mine, b)
        if not paired:
            welch.add(c)
    one_look = decide.Design(2, 2, plan.design.alpha)
    return decide.decide_once(tests, plan.margin, one_look), 1, welch


def used_values(frame: pd.DataFrame, config: str, baseline: str, decision: decide.Decision,
                paired: bool, metric: str = sweep_spec.CV_METRIC) -> tuple[np.ndarray, np.ndarray]:
    """The candidate's and the baseline's accuracies a decision used: paired, the first
    ``decision.n`` seeds both have (the looks take seeds in order); Welch, all of them."""
    values = seed_table.finite(values_by_seed(frame, metric))
    mine, b = values.get(config, {}), values.get(baseline, {})
    if not paired:
        return np.array(list(mine.values())), np.array(list(b.values()))
    use = sorted(set(mine) & set(b))[:decision.n]
    return np.array([mine[s] for s in use]), np.array([b[s] for s in use])


def summary_table(frame: pd.DataFrame, sweep: sweep_spec.Sweep, plan: Plan | None = None
                  ) -> pd.DataFrame:
    """One row per configuration: spread over seeds, cost, and the decision against the baseline
    (better / worse / equivalent within the margin / undecided with the seeds that would decide
    it), family-wise corrected over the sweep's comparisons and its looks."""
    plan = plan or study_plan(sweep, frame)
    ok, base = usable(frame), sweep.baseline_label
    decided, looks_taken, welch = decisions(frame, sweep, plan)
    rows = []
    # The sweep's configurations in its order, then any that only the data has (a --set value).
    levels = {sweep.label(c): {k: naming.format_value(c[k]) if k in c else "" for k in sweep.varied}
              for c in sweep.configs}
    levels |= {c: dict.fromkeys(sweep.varied, "") for c in frame["config"] if c not in levels}
    n_base = int((ok["config"] == base).sum())
    has_selection = has_values(frame, "selection_accuracy")  # summary.csv: only then
    for label, values in levels.items():
        mine, every = ok[ok["config"] == label], frame[frame["config"] == label]
        row = {"config": label, **values, "n": len(mine), **_summary("cv", mine["cv_accuracy"]),
               **_summary("test", mine["test_accuracy"]),
               **(_summary("selection", mine["selection_accuracy"]) if has_selection else {}),
               **_summary("train", mine["cv_accuracy"] + mine["train_val_gap"]),
               "params": mine["params"].median(),
               "seconds_per_epoch": mine["seconds_per_epoch"].mean(),
               "train_val_gap": mine["train_val_gap"].mean(),
               "n_diverged": int((every["state"] == Status.DIVERGED).sum()),
               "n_failed": int((every["state"] == Status.FAILED).sum()),
               "fold_epochs": every["fold_epochs"].sum(), "train_seconds": every["train_seconds"].sum()}
        d = decided.get(label)
        if label == base:
            row |= {"test_used": "baseline", "decision": "baseline", "verdict": "baseline"}
        elif d is None:
            row |= {"test_used": "none", "decision": decide.Verdict.NOT_TESTED,
                    "verdict": f"not tested (n = {len(mine)} vs {n_base})"}
        else:
            paired = label not in welch
            c, b = used_values(frame, label, base, d, paired, plan.metric)
            raw = stats.compare(c, b, paired=paired) if len(c) and len(b) else None
            row |= {"diff": d.diff, "diff_ci_low": d.ci_low, "diff_ci_high": d.ci_high,
                    "test_used": "none" if d.verdict == decide.Verdict.NOT_TESTED else
                    "paired" if paired else "welch",
                    "p_value": raw.p_value if raw else math.nan, "p_holm": d.p_value,
                    "effect_size": raw.effect_size if raw else math.nan,
                    "decision": d.verdict, "verdict": d.label(), "below_margin": d.below_margin,
                    "p_tost": d.p_tost, "tost_low": d.tost_low, "tost_high": d.tost_high,
                    "seeds_used": d.n, "seeds_needed": d.seeds_needed, "needed_for": d.needed_for,
                    "mdd": d.mdd, "look": d.look, "alpha_diff": d.alpha_diff}
        rows.append(row)
    table = pd.DataFrame(rows)
    table = table.reindex(columns=[k for k in table if k not in COMPARISON] + COMPARISON)
    table["margin"] = plan.margin
    table["looks"] = plan.design.looks if plan.adaptive else 1
    table["looks_taken"] = looks_taken
    table["look_alpha"] = plan.design.look_alpha if plan.adaptive else plan.design.alpha
    return table


def compute(frame: pd.DataFrame, summary: pd.DataFrame, plan: Plan) -> dict | None:
    """Fold-epochs and training seconds the study took, and what a fixed design giving every
    configuration max_seeds seeds would have taken (each configuration's mean per experiment x
    max_seeds): the saving of the adaptive seeds. None when no experiment recorded its cost (a
    study committed before experiments.csv had the columns)."""
    ran = frame[frame["state"] != Status.FAILED]
    if ran["fold_epochs"].isna().all():
        return None
    per = ran.groupby("config")[["fold_epochs", "train_seconds"]].mean()
    seeds = plan.design.max_seeds if plan.adaptive else int(summary["n"].max() or 0)
    return {"experiments": len(ran), "fold_epochs": float(ran["fold_epochs"].sum()),
            "train_seconds": float(ran["train_seconds"].sum()),
            "fixed_experiments": seeds * len(summary), "fixed_seeds": seeds,
            "fixed_fold_epochs": float(per["fold_epochs"].sum() * seeds),
            "fixed_train_seconds": float(per["train_seconds"].sum() * seeds)}


def anova_table(frame: pd.DataFrame, grid) -> tuple[pd.DataFrame | None, str]:
    """Two-way ANOVA (main effects + interaction) on the per-experiment values of a full grid
    (:func:`sweep_figures.grid_factors`); (None, why) when the data cannot support one."""
    if grid is None:
        return None, ""
    (a, b), cells = grid
    data = usable(frame)
    data = data[data["config"].isin(list(cells))]
    data = data.assign(**{a: data["config"].map(lambda c: cells[c][0]),
                          b: data["config"].map(lambda c: cells[c][1])})
    try:
        return stats.two_way_anova(data, a, b, "cv_accuracy"), ""
    except ValueError as error:
        return None, f"two-way ANOVA not possible: {error}"


def read_histories(frame: pd.DataFrame) -> dict[str, list[pd.DataFrame]]:
    """Each usable experiment's per-epoch history from its git commit, by configuration."""
    histories: dict[str, list[pd.DataFrame]] = {}
    for row in usable(frame).itertuples():
        shown = subprocess.run(["git", "show", f"{row.rev}:{paths.TRAIN_HISTORY}"],
                               capture_output=True, text=True)
        if shown.returncode == 0 and shown.stdout.strip():
            histories.setdefault(row.config, []).append(pd.read_csv(io.StringIO(shown.stdout)))
    return histories


def read_handles(revs: list[str]) -> dict[str, dict]:
    """What train wrote into reports/train/mlflow_run.json of each experiment's commit (its MLflow
    parent run's ids and its host), by rev: one `git cat-file --batch` for all; revs without it
    (or with an unreadable one) are left out."""
    revs = [rev for rev in dict.fromkeys(revs) if isinstance(rev, str) and rev]
    if not revs:
        return {}
    done = subprocess.run(["git", "cat-file", "--batch"], capture_output=True,
                          input="".join(f"{rev}:{paths.MLFLOW_RUN}\n" for rev in revs).encode())
    out, at, handles = done.stdout, 0, {}
    for rev in revs:
        end = out.find(b"\n", at)
        if end < 0:
            break
        header = out[at:end].split()
        at = end + 1
        if len(header) != 3:  # "<rev>:<path> missing"
            continue
        size = int(header[2])
        try:
            handle = json.loads(out[at:at + size])
        except ValueError:
            handle = None
        at += size + 1
        if isinstance(handle, dict):
            handles[rev] = handle
    return handles


def read_hosts(revs: list[str]) -> dict[str, str]:
    """The host each experiment ran on, by rev: the ``host`` of :func:`read_handles` (revs
    without one are left out). An experiment pulled from another host's push names that host."""
    return {rev: str(handle["host"]) for rev, handle in read_handles(revs).items()
            if handle.get("host")}


def run_links(frame: pd.DataFrame) -> pd.DataFrame:
    """The MLflow parent run of each experiment of a study (``name``, ``rev``): ``run_id`` from
    its commit's reports/train/mlflow_run.json, "" where the commit or the file is not here."""
    handles = read_handles(frame["rev"].tolist()) if len(frame) else {}
    return pd.DataFrame({"name": frame["name"].tolist(), "rev": frame["rev"].tolist(),
                         "run_id": [str(handles.get(rev, {}).get("run_id") or "")
                                    for rev in frame["rev"]]})


def with_hosts(frame: pd.DataFrame) -> pd.DataFrame:
    """The experiments table with its ``host`` column read from git (:func:`read_hosts`)."""
    hosts = read_hosts(frame["rev"].tolist())
    return frame.assign(host=frame["rev"].map(lambda rev: hosts.get(rev, "")))


def sweep_run_record(sweep: sweep_spec.Sweep, summary: pd.DataFrame, n: int) -> tuple[dict, dict]:
    """Tags and metrics of a sweep's study run: the best configuration and the baseline."""
    best = summary.loc[summary["cv_mean"].idxmax()]
    base = summary.loc[summary["config"] == sweep.baseline_label, "cv_mean"]
    return ({"study.best_config": best["config"], "study.baseline_config": sweep.baseline_label},
            {"best.cv_accuracy_mean": best["cv_mean"], "experiments": n,
             "baseline.cv_accuracy_mean": base.iloc[0] if len(base) else math.nan})


def build_study(sweep: sweep_spec.Sweep, frame: pd.DataFrame,
                histories: dict[str, list[pd.DataFrame]] | None = None,
                plan: Plan | None = None, kept: dict[str, bytes] | None = None,
                overrides: dict | None = None) -> dict[str, object]:
    """Every output file of a sweep's study, by name: DataFrames (CSV), the report, Figures.
    ``kept``: PNGs of the committed study that this clone cannot draw again (learning curves
    need each experiment's commit), kept as they are where the figure is not built.
    ``overrides``: the ``--set`` the study's experiments ran with (said in the report)."""
    plan = plan or study_plan(sweep, frame)
    summary = summary_table(frame, sweep, plan)
    grid = sweep_figures.grid_factors(sweep)
    anova, note = anova_table(frame, grid)
    curves = sweep_figures.seed_curves(histories) if histories else None
    drawn, kept = sweep_figures.build_all(sweep, summary, grid, curves), kept or {}
    built = {name: drawn.get(name, kept.get(name)) for name, _ in sweep_figures.plan(sweep, grid)
             if name in drawn or name in kept}
    design = {DESIGN_FILE: design_json(plan)} if plan.adaptive else {}
    if overrides:  # the record of what every experiment ran with (recorded_overrides)
        design[SETTINGS] = json.dumps(overrides, indent=2, sort_keys=True) + "\n"
    # Studies of experiments from before the selection set keep their committed columns.
    # Studies of experiments from before the validation loss was collected keep their columns too.
    unused = ["others"] + [c for c in OPTIONAL if not has_values(frame, c)]
    return {"summary.csv": summary, "experiments.csv": frame.drop(columns=unused, errors="ignore"),
            "report.md": render_report(sweep, frame, summary, anova, note, list(built), plan.source,
                                       compute(frame, summary, plan),
                                       plan.design if plan.adaptive else None, overrides,
                                       plan.metric),
            **design, **built}


