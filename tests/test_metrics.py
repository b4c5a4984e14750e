"""Our numpy metrics agree with scikit-learn and refuse out-of-range labels."""

from __future__ import annotations

import numpy as np
import pytest

from helpers.ci import need_module

from cmer_edge.model.config import EMOTIONS
from cmer_edge.training.metrics import score

sklearn_metrics = need_module("sklearn.metrics")


@pytest.mark.parametrize("seed", range(4))
def test_matches_sklearn(seed):
    rng = np.random.default_rng(seed)
    y_true = rng.choice(7, size=300, p=[0.45, 0.12, 0.03, 0.07, 0.16, 0.03, 0.14])
    y_pred = np.where(rng.random(300) < 0.6, y_true, rng.integers(0, 7, 300))
    s = score(y_true, y_pred, EMOTIONS)
    labels = list(range(7))
    assert s.weighted_f1 == pytest.approx(100 * sklearn_metrics.f1_score(y_true, y_pred, average="weighted",
                                                                          labels=labels, zero_division=0))
    assert s.uar == pytest.approx(100 * sklearn_metrics.balanced_accuracy_score(y_true, y_pred))
    assert s.accuracy == pytest.approx(100 * sklearn_metrics.accuracy_score(y_true, y_pred))
    per_class = sklearn_metrics.f1_score(y_true, y_pred, average=None, labels=labels, zero_division=0)
    assert list(s.per_class_f1.values()) == pytest.approx(list(100 * per_class))
    assert (s.confusion == sklearn_metrics.confusion_matrix(y_true, y_pred, labels=labels)).all()


def test_out_of_range_labels_are_refused():
    with pytest.raises(ValueError, match="outside 0..6"):
        score([0, 7], [0, 1], EMOTIONS)
