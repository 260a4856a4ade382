"""S1/S2 fusion classifiers with a fall-back on S1 when the optical part is unusable.

Both take X = [S2 descriptors | S1 descriptors] (the first `n_s2` columns are S2), so they
fit in any scikit-learn pipeline, and `predict_proba(X, s2_usable=...)` where `s2_usable`
(bool per row, from eominer.fusion.cloud) marks cloudy optical patches: those rows get the
S1-only model's scores, never scores computed from cloud reflectance.

- `FeatureFusion`: one model on the weighted concatenation (feature-level fusion).
- `DecisionFusion`: one model per sensor, scores combined per label (decision-level):
  'product' (product of probabilities, renormalised: the naive-Bayes rule for two
  conditionally independent sensors), 'mean', or 'stack' (a logistic stacker per label
  trained on out-of-fold per-sensor scores).
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from eominer.errors import FeatureError, ModelNotTrainedError
from eominer.fusion.features import fuse
from eominer.fusion.models import MultiLabelLogistic, check_xy

RULES = ("product", "mean", "stack")


def _split(X: np.ndarray, n_s2: int) -> tuple[np.ndarray, np.ndarray]:
    if not 0 < n_s2 < X.shape[1]:
        raise FeatureError(f"n_s2={n_s2} must split the {X.shape[1]} columns into S2 | S1")
    return X[:, :n_s2], X[:, n_s2:]


def _usable(s2_usable: np.ndarray | None, n: int) -> np.ndarray:
    if s2_usable is None:
        return np.ones(n, dtype=bool)
    u = np.asarray(s2_usable, dtype=bool)
    if u.shape != (n,):
        raise FeatureError(f"s2_usable must have one flag per row ({n}), got shape {u.shape}")
    return u


def _fill_cloudy(X2: np.ndarray, usable: np.ndarray) -> np.ndarray:
    # cloudy S2 rows may hold NaN; they are never scored by an S2 model, so any finite value
    # keeps the matrix valid
    X2 = X2.copy()
    X2[~usable] = 0.0
    return X2


def product_rule(p2: np.ndarray, p1: np.ndarray) -> np.ndarray:
    a = p2 * p1
    return a / np.maximum(a + (1 - p2) * (1 - p1), 1e-12)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-4, 1 - 1e-4)
    return np.log(p / (1 - p))


class FeatureFusion(BaseEstimator, ClassifierMixin):
    """Feature-level fusion: one multi-label model on [w2 * S2 | w1 * S1], S1 model as backup."""

    def __init__(self, n_s2: int, weights: tuple[float, float] = (1.0, 1.0), C: float = 0.5):
        self.n_s2 = n_s2
        self.weights = weights
        self.C = C

    def fit(self, X: np.ndarray, Y: np.ndarray) -> FeatureFusion:
        X, Y = check_xy(X, Y)
        X2, X1 = _split(X, self.n_s2)
        self.fused_ = MultiLabelLogistic(C=self.C).fit(fuse(X2, X1, self.weights), Y)
        self.s1_ = MultiLabelLogistic(C=self.C).fit(X1, Y)
        return self

    def predict_proba(self, X: np.ndarray, s2_usable: np.ndarray | None = None) -> np.ndarray:
        if not hasattr(self, "fused_"):
            raise ModelNotTrainedError("FeatureFusion is not fitted: call fit(X, Y) first")
        X = np.asarray(X, dtype=np.float64)
        u = _usable(s2_usable, X.shape[0])
        X2, X1 = _split(X, self.n_s2)
        P = self.s1_.predict_proba(X1)
        if u.any():
            P[u] = self.fused_.predict_proba(fuse(X2[u], X1[u], self.weights))
        return P

    def predict(self, X: np.ndarray, s2_usable: np.ndarray | None = None,
                threshold: float = 0.5) -> np.ndarray:
        return (self.predict_proba(X, s2_usable) >= threshold).astype(np.uint8)


class DecisionFusion(BaseEstimator, ClassifierMixin):
    """Decision-level fusion of an S2 model and an S1 model."""

    def __init__(self, n_s2: int, rule: str = "product", C: float = 0.5, n_folds: int = 3,
                 random_state: int = 0):
        self.n_s2 = n_s2
        self.rule = rule
        self.C = C
        self.n_folds = n_folds
        self.random_state = random_state

    def fit(self, X: np.ndarray, Y: np.ndarray) -> DecisionFusion:
        if self.rule not in RULES:
            raise FeatureError(f"unknown decision-fusion rule {self.rule!r}: use one of {RULES}")
        X, Y = check_xy(X, Y)
        X2, X1 = _split(X, self.n_s2)
        self.s2_ = MultiLabelLogistic(C=self.C).fit(X2, Y)
        self.s1_ = MultiLabelLogistic(C=self.C).fit(X1, Y)
        if self.rule == "stack":
            self._fit_stacker(X2, X1, Y)
        return self

    def _fit_stacker(self, X2: np.ndarray, X1: np.ndarray, Y: np.ndarray) -> None:
        from sklearn.linear_model import LogisticRegression

        n = X2.shape[0]
        folds = np.random.default_rng(self.random_state).permutation(n) % self.n_folds
        P2, P1 = np.empty(Y.shape), np.empty(Y.shape)
        for k in range(self.n_folds):
            tr, te = folds != k, folds == k
            P2[te] = MultiLabelLogistic(C=self.C).fit(X2[tr], Y[tr]).predict_proba(X2[te])
            P1[te] = MultiLabelLogistic(C=self.C).fit(X1[tr], Y[tr]).predict_proba(X1[te])
        self.stackers_: list[object] = []
        for j in range(Y.shape[1]):
            y = Y[:, j]
            if y.min() == y.max():
                self.stackers_.append(None)  # constant label: fall back on the product rule
                continue
            Z = np.column_stack([_logit(P2[:, j]), _logit(P1[:, j])])
            self.stackers_.append(LogisticRegression(C=1.0, solver="liblinear").fit(Z, y))

    def combine(self, p2: np.ndarray, p1: np.ndarray) -> np.ndarray:
        if self.rule == "mean":
            return (p2 + p1) / 2
        if self.rule == "product":
            return product_rule(p2, p1)
        out = product_rule(p2, p1)
        for j, st in enumerate(self.stackers_):
            if st is not None:
                Z = np.column_stack([_logit(p2[:, j]), _logit(p1[:, j])])
                out[:, j] = st.predict_proba(Z)[:, 1]
        return out

    def predict_proba(self, X: np.ndarray, s2_usable: np.ndarray | None = None) -> np.ndarray:
        if not hasattr(self, "s2_"):
            raise ModelNotTrainedError("DecisionFusion is not fitted: call fit(X, Y) first")
        X = np.asarray(X, dtype=np.float64)
        u = _usable(s2_usable, X.shape[0])
        X2, X1 = _split(X, self.n_s2)
        P = self.s1_.predict_proba(X1)
        if u.any():
            P[u] = self.combine(self.s2_.predict_proba(_fill_cloudy(X2, u)[u]), P[u])
        return P

    def predict(self, X: np.ndarray, s2_usable: np.ndarray | None = None,
                threshold: float = 0.5) -> np.ndarray:
        return (self.predict_proba(X, s2_usable) >= threshold).astype(np.uint8)
