"""The study report: its pure pieces on hand-built experiments, checked against scipy and
statsmodels directly; the `dvc exp show --json` parser on a hand-written sample; and one end-to-end
run of a real 2-worker sweep followed by `python -m src.study`."""

from __future__ import annotations

import json
import math
import sys

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

from src import study
from src.core import decide, params, status
from src.core.errors import TunelabError
from src.experiments import dvc_queue, sweep_spec
from src.studies import outputs, sweep_report, sweep_study
from tests.conftest import REPO, TINY, make_project, sh

BASE = params.read_yaml(REPO / "params.yaml")
DROPOUT = sweep_spec.parse_sweep("dropout", {"grid": {"train.dropout": [0.0, 0.3, 0.5]},
                                         "baseline": {"train.dropout": 0.3}}, BASE)
GRID = sweep_spec.parse_sweep("inter", {"grid": {"train.dropout": [0.0, 0.5],
                                             "train.norm": ["none", "batch"]},
                                    "baseline": {"train.dropout": 0.0, "train.norm": "none"}}, BASE)
FIXED = sweep_study.Plan(decide.Design(2, 2), 0.005, "a fixed design", adaptive=False)


def experiments(rows, sweep=DROPOUT) -> pd.DataFrame:
    """(config, seed, cv accuracy[, state]) -> an experiments frame as sweep_study.experiments_frame
    makes it; test accuracy is cv - 0.01 and the train-val gap 0.05."""
    records = []
    for i, (config, seed, cv, *state) in enumerate(rows):
        records.append({
            "name": f"{sweep.name}--{config}--s{seed}", "rev": f"rev{i}", "timestamp": "",
            "sweep": sweep.name, "config": config, "name_config": config, "seed": seed,
            "state": state[0] if state else "completed", "reason": "loss nan" if state else "",
            "others": "", "cv_accuracy": cv, "test_accuracy": cv - 0.01, "params": 1000.0,
            "seconds_per_epoch": 2.0, "train_val_gap": 0.05, "fold_epochs": 10.0,
            "train_seconds": 20.0})
    return pd.DataFrame(records, columns=sweep_study.COLUMNS)


def row(summary: pd.DataFrame, config: str) -> pd.Series:
    return summary.set_index("config").loc[config]


# --- summary -------------------------------------------------------------------------------------

def test_summary_gives_mean_std_ci_and_n_per_configuration():
    values = {"dropout=0.0": [0.80, 0.82, 0.83], "dropout=0.3": [0.85, 0.87, 0.86, 0.84],
              "dropout=0.5": [0.88, 0.86]}
    frame = experiments([(c, s, v) for c, vs in values.items() for s, v in enumerate(vs)])
    summary = sweep_study.summary_table(frame, DROPOUT)
    assert summary["config"].tolist() == ["dropout=0.0", "dropout=0.3", "dropout=0.5"]
    assert summary["train.dropout"].tolist() == ["0.0", "0.3", "0.5"]
    for config, vs in values.items():
        got, vs = row(summary, config), np.array(vs)
        low, high = sps.t.interval(0.95, len(vs) - 1, loc=vs.mean(), scale=sps.sem(vs))
        assert got["n"] == len(vs)
        assert got["cv_mean"] == pytest.approx(vs.mean())
        assert got["cv_std"] == pytest.approx(vs.std(ddof=1))
        assert (got["cv_ci_low"], got["cv_ci_high"]) == pytest.approx((low, high))
        assert got["test_mean"] == pytest.approx(vs.mean() - 0.01)
        assert got["train_mean"] == pytest.approx(vs.mean() + 0.05)  # val + train-val gap
        assert got["params"] == 1000 and got["seconds_per_epoch"] == 2.0
    assert row(summary, "dropout=0.3")["verdict"] == "baseline"


def hedges_g(c, b) -> float:
    n1, n2 = len(c), len(b)
    dof = n1 + n2 - 2
    pooled = math.sqrt(((n1 - 1) * np.var(c, ddof=1) + (n2 - 1) * np.var(b, ddof=1)) / dof)
    return (np.mean(c) - np.mean(b)) / pooled * (1 - 3 / (4 * dof - 1))


def test_comparisons_match_scipy_and_statsmodels():
    base = [0.850, 0.862, 0.841, 0.858, 0.866]             # seeds 0-4
    paired = [0.861, 0.870, 0.850, 0.872, 0.869]           # seeds 0-4: paired
    welch = [0.836, 0.848, 0.829, 0.851]                   # seeds 0-3: Welch
    rows = [("dropout=0.3", s, v) for s, v in enumerate(base)]
    rows += [("dropout=0.0", s, v) for s, v in enumerate(paired)]
    rows += [("dropout=0.5", s, v) for s, v in enumerate(welch)]
    frame = experiments(rows).sample(frac=1.0, random_state=3)  # pairing goes by seed, not order
    summary = sweep_study.summary_table(frame, DROPOUT, FIXED)

    rel = sps.ttest_rel(paired, base)
    ind = sps.ttest_ind(welch, base, equal_var=False)
    holm = multipletests([rel.pvalue, ind.pvalue], method="holm")[1]
    d = np.subtract(paired, base)
    for config, res, p_holm, effect, test in (
            ("dropout=0.0", rel, holm[0], d.mean() / d.std(ddof=1), "paired"),
            ("dropout=0.5", ind, holm[1], hedges_g(welch, base), "welch")):
        got = row(summary, config)
        # Holm's step-down: the smaller p is tested at alpha / 2, the other at alpha once the
        # first is rejected; the interval is the one at the level the comparison was tested at.
        level = 0.05 / 2 if res.pvalue == min(rel.pvalue, ind.pvalue) or min(holm) >= 0.05 \
            else 0.05
        ci = res.confidence_interval(1 - level)
        assert got["test_used"] == test
        assert got["p_value"] == pytest.approx(res.pvalue, rel=1e-12)
        assert got["p_holm"] == pytest.approx(p_holm, rel=1e-12)
        assert got["alpha_diff"] == pytest.approx(level)
        assert (got["diff_ci_low"], got["diff_ci_high"]) == pytest.approx((ci.low, ci.high))
        assert got["effect_size"] == pytest.approx(effect)
        if p_holm < 0.05:
            assert got["decision"] == ("better" if got["diff"] > 0 else "worse")
        else:
            assert got["decision"] in ("equivalent", "undecided")
    assert row(summary, "dropout=0.0")["diff"] == pytest.approx(np.mean(paired) - np.mean(base))
    assert row(summary, "dropout=0.0")["verdict"] == "better"  # p_holm ~ 0.02: not a borderline


def test_paired_only_when_the_seed_sets_are_equal():
    base = [("dropout=0.3", s, v) for s, v in zip((0, 1, 2), (0.85, 0.86, 0.84))]
    shifted = [("dropout=0.0", s, v) for s, v in zip((1, 2, 3), (0.80, 0.83, 0.81))]
    same = [("dropout=0.5", s, v) for s, v in zip((2, 0, 1), (0.87, 0.88, 0.86))]
    summary = sweep_study.summary_table(experiments(base + shifted + same), DROPOUT, FIXED)
    assert row(summary, "dropout=0.0")["test_used"] == "welch"
    assert row(summary, "dropout=0.5")["test_used"] == "paired"
    # aligned by seed: 0.88-0.85, 0.86-0.86, 0.87-0.84
    expected = sps.ttest_rel([0.88, 0.86, 0.87], [0.85, 0.86, 0.84]).pvalue
    assert row(summary, "dropout=0.5")["p_value"] == pytest.approx(expected)


def test_fewer_than_two_seeds_are_not_tested_and_said_so():
    frame = experiments([("dropout=0.3", s, v) for s, v in enumerate((0.85, 0.86, 0.84))] +
                        [("dropout=0.0", 0, 0.80)] +
                        [("dropout=0.5", s, v) for s, v in enumerate((0.88, 0.86, 0.89))])
    summary = sweep_study.summary_table(frame, DROPOUT)
    one = row(summary, "dropout=0.0")
    assert one["n"] == 1 and one["test_used"] == "none" and math.isnan(one["p_value"])
    assert math.isnan(one["cv_std"]) and math.isnan(one["cv_ci_low"])
    assert one["verdict"] == "not tested (n = 1 < 2)"
    tested = row(summary, "dropout=0.5")  # the untestable one keeps its share (p = 1): Holm x 2
    assert tested["p_holm"] == pytest.approx(min(1.0, 2 * tested["p_value"]))
    report = sweep_report.render_report(DROPOUT, frame, summary, None, "", [])
    assert "dropout=0.0: not tested (n = 1 < 2)" in report
    assert "`dropout=0.0`: n = 1, too few seeds for a test" in report
    assert "missing: `dropout--dropout=0.0--s1`" in report

    lone_baseline = sweep_study.summary_table(frame[~frame["name"].str.contains("0.3--s[12]")], DROPOUT)
    assert (lone_baseline["test_used"] == ["none", "baseline", "none"]).all()
    assert lone_baseline["p_holm"].isna().all()
    nothing = sweep_study.summary_table(frame[frame["config"] != "dropout=0.5"], DROPOUT)
    assert row(nothing, "dropout=0.5")["verdict"] == "not tested (n = 0 vs 3)"


def test_diverged_and_failed_experiments_are_listed_and_excluded():
    frame = experiments([("dropout=0.3", s, v) for s, v in enumerate((0.85, 0.86, 0.84))] +
                        [("dropout=0.5", 0, 0.80), ("dropout=0.5", 1, 0.81),
                         ("dropout=0.5", 2, 0.99, "diverged"),  # a value it must not use
                         ("dropout=0.0", 0, math.nan, "failed"), ("dropout=0.0", 1, 0.83)])
    summary = sweep_study.summary_table(frame, DROPOUT)
    got = row(summary, "dropout=0.5")
    assert got["n"] == 2 and got["n_diverged"] == 1 and got["cv_mean"] == pytest.approx(0.805)
    assert got["test_used"] == "welch"  # seeds {0, 1} vs {0, 1, 2}
    assert row(summary, "dropout=0.0")["n_failed"] == 1
    report = sweep_report.render_report(DROPOUT, frame, summary, None, "", [])
    assert "diverged (excluded): `dropout--dropout=0.5--s2` (loss nan)" in report
    assert "failed: `dropout--dropout=0.0--s0`" in report


# --- ANOVA ---------------------------------------------------------------------------------------

def test_anova_runs_for_a_two_factor_grid_only(monkeypatch):
    calls = []
    original = sweep_study.stats.two_way_anova

    def spy(frame, a, b, response):
        calls.append((a, b, response, len(frame)))
        return original(frame, a, b, response)

    monkeypatch.setattr(sweep_study.stats, "two_way_anova", spy)
    rng = np.random.default_rng(0)
    grid = experiments([(GRID.label(c), s, 0.8 + 0.05 * (c["train.norm"] == "batch") +
                         rng.normal(0, 0.01)) for c in GRID.configs for s in range(3)], GRID)
    files = sweep_study.build_study(GRID, grid)
    assert calls == [("dropout", "norm", "cv_accuracy", 12)]
    assert "interactions_heatmap.png" in files
    report = files["report.md"]
    assert "## Two-way ANOVA" in report and "interaction dropout:norm" in report
    assert "main effect of norm: detectable" in report

    calls.clear()
    one = experiments([(DROPOUT.label(c), s, 0.8 + rng.normal(0, 0.01))
                       for c in DROPOUT.configs for s in range(3)])
    files = sweep_study.build_study(DROPOUT, one)
    assert calls == [] and "ANOVA" not in files["report.md"]
    assert sorted(files) == ["dropout_impact.png", "experiments.csv", "forest.png", "pareto.png",
                             "report.md", "summary.csv", "top_configurations.png"]


# --- collecting ----------------------------------------------------------------------------------

def exp_show_entry(name, params_train, metrics=None, error=None, timestamp="2026-11-22T10:00:00",
                   rev="r"):
    data = {"rev": rev, "timestamp": timestamp,
            "params": {"params.yaml": {"data": {"prepare": {"cv_folds": 5},
                                                "train": params_train}}}}
    if metrics is not None:
        data["metrics"] = {"reports/evaluate/metrics.json": {"data": metrics}}
    return {"name": name, "revs": [{"rev": rev, "name": name, "error": error,
                                    "data": data if error is None else {}}]}


def metrics(cv, test=0.8, status="completed"):
    return {"status": status, "test": {"accuracy": test}, "cv": {
        "val_accuracy": {"mean": cv}, "train_val_gap": 0.04},
        "model": {"params": 421834}, "time": {"seconds_per_epoch": 2.5}}


def test_experiments_frame_parses_exp_show_json():
    commit_params = {"params": {"params.yaml": {"data": {"train": {"dropout": 0.3, "seed": 0}}}}}
    shown = [
        {"rev": "workspace", "name": None, "data": commit_params, "experiments": None},
        {"rev": "c1", "name": "main", "data": commit_params, "experiments": [
            exp_show_entry("dropout--dropout=0.5--s0", {"dropout": 0.5, "seed": 0},
                           metrics(0.86), rev="a"),
            # the name says 0.5, the params 0.0: the params win
            exp_show_entry("dropout--dropout=0.5--s1", {"dropout": 0.0, "seed": 1},
                           metrics(0.84), rev="b"),
            exp_show_entry("dropout--dropout=0.0--s0", {"dropout": 0.0, "seed": 0},
                           {"status": "diverged", "reason": "fold 0: loss nan", "test":
                            {"accuracy": None}, "cv": {"val_accuracy": {"mean": None}}}, rev="c"),
            exp_show_entry("dropout--dropout=0.3--s0", {}, error={"msg": "Experiment run failed"},
                           rev="d"),
            exp_show_entry("lr--lr=0.01--s0", {"lr": 0.01, "seed": 0}, metrics(0.7)),  # other sweep
            exp_show_entry("exp-1a2b3", {"dropout": 0.3}, metrics(0.7)),  # not a sweep's name
            exp_show_entry("dropout--dropout=0.3--s1", {"dropout": 0.3, "seed": 1}, metrics(0.81),
                           timestamp="2026-11-22T09:00:00", rev="old"),
        ]},
        {"rev": "c0", "name": None, "data": commit_params, "experiments": [
            exp_show_entry("dropout--dropout=0.5--s0", {"dropout": 0.5, "seed": 0}, metrics(0.5),
                           timestamp="2026-11-21T10:00:00", rev="older"),
            exp_show_entry("dropout--dropout=0.3--s1", {"dropout": 0.3, "seed": 1}, metrics(0.85),
                           timestamp="2026-11-22T11:00:00", rev="newer"),
        ]},
    ]
    frame = sweep_study.experiments_frame(shown, DROPOUT).set_index("name")
    assert sorted(frame.index) == ["dropout--dropout=0.0--s0", "dropout--dropout=0.3--s0",
                                   "dropout--dropout=0.3--s1", "dropout--dropout=0.5--s0",
                                   "dropout--dropout=0.5--s1"]
    ok = frame.loc["dropout--dropout=0.5--s0"]
    assert (ok["rev"], ok["baseline"], ok["config"], ok["seed"]) == ("a", "c1", "dropout=0.5", 0)
    assert ok["state"] == "completed"
    assert (ok["cv_accuracy"], ok["test_accuracy"], ok["train_val_gap"]) == (0.86, 0.8, 0.04)
    assert (ok["params"], ok["seconds_per_epoch"]) == (421834, 2.5)
    misnamed = frame.loc["dropout--dropout=0.5--s1"]
    assert (misnamed["config"], misnamed["name_config"]) == ("dropout=0.0", "dropout=0.5")
    diverged = frame.loc["dropout--dropout=0.0--s0"]
    assert diverged["state"] == "diverged" and math.isnan(diverged["cv_accuracy"])
    assert diverged["reason"] == "fold 0: loss nan"
    failed = frame.loc["dropout--dropout=0.3--s0"]
    assert (failed["state"], failed["config"], failed["reason"]) == (
        "failed", "dropout=0.3", "Experiment run failed")
    assert frame.loc["dropout--dropout=0.3--s1", ["rev", "baseline"]].tolist() == ["newer", "c0"]  # newest
    assert status.usable(frame.reset_index())["name"].tolist() == [
        "dropout--dropout=0.5--s0", "dropout--dropout=0.5--s1", "dropout--dropout=0.3--s1"]


def test_labels_are_recomputed_from_params_with_the_commits_defaults():
    combined = sweep_spec.parse_sweep("combined", {"configs": [{}, {"train.dropout": 0.5}],
                                               "baseline": {}}, BASE)
    defaults = {"params": {"params.yaml": {"data": {"train": {"dropout": 0.3}}}}}
    shown = [{"rev": "c1", "data": defaults, "experiments": [
        exp_show_entry("combined--base--s0", {"dropout": 0.3, "seed": 0}, metrics(0.8)),
        exp_show_entry("combined--dropout=0.5--s0", {"dropout": 0.5, "seed": 0}, metrics(0.8)),
        exp_show_entry("combined--base--s1", {"dropout": 0.7, "seed": 1, "epochs": 3},
                       metrics(0.8)),
    ]}]
    frame = sweep_study.experiments_frame(shown, combined).set_index("name")
    assert frame["config"].tolist() == ["base", "dropout=0.5", "dropout=0.7"]
    summary = sweep_study.summary_table(frame.reset_index(), combined)
    report = sweep_report.render_report(combined, frame.reset_index(), summary, None, "", [])
    assert "`combined--base--s1` is named base but its params make it dropout=0.7" in report
    assert "WARNING: experiments differ in `train.epochs`" in report


def test_no_completed_experiments_is_a_clear_error():
    with pytest.raises(TunelabError) as empty:
        sweep_study.require_completed(experiments([]), DROPOUT)
    assert str(empty.value) == ("sweep dropout has no completed experiments on the current commit: "
                                "run `python -m src.sweep run dropout --seeds 3` first")
    failed = experiments([("dropout=0.3", 0, math.nan, "failed"),
                          ("dropout=0.5", 0, 0.9, "diverged")])
    with pytest.raises(TunelabError, match=r"dropout has no completed .* \(1 failed, 1 diverged\)"):
        sweep_study.require_completed(failed, DROPOUT)


def test_report_reads_in_plain_words():
    frame = experiments([(c, s, v) for c, vs in (("dropout=0.3", (0.85, 0.86, 0.84)),
                                                  ("dropout=0.5", (0.855, 0.852, 0.846)),
                                                  ("dropout=0.0", (0.80, 0.815, 0.79)))
                         for s, v in enumerate(vs)])
    plan = sweep_study.study_plan(DROPOUT, frame)
    assert plan.source == "a fixed design: 3 seeds per configuration, one look"
    summary = sweep_study.summary_table(frame, DROPOUT, plan)
    report = sweep_report.render_report(DROPOUT, frame, summary, None, "", ["dropout_impact.png"],
                                        plan.source, sweep_study.compute(frame, summary, plan))
    r = row(summary, "dropout=0.5")
    assert r["decision"] == "undecided" and r["seeds_needed"] > 3
    line = (f"dropout=0.5: undecided against dropout=0.3: about {int(r['seeds_needed'])} seeds per "
            f"configuration would decide it ({r['needed_for']}); at n = 3 the smallest difference "
            f"detectable at 80% power is {100 * r['mdd']:.2f} points (diff "
            f"{100 * r['diff']:+.2f} points, interval {100 * r['diff_ci_low']:+.2f}…"
            f"{100 * r['diff_ci_high']:+.2f}, p (Holm) {r['p_holm']:.2g}, TOST p "
            f"{r['p_tost']:.2g}; 3 seeds, look 1)")
    assert line in report
    assert "dropout=0.0: worse than dropout=0.3 (diff -4.83 points" in report
    assert "**Margin** ±0.5 accuracy points" in report
    assert "**Design**: a fixed design: 3 seeds per configuration, one look; 1 look(s)" in report
    assert "**Compute**: 9 experiments, 90 fold-epochs, 180 training seconds" in report
    assert "test set only confirms the chosen configuration; it was not used to rank" in report
    assert "![dropout_impact.png](dropout_impact.png)" in report
    assert "Best by CV validation accuracy: `dropout=0.5`, 0.8510" in report
    assert "| **dropout=0.3** | 3 | 0.8500 ± 0.0100 |" in report


def test_the_design_comes_from_flags_then_this_clone_then_the_committed_study():
    frame = experiments([(c, s, 0.85) for c in ("dropout=0.3", "dropout=0.5") for s in range(3)]
                        + [("dropout=0.3", 3, 0.86), ("dropout=0.5", 3, 0.85)])
    record = {"seeds": 3, "max_seeds": 8, "margin": 0.01, "alpha": 0.05}
    committed = {"seeds": 3, "max_seeds": 10, "margin": 0.004, "alpha": 0.05}

    def plan(**kw):
        got = sweep_study.study_plan(DROPOUT, frame, **kw)
        return got.design.first_seeds, got.design.max_seeds, got.margin, got.adaptive, got.source

    assert plan(seeds=2, max_seeds=5, record=record, committed=committed)[:4] == (2, 5, 0.01, True)
    assert plan(record=record, committed=committed)[:4] == (3, 8, 0.01, True)
    by_commit = plan(committed=committed)
    assert by_commit[:4] == (3, 10, 0.004, True)
    # the report states the design, the same wherever it came from; the terminal says where
    assert by_commit[4] == plan(seeds=3, max_seeds=10)[4] == "--seeds 3 --max-seeds 10"
    got = sweep_study.study_plan(DROPOUT, frame, committed=committed)
    assert got.origin.endswith("(reports/study/dropout/design.json)")
    # 4 seeds everywhere and nothing recorded: one look at alpha, though 4 > the first 3 seeds
    assert plan()[:4] == (2, 2, 0.005, False)
    # the study writes the design beside its report when it is adaptive, and only then
    adaptive = sweep_study.build_study(DROPOUT, frame, plan=sweep_study.study_plan(
        DROPOUT, frame, committed=committed))
    assert json.loads(adaptive[sweep_study.DESIGN_FILE]) == committed
    assert sweep_study.DESIGN_FILE not in sweep_study.build_study(DROPOUT, frame)


def test_a_recorded_design_keeps_its_method_and_one_without_is_bonferroni():
    frame = experiments([(c, s, 0.85 + 0.001 * s * (c == "dropout=0.5")) for c in
                         ("dropout=0.0", "dropout=0.3", "dropout=0.5") for s in range(4)]
                        + [("dropout=0.3", 4, 0.86)])
    legacy = {"seeds": 3, "max_seeds": 10, "margin": 0.005, "alpha": 0.05}
    plan = sweep_study.study_plan(DROPOUT, frame, committed=legacy)
    assert plan.design.method == "bonferroni"
    assert json.loads(sweep_study.design_json(plan)) == legacy  # written back as it was
    assert sweep_study.study_plan(DROPOUT, frame, record=legacy | {"method": "pocock"}
                                  ).design.method == "pocock"
    # new studies (flags, or sweeps.yaml's design) spend alpha O'Brien-Fleming's way
    new = sweep_study.study_plan(DROPOUT, frame, seeds=3, max_seeds=10)
    assert new.design.method == "obrien_fleming"
    assert json.loads(sweep_study.design_json(new)) == legacy | {"method": "obrien_fleming"}
    summary = sweep_study.summary_table(frame, DROPOUT, new)
    assert math.isnan(summary["look_alpha"].iloc[0])
    report = sweep_report.render_report(DROPOUT, frame, summary, None, "", [], new.source, None,
                                        new.design)
    assert "O'Brien–Fleming-type alpha spending (Lan–DeMets; information fraction seeds / 10)" in report
    assert "Nominal two-sided levels of one comparison at the planned looks: 8.5e-05, 0.00069, " in report
    assert "| p | TOST p |" in report and "p (Holm)" not in report
    with pytest.raises(TunelabError, match="method must be one of bonferroni, obrien_fleming, pocock"):
        sweep_study.study_plan(DROPOUT, frame, committed=legacy | {"method": "holm"})


def test_a_continued_design_is_read_written_and_reported_as_it_was_run():
    frame = experiments([(c, s, 0.85 + 0.001 * s * (c == "dropout=0.5")) for c in
                         ("dropout=0.0", "dropout=0.3", "dropout=0.5") for s in range(7)])
    continued = {"seeds": 3, "max_seeds": 16, "margin": 0.005, "alpha": 0.05,
                 "method": "obrien_fleming", "continues": {"max_seeds": 10, "looks": 4}}
    plan = sweep_study.study_plan(DROPOUT, frame, committed=continued)
    assert plan.design.continues == decide.Design(3, 10) and plan.design.continued_after == 4
    assert json.loads(sweep_study.design_json(plan)) == continued
    summary = sweep_study.summary_table(frame, DROPOUT, plan)
    report = sweep_report.render_report(DROPOUT, frame, summary, None, "", [], plan.source, None,
                                        plan.design)
    assert ("a continued study: its first 4 look(s) were decided as they were under its "
            "committed design (Bonferroni over 8 looks, each at 0.00625)") in report
    assert "O'Brien–Fleming-type alpha spending up to 16 seeds" in report
    with pytest.raises(TunelabError, match="not a design"):
        sweep_study.study_plan(DROPOUT, frame, committed=continued | {"continues": {"looks": 4}})


def test_a_committed_design_applies_to_the_experiments_it_was_committed_with(tmp_path, monkeypatch):
    monkeypatch.setattr(study.paths, "STUDY_REPORTS", tmp_path)
    frame = experiments([(c, s, 0.85) for c in ("dropout=0.3", "dropout=0.5") for s in range(3)])
    folder = tmp_path / "dropout"
    folder.mkdir()
    assert study.committed_design("dropout", frame) is None  # no committed study
    design = {"seeds": 3, "max_seeds": 10, "margin": 0.005, "alpha": 0.05}
    (folder / "design.json").write_text(json.dumps(design))
    frame.drop(columns="others").to_csv(folder / "experiments.csv", index=False)
    assert study.committed_design("dropout", frame) == design
    rerun = frame.assign(rev=[f"new{i}" for i in range(len(frame))])  # e.g. after a code change
    assert study.committed_design("dropout", rerun) is None
    (folder / "design.json").write_text('{"seeds": 3}')
    with pytest.raises(TunelabError, match=r"design.json names no `seeds` and `max_seeds`"):
        study.committed_design("dropout", frame)
    (folder / "design.json").write_text("{")
    with pytest.raises(TunelabError, match=r"design.json is unreadable .*pass --seeds"):
        study.committed_design("dropout", frame)


def test_a_committed_study_rebuilds_from_its_record(tmp_path, monkeypatch):
    """experiments.csv (what the study writes) read back gives the same files, the learning
    curves this clone cannot draw are kept in their place, and a record without costs has no
    Compute line (not '0 training seconds')."""
    monkeypatch.setattr(study.paths, "STUDY_REPORTS", tmp_path)
    sweep = sweep_spec.parse_sweep("norm", {"grid": {"train.norm": ["none", "batch"]},
                                            "baseline": {"train.norm": "none"}}, BASE)
    assert sweep_study.recorded_frame(sweep).empty  # no committed study
    frame = experiments([(c, s, 0.85 + 0.001 * s + (c == "norm=batch") / 300)
                         for c in ("norm=none", "norm=batch") for s in range(3)], sweep)
    frame["rev"] = [f"{i:040x}" for i in range(len(frame))]
    files = sweep_study.build_study(sweep, frame, plan=FIXED)
    (tmp_path / "norm").mkdir()
    files["experiments.csv"].to_csv(tmp_path / "norm/experiments.csv", index=False)
    record = sweep_study.recorded_frame(sweep)
    again = sweep_study.build_study(sweep, record, plan=FIXED, kept={"learning_curves.png": b"png"})
    assert again["report.md"] == files["report.md"].replace(
        "![norm_comparison.png](norm_comparison.png)\n",
        "![norm_comparison.png](norm_comparison.png)\n![learning_curves.png](learning_curves.png)\n")
    assert again["learning_curves.png"] == b"png"
    assert again["experiments.csv"].to_csv(index=False) == \
        (tmp_path / "norm/experiments.csv").read_text()
    assert again["summary.csv"].to_csv(index=False) == files["summary.csv"].to_csv(index=False)
    costless = record.assign(fold_epochs=math.nan, train_seconds=math.nan)
    assert "**Compute**" in files["report.md"]
    assert "**Compute**" not in sweep_study.build_study(sweep, costless, plan=FIXED)["report.md"]


def test_write_outputs_replaces_the_folder_content(tmp_path):
    (tmp_path / "stale.png").write_text("old")
    outputs.write_outputs(tmp_path, {"report.md": "# new\n", "summary.csv": pd.DataFrame({"a": [1]})})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.md", "summary.csv"]
    assert (tmp_path / "summary.csv").read_text() == "a\n1\n"


# --- end to end ----------------------------------------------------------------------------------

SWEEPS = """
tiny:
  description: BatchNorm or not, on synthetic data
  grid: {train.norm: [batch, none]}
  baseline: {train.norm: batch}
empty:
  grid: {train.epochs: [1, 2]}
  baseline: {train.epochs: 1}
"""


@pytest.mark.slow  # 80-140 s on 2 busy cores, almost all of it the sweep itself
@pytest.mark.e2e
def test_study_of_a_real_two_worker_sweep(tmp_path):
    from mlflow.tracking import MlflowClient
    (tmp_path / "project").mkdir()
    root, env = make_project(tmp_path / "project", TINY, {"sweeps.yaml": SWEEPS})
    sh(sys.executable, "-m", "src.sweep", "run", "tiny", "--seeds", "2", "--jobs", "2",
       "--poll", "1", cwd=root, env=env)
    done = sh(sys.executable, "-m", "src.study", "tiny", cwd=root, env=env)
    assert "study tiny: 4 experiments" in done.stdout

    folder = root / "reports/study/tiny"
    assert sorted(p.name for p in folder.iterdir()) == [
        "experiments.csv", "forest.png", "learning_curves.png", "pareto.png", "report.md", "summary.csv",
        "tiny_comparison.png", "top_configurations.png"]
    summary = pd.read_csv(folder / "summary.csv")
    assert summary["config"].tolist() == ["norm=batch", "norm=none"]
    assert summary["n"].tolist() == [2, 2]

    shown = json.loads(sh("dvc", "exp", "show", "--json", cwd=root, env=env).stdout)
    cv = {exp["name"]: exp["revs"][0]["data"]["metrics"]["reports/evaluate/metrics.json"]["data"]
          ["cv"]["val_accuracy"]["mean"] for rev in shown for exp in rev.get("experiments") or []}
    expected = sps.ttest_rel([cv[f"tiny--norm=none--s{s}"] for s in (0, 1)],
                             [cv[f"tiny--norm=batch--s{s}"] for s in (0, 1)]).pvalue
    none = summary.set_index("config").loc["norm=none"]
    assert none["test_used"] == "paired"
    assert none["p_value"] == pytest.approx(expected, rel=1e-9)
    assert "![learning_curves.png](learning_curves.png)" in (folder / "report.md").read_text()

    client = MlflowClient(f"sqlite:///{root}/mlflow.db")
    experiment = client.get_experiment_by_name("tunelab")
    runs = client.search_runs([experiment.experiment_id], "tags.`tunelab.kind` = 'study'")
    assert [(r.info.run_name, r.data.tags["sweep"]) for r in runs] == [("study-tiny", "tiny")]
    assert {a.path for a in client.list_artifacts(runs[0].info.run_id, "study")} >= {
        "study/summary.csv", "study/report.md", "study/pareto.png"}
    assert runs[0].data.metrics["best.cv_accuracy_mean"] == pytest.approx(summary["cv_mean"].max())

    missing = sh(sys.executable, "-m", "src.study", "empty", cwd=root, env=env, ok=False)
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert "sweep empty has no completed experiments" in missing.stderr
    assert "python -m src.sweep run empty --seeds 3" in missing.stderr
    every = sh(sys.executable, "-m", "src.study", "--all", "--all-commits", cwd=root, env=env)
    assert "study tiny: 4 experiments" in every.stdout
    assert not (root / "reports/study/empty").exists()
    assert pd.read_csv(folder / "summary.csv")["p_value"].tolist() == pytest.approx(
        summary["p_value"].tolist(), nan_ok=True)


@pytest.mark.parametrize("name, message", [
    ("lr_dropout", "search lr_dropout has no trials on the current commit"),
    ("dropout", "sweep dropout has no completed experiments"),
    ("dropuot", "unknown sweep or search 'dropuot'; sweeps in sweeps.yaml: dropout, ")])
def test_a_study_reads_only_its_own_sweep_or_search(tmp_path, monkeypatch, name, message):
    # the CI failure: a tiny params.yaml that the `norm` sweep's group norm does not fit stopped
    # the study of every other sweep and search
    for item in ("sweeps.yaml", "searches.yaml"):
        (tmp_path / item).write_text((REPO / item).read_text())
    (tmp_path / "params.yaml").write_text(
        json.dumps(sweep_spec.apply(BASE, {f"train.{k}": v for k, v in TINY["train"].items()})))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(dvc_queue, "dvc", lambda *args, **kwargs: "[]")
    monkeypatch.setattr(sys, "argv", ["study", name])
    with pytest.raises(TunelabError, match=message.replace("(", r"\(")):
        study.main()


def test_the_validation_loss_is_collected_and_kept_only_where_some_experiment_has_it():
    commit_params = {"params": {"params.yaml": {"data": {"train": {"dropout": 0.3, "seed": 0}}}}}
    with_loss = metrics(0.86) | {"cv": {"val_accuracy": {"mean": 0.86}, "val_loss": {"mean": 0.41}}}
    shown = [{"rev": "c1", "name": "main", "data": commit_params, "experiments": [
        exp_show_entry("dropout--dropout=0.5--s0", {"dropout": 0.5, "seed": 0}, with_loss, rev="a"),
        exp_show_entry("dropout--dropout=0.0--s0", {"dropout": 0.0, "seed": 0}, metrics(0.84),
                       rev="b")]}]
    frame = sweep_study.experiments_frame(shown, DROPOUT).set_index("name")
    assert frame.loc["dropout--dropout=0.5--s0", "cv_val_loss"] == 0.41
    assert math.isnan(frame.loc["dropout--dropout=0.0--s0", "cv_val_loss"])  # metrics without it
    rows = [(c, s, v) for c in ("dropout=0.3", "dropout=0.5") for s, v in enumerate((0.85, 0.86))]
    older = experiments(rows)  # every committed study: no loss, the columns of before
    assert "cv_val_loss" not in sweep_study.build_study(DROPOUT, older, plan=FIXED)["experiments.csv"]
    newer = older.assign(cv_val_loss=0.3)
    assert sweep_study.build_study(DROPOUT, newer, plan=FIXED)["experiments.csv"]["cv_val_loss"] \
        .tolist() == [0.3] * 4


# --- the decision metric (sweeps.yaml `metric:`) -------------------------------------------------

SELECTING = sweep_spec.parse_sweep("dropout", {"grid": {"train.dropout": [0.3, 0.5]},
                                               "baseline": {"train.dropout": 0.3},
                                               "metric": "selection_accuracy"}, BASE)


def with_selection(frame: pd.DataFrame, shift: float) -> pd.DataFrame:
    """Selection accuracy = CV accuracy, plus ``shift`` + 0.001 x (seed mod 2) for dropout=0.5
    (where CV says nothing)."""
    return frame.assign(selection_accuracy=frame["cv_accuracy"] + (
        shift + 0.001 * (frame["seed"] % 2)) * (frame["config"] == "dropout=0.5"))


def test_a_study_decides_on_selection_accuracy_where_every_experiment_has_it():
    cv = experiments([(c, s, v) for c in ("dropout=0.3", "dropout=0.5")
                      for s, v in enumerate((0.85, 0.86, 0.84, 0.855))], SELECTING)
    frame = with_selection(cv, 0.01)
    plan = sweep_study.study_plan(SELECTING, frame)
    assert plan.metric == "selection_accuracy"
    summary = sweep_study.summary_table(frame, SELECTING, plan)
    r = row(summary, "dropout=0.5")
    assert r["diff"] == pytest.approx(0.0105) and r["decision"] == "better"  # CV's diff is 0
    assert r["selection_mean"] == pytest.approx(0.86175) and r["cv_mean"] == pytest.approx(0.85125)
    built = sweep_study.build_study(SELECTING, frame, plan=plan)
    assert "selection_accuracy" in built["experiments.csv"]
    assert "**Selection uses the selection set's accuracy** (`metric: selection_accuracy`" in \
        built["report.md"]
    # one experiment without it (run before the selection set existed): CV for all, as before
    older = frame.assign(selection_accuracy=frame["selection_accuracy"].where(frame.index != 0))
    plan = sweep_study.study_plan(SELECTING, older)
    assert plan.metric == "cv_accuracy"
    assert row(sweep_study.summary_table(older, SELECTING, plan), "dropout=0.5")["diff"] == \
        pytest.approx(0.0, abs=1e-12)
    # none has it (every committed study): the columns and the report are those of before
    built = sweep_study.build_study(SELECTING, cv)
    assert "selection_accuracy" not in built["experiments.csv"]
    assert "selection_mean" not in built["summary.csv"]
    assert "**Selection uses CV validation accuracy**" in built["report.md"]


def test_a_recorded_design_without_a_metric_decides_on_cv_and_the_metric_is_written_back():
    frame = with_selection(experiments([(c, s, 0.85 + 0.001 * s) for c in
                                        ("dropout=0.3", "dropout=0.5") for s in range(3)],
                                       SELECTING), 0.01)
    legacy = {"seeds": 3, "max_seeds": 6, "margin": 0.005, "alpha": 0.05}
    plan = sweep_study.study_plan(SELECTING, frame, committed=legacy)
    assert plan.metric == "cv_accuracy"
    assert json.loads(sweep_study.design_json(plan)) == legacy  # committed design.json unchanged
    chosen = sweep_study.study_plan(SELECTING, frame, record=legacy | {"metric":
                                                                       "selection_accuracy"})
    assert chosen.metric == "selection_accuracy"
    assert json.loads(sweep_study.design_json(chosen))["metric"] == "selection_accuracy"
    assert sweep_study.study_plan(SELECTING, frame, seeds=3, max_seeds=6).metric == \
        "selection_accuracy"  # the sweep's own (sweeps.yaml)
