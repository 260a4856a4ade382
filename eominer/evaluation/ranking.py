"""Scores of a ranking against true labels y in {-1, +1}."""

from __future__ import annotations

import numpy as np


def average_precision(y: np.ndarray, scores: np.ndarray) -> float:
    from sklearn.metrics import average_precision_score

    return float(average_precision_score(y == 1, scores))


def f1_at_half(y: np.ndarray, scores: np.ndarray) -> float:
    pred = scores >= 0.5
    tp = int(np.count_nonzero(pred & (y == 1)))
    fp = int(np.count_nonzero(pred & (y != 1)))
    fn = int(np.count_nonzero(~pred & (y == 1)))
    return 2 * tp / max(2 * tp + fp + fn, 1)
