"""Scores of a change map against reference labels (pure numpy + scikit-learn), and the
best F1 any threshold of its probability could give (`F1Hull`, `best_f1`): how much of a
low F1 is the threshold rule and how much the map's ranking itself."""

from __future__ import annotations

from collections.abc import Sequence
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
    f1_bound: float = float("nan")  # best F1 of any threshold, labels choosing it (best_f1)

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


def from_confusion(tp: int, fp: int, fn: int, tn: int, auprc: float,
                   f1_bound: float = float("nan")) -> ChangeScores:
    n = tp + fp + fn + tn
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
    po = (tp + tn) / n if n else 0.0
    pe = ((tp + fp) * (tp + fn) + (fn + tn) * (fp + tn)) / (n * n) if n else 0.0
    kappa = (po - pe) / (1 - pe) if pe < 1 else 0.0
    return ChangeScores(precision, recall, f1, kappa, auprc, tp, fp, fn, tn, f1_bound)


def auprc(prob: np.ndarray, truth: np.ndarray) -> float:
    """Average precision (step-wise area under the precision-recall curve)."""
    from sklearn.metrics import average_precision_score

    truth = truth.astype(bool).ravel()
    if not truth.any():
        return float("nan")
    return float(average_precision_score(truth, prob.ravel()))


def score_maps(prob: np.ndarray, binary: np.ndarray, truth: np.ndarray,
               hull: F1Hull | None = None) -> ChangeScores:
    """Scores over every labelled pixel. Pixels the map leaves as nodata (clouds, no
    data in one date) count as 'no change' with probability 0: masking is not free.
    `hull`: the map's `F1Hull.of(prob, truth)` when the caller has it already."""
    p = np.where(np.isfinite(prob), prob, 0.0)
    pred = binary == 1
    hull = hull if hull is not None else F1Hull.of(p, truth)
    return from_confusion(*confusion(pred, truth), auprc(p, truth), best_f1([hull])[0])


@dataclass(frozen=True)
class F1Hull:
    """What thresholding one probability map can give: for each distinct level v (pixels
    with p >= v called change), N = 2 TP and D = flagged + positives, so F1 = N / D.
    Only the upper concave hull of the (D, N) points is kept: a pooled F1 over several
    maps is maximised by one hull vertex per map (see `best_f1`), so a few hundred points
    stand for a map's millions of pixels."""

    d: np.ndarray  # int64, increasing
    n: np.ndarray  # int64
    level: np.ndarray  # float64: the threshold of each vertex (inf: nothing flagged)

    @classmethod
    def of(cls, prob: np.ndarray, truth: np.ndarray) -> F1Hull:
        p = np.nan_to_num(np.asarray(prob, np.float64).ravel(), nan=0.0)
        t = np.asarray(truth, bool).ravel()
        order = np.argsort(-p, kind="stable")
        ps, ts = p[order], t[order]
        ends = np.flatnonzero(np.r_[ps[1:] != ps[:-1], True])  # last pixel of each level
        tp = np.cumsum(ts, dtype=np.int64)[ends]
        flagged = ends.astype(np.int64) + 1
        positives = int(t.sum())
        d = np.r_[positives, flagged + positives]  # the first point: nothing flagged
        n = np.r_[0, 2 * tp]
        # a level that adds no changed pixel moves right at the same height: below the
        # hull, unless it is the last point. Dropping those first leaves the hull's loop
        # about as many points as there are changed pixels, not as pixels.
        rises = np.flatnonzero(np.r_[True, n[1:] > n[:-1]])
        cand = rises if rises[-1] == len(d) - 1 else np.r_[rises, len(d) - 1]
        keep = cand[_upper_hull(d[cand], n[cand])]
        return cls(d[keep], n[keep], np.r_[np.inf, ps[ends]][keep])


def _upper_hull(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Indices of the upper concave hull of points with increasing x (monotone chain)."""
    x, y = x.tolist(), y.tolist()  # Python ints: exact products, and faster than numpy scalars
    hull: list[int] = []
    for i in range(len(x)):
        while len(hull) >= 2:
            a, b = hull[-2], hull[-1]
            # b lies on or below the segment a-i: drop it
            if (y[b] - y[a]) * (x[i] - x[a]) <= (y[i] - y[a]) * (x[b] - x[a]):
                hull.pop()
            else:
                break
        hull.append(i)
    return np.array(hull, dtype=np.int64)


def best_f1(hulls: Sequence[F1Hull]) -> tuple[float, list[float]]:
    """The highest pooled F1 that any choice of one threshold per map gives, and those
    thresholds (labels choose them, so it bounds every threshold rule, label-free or not).
    Pooled F1 = sum N / sum D is a ratio of sums: Dinkelbach's iteration maximises it
    exactly, each step choosing per map the vertex with the largest N - F * D."""
    if not hulls or all(h.d[0] == 0 for h in hulls):
        return float("nan"), [float("inf")] * len(hulls)  # no change anywhere: undefined
    f = 0.0
    while True:
        picks = [int(np.argmax(h.n - f * h.d)) for h in hulls]
        num = sum(int(h.n[i]) for h, i in zip(hulls, picks, strict=True))
        den = sum(int(h.d[i]) for h, i in zip(hulls, picks, strict=True))
        g = num / den
        if g <= f + 1e-12:  # no choice beats F: F is the maximum
            return f, [float(h.level[i]) for h, i in zip(hulls, picks, strict=True)]
        f = g
