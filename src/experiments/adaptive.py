"""Adaptive seeds: `python -m src.sweep run NAME --seeds 3 --until-decided --max-seeds 10`.

Round 1 runs the first ``seeds`` seeds of every configuration; each later round adds the next seed
to the baseline and to every configuration whose comparison with it is still undecided, and
decides again, until every comparison is decided or ``max_seeds`` is reached. The decisions are
src/core/decide.py's sequential procedure (a fixed boundary per look, Holm over the comparisons of
a look), replayed from the experiments that exist each time: the runner keeps no state of its own,
so an interrupted run resumes where it stopped, and `python -m src.study NAME` reaches the same
verdicts from the same experiments. Experiments are the usual `<sweep>--<config>--s<seed>`; seeds
already run on this commit, or carried over from the committed study of an earlier commit with the
same sources and params (src/experiments/carried.py), are reused, not trained again.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from dataclasses import dataclass

from src.core import atomic, decide, naming, paths, seed_table
from src.core.errors import TunelabError
from src.core.status import parse
from src.experiments import backends, carried, dvc_queue, estimate, shared_runner, sweep_runner, sweep_spec
from src.experiments.exp_show import Outcome
from src.experiments.shared_study import Settings


def runs_of_outcomes(outcomes: dict[str, Outcome], sweep: str) -> list[seed_table.Run]:
    """The experiments of ``sweep`` among ``outcomes`` (by name) as the one table reads them."""
    runs = []
    for name, outcome in outcomes.items():
        parsed = naming.parse_name(name)
        if parsed is not None and parsed["sweep"] == sweep:
            runs.append(seed_table.Run(parsed["config"], int(parsed["seed"]), outcome.state, {
                m: getattr(outcome, m, None) for m in sweep_spec.METRICS}))
    return runs


def cv_by_seed(outcomes: dict[str, Outcome], sweep: str,
               metric: str = sweep_spec.CV_METRIC) -> dict[str, dict[int, float]]:
    """{config label: {seed: value}} of the experiments of ``sweep``: the one per-seed table
    (src/core/seed_table.py: failed runs left out, as they are queued again; NaN for a run that
    diverged or was pruned; ``metric``, or CV accuracy where a finished experiment lacks it, as
    the study decides). ``outcomes``: by the asked experiments' names, matched by identity
    (:func:`sweep_runner.matched`)."""
    return seed_table.by_seed(runs_of_outcomes(outcomes, sweep), metric)


@dataclass(frozen=True)
class State:
    """Where a sequential study stands: each comparison's latest decision, the looks taken, and
    the seeds still to run for the next look ({config: seeds}; empty when the study is over)."""
    decisions: dict[str, decide.Decision]
    looks: int
    pending: dict[str, list[int]]

    @property
    def over(self) -> bool:
        return not self.pending


class _NotRun(Exception):
    def __init__(self, configs: list[str], seeds: list[int]):
        super().__init__()
        self.configs, self.seeds = configs, seeds


def replay(values: dict[str, dict[int, float]], baseline: str, configs: list[str],
           margin: float, design: decide.Design) -> State:
    """The sequential procedure (:func:`decide.run_sequential`, the loop the error-rate simulation
    drives) over the experiments that exist: it asks for the seeds of each look, and stops at the
    first look whose experiments have not all run yet. ``values``: :func:`cv_by_seed`."""
    base = values.get(baseline, {})
    taken: list[dict[str, decide.Decision]] = []

    def draw(todo: list[str], seeds: list[int]) -> dict[str, list[float]]:
        if any(s not in base or s not in values.get(c, {}) for c in todo for s in seeds):
            raise _NotRun(todo, seeds)
        return {c: [values[c][s] - base[s] for s in seeds] for c in todo}

    compared = [c for c in configs if c != baseline]
    try:
        final = decide.run_sequential(draw, compared, margin, design,
                                      on_look=lambda look, d: taken.append(d))
    except _NotRun as missing:
        latest: dict[str, decide.Decision] = {}
        for decisions in taken:
            latest |= decisions
        return State(latest, len(taken), {c: missing.seeds for c in missing.configs})
    return State(final, len(taken), {})


def design_fields(design: decide.Design, margin: float,
                  metric: str = sweep_spec.CV_METRIC) -> dict:
    """A design as it is recorded: here by the clone, beside a committed study by the study. A
    Bonferroni design is recorded without its method, as before there were others, so that its
    committed design.json stays as it was (a record without one reads as Bonferroni); likewise a
    design deciding on CV accuracy without its metric (a record without one reads as CV)."""
    method = {"method": design.method} if design.spends else {}
    chosen = {"metric": metric} if metric != sweep_spec.CV_METRIC else {}
    continued = {}
    if design.continues is not None:  # the design it continues, and the looks taken under it
        earlier = design.continues
        continued = {"continues": {"max_seeds": earlier.max_seeds,
                                   **({"method": earlier.method} if earlier.spends else {}),
                                   "looks": design.continued_after}}
    return {"seeds": design.first_seeds, "max_seeds": design.max_seeds, "margin": margin,
            "alpha": design.alpha, **method, **chosen, **continued}


def design_of(fields: dict, first: int | None = None, last: int | None = None) -> decide.Design:
    """The Design of recorded ``fields`` (:func:`design_fields`), with ``first``/``last`` seeds in
    place of the recorded ones where given. ValueError for fields that make no design."""
    first = fields["seeds"] if first is None else first
    last = fields["max_seeds"] if last is None else last
    alpha = fields.get("alpha", 0.05)
    method = fields.get("method", decide.LEGACY_METHOD)
    earlier = fields.get("continues")
    if not earlier:
        return decide.Design(first, last, alpha, method)
    return decide.Design(first, last, alpha, method,
                         continues=decide.Design(first, earlier["max_seeds"], alpha,
                                                 earlier.get("method", decide.LEGACY_METHOD)),
                         continued_after=earlier["looks"])


def record_design(name: str, design: decide.Design, margin: float,
                  metric: str = sweep_spec.CV_METRIC) -> None:
    """The design this clone ran, for `python -m src.study NAME` (.tunelab/sweeps/<name>.design.json)."""
    atomic.write_json(paths.SWEEP_RECORDS / f"{name}.design.json",
                      design_fields(design, margin, metric))


def round_experiments(sweep: sweep_spec.Sweep, base: dict, extra: dict,
                      pending: dict[str, list[int]],
                      reference: dict | None = None) -> list[sweep_spec.Experiment]:
    """The experiments of one round: each open configuration's missing seeds, and the baseline's."""
    wanted = dict(pending)
    wanted[sweep.baseline_label] = sorted({s for seeds in pending.values() for s in seeds})
    return [e for label, seeds in wanted.items() if seeds
            for e in sweep_spec.expand(sweep, seeds, base, extra, configs={label},
                                       reference=reference)]


def print_plan(sweep: sweep_spec.Sweep, base: dict, extra: dict, design: decide.Design,
               jobs: int, backend: backends.Backend, every: list[sweep_spec.Experiment],
               reference: dict | None) -> None:
    """--dry-run: where the study stands (from the experiments that count as run: those the
    backend ran, and those carried over), the next round's commands, the rounds that may follow,
    and the estimates of what is left."""
    live = backend.live()
    known = backend.known(live)
    state = replay(cv_by_seed(sweep_runner.matched(every, known), sweep.name, sweep.design.metric),
                   sweep.baseline_label, [sweep.label(c) for c in sweep.configs],
                   sweep.design.margin, design)
    done, n_carried = sweep_runner.already_run(every, known, live)
    if state.looks:
        print(progress(state, design))
    if state.over:
        print(f"nothing to run (--dry-run): {sweep_runner.describe_run(done, n_carried)}")
        return
    following = design.looks - state.looks - 1
    todo = [e for e in round_experiments(sweep, base, extra, state.pending, reference)
            if e.name not in done]
    sweep_runner.print_dry_run(
        sweep_spec.longest_first(todo, base),
        f"look {state.looks + 1} of {design.looks}: "
        + (f"{len(sweep.configs)} configurations x {design.first_seeds} seeds"
           if not state.looks else f"the next seed of the {len(state.pending)} open "
           "configuration(s) and of the baseline")
        + f"; {sweep_runner.describe_run(done, n_carried)}; on {backend.where}")
    cache: dict = {}
    low = sweep_runner.estimated_wall(todo, base, jobs, cache)
    high = sweep_runner.estimated_wall([e for e in every if e.name not in done], base, jobs, cache)
    print(f"then up to {following} more round(s), each adding one seed to the baseline "
          f"and to every configuration still undecided (margin ±{100 * sweep.design.margin:.2g} "
          f"points, {design.looks} looks at "
          + (f"nominal levels {', '.join(f'{a:.2g}' for a in design.planned_levels())} "
             f"({design.method} alpha spending, alpha {design.alpha})" if design.spends else
             f"alpha {design.alpha} / {design.looks} = {design.look_alpha:.4g} each")
          + f"): at most {len(every) - len(done)} more experiments")
    print(f"estimated wall time on {jobs} worker(s): this round {estimate.describe(low)}; if "
          f"every configuration needs {design.max_seeds} seeds, {estimate.describe(high)} "
          "(src/experiments/estimate.py)")


def run(name: str, seeds: int | None, max_seeds: int | None, jobs: int, extra: dict,
        dry_run: bool = False, poll: float = dvc_queue.POLL_SECONDS,
        shared: Settings | None = None,
        after_look: Callable[[int, str], object] | None = None) -> int:
    """Run sweep ``name`` until every comparison is decided or ``max_seeds`` is reached, on this
    machine's DVC queue or, with ``shared``, on the shared study of every host; 0 when no
    experiment failed, 1 otherwise. ``after_look(look, progress)`` is called after each look that
    followed a round of experiments (src/experiments/look_commits.py commits the report)."""
    if jobs < 1:
        raise TunelabError(f"--jobs {jobs}: must be at least 1")
    base, loaded = sweep_spec.load_sweeps([name])
    sweep = loaded[name]
    first = sweep.design.seeds if seeds is None else seeds
    last = sweep.design.max_seeds if max_seeds is None else max_seeds
    if not 2 <= first <= last:
        raise TunelabError(f"--seeds {first} --max-seeds {last}: need 2 <= --seeds <= "
                           "--max-seeds")
    labels = [sweep.label(c) for c in sweep.configs]
    for warning in sweep_spec.config_warnings(sweep_spec.expand(sweep, 1, base, extra), base):
        print(warning, file=sys.stderr)
    reference = sweep_spec.committed_params()
    every = sweep_spec.expand(sweep, last, base, extra, reference=reference)
    backend = backends.LocalQueue(name, jobs, poll) if shared is None else \
        backends.SharedStudy(shared_runner.sweep_job(sweep, extra, shared), every,
                             create=not dry_run)
    design = continued_design(sweep, every, backend, first, last)
    if dry_run:
        print_plan(sweep, base, extra, design, jobs, backend, every, reference)
        return 0
    record_design(sweep.name, design, sweep.design.margin, sweep.design.metric)
    ran: dict[str, sweep_spec.Experiment] = {}
    outcomes = sweep_runner.matched(every, backend.known())
    tried: set[str] = set()
    while True:
        state = replay(cv_by_seed(outcomes, sweep.name, sweep.design.metric), sweep.baseline_label,
                       labels, sweep.design.margin, design)
        print(progress(state, design), flush=True)
        if after_look is not None and tried:  # a round ran since the last look
            after_look(state.looks, progress(state, design))
        todo = round_experiments(sweep, base, extra, state.pending, reference)
        if not todo:
            break
        again = [e.name for e in todo if e.name in tried and not (
            e.name in outcomes and outcomes[e.name].state.usable)]
        if again:  # ran in an earlier round and still not usable: failed or diverged
            print(f"stopping: {', '.join(again)} did not give a usable result; the sequential "
                  "design needs it (see below)")
            break
        tried |= {e.name for e in todo}
        ran |= {e.name: e for e in todo}
        outcomes = sweep_runner.matched(every, backend.run(
            todo, sweep_spec.longest_first(todo, base)))
    code = sweep_runner.report(sweep.name, list(ran.values()), outcomes) if ran else 0
    print(f"next: python -m src.study {sweep.name}" + (" --pull" if shared else "") + (
        f" --seeds {design.first_seeds} --max-seeds {design.max_seeds}"
        if (design.first_seeds, design.max_seeds) != (sweep.design.seeds, sweep.design.max_seeds)
        else ""))
    return code


def continued_design(sweep: sweep_spec.Sweep, every: list[sweep_spec.Experiment],
                     backend: backends.Backend, first: int, last: int) -> decide.Design:
    """How the study spends alpha over its looks: the sweep's method (sweeps.yaml); but where it
    continues a committed study (some of its experiments carried over) whose recorded design is
    another, the committed study's looks stay as they were decided and the later looks spend
    only the alpha those left (decide.Design's ``continues``; src/core/decide.py). A study that
    was already continued keeps its continuation; one whose recorded design took its last look
    has no alpha left and keeps its design."""
    plain = sweep.design.decision(first, last)
    committed = carried.committed_design(sweep.name)
    if committed is None or (committed.get("method", decide.LEGACY_METHOD) == sweep.design.method
                             and "continues" not in committed):
        return plain
    live = backend.live()
    if not sweep_runner.already_run(every, backend.known(live), live)[1]:
        return plain
    if "continues" in committed:
        return design_of(committed, first, last)
    earlier = design_of(committed, first)
    taken = looks_taken(carried.committed_rows(sweep.name), first)
    if not 1 <= taken < min(earlier.looks, plain.looks):
        print(f"sweep {sweep.name}: continues its committed study as it was decided "
              f"({earlier.method}, {taken} of its {earlier.looks} looks taken: no alpha left to "
              "spend otherwise)", file=sys.stderr)
        return decide.Design(first, last, earlier.alpha, earlier.method)
    design = decide.Design(first, last, earlier.alpha, sweep.design.method, continues=earlier,
                           continued_after=taken)
    left = 1 - taken / earlier.looks if not earlier.spends else math.nan
    print(f"sweep {sweep.name}: continues its committed study ({earlier.method}, {taken} of "
          f"{earlier.looks} looks taken, as they were decided); the later looks spend what they "
          f"left{f' ({left:.0%} of alpha)' if not math.isnan(left) else ''} by "
          f"{sweep.design.method} alpha spending, up to {last} seeds", file=sys.stderr)
    return design


def looks_taken(rows: list[dict[str, str]], first: int) -> int:
    """The looks a committed adaptive study took: one at ``first`` seeds, then one per seed
    added, to its configurations' most usable seeds."""
    seeds: dict[str, set[str]] = {}
    for row in rows:
        if parse(row.get("state")).usable:
            seeds.setdefault(row.get("config") or "", set()).add(row.get("seed") or "")
    most = max((len(s) for s in seeds.values()), default=0)
    return max(most - first + 1, 0)


def progress(state: decide.SequentialState, design: decide.Design) -> str:
    """e.g. ``look 2 of 8: 3 decided (better 1, equivalent 2), 1 open: dropout=0.5``."""
    counts: dict[str, int] = {}
    for decision in state.decisions.values():
        if decision.verdict in decide.DECIDED:
            counts[decision.verdict] = counts.get(decision.verdict, 0) + 1
    open_ = sorted(state.pending)
    detail = ", ".join(f"{v} {n}" for v, n in sorted(counts.items()))
    return (f"look {state.looks} of {design.looks}: {sum(counts.values())} decided"
            f"{f' ({detail})' if detail else ''}, {len(open_)} open"
            f"{': ' + ', '.join(open_) if open_ else ''}")
