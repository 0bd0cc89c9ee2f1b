"""Classification metrics as pure functions of label arrays (checked against sklearn in tests).

Everything derives from the confusion matrix, so the numbers in metrics.json, the confusion plot
and the per-class bars cannot disagree.
"""

from __future__ import annotations

import numpy as np


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """(n_classes, n_classes) counts; rows = true class, columns = predicted class."""
    flat = np.asarray(y_true, dtype=np.int64) * n_classes + np.asarray(y_pred, dtype=np.int64)
    return np.bincount(flat, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def accuracy(cm: np.ndarray) -> float:
    return float(np.trace(cm) / cm.sum())


def per_class_accuracy(cm: np.ndarray) -> np.ndarray:
    """Recall of each class (the share of its images classified correctly); nan if absent."""
    support = cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.diag(cm) / support


def macro_f1(cm: np.ndarray) -> float:
    """Unweighted mean of per-class F1; a class never predicted nor present scores 0, as sklearn."""
    tp = np.diag(cm).astype(float)
    denominator = cm.sum(axis=0) + cm.sum(axis=1)  # 2TP + FP + FN
    f1 = np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0)
    return float(f1.mean())


def cross_entropy(probabilities: np.ndarray, y_true: np.ndarray) -> float:
    """Mean negative log-likelihood of the true class; probabilities are (N, n_classes)."""
    picked = probabilities[np.arange(len(y_true)), y_true]
    return float(-np.log(np.clip(picked, 1e-12, 1.0)).mean())
