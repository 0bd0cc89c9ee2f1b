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
