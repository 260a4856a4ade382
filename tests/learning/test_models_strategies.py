"""Every model and strategy on real OSCD features (Bordeaux, 16 px patches)."""

from __future__ import annotations

import numpy as np
import pytest

from eominer.errors import SessionError
from eominer.evaluation.oscd import OSCD_CHANGE_SHARE, oscd_city
from eominer.evaluation.ranking import average_precision
from eominer.learning import strategies as st
from eominer.learning.coldstart import diverse_sample, find_similar
from eominer.learning.engine import SessionData, fit_score_pick
from eominer.learning.models import MODEL_KINDS, make_model, similar_to
from eominer.learning.quality import precision_estimate, ranking_change, suggest_stop


@pytest.fixture(scope="module")
def bordeaux(shared_data):
    X, share = oscd_city(shared_data, "bordeaux", 16)
    y = np.where(share > OSCD_CHANGE_SHARE, 1, -1).astype(np.int8)
    data = SessionData(np.arange(len(X)) + 1000, X)
    rng = np.random.default_rng(0)
    rows = np.concatenate([rng.choice(np.flatnonzero(y == 1), 15, replace=False),
                           rng.choice(np.flatnonzero(y == -1), 60, replace=False)])
    return data, y, rows


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_every_model_ranks_real_change(bordeaux, kind):
    data, y, rows = bordeaux
    model = make_model(kind).fit(data.X[rows], y[rows])
    scores = model.score(data.X, data.sq_norms)
    assert scores.dtype == np.float32 and scores.shape == (data.n,)
    assert float(scores.min()) >= 0.0 and float(scores.max()) <= 1.0
    base = float((y == 1).mean())
    assert average_precision(y, scores) > 2.5 * base, kind
    assert np.mean(scores[rows][y[rows] == 1]) > np.mean(scores[rows][y[rows] == -1])


def test_own_scoring_matches_scikit_learn(bordeaux):
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import SVC

    data, y, rows = bordeaux
    lin = make_model("logistic").fit(data.X[rows], y[rows])
    ref = LogisticRegression(class_weight="balanced", solver="liblinear").fit(
        data.X[rows], y[rows])
    np.testing.assert_allclose(lin.decision(data.X), ref.decision_function(data.X),
                               rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(lin.score(data.X), ref.predict_proba(data.X)[:, 1], atol=1e-5)
    rbf = make_model("rbf_svm").fit(data.X[rows], y[rows])
    ref = SVC(kernel="rbf", gamma=float(rbf.gamma_), class_weight="balanced").fit(
        data.X[rows], y[rows])
    np.testing.assert_allclose(rbf.decision(data.X, data.sq_norms),
                               ref.decision_function(data.X), atol=2e-4)


def test_models_refuse_one_class(bordeaux):
    data, y, rows = bordeaux
    with pytest.raises(SessionError, match="at least one positive and one negative"):
        make_model("rbf_svm").fit(data.X[rows[:5]], y[rows[:5]])
    with pytest.raises(SessionError, match="unknown model kind 'svm'"):
        make_model("svm")
    with pytest.raises(SessionError, match="needs at least one positive"):
        make_model("qbe_mean").fit(data.X[rows[-3:]], y[rows[-3:]])


def test_query_by_example_from_positives_only(bordeaux):
    data, y, rows = bordeaux
    pos = rows[y[rows] == 1][:3]
    for kind in ("qbe_mean", "qbe_knn"):
        s = make_model(kind).fit(data.X[pos], np.ones(3, np.int8)).score(data.X, data.sq_norms)
        assert average_precision(y, s) > 2 * float((y == 1).mean()), kind
    idx, sims = similar_to(data.X, data.X[pos[0]], 5, data.sq_norms)
    assert idx[0] == pos[0] and np.all(np.diff(sims) <= 0)
    d = ((data.X - data.X[pos[0]]) ** 2).sum(1)
    assert set(idx.tolist()) == set(np.argsort(d)[:5].tolist())


def test_strategies_pick_what_they_promise(bordeaux):
    data, y, rows = bordeaux
    scores = make_model("logistic").fit(data.X[rows], y[rows]).score(data.X)
    n = 20
    m = st.margin(scores, n, exclude=rows)
    assert len(set(m.tolist())) == n and not set(m.tolist()) & set(rows.tolist())
    rest = np.setdiff1d(np.arange(data.n), np.concatenate([m, rows]))
    assert np.abs(scores[m] - 0.5).max() <= np.abs(scores[rest] - 0.5).min()
    assert set(st.entropy(scores, n, exclude=rows).tolist()) == set(m.tolist())
    top = st.most_relevant(scores, n, exclude=rows)
    assert scores[top].min() >= scores[rest[~np.isin(rest, top)]].max()
    r1 = st.random(scores, n, exclude=rows, rng=np.random.default_rng(3))
    r2 = st.random(scores, n, exclude=rows, rng=np.random.default_rng(3))
    assert np.array_equal(r1, r2) and not set(r1.tolist()) & set(rows.tolist())
    div = st.diverse(scores, n, X=data.X, exclude=rows)
    assert len(set(div.tolist())) == n and not set(div.tolist()) & set(rows.tolist())
    pool = st.margin(scores, 10 * n, exclude=rows)
    assert set(div.tolist()) <= set(pool.tolist())

    def spread(idx):
        F = data.X[idx]
        return float(np.mean(((F[:, None] - F[None]) ** 2).sum(-1)))
    assert spread(div) > spread(m)  # the point of a diverse batch
    centres = np.stack([np.arange(data.n) % 28, np.arange(data.n) // 28], 1).astype(float)
    sp = st.diverse(scores, n, X=data.X, exclude=rows, centres=centres, spatial_weight=2.0)
    assert np.std(centres[sp], 0).sum() > np.std(centres[div], 0).sum() * 0.9
    with pytest.raises(SessionError, match="unknown query strategy"):
        st.get_strategy("greedy")


def test_fit_score_pick_one_call(bordeaux):
    data, y, rows = bordeaux
    model, scores, pick, notes = fit_score_pick(data, rows, y[rows], model_kind="linear_svm",
                                                strategy="diverse", n=7)
    assert len(pick) == 7 and notes == [] and model.kind == "linear_svm"
    with pytest.raises(SessionError, match="no positive label yet"):
        fit_score_pick(data, rows[y[rows] == -1], y[rows][y[rows] == -1])


def test_cold_start(bordeaux):
    data, y, rows = bordeaux
    d = diverse_sample(data.X, 12, exclude=rows, seed=1)
    assert len(set(d.tolist())) == 12 and not set(d.tolist()) & set(rows.tolist())
    assert np.array_equal(d, diverse_sample(data.X, 12, exclude=rows, seed=1))
    f = find_similar(data.X, int(rows[0]), 5, data.sq_norms, exclude=rows[1:3])
    assert int(rows[0]) not in f and len(f) == 5


def test_quality_estimates():
    a = np.asarray([0.1, 0.6, 0.7, 0.2], np.float32)
    b = np.asarray([0.5, 0.1, 0.7, 0.2], np.float32)
    ch = ranking_change(a, b, k=2)
    assert ch["flip_rate"] == 0.5 and ch["topk_overlap"] == 0.5
    p = precision_estimate(np.asarray([1, 1, 1, -1]))
    assert p["precision"] == 0.75 and 0.3 < p["precision_low"] < 0.75 < p["precision_high"]
    assert suggest_stop([0.2, 0.005, 0.004], 0.9)[0] is True
    assert suggest_stop([0.2, 0.005, 0.004], 0.5)[0] is False
    assert suggest_stop([0.005, 0.2], None)[0] is False


def test_rbf_scoring_is_exact_for_outlier_rows(bordeaux):
    from sklearn.svm import SVC

    data, y, rows = bordeaux
    rbf = make_model("rbf_svm").fit(data.X[rows], y[rows])
    far = data.X[:50] * np.float32(40.0)  # g |x|^2 far above the exp range
    ref = SVC(kernel="rbf", gamma=float(rbf.gamma_), class_weight="balanced").fit(
        data.X[rows], y[rows])
    got = rbf.decision(far)
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, ref.decision_function(far), atol=2e-4)
