"""Scores of a change map against reference labels (pure numpy), and the
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


@dataclass(frozen=True)
class PRPoints:
    """A probability map against its labels at every level where a changed pixel lies
    (descending): pixels flagged (p >= level) and changed pixels among them. Levels that
    add only unchanged pixels change neither recall nor a useful threshold, so the PR
    curve and the F1 hull need only these, as many as there are changed pixels at most."""

    level: np.ndarray  # the map's float dtype, descending
    flagged: np.ndarray  # int64
    tp: np.ndarray  # int64, increasing to `positives`
    pixels: int
    lowest: float  # the map's lowest level (everything flagged)

    @property
    def positives(self) -> int:
        return int(self.tp[-1]) if self.tp.size else 0

    @classmethod
    def of(cls, prob: np.ndarray, truth: np.ndarray) -> PRPoints:
        # one copy of the map in its own dtype, sorted in place: a labelled full tile
        # (120 M px of float32) needs ~0.5 GB here, not the ~4 GB of a float64 argsort
        p = np.asarray(prob).ravel()
        p = np.nan_to_num(p if p.dtype.kind == "f" else p.astype(np.float64), nan=0.0)
        t = np.asarray(truth, bool).ravel()
        level, count = np.unique(p[t], return_counts=True)
        p.sort()
        level = level[::-1]
        flagged = p.size - np.searchsorted(p, level, side="left").astype(np.int64)
        lowest = float(p[0]) if p.size else 0.0
        return cls(level, flagged, np.cumsum(count[::-1], dtype=np.int64), p.size, lowest)

    def average_precision(self) -> float:
        """Step-wise area under the PR curve (scikit-learn's average_precision_score):
        each changed pixel's level contributes its recall step times its precision."""
        if not self.positives:
            return float("nan")
        step = np.diff(self.tp, prepend=0)
        return float(np.sum(step * (self.tp / self.flagged)) / self.positives)


def auprc(prob: np.ndarray, truth: np.ndarray) -> float:
    """Average precision (step-wise area under the precision-recall curve); NaN with no
    changed pixel."""
    return PRPoints.of(prob, truth).average_precision()


def score_maps(prob: np.ndarray, binary: np.ndarray, truth: np.ndarray,
               points: PRPoints | None = None) -> ChangeScores:
    """Scores over every labelled pixel. Pixels the map leaves as nodata (clouds, no
    data in one date) count as 'no change' with probability 0: masking is not free.
    `points`: the map's `PRPoints.of(prob, truth)` when the caller has it already."""
    pts = points if points is not None else PRPoints.of(np.where(np.isfinite(prob), prob, 0.0), truth)
    return from_confusion(*confusion(binary == 1, truth), pts.average_precision(),
                          best_f1([F1Hull.from_points(pts)])[0])


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
        return cls.from_points(PRPoints.of(prob, truth))

    @classmethod
    def from_points(cls, pts: PRPoints) -> F1Hull:
        positives = pts.positives
        # nothing flagged first; then each level of a changed pixel (a level that adds only
        # unchanged pixels moves right at the same height: below the hull); then
        # everything flagged, the last point, when the lowest level holds no changed pixel
        last = pts.level.size == 0 or pts.lowest < pts.level[-1]
        d = np.r_[0, pts.flagged, [pts.pixels] if last else []].astype(np.int64) + positives
        n = 2 * np.r_[0, pts.tp, [positives] if last else []].astype(np.int64)
        level = np.r_[np.inf, pts.level.astype(np.float64), [pts.lowest] if last else []]
        keep = _upper_hull(d, n)
        return cls(d[keep], n[keep], level[keep])


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
