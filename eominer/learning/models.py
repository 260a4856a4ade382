"""Relevance models: fit on the few labelled rows, score every patch in float32 numpy.

scikit-learn fits (it is fast on a few hundred rows); scoring 1M patches is our own
code (a GEMV against the weights, or chunked GEMMs against support vectors), never
`predict_proba`, which takes seconds there. X is a float32 ndarray or a `CompactMatrix`
(int8 codes: `compact.py`); both slice into float32 rows, and the GEMV of the compact form
is a fused compiled loop over the codes (`int8_kernels.py`).

Scores are in [0, 1]; 0.5 is the decision boundary. Calibration, per kind:
- logistic: sigmoid(decision), the model's own probability;
- linear_svm, rbf_svm: sigmoid(2 * decision), a fixed Platt map (A=-2, B=0) so that the
  margins (decision +-1) map to 0.88 / 0.12; a fitted Platt map needs more labels than
  a session has;
- qbe_mean: the mean-of-positives-minus-negatives direction (Earth Index, GeoVibes);
  the decision is scaled so the labelled positive/negative means sit at +-1, then as SVMs;
- qbe_knn: (d_neg - d_pos) / (d_neg + d_pos) with d the squared distance to the nearest
  labelled positive / negative (in [-1, 1]), score = (1 + decision) / 2;
- random_forest: the share of trees voting positive (scikit-learn `predict_proba` in
  chunks: trees cannot be scored by a matrix product; it is the slow model, ~seconds/1M).
Fitting uses balanced class weights: sessions have few positives.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np

from eominer.errors import SessionError
from eominer.learning.compact import CompactMatrix, matvec
from eominer.learning.strategies import smallest

if TYPE_CHECKING:
    from threadpoolctl import threadpool_limits

MODEL_KINDS = ("logistic", "linear_svm", "rbf_svm", "random_forest", "qbe_mean", "qbe_knn")
# `auto` (the default of sessions): the RBF SVM, which ranks best with the few dozen labels
# of a session (docs/learning.md, "Which model by default"), while a round of it keeps the
# app's pace (DESIGN.md: <= 300 ms at 1M patches x 128); on larger scopes logistic
# regression, whose round is a few tens of ms at 1M and has the fused 10M-patch path
AUTO_MODEL = "auto"
RBF_AUTO_MAX_PATCHES = 1_000_000
CHUNK_ROWS = 4096  # rows per GEMM chunk: keeps the kernel block in cache, memory bounded


def _one_blas_thread() -> threadpool_limits:
    """Chunked small GEMMs run faster on one BLAS thread (threads scale poorly here)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(1, user_api="blas")


def _cores() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
               else os.cpu_count() or 1)


def sigmoid(z: np.ndarray, scale: float = 1.0, out: np.ndarray | None = None) -> np.ndarray:
    """1 / (1 + exp(-scale * z)) in float32, in place when `out` is given."""
    out = np.multiply(z, np.float32(-scale), out=out, dtype=np.float32)
    np.clip(out, -80.0, 80.0, out=out)
    np.exp(out, out=out)
    out += np.float32(1.0)
    np.reciprocal(out, out=out)
    return out


def _affine(X: np.ndarray | CompactMatrix, w: np.ndarray, b: np.float32,
            out: np.ndarray | None) -> np.ndarray:
    """X @ w + b in float32; on a CompactMatrix b joins the offset term (one rounding, as
    the fused `score_margin` computes it)."""
    if isinstance(X, CompactMatrix):
        return X.matvec(w, out=out, bias=float(b))
    out = matvec(X, w, out=out)
    out += b
    return out


def row_sq_norms(X: np.ndarray | CompactMatrix) -> np.ndarray:
    """||x||^2 per row, float32 (computed once per session for RBF / kNN)."""
    if isinstance(X, CompactMatrix):  # one fused pass over the codes
        return X.sq_norms()
    out = np.empty(len(X), np.float32)
    for s in range(0, len(X), 65536):
        blk = X[s:s + 65536]
        out[s:s + 65536] = np.einsum("ij,ij->i", blk, blk)
    return out


def _check_xy(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    X = np.asarray(X, np.float32)
    y = np.asarray(y)
    if X.ndim != 2 or len(X) != len(y):
        raise SessionError(f"labelled rows {X.shape} and labels {y.shape} do not match")
    if not np.isin(y, (-1, 1)).all():
        raise SessionError(f"labels must be +1 or -1, got {sorted(set(y.tolist()))}")
    if len(np.unique(y)) < 2:
        raise SessionError("a model needs at least one positive and one negative label")
    return X, y.astype(np.int8)


class RelevanceModel:
    """Base: `fit(X, y)` with y in {-1, +1}; `decision(X)`; `score(X)` in [0, 1]."""

    kind = "base"
    # slope of the sigmoid that maps a decision value to a score in [0, 1]
    calibration = 1.0

    def get_params(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if not k.endswith("_")}

    def decision(self, X: np.ndarray | CompactMatrix, sq_norms: np.ndarray | None = None,
                 out: np.ndarray | None = None) -> np.ndarray:
        raise SessionError(f"{type(self).__name__} cannot score")

    def score(self, X: np.ndarray | CompactMatrix, sq_norms: np.ndarray | None = None,
              out: np.ndarray | None = None) -> np.ndarray:
        d = self.decision(X, sq_norms, out=out)
        return sigmoid(d, self.calibration, out=d)

    def linear_form(self) -> tuple[np.ndarray, float, float] | None:
        """(w, b, slope) when score(X) is sigmoid(slope * (X @ w + b)), else None: such a
        model can be scored and picked from in one fused pass (`CompactMatrix.score_margin`)."""
        return None


class LinearModel(RelevanceModel):
    """Logistic regression or linear SVM; scoring is one float32 GEMV, X @ w + b."""

    def __init__(self, kind: str = "logistic", C: float = 1.0, random_state: int = 0) -> None:
        self.kind = kind
        self.C = C
        self.random_state = random_state

    def fit(self, X: np.ndarray, y: np.ndarray) -> LinearModel:
        from sklearn.linear_model import LogisticRegression
        from sklearn.svm import LinearSVC

        X, y = _check_xy(X, y)
        if self.kind == "logistic":
            m = LogisticRegression(C=self.C, class_weight="balanced", solver="liblinear")
        elif self.kind == "linear_svm":
            m = LinearSVC(C=self.C, class_weight="balanced", random_state=self.random_state,
                          max_iter=5000)
        else:
            raise SessionError(f"unknown linear model {self.kind!r}: logistic or linear_svm")
        m.fit(X, y)
        self.coef_ = np.ascontiguousarray(m.coef_.ravel(), dtype=np.float32)
        self.intercept_ = np.float32(m.intercept_[0])
        return self

    def decision(self, X: np.ndarray | CompactMatrix, sq_norms: np.ndarray | None = None,
                 out: np.ndarray | None = None) -> np.ndarray:
        return _affine(X, self.coef_, self.intercept_, out)

    def linear_form(self) -> tuple[np.ndarray, float, float]:
        return self.coef_, float(self.intercept_), self.calibration

    @property
    def calibration(self) -> float:  # type: ignore[override]
        # a logistic decision is already a log-odds; an SVM margin of 1 maps to ~0.88
        return 1.0 if self.kind == "logistic" else 2.0


class RBFSVM(RelevanceModel):
    """RBF SVM; decision = exp(-gamma ||x - sv||^2) @ dual_coef + b, in row chunks."""

    kind = "rbf_svm"
    calibration = 2.0

    def __init__(self, C: float = 1.0, gamma: float | None = None) -> None:
        self.C = C
        self.gamma = gamma

    def fit(self, X: np.ndarray, y: np.ndarray) -> RBFSVM:
        from sklearn.svm import SVC

        X, y = _check_xy(X, y)
        # gamma='scale' of scikit-learn, fixed here so scoring uses the same number
        gamma = self.gamma or 1.0 / (X.shape[1] * max(float(X.var()), 1e-6))
        m = SVC(C=self.C, kernel="rbf", gamma=gamma, class_weight="balanced")
        m.fit(X, y)
        self.gamma_ = np.float32(gamma)
        self.support_vectors_ = np.ascontiguousarray(m.support_vectors_, dtype=np.float32)
        self.dual_coef_ = np.ascontiguousarray(m.dual_coef_.ravel(), dtype=np.float32)
        self.intercept_ = np.float32(m.intercept_[0])
        self.sv_sq_ = row_sq_norms(self.support_vectors_)
        return self

    def decision(self, X: np.ndarray | CompactMatrix, sq_norms: np.ndarray | None = None,
                 out: np.ndarray | None = None) -> np.ndarray:
        # exp(-g |x - sv|^2) = exp(-g |x|^2) * exp(2g x.sv - g |sv|^2): the row factor is
        # applied after the GEMV, so each chunk costs one GEMM, one add, one exp.
        # 2g x.sv - g|sv|^2 <= g|x|^2, so exp cannot overflow while g|x|^2 < 80.
        n = len(X)
        out = np.empty(n, np.float32) if out is None else out
        sq = row_sq_norms(X) if sq_norms is None else sq_norms
        g = self.gamma_
        sv2 = np.ascontiguousarray(self.support_vectors_.T * (np.float32(2.0) * g))
        bias = (-g * self.sv_sq_).astype(np.float32)

        def rows(s: int) -> None:
            e = min(n, s + CHUNK_ROWS)
            K = X[s:e] @ sv2
            K += bias
            row = -g * sq[s:e]
            if float(-row.min()) < 80.0:
                np.exp(K, out=K)
                out[s:e] = (K @ self.dual_coef_) * np.exp(row)
            else:  # huge-norm rows: the direct form, clipped
                K += row[:, None]
                np.minimum(K, 0.0, out=K)
                np.exp(K, out=K)
                out[s:e] = K @ self.dual_coef_

        # numpy releases the GIL in GEMM and exp: one thread per core, one BLAS thread each
        with _one_blas_thread(), ThreadPoolExecutor(_cores()) as pool:
            list(pool.map(rows, range(0, n, CHUNK_ROWS)))
        out += self.intercept_
        return out


class RandomForest(RelevanceModel):
    """Random forest (scikit-learn); the share of positive votes is the score."""

    kind = "random_forest"

    def __init__(self, n_estimators: int = 50, max_depth: int | None = 8,
                 random_state: int = 0) -> None:
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.random_state = random_state

    def fit(self, X: np.ndarray, y: np.ndarray) -> RandomForest:
        from sklearn.ensemble import RandomForestClassifier

        X, y = _check_xy(X, y)
        self.model_ = RandomForestClassifier(
            n_estimators=self.n_estimators, max_depth=self.max_depth,
            class_weight="balanced", random_state=self.random_state, n_jobs=1,
        ).fit(X, y)
        self.pos_col_ = int(np.flatnonzero(self.model_.classes_ == 1)[0])
        return self

    def score(self, X: np.ndarray | CompactMatrix, sq_norms: np.ndarray | None = None,
              out: np.ndarray | None = None) -> np.ndarray:
        out = np.empty(len(X), np.float32) if out is None else out
        for s in range(0, len(X), 65536):
            out[s:s + 65536] = self.model_.predict_proba(X[s:s + 65536])[:, self.pos_col_]
        return out

    def decision(self, X: np.ndarray | CompactMatrix, sq_norms: np.ndarray | None = None,
                 out: np.ndarray | None = None) -> np.ndarray:
        p = self.score(X, sq_norms, out)
        p *= 2.0
        p -= 1.0
        return p


class QueryByExample(RelevanceModel):
    """Query by example: `mean` (direction of positives minus negatives) or `knn`
    (nearest labelled example). Works with positives only: the scope mean (0 after
    standardisation) stands in for the negatives."""

    calibration = 2.0

    def __init__(self, mode: str = "mean") -> None:
        self.mode = mode

    @property
    def kind(self) -> str:  # type: ignore[override]
        return f"qbe_{self.mode}"

    def fit(self, X: np.ndarray, y: np.ndarray) -> QueryByExample:
        X = np.asarray(X, np.float32)
        y = np.asarray(y)
        if X.ndim != 2 or len(X) != len(y):
            raise SessionError(f"labelled rows {X.shape} and labels {y.shape} do not match")
        if not np.isin(y, (-1, 1)).all():
            raise SessionError(f"labels must be +1 or -1, got {sorted(set(y.tolist()))}")
        if not (y == 1).any():
            raise SessionError("query by example needs at least one positive example")
        pos, neg = X[y == 1], X[y == -1]
        if self.mode == "mean":
            neg_mean = neg.mean(0) if len(neg) else np.zeros(X.shape[1], np.float32)
            w = pos.mean(0) - neg_mean
            hi, lo = float(pos.mean(0) @ w), float(neg_mean @ w)
            half = max((hi - lo) / 2.0, 1e-6)
            self.coef_ = (w / half).astype(np.float32)
            self.intercept_ = np.float32(-(hi + lo) / 2.0 / half)
        elif self.mode == "knn":
            self.pos_ = np.ascontiguousarray(pos)
            self.neg_ = np.ascontiguousarray(neg)
            # no negatives: a typical squared distance between two standardised patches
            self.default_dneg_ = np.float32(2.0 * X.shape[1])
        else:
            raise SessionError(f"unknown query-by-example mode {self.mode!r}: mean or knn")
        return self

    def _min_sq_dist(self, X: np.ndarray | CompactMatrix, sq: np.ndarray, ref: np.ndarray,
                     out: np.ndarray) -> np.ndarray:
        ref_t = np.ascontiguousarray(ref.T * np.float32(-2.0))
        ref_sq = row_sq_norms(ref)
        with _one_blas_thread():
            for s in range(0, len(X), CHUNK_ROWS):
                G = X[s:s + CHUNK_ROWS] @ ref_t
                G += ref_sq
                out[s:s + CHUNK_ROWS] = G.min(axis=1)
        out += sq
        np.maximum(out, 0.0, out=out)
        return out

    def linear_form(self) -> tuple[np.ndarray, float, float] | None:
        if self.mode != "mean":
            return None
        return self.coef_, float(self.intercept_), self.calibration

    def decision(self, X: np.ndarray | CompactMatrix, sq_norms: np.ndarray | None = None,
                 out: np.ndarray | None = None) -> np.ndarray:
        if self.mode == "mean":
            return _affine(X, self.coef_, self.intercept_, out)
        sq = row_sq_norms(X) if sq_norms is None else sq_norms
        out = np.empty(len(X), np.float32) if out is None else out
        d_pos = self._min_sq_dist(X, sq, self.pos_, out)
        if len(self.neg_):
            d_neg = self._min_sq_dist(X, sq, self.neg_, np.empty(len(X), np.float32))
        else:
            d_neg = np.full(len(X), self.default_dneg_, np.float32)
        total = d_neg + d_pos
        total += np.float32(1e-6)
        np.subtract(d_neg, d_pos, out=out)
        out /= total
        return out

    def score(self, X: np.ndarray | CompactMatrix, sq_norms: np.ndarray | None = None,
              out: np.ndarray | None = None) -> np.ndarray:
        if self.mode == "mean":
            return super().score(X, sq_norms, out)
        d = self.decision(X, sq_norms, out)
        d += 1.0
        d *= 0.5
        return d


def resolve_model(kind: str, n_patches: int) -> str:
    """The model kind a session of `n_patches` gets for `kind` (`auto` resolved)."""
    if kind == AUTO_MODEL:
        return "rbf_svm" if n_patches <= RBF_AUTO_MAX_PATCHES else "logistic"
    if kind not in MODEL_KINDS:
        raise SessionError(f"unknown model kind {kind!r}: expected {AUTO_MODEL} or one of "
                           f"{', '.join(MODEL_KINDS)}")
    return kind


# the library each kind fits with, imported on its first fit (1.5-2 s of scikit-learn)
_BACKENDS = {"logistic": ("sklearn.linear_model", "sklearn.svm"),
             "linear_svm": ("sklearn.linear_model", "sklearn.svm"),
             "rbf_svm": ("sklearn.svm",), "random_forest": ("sklearn.ensemble",)}


def import_backend(kind: str) -> None:
    """Import what `kind` fits with now, so that a round's timing is the round's: a CLI
    process's first round would otherwise count 1.5-2 s of imports."""
    import importlib

    for module in _BACKENDS.get(kind, ()):
        importlib.import_module(module)


def make_model(kind: str, **params: Any) -> RelevanceModel:
    """A model by name (MODEL_KINDS), with its parameters."""
    if kind in ("logistic", "linear_svm"):
        return LinearModel(kind, **params)
    if kind == "rbf_svm":
        return RBFSVM(**params)
    if kind == "random_forest":
        return RandomForest(**params)
    if kind in ("qbe_mean", "qbe_knn"):
        return QueryByExample(kind[4:], **params)
    raise SessionError(f"unknown model kind {kind!r}: expected one of {', '.join(MODEL_KINDS)}")


def similar_to(X: np.ndarray, query: np.ndarray, k: int,
               sq_norms: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The `k` rows nearest to `query`: one GEMV and a partial sort (no full sort).

    With `sq_norms` (||x||^2, precomputed per session) the order is by Euclidean distance
    (2 x.q - ||x||^2 ranks as -||x - q||^2); without, by dot product. Returns (indices,
    best first; similarities, larger is nearer)."""
    q = np.asarray(query, np.float32)
    if isinstance(X, CompactMatrix):  # one fused pass, a running top k per thread
        return X.nearest(q, k, sq_norms)
    sims = matvec(X, q)
    if sq_norms is not None:
        sims *= np.float32(2.0)
        sims -= sq_norms
        sims -= np.float32(q @ q)
    top = smallest(-sims, k)  # nearest first
    return top, sims[top]
