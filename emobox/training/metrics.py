"""Metrics of the EmoBox protocol, computed with scikit-learn.

UA (unweighted average recall) = mean recall over the classes present in the gold labels
(``balanced_accuracy_score``); WA (weighted accuracy) = plain accuracy; F1 = macro-F1 over the
classes present in gold or predictions (scikit-learn's default). UA drives model selection.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np


def unweighted_accuracy(y_true, y_pred) -> float:
    from sklearn.metrics import balanced_accuracy_score

    with warnings.catch_warnings():  # predictions of classes absent from gold are expected
        warnings.simplefilter("ignore", UserWarning)
        return float(balanced_accuracy_score(y_true, y_pred))


def weighted_accuracy(y_true, y_pred) -> float:
    from sklearn.metrics import accuracy_score

    return float(accuracy_score(y_true, y_pred))


def macro_f1(y_true, y_pred) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(y_true, y_pred, average="macro", zero_division=0))


@dataclass(frozen=True)
class Metric:
    name: str
    higher_is_better: bool
    fn: Callable[[Sequence[int], Sequence[int]], float]


METRICS = {
    "ua": Metric("ua", True, unweighted_accuracy),
    "wa": Metric("wa", True, weighted_accuracy),
    "f1": Metric("f1", True, macro_f1),
}
PRIMARY = "ua"


def scores(y_true: Sequence[int], y_pred: Sequence[int], n_classes: int) -> dict:
    """UA, WA, macro-F1, confusion matrix (rows = gold) and per-class recall (None: no support)."""
    from sklearn.metrics import confusion_matrix

    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    if len(y_true) == 0:
        raise ValueError("cannot score an empty set")
    cm = confusion_matrix(y_true, y_pred, labels=list(range(n_classes)))
    support = cm.sum(1)
    recall = [float(cm[i, i] / support[i]) if support[i] else None for i in range(n_classes)]
    out = {name: m.fn(y_true, y_pred) for name, m in METRICS.items()}
    out["confusion"] = cm.tolist()
    out["per_class_recall"] = recall
    return out


def scores_from_confusion(cm) -> dict:
    """UA, WA and macro-F1 of a confusion matrix (rows = gold), as :func:`scores` computes them
    from the predictions it counts: UA over the classes with support, F1 over the classes in
    gold or predictions."""
    cm = np.asarray(cm, dtype=np.float64)
    support, predicted, hits = cm.sum(1), cm.sum(0), np.diag(cm)
    present = support > 0
    seen = present | (predicted > 0)
    f1 = 2 * hits[seen] / (support[seen] + predicted[seen])
    return {"ua": float((hits[present] / support[present]).mean()),
            "wa": float(hits.sum() / cm.sum()), "f1": float(f1.mean())}


def ua_from_confusion(cm: np.ndarray) -> float:
    """UA from a confusion matrix (rows = gold), over classes with support."""
    cm = np.asarray(cm, dtype=np.float64)
    support = cm.sum(1)
    present = support > 0
    return float((np.diag(cm)[present] / support[present]).mean())


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and population standard deviation over folds (0 for one fold)."""
    arr = np.asarray(values, dtype=np.float64)
    return float(arr.mean()), float(arr.std()) if len(arr) > 1 else 0.0
