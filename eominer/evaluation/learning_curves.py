"""Simulated analyst: learning curves of active vs. random labelling on real labels.

The simulated analyst answers each query with the true label. A run starts from
`n_start_pos` random positives and `n_start_neg` random negatives (the analyst's first
examples), then asks `batch` patches per round until `budget` labels. After each round
the ranking of all patches is scored by average precision (AP) and F1 at score 0.5.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from eominer.evaluation.patches import LabelledPatches
from eominer.evaluation.ranking import average_precision, f1_at_half
from eominer.learning.engine import SessionData, fit_score_pick


@dataclass(frozen=True)
class Curve:
    dataset: str
    strategy: str
    model: str
    labels: np.ndarray  # (rounds,)
    ap: np.ndarray      # (seeds, rounds)
    f1: np.ndarray      # (seeds, rounds)

    def labels_to(self, target: float) -> tuple[float | None, int]:
        """Mean labels needed to first reach AP >= target, over the seeds that reach it,
        and how many seeds reached it."""
        hits = []
        for row in self.ap:
            ok = np.flatnonzero(row >= target)
            if len(ok):
                hits.append(int(self.labels[ok[0]]))
        return (float(np.mean(hits)) if hits else None), len(hits)


def simulate(data: SessionData, y: np.ndarray, *, strategy: str, model: str = "logistic",
             seed: int = 0, budget: int = 200, batch: int = 10, n_start_pos: int = 2,
             n_start_neg: int = 2) -> tuple[list[int], list[float], list[float]]:
    """One simulated session; returns (labels used, AP, F1) after each round."""
    rng = np.random.default_rng(seed)
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y != 1)
    rows = np.concatenate([rng.choice(pos, n_start_pos, replace=False),
                           rng.choice(neg, n_start_neg, replace=False)])
    used, aps, f1s = [], [], []
    scores = np.empty(data.n, np.float32)
    while True:
        _, s, pick, _ = fit_score_pick(
            data, rows, y[rows], model_kind=model, strategy=strategy, n=batch,
            seed=seed * 1000 + len(rows), scores_out=scores,
        )
        used.append(len(rows))
        aps.append(average_precision(y, s))
        f1s.append(f1_at_half(y, s))
        if len(rows) >= budget:
            break
        rows = np.concatenate([rows, pick[: budget - len(rows)]])
    return used, aps, f1s


def learning_curves(ds: LabelledPatches, strategies: list[str], *, model: str = "logistic",
                    seeds: int = 5, budget: int = 200, batch: int = 10,
                    progress: Callable[[Curve], None] | None = None) -> list[Curve]:
    data = SessionData(np.arange(len(ds.X)), ds.X.copy())
    y = ds.y.astype(np.int8)
    out = []
    for strat in strategies:
        runs = [simulate(data, y, strategy=strat, model=model, seed=s, budget=budget,
                         batch=batch) for s in range(seeds)]
        out.append(Curve(ds.name, strat, model, np.asarray(runs[0][0]),
                         np.asarray([r[1] for r in runs]), np.asarray([r[2] for r in runs])))
        if progress:
            progress(out[-1])
    return out


def full_label_ap(ds: LabelledPatches, model: str = "logistic") -> float:
    """AP of the same model fitted on every label: the ceiling of the curves."""
    data = SessionData(np.arange(len(ds.X)), ds.X.copy())
    rows = np.arange(len(ds.X))
    _, s, _, _ = fit_score_pick(data, rows, ds.y.astype(np.int8), model_kind=model,
                                strategy="most_relevant", n=1)
    return average_precision(ds.y, s)
