"""Every strategy on real OSCD features (Bordeaux, 16 px patches)."""

from __future__ import annotations

import numpy as np
import pytest

from eominer.errors import SessionError
from eominer.learning import strategies as st
from eominer.learning.models import make_model


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


def test_smallest_and_largest_equal_a_stable_sort(bordeaux):
    """The strided-sample top n (`smallest`, `largest`) equals a full stable sort on real
    scores repeated to 600k rows with ties (rounded to 3 decimals: many equal keys at the
    n-th place, and saturated ones), non-finite keys left out."""
    data, y, rows = bordeaux
    scores = make_model("logistic").fit(data.X[rows], y[rows]).score(data.X)
    key = np.round(np.tile(scores, 700), 3).astype(np.float32)
    key[::977] = np.nan
    key[5::1013] = np.inf
    key[7::1019] = -np.inf
    fin = np.flatnonzero(np.isfinite(key))
    for n in (1, 20, 100, 1000):
        want_lo = fin[np.argsort(key[fin], kind="stable")[:n]]
        want_hi = fin[np.argsort(-key[fin], kind="stable")[:n]]
        assert st.smallest(key, n).tolist() == want_lo.tolist(), n
        assert st.largest(key, n).tolist() == want_hi.tolist(), n
        assert st.largest(key, n).tolist() == st.smallest(-key, n).tolist()
