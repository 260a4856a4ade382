"""The in-memory side of a session: the feature matrix, loaded once, and the round.

`SessionData` holds the standardised float32 matrix of the scope, the patch ids and
centres, and the precomputed row norms. `run_round` is one call: fit on the labelled
rows, score every patch, pick the next batch. Only labels travel per round.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from eominer.errors import SessionError
from eominer.learning.models import RelevanceModel, make_model, row_sq_norms
from eominer.learning.strategies import get_strategy


class SessionData:
    """Standardised features of a session's scope, in memory for the session's life.

    Standardisation uses the scope's own mean and standard deviation (constant columns
    keep scale 1). Non-finite values become 0 (the column mean) and are counted in
    `n_nonfinite`.
    """

    def __init__(self, patch_ids: np.ndarray, X: np.ndarray, names: list[str] | None = None,
                 centres: np.ndarray | None = None, standardise: bool = True) -> None:
        X = np.asarray(X, np.float32)
        if X.ndim != 2 or len(X) != len(patch_ids):
            raise SessionError(f"features {X.shape} do not match {len(patch_ids)} patch ids")
        if len(X) == 0:
            raise SessionError("the session's scope has no patches with features")
        self.patch_ids = np.asarray(patch_ids, np.int64)
        self.names = list(names or [f"f{i}" for i in range(X.shape[1])])
        bad = ~np.isfinite(X)
        self.n_nonfinite = int(bad.sum())
        if self.n_nonfinite:
            X = X.copy() if not X.flags.writeable else X
            X[bad] = np.nan
        if standardise:
            mean_fn, std_fn = (np.nanmean, np.nanstd) if self.n_nonfinite else (np.mean, np.std)
            self.mean = mean_fn(X, axis=0, dtype=np.float64).astype(np.float32)
            std = std_fn(X, axis=0, dtype=np.float64)
            std[~(std > 1e-12)] = 1.0
            self.std = std.astype(np.float32)
            X -= self.mean
            X /= self.std
        else:
            self.mean = np.zeros(X.shape[1], np.float32)
            self.std = np.ones(X.shape[1], np.float32)
        if self.n_nonfinite:
            X[~np.isfinite(X)] = 0.0
        self.X = np.ascontiguousarray(X)
        self.centres = centres
        self._sq: np.ndarray | None = None
        self._index = {int(p): i for i, p in enumerate(self.patch_ids.tolist())} \
            if len(self.patch_ids) < 200_000 else None

    @property
    def n(self) -> int:
        return len(self.patch_ids)

    @property
    def sq_norms(self) -> np.ndarray:
        if self._sq is None:
            self._sq = row_sq_norms(self.X)
        return self._sq

    def rows(self, patch_ids) -> np.ndarray:
        """Row indices of `patch_ids`; raises naming the patches outside the scope."""
        ids = np.asarray(patch_ids, np.int64).ravel()
        if self._index is not None:
            missing = [int(p) for p in ids if int(p) not in self._index]
            if not missing:
                return np.asarray([self._index[int(p)] for p in ids], np.int64)
        else:
            pos = np.searchsorted(self.patch_ids, ids)
            pos = np.minimum(pos, self.n - 1)
            ok = self.patch_ids[pos] == ids
            if ok.all():
                return pos.astype(np.int64)
            missing = ids[~ok].tolist()
        raise SessionError(
            f"patch(es) {missing[:5]} are not in this session's scope ({self.n} patches with "
            "features): label only patches the session shows"
        )


@dataclass(frozen=True, kw_only=True)
class RoundResult:
    """What one round gives the app: scores of every patch (aligned with
    `SessionData.patch_ids`), the next questions, the quality estimate and notes.
    Built with keywords only."""

    round: int
    scores: np.ndarray | None
    query_ids: np.ndarray
    quality: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    model_kind: str = ""
    strategy: str = ""
    n_labels: int = 0
    n_positive: int = 0
    n_negative: int = 0
    notes: tuple[str, ...] = ()
    model: RelevanceModel | None = None


def pseudo_negatives(data: SessionData, exclude: np.ndarray, n: int,
                     rng: np.random.Generator) -> np.ndarray:
    """Random unlabelled rows used as provisional negatives when the analyst has given
    only positives (positive-unlabelled learning: most patches are not the concept)."""
    taken = set(exclude.tolist())
    cand = rng.choice(data.n, size=min(data.n, n + len(taken) + 8), replace=False)
    return np.asarray([i for i in cand.tolist() if i not in taken][:n], np.int64)


def fit_score_pick(
    data: SessionData, rows: np.ndarray, y: np.ndarray, *, model_kind: str = "logistic",
    model_params: dict | None = None, strategy: str = "margin", n: int = 20,
    seed: int = 0, scores_out: np.ndarray | None = None, spatial_weight: float = 0.0,
) -> tuple[RelevanceModel, np.ndarray, np.ndarray, list[str]]:
    """One round: fit on the labelled `rows` (labels y in {-1, +1}), score all patches,
    pick `n` new ones. Returns (model, scores, picked row indices, notes)."""
    rows = np.asarray(rows, np.int64)
    y = np.asarray(y, np.int8)
    notes: list[str] = []
    rng = np.random.default_rng(seed)
    n_pos, n_neg = int((y == 1).sum()), int((y == -1).sum())
    if n_pos == 0:
        raise SessionError(
            "no positive label yet: a ranking needs at least one example of the concept; "
            "label a patch that shows it (or start from one example: find_similar)"
        )
    fit_rows, fit_y = rows, y
    if n_neg == 0 and not model_kind.startswith("qbe"):
        extra = pseudo_negatives(data, rows, max(10, 2 * n_pos), rng)
        fit_rows = np.concatenate([rows, extra])
        fit_y = np.concatenate([y, -np.ones(len(extra), np.int8)])
        notes.append(
            f"only positive labels: {len(extra)} random unlabelled patches served as "
            "provisional negatives; label some negatives for a better ranking"
        )
    model = make_model(model_kind, **(model_params or {}))
    model.fit(data.X[fit_rows], fit_y)
    needs_sq = model_kind in ("rbf_svm", "qbe_knn")
    scores = model.score(data.X, data.sq_norms if needs_sq else None, out=scores_out)
    pick = get_strategy(strategy)(
        scores, n, exclude=rows, X=data.X, rng=rng, centres=data.centres,
        spatial_weight=spatial_weight,
    )
    return model, scores, pick, notes


def timed_round(data: SessionData, rows, y, **kwargs):
    """`fit_score_pick` with its wall time in seconds appended."""
    t0 = time.perf_counter()
    out = fit_score_pick(data, rows, y, **kwargs)
    return (*out, time.perf_counter() - t0)
