"""Scores of a change map against reference labels (pure numpy + scikit-learn)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ChangeScores:
    """Binary-map scores and the probability map's area under the PR curve."""

    precision: float
    recall: float
    f1: float
    kappa: float
    auprc: float
    tp: int
    fp: int
    fn: int
    tn: int

    @property
    def n(self) -> int:
        return self.tp + self.fp + self.fn + self.tn


def confusion(pred: np.ndarray, truth: np.ndarray) -> tuple[int, int, int, int]:
    pred = pred.astype(bool)
    truth = truth.astype(bool)
    tp = int(np.count_nonzero(pred & truth))
    fp = int(np.count_nonzero(pred & ~truth))
    fn = int(np.count_nonzero(~pred & truth))
    tn = int(pred.size - tp - fp - fn)
    return tp, fp, fn, tn


def from_confusion(tp: int, fp: int, fn: int, tn: int, auprc: float) -> ChangeScores:
    n = tp + fp + fn + tn
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
    po = (tp + tn) / n if n else 0.0
    pe = ((tp + fp) * (tp + fn) + (fn + tn) * (fp + tn)) / (n * n) if n else 0.0
    kappa = (po - pe) / (1 - pe) if pe < 1 else 0.0
    return ChangeScores(precision, recall, f1, kappa, auprc, tp, fp, fn, tn)


def auprc(prob: np.ndarray, truth: np.ndarray) -> float:
    """Average precision (step-wise area under the precision-recall curve)."""
    from sklearn.metrics import average_precision_score

    truth = truth.astype(bool).ravel()
    if not truth.any():
        return float("nan")
    return float(average_precision_score(truth, prob.ravel()))


def score_maps(prob: np.ndarray, binary: np.ndarray, truth: np.ndarray) -> ChangeScores:
    """Scores over every labelled pixel. Pixels the map leaves as nodata (clouds, no
    data in one date) count as 'no change' with probability 0: masking is not free."""
    p = np.where(np.isfinite(prob), prob, 0.0)
    pred = binary == 1
    return from_confusion(*confusion(pred, truth), auprc(p, truth))
