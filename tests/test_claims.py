"""claims.yaml against the sweeps and searches; the claims page decided from synthetic studies
(a claim that holds, fails, is equivalent, undecided, not run), checked against scipy; the door
writing the same bytes twice."""

from __future__ import annotations

import copy
import math
import re
import shutil
import sys

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from src.core import decide, errors, params
from src.core.errors import ParamError
from src.experiments import claim_spec, search_spec, sweep_spec
from src.studies import claim_costs, claim_decisions, claims_report, sweep_study
from tests.conftest import REPO

BASE = params.read_yaml(REPO / "params.yaml")
SEEDS = 6


# --- the repository's claims.yaml ----------------------------------------------------------------

def test_the_repo_claims_validate_against_the_sweeps_and_searches():
    claims = claim_spec.load(REPO / "claims.yaml", REPO / "sweeps.yaml", REPO / "searches.yaml",
                             REPO / "params.yaml")
    assert [c.id for c in claims.claims] == list(range(1, 26))
    all_sweeps = sweep_spec.load(REPO / "sweeps.yaml", BASE)
    for claim in claims.claims:
        assert claim.text and claim.figure and claim.source and claim.parts, claim.id
        for name in claim.studies:  # every study exists: a sweep, or replicate searches
            assert name in all_sweeps or claims.search_sets[name], (claim.id, name)
        if claim.study:
            labels = {all_sweeps[claim.study].label(c) for c in all_sweeps[claim.study].configs}
            for part in claim.parts:  # every label exists (load checks it; so does this test)
                assert set(part.labels) <= labels, (claim.id, part.name)
                if part.kind == "term":
                    (a, b), _ = sweep_spec.grid_factors(all_sweeps[claim.study])
                    assert part.term in (a, b, f"{a}:{b}")
        assert all(name in claims.designs for name in claim.studies)
    by_id = {c.id: c for c in claims.claims}
    assert by_id[5].parts[0].term == "dropout:norm"
    assert by_id[18].trained_at == "10,000 images, 3 folds, 5 epochs" and by_id[18].fidelity
    assert by_id[8].trained_at == "60,000 images, 5 folds, 5 epochs"
    assert [len(claims.search_sets[s]) for s in ("claims_random", "claims_tpe")] == [6, 6]
    assert claims.designs["mlp_width"] == claim_spec.Design(3, 10)


def test_the_essays_model_sizes_are_the_ones_the_claims_state():
    from src.core import checkpoints
    sweeps = sweep_spec.load(REPO / "sweeps.yaml", BASE, ["deep_stack", "conv_dropout_width"])

    def count(sweep, label):
        config = next(c for c in sweeps[sweep].configs if sweeps[sweep].label(c) == label)
        train = params.validate_all(sweep_spec.apply(BASE, config))["train"]
        return sum(p.numel() for p in checkpoints.build_model(train).parameters())

    assert count("deep_stack", "norm=instance,conv_channels=16-16-16-16-16-16") == 21_882
    assert count("conv_dropout_width", "conv_channels=8-16,conv_dropout=0.1") == 103_066
    assert count("conv_dropout_width", "conv_channels=48-96,conv_dropout=0.1") == 645_866


# --- a small synthetic claims file ---------------------------------------------------------------

SWEEPS = {  # each with the design the synthetic data assumes (sweeps.yaml's fields)
    "s": {"grid": {"train.dropout": [0.0, 0.1, 0.2, 0.3, 0.4]}, "baseline": {"train.dropout": 0.0}},
    "t": {"grid": {"train.dropout": [0.0, 0.5]}, "baseline": {"train.dropout": 0.0}},
    "g": {"grid": {"train.dropout": [0.0, 0.5], "train.norm": ["none", "batch"]},
          "baseline": {"train.dropout": 0.0, "train.norm": "none"}},
    "flat": {"grid": {"train.dropout": [0.0, 0.5], "train.norm": ["none", "batch"]},
             "baseline": {"train.dropout": 0.0, "train.norm": "none"}},
    "lr": {"grid": {"train.lr": [0.0001, 0.001, 0.01]}, "baseline": {"train.lr": 0.001}},
    "grid9": {"grid": {"train.lr": [0.0001, 0.01]}, "baseline": {"train.lr": 0.0001}},
}
SWEEPS = {name: spec | {"max_seeds": SEEDS} for name, spec in SWEEPS.items()}
SPACE = {"train.lr": {"type": "loguniform", "low": 0.0001, "high": 0.01}}


def replicate(name: str, k: int, sampler: str = "random") -> search_spec.Search:
    return search_spec.parse_search(f"{name}_r{k}", {"space": SPACE, "sampler": sampler, "seed": k,
                                                     "fixed": {"train.seed": k}}, BASE)


def claim(id, study, *test, **extra) -> dict:
    return {"id": id, "claim": f"claim {id}", "source": "src", "figure": "a figure",
            **({"study": study} if study else {}), "test": list(test), **extra}


CLAIMS = {
    "defaults": {"alpha": 0.05, "margin": 0.005, "first_seeds": 3, "max_seeds": SEEDS},
    "sources": {"src": "a source"},
    "claims": [
        claim(1, "s", {"a": "dropout=0.1", "b": "dropout=0.0", "expect": "better"}),   # holds
        claim(2, "s", {"a": "dropout=0.0", "b": "dropout=0.1", "expect": "better"}),   # fails
        claim(3, "s", {"a": "dropout=0.2", "b": "dropout=0.0", "expect": "better"}),   # equivalent
        claim(4, "s", {"a": "dropout=0.3", "b": "dropout=0.0", "expect": "better"}),   # undecided
        claim(5, "t", {"a": "dropout=0.5", "b": "dropout=0.0", "expect": "better"}),   # not run
        claim(6, "s", {"best": "dropout=0.1",
                       "over": ["dropout=0.0", "dropout=0.2", "dropout=0.4"]}),          # holds
        claim(7, "g", {"term": "dropout:norm", "expect": "detectable"}),                # holds
        claim(8, "flat", {"term": "dropout:norm", "expect": "not_detectable"}),         # holds
        claim(9, "lr", {"lr_range": "steepest_lr", "within": 3}),                       # holds
        claim(10, None, {"a": {"search": "rs", "trials": 3}, "b": {"grid": "grid9"},
                         "expect": "better"}),                                          # holds
        claim(11, "s", {"a": "dropout=0.2", "b": "dropout=0.0", "expect": "equivalent"},
              {"a": "dropout=0.1", "b": "dropout=0.0", "expect": "not_worse"}),         # holds
        claim(12, "s", {"a": ["dropout=0.1", "dropout=0.2"], "b": "rest", "expect": "better"}),
    ],
}


def load(data=None, searches=None) -> claim_spec.Claims:
    sweeps = {n: sweep_spec.parse_sweep(n, s, BASE) for n, s in SWEEPS.items()}
    if searches is None:
        searches = {s.name: s for k in range(SEEDS) for s in [replicate("rs", k)]}
    return claim_spec.parse(copy.deepcopy(data or CLAIMS), sweeps, searches, BASE)


def experiments(sweep: str, values: dict[str, list[float]], states: dict | None = None,
                losses: dict[str, list[float]] | None = None) -> pd.DataFrame:
    """An experiments.csv as src.study writes it: one row per configuration and seed; seed s
    trained 10 + s fold-epochs in 100 (s + 1) seconds; ``losses``: its CV validation loss."""
    rows = []
    for config, accs in values.items():
        for seed, acc in enumerate(accs):
            state = (states or {}).get((config, seed), "completed")
            rows.append({"name": f"{sweep}--{config}--s{seed}", "rev": "0" * 40,
                         "timestamp": f"2026-01-01T00:00:{seed:02d}", "sweep": sweep,
                         "config": config, "name_config": config, "seed": seed, "state": state,
                         "reason": "", "cv_accuracy": acc if state == "completed" else math.nan,
                         "test_accuracy": acc, "params": 1000.0, "seconds_per_epoch": 1.0,
                         "train_val_gap": 0.01, "fold_epochs": 10.0 + seed,
                         "train_seconds": 100.0 * (seed + 1)}
                        | ({"cv_val_loss": losses[config][seed]} if losses else {}))
    return pd.DataFrame(rows)


RNG = np.random.default_rng(0)
SEED_EFFECT = RNG.normal(0, 0.005, SEEDS)  # shared by every configuration of a seed: pairing


def values(mean: float, noise: float) -> list[float]:
    return list(0.85 + mean + SEED_EFFECT + RNG.normal(0, noise, SEEDS))


S = {"dropout=0.0": values(0.0, 0.0005), "dropout=0.1": values(0.02, 0.0005),
     "dropout=0.2": values(0.0, 0.0005), "dropout=0.3": values(0.0, 0.03),
     "dropout=0.4": values(-0.01, 0.0005)}
G = {"dropout=0.0,norm=none": values(0.0, 0.002), "dropout=0.5,norm=none": values(0.0, 0.002),
     "dropout=0.0,norm=batch": values(0.0, 0.002), "dropout=0.5,norm=batch": values(0.03, 0.002)}
FLAT = {k: values(0.0, 0.0005) for k in G}
LR = {"lr=0.0001": values(-0.05, 0.001), "lr=0.001": values(0.0, 0.001), "lr=0.01": values(-0.03, 0.001)}
GRID9 = {"lr=0.0001": values(-0.05, 0.001), "lr=0.01": values(-0.03, 0.001)}


def trials(k: int, best: float, n: int = 4) -> pd.DataFrame:
    """Replicate k's trials.csv: trial 1 is the best; the last one was pruned."""
    accs = [0.80, best, 0.81] + [0.99] * (n - 3)  # trials >= 3 are beyond the claim's 3
    return pd.DataFrame({"name": [f"rs_r{k}--t{t:03d}--s{k}" for t in range(n)], "trial": range(n),
                         "seed": k, "state": ["completed"] * 2 + ["pruned"] + ["completed"] * (n - 3),
                         "cv_accuracy": [a if t != 2 else math.nan for t, a in enumerate(accs)],
                         "epochs": 5.0, "train_seconds": 36.0})


def studies(**changes) -> claim_decisions.Studies:
    frames = {"s": experiments("s", S), "g": experiments("g", G), "flat": experiments("flat", FLAT),
              "lr": experiments("lr", LR), "grid9": experiments("grid9", GRID9)}
    search = {f"rs_r{k}": trials(k, GRID9["lr=0.01"][k] + 0.02 + 0.001 * k) for k in range(SEEDS)}
    reports = frozenset(f"study/{n}/report.md" for n in [*frames, *search]) | {claim_decisions.LR_LINK}
    base = dict(experiments=frames, trials=search, suggestion={"steepest_lr": 0.0012},
                reports=reports)
    return claim_decisions.Studies(**(base | changes))


def outcomes(claims=None, given=None) -> dict[int, str]:
    _, _, results = claims_report.build(claims or load(), given or studies())
    return {r.claim.id: r.outcome for r in results}


def test_claims_hold_fail_are_equivalent_undecided_or_not_run():
    got = outcomes()
    assert got.pop(12) in claim_decisions.OUTCOMES  # its value: test_groups_and_rest_are_means_per_seed
    assert got == {1: "holds", 2: "fails", 3: "equivalent", 4: "undecided", 5: "not run", 6: "holds",
                   7: "holds", 8: "holds", 9: "holds", 10: "holds", 11: "holds"}


def test_a_single_comparison_is_the_paired_t_interval_at_the_designs_level():
    text, table, _ = claims_report.build(load(), studies())
    row = table[table["claim"] == 1].iloc[0]
    a, b = np.array(S["dropout=0.1"]), np.array(S["dropout=0.0"])
    level = 0.05 / (SEEDS - 3 + 1)  # Bonferroni over the design's 4 looks
    ci = sps.ttest_rel(a, b).confidence_interval(1 - level)
    assert row["diff"] == pytest.approx(float(np.mean(a - b)), rel=1e-12)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((ci.low, ci.high), rel=1e-9)
    assert row["p_value"] == pytest.approx(sps.ttest_rel(a, b).pvalue, rel=1e-9)
    assert row["n"] == SEEDS and row["look"] == 4 and row["looks"] == 4
    shown = f"+{(a - b).mean() * 100:.2f} [+{ci.low * 100:.2f}, +{ci.high * 100:.2f}]"
    assert f"| 1 | claim 1 | a figure | **holds** | {shown} | {SEEDS} |" in text


def test_parts_of_a_claim_are_one_holm_family():
    _, table, _ = claims_report.build(load(), studies())
    rows = table[table["claim"] == 6].set_index("part")
    diffs = {f"dropout=0.1 vs {o}": np.array(S["dropout=0.1"]) - np.array(S[o])
             for o in ("dropout=0.0", "dropout=0.2", "dropout=0.4")}
    raw = {k: sps.ttest_1samp(d, 0).pvalue for k, d in diffs.items()}
    order = sorted(raw, key=raw.get)
    holm = np.maximum.accumulate([raw[k] * (len(raw) - i) for i, k in enumerate(order)])
    for k, p in zip(order, holm):
        assert rows.loc[k, "p_value"] == pytest.approx(min(p, 1.0), rel=1e-9)


def test_groups_and_rest_are_means_per_seed():
    _, table, results = claims_report.build(load(), studies())
    a = (np.array(S["dropout=0.1"]) + np.array(S["dropout=0.2"])) / 2
    b = sum(np.array(S[f"dropout={d}"]) for d in ("0.0", "0.3", "0.4")) / 3
    assert table[table["claim"] == 12].iloc[0]["diff"] == pytest.approx(float(np.mean(a - b)))
    assert "the mean of the other 3" in next(r for r in results if r.claim.id == 12).parts[0].part.name


def test_unequal_seed_sets_are_compared_unpaired():
    frame = experiments("s", S, {("dropout=0.0", 5): "failed"})
    _, table, _ = claims_report.build(load(), studies(experiments=studies().experiments | {"s": frame}))
    row = table[table["claim"] == 1].iloc[0]
    a, b = np.array(S["dropout=0.1"]), np.array(S["dropout=0.0"][:5])
    assert row["p_value"] == pytest.approx(sps.ttest_ind(a, b, equal_var=False).pvalue, rel=1e-9)
    assert row["n"] == 5


def test_diverged_runs_count_as_chance_only_where_the_claim_says_so():
    frame = experiments("s", S, {("dropout=0.0", s): "diverged" for s in range(SEEDS)})
    given = studies(experiments=studies().experiments | {"s": frame})
    data = copy.deepcopy(CLAIMS)
    data["claims"] = [claim(1, "s", {"a": "dropout=0.1", "b": "dropout=0.0", "expect": "better"}),
                      claim(2, "s", {"a": "dropout=0.1", "b": "dropout=0.0", "expect": "better"},
                            diverged="chance")]
    assert outcomes(load(data), given) == {1: "undecided", 2: "holds"}


def test_search_best_waits_for_all_trials_and_counts_pruned_ones_as_run():
    frame = trials(0, 0.9)
    assert claim_decisions.search_best(frame, 3) == 0.9
    assert claim_decisions.search_best(frame, 1) == 0.80
    assert claim_decisions.search_best(frame.iloc[:2], 3) is None  # trial 2 has not run
    assert claim_decisions.search_best(frame, 5) is None
    assert claim_decisions.search_best(None, 3) is None


def test_search_against_grid_is_paired_by_replicate():
    _, table, _ = claims_report.build(load(), studies())
    row = table[table["claim"] == 10].iloc[0]
    grid_best = np.maximum(GRID9["lr=0.0001"], GRID9["lr=0.01"])
    search_best = np.array(GRID9["lr=0.01"]) + 0.02 + 0.001 * np.arange(SEEDS)
    assert row["diff"] == pytest.approx(float(np.mean(search_best - grid_best)))
    assert row["n"] == SEEDS


def test_lr_range_holds_fails_or_is_undecided_by_the_rates_near_the_suggestion():
    claims = load()
    assert outcomes(claims, studies(suggestion={"steepest_lr": 0.0012}))[9] == "holds"
    assert outcomes(claims, studies(suggestion={"steepest_lr": 0.02}))[9] == "fails"  # 0.01 beaten
    assert outcomes(claims, studies(suggestion={"steepest_lr": 1.0}))[9] == "fails"   # none near
    assert outcomes(claims, studies(suggestion=None))[9] == "not run"


def test_judge_follows_the_rules_for_every_verdict():
    def d(verdict, below=False):
        return decide.Decision(verdict, below, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 3, 0.01, None,
                               "", 0.0, 0.005, 1)
    table = {  # verdict (below margin) -> better, worse, equivalent, not_worse
        ("better", False): ("holds", "fails", "fails", "holds"),
        ("better", True): ("holds", "fails", "holds", "holds"),
        ("worse", False): ("fails", "holds", "fails", "fails"),
        ("worse", True): ("fails", "holds", "holds", "holds"),
        ("equivalent", False): ("equivalent", "equivalent", "holds", "holds"),
        ("undecided", False): ("undecided",) * 4,
        ("not tested", False): ("undecided",) * 4,
    }
    for (verdict, below), expected in table.items():
        got = tuple(claim_decisions.judge(d(verdict, below), e) for e in claim_spec.EXPECTS)
        assert got == expected, (verdict, below)
    assert claim_decisions.combine(["holds", "equivalent", "undecided"]) == "undecided"
    assert claim_decisions.combine(["holds", "fails", "undecided"]) == "fails"
    assert claim_decisions.combine(["holds", "equivalent"]) == "equivalent"
    assert claim_decisions.combine(["holds"]) == "holds"


def test_the_page_states_the_rules_the_summary_and_the_run_commands():
    text, _, results = claims_report.build(load(), studies())
    count = {o: sum(r.outcome == o for r in results) for o in claim_decisions.OUTCOMES}
    assert (f"**Of 12 claims: {count['holds']} hold, {count['fails']} fail, {count['equivalent']} "
            f"equivalent (no difference beyond the margin), {count['undecided']} undecided, 1 not "
            "run yet.**") in text
    assert "## How a claim is decided" in text and "alpha / looks" in text
    assert ("  - `python -m src.sweep run t --seeds 3 --until-decided --max-seeds 6 --jobs 2 && "
            "python -m src.study t`") in text
    for link in re.findall(r"\]\(([^)]+)\)", text):
        assert link in studies().reports, link


def test_open_configs_are_those_an_undecided_claim_still_needs():
    def only(*claims_):
        data = copy.deepcopy(CLAIMS)
        data["claims"] = list(claims_)
        return load(data)

    three = {k: v[:3] for k, v in S.items()}
    undecided = only(claim(4, "s", {"a": "dropout=0.3", "b": "dropout=0.0", "expect": "better"}))
    given = studies(experiments={"s": experiments("s", three)})
    assert claim_decisions.open_configs("s", undecided, given) == ["dropout=0.0", "dropout=0.3"]
    assert claim_decisions.open_configs("s", undecided, studies()) == []  # at max_seeds already
    decided = only(claim(1, "s", {"a": "dropout=0.1", "b": "dropout=0.0", "expect": "better"}))
    assert claim_decisions.open_configs("s", decided, studies()) == []
    noisy = {k: values(0.0, 0.03)[:3] for k in G}
    term = only(claim(7, "g", {"term": "dropout:norm", "expect": "detectable"}))
    got = claim_decisions.open_configs("g", term, studies(experiments={"g": experiments("g", noisy)}))
    assert sorted(got) == sorted(G)  # an undecided ANOVA term needs every cell
    not_run = claim_decisions.open_configs("s", undecided, studies(experiments={}))
    assert not_run == ["dropout=0.0", "dropout=0.3"]


# --- bad claims files ----------------------------------------------------------------------------

def changed(index: int, **fields) -> dict:
    data = copy.deepcopy(CLAIMS)
    data["claims"][index] = {k: v for k, v in (data["claims"][index] | fields).items() if v is not None}
    return data


@pytest.mark.parametrize("data, message", [
    (changed(0, test=[{"a": "dropout=0.9", "b": "dropout=0.0", "expect": "better"}]),
     r"claim 1, test 1: 'dropout=0.9' is not a configuration of sweep s; its configurations: "
     r"dropout=0.0, dropout=0.1"),
    (changed(0, study="nope"), r"claim 1: 'nope' is not a sweep of sweeps.yaml"),
    (changed(0, test=[{"a": "dropout=0.1", "b": "dropout=0.0", "expect": "bigger"}]),
     r"claim 1, test 1: expect = 'bigger'; allowed: better, worse, equivalent, not_worse"),
    (changed(6, test=[{"term": "dropout:lr", "expect": "detectable"}]),
     r"claim 7, test 1: term 'dropout:lr' is not one of sweep g's ANOVA terms: dropout, norm, "
     r"dropout:norm"),
    (changed(0, test=[{"term": "dropout", "expect": "detectable"}]),
     r"claim 1, test 1: sweep s is not a full two-way grid"),
    (changed(0, test=[{"a": {"effect": "lr", "high": 1, "low": 0}, "b": "dropout=0.0",
                       "expect": "better"}]), r"not a full two-way grid"),
    (changed(6, test=[{"a": {"effect": "norm", "high": "group", "low": "none"},
                       "b": {"effect": "dropout", "high": 0.5, "low": 0.0}, "expect": "better"}]),
     r"claim 7, test 1: norm level 'group' is not in sweep g \(levels: none, batch\)"),
    (changed(0, test=[{"a": "rest", "b": "dropout=0.0", "expect": "better"}]), r"only allowed as b"),
    (changed(0, test=[{"weights": {"dropout=0.1": 1}, "expect": "better"}]), r"at least 2"),
    (changed(0, test=[{"a": "dropout=0.1", "b": "dropout=0.0", "expect": "better"},
                      {"term": "dropout", "expect": "detectable"}]), r"not a full two-way grid"),
    (changed(6, test=[{"term": "dropout", "expect": "detectable"},
                      {"a": "dropout=0.5,norm=none", "b": "dropout=0.0,norm=none",
                       "expect": "better"}]), r"claim 7: mixes contrast and term parts"),
    (changed(0, source="blog"), r"claim 1: source 'blog' is not in `sources:`"),
    (changed(0, figure=None), r"claim 1: needs figure: text"),
    (changed(0, colour="red"), r"claim 1: unknown field\(s\) \['colour'\]"),
    (changed(1, id=1), r"claims: id\(s\) \[1\] used twice"),
    (changed(9, test=[{"a": {"search": "nothing", "trials": 3}, "b": {"grid": "grid9"},
                       "expect": "better"}]), r"claim 10, test 1: no searches nothing_r0"),
    (changed(9, test=[{"a": {"search": "rs", "trials": 0}, "b": {"grid": "grid9"},
                       "expect": "better"}]), r"trials = 0 must be an integer >= 1"),
    (changed(8, study="s"), r"claim 9, test 1: an lr_range part needs a sweep over train.lr"),
    (changed(0, margin=0), r"claim 1: margin = 0 must be a number in \(0, 1\)"),
    (changed(0, diverged="zero"), r"claim 1: diverged = 'zero'; allowed: chance"),
])
def test_bad_claims_are_refused_naming_the_claim_and_key(data, message):
    with pytest.raises(ParamError, match=message):
        load(data)


def test_a_claim_across_studies_has_the_replicates_of_the_smallest():
    # claim 10: search set rs (SEEDS replicates) against the grid sweep grid9; a grid of up to 10
    # seeds must not give the claim 10 - 3 + 1 looks, each at a smaller alpha, that cannot happen
    sweeps = SWEEPS | {"grid9": SWEEPS["grid9"] | {"max_seeds": 10}}
    parsed = {n: sweep_spec.parse_sweep(n, s, BASE) for n, s in sweeps.items()}
    searches = {s.name: s for k in range(SEEDS) for s in [replicate("rs", k)]}
    claims = claim_spec.parse(copy.deepcopy(CLAIMS), parsed, searches, BASE)
    assert claims.designs["grid9"] == claim_spec.Design(3, 10)
    assert next(c for c in claims.claims if c.id == 10).design == claim_spec.Design(3, SEEDS)


def test_replicate_searches_must_carry_their_seed_and_be_enough():
    wrong = {s.name: s for k in range(SEEDS) for s in [replicate("rs", k)]}
    wrong["rs_r2"] = search_spec.parse_search("rs_r2", {"space": SPACE, "sampler": "random",
                                                        "seed": 7, "fixed": {"train.seed": 2}}, BASE)
    with pytest.raises(ParamError, match="search rs_r2 must declare seed: 2 and fix train.seed: 2"):
        load(searches=wrong)
    few = {s.name: s for k in range(2) for s in [replicate("rs", k)]}
    with pytest.raises(ParamError, match="search set rs has 2 replicate searches .* max_seeds 6"):
        load(searches=few)
    mixed = {s.name: s for k in range(SEEDS) for s in [replicate("rs", k, "tpe" if k else "random")]}
    with pytest.raises(ParamError, match="must differ only in their seeds"):
        load(searches=mixed)


# --- the door ------------------------------------------------------------------------------------

def run_door(monkeypatch, *args: str) -> None:
    """`python -m src.study ARGS` in this process (the door's main; errors.run turns a
    TunelabError into its one line and exit 2)."""
    from src import study
    monkeypatch.setattr(sys, "argv", ["python -m src.study", *args])
    study.main()


def test_the_door_writes_the_same_page_twice_from_committed_studies(tmp_path, monkeypatch, capsys):
    for name in ("claims.yaml", "sweeps.yaml", "searches.yaml", "params.yaml"):
        shutil.copy(REPO / name, tmp_path / name)
    folder = tmp_path / "reports" / "study" / "dropout"
    folder.mkdir(parents=True)
    labels = [f"dropout={d}" for d in ("0.0", "0.2", "0.3", "0.5", "0.7")]
    experiments("dropout", {label: values(0.0, 0.002) for label in labels}).to_csv(
        folder / "experiments.csv", index=False)
    (folder / "report.md").write_text("# dropout\n")
    monkeypatch.chdir(tmp_path)
    run_door(monkeypatch, "claims")
    assert "claims: Of 25 claims:" in capsys.readouterr().out
    page, csv = (tmp_path / "reports" / f"claims.{ext}" for ext in ("md", "csv"))
    texts = page.read_bytes(), csv.read_bytes()
    run_door(monkeypatch, "claims")
    assert (page.read_bytes(), csv.read_bytes()) == texts
    text = page.read_text()
    assert "Of 25 claims" in text and "24 not run yet" in text
    for link in re.findall(r"\]\(([^)]+)\)", text):
        assert (page.parent / link).is_file(), link
    table = pd.read_csv(csv)
    assert set(table["claim"]) == set(range(1, 26))
    assert (table.loc[table["claim"] == 1, "claim_outcome"] != "not run").all()


def test_the_door_refuses_all_commits_for_claims(monkeypatch):
    with pytest.raises(errors.TunelabError, match="--all-commits does not apply"):
        run_door(monkeypatch, "claims", "--all-commits")


def test_a_sweeps_design_lives_in_sweeps_yaml_not_in_claims_yaml():
    data = CLAIMS | {"studies": {"s": {"max_seeds": 4}}}
    with pytest.raises(ParamError, match="studies: s is a sweep: its design .* live in sweeps.yaml"):
        load(data)


# --- what each verdict cost ----------------------------------------------------------------------

def test_a_claims_cost_is_the_experiments_its_parts_read_and_the_totals_count_each_once():
    claims, given = load(), studies()
    by_id = {c.id: c for c in claims.claims}

    def cost(i):
        return claim_costs.claim_cost(by_id[i], claims, given)

    one = cost(1)  # dropout=0.1 vs 0.0, 6 seeds each: seed s trained 10 + s fold-epochs in 100 (s+1) s
    assert (one.count, one.fold_epochs) == (12, 2 * sum(10 + s for s in range(SEEDS)))
    assert one.train_hours == pytest.approx(2 * sum(100 * (s + 1) for s in range(SEEDS)) / 3600)
    assert cost(7).count == 4 * SEEDS       # an ANOVA term reads every cell of the grid
    assert cost(9).count == 3 * SEEDS       # an LR range test, every rate
    search = cost(10)                       # 3 of each replicate's 4 trials, and the whole grid9
    assert search.count == 3 * SEEDS + 2 * SEEDS
    assert search.fold_epochs == 3 * SEEDS * 5 + 2 * sum(10 + s for s in range(SEEDS))
    assert cost(12).count == 5 * SEEDS and cost(5).count == 0  # `rest`: all of s; not run: none
    text, table, _ = claims_report.build(claims, given)
    # s (5 configurations), g, flat (4 each), lr (3), grid9 (2) at 6 seeds, and 3 trials of 6 searches
    total = (5 + 4 + 4 + 3 + 2) * SEEDS + 3 * SEEDS
    hours = ((5 + 4 + 4 + 3 + 2) * sum(100 * (s + 1) for s in range(SEEDS)) + 3 * SEEDS * 36) / 3600
    assert (f"**These verdicts cost {total} experiments (each counted once, however many claims "
            f"read it), ") in text
    assert f" and {hours:,.2f} training hours (the training loops' wall time" in text
    row = table[table["claim"] == 1].iloc[0]
    assert (row["experiments"], row["fold_epochs"], row["cost_unrecorded"]) == (12, one.fold_epochs, 0)
    assert row["train_hours"] == pytest.approx(one.train_hours)
    assert row["procedure"] == "t test; TOST ±0.5 points" and row["looks_taken"] == 4
    assert row["metric"] == "CV accuracy"
    undecided = table[table["claim"] == 4].iloc[0]
    assert undecided["claim_seeds_needed"] == undecided["seeds_needed"] > SEEDS - 1


def test_experiments_of_studies_that_did_not_record_their_cost_are_counted_as_unrecorded():
    old = experiments("s", S).drop(columns=["fold_epochs", "train_seconds"])
    claims = load()
    cost = claim_costs.claim_cost(claims.claims[0], claims, studies(experiments={"s": old}))
    assert (cost.count, cost.unrecorded, cost.fold_epochs, cost.train_hours) == (12, 12, 0.0, 0.0)
    text, table, _ = claims_report.build(claims, studies(experiments=studies().experiments | {"s": old}))
    assert "| 1 | **holds** | CV accuracy | t test; TOST ±0.5 points | α 0.05, look 4 of 4 | 12 | " \
           "not recorded | not recorded |  |" in text
    assert math.isnan(table[table["claim"] == 1].iloc[0]["train_hours"])


# --- the same claim on validation loss -----------------------------------------------------------

LOSS_CLAIMS = CLAIMS | {"claims": [
    claim(1, "s", {"a": "dropout=0.1", "b": "dropout=0.0", "expect": "better"}, loss_margin=0.02),
    claim(2, "s", {"a": "dropout=0.0", "b": "dropout=0.4", "expect": "better"}, loss_margin=0.02),
    claim(3, "s", {"a": "dropout=0.2", "b": "dropout=0.0", "expect": "better"})]}
# dropout=0.1: the better accuracy and the lower loss; dropout=0.4: a worse accuracy but the
# lowest loss (an accuracy claim and a loss claim that disagree)
LOSSES = {"dropout=0.0": values(0.30, 0.001), "dropout=0.1": values(0.25, 0.001),
          "dropout=0.2": values(0.30, 0.001), "dropout=0.3": values(0.30, 0.001),
          "dropout=0.4": values(0.20, 0.001)}


def test_a_claim_with_loss_margin_is_decided_on_validation_loss_too_lower_is_better():
    given = studies(experiments=studies().experiments | {"s": experiments("s", S, losses=LOSSES)})
    text, table, results = claims_report.build(load(LOSS_CLAIMS), given)
    by_id = {r.claim.id: r for r in results}
    assert (by_id[1].outcome, by_id[1].loss.outcome) == ("holds", "holds")  # a lower loss holds
    assert (by_id[2].outcome, by_id[2].loss.outcome) == ("holds", "fails")  # 0.0's loss is higher
    assert by_id[3].loss is None
    a, b = np.array(LOSSES["dropout=0.1"]), np.array(LOSSES["dropout=0.0"])
    ci = sps.ttest_rel(a, b).confidence_interval(1 - 0.05 / 4)
    row = table[table["claim"] == 1].iloc[0]  # a - b in the loss's units: negative is better
    assert row["loss_diff"] == pytest.approx(float(np.mean(a - b))) and row["loss_diff"] < 0
    assert (row["loss_ci_low"], row["loss_ci_high"]) == pytest.approx((ci.low, ci.high), rel=1e-9)
    assert row["loss_verdict"] == "lower loss" and row["loss_margin"] == 0.02
    assert row["metric"] == "CV accuracy; CV loss (±0.02)"
    assert claims_report.agreement(by_id[2]) == "the two metrics disagree"
    assert "| **fails** " in text.split("| 2 | claim 2 |")[1].split("\n")[0]
    assert "the two metrics disagree" in text.split("| 2 | claim 2 |")[1].split("\n")[0]


def test_a_loss_claim_on_a_study_without_the_loss_says_it_is_not_recorded():
    text, table, results = claims_report.build(load(LOSS_CLAIMS), studies())
    assert next(r for r in results if r.claim.id == 1).loss.outcome == claim_decisions.NOT_RECORDED
    assert "| not recorded in the committed study |" in text
    assert "validation loss: not recorded in the committed study" in text
    assert math.isnan(table[table["claim"] == 1].iloc[0]["loss_diff"])
    assert claim_decisions.LOSS in sweep_study.METRICS  # the study collects it from now on


@pytest.mark.parametrize("data, message", [
    (changed(0, loss_margin=0), r"claim 1: loss_margin = 0 must be a number in \(0, inf\)"),
    (changed(0, loss_margin="0.02"), r"claim 1: loss_margin = '0.02' must be a number"),
    (changed(6, loss_margin=0.02), r"claim 7: loss_margin needs contrasts of configurations"),
    (changed(9, loss_margin=0.02), r"claim 10: loss_margin needs contrasts of configurations"),
])
def test_a_bad_loss_margin_is_refused_naming_the_claim_and_key(data, message):
    with pytest.raises(ParamError, match=message):
        load(data)
