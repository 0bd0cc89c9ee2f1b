"""Our confusion-matrix metrics against sklearn.metrics as the oracle."""

import numpy as np
import pytest
from sklearn import metrics as sk

from src.core import metrics


@pytest.fixture
def labels():
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 10, 500)
    y_pred = np.where(rng.random(500) < 0.7, y_true, rng.integers(0, 10, 500))
    y_pred[y_pred == 9] = 8  # class 9 is never predicted: the F1 edge case
    return y_true, y_pred


def test_confusion_matches_sklearn(labels):
    y_true, y_pred = labels
    np.testing.assert_array_equal(metrics.confusion(y_true, y_pred, 10),
                                  sk.confusion_matrix(y_true, y_pred, labels=range(10)))


def test_accuracy_recall_and_macro_f1_match_sklearn(labels):
    y_true, y_pred = labels
    cm = metrics.confusion(y_true, y_pred, 10)
    assert metrics.accuracy(cm) == pytest.approx(sk.accuracy_score(y_true, y_pred))
    np.testing.assert_allclose(metrics.per_class_accuracy(cm),
                               sk.recall_score(y_true, y_pred, average=None, labels=range(10)))
    assert metrics.macro_f1(cm) == pytest.approx(
        sk.f1_score(y_true, y_pred, average="macro", labels=range(10), zero_division=0))


def test_cross_entropy_matches_log_loss():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(50, 10))
    probabilities = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    y = rng.integers(0, 10, 50)
    assert metrics.cross_entropy(probabilities, y) == pytest.approx(
        sk.log_loss(y, probabilities, labels=range(10)))


def test_selection_metrics_of_each_fold_model_match_sklearn():
    from src import evaluate  # torch: only this test needs it
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(3, 200, 10))  # (F, N, C): 3 fold models, one selection set
    probabilities = np.exp(logits) / np.exp(logits).sum(2, keepdims=True)
    y = rng.integers(0, 10, 200)
    per_fold = evaluate.selection_metrics(probabilities, y)
    np.testing.assert_allclose(per_fold["selection_accuracy"],
                               [sk.accuracy_score(y, p.argmax(1)) for p in probabilities])
    np.testing.assert_allclose(per_fold["selection_loss"],
                               [sk.log_loss(y, p, labels=range(10)) for p in probabilities])
    summary = evaluate.selection_summary(per_fold, 200)
    assert summary["size"] == 200 and summary["accuracy"]["n"] == 3
    assert summary["accuracy"]["mean"] == pytest.approx(per_fold["selection_accuracy"].mean())
    assert summary["loss"]["std"] == pytest.approx(per_fold["selection_loss"].std(ddof=1))
