"""Study figure builders on synthetic summaries: axes, labels, error bars, cells, Pareto front,
and the figure set each sweep of sweeps.yaml gets from its design."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PolyCollection
from matplotlib.container import ErrorbarContainer

from src.core import params
from src.experiments import sweep_spec
from src.studies import sweep_figures as sf
from tests.conftest import REPO


def summary(configs, means, half=0.01, n=3, **extra) -> pd.DataFrame:
    """A summary table as sweep_study.summary_table makes it, with symmetric CIs of ``half``."""
    means = np.asarray(means, dtype=float)
    half = np.broadcast_to(np.asarray(half, dtype=float), means.shape)
    frame = pd.DataFrame({"config": configs, "n": n, "cv_mean": means, "cv_ci_low": means - half,
                          "cv_ci_high": means + half})
    for key, value in extra.items():
        frame[key] = value
    return frame


def error_bars(ax) -> int:
    """Number of error bars drawn on ``ax`` (one segment per point, over every errorbar call)."""
    return sum(len(c.lines[2][0].get_segments()) for c in ax.containers
               if isinstance(c, ErrorbarContainer) and c.lines[2])


@pytest.fixture(scope="module")
def all_sweeps():
    base = params.read_yaml(REPO / "params.yaml")
    return sweep_spec.load(REPO / "sweeps.yaml", base)


# --- design -> figure set ------------------------------------------------------------------------

def test_plan_follows_each_sweeps_design(all_sweeps):
    names = {n: [f for f, _ in sf.plan(s, sf.grid_factors(s))] for n, s in all_sweeps.items()}
    assert all(files[0] == "forest.png" for files in names.values())  # the decisions first
    names = {n: files[1:] for n, files in names.items()}
    every = ["top_configurations.png", "pareto.png"]
    assert names["dropout"] == ["dropout_impact.png", *every]
    assert names["lr"] == ["lr_impact.png", *every]
    assert names["batch_size"] == ["batch_size_impact.png", *every]
    assert names["batchnorm"] == ["batchnorm_comparison.png", "learning_curves.png", *every]
    assert names["norm"] == ["norm_comparison.png", "learning_curves.png", *every]
    assert names["pooling"] == ["pooling_comparison.png", "learning_curves.png", *every]
    assert names["optimizer"] == ["optimizer_comparison.png", "learning_curves.png", *every]
    assert names["depth"] == names["depth_deep"] == ["conv_depth_impact.png", *every]
    for grid in ("interactions", "conv_dropout_at", "conv_dropout_width", "epochs", "epochs_lr",
                 "mlp_width", "claims_grid"):
        assert names[grid] == ["interactions_heatmap.png", *every], grid
    assert names["conv_dropout"] == names["deep_stack"] == ["learning_curves.png", *every]
    assert names["combined"] == ["learning_curves.png", *every]


def test_grid_factors_of_two_keys_and_of_layer_pairs(all_sweeps):
    (a, b), cells = sf.grid_factors(all_sweeps["interactions"])
    assert (a, b) == ("dropout", "norm") and len(cells) == 6
    assert cells["dropout=0.3,norm=batch"] == ("0.3", "batch")
    (a, b), cells = sf.grid_factors(all_sweeps["mlp_width"])
    assert (a, b) == ("hidden_units[1]", "hidden_units[2]") and len(cells) == 16
    assert cells["hidden_units=64-256"] == ("64", "256")
    for one_factor in ("dropout", "width", "mlp_depth", "depth", "combined", "optimizer"):
        assert sf.grid_factors(all_sweeps[one_factor]) is None, one_factor


def test_build_all_makes_the_planned_figures(all_sweeps):
    sweep = all_sweeps["interactions"]
    configs = [sweep.label(c) for c in sweep.configs]
    table = summary(configs, np.linspace(0.8, 0.9, 6), params=1000.0, seconds_per_epoch=1.0)
    built = sf.build_all(sweep, table, sf.grid_factors(sweep))
    assert sorted(built) == ["interactions_heatmap.png", "pareto.png", "top_configurations.png"]
    sweep = all_sweeps["norm"]
    configs = [sweep.label(c) for c in sweep.configs]
    table = summary(configs, np.linspace(0.8, 0.9, 5), params=1000.0, seconds_per_epoch=1.0)
    curves = pd.DataFrame({"config": configs, "epoch": 1, "mean": 0.8, "sd": 0.01, "n": 3})
    assert "learning_curves.png" in sf.build_all(sweep, table, None, curves)
    assert "learning_curves.png" not in sf.build_all(sweep, table, None, None)  # no histories


# --- data helpers --------------------------------------------------------------------------------

def test_pareto_front_on_a_hand_made_example():
    cost = [1, 2, 3, 4, 2, np.nan, 5]
    score = [0.80, 0.85, 0.84, 0.90, 0.85, 0.99, 0.90]
    # 1: cheapest; 2 (and its tie 4): better than 1; 3: beaten by 2; 4: best; 6: missing cost;
    # 7: as good as 4 but dearer.
    assert sf.pareto_front(cost, score).tolist() == [True, True, False, True, True, False, False]


def test_seed_curves_average_folds_then_seeds():
    def history(values):  # two folds of two epochs
        return pd.DataFrame({"fold": [0, 0, 1, 1], "epoch": [1, 2, 1, 2], "val_acc": values})
    curves = sf.seed_curves({"a": [history([0.5, 0.6, 0.7, 0.8]), history([0.7, 0.8, 0.9, 1.0])]})
    # seed means per epoch: seed 0 -> 0.6, 0.7; seed 1 -> 0.8, 0.9
    assert curves["epoch"].tolist() == [1, 2]
    np.testing.assert_allclose(curves["mean"], [0.7, 0.8])
    np.testing.assert_allclose(curves["sd"], [np.std([0.6, 0.8], ddof=1)] * 2)
    assert curves["n"].tolist() == [2, 2]


# --- builders ------------------------------------------------------------------------------------

def test_factor_impact_has_val_and_train_curves_with_ci_bars():
    table = summary(["d=0.5", "d=0.0", "d=0.3"], [0.85, 0.80, 0.88], half=[0.02, 0.01, 0.0],
                    train_mean=[0.86, 0.95, 0.90], train_ci_low=[0.85, 0.94, 0.89],
                    train_ci_high=[0.87, 0.96, 0.91])
    fig = sf.factor_impact(table, [0.5, 0.0, 0.3], "dropout", baseline=0.3)
    (ax,) = fig.axes
    assert ax.get_xlabel() == "dropout" and ax.get_ylabel() == "accuracy"
    assert error_bars(ax) == 6  # val and train, 3 points each
    val = ax.containers[0].lines[0]
    assert val.get_xdata().tolist() == [0.0, 0.3, 0.5]  # sorted by the factor
    assert val.get_ydata().tolist() == [0.80, 0.88, 0.85]
    assert "train accuracy" in " ".join(t.get_text() for t in ax.get_legend().get_texts())


def test_factor_impact_uses_a_log_axis_for_learning_rates():
    table = summary(["a", "b", "c"], [0.8, 0.85, 0.7])
    (ax,) = sf.factor_impact(table, [0.0001, 0.001, 0.01], "lr").axes
    assert ax.get_xscale() == "log"


def test_comparison_bars_one_bar_and_one_error_bar_per_configuration():
    table = summary(["norm=none", "norm=batch", "norm=layer"], [0.80, 0.88, np.nan], n=[3, 3, 0])
    fig = sf.comparison_bars(table, "norm=none", "norm")
    (ax,) = fig.axes
    assert len(ax.patches) == 3 and error_bars(ax) == 3
    assert [p.get_height() for p in ax.patches][:2] == pytest.approx([0.80, 0.88])
    assert "baseline" in ax.get_xticklabels()[0].get_text()
    assert "95% CI" in ax.get_title()


def test_learning_curves_one_line_and_band_per_configuration():
    curves = pd.DataFrame({"config": ["a"] * 3 + ["b"] * 3, "epoch": [1, 2, 3] * 2,
                           "mean": [0.5, 0.6, 0.7, 0.4, 0.5, 0.6], "sd": 0.02, "n": 3})
    (ax,) = sf.learning_curves(curves, "a").axes
    assert len(ax.lines) == 2
    assert len([c for c in ax.collections if isinstance(c, PolyCollection)]) == 2
    assert ax.lines[1].get_ydata().tolist() == [0.4, 0.5, 0.6]
    assert ax.get_xlabel() == "epoch"


def test_depth_impact_has_a_log_scale_parameter_axis():
    table = summary(["c=32", "c=32-64", "c=32-64-128"], [0.86, 0.89, 0.90],
                    params=[1e6, 4e5, 2e5])
    fig = sf.depth_impact(table, [1, 2, 3], baseline_depth=2)
    assert len(fig.axes) == 2
    ax, cost = fig.axes
    assert error_bars(ax) == 3 and cost.get_yscale() == "log"
    assert cost.lines[0].get_ydata().tolist() == [1e6, 4e5, 2e5]
    assert ax.get_xlabel() == "number of layers" and "parameters" in cost.get_ylabel()


def test_heatmap_cells_are_the_means_passed():
    means = pd.DataFrame([[0.80, 0.85], [0.82, 0.90], [0.81, np.nan]],
                         index=pd.Index(["0.0", "0.3", "0.5"], name="dropout"),
                         columns=pd.Index(["none", "batch"], name="norm"))
    half = means * 0 + 0.01
    n = means * 0 + 3
    fig = sf.heatmap(means, half, n, baseline_cell=("0.0", "none"))
    ax = fig.axes[0]
    assert len(fig.axes) == 2  # the map and its colour bar
    np.testing.assert_array_equal(ax.images[0].get_array().filled(np.nan), means.to_numpy())
    texts = [t.get_text() for t in ax.texts]
    assert len(texts) == 6 and texts[0] == "0.8000\n±0.0100\nn=3" and texts[5] == "no data"
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("norm", "dropout")
    assert len(ax.patches) == 1  # the baseline outline


def test_grid_matrices_place_each_configuration(all_sweeps):
    sweep = all_sweeps["mlp_width"]
    grid = sf.grid_factors(sweep)
    configs = [sweep.label(c) for c in sweep.configs]
    means = np.arange(16) / 100 + 0.8
    mean, half, n = sf.grid_matrices(summary(configs, means, half=0.02, n=4), grid)
    assert mean.shape == (4, 4) and mean.loc["64", "256"] == pytest.approx(0.87)  # 8th config
    assert np.allclose(half, 0.02) and (n == 4).all().all()


def test_top_configurations_ranked_with_the_baseline_highlighted():
    table = summary(["a", "b", "c", "d"], [0.85, 0.90, 0.80, 0.88])
    (ax,) = sf.top_configurations(table, "a").axes
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == ["c (n=3)", "a (n=3)", "d (n=3)", "b (n=3)"]  # best at the top
    assert error_bars(ax) == 4
    assert ax.get_yticklabels()[1].get_fontweight() == "bold"
    assert ax.get_xlabel() == "CV validation accuracy"


def test_pareto_has_two_panels_and_marks_the_front():
    table = summary(["a", "b", "c", "d"], [0.80, 0.85, 0.84, 0.90],
                    params=[1e3, 1e4, 1e5, 1e6], seconds_per_epoch=[4.0, 1.0, 2.0, 3.0])
    fig = sf.pareto(table, "a")
    left, right = fig.axes
    assert left.get_xscale() == "log" and left.get_xlabel().startswith("parameters")
    assert right.get_xlabel() == "training seconds per epoch"
    assert error_bars(left) == error_bars(right) == 4
    front = [ln for ln in left.lines if ln.get_gid() == "pareto-front"][0]
    assert front.get_xdata().tolist() == [1e3, 1e4, 1e6]  # c is dearer and worse than b
    front = [ln for ln in right.lines if ln.get_gid() == "pareto-front"][0]
    assert front.get_xdata().tolist() == [1.0, 3.0]  # b cheapest, d best


def test_the_forest_plots_legend_hides_no_interval():
    summary = pd.DataFrame({  # the bottom row's interval runs across the lower left corner
        "config": ["a", "b", "c"], "diff": [np.nan, 0.001, -0.013],
        "diff_ci_low": [np.nan, -0.007, -0.023], "diff_ci_high": [np.nan, 0.007, -0.002],
        "decision": ["baseline", "undecided", "worse"],
        "verdict": ["baseline", "undecided (needs ≈ 24 seeds)", "worse"], "margin": 0.005})
    fig = sf.forest(summary, "a", 0.005)
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    legends = fig.legends + [fig.axes[0].get_legend()]
    boxes = [legend.get_window_extent(renderer) for legend in legends if legend is not None]
    assert len(boxes) == 1
    for line in fig.axes[0].lines:
        assert not boxes[0].overlaps(line.get_window_extent(renderer)), line.get_xdata()


def test_forest_plot_shows_each_difference_its_interval_the_margin_band_and_the_verdict():
    summary = pd.DataFrame({
        "config": ["a", "b", "c"], "diff": [np.nan, 0.012, -0.001],
        "diff_ci_low": [np.nan, 0.006, -0.003], "diff_ci_high": [np.nan, 0.018, 0.002],
        "decision": ["baseline", "better", "equivalent"],
        "verdict": ["baseline", "better", "equivalent within ±0.50 points"], "margin": 0.005})
    fig = sf.forest(summary, "a", 0.005)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["c", "b"]  # sweep order, top down
    band = [p for p in ax.patches if p.get_label().startswith("±0.5 points")]
    assert len(band) == 1
    left, width = band[0].get_x(), band[0].get_width()
    assert (left, left + width) == (pytest.approx(-0.5), pytest.approx(0.5))
    texts = [t.get_text() for t in ax.texts]
    assert texts == ["equivalent within ±0.50 points", "better"]
    intervals = [list(map(float, line.get_xdata())) for line in ax.lines
                 if len(line.get_xdata()) == 2 and line.get_linewidth() == 2.2]
    assert intervals == [[-0.3, 0.2], [pytest.approx(0.6), pytest.approx(1.8)]]
