"""Tests for src/core/figures.py and the pure helpers of src/plot.py: every figure is built from tiny
hand-made data and checked on the Figure object itself (axes, labels, lines, cell values)."""

import io

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from src import plot
from src.core import figures
from src.core.data import CLASS_NAMES
from src.core.errors import TunelabError

NAMES = ("cat", "dog", "owl")
# Known errors: cat -> dog once, dog -> owl once.   Counts      Row-normalised
ACTUAL = ["cat", "cat", "cat", "cat", "dog", "dog", "owl", "owl"]  # cat [3 1 0]  [.75 .25 0]
PREDICTED = ["cat", "cat", "cat", "dog", "dog", "owl", "owl", "owl"]  # dog [0 1 1]  [0 .5 .5]
EXPECTED = np.array([[0.75, 0.25, 0.0], [0.0, 0.5, 0.5], [0.0, 0.0, 1.0]])  # owl [0 0 2]  [0 0 1]


def make_history(epochs_per_fold=(3, 3)) -> pd.DataFrame:
    rows = []
    for fold, epochs in enumerate(epochs_per_fold):
        for epoch in range(1, epochs + 1):
            rows.append({"fold": fold, "epoch": epoch, "train_loss": 1.0 / epoch + fold,
                         "train_acc": 0.5 + 0.1 * epoch, "val_loss": 1.2 / epoch + fold,
                         "val_acc": 0.4 + 0.1 * epoch + 0.01 * fold, "lr": 1e-3, "seconds": 1.0})
    return pd.DataFrame(rows)


def make_folds(final=(0.80, 0.82, 0.84), best=(0.81, 0.83, 0.85)) -> pd.DataFrame:
    return pd.DataFrame({"fold": range(len(final)), "status": "completed",
                         "final_val_accuracy": final, "best_val_accuracy": best})


SUMMARY = {"mean": 0.82, "std": 0.02, "n": 3, "ci95_low": 0.77, "ci95_high": 0.87}


def texts(ax) -> list[str]:
    return [t.get_text() for t in ax.texts]


# --- helpers -------------------------------------------------------------------------------------


def test_class_codes_accepts_names_and_integer_codes():
    assert figures.class_codes(["owl", "cat"], NAMES).tolist() == [2, 0]
    assert figures.class_codes(np.array([2, 0]), NAMES).tolist() == [2, 0]


@pytest.mark.parametrize("labels", [["cat", "emu"], np.array([0, 3]), np.array([-1])])
def test_class_codes_rejects_unknown_labels(labels):
    with pytest.raises(ValueError, match="not among the 3 classes"):
        figures.class_codes(labels, NAMES)


def test_confusion_counts_rows_are_true_classes():
    counts = figures.confusion_counts(ACTUAL, PREDICTED, NAMES)
    assert counts.tolist() == [[3, 1, 0], [0, 1, 1], [0, 0, 2]]


def test_row_normalised_leaves_an_absent_class_as_nan():
    fractions = figures.row_normalised(np.array([[1, 3], [0, 0]]))
    assert fractions[0].tolist() == [0.25, 0.75]
    assert np.isnan(fractions[1]).all()


# --- learning curves -----------------------------------------------------------------------------


def test_learning_curves_has_loss_and_accuracy_panels():
    fig = figures.learning_curves(make_history())
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 2
    loss, acc = fig.axes
    assert "loss" in loss.get_title().lower() and "loss" in loss.get_ylabel().lower()
    assert "accuracy" in acc.get_title().lower() and "accuracy" in acc.get_ylabel().lower()
    assert all(ax.get_xlabel() == "epoch" for ax in fig.axes)
    assert "2 CV folds" in fig.get_suptitle()


def test_learning_curves_draws_every_fold_and_split_plus_the_means():
    fig = figures.learning_curves(make_history((3, 3)))
    for ax in fig.axes:
        lines = ax.get_lines()
        assert len(lines) == 2 * 2 + 2  # 2 folds x (train, val) + one mean per split
        thick = [ln for ln in lines if ln.get_linewidth() > 2]
        assert len(thick) == 2
        assert {ln.get_linestyle() for ln in thick} == {"--", "-"}  # train dashed, val solid
    legend = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert legend == ["train, each fold", "train, mean of 2 folds", "val, each fold",
                      "val, mean of 2 folds"]


def test_learning_curve_mean_is_over_the_folds_that_reached_each_epoch():
    history = make_history((3, 2))  # fold 1 stopped early
    fig = figures.learning_curves(history)
    val_mean = next(ln for ln in fig.axes[0].get_lines()
                    if ln.get_linewidth() > 2 and ln.get_linestyle() == "-")
    assert list(val_mean.get_xdata()) == [1, 2, 3]
    expected = [np.mean([1.2 / e + f for f in (0, 1)]) for e in (1, 2)]
    expected.append(1.2 / 3)  # epoch 3: fold 0 alone
    assert np.allclose(val_mean.get_ydata(), expected)


def test_learning_curves_survive_a_diverged_fold():
    history = make_history((2, 2))
    history.loc[3, ["train_loss", "val_loss"]] = [np.inf, np.nan]
    fig = figures.learning_curves(history)
    fig.savefig(io.BytesIO(), format="png")  # renders; the infinite loss does not blow the axis
    assert len(fig.axes[0].get_lines()) == 6
    assert np.isfinite(fig.axes[0].get_ylim()).all()


# --- confusion matrix ----------------------------------------------------------------------------


def test_confusion_matrix_cells_are_row_normalised_fractions():
    fig = figures.confusion_matrix(ACTUAL, PREDICTED, NAMES)
    ax = fig.axes[0]  # fig.axes[1] is the colour bar
    assert len(fig.axes) == 2
    assert np.allclose(np.asarray(ax.images[0].get_array()), EXPECTED)
    assert ax.get_xlabel() == "predicted class" and ax.get_ylabel() == "true class"
    assert [t.get_text() for t in ax.get_yticklabels()] == list(NAMES)


def test_confusion_matrix_writes_percentages_in_non_empty_cells_only():
    fig = figures.confusion_matrix(ACTUAL, PREDICTED, NAMES)
    labels = [t for t in texts(fig.axes[0]) if t]
    assert sorted(labels) == sorted(["75%", "25%", "50%", "50%", "100%"])


def test_confusion_matrix_title_is_the_callers_or_counts_predictions():
    assert "8 predictions" in figures.confusion_matrix(ACTUAL, PREDICTED, NAMES).axes[0].get_title()
    fig = figures.confusion_matrix(ACTUAL, PREDICTED, NAMES, title="2 models × 4 images")
    assert fig.axes[0].get_title() == "2 models × 4 images"


def test_confusion_matrix_accepts_integer_codes():
    fig = figures.confusion_matrix([0, 0, 1], [0, 1, 1], NAMES)
    cells = np.asarray(fig.axes[0].images[0].get_array())
    assert np.allclose(cells[:2], [[0.5, 0.5, 0.0], [0.0, 1.0, 0.0]])
    assert np.isnan(cells[2]).all()  # owl never occurs: no evidence, not 0%


# --- per-class accuracy --------------------------------------------------------------------------


def test_per_class_bars_are_the_recalls_in_class_order():
    fig = figures.per_class_accuracy(ACTUAL, PREDICTED, NAMES)
    ax = fig.axes[0]
    assert len(fig.axes) == 1
    widths = [bar.get_width() for bar in ax.patches]
    assert widths == pytest.approx([0.75, 0.5, 1.0])
    assert [t.get_text() for t in ax.get_yticklabels()] == list(NAMES)
    assert ax.yaxis_inverted()  # first class on top
    assert {"0.750", "0.500", "1.000"} <= set(texts(ax))  # value labels
    assert "accuracy" in ax.get_xlabel() and "accuracy" in ax.get_title().lower()


def test_per_class_mean_line_is_the_macro_recall():
    ax = figures.per_class_accuracy(ACTUAL, PREDICTED, NAMES).axes[0]
    (mean_line,) = ax.get_lines()
    assert mean_line.get_xdata()[0] == pytest.approx(0.75)
    assert "mean 0.750" in [t.get_text() for t in ax.get_legend().get_texts()]


# --- CV folds ------------------------------------------------------------------------------------


def test_cv_folds_bars_markers_mean_and_band():
    fig = figures.cv_folds(make_folds(), SUMMARY)
    ax = fig.axes[0]
    bars = [p for p in ax.patches if p.get_width() == pytest.approx(0.6)]
    assert [b.get_height() for b in bars] == pytest.approx([0.80, 0.82, 0.84])
    markers = next(ln for ln in ax.get_lines() if ln.get_marker() == "D")
    assert list(markers.get_ydata()) == pytest.approx([0.81, 0.83, 0.85])
    mean = next(ln for ln in ax.get_lines() if ln.get_marker() != "D")
    assert list(mean.get_ydata()) == pytest.approx([0.82, 0.82])
    assert len(ax.patches) == 3 + 1  # bars + the CI band
    assert texts(ax) == ["0.8000", "0.8200", "0.8400"]  # value per bar
    legend = " ".join(t.get_text() for t in ax.get_legend().get_texts())
    assert "95% CI [0.7700, 0.8700]" in legend and "mean 0.8200" in legend
    assert "n = 3" in ax.get_title()
    assert "fold" in ax.get_xlabel() and "accuracy" in ax.get_ylabel()


def test_cv_folds_without_a_confidence_interval_draws_no_band():
    summary = {"mean": 0.8, "std": None, "n": 1, "ci95_low": None, "ci95_high": None}
    ax = figures.cv_folds(make_folds((0.8,), (0.81,)), summary).axes[0]
    assert len(ax.patches) == 1  # the one bar
    assert "n = 1" in ax.get_title()
    assert "std" not in " ".join(t.get_text() for t in ax.get_legend().get_texts())


def test_cv_folds_of_a_diverged_run_marks_the_fold():
    folds = make_folds((0.8, np.nan), (0.81, np.nan))
    folds.loc[1, "status"] = "diverged"
    ax = figures.cv_folds(folds, {"mean": None}).axes[0]
    assert texts(ax) == ["0.8000", "diverged"]  # the status instead of a value
    assert "n = 2" in ax.get_title()  # n falls back to the number of folds


# --- misclassified grid --------------------------------------------------------------------------


def make_images(n: int) -> np.ndarray:
    return np.arange(n * 4 * 4, dtype=np.uint8).reshape(n, 4, 4)  # (N, H, W)


def test_misclassified_grid_shows_only_the_errors_when_fewer_than_n():
    fig = figures.misclassified_grid(make_images(8), ACTUAL, PREDICTED, n=36)
    assert len(fig.axes) == 2  # two errors among eight images
    assert all(len(ax.images) == 1 for ax in fig.axes)
    assert [ax.get_title() for ax in fig.axes] == ["cat\n/ dog", "dog\n/ owl"]
    assert np.array_equal(fig.axes[0].images[0].get_array(), make_images(8)[3])  # image 3 is wrong
    assert "2 of 2 errors" in fig.get_suptitle()


def test_misclassified_grid_stops_at_n():
    fig = figures.misclassified_grid(make_images(8), ACTUAL, PREDICTED, n=1)
    assert len(fig.axes) == 1 and len(fig.axes[0].images) == 1
    assert "1 of 2 errors" in fig.get_suptitle()


def test_misclassified_grid_says_so_when_nothing_is_wrong():
    fig = figures.misclassified_grid(make_images(3), ["cat"] * 3, ["cat"] * 3, n=36)
    (ax,) = fig.axes
    assert not ax.images
    assert any("no misclassified" in t.lower() for t in texts(ax))


def test_misclassified_grid_rejects_mismatched_lengths():
    with pytest.raises(ValueError):
        figures.misclassified_grid(make_images(2), ["cat"] * 3, ["cat"] * 3, n=4)


def test_every_figure_renders_to_png():
    built = [figures.learning_curves(make_history()), figures.cv_folds(make_folds(), SUMMARY),
             figures.confusion_matrix(ACTUAL, PREDICTED, NAMES),
             figures.per_class_accuracy(ACTUAL, PREDICTED, NAMES),
             figures.misclassified_grid(make_images(8), ACTUAL, PREDICTED, n=4)]
    for fig in built:
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=40)
        assert buffer.getvalue().startswith(b"\x89PNG")


# --- plot.py helpers -----------------------------------------------------------------------------


def make_confusion() -> pd.DataFrame:
    """Two fold models on 4 test images: fold 0 errs on image 1, fold 1 on images 0 and 2."""
    truth = [CLASS_NAMES[c] for c in (0, 1, 2, 3)]
    fold0 = [CLASS_NAMES[c] for c in (0, 6, 2, 3)]
    fold1 = [CLASS_NAMES[c] for c in (6, 1, 4, 3)]
    return pd.DataFrame({"fold": [0] * 4 + [1] * 4, "index": [0, 1, 2, 3] * 2,
                         "actual": truth * 2, "predicted": fold0 + fold1})


METRICS = {"status": "completed", "cv": {"val_accuracy": SUMMARY}}


def test_build_figures_draws_all_five():
    built = plot.build_figures(make_history(), make_folds(), make_confusion(), METRICS,
                               make_images(4), n_misclassified=36)
    assert sorted(built) == ["confusion_matrix.png", "cv_folds.png", "learning_curves.png",
                             "misclassified.png", "per_class_accuracy.png"]
    assert "2 models × 4 test images" in built["confusion_matrix.png"].axes[0].get_title()
    grid = built["misclassified.png"]
    assert len(grid.axes) == 1  # fold 0's single error, not fold 1's two
    assert grid.axes[0].get_title() == f"{CLASS_NAMES[1]}\n/ {CLASS_NAMES[6]}"
    assert np.array_equal(grid.axes[0].images[0].get_array(), make_images(4)[1])


def test_build_figures_skips_test_set_figures_of_a_diverged_run():
    empty = pd.DataFrame(columns=["fold", "index", "actual", "predicted"])
    metrics = {"status": "diverged", "cv": {"val_accuracy": {"mean": None}}}
    built = plot.build_figures(make_history(), make_folds(), empty, metrics, None, 36)
    assert sorted(built) == ["cv_folds.png", "learning_curves.png"]


def test_build_figures_rejects_predictions_for_images_that_do_not_exist():
    with pytest.raises(TunelabError, match="test image 3"):
        plot.build_figures(make_history(), make_folds(), make_confusion(), METRICS,
                           make_images(2), 36)


def test_fold_predictions_are_in_test_order_and_the_fold_must_exist():
    shuffled = make_confusion().sample(frac=1, random_state=0)
    assert plot.fold_predictions(shuffled, 1)["index"].tolist() == [0, 1, 2, 3]
    with pytest.raises(TunelabError, match="fold 5"):
        plot.fold_predictions(shuffled, 5)


def test_confusion_title_counts_models_and_images():
    assert plot.confusion_title("X", make_confusion()) == "X, 2 models × 4 test images"


@pytest.mark.parametrize("status, expected", [("completed", "FINISHED"), ("diverged", "FAILED")])
def test_run_status_keeps_a_diverged_run_failed(status, expected):
    assert plot.run_status({"status": status}) == expected


def test_status_tags_carry_the_reason_of_a_run_that_did_not_complete():
    assert plot.status_tags({"status": "completed", "test": {}}) == {"status": "completed"}
    assert plot.status_tags({"status": "diverged", "reason": "fold 0: loss diverged"}) == \
        {"status": "diverged", "status_reason": "fold 0: loss diverged"}
