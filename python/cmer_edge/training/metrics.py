"""Classification metrics in numpy: the paper's weighted F1, per-class F1, UAR, confusion matrix."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Scores:
    labels: tuple[str, ...]
    confusion: np.ndarray  # [true, pred] counts
    weighted_f1: float     # support-weighted mean of per-class F1 (MELD's metric), in %
    macro_f1: float
    accuracy: float
    uar: float             # unweighted average recall (EmoDB's metric), in %
    per_class_f1: dict[str, float]
    support: dict[str, int]

    def to_dict(self) -> dict:
        return {
            "weighted_f1": self.weighted_f1, "macro_f1": self.macro_f1, "accuracy": self.accuracy,
            "uar": self.uar, "per_class_f1": self.per_class_f1, "support": self.support,
            "labels": list(self.labels), "confusion": self.confusion.tolist(),
        }


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    y_true, y_pred = np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true {y_true.shape} and y_pred {y_pred.shape} differ in shape")
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        if y.size and (y.min() < 0 or y.max() >= num_classes):
            raise ValueError(f"{name} holds labels outside 0..{num_classes - 1}: {sorted(set(y.tolist()))[:10]}")
    cm = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    return cm


def score(y_true, y_pred, labels: tuple[str, ...] | list[str]) -> Scores:
    """All metrics in percent. Classes absent from both truth and predictions get F1 0 and weight 0."""
    labels = tuple(labels)
    cm = confusion_matrix(y_true, y_pred, len(labels))
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1).astype(np.float64)
    predicted = cm.sum(axis=0).astype(np.float64)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    total = support.sum()
    present = support > 0
    return Scores(
        labels=labels,
        confusion=cm,
        weighted_f1=float(100 * (f1 * support).sum() / total) if total else 0.0,
        macro_f1=float(100 * f1[present].mean()) if present.any() else 0.0,
        accuracy=float(100 * tp.sum() / total) if total else 0.0,
        uar=float(100 * recall[present].mean()) if present.any() else 0.0,
        per_class_f1={name: float(100 * v) for name, v in zip(labels, f1)},
        support={name: int(n) for name, n in zip(labels, support)},
    )
